"""``dev_mail``: what the development mail catcher (``devstack.mailcatcher``) caught."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection


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
