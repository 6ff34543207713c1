"""The ``outbox``, read and acknowledged by its dispatcher (``ingest.dispatcher``): who
leads, what waits, what was delivered and what must be tried again.

Rows are put in by :mod:`store.events` and moved to the dead letters by
:mod:`store.dead_letters`; a row leaves the outbox only after Temporal accepted its signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

_LEADER_LOCK = 0x4A6F7579  # advisory lock: one dispatcher among the API replicas


@dataclass(frozen=True)
class Waiting:
    """One event waiting for delivery; ``n`` is its place in its customer's queue (1 is
    the oldest)."""

    event_id: int
    customer_id: str
    name: str  # only track events, which have a name, are queued
    event_time: datetime
    properties: dict[str, Any] | None
    n: int


async def try_lead(conn: AsyncConnection[Any]) -> bool:
    """Take the dispatcher's lock for the life of ``conn`` if nobody holds it."""
    cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (_LEADER_LOCK,))
    row = await cur.fetchone()
    return bool(row and row[0])


async def listen(conn: AsyncConnection[Any]) -> None:
    """Hear :func:`store.events.notify` on ``conn`` (``conn.notifies()``)."""
    await conn.execute("LISTEN journeys_outbox")


async def waiting(
    conn: AsyncConnection[Any], *, resting: list[str], customers: int, per_customer: int
) -> list[Waiting]:
    """The waiting events, in event order, of up to ``customers`` customers whose oldest
    waiting event is oldest (not those in ``resting``, nor survivors of a merge whose
    handover is not delivered yet), each customer's first
    ``per_customer`` of them."""
    cur = conn.cursor(row_factory=class_row(Waiting))
    await cur.execute(
        "WITH next AS ("
        "   SELECT customer_id FROM outbox WHERE NOT (customer_id = ANY(%s::text[]))"
        # a survivor's events wait for its merges' handovers (ingest._merges): applied
        # first, its own new enrolments would redo what the absorbed customer had done
        "   AND NOT EXISTS (SELECT FROM merges m WHERE m.delivered_at IS NULL"
        "                   AND m.survivor = outbox.customer_id)"
        "   GROUP BY customer_id ORDER BY min(event_id) LIMIT %s),"
        " waiting AS ("
        "   SELECT o.event_id, o.customer_id, row_number() OVER ("
        "     PARTITION BY o.customer_id ORDER BY o.event_id) AS n"
        "   FROM outbox o JOIN next USING (customer_id))"
        " SELECT w.event_id, w.customer_id, e.name, e.event_time, e.properties, w.n"
        " FROM waiting w JOIN events e ON e.id = w.event_id"
        " WHERE w.n <= %s ORDER BY w.event_id",
        (resting, customers, per_customer),
    )
    return await cur.fetchall()


async def delivered(conn: AsyncConnection[Any], event_ids: list[int]) -> None:
    """Forget the rows Temporal accepted."""
    if event_ids:
        await conn.execute("DELETE FROM outbox WHERE event_id = ANY(%s)", (event_ids,))


async def failed(conn: AsyncConnection[Any], errors: dict[int, str]) -> None:
    """Count one more failed attempt of each row in ``errors`` (event id -> why)."""
    if not errors:
        return
    ids = list(errors)
    await conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = w.error"
        " FROM unnest(%s::bigint[], %s::text[]) AS w(event_id, error)"
        " WHERE outbox.event_id = w.event_id",
        (ids, [errors[i] for i in ids]),
    )


async def depth(conn: AsyncConnection[Any]) -> int:
    """Events accepted and not delivered to their customers' workflows yet (the API
    refuses new ones past ``JOURNEYS_MAX_OUTBOX``)."""
    cur = await conn.execute("SELECT count(*) FROM outbox")
    row = await cur.fetchone()
    return int(row[0]) if row else 0
