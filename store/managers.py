"""Account managers in pools (vip, sales, ...): fair, capacity-bound assignment of
customers, kept per customer, and reassignment when a manager leaves.

Fairness under concurrency: every change to a pool's assignments takes the pool's
transaction-scoped advisory lock first, so "count the loads, pick the least loaded,
insert" is one step even when many customers become VIP at the same moment.

Errors::

    ManagerError            anything a manager call refuses
    ├── UnknownPool         nobody was ever added to the pool (configuration)
    ├── UnknownManager      no manager with that id
    └── DuplicateManager    an active manager of the pool already has that email
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from engine.errors import RefusedError


class ManagerError(RefusedError):
    """Something a manager call refuses; the message says what to do."""

    status = 422  # e.g. a name of blanks only
    code = "bad_manager"


class UnknownPool(ManagerError):
    status = 404
    code = "unknown_pool"

    def __init__(self, pool: str) -> None:
        super().__init__(
            f"no account manager was ever added to pool '{pool}'; add one with "
            f"'journeys managers add --pool {pool} --name NAME --email EMAIL --capacity N'"
        )
        self.pool = pool


class UnknownManager(ManagerError):
    status = 404
    code = "unknown_manager"

    def __init__(self, manager_id: int) -> None:
        super().__init__(f"no manager with id {manager_id} (see 'journeys managers list')")
        self.manager_id = manager_id


class DuplicateManager(ManagerError):
    status = 409
    code = "duplicate_manager"


@dataclass(frozen=True)
class Manager:
    id: int
    pool: str
    name: str
    email: str
    capacity: int
    active: bool
    load: int  # customers assigned to them now


_SELECT = (
    "SELECT m.id, m.pool, m.name, m.email, m.capacity, m.active,"
    " (SELECT count(*) FROM manager_assignments a WHERE a.manager_id = m.id)::int AS load"
    " FROM managers m"
)


async def lock_pool(conn: AsyncConnection[Any], pool: str) -> None:
    """Take the pool's advisory lock until the end of the transaction (see the module)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('pool:' || %s))", (pool,))


async def _managers(conn: AsyncConnection[Any], where: str, args: tuple[Any, ...]) -> list[Manager]:
    cur = conn.cursor(row_factory=class_row(Manager))
    await cur.execute(f"{_SELECT} WHERE {where} ORDER BY m.pool, m.id", args)
    return await cur.fetchall()


async def get(conn: AsyncConnection[Any], manager_id: int) -> Manager | None:
    """The manager with this id, or None."""
    found = await _managers(conn, "m.id = %s", (manager_id,))
    return found[0] if found else None


async def add(
    conn: AsyncConnection[Any], *, pool: str, name: str, email: str, capacity: int
) -> Manager:
    """Add a manager to a pool (creating the pool). Adding a deactivated manager's email
    again brings them back with the new name and capacity."""
    if capacity <= 0:
        raise ManagerError(f"capacity must be at least 1, got {capacity}")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", pool):
        raise ManagerError(
            f"pool '{pool}' is not a pool name: lower-case letters, digits and _, as journeys "
            "write it in assign_manager: {pool: NAME}"
        )
    if not name.strip() or "@" not in email:
        raise ManagerError("give the manager's name and email address")
    cur = await conn.execute(
        "INSERT INTO managers (pool, name, email, capacity) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (pool, email) DO UPDATE SET name = EXCLUDED.name,"
        " capacity = EXCLUDED.capacity, active = true WHERE NOT managers.active RETURNING id",
        (pool, name.strip(), email.strip(), capacity),
    )
    row = await cur.fetchone()
    if row is None:
        raise DuplicateManager(f"{email} is already an active manager of pool '{pool}'")
    manager = await get(conn, int(row[0]))
    assert manager is not None
    return manager


async def list_managers(conn: AsyncConnection[Any], pool: str | None = None) -> list[Manager]:
    """Every manager (of ``pool``), with their current load, by pool and id."""
    return await _managers(conn, "(%s::text IS NULL OR m.pool = %s)", (pool, pool))


