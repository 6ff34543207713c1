"""Events Journeys itself produces (an offer redeemed, a survey answered, a task done):
appended to the events history and queued for the customer's journeys in the caller's
transaction, exactly like an accepted Segment ``track`` call.

``message_id`` is deterministic (``offer_redeemed:CODE``), so producing the same fact
twice stores it once. Internal events use source 0, which no write key has."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from engine.names import normalize_event_name

INTERNAL_SOURCE = 0


async def record_event(
    conn: AsyncConnection[Any],
    customer_id: str,
    name: str,
    properties: dict[str, Any],
    *,
    message_id: str,
    at: datetime | None = None,
) -> int | None:
    """Store one internal event and queue it for delivery; return its id, or None when
    ``message_id`` was stored before. Call inside the transaction that made the fact true."""
    now = at or datetime.now(UTC)
    cur = await conn.execute(
        "INSERT INTO events (source, message_id, type, customer_id, name, properties,"
        " event_time, received_at) VALUES (%s, %s, 'track', %s, %s, %s, %s, %s)"
        " ON CONFLICT (source, message_id) DO NOTHING RETURNING id",
        (
            INTERNAL_SOURCE,
            message_id,
            customer_id,
            normalize_event_name(name),
            Jsonb(properties),
            now,
            now,
        ),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    await conn.execute(
        "INSERT INTO outbox (event_id, customer_id) VALUES (%s, %s)", (row[0], customer_id)
    )
    await conn.execute("NOTIFY journeys_outbox")
    return int(row[0])
