"""Experiments and goals in the interpreter: what a ``split`` does to a run, which actions
a holdout run does not get, and when a run converts.

Called by the stepper (``engine._stepper``); pure like it. The semantics, in the words of
docs/journeys.md ("Experiments", "Goals"):

* ``split`` gives the run the customer's arm of the experiment: the one already in
  ``CustomerState.experiments`` (sticky across runs, re-enrolments, continue-as-new and
  upgrades), else :func:`engine.experiments.assign`'s. The run's window for the goal
  starts then.
* A run whose arm is the holdout gets no action that ``reaches_customer`` (send, offer,
  survey): it is counted in ``Run.withheld`` instead; everything else (states, timers,
  tasks, tags, the goal) runs as for the other arms. The arm is the run's from its split
  on; before it, only a re-enrolment of a customer already in the holdout is withheld.
* A run converts when its journey's goal event (external: what the customer did) is
  applied, ``goal.when`` holds, the window is open (``start <= now <= start + within``,
  the start being the split for a run in an experiment, else the enrolment) and the run
  has not converted yet, whatever its status: a completed or exited run still counts
  (intent to treat). The enrolling event never converts its own run: goals are checked
  before enrolment.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from pydantic_core import to_jsonable_python

from ._walk import actions
from .actions import ActionSpec, Split, action
from .catalog import Catalog
from .durations import later_by
from .experiments import HOLDOUT, assign
from .model import CustomerState, Event, Journey, Run

__all__ = [
    "Convert",
    "apply_split",
    "arms_of",
    "experiment_names",
    "goal_window_open",
    "revenue_of",
    "window_start",
    "withheld",
]


@action("convert", activity="record_conversion")
class Convert(ActionSpec):
    """A run's conversion, made by the interpreter when the goal is reached (never written
    in YAML); its activity writes the ``conversions`` row."""

    written = False
    goal_event: str
    event_id: str
    revenue: float = 0.0
    started_at: datetime
    converted_at: datetime
    enrollment: int
    experiment: str | None = None
    arm: str | None = None

    def summary(self, customer_id: str) -> str:
        arm = f" (arm {self.arm})" if self.arm else ""
        return f"customer {customer_id} converted on {self.goal_event}{arm}"


def apply_split(state: CustomerState, run: Run, spec: Split, now: datetime) -> dict[str, Any]:
    """Put ``run`` (and the customer) in their arm of ``spec``'s experiment; the action's
    arguments for its activity (the split as written, plus the arm and when)."""
    arm = state.experiments.get(spec.experiment)
    if arm is None:
        arm = assign(spec.experiment, spec.arms, state.customer.id)
        state.experiments = {**state.experiments, spec.experiment: arm}
    if run.experiment != spec.experiment or run.split_at is None:
        run.experiment, run.split_at = spec.experiment, now
    run.arm = arm
    args = spec.model_dump(mode="json", exclude={"when"})
    return {
        **args,
        "arm": arm,
        "enrollment": run.enrollment,
        "assigned_at": to_jsonable_python(run.split_at),  # as the other actions' times
    }


def withheld(state: CustomerState, run: Run, definition: Journey, spec: ActionSpec) -> bool:
    """Whether ``spec`` is not carried out for ``run`` of ``definition``: a message to a
    holdout customer. The run's arm is known from its split on; a re-enrolled customer
    whose earlier run put them in the holdout of this journey's experiment is known to be
    there from the start, so the new run's messages before its split are withheld too."""
    if not spec.reaches_customer:
        return False
    arm = run.arm
    if arm is None and run.enrollment > 1 and state.experiments:
        # the first run's messages before its split go to everyone (the arm is not known
        # yet). A test runner may give a fresh customer arms it has not had
        # (orchestration.temporal_tests): a first run never looks here, so it runs alike.
        # A customer in no experiment skips the walk over the journey (a hot path)
        arm = next((state.experiments.get(s.experiment) for s in splits(definition)), None)
    return arm == HOLDOUT


def goal_window_open(definition: Journey, run: Run, event: Event, now: datetime) -> bool:
    """Whether ``event`` at ``now`` may convert ``run`` (``goal.when`` aside)."""
    goal = definition.goal
    if goal is None or run.converted_at is not None or event.name != goal.event:
        return False
    if event.source != "external":
        return False
    start = window_start(run)
    return start <= now <= later_by(start, goal.within)


def window_start(run: Run) -> datetime:
    """When ``run``'s goal window opens: its split in an experiment, else its enrolment."""
    return run.split_at if run.experiment is not None and run.split_at else run.enrolled_at


def conversion(run: Run, event: Event, now: datetime) -> Convert:
    """The ``convert`` action of ``run`` reached by ``event`` at ``now``."""
    return Convert(
        goal_event=event.name,
        event_id=event.id,
        revenue=revenue_of(event),
        started_at=window_start(run),
        converted_at=now,
        enrollment=run.enrollment,
        experiment=run.experiment if run.arm else None,
        arm=run.arm,
    )


def revenue_of(event: Event) -> float:
    """The revenue of a goal event: ``properties.revenue``, else ``total``, else 0 (a value
    that is no finite number counts as 0)."""
    for key in ("revenue", "total"):
        value = event.properties.get(key)
        if isinstance(value, bool) or value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            return round(number, 2)
    return 0.0


_NAMES: dict[int, tuple[Catalog, frozenset[str]]] = {}
_NAMES_MAX = 64


def experiment_names(catalog: Catalog) -> frozenset[str]:
    """Every experiment a journey of ``catalog`` splits on (what ``experiment.NAME`` may
    name). Cached per catalog object: catalogs are shared and never changed once made."""
    found = _NAMES.get(id(catalog))
    if found is not None and found[0] is catalog:
        return found[1]
    names = frozenset(
        spec.experiment for journey in catalog.versions.values() for spec in splits(journey)
    )
    if len(_NAMES) >= _NAMES_MAX:
        _NAMES.clear()
    _NAMES[id(catalog)] = (catalog, names)
    return names


def arms_of(journeys: list[Journey], customer_id: str) -> dict[str, str]:
    """The arm of ``customer_id`` in every experiment of ``journeys``: what a customer
    state may start with so that another id (a test runner's fresh one) keeps this one's
    arms."""
    return {
        spec.experiment: assign(spec.experiment, spec.arms, customer_id)
        for journey in journeys
        for spec in splits(journey)
    }


def splits(journey: Journey) -> list[Split]:
    """The ``split`` actions of ``journey``, wherever they are written (``engine._walk``)."""
    return [spec for _, spec, _ in actions(journey) if isinstance(spec, Split)]
