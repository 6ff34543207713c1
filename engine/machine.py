"""The journey interpreter: a pure, deterministic function of (catalog, state, input, now).

No I/O, no clock, no randomness: the same inputs give the same new state and the same
commands, which is what lets the Temporal workflow replay it and the offline simulator
run it. Every entry point copies the state it is given and returns a :class:`Step`.

Semantics, in the words of docs/journeys.md:

* An external or emitted event is applied to every journey in name order. In each journey
  the customer has a run in (any status), the goal is checked first (``engine.goals``: an
  external goal event, the run not converted yet, ``start <= now <= start + within`` with
  ``start`` the split for a run in an experiment, else the enrolment, then ``goal.when``);
  a conversion emits a ``convert`` action and, with ``exit_on_goal``, ends an active run at
  once (cause ``goal``). In a journey the customer is active in, ``exit_when`` is checked
  next (it ends the run at once), then the current state's ``on.<event>`` rules run. A
  journey the customer is not in enrols them if the event is under ``enroll.on``,
  ``enroll.when`` holds and ``reenter`` allows it; the enrolling event then also runs the
  start state's rules (so a first order counts), but never converts the run it enrols
  (goals were checked before).
* Rules run top to bottom; each rule whose ``when`` holds applies its ``set`` (all values
  computed from the context as it was before the rule; later rules see the new values),
  runs its ``do`` actions, and the first matching rule with a ``goto`` moves the customer
  and ends the evaluation. ``goto`` to the current state re-enters it.
* An action with ``when:`` runs only when it holds. ``split`` gives the run the customer's
  sticky arm at once (``ctx.arm``, ``experiment.NAME``); a run in the ``holdout`` arm gets
  no action that reaches the customer (counted in ``Run.withheld``).
* Entering a state runs its ``enter`` actions and starts its ``after`` timers, counted from
  the moment of entry, and its calendar timers (``at:``, ``engine.calendar``), re-armed
  after each firing and whenever the customer changes; leaving cancels them. A timer that
  fires late (the worker was down, or the simulator jumped ahead) uses its due time as
  "now", so chains of timers keep their spacing. Entering a final state completes the run.
* A CEL expression that fails at run time (a missing property, a type error) makes its
  rule not match; the failure is recorded in ``CustomerState.problems`` for admins.
* ``emit`` delivers an internal event to the customer's other journeys after the current
  event is done, up to ``MAX_EMIT_DEPTH`` levels deep.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ._errors import MoveError
from ._outcome import (
    DEDUPE_MAX,
    DEDUPE_WINDOW,
    MAX_CONTEXT_BYTES,
    MAX_EMIT_DEPTH,
    MAX_HISTORY,
    MAX_PROBLEMS,
    Step,
    TransitionRecord,
)
from ._stepper import _Stepper
from .calendar import refresh as refresh_calendar
from .catalog import Catalog
from .model import Customer, CustomerState, Event

__all__ = [
    "DEDUPE_MAX",
    "DEDUPE_WINDOW",
    "MAX_CONTEXT_BYTES",
    "MAX_EMIT_DEPTH",
    "MAX_HISTORY",
    "MAX_PROBLEMS",
    "Step",
    "TransitionRecord",
    "fire_timers",
    "handle_event",
    "journeys_attribute",
    "move",
    "next_due",
    "patch_customer",
    "refresh_calendar",
    "upgrade",
]


def handle_event(catalog: Catalog, state: CustomerState, event: Event, now: datetime) -> Step:
    """Apply one customer event. Timers due by ``now`` must have been fired first
    (:func:`fire_timers`); a duplicate event id changes nothing."""
    run = _Stepper(catalog, state, now)
    if event.id in run.state.seen and event.source == "external":
        return Step(state=state, duplicate=True)
    run.upgrade()
    if event.source == "external":
        run.remember(event.id)
    run.apply(event)
    return run.finish()


def fire_timers(catalog: Catalog, state: CustomerState, now: datetime) -> Step:
    """Fire every timer due at or before ``now``, earliest first."""
    run = _Stepper(catalog, state, now)
    run.upgrade()
    run.fire_due()
    return run.finish()


def next_due(state: CustomerState) -> datetime | None:
    """When the next timer of any active run fires, if any."""
    dues = [t.due_at for r in state.runs.values() if r.status == "active" for t in r.timers]
    return min(dues) if dues else None


def upgrade(catalog: Catalog, state: CustomerState, now: datetime) -> Step:
    """Move runs below their journey's floor version to the latest version."""
    run = _Stepper(catalog, state, now)
    run.upgrade()
    return run.finish()


def move(
    catalog: Catalog,
    state: CustomerState,
    journey: str,
    to_state: str,
    reason: str,
    now: datetime,
) -> Step:
    """An admin override: put the customer in ``to_state`` of ``journey``, enrolling them
    if needed. Raises :class:`MoveError` with a sentence when it cannot."""
    if not reason.strip():
        raise MoveError("give a reason for the move; it is recorded in the journey's history")
    if journey not in catalog.latest:
        raise MoveError(
            f"unknown journey '{journey}'; journeys: {', '.join(sorted(catalog.latest))}"
        )
    stepper = _Stepper(catalog, state, now)
    stepper.upgrade()
    current = stepper.state.runs.get(journey)
    version = current.version if current and current.status == "active" else catalog.latest[journey]
    definition = catalog.get(journey, version)
    if to_state not in definition.states:
        raise MoveError(
            f"journey '{journey}' v{version} has no state '{to_state}'; states: "
            f"{', '.join(definition.states)}"
        )
    if current is None or current.status != "active":
        stepper.enrol(definition, event=None, start=to_state, cause=f"admin: {reason}")
    else:
        stepper.goto(current, definition, to_state, f"admin: {reason}", event=None)
    stepper.drain()
    return stepper.finish()


def journeys_attribute(state: CustomerState) -> list[str]:
    """``journey:state`` for every run (``journey:exited`` for runs ended by exit_when):
    the ``Journeys`` search attribute."""
    return sorted(
        f"{name}:{'exited' if run.status == 'exited' else run.state}"
        for name, run in state.runs.items()
    )


def patch_customer(
    customer: Customer,
    *,
    traits: dict[str, Any] | None = None,
    tier: str | None = None,
    segment: str | None = None,
    rfm: dict[str, int] | None = None,
    ltv: float | None = None,
    first_order: datetime | None = None,
    p_alive: float | None = None,
    churn_risk: float | None = None,
    predicted_clv: float | None = None,
) -> Customer:
    """``customer`` with what is newly known of them: each given field replaces the old
    value, and ``traits`` merge key by key into the known ones (as the profile in PostgreSQL
    does: a trait sent once stays until a later message sets it again). ``None``: unknown,
    the old value stays. Traits must come without contact details
    (``engine.identity.redact_traits``). Calendar timers follow such a change once
    :func:`refresh_calendar` is called on the state that holds the new customer."""
    fields = (
        ("tier", tier),
        ("segment", segment),
        ("rfm", rfm),
        ("ltv", ltv),
        ("first_order", first_order),
        ("p_alive", p_alive),
        ("churn_risk", churn_risk),
        ("predicted_clv", predicted_clv),
    )
    update: dict[str, Any] = {k: v for k, v in fields if v is not None}
    if traits is not None:
        update["traits"] = {**customer.traits, **traits}
    return customer.model_copy(update=update)
