"""Messages, ``messages``: one row per message an action sends, under its idempotency key,
and its lifecycle (``activities.delivery`` decides, this module writes)::

    (new) -> deferred -> ... -> sending -> sent
                  \\-> suppressed        |-> failed
                                        \\-> unknown
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.rows import class_row

Status = Literal["deferred", "sending", "sent", "failed", "unknown", "suppressed"]


@dataclass(frozen=True)
class NewMessage:
    """What a message is, fixed when its row is created."""

    key: str  # the action's idempotency key (plus a suffix)
    customer_id: str
    journey: str
    state: str
    template: str
    channel: str
    marketing: bool


@dataclass(frozen=True)
class Claimed:
    """A message's row, locked for this attempt."""

    status: str
    reason: str | None
    provider_id: str | None
    in_flight: bool  # an earlier attempt may still be delivering it
    handed_over: bool  # some attempt handed it to the provider without writing its outcome
    first_attempt: datetime


async def claim(conn: AsyncConnection[Any], message: NewMessage, *, now: datetime) -> Claimed:
    """Create the message's row (status ``sending``, first attempt ``now``) unless it
    exists, and lock it until the caller's transaction ends."""
    await conn.execute(
        "INSERT INTO messages (idempotency_key, customer_id, journey, state, template,"
        " channel, marketing, status, first_attempt_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, 'sending', %s)"
        " ON CONFLICT (idempotency_key) DO NOTHING",
        (
            message.key,
            message.customer_id,
            message.journey,
            message.state,
            message.template,
            message.channel,
            message.marketing,
            now,
        ),
    )
    cur = conn.cursor(row_factory=class_row(Claimed))
    await cur.execute(
        "SELECT status, reason, provider_id,"
        " coalesce(delivering_until > now(), false) AS in_flight,"
        " delivering_until IS NOT NULL AS handed_over,"
        " coalesce(first_attempt_at, created_at) AS first_attempt"
        " FROM messages WHERE idempotency_key = %s FOR UPDATE",
        (message.key,),
    )
    row = await cur.fetchone()
    if row is None:  # inserted or found above, and messages are never deleted
        raise RuntimeError(f"message {message.key} vanished while being claimed")
    return row


async def mark(conn: AsyncConnection[Any], key: str, status: Status, reason: str) -> None:
    """Set a message's status and why (suppressed, unknown)."""
    await conn.execute(
        "UPDATE messages SET status = %s, reason = %s, updated_at = now()"
        " WHERE idempotency_key = %s",
        (status, reason, key),
    )


async def defer(conn: AsyncConnection[Any], key: str, reason: str, until: datetime | None) -> None:
    """Hold a message until ``until`` (quiet hours, a cap, a missing address)."""
    await conn.execute(
        "UPDATE messages SET status = 'deferred', reason = %s, deferred_until = %s,"
        " updated_at = now() WHERE idempotency_key = %s",
        (reason, until, key),
    )


async def hand_over(conn: AsyncConnection[Any], key: str, *, for_seconds: float) -> None:
    """Count an attempt that hands the message to its channel: from here it counts as
    handed over (``delivering_until``) until its outcome is written."""
    await conn.execute(
        "UPDATE messages SET status = 'sending', attempts = attempts + 1, reason = NULL,"
        " deferred_until = NULL, updated_at = now(),"
        " delivering_until = now() + make_interval(secs => %s)"
        " WHERE idempotency_key = %s",
        (for_seconds, key),
    )


async def finish(
    conn: AsyncConnection[Any],
    key: str,
    status: Status,
    *,
    reason: str | None = None,
    provider_id: str | None = None,
    subject: str | None = None,
    sent_at: datetime | None = None,
) -> None:
    """Write how an attempt ended; the message is no longer handed over."""
    await conn.execute(
        "UPDATE messages SET status = %s, reason = %s,"
        " provider_id = coalesce(%s, provider_id), subject = coalesce(%s, subject),"
        " sent_at = %s, updated_at = now(), delivering_until = NULL"
        " WHERE idempotency_key = %s",
        (status, reason, provider_id, subject, sent_at, key),
    )


async def sent_marketing(
    conn: AsyncConnection[Any], customer_id: str, *, since: datetime
) -> list[tuple[datetime, str]]:
    """When and by which channel the customer was sent marketing messages since ``since``
    (for the frequency caps)."""
    cur = await conn.execute(
        "SELECT sent_at, channel FROM messages WHERE customer_id = %s AND marketing"
        " AND status = 'sent' AND sent_at > %s",
        (customer_id, since),
    )
    return [(r[0], r[1]) for r in await cur.fetchall()]
