"""The id graph: one customer per person, however many ids reached us (docs/identity.md).

``customer_ids`` maps every known id to its customer's canonical id in one hop; an id
without a row is its own customer. Ingestion resolves the ids of a batch (:func:`resolve`)
inside the transaction that stores it, so events, profiles and the outbox are always stored
under the canonical id, and a merge (:func:`merge`) moves what was stored under the
absorbed id before it.

Concurrency. Merges are serialised by one transaction-scoped advisory lock (they are rare:
most identify calls link ids that are already one customer and change nothing). A merge then
locks every id row of both customers ``FOR UPDATE``, in id order; ingestion locks the rows
of its batch's ids ``FOR SHARE``, in id order. So a merge waits for batches already storing
under either id, and a batch that comes after waits for the merge and then reads its result
(READ COMMITTED re-reads a row that changed while it waited). A transaction that may merge
takes the advisory lock first (:func:`lock_merges`), before any row lock, so the two kinds
never wait for each other in a circle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from . import events

_MERGE_LOCK = 0x4A6F7549  # advisory lock: one merge at a time


@dataclass(frozen=True)
class Merge:
    """One row of the merge audit log (and of its delivery queue)."""

    id: int
    absorbed: str
    survivor: str
    via: str
    reason: str
    actor: str
    at: datetime
    delivered_at: datetime | None = None
    attempts: int = 0
    last_error: str | None = None
    refused: str | None = None  # not merged, and why (the ids stay two customers)


_MERGE_COLUMNS = (
    "id, absorbed, survivor, via, reason, actor, at, delivered_at, attempts, last_error, refused"
)
REFUSED_KNOWN = (
    "both are known customers (each has a userId); a write key does not merge two people: "
    "merge them with 'journeys customers merge', or allow it in rules/identity.yaml"
)


async def lock_merges(conn: AsyncConnection[Any]) -> None:
    """Take the merge lock for the rest of the caller's transaction. Call it before
    :func:`resolve` in a transaction that may merge."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MERGE_LOCK,))


async def resolve(
    conn: AsyncConnection[Any], ids: Sequence[str], *, user_ids: Sequence[str] = ()
) -> dict[str, str]:
    """Each of ``ids`` -> its canonical id, in the caller's transaction. Ids never seen
    become their own customer; ``user_ids`` (among ``ids``) were sent as a ``userId`` and
    are marked so (a known person, see :func:`merge`). The rows stay locked ``FOR SHARE``
    until the transaction ends, so no merge of these customers commits while the caller
    stores under them."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    users = set(user_ids)
    # Row locks in id order only, and FOR SHARE only (batches storing under one customer
    # go on side by side): the marks are written with the rows that are new, and only the
    # rare id first sent as a userId after being seen otherwise is updated (an upsert
    # would lock every user id's row exclusively, out of id order, on every request)
    found = await _share(conn, wanted)
    missing = [i for i in wanted if i not in found]
    if missing:
        await conn.execute(
            "INSERT INTO customer_ids (id, canonical, user_id)"
            " SELECT i, i, i = ANY(%s::text[]) FROM unnest(%s::text[]) i"
            " ORDER BY i ON CONFLICT (id) DO NOTHING",
            (sorted(users & set(missing)), missing),
        )
        # ours now, or a concurrent batch's that committed first: read (and lock) them
        found.update(await _share(conn, missing))
    unmarked = sorted(i for i in users if i in found and not found[i][1])
    if unmarked:
        await conn.execute(
            "UPDATE customer_ids SET user_id = true WHERE id = ANY(%s::text[]) AND NOT user_id",
            (unmarked,),
        )
    return {i: canonical for i, (canonical, _) in found.items()}


async def _share(conn: AsyncConnection[Any], ids: list[str]) -> dict[str, tuple[str, bool]]:
    cur = await conn.execute(
        "SELECT id, canonical, user_id FROM customer_ids WHERE id = ANY(%s::text[])"
        " ORDER BY id FOR SHARE",
        (ids,),
    )
    return {str(r[0]): (str(r[1]), bool(r[2])) for r in await cur.fetchall()}


async def canonical(conn: AsyncConnection[Any], customer_id: str) -> str:
    """The canonical id of ``customer_id`` now (itself when it was never merged)."""
    cur = await conn.execute("SELECT canonical FROM customer_ids WHERE id = %s", (customer_id,))
    row = await cur.fetchone()
    return str(row[0]) if row else customer_id


async def canonicals(conn: AsyncConnection[Any], ids: Sequence[str]) -> dict[str, str]:
    """:func:`canonical` of several ids at once (no locks: for readers)."""
    cur = await conn.execute(
        "SELECT i, coalesce(c.canonical, i) FROM unnest(%s::text[]) i"
        " LEFT JOIN customer_ids c ON c.id = i",
        (list(ids),),
    )
    return {str(r[0]): str(r[1]) for r in await cur.fetchall()}


async def known(conn: AsyncConnection[Any], ids: Sequence[str]) -> set[str]:
    """The ones of ``ids`` Journeys has seen (an admin's merge of an id never seen is
    almost certainly a typo): in the id graph, or with a profile or an event stored under
    it (ids seen before the id graph existed have no row until they are seen again)."""
    cur = await conn.execute(
        "SELECT i FROM unnest(%s::text[]) i"
        " WHERE EXISTS (SELECT 1 FROM customer_ids c WHERE c.id = i)"
        " OR EXISTS (SELECT 1 FROM customers p WHERE p.customer_id = i)"
        " OR EXISTS (SELECT 1 FROM events e WHERE e.customer_id = i)",
        (list(ids),),
    )
    return {str(r[0]) for r in await cur.fetchall()}


async def ids_of(conn: AsyncConnection[Any], customer_id: str) -> list[str]:
    """Every id of ``customer_id``'s customer (the canonical one included), sorted."""
    root = await canonical(conn, customer_id)
    cur = await conn.execute(
        "SELECT id FROM customer_ids WHERE canonical = %s UNION SELECT %s ORDER BY 1",
        (root, root),
    )
    return [str(r[0]) for r in await cur.fetchall()]


