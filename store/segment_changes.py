"""Who changed segment or tier in a refresh (``segment_changes``), their fan-out as
``segment_changed`` events, and the request key that makes a workflow's refresh run once
(``segment_refreshes.request_key``). The refresh itself is :mod:`store.segments`.

The fan-out is resumable: :func:`pending` locks a batch of changes not yet notified (in key
order, skipping rows another worker holds), the caller stores them as events
(:func:`store.events.append`, their message ids unique, so a batch repeated after a crash
stores nothing twice) and marks them :func:`notified`, all in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from .events import NewEvent


@dataclass(frozen=True)
class Finished:
    """A refresh that committed, found again by its request key."""

    id: int
    as_of: datetime
    customers: int
    changed: int


@dataclass(frozen=True)
class SegmentChange:
    """One customer whose segment or tier changed in a refresh."""

    refresh_id: int
    customer_id: str
    previous_segment: str | None
    segment: str
    previous_tier: str | None
    tier: str
    r: int
    f: int
    m: int

    def event(self, at: datetime) -> NewEvent:
        """The ``segment_changed`` event that tells the customer's journeys."""
        return NewEvent(
            message_id=f"segment_changed:{self.refresh_id}:{self.customer_id}",
            type="track",
            customer_id=self.customer_id,
            name="segment_changed",
            properties={
                "segment": self.segment,
                "previous_segment": self.previous_segment,
                "tier": self.tier,
                "previous_tier": self.previous_tier,
                "r": self.r,
                "f": self.f,
                "m": self.m,
                "refresh_id": self.refresh_id,
            },
            event_time=at,
        )


@dataclass(frozen=True)
class Batch:
    """Changes locked for the fan-out, in key order, and the transaction's time."""

    changes: list[SegmentChange]
    at: datetime


async def finished(conn: AsyncConnection[Any], request_key: str) -> Finished | None:
    """The refresh that ``request_key`` made, if it committed (a retried activity)."""
    cur = conn.cursor(row_factory=class_row(Finished))
    await cur.execute(
        "SELECT id, as_of, customers, changed FROM segment_refreshes"
        " WHERE request_key = %s AND finished_at IS NOT NULL",
        (request_key,),
    )
    return await cur.fetchone()


async def set_request_key(conn: AsyncConnection[Any], refresh_id: int, request_key: str) -> None:
    """Remember which request made a refresh, in the refresh's transaction."""
    await conn.execute(
        "UPDATE segment_refreshes SET request_key = %s WHERE id = %s", (request_key, refresh_id)
    )


async def pending(
    conn: AsyncConnection[Any], *, after: tuple[int, str], limit: int
) -> Batch | None:
    """Lock up to ``limit`` changes not notified yet whose key (refresh, customer) comes
    after ``after``, skipping rows another transaction holds; None when none is left."""
    cur = await conn.execute(
        "SELECT refresh_id, customer_id, previous_segment, segment, previous_tier, tier,"
        " r, f, m, now()"
        " FROM segment_changes"
        " WHERE (refresh_id, customer_id) > (%s, %s) AND notified_at IS NULL"
        " ORDER BY refresh_id, customer_id LIMIT %s"
        " FOR UPDATE SKIP LOCKED",
        (after[0], after[1], limit),
    )
    rows = await cur.fetchall()
    if not rows:
        return None
    return Batch([SegmentChange(*row[:9]) for row in rows], rows[0][9])


async def notified(conn: AsyncConnection[Any], changes: Sequence[SegmentChange]) -> int:
    """Mark ``changes`` notified (their events are stored); returns how many were."""
    if not changes:
        return 0
    cur = await conn.execute(
        "UPDATE segment_changes s SET notified_at = now()"
        " FROM unnest(%s::bigint[], %s::text[]) AS b(refresh_id, customer_id)"
        " WHERE s.refresh_id = b.refresh_id AND s.customer_id = b.customer_id",
        ([c.refresh_id for c in changes], [c.customer_id for c in changes]),
    )
    return cur.rowcount
