"""``dev_mail``: what the development mail catcher (``devstack.mailcatcher``) caught,
and what ``GET /v1/dev/mail`` lists of it, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row


async def record_caught(
    conn: AsyncConnection[Any],
    *,
    message_id: str | None,
    mail_from: str,
    rcpt_to: list[str],
    subject: str | None,
    raw: str,
) -> None:
    """Store one caught message as the catcher received it."""
    await conn.execute(
        "INSERT INTO dev_mail (message_id, mail_from, rcpt_to, subject, raw)"
        " VALUES (%s, %s, %s, %s, %s)",
        (message_id, mail_from, rcpt_to, subject, raw),
    )


@dataclass(frozen=True)
class CaughtMail:
    """One message as the catcher received it; ``raw`` is the whole RFC 5322 text."""

    id: int
    message_id: str | None
    mail_from: str
    rcpt_to: list[str]
    subject: str | None
    raw: str
    received_at: datetime


async def caught(conn: AsyncConnection[Any], *, to: str | None, limit: int) -> list[CaughtMail]:
    """At most ``limit`` messages, newest first; with ``to``, only those to that address
    (case does not matter)."""
    cur = conn.cursor(row_factory=class_row(CaughtMail))
    await cur.execute(
        "SELECT id, message_id, mail_from, rcpt_to, subject, raw, received_at"
        " FROM dev_mail WHERE %s::text IS NULL"
        " OR EXISTS (SELECT 1 FROM unnest(rcpt_to) r WHERE lower(r) = lower(%s))"
        " ORDER BY id DESC LIMIT %s",
        (to, to, limit),
    )
    return await cur.fetchall()
