"""The audit log of actions, ``action_log``: every action a journey took, once, with how it
ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class ActionEntry:
    """One action and how it ended (``done``, ``skipped``, ``failed``, ...)."""

    idempotency_key: str
    customer_id: str
    journey: str
    version: int
    state: str
    action: str  # the action's kind
    args: dict[str, Any]
    status: str


async def record(conn: AsyncConnection[Any], entry: ActionEntry) -> None:
    """Log an action under its idempotency key; a later outcome replaces an earlier one,
    except that ``done`` is final."""
    await conn.execute(
        "INSERT INTO action_log (idempotency_key, customer_id, journey, version,"
        " state, action, args, status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (idempotency_key) DO UPDATE SET status = EXCLUDED.status"
        " WHERE action_log.status <> 'done'",
        (
            entry.idempotency_key,
            entry.customer_id,
            entry.journey,
            entry.version,
            entry.state,
            entry.action,
            Jsonb(entry.args),
            entry.status,
        ),
    )


async def of_customer(conn: AsyncConnection[Any], customer_id: str) -> list[ActionEntry]:
    """Every action taken for ``customer_id``, oldest first (``journeys test --temporal``
    compares them with a test's expectations)."""
    cur = conn.cursor(row_factory=class_row(ActionEntry))
    await cur.execute(
        "SELECT idempotency_key, customer_id, journey, version, state, action, args, status"
        " FROM action_log WHERE customer_id = %s ORDER BY created_at, idempotency_key",
        (customer_id,),
    )
    return await cur.fetchall()
