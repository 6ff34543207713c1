"""Inputs and outputs of the workflow, its signals, updates and activities: one model
each, so fields can be added compatibly."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from engine import merging
from engine.catalog import Catalog
from engine.machine import TransitionRecord
from engine.model import ActionCommand, CustomerState, Event, Problem

SIGNAL_EVENTS = "events"
SIGNAL_CATALOG = "catalog_changed"
QUERY_STATE = "state"
UPDATE_MOVE = "move"
SIGNAL_MERGE = "merge"
SIGNAL_ABSORBED = "absorbed"
# the event ingest sends when an identify brings a contact trait a deferred message waits
# for (await_contact): it makes that message due at once
CONTACT_ADDED = "contact_added"


class CustomerPatch(BaseModel):
    """What the sender knows of the customer now (traits already without contact details)."""

    traits: dict[str, Any] | None = None
    tier: str | None = None
    segment: str | None = None
    rfm: dict[str, int] | None = None
    ltv: float | None = None
    first_order: datetime | None = None  # the first order's time, from the segment refresh
    # the refresh's forecast (None: none, the customer's last known values stay)
    p_alive: float | None = None
    churn_risk: float | None = None
    predicted_clv: float | None = None


class EventsSignal(BaseModel):
    """One or more events of one customer: a batch costs one signal, not several."""

    events: list[Event] = Field(default_factory=list)
    catalog_seq: int = 0
    customer: CustomerPatch | None = None


class CatalogChanged(BaseModel):
    seq: int


class MergeSignal(BaseModel):
    """This customer was merged into ``into`` (``store.identity``'s merge ``merge_id``):
    end their journeys, and complete with the :class:`Handover` as the result."""

    merge_id: int
    into: str


class Handover(merging.Handover):
    """The absorbed customer's workflow result: what the survivor takes over
    (``engine.merging``) and the events it received but did not apply."""

    pending: list[EventsSignal] = Field(default_factory=list)


class AbsorbedSignal(BaseModel):
    """Take over what the absorbed customer's workflow handed over."""

    handover: Handover


class ActionInput(BaseModel):
    customer_id: str
    command: ActionCommand
    context: dict[str, Any] = Field(default_factory=dict)  # the journey run's ctx then
    now: datetime | None = None  # the workflow's time: policy and due dates follow it
    tier: str | None = None
    segment: str | None = None
    drop_reason: str | None = None  # a deferred message no longer wanted: record, do not send


class ActionResult(BaseModel):
    # done | already_done | skipped (nothing to do: budget exhausted, pool full, opted
    # out, capped) | deferred (the messaging policy says not now: run again at retry_at)
    status: str
    detail: dict[str, Any] = Field(default_factory=dict)
    reason: str = ""
    retry_at: datetime | None = None
    # deferred: an event name that makes it due at once (CONTACT_ADDED), else only retry_at
    wake_on: str | None = None


class DeferredAction(BaseModel):
    """An action the messaging policy held back: a timer in the customer's workflow."""

    due: datetime
    input: ActionInput
    reason: str = ""
    enrollment: int = 0  # the run it belongs to: dropped if the journey moved on meanwhile
    visit: int = 0
    wake_on: str | None = None  # an event that makes it due at once (ActionResult.wake_on)


# Behaviours a run started at this version has from its first task. 4: actions local
# first, transitions logged by a local activity, a move's timers armed at once. 5: the admin
# read model is also written when only the context changed. 6: a step's transitions are
# logged by its last action's local activity (``act_then_record``). Deciding them from the
# input, not with ``workflow.patched``, costs new customers no marker and no search
# attribute upsert, and cannot be broken by where a loaded worker splits workflow tasks
# (docs/operations.md, "Replay"). Raise it for the next change that must not reach runs in
# flight, and branch on ``input.code_version`` in the workflow.
CODE_VERSION = 6


class CustomerInput(BaseModel):
    customer_id: str
    state: CustomerState | None = None
    pending: list[EventsSignal] = Field(default_factory=list)
    deferred: list[DeferredAction] = Field(default_factory=list)
    catalog_seq: int = 0
    # the catalog itself, when the sender had it (the dispatcher, for a customer without a
    # workflow yet): recorded with the start, so the first task needs no load_catalog
    # local activity; a running workflow ignores a start's input, so sending it is harmless
    catalog: Catalog | None = None
    search_attributes: bool = True
    max_steps_per_run: int = 500  # continue-as-new after this many steps (or when suggested)
    # how long one action attempt may take before Temporal retries it (a crashed worker's
    # attempt is retried after this)
    action_timeout_seconds: int = 60
    # which behaviours this run has (see ``CODE_VERSION``); 0 for runs started before it
    # existed, which decide them with ``workflow.patched`` as they always did
    code_version: int = 0
    # the last admin snapshot's number (``CustomerSnapshot.seq``), carried across runs
    snapshot_seq: int = 0
    # a merge or handovers that arrived as the run continued as new (None, []: none)
    merge: MergeSignal | None = None
    absorbed: list[Handover] = Field(default_factory=list)


class MoveRequest(BaseModel):
    journey: str
    state: str
    reason: str


class MoveResult(BaseModel):
    journey: str
    state: str
    version: int


class LoadCatalogInput(BaseModel):
    versions: list[str] = Field(default_factory=list)
    min_seq: int = 0  # a notice said this catalog exists: do not answer from an older cache


class JourneySnapshot(BaseModel):
    """One journey run as the customer's workflow last saw it (the admin read model)."""

    journey: str
    version: int
    state: str
    status: str  # active | completed | exited
    context: dict[str, Any] = Field(default_factory=dict)
    since: datetime  # when the run entered its state
    enrolled_at: datetime | None = None
    next_timer_due: datetime | None = None  # the run's earliest pending timer
    next_timer_label: str | None = None  # its `after:` label, e.g. "14d"
    next_timer_target: str | None = None  # the state its rules go to, when they name one
    # experiments and goals (engine.goals); defaults, so recorded snapshots still decode
    experiment: str | None = None
    arm: str | None = None
    converted_at: datetime | None = None


class CustomerSnapshot(BaseModel):
    """What admin reads show of a customer, written to PostgreSQL with the transitions.
    ``seq`` must grow with every snapshot over the customer's whole life (continue-as-new
    included): the store keeps the highest and ignores older or repeated ones."""

    seq: int
    at: datetime  # workflow time of the snapshot
    journeys: list[JourneySnapshot] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)
    tier: str | None = None
    segment: str | None = None

    @classmethod
    def of(
        cls, state: CustomerState, catalog: Catalog | None, *, seq: int, at: datetime
    ) -> CustomerSnapshot:
        """The snapshot of ``state`` (pure: safe in workflow code). ``catalog`` names the
        state each next timer goes to; without it (or the run's version) that is None."""
        journeys = []
        for name, run in sorted(state.runs.items()):
            nxt = min(run.timers, key=lambda t: t.due_at) if run.timers else None
            target = None
            if nxt is not None and catalog is not None:
                journey = catalog.versions.get(Catalog.key(name, run.version))
                spec = journey.states.get(run.state) if journey else None
                rules = spec.timer_rules(nxt) if spec is not None else None
                if rules is not None:
                    gotos = sorted({r.goto for r in rules if r.goto})
                    target = " or ".join(gotos) or None
            journeys.append(
                JourneySnapshot(
                    journey=name,
                    version=run.version,
                    state=run.state,
                    status=run.status,
                    context=dict(run.context),
                    since=run.entered_at,
                    enrolled_at=run.enrolled_at,
                    next_timer_due=nxt.due_at if nxt else None,
                    next_timer_label=nxt.label if nxt else None,
                    next_timer_target=target,
                    experiment=run.experiment,
                    arm=run.arm,
                    converted_at=run.converted_at,
                )
            )
        customer = state.customer
        return cls(
            seq=seq,
            at=at,
            journeys=journeys,
            problems=list(state.problems),
            tier=customer.tier,
            segment=customer.segment,
        )


class RecordTransitionsInput(BaseModel):
    customer_id: str
    transitions: list[TransitionRecord] = Field(default_factory=list)
    # optional, so histories recorded before it decode; None: the read model is untouched
    snapshot: CustomerSnapshot | None = None


class ActThenRecordInput(BaseModel):
    """A step's last action and its transitions, in one local activity: the action runs,
    then the log is written (a workflow activation and a history marker less per step)."""

    action: ActionInput
    record: RecordTransitionsInput
