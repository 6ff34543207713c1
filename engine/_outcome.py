"""What one call of the interpreter returns, its limits, and helpers of the stepper."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import BaseModel

from .model import ActionCommand, CustomerState, Event, PendingTimer

MAX_EMIT_DEPTH = 8
MAX_HISTORY = 10
MAX_PROBLEMS = 20
MAX_CONTEXT_BYTES = 16 * 1024
DEDUPE_WINDOW = timedelta(days=7)
DEDUPE_MAX = 2000


class TransitionRecord(BaseModel):
    """A state change, for the transition log (``store``) and reports; the workflow hands
    these to the ``record_transitions`` activity as they are."""

    journey: str
    version: int
    from_state: str | None
    to_state: str
    cause: str
    at: datetime
    key: str = ""  # unique per transition: customer/journey/enrollment/visit[/what]


@dataclass
class Step:
    """What one call of the interpreter produced."""

    state: CustomerState
    actions: list[ActionCommand] = field(default_factory=list)
    transitions: list[TransitionRecord] = field(default_factory=list)
    duplicate: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.actions or self.transitions)


def in_firing_order(timers: list[PendingTimer]) -> list[PendingTimer]:
    return sorted(timers, key=lambda t: (t.due_at, t.index))


def copy_state(state: CustomerState) -> CustomerState:
    """A copy the stepper may change without touching ``state``. Cheaper than a deep copy
    (which cost 75% of a step): the interpreter replaces values, lists and dicts rather
    than changing them in place, so copying the containers it edits is enough."""
    runs = {
        name: run.model_copy(
            update={
                "context": dict(run.context),
                "timers": list(run.timers),
                "fired": list(run.fired),
                "history": list(run.history),
            }
        )
        for name, run in state.runs.items()
    }
    return state.model_copy(
        update={"runs": runs, "seen": dict(state.seen), "problems": list(state.problems)}
    )


def remember(seen: dict[str, datetime], event_id: str, now: datetime) -> None:
    """Note ``event_id`` as applied at ``now`` in ``seen``, forgetting ids older than
    ``DEDUPE_WINDOW`` and the oldest beyond ``DEDUPE_MAX``."""
    seen[event_id] = now
    horizon = now - DEDUPE_WINDOW
    for k in [k for k, at in seen.items() if at < horizon]:
        del seen[k]
    while len(seen) > DEDUPE_MAX:
        del seen[next(iter(seen))]


def cause_of(event: Event) -> str:
    if event.source == "timer":
        if "at" in event.properties:  # a calendar timer (engine.calendar)
            return f"timer:at:{event.properties['at']}"
        return f"timer:{event.properties.get('after', '')}"
    if event.source == "emit":
        return f"emit:{event.name} from {event.origin}"
    return f"event:{event.name}"
