"""Inputs and outputs of the workflow, its signals, updates and activities: one model
each, so fields can be added compatibly."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from engine.machine import TransitionRecord
from engine.model import ActionCommand, CustomerState, Event

SIGNAL_EVENTS = "events"
SIGNAL_CATALOG = "catalog_changed"
QUERY_STATE = "state"
UPDATE_MOVE = "move"


class CustomerPatch(BaseModel):
    """What the sender knows of the customer now (traits already without contact details)."""

    traits: dict[str, Any] | None = None
    tier: str | None = None
    segment: str | None = None
    rfm: dict[str, int] | None = None
    ltv: float | None = None


class EventsSignal(BaseModel):
    """One or more events of one customer: a batch costs one signal, not several."""

    events: list[Event] = Field(default_factory=list)
    catalog_seq: int = 0
    customer: CustomerPatch | None = None


class CatalogChanged(BaseModel):
    seq: int


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


class DeferredAction(BaseModel):
    """An action the messaging policy held back: a timer in the customer's workflow."""

    due: datetime
    input: ActionInput
    reason: str = ""
    enrollment: int = 0  # the run it belongs to: dropped if the journey moved on meanwhile
    visit: int = 0


# Behaviours a run started at this version has from its first task: actions local first,
# transitions logged by a local activity, a move's timers armed at once. Deciding them from
# the input, not with ``workflow.patched``, costs new customers no marker and no search
# attribute upsert, and cannot be broken by where a loaded worker splits workflow tasks
# (docs/operations.md, "Replay"). Raise it for the next change that must not reach runs in
# flight, and branch on ``input.code_version`` in the workflow.
CODE_VERSION = 4


class CustomerInput(BaseModel):
    customer_id: str
    state: CustomerState | None = None
    pending: list[EventsSignal] = Field(default_factory=list)
    deferred: list[DeferredAction] = Field(default_factory=list)
    catalog_seq: int = 0
    search_attributes: bool = True
    max_steps_per_run: int = 500  # continue-as-new after this many steps (or when suggested)
    # how long one action attempt may take before Temporal retries it (a crashed worker's
    # attempt is retried after this)
    action_timeout_seconds: int = 60
    # which behaviours this run has (see ``CODE_VERSION``); 0 for runs started before it
    # existed, which decide them with ``workflow.patched`` as they always did
    code_version: int = 0


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


class RecordTransitionsInput(BaseModel):
    customer_id: str
    transitions: list[TransitionRecord]