async def merge(
    conn: AsyncConnection[Any],
    absorbed: str,
    survivor: str,
    *,
    via: str,
    reason: str = "",
    actor: str,
    refuse_known: bool = False,
) -> Merge | None:
    """Make ``absorbed``'s customer part of ``survivor``'s, in the caller's transaction
    (which must commit for it to count). Both ids are resolved first: merging ``a`` into
    ``b`` when ``b`` was merged into ``c`` merges ``a``'s customer into ``c``. Returns the
    audit row, or None when both ids already are one customer (merging is idempotent).

    What was stored under the absorbed customer moves to the survivor: events (each keeps
    the id it was sent under in ``sent_as``), waiting outbox rows, the profile (the
    survivor's traits win), consent (an opt-out of either stays), tags, the account
    manager of each pool and experiment arms (the survivor's win where both have one),
    conversions, messages, offers, surveys and tasks. The absorbed customer's metrics are
    dropped: the next refresh counts the person once. Workflows learn of it from the
    ``merges`` queue (``ingest.dispatcher``).

    With ``refuse_known`` (a write key's identify or alias, unless rules/identity.yaml
    allows it) two customers that both have an id sent as a ``userId`` are two known people
    and stay apart: a shared computer's anonymous id, or a forged call, must not join them.
    The attempt is recorded (``refused``) and returned; nothing else changes."""
    await lock_merges(conn)
    await conn.execute(
        "INSERT INTO customer_ids (id, canonical) SELECT i, i FROM unnest(%s::text[]) i"
        " ORDER BY i ON CONFLICT (id) DO NOTHING",
        (sorted({absorbed, survivor}),),
    )
    roots = await canonicals(conn, [absorbed, survivor])
    gone, kept = roots[absorbed], roots[survivor]
    if gone == kept:
        return None
    refused = REFUSED_KNOWN if refuse_known and await _both_known(conn, gone, kept) else None
    cur = conn.cursor(row_factory=class_row(Merge))
    if refused is not None:  # on record once per pair: a shared device asks again and again
        await cur.execute(
            f"SELECT {_MERGE_COLUMNS} FROM merges WHERE absorbed = %s AND survivor = %s"
            " AND refused IS NOT NULL ORDER BY id LIMIT 1",
            (gone, kept),
        )
        known = await cur.fetchone()
        if known is not None:
            return known
    else:  # wait for batches storing under either customer; later ones wait for this merge
        await conn.execute(
            "SELECT id FROM customer_ids WHERE canonical = ANY(%s::text[]) ORDER BY id FOR UPDATE",
            ([gone, kept],),
        )
    await cur.execute(
        "INSERT INTO merges (absorbed, survivor, via, reason, actor, refused, delivered_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END)"
        f" RETURNING {_MERGE_COLUMNS}",
        (gone, kept, via, reason, actor, refused, refused is not None),
    )
    row = await cur.fetchone()
    assert row is not None
    if refused is not None:
        return row
    await conn.execute(
        "UPDATE customer_ids SET canonical = %s, linked_at = now(), merge_id = %s"
        " WHERE canonical = %s",
        (kept, row.id, gone),
    )
    await _move(conn, gone, kept)
    await events.move_customer(conn, gone, kept)  # events and outbox; wakes the dispatcher
    return row


