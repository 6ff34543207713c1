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


# an action under its idempotency key; a later outcome replaces an earlier one, except
# that ``done`` is final. Named parameters (``log_*``, :func:`params`), so a statement of
# another module can write it in the same round trip (:func:`along`).
RECORD = (
    "INSERT INTO action_log (idempotency_key, customer_id, journey, version,"
    " state, action, args, status) VALUES (%(log_key)s, %(log_customer)s, %(log_journey)s,"
    " %(log_version)s, %(log_state)s, %(log_action)s, %(log_args)s, %(log_status)s)"
    " ON CONFLICT (idempotency_key) DO UPDATE SET status = EXCLUDED.status"
    " WHERE action_log.status <> 'done'"
)


def along(
    change: str, values: dict[str, Any], entry: ActionEntry | None
) -> tuple[str, dict[str, Any]]:
    """``change`` (an UPDATE with named parameters, without RETURNING) and, if given,
    ``entry`` logged in the same statement: one round trip, committed or rolled back
    together. The entry is written even when ``change`` matches no row (a data-modifying
    WITH runs whether or not it is read). The statement returns how many rows ``change``
    updated."""
    if entry is None:
        return f"WITH changed AS ({change} RETURNING 1) SELECT count(*) FROM changed", values
    return (
        f"WITH changed AS ({change} RETURNING 1), logged AS ({RECORD})"
        " SELECT count(*) FROM changed",
        {**values, **params(entry)},
    )


def params(entry: ActionEntry) -> dict[str, Any]:
    """The parameters of :data:`RECORD` for ``entry``."""
    return {
        "log_key": entry.idempotency_key,
        "log_customer": entry.customer_id,
        "log_journey": entry.journey,
        "log_version": entry.version,
        "log_state": entry.state,
        "log_action": entry.action,
        "log_args": Jsonb(entry.args),
        "log_status": entry.status,
    }


async def record(conn: AsyncConnection[Any], entry: ActionEntry) -> None:
    """Log an action under its idempotency key; a later outcome replaces an earlier one,
    except that ``done`` is final."""
    await conn.execute(RECORD, params(entry))


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
