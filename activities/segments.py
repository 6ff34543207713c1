"""The segment refresh's two side effects: the set-based refresh in PostgreSQL (metrics,
segments and the forecast) and the fan-out of ``segment_changed`` events, then of
``churn_risk_changed`` ones (a customer's churn risk crossed a band, ``store.forecasts``).

The fan-out is set-based and resumable: a batch of not-yet-notified changes becomes
internal events (message id ``segment_changed:REFRESH:CUSTOMER``, unique, so a batch
repeated after a crash stores nothing twice) queued in the outbox, and is marked notified,
in one transaction (``store.events.record_segment_changes``). The outbox dispatcher then
signals the customers' workflows with its bounded concurrency, one signal per customer."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from temporalio import activity

from engine.segments import Segments
from store import catalog as catalog_store
from store import events
from store import segments as segment_store
from workflows.segments import NotifyInput, RefreshOutcome, RefreshSegmentsInput

from ._faults import crash_point


class SegmentActivities:
    def __init__(self, pool: AsyncConnectionPool[Any], definitions: Segments) -> None:
        self.pool = pool
        self.definitions = definitions

    @activity.defn(name="refresh_segments")
    async def refresh_segments(self, data: RefreshSegmentsInput) -> RefreshOutcome:
        async with self.pool.connection() as conn, conn.transaction():
            done = await segment_store.finished(conn, data.request_key)
            if done is not None:  # a retry after the refresh committed
                return RefreshOutcome(
                    refresh_id=done.id,
                    as_of=done.as_of,
                    customers=done.customers,
                    changed=done.changed,
                )
            result = await segment_store.refresh(conn, self.definitions, as_of=data.as_of)
            await segment_store.set_request_key(conn, result.id, data.request_key)
        activity.logger.info(
            "segment refresh %s: %s customers, %s changed",
            result.id,
            result.customers,
            result.changed,
        )
        return RefreshOutcome(
            refresh_id=result.id,
            as_of=data.as_of,
            customers=result.customers,
            changed=result.changed,
        )

    @activity.defn(name="notify_segment_changes")
    async def notify_segment_changes(self, data: NotifyInput) -> int:
        # walk the pending segment changes, then the churn-band crossings, in key order; a
        # retry resumes after the last batch it heard of (and a batch it did not hear of is
        # found again, not repeated). Heartbeats: (notified, refresh, customer), with a
        # fourth element "churn" once the segment changes are done
        details = activity.info().heartbeat_details
        notified, cursor = (
            (int(details[0]), (int(details[1]), str(details[2])))
            if len(details) >= 3
            else (0, (0, ""))
        )
        churn_phase = len(details) == 4
        if not churn_phase:
            notified = await self._fan_out(data, notified, cursor, churn=False)
            cursor = (0, "")
        return await self._fan_out(data, notified, cursor, churn=True)

    async def _fan_out(
        self, data: NotifyInput, notified: int, cursor: tuple[int, str], *, churn: bool
    ) -> int:
        record = events.record_churn_changes if churn else events.record_segment_changes
        name = "churn_risk_changed" if churn else "segment_changed"
        phase = ("churn",) if churn else ()
        while True:
            async with self.pool.connection() as conn, conn.transaction():
                batch = await record(
                    conn, after=cursor, limit=data.batch_size, wanted=await _wanted(conn, name)
                )
                cursor = batch.last or cursor
            notified += batch.count
            activity.heartbeat(notified, *cursor, *phase)
            if batch.count < data.batch_size:
                return notified
            if not churn:
                crash_point("segment_fanout_batch")  # tests: a crash between batches


async def _wanted(conn: AsyncConnection[Any], name: str) -> bool:
    """Whether any journey listens to ``name``: if none does, the events are still
    recorded (reports and later journeys read them) but wake no workflow."""
    catalog = await catalog_store.load(conn)
    names, everything = catalog.interest()
    return everything or name in names
