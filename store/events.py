"""Reads of the event history (``events``) and of the delivery queue (``outbox``) for
admins and for the API's back-pressure. Ingestion writes both."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row


@dataclass(frozen=True)
class StoredEvent:
    """One accepted message as stored: ``event_time`` is corrected for client clock skew."""

    id: int
    type: str
    name: str | None
    properties: dict[str, Any]
    event_time: datetime
    received_at: datetime
    message_id: str


async def of_customer(
    conn: AsyncConnection[Any], customer_id: str, *, before: int | None, limit: int
) -> list[StoredEvent]:
    """The customer's events newest first, at most ``limit``, with ids below ``before``."""
    cur = conn.cursor(row_factory=class_row(StoredEvent))
    await cur.execute(
        "SELECT id, type, name, properties, event_time, received_at, message_id FROM events"
        " WHERE customer_id = %s AND (%s::bigint IS NULL OR id < %s)"
        " ORDER BY id DESC LIMIT %s",
        (customer_id, before, before, limit),
    )
    return await cur.fetchall()


async def count_of(conn: AsyncConnection[Any], customer_id: str) -> int:
    """How many events the customer has."""
    cur = await conn.execute("SELECT count(*) FROM events WHERE customer_id = %s", (customer_id,))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def outbox_depth(conn: AsyncConnection[Any]) -> int:
    """Events accepted and not delivered to their customers' workflows yet."""
    cur = await conn.execute("SELECT count(*) FROM outbox")
    row = await cur.fetchone()
    return int(row[0]) if row else 0
