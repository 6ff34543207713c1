"""The segment refresh: recompute every customer's RFM scores, segment and tier in
PostgreSQL, then tell each customer whose segment or tier changed, once.

Run by a Temporal Schedule (``rules/segments.yaml`` ``schedule:``, daily by default;
visible and pausable in the Temporal UI as ``journeys-segment-refresh``) and on demand by
``journeys segments refresh [--as-of DATE]``. Both steps are activities that survive a
crash: the refresh is keyed by this workflow run (a retried refresh finds its result), the
fan-out resumes from the changes not yet notified."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

SCHEDULE_ID = "journeys-segment-refresh"
REFRESH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=5)
)


class RefreshRequest(BaseModel):
    as_of: datetime | None = None  # None: now; a past date tiers the history as of then
    notify_batch: int = 1000  # segment_changed events recorded per transaction
    heartbeat_seconds: int = 60  # a fan-out silent this long (its worker died) is retried


class RefreshSegmentsInput(BaseModel):
    request_key: str
    as_of: datetime


class RefreshOutcome(BaseModel):
    refresh_id: int
    as_of: datetime
    customers: int
    changed: int
    notified: int = 0


class NotifyInput(BaseModel):
    batch_size: int = 1000


@workflow.defn(name="SegmentRefreshWorkflow")
class SegmentRefreshWorkflow:
    @workflow.run
    async def run(self, request: RefreshRequest) -> RefreshOutcome:
        info = workflow.info()
        as_of = request.as_of or workflow.now()
        outcome: RefreshOutcome = await workflow.execute_activity(
            "refresh_segments",
            RefreshSegmentsInput(request_key=f"{info.workflow_id}/{info.run_id}", as_of=as_of),
            result_type=RefreshOutcome,
            start_to_close_timeout=timedelta(minutes=15),
            retry_policy=REFRESH_RETRY,
            summary=f"compute RFM, segments and tiers as of {as_of:%Y-%m-%d %H:%M} UTC",
        )
        workflow.set_current_details(
            f"refresh {outcome.refresh_id}: {outcome.customers} customers, "
            f"{outcome.changed} changed segment or tier"
        )
        # every change not yet told, this refresh's and any a crashed run left behind
        notified: int = await workflow.execute_activity(
            "notify_segment_changes",
            NotifyInput(batch_size=request.notify_batch),
            result_type=int,
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(seconds=request.heartbeat_seconds),
            retry_policy=REFRESH_RETRY,
            summary="send segment_changed to customers whose segment or tier changed",
        )
        return outcome.model_copy(update={"notified": notified})
