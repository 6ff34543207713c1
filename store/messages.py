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

from . import action_log
from .action_log import ActionEntry
from .consent import OPTED_OUT
from .customers import TRAITS
from .managers import MANAGER_CONTACT

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
    """A message's row, locked for this attempt, and what the messaging policy reads of
    its customer, all from one statement."""

    status: str
    reason: str | None
    provider_id: str | None
    in_flight: bool  # an earlier attempt may still be delivering it
    handed_over: bool  # some attempt handed it to the provider without writing its outcome
    first_attempt: datetime
    traits: dict[str, Any]  # the customer's profile ({} without one)
    opted_out: bool  # of the message's channel or of all (marketing messages only)
    recent_at: list[datetime]  # marketing messages sent since ``since`` (the caps)
    recent_channels: list[str]
    manager: dict[str, Any] | None  # the customer's account manager: name, email

    def recent(self) -> list[tuple[datetime, str]]:
        """The marketing messages sent since ``since``: when, and by which channel."""
        return list(zip(self.recent_at, self.recent_channels, strict=True))


# the customer's marketing messages sent since %(since)s (for the frequency caps)
_RECENT = (
    "SELECT sent_at, channel FROM messages WHERE customer_id = %(customer)s AND marketing"
    " AND status = 'sent' AND sent_at > %(since)s"
)


async def claim(
    conn: AsyncConnection[Any],
    message: NewMessage,
    *,
    now: datetime,
    since: datetime | None = None,
) -> Claimed:
    """Create the message's row (status ``sending``, first attempt ``now``) unless it
    exists, and lock it until the caller's transaction ends; read with it, in the same
    round trip, the customer's traits and account manager and, for a marketing message,
    their consent and (``since`` given) the marketing messages sent since then."""
    cur = conn.cursor(row_factory=class_row(Claimed))
    await cur.execute(
        "WITH claimed AS ("
        " INSERT INTO messages (idempotency_key, customer_id, journey, state, template,"
        " channel, marketing, status, first_attempt_at)"
        " VALUES (%(key)s, %(customer)s, %(journey)s, %(state)s, %(template)s, %(channel)s,"
        " %(marketing)s, 'sending', %(now)s)"
        # an existing row is locked as it is (DO UPDATE waits for an attempt holding it)
        " ON CONFLICT (idempotency_key) DO UPDATE SET updated_at = messages.updated_at"
        " RETURNING status, reason, provider_id,"
        " coalesce(delivering_until > now(), false) AS in_flight,"
        " delivering_until IS NOT NULL AS handed_over,"
        " coalesce(first_attempt_at, created_at) AS first_attempt)"
        f" SELECT claimed.*, ({TRAITS}) AS traits,"
        f" %(marketing)s AND ({OPTED_OUT}) AS opted_out, ({MANAGER_CONTACT}) AS manager,"
        " coalesce(recent.at, '{}') AS recent_at, coalesce(recent.by, '{}') AS recent_channels"
        " FROM claimed, LATERAL (SELECT array_agg(r.sent_at ORDER BY r.sent_at) AS at,"
        " array_agg(r.channel ORDER BY r.sent_at) AS by"
        f" FROM ({_RECENT}) r WHERE %(marketing)s AND %(since)s::timestamptz IS NOT NULL)"
        " AS recent",
        {
            "key": message.key,
            "customer": message.customer_id,
            "journey": message.journey,
            "state": message.state,
            "template": message.template,
            "channel": message.channel,
            "marketing": message.marketing,
            "now": now,
            "since": since,
        },
    )
    row = await cur.fetchone()
    if row is None:  # inserted or found above, and messages are never deleted
        raise RuntimeError(f"message {message.key} vanished while being claimed")
    return row


async def mark(conn: AsyncConnection[Any], key: str, status: Status, reason: str) -> None:
    """Set a message's status and why (suppressed, unknown)."""
    await conn.execute(
        "UPDATE messages SET status = %s, reason = %s, awaits = NULL, updated_at = now()"
        " WHERE idempotency_key = %s",
        (status, reason, key),
    )


async def defer(
    conn: AsyncConnection[Any],
    key: str,
    reason: str,
    until: datetime | None,
    *,
    awaits: str | None = None,
) -> None:
    """Hold a message until ``until`` (quiet hours, a cap, a missing address); ``awaits``:
    the trait (``email``) whose arrival should wake it sooner (:func:`awaiting`)."""
    await conn.execute(
        "UPDATE messages SET status = 'deferred', reason = %s, deferred_until = %s,"
        " awaits = %s, updated_at = now() WHERE idempotency_key = %s",
        (reason, until, awaits, key),
    )


async def awaiting(conn: AsyncConnection[Any], customer_ids: list[str]) -> dict[str, set[str]]:
    """Of ``customer_ids``, those with a message waiting for a contact trait, and which
    traits they wait for."""
    cur = await conn.execute(
        "SELECT customer_id, awaits FROM messages"
        " WHERE customer_id = ANY(%s) AND awaits IS NOT NULL AND status = 'deferred'",
        (customer_ids,),
    )
    found: dict[str, set[str]] = {}
    for customer_id, trait in await cur.fetchall():
        found.setdefault(customer_id, set()).add(trait)
    return found


_CONTACT_LOCK = 0x4A6F7543  # advisory lock class: a customer's contact details arriving


async def lock_contact(conn: AsyncConnection[Any], customer_ids: list[str]) -> None:
    """Serialise, per customer, a message starting to wait for an address with an
    identify bringing one, until the caller's transaction ends: whichever comes second
    sees what the first wrote (the wait sees the address, or the identify sees the wait),
    so no wake-up is lost between them. In a fixed order: two callers never deadlock."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(%s, h) FROM"
        " (SELECT DISTINCT hashtext(id) AS h FROM unnest(%s::text[]) AS id ORDER BY h) AS o",
        (_CONTACT_LOCK, customer_ids),
    )


async def hand_over(conn: AsyncConnection[Any], key: str, *, for_seconds: float) -> None:
    """Count an attempt that hands the message to its channel: from here it counts as
    handed over (``delivering_until``) until its outcome is written."""
    await conn.execute(
        "UPDATE messages SET status = 'sending', attempts = attempts + 1, reason = NULL,"
        " deferred_until = NULL, awaits = NULL, updated_at = now(),"
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
    log: ActionEntry | None = None,
) -> None:
    """Write how an attempt ended; the message is no longer handed over. ``log``: the
    action's ``action_log`` entry, written in the same statement (one round trip)."""
    sql = (
        "UPDATE messages SET status = %(status)s, reason = %(reason)s,"
        " provider_id = coalesce(%(provider)s, provider_id),"
        " subject = coalesce(%(subject)s, subject), sent_at = %(sent_at)s,"
        " updated_at = now(), delivering_until = NULL, awaits = NULL"
        " WHERE idempotency_key = %(key)s"
    )
    values: dict[str, Any] = {
        "status": status,
        "reason": reason,
        "provider": provider_id,
        "subject": subject,
        "sent_at": sent_at,
        "key": key,
    }
    if log is not None:  # a data-modifying WITH runs whether or not it is read
        sql = f"WITH finished AS ({sql}) {action_log.RECORD}"
        values.update(action_log.params(log))
    await conn.execute(sql, values)