async def _both_known(conn: AsyncConnection[Any], a: str, b: str) -> bool:
    cur = await conn.execute(
        "SELECT count(DISTINCT canonical) FROM customer_ids"
        " WHERE canonical = ANY(%s::text[]) AND user_id",
        ([a, b],),
    )
    row = await cur.fetchone()
    return bool(row and row[0] == 2)


# (statement, what it does) run in order with (absorbed, survivor) bound as %(a)s, %(s)s
_MOVES: tuple[str, ...] = (
    # the profile: the survivor's traits win; first seen is the earliest of the two
    "INSERT INTO customers (customer_id, traits, anonymous_id, first_seen)"
    " SELECT %(s)s, traits, anonymous_id, first_seen FROM customers WHERE customer_id = %(a)s"
    " ON CONFLICT (customer_id) DO UPDATE SET traits = EXCLUDED.traits || customers.traits,"
    " anonymous_id = coalesce(customers.anonymous_id, EXCLUDED.anonymous_id),"
    " first_seen = least(customers.first_seen, EXCLUDED.first_seen), updated_at = now()",
    "DELETE FROM customers WHERE customer_id = %(a)s",
    # consent: an opt-out of either stays
    "INSERT INTO consent (customer_id, channel, opted_out, source, updated_at)"
    " SELECT %(s)s, channel, opted_out, source, updated_at FROM consent WHERE customer_id = %(a)s"
    " ON CONFLICT (customer_id, channel) DO UPDATE"
    " SET opted_out = consent.opted_out OR EXCLUDED.opted_out,"
    " source = CASE WHEN EXCLUDED.opted_out AND NOT consent.opted_out THEN EXCLUDED.source"
    " ELSE consent.source END, updated_at = now()",
    "DELETE FROM consent WHERE customer_id = %(a)s",
    "INSERT INTO customer_tags (customer_id, tag, tagged_at, journey, idempotency_key)"
    " SELECT %(s)s, tag, tagged_at, journey, idempotency_key FROM customer_tags"
    " WHERE customer_id = %(a)s ON CONFLICT DO NOTHING",
    "DELETE FROM customer_tags WHERE customer_id = %(a)s",
    "INSERT INTO manager_assignments (customer_id, pool, manager_id, assigned_at)"
    " SELECT %(s)s, pool, manager_id, assigned_at FROM manager_assignments"
    " WHERE customer_id = %(a)s ON CONFLICT DO NOTHING",
    "DELETE FROM manager_assignments WHERE customer_id = %(a)s",
    "INSERT INTO manager_waitlist (customer_id, pool, idempotency_key, journey, state, context,"
    " queued_at, manager_id, assigned_at)"
    " SELECT %(s)s, pool, idempotency_key, journey, state, context, queued_at, manager_id,"
    " assigned_at FROM manager_waitlist w WHERE customer_id = %(a)s"
    " AND NOT EXISTS (SELECT 1 FROM manager_assignments m"
    "                 WHERE m.customer_id = %(s)s AND m.pool = w.pool)"
    " ON CONFLICT DO NOTHING",
    "DELETE FROM manager_waitlist WHERE customer_id = %(a)s",
    "INSERT INTO experiment_assignments (experiment, customer_id, arm, journey, version,"
    " enrollment, assigned_at, idempotency_key)"
    " SELECT experiment, %(s)s, arm, journey, version, enrollment, assigned_at, idempotency_key"
    " FROM experiment_assignments WHERE customer_id = %(a)s ON CONFLICT DO NOTHING",
    "DELETE FROM experiment_assignments WHERE customer_id = %(a)s",
    # a conversion of a run the survivor also had stays the absorbed one's (its run)
    "UPDATE conversions c SET customer_id = %(s)s WHERE customer_id = %(a)s"
    " AND NOT EXISTS (SELECT 1 FROM conversions x WHERE x.customer_id = %(s)s"
    "                 AND x.journey = c.journey AND x.enrollment = c.enrollment)",
    "UPDATE messages SET customer_id = %(s)s WHERE customer_id = %(a)s",
    "UPDATE offers SET customer_id = %(s)s WHERE customer_id = %(a)s",
    "UPDATE surveys SET customer_id = %(s)s WHERE customer_id = %(a)s",
    "UPDATE tasks SET customer_id = %(s)s WHERE customer_id = %(a)s",
    # the next refresh tiers the person once, with both ids' orders
    "DELETE FROM customer_metrics WHERE customer_id = %(a)s",
)


