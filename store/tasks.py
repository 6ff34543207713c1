"""Follow-up tasks for staff (``tasks``): held by one account manager, or waiting in a pool's
queue. Completing a task is a ``task_completed`` event for the customer's journeys.

Assignee ``manager`` means the customer's account manager (any pool, the latest
assigned); a customer who has none gets the task in the ``unassigned`` queue, because
"call back an unhappy customer" must not be lost because nobody was their manager yet.
Any other assignee is a pool name: the task waits in that pool's queue.

Errors: ``managers.UnknownPool`` (the assignee names a pool nobody was added to),
``UnknownTask``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from engine.errors import RefusedError

from . import events
from .managers import UnknownPool, manager_of

UNASSIGNED = "unassigned"


class UnknownTask(RefusedError, LookupError):
    status = 404
    code = "unknown_task"

    def __init__(self, task_id: int) -> None:
        super().__init__(f"no task with id {task_id}")
        self.task_id = task_id


@dataclass(frozen=True)
class Task:
    id: int
    customer_id: str
    journey: str
    title: str
    note: str | None
    pool: str | None
    manager_id: int | None
    manager_email: str | None
    due_at: datetime
    status: str
    created_at: datetime
    completed_at: datetime | None
    completed_by: str | None

    @property
    def assignee(self) -> str:
        """Who holds it: the manager's email, a pool's queue, or ``unassigned``."""
        return self.manager_email or self.pool or UNASSIGNED


_SELECT = (
    "SELECT t.id, t.customer_id, t.journey, t.title, t.note, t.pool, t.manager_id,"
    " m.email AS manager_email, t.due_at, t.status, t.created_at, t.completed_at,"
    " t.completed_by FROM tasks t LEFT JOIN managers m ON m.id = t.manager_id"
)


async def _select(
    conn: AsyncConnection[Any], where: str, args: tuple[Any, ...], tail: str = ""
) -> list[Task]:
    cur = conn.cursor(row_factory=class_row(Task))
    await cur.execute(f"{_SELECT} WHERE {where} {tail}", args)
    return await cur.fetchall()


async def get(conn: AsyncConnection[Any], task_id: int) -> Task | None:
    """The task with this id, or None."""
    found = await _select(conn, "t.id = %s", (task_id,))
    return found[0] if found else None


async def create(
    conn: AsyncConnection[Any],
    *,
    idempotency_key: str,
    customer_id: str,
    journey: str,
    title: str,
    note: str | None,
    assignee: str,
    due_at: datetime,
) -> Task:
    """Create a task once per ``idempotency_key`` (a retry returns the first task, even
    if the customer's manager changed in between). Raises UnknownPool."""
    async with conn.transaction():
        found = await _select(conn, "t.idempotency_key = %s", (idempotency_key,))
        if found:
            return found[0]
        manager_id: int | None = None
        pool: str | None = None
        if assignee == "manager":
            manager = await manager_of(conn, customer_id)
            manager_id = manager.id if manager else None
        else:
            cur = await conn.execute("SELECT 1 FROM managers WHERE pool = %s LIMIT 1", (assignee,))
            if await cur.fetchone() is None:
                raise UnknownPool(assignee)
            pool = assignee
        cur = await conn.execute(
            "INSERT INTO tasks (idempotency_key, customer_id, journey, title, note, pool,"
            " manager_id, due_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (idempotency_key) DO NOTHING",
            (idempotency_key, customer_id, journey, title, note, pool, manager_id, due_at),
        )
        found = await _select(conn, "t.idempotency_key = %s", (idempotency_key,))
        return found[0]


async def list_tasks(
    conn: AsyncConnection[Any],
    *,
    assignee: str | None,
    status: str | None,
    limit: int = 100,
) -> list[Task]:
    """Tasks by due date. ``assignee``: a manager's id or email (their tasks), a pool name
    (its queue), ``unassigned``, or None for all; ``status``: open, done or None."""
    where = ["(%s::text IS NULL OR t.status = %s)"]
    args: list[Any] = [status, status]
    if assignee is None:
        pass
    elif assignee == UNASSIGNED:
        where.append("t.manager_id IS NULL AND t.pool IS NULL")
    elif assignee.isascii() and assignee.isdigit():
        where.append("t.manager_id = %s")
        args.append(int(assignee))
    elif "@" in assignee:
        where.append("lower(m.email) = lower(%s)")
        args.append(assignee)
    else:
        where.append("t.manager_id IS NULL AND t.pool = %s")
        args.append(assignee)
    return await _select(
        conn, " AND ".join(where), (*args, limit), "ORDER BY t.due_at, t.id LIMIT %s"
    )


async def complete(conn: AsyncConnection[Any], task_id: int, *, by: str, now: datetime) -> Task:
    """Mark a task done and record ``task_completed`` {task_id, title, journey,
    completed_by}; completing a done task returns it unchanged. Raises UnknownTask."""
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE tasks SET status = 'done', completed_at = %s, completed_by = %s"
            " WHERE id = %s AND status = 'open' RETURNING customer_id, title, journey",
            (now, by, task_id),
        )
        row = await cur.fetchone()
        if row is not None:
            await events.record(
                conn,
                row[0],
                "task_completed",
                {"task_id": task_id, "title": row[1], "journey": row[2], "completed_by": by},
                message_id=f"task_completed:{task_id}",
                at=now,
            )
        task = await get(conn, task_id)
    if task is None:
        raise UnknownTask(task_id)
    return task
