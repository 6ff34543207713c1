"""The queue of customers waiting for an account manager, per pool.

An ``assign_manager`` action that finds nobody with room (the pool has no manager yet, as
in the README's order of things, or all are at capacity) queues the customer here, under
the pool's advisory lock. Adding a manager assigns the queue, first come first served, in
one transaction under the same lock: the assignment, the introduction task (the action's
key + ``/intro``, as a direct assignment makes it) and the row's ``manager_id``, so each
customer is assigned exactly once however many adds, workers and actions race. The note to
the manager (key + ``/notify``) is sent afterwards by the worker (:func:`pending_notes`,
then :func:`noted`), so an API or CLI call never waits for SMTP and a crash in between only
delays the note.

A row moves through::

    queued (manager_id NULL) -> assigned (manager_id set, note pending) -> deleted
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from . import managers, tasks

INTRO_DUE = timedelta(days=2)


@dataclass(frozen=True)
class Waiting:
    """A customer waiting in a pool's queue, with what the action would have told them."""

    customer_id: str
    pool: str
    idempotency_key: str
    journey: str
    state: str
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Assigned:
    """A customer assigned from the queue, whose manager still needs the note."""

    waiting: Waiting
    manager: managers.Manager


async def create_intro_task(
    conn: AsyncConnection[Any],
    *,
    idempotency_key: str,
    customer_id: str,
    journey: str,
    pool: str,
    now: datetime,
) -> tasks.Task:
    """The task for the customer's new manager to introduce themselves, once per action."""
    return await tasks.create(
        conn,
        idempotency_key=idempotency_key + "/intro",
        customer_id=customer_id,
        journey=journey,
        title=f"Introduce yourself to customer {customer_id}",
        note=f"You are now their {pool} account manager.",
        assignee="manager",
        due_at=now + INTRO_DUE,
    )


async def enqueue(conn: AsyncConnection[Any], waiting: Waiting) -> None:
    """Queue a customer (once per pool: a second action while waiting keeps the first).
    Call it in the transaction that holds the pool's lock and found nobody with room."""
    await conn.execute(
        "INSERT INTO manager_waitlist (customer_id, pool, idempotency_key, journey, state,"
        " context) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (customer_id, pool) DO NOTHING",
        (
            waiting.customer_id,
            waiting.pool,
            waiting.idempotency_key,
            waiting.journey,
            waiting.state,
            Jsonb(waiting.context),
        ),
    )


async def leave(conn: AsyncConnection[Any], customer_id: str, pool: str) -> None:
    """The customer got a manager directly (a retried or later action): no longer waiting."""
    await conn.execute(
        "DELETE FROM manager_waitlist WHERE customer_id = %s AND pool = %s AND manager_id IS NULL",
        (customer_id, pool),
    )


_COLUMNS = "customer_id, pool, idempotency_key, journey, state, context"


def _waiting(row: tuple[Any, ...]) -> Waiting:
    return Waiting(str(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]), row[5])


async def queued(conn: AsyncConnection[Any], pool: str | None = None) -> list[Waiting]:
    """Customers still waiting (in ``pool``), first come first."""
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM manager_waitlist WHERE manager_id IS NULL"
        " AND (%s::text IS NULL OR pool = %s) ORDER BY pool, queued_at, customer_id",
        (pool, pool),
    )
    return [_waiting(r) for r in await cur.fetchall()]


async def assign_waiting(conn: AsyncConnection[Any], pool: str, *, now: datetime) -> list[Assigned]:
    """Give the pool's waiting customers a manager, oldest first, while anyone has room;
    return the new assignments (their notes are pending). Safe to run concurrently and
    again: the pool's lock serialises it with every other change to the pool."""
    assigned: list[Assigned] = []
    async with conn.transaction():
        await managers.lock_pool(conn, pool)
        for waiting in await queued(conn, pool):
            got = await managers.assign(conn, customer_id=waiting.customer_id, pool=pool)
            if got is None:
                break  # everybody is full again: the rest keep waiting
            manager, new = got
            if not new:
                # another action gave them a manager (with its own note) meanwhile
                await conn.execute(
                    "DELETE FROM manager_waitlist WHERE customer_id = %s AND pool = %s",
                    (waiting.customer_id, pool),
                )
                continue
            await create_intro_task(
                conn,
                idempotency_key=waiting.idempotency_key,
                customer_id=waiting.customer_id,
                journey=waiting.journey,
                pool=pool,
                now=now,
            )
            await conn.execute(
                "UPDATE manager_waitlist SET manager_id = %s, assigned_at = %s"
                " WHERE customer_id = %s AND pool = %s",
                (manager.id, now, waiting.customer_id, pool),
            )
            # the action's audit row said it waited (or failed for want of a pool)
            await conn.execute(
                "UPDATE action_log SET status = 'done' WHERE idempotency_key = %s",
                (waiting.idempotency_key,),
            )
            assigned.append(Assigned(waiting, manager))
    return assigned


async def pools_with_room(conn: AsyncConnection[Any]) -> list[str]:
    """Pools where someone waits and an active manager has room."""
    cur = await conn.execute(
        "SELECT DISTINCT w.pool FROM manager_waitlist w WHERE w.manager_id IS NULL"
        " AND EXISTS (SELECT 1 FROM managers m WHERE m.pool = w.pool AND m.active AND"
        " m.capacity > (SELECT count(*) FROM manager_assignments a WHERE a.manager_id = m.id))"
        " ORDER BY w.pool"
    )
    return [str(r[0]) for r in await cur.fetchall()]


async def pending_notes(conn: AsyncConnection[Any], *, limit: int = 100) -> list[Assigned]:
    """Customers assigned from a queue whose manager has not had the note yet."""
    cur = await conn.execute(
        f"SELECT {_COLUMNS}, manager_id FROM manager_waitlist WHERE manager_id IS NOT NULL"
        " ORDER BY assigned_at, customer_id LIMIT %s",
        (limit,),
    )
    out = []
    for row in await cur.fetchall():
        manager = await managers.get(conn, int(row[6]))
        if manager is not None:
            out.append(Assigned(_waiting(row), manager))
    return out


async def noted(conn: AsyncConnection[Any], assigned: Assigned) -> None:
    """The note for this assignment was sent (or will never be): the row is done."""
    await conn.execute(
        "DELETE FROM manager_waitlist WHERE customer_id = %s AND pool = %s AND manager_id = %s",
        (assigned.waiting.customer_id, assigned.waiting.pool, assigned.manager.id),
    )