async def _pool_exists(conn: AsyncConnection[Any], pool: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM managers WHERE pool = %s LIMIT 1", (pool,))
    return await cur.fetchone() is not None


def _least_loaded(candidates: list[Manager]) -> Manager | None:
    free = [m for m in candidates if m.active and m.load < m.capacity]
    return min(free, key=lambda m: (m.load, m.id)) if free else None


async def assign(
    conn: AsyncConnection[Any], *, customer_id: str, pool: str
) -> tuple[Manager, bool] | None:
    """The customer's manager in ``pool``: their current one if still active (False), else
    the least-loaded active manager with room, ties by id (True). None when every active
    manager of the pool is at capacity. Raises UnknownPool."""
    async with conn.transaction():
        await lock_pool(conn, pool)
        cur = await conn.execute(
            "SELECT manager_id FROM manager_assignments WHERE customer_id = %s AND pool = %s",
            (customer_id, pool),
        )
        current = await cur.fetchone()
        if current is not None:
            manager = await get(conn, int(current[0]))
            if manager is not None and manager.active:
                return manager, False
        pick = _least_loaded(await _managers(conn, "m.pool = %s AND m.active", (pool,)))
        if pick is None:
            if not await _pool_exists(conn, pool):
                raise UnknownPool(pool)
            return None
        await conn.execute(
            "INSERT INTO manager_assignments (customer_id, pool, manager_id) VALUES (%s, %s, %s)"
            " ON CONFLICT (customer_id, pool) DO UPDATE"
            " SET manager_id = EXCLUDED.manager_id, assigned_at = now()",
            (customer_id, pool, pick.id),
        )
        return replace(pick, load=pick.load + 1), True


async def manager_of(
    conn: AsyncConnection[Any], customer_id: str, pool: str | None = None
) -> Manager | None:
    """The customer's active manager in ``pool``, or in any pool (the latest assigned)."""
    cur = await conn.execute(
        "SELECT a.manager_id FROM manager_assignments a JOIN managers m ON m.id = a.manager_id"
        " WHERE a.customer_id = %s AND (%s::text IS NULL OR a.pool = %s) AND m.active"
        " ORDER BY a.assigned_at DESC, a.manager_id DESC LIMIT 1",
        (customer_id, pool, pool),
    )
    row = await cur.fetchone()
    return await get(conn, int(row[0])) if row else None


# the customer's active manager (the latest assigned) as {"name", "email"}, or NULL: a
# subquery of the claim of a message (store.messages.claim), so a template's ``manager``
# costs no statement of its own
MANAGER_CONTACT = (
    "SELECT json_build_object('name', m.name, 'email', m.email)"
    " FROM manager_assignments a JOIN managers m ON m.id = a.manager_id"
    " WHERE a.customer_id = %(customer)s AND m.active"
    " ORDER BY a.assigned_at DESC, a.manager_id DESC LIMIT 1"
)


async def deactivate(
    conn: AsyncConnection[Any], manager_id: int
) -> list[tuple[str, Manager | None]]:
    """Deactivate a manager and hand each of their customers to the least-loaded other
    active manager of the pool (None: nobody had room, the customer is unassigned and
    gets a manager at their next assignment). Their open tasks follow their customers;
    tasks whose customer found no one go to the pool's queue. Deactivating twice is a
    no-op that returns []."""
    async with conn.transaction():
        cur = await conn.execute("SELECT pool FROM managers WHERE id = %s", (manager_id,))
        row = await cur.fetchone()
        if row is None:
            raise UnknownManager(manager_id)
        pool = str(row[0])
        await lock_pool(conn, pool)
        await conn.execute("UPDATE managers SET active = false WHERE id = %s", (manager_id,))
        cur = await conn.execute(
            "SELECT customer_id FROM manager_assignments WHERE manager_id = %s"
            " ORDER BY assigned_at, customer_id",
            (manager_id,),
        )
        customers = [str(r[0]) for r in await cur.fetchall()]
        # Loads as they will be once this manager's customers are gone; updated as we go.
        others = {m.id: m for m in await _managers(conn, "m.pool = %s AND m.active", (pool,))}
        moves: list[tuple[str, Manager | None]] = []
        for customer in customers:
            pick = _least_loaded(list(others.values()))
            if pick is not None:
                others[pick.id] = pick = replace(pick, load=pick.load + 1)
            moves.append((customer, pick))
        moved = [(c, m.id) for c, m in moves if m is not None]
        if moved:
            await conn.execute(
                "UPDATE manager_assignments a SET manager_id = u.m, assigned_at = now()"
                " FROM unnest(%s::text[], %s::bigint[]) AS u(c, m)"
                " WHERE a.customer_id = u.c AND a.pool = %s",
                ([c for c, _ in moved], [m for _, m in moved], pool),
            )
        await conn.execute("DELETE FROM manager_assignments WHERE manager_id = %s", (manager_id,))
        await conn.execute(
            "UPDATE tasks t SET manager_id = a.manager_id FROM manager_assignments a"
            " WHERE t.manager_id = %s AND t.status = 'open'"
            " AND a.customer_id = t.customer_id AND a.pool = %s",
            (manager_id, pool),
        )
        await conn.execute(
            "UPDATE tasks SET manager_id = NULL, pool = %s"
            " WHERE manager_id = %s AND status = 'open'",
            (pool, manager_id),
        )
    return moves
