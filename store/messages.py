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


async def mark(
    conn: AsyncConnection[Any],
    key: str,
    status: Status,
    reason: str,
    *,
    log: ActionEntry | None = None,
) -> None:
    """Set a message's status and why (suppressed, unknown); ``log``: the action's
    ``action_log`` entry, written in the same statement."""
    sql = (
        "UPDATE messages SET status = %(status)s, reason = %(reason)s, awaits = NULL,"
        " updated_at = now() WHERE idempotency_key = %(key)s"
    )
    await _change(conn, sql, {"status": status, "reason": reason, "key": key}, log)


async def defer(
    conn: AsyncConnection[Any],
    key: str,
    reason: str,
    until: datetime | None,
    *,
    log: ActionEntry | None = None,
) -> None:
    """Hold a message until ``until`` (quiet hours, a cap); ``log`` as for :func:`mark`."""
    sql = (
        "UPDATE messages SET status = 'deferred', reason = %(reason)s,"
        " deferred_until = %(until)s, awaits = NULL, updated_at = now()"
        " WHERE idempotency_key = %(key)s"
    )
    await _change(conn, sql, {"reason": reason, "until": until, "key": key}, log)


# whether the customer's trait %(contact)s holds an address, as Python's truth of the
# decoded value has it (``activities.delivery`` reads ``traits.get(contact)``): a
# non-empty string, a non-zero number, true, a non-empty list or object. (A number
# only PostgreSQL tells from zero, 1e-400, cannot come: ingest parses traits as floats.)
_HAS_CONTACT = (
    "SELECT CASE jsonb_typeof(v) WHEN 'string' THEN v #>> '{}' <> ''"
    " WHEN 'number' THEN v::numeric <> 0 WHEN 'boolean' THEN v::boolean"
    " WHEN 'array' THEN jsonb_array_length(v) > 0 WHEN 'object' THEN v <> '{}'::jsonb"
    " ELSE false END FROM (SELECT (SELECT traits -> %(contact)s FROM customers"
    " WHERE customer_id = %(customer)s) AS v) AS t"
)


async def wait_for_contact(
    conn: AsyncConnection[Any],
    message: NewMessage,
    reason: str,
    until: datetime,
    *,
    contact: str,
    log: ActionEntry | None = None,
) -> bool:
    """Hold a message until ``until`` for the customer's ``contact`` trait (``email``),
    whose arrival wakes it sooner (:func:`awaiting`), unless the trait holds an address by
    now: False then, and the message is left as it was. Call it under
    :func:`lock_contact`, in a statement after it, so that it sees an identify that
    committed the address meanwhile. ``log`` as for :func:`mark` (written either way)."""
    sql = (
        "UPDATE messages SET status = 'deferred', reason = %(reason)s,"
        " deferred_until = %(until)s, awaits = %(contact)s, updated_at = now()"
        f" WHERE idempotency_key = %(key)s AND NOT ({_HAS_CONTACT})"
    )
    values = {
        "reason": reason,
        "until": until,
        "contact": contact,
        "key": message.key,
        "customer": message.customer_id,
    }
    return await _change(conn, sql, values, log) > 0


async def _change(
    conn: AsyncConnection[Any], sql: str, values: dict[str, Any], log: ActionEntry | None
) -> int:
    statement, params = action_log.along(sql, values, log)
    cur = await conn.execute(statement, params)
    row = await cur.fetchone()
    return int(row[0]) if row else 0


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
    await _change(conn, sql, values, log)