async def settle(conn: AsyncConnection[Any], merge: Merge) -> None:
    """Move again what the absorbed customer's workflow stored under its old id between the
    merge and its end (an action it was carrying out then): the dispatcher calls this once
    that workflow has completed, so nothing stays behind under the absorbed id."""
    await lock_merges(conn)
    await _move(conn, merge.absorbed, merge.survivor)
    await events.move_customer(conn, merge.absorbed, merge.survivor)


async def _move(conn: AsyncConnection[Any], absorbed: str, survivor: str) -> None:
    for statement in _MOVES:
        await conn.execute(statement, {"a": absorbed, "s": survivor})


async def merges_of(conn: AsyncConnection[Any], customer_id: str, limit: int = 100) -> list[Merge]:
    """The merges that made ``customer_id``'s customer, newest first: every merge whose
    survivor or absorbed customer is now one of its ids."""
    ids = await ids_of(conn, customer_id)
    cur = conn.cursor(row_factory=class_row(Merge))
    await cur.execute(
        f"SELECT {_MERGE_COLUMNS} FROM merges"
        " WHERE absorbed = ANY(%s::text[]) OR survivor = ANY(%s::text[])"
        " ORDER BY id DESC LIMIT %s",
        (ids, ids, limit),
    )
    return await cur.fetchall()


async def recent_merges(conn: AsyncConnection[Any], limit: int = 100) -> list[Merge]:
    """The audit log, newest first."""
    cur = conn.cursor(row_factory=class_row(Merge))
    await cur.execute(f"SELECT {_MERGE_COLUMNS} FROM merges ORDER BY id DESC LIMIT %s", (limit,))
    return await cur.fetchall()


async def pending_merges(conn: AsyncConnection[Any], limit: int = 100) -> list[Merge]:
    """Merges the workflows were not told of yet, oldest first."""
    cur = conn.cursor(row_factory=class_row(Merge))
    await cur.execute(
        f"SELECT {_MERGE_COLUMNS} FROM merges WHERE delivered_at IS NULL ORDER BY id LIMIT %s",
        (limit,),
    )
    return await cur.fetchall()


async def merge_delivered(conn: AsyncConnection[Any], merge_id: int) -> None:
    await conn.execute(
        "UPDATE merges SET delivered_at = now(), last_error = NULL WHERE id = %s", (merge_id,)
    )


async def merge_failed(conn: AsyncConnection[Any], merge_id: int, error: str) -> None:
    await conn.execute(
        "UPDATE merges SET attempts = attempts + 1, last_error = %s WHERE id = %s",
        (error[:500], merge_id),
    )


async def lock_customers(conn: AsyncConnection[Any], canonical_ids: Sequence[str]) -> None:
    """Lock every id row of these customers ``FOR UPDATE``, in id order, in one statement:
    a batch that will merge several of them locks them all at once, before its first merge,
    so it never holds some while waiting for others (as one merge after another would)."""
    await conn.execute(
        "SELECT id FROM customer_ids WHERE canonical = ANY(%s::text[]) ORDER BY id FOR UPDATE",
        (sorted(set(canonical_ids)),),
    )
