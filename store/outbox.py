"""The ``outbox``, read and acknowledged by its dispatcher (``ingest.dispatcher``): who
leads, what waits, what was delivered and what must be tried again.

Rows are put in by :mod:`store.events` and moved to the dead letters by
:mod:`store.dead_letters`; a row leaves the outbox only after Temporal accepted its signal.

Several dispatchers share the work by partition (``outbox.part``, a hash of the customer
id, migration 0021): each holds a member lock while it runs (:func:`join`, listed by
:func:`members`) and the advisory locks of the partitions it delivers (:func:`hold`); all
of them are session locks, released by PostgreSQL when the dispatcher's connection ends,
so a dispatcher that dies hands its partitions over without anyone cleaning up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

_LEADER_LOCK = 0x4A6F7579  # advisory lock: one dispatcher among the API replicas (before 0021)
# two-key advisory locks (pg_locks.objsubid = 2): (class, member slot), (class, partition)
_MEMBER_CLASS = 0x4A6F7580
_PARTITION_CLASS = 0x4A6F7581
PARTITIONS = 64  # the hash in migration 0021 keeps 6 bits
MAX_MEMBERS = 1024


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


async def join(conn: AsyncConnection[Any]) -> int | None:
    """Become one of the dispatchers for the life of ``conn``: its member slot (the
    lowest free), or None while a dispatcher of the code before partitions (which takes
    :data:`_LEADER_LOCK` alone and delivers everything) runs. Every partitioned dispatcher
    holds that lock shared, so the older one cannot start beside them either."""
    cur = await conn.execute("SELECT pg_try_advisory_lock_shared(%s::bigint)", (_LEADER_LOCK,))
    row = await cur.fetchone()
    if not (row and row[0]):
        return None
    while True:
        taken = set(await members(conn))
        free = next((s for s in range(MAX_MEMBERS) if s not in taken), None)
        if free is None:
            raise RuntimeError(f"more than {MAX_MEMBERS} dispatchers run against this database")
        cur = await conn.execute(
            "SELECT pg_try_advisory_lock(%s::int, %s::int)", (_MEMBER_CLASS, free)
        )
        row = await cur.fetchone()
        if row and row[0]:
            return free


async def members(conn: AsyncConnection[Any]) -> list[int]:
    """The member slots of the dispatchers running now (their connections are open)."""
    return await _granted(conn, _MEMBER_CLASS)


async def partitions_held(conn: AsyncConnection[Any]) -> int:
    """How many partitions some dispatcher holds now (all of them once the deal settled)."""
    return len(await _granted(conn, _PARTITION_CLASS))


async def _granted(conn: AsyncConnection[Any], lock_class: int) -> list[int]:
    """The second keys of the granted two-key advisory locks of ``lock_class`` in this
    database, sorted."""
    cur = await conn.execute(
        "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid = %s::bigint::oid AND objsubid = 2"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " ORDER BY 1",
        (lock_class,),
    )
    return [int(r[0]) for r in await cur.fetchall()]


async def hold(conn: AsyncConnection[Any], held: set[int], wanted: set[int]) -> set[int]:
    """Release the partitions of ``held`` not in ``wanted`` and take those of ``wanted``
    nobody else holds; return what ``conn`` holds now. A partition another dispatcher
    still holds (it finishes its round first) is taken at a later call."""
    drop = sorted(held - wanted)
    if drop:
        await conn.execute(
            "SELECT pg_advisory_unlock(%s::int, p) FROM unnest(%s::int[]) AS p",
            (_PARTITION_CLASS, drop),
        )
    take = sorted(wanted - held)
    got: set[int] = set()
    if take:
        cur = await conn.execute(
            "SELECT p FROM unnest(%s::int[]) AS p WHERE pg_try_advisory_lock(%s::int, p)",
            (take, _PARTITION_CLASS),
        )
        got = {int(r[0]) for r in await cur.fetchall()}
    return (held & wanted) | got


async def listen(conn: AsyncConnection[Any]) -> None:
    """Hear :func:`store.events.notify` on ``conn`` (:func:`notified`)."""
    await conn.execute("LISTEN journeys_outbox")


async def notified(conn: AsyncConnection[Any], seconds: float) -> None:
    """Wait for a notification on ``conn``, up to ``seconds``. The generator holds the
    connection's lock while it is open, so it is closed before ``conn`` runs a query (the
    partition locks are taken on it); what arrives meanwhile waits in psycopg's backlog."""
    notifies = conn.notifies(timeout=seconds, stop_after=1)
    try:
        async for _ in notifies:
            break
    finally:
        await notifies.aclose()


async def waiting(
    conn: AsyncConnection[Any],
    *,
    resting: list[str],
    customers: int,
    per_customer: int,
    partitions: list[int] | None = None,
) -> list[Waiting]:
    """The waiting events, in event order, of up to ``customers`` customers whose oldest
    waiting event is oldest (not those in ``resting``, nor survivors of a merge whose
    handover is not delivered yet; only those of ``partitions`` if given), each customer's
    first ``per_customer`` of them."""
    cur = conn.cursor(row_factory=class_row(Waiting))
    parts = "" if partitions is None else " AND part = ANY(%(parts)s::smallint[])"
    await cur.execute(
        "WITH next AS ("
        "   SELECT customer_id FROM outbox WHERE NOT (customer_id = ANY(%(resting)s::text[]))"
        + parts
        # a survivor's events wait for its merges' handovers (ingest._merges): applied
        # first, its own new enrolments would redo what the absorbed customer had done
        + "   AND NOT EXISTS (SELECT FROM merges m WHERE m.delivered_at IS NULL"
        "                   AND m.survivor = outbox.customer_id)"
        "   GROUP BY customer_id ORDER BY min(event_id) LIMIT %(customers)s),"
        " waiting AS ("
        "   SELECT o.event_id, o.customer_id, row_number() OVER ("
        "     PARTITION BY o.customer_id ORDER BY o.event_id) AS n"
        "   FROM outbox o JOIN next USING (customer_id))"
        " SELECT w.event_id, w.customer_id, e.name, e.event_time, e.properties, w.n"
        " FROM waiting w JOIN events e ON e.id = w.event_id"
        " WHERE w.n <= %(per_customer)s ORDER BY w.event_id",
        {
            "resting": resting,
            "customers": customers,
            "per_customer": per_customer,
            "parts": partitions,
        },
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
