"""The segment refresh's two side effects: the set-based refresh in PostgreSQL and the
fan-out of ``segment_changed`` events.

The fan-out is set-based and resumable: a batch of not-yet-notified changes becomes
internal events (message id ``segment_changed:REFRESH:CUSTOMER``, unique, so a batch
repeated after a crash stores nothing twice) queued in the outbox, and is marked notified,
in one transaction. The outbox dispatcher then signals the customers' workflows with its
bounded concurrency, one signal per customer."""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool
from temporalio import activity

from engine.segments import Segments
from ingest.internal import INTERNAL_SOURCE
from store import catalog as catalog_store
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
            cur = await conn.execute(
                "SELECT id, as_of, customers, changed FROM segment_refreshes"
                " WHERE request_key = %s AND finished_at IS NOT NULL",
                (data.request_key,),
            )
            done = await cur.fetchone()
            if done is not None:  # a retry after the refresh committed
                return RefreshOutcome(
                    refresh_id=done[0], as_of=done[1], customers=done[2], changed=done[3]
                )
            result = await segment_store.refresh(conn, self.definitions, as_of=data.as_of)
            await conn.execute(
                "UPDATE segment_refreshes SET request_key = %s WHERE id = %s",
                (data.request_key, result.id),
            )
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
        # walk the pending changes in key order; a retry resumes after the last batch
        # it heard of (and a batch it did not hear of is found again, not repeated)
        details = activity.info().heartbeat_details
        notified, cursor = (
            (int(details[0]), (int(details[1]), str(details[2])))
            if len(details) == 3
            else (0, (0, ""))
        )
        while True:
            async with self.pool.connection() as conn, conn.transaction():
                wanted = await _wanted(conn)
                cur = await conn.execute(
                    _BATCH,
                    {
                        "source": INTERNAL_SOURCE,
                        "wanted": wanted,
                        "limit": data.batch_size,
                        "refresh": cursor[0],
                        "customer": cursor[1],
                    },
                )
                row = await cur.fetchone()
                count = int(row[0]) if row else 0
                if count:
                    cursor = (int(row[1]), str(row[2]))
                    if wanted:
                        await conn.execute("NOTIFY journeys_outbox")
            notified += count
            activity.heartbeat(notified, *cursor)
            if count < data.batch_size:
                break
            crash_point("segment_fanout_batch")  # tests: a crash between batches
        return notified


async def _wanted(conn: Any) -> bool:
    """Whether any journey listens to segment_changed: if none does, the events are still
    recorded (reports and later journeys read them) but wake no workflow."""
    catalog = await catalog_store.load(conn)
    names, everything = catalog.interest()
    return everything or "segment_changed" in names


# One batch in one statement: pick pending changes (skipping rows another worker holds),
# store them as events, queue those a journey wants, mark the changes notified.
_BATCH = """
WITH batch AS (
    SELECT refresh_id, customer_id, previous_segment, segment, previous_tier, tier, r, f, m
      FROM segment_changes
     WHERE (refresh_id, customer_id) > (%(refresh)s, %(customer)s) AND notified_at IS NULL
     ORDER BY refresh_id, customer_id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
), stored AS (
    INSERT INTO events (source, message_id, type, customer_id, name, properties,
                        event_time, received_at)
    SELECT %(source)s, 'segment_changed:' || refresh_id || ':' || customer_id, 'track',
           customer_id, 'segment_changed',
           jsonb_build_object('segment', segment, 'previous_segment', previous_segment,
                              'tier', tier, 'previous_tier', previous_tier,
                              'r', r, 'f', f, 'm', m, 'refresh_id', refresh_id),
           now(), now()
      FROM batch
    ON CONFLICT (source, message_id) DO NOTHING
    RETURNING id, customer_id
), queued AS (
    INSERT INTO outbox (event_id, customer_id)
    SELECT id, customer_id FROM stored WHERE %(wanted)s
), marked AS (
    UPDATE segment_changes s SET notified_at = now()
      FROM batch b
     WHERE s.refresh_id = b.refresh_id AND s.customer_id = b.customer_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM marked), last.refresh_id, last.customer_id
  FROM (SELECT refresh_id, customer_id FROM batch
         ORDER BY refresh_id DESC, customer_id DESC LIMIT 1) AS last
"""
