"""How the customer workflow runs one action: local first, then as a regular activity.

Most actions are a few milliseconds of PostgreSQL and a hand-off to a relay. As a local
activity they cost the server no activity task and no second workflow task: the server's
CPU per ingested event fell by ~40% (``bench/ingest_bench.py``). A failure for good (bad
configuration) ends there; anything else (a slow or failing provider, a timeout) goes on
as a regular activity with the same idempotency key, retried until it succeeds and shown
as pending in the Temporal UI; what the quick tries did is found by the key, not redone.
A step's last action carries its transitions' log (``act_then_record``) when it runs
local: one activation and one history marker per step instead of two.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, FailureError, is_cancelled_exception

from engine import CustomerState, machine
from engine.actions import ACTIONS
from engine.model import Event
from workflows import _records
from workflows.io import (
    ActionInput,
    ActionResult,
    ActThenRecordInput,
    DeferredAction,
    RecordTransitionsInput,
)

# histories recorded before this ran every action as a regular activity
PATCH_LOCAL_FIRST = "actions-local-first"
ACTION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=0,  # transient failures retry until they succeed
    non_retryable_error_types=["ActionConfigError"],
)
# the fast path: a couple of quick tries inside the workflow task
LOCAL_FIRST_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_attempts=2,
    non_retryable_error_types=["ActionConfigError"],
)
LOCAL_FIRST_TIMEOUT = timedelta(seconds=10)
# a step's last action and its transitions' log in one local activity (activities.steps)
ACT_THEN_RECORD = "act_then_record"


async def execute_action(
    data: ActionInput,
    action_timeout: timedelta,
    *,
    local_first: bool,
    log: RecordTransitionsInput | None = None,
) -> tuple[ActionResult, bool]:
    """Run ``data``'s action (``local_first``: try it as a local activity first) and say
    whether ``log`` was written with it: the local try runs ``act_then_record`` then, the
    action and, once it is done, the log; anything later (the regular activity) runs the
    action alone and leaves the log to the caller. Raises ``FailureError`` when the action
    failed for good."""
    command = data.command
    activity = ACTIONS[command.kind].activity
    assert activity is not None
    if local_first:
        # with a log, the action and the log; without, the action's own activity
        name, arg, summary = (
            (
                ACT_THEN_RECORD,
                ActThenRecordInput(action=data, record=log),
                f"{command.summary}; {_records.summary(log)}",
            )
            if log is not None
            else (activity, data, command.summary)
        )
        try:
            fast: ActionResult = await workflow.execute_local_activity(
                name,
                arg,
                result_type=ActionResult,
                start_to_close_timeout=min(action_timeout, LOCAL_FIRST_TIMEOUT),
                retry_policy=LOCAL_FIRST_RETRY,
                summary=summary,
            )
            return fast, log is not None
        except FailureError as exc:
            if for_good(exc) or is_cancelled_exception(exc):
                raise  # a cancelled workflow must not start the action again
    result: ActionResult = await workflow.execute_activity(
        activity,
        data,
        result_type=ActionResult,
        start_to_close_timeout=action_timeout,
        retry_policy=ACTION_RETRY,
        summary=command.summary,
    )
    return result, False


def for_good(exc: FailureError) -> bool:
    """A failure the activity itself marked as final (bad configuration, or an unexpected
    error that kept coming back). A local activity's error may come as is, not wrapped in
    an ``ActivityError``."""
    cause = exc if isinstance(exc, ApplicationError) else exc.cause
    return isinstance(cause, ApplicationError) and (
        cause.non_retryable or cause.type in (LOCAL_FIRST_RETRY.non_retryable_error_types or [])
    )


def is_stale(state: CustomerState, item: DeferredAction) -> bool:
    """A deferred message whose journey run ended is dropped; one whose action kind says
    so (``ActionSpec.dropped_when_stale``: an offer, a survey) also when the customer left
    the state it was made for. A plain message (a welcome, say) still goes out while the
    run goes on."""
    run = state.runs.get(item.input.command.journey)
    if run is None or run.status != "active" or run.enrollment != item.enrollment:
        return True
    spec = ACTIONS.get(item.input.command.kind)
    return spec is not None and spec.dropped_when_stale and run.visit != item.visit


def deferral(
    state: CustomerState, data: ActionInput, result: ActionResult
) -> DeferredAction | None:
    """The timer for an action the messaging policy deferred (None: it was not)."""
    if result.status != "deferred" or result.retry_at is None:
        return None
    run = state.runs.get(data.command.journey)
    return DeferredAction(
        due=result.retry_at,
        input=data,
        reason=result.reason,
        enrollment=run.enrollment if run else 0,
        visit=run.visit if run else 0,
        wake_on=result.wake_on,
    )


def take_due(
    deferred: list[DeferredAction], now: datetime, woken: list[DeferredAction] | None = None
) -> tuple[list[DeferredAction], list[DeferredAction]]:
    """``(due, kept)``: the deferred messages whose time has come (or just ``woken``)."""
    if woken is None:
        return [d for d in deferred if d.due <= now], [d for d in deferred if d.due > now]
    return woken, [d for d in deferred if all(d is not w for w in woken)]


def woken_by(deferred: list[DeferredAction], events: list[Event]) -> list[DeferredAction]:
    """The deferred messages one of ``events`` makes due at once (``wake_on``)."""
    names = {e.name for e in events}
    return [d for d in deferred if d.wake_on is not None and d.wake_on in names]


def next_due(state: CustomerState, deferred: list[DeferredAction]) -> datetime | None:
    """The earliest journey timer or deferred message."""
    dues = [d for d in (machine.next_due(state),) if d is not None]
    dues += [d.due for d in deferred]
    return min(dues, default=None)
