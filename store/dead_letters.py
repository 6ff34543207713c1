"""Dead letters (``dead_letters``): waiting events whose delivery failed for good, kept
with the reason.

The dispatcher ``bury``s an outbox row it can never deliver (moving it, in one transaction,
so nothing is lost); an admin lists them, ``retry``s one (back into the outbox, delivered
in event order with the customer's next round) or ``drop``s it (the event stays in the
history, ``events``, and is never delivered). Used by the API (``/v1/dead-letters``) and
the CLI (``journeys dead-letters``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from . import events


@dataclass(frozen=True)
class DeadLetter:
    """One event that could not be delivered, and why (no event data: it may be personal;
    read it with ``GET /v1/customers/{id}/events``)."""

    id: int
    event_id: int
    customer_id: str
    name: str | None  # the event's name
    bytes: int  # the size of the event's properties, as PostgreSQL prints them
    reason: str
    queued_at: datetime
    attempts: int
    last_error: str | None
    dead_at: datetime


async def bury(conn: AsyncConnection[Any], reasons: dict[int, str]) -> int:
    """Move the outbox rows of ``reasons`` (event id -> why) to dead letters; returns how
    many moved (a row another process already delivered or buried is skipped)."""
    if not reasons:
        return 0
    ids = list(reasons)
    cur = await conn.execute(
        """
        WITH why AS (SELECT * FROM unnest(%s::bigint[], %s::text[]) AS w(event_id, reason)),
             gone AS (DELETE FROM outbox o USING why WHERE o.event_id = why.event_id
                      RETURNING o.*, why.reason)
        INSERT INTO dead_letters (event_id, customer_id, reason, queued_at, attempts, last_error)
        SELECT event_id, customer_id, reason, created_at, attempts, last_error FROM gone
        ON CONFLICT (event_id) DO NOTHING
        RETURNING id
        """,
        (ids, [reasons[i] for i in ids]),
    )
    return len(await cur.fetchall())


async def listing(
    conn: AsyncConnection[Any],
    *,
    customer_id: str | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[DeadLetter]:
    """Dead letters, newest first (of one customer; with ids below ``before``)."""
    cur = conn.cursor(row_factory=class_row(DeadLetter))
    await cur.execute(
        "SELECT d.id, d.event_id, d.customer_id, e.name,"
        " octet_length(e.properties::text) AS bytes, d.reason, d.queued_at, d.attempts,"
        " d.last_error, d.dead_at"
        " FROM dead_letters d JOIN events e ON e.id = d.event_id"
        " WHERE (%(c)s::text IS NULL OR d.customer_id = %(c)s)"
        " AND (%(b)s::bigint IS NULL OR d.id < %(b)s)"
        " ORDER BY d.id DESC LIMIT %(n)s",
        {"c": customer_id, "b": before, "n": limit},
    )
    return await cur.fetchall()


async def retry(conn: AsyncConnection[Any], ids: list[int] | None) -> list[int]:
    """Put dead letters back into the outbox (``None``: all of them); returns the ids
    retried. If the delivery fails for good again, the event becomes a new dead letter."""
    async with conn.transaction():
        cur = await conn.execute(
            """
            WITH back AS (DELETE FROM dead_letters
                          WHERE %(all)s OR id = ANY(%(ids)s::bigint[])
                          RETURNING id, event_id, customer_id, queued_at),
                 queued AS (INSERT INTO outbox (event_id, customer_id, created_at)
                            SELECT event_id, customer_id, queued_at FROM back
                            ON CONFLICT (event_id) DO NOTHING)
            SELECT id FROM back ORDER BY id
            """,
            {"all": ids is None, "ids": ids or []},
        )
        done = [int(r[0]) for r in await cur.fetchall()]
        if done:
            await events.notify(conn)
    return done


async def drop(conn: AsyncConnection[Any], ids: list[int]) -> list[int]:
    """Forget dead letters for good (their events stay in the history); returns the ids
    dropped."""
    cur = await conn.execute(
        "DELETE FROM dead_letters WHERE id = ANY(%s::bigint[]) RETURNING id", (ids,)
    )
    return sorted(int(r[0]) for r in await cur.fetchall())


async def count(conn: AsyncConnection[Any]) -> int:
    """How many dead letters wait for an admin."""
    cur = await conn.execute("SELECT count(*) FROM dead_letters")
    row = await cur.fetchone()
    return int(row[0]) if row else 0
