"""When a customer's workflow has done everything it was given: read from its history.

After a signal or a skip in time, ``journeys test --temporal`` waits until no workflow
task and no activity is open and no timer is due by the step's time before it looks at
the workflow's state; a query alone cannot tell whether the actions it started are done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

_TASK_CLOSED = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
}
_TASK_OPEN = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    # a failed or timed-out task is retried without a new event in history
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
}
_ACTIVITY_CLOSED = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "activity_task_canceled_event_attributes",
}
_ENDED = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
}


@dataclass
class Pending:
    """What a workflow's history says is still to happen."""

    task_open: bool = False
    task_failure: str = ""  # the last failed workflow task's message, while it is retried
    activities: dict[int, str] = field(default_factory=dict)  # scheduled event id -> type
    timers: dict[str, datetime] = field(default_factory=dict)  # timer id -> when it fires
    ended: str = ""  # how the workflow ended, if it did

    @property
    def busy(self) -> bool:
        """A workflow task or an activity is open: the workflow is not done yet."""
        return self.task_open or bool(self.activities)

    def describe(self) -> str:
        """What is still open, for the sentence of a test that did not settle."""
        parts = []
        if self.task_failure:
            parts.append(f"its workflow task fails: {self.task_failure}")
        elif self.task_open:
            parts.append("a workflow task is still open")
        if self.activities:
            parts.append("activities still running: " + ", ".join(self.activities.values()))
        return "; ".join(parts) or "nothing open"


def pending(events: list[HistoryEvent]) -> Pending:
    """What is open at the end of ``events`` (one run's history, oldest first)."""
    out = Pending()
    for event in events:
        kind = event.event_type
        if kind in _TASK_CLOSED:
            out.task_open, out.task_failure = False, ""
        elif kind in _TASK_OPEN:
            out.task_open = True
            if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                failure = event.workflow_task_failed_event_attributes.failure
                out.task_failure = failure.message or "(no message)"
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            out.activities[event.event_id] = attributes.activity_type.name
        elif kind in _ACTIVITY_CLOSED:
            attributes = getattr(event, _ACTIVITY_CLOSED[kind])
            out.activities.pop(attributes.scheduled_event_id, None)
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            started = event.timer_started_event_attributes
            fires = event.event_time.ToDatetime(tzinfo=UTC)
            out.timers[started.timer_id] = fires + started.start_to_fire_timeout.ToTimedelta()
        elif kind == EventType.EVENT_TYPE_TIMER_FIRED:
            out.timers.pop(event.timer_fired_event_attributes.timer_id, None)
        elif kind == EventType.EVENT_TYPE_TIMER_CANCELED:
            out.timers.pop(event.timer_canceled_event_attributes.timer_id, None)
        elif kind in _ENDED:
            out.ended = EventType.Name(kind).removeprefix("EVENT_TYPE_WORKFLOW_EXECUTION_")
    return out
