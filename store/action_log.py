"""The audit log of actions, ``action_log``: every action a journey took, once, with how it
ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
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
