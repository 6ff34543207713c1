"""Development-only endpoints (JOURNEYS_ENV=development): the mail the development mail
catcher caught, so a newcomer sees the messages their journeys sent."""

from __future__ import annotations

from email import message_from_string, policy
from email.message import EmailMessage
from typing import Annotated, Any

from fastapi import APIRouter, Query

from store import dev_mail

from .deps import DevAdmin, Pool

router = APIRouter()


def _part(msg: EmailMessage, subtype: str) -> str | None:
    part = msg.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    try:
        return str(part.get_content())
    except (LookupError, ValueError):  # an unknown charset or a broken encoding
        return None


@router.get("/v1/dev/mail", tags=["development"])
async def caught_mail(
    _: DevAdmin,
    pool: Pool,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    to: Annotated[str | None, Query(description="only mail to this address")] = None,
) -> dict[str, Any]:
    """What the development mail catcher caught, newest first."""
    async with pool.connection() as conn:
        found = await dev_mail.caught(conn, to=to, limit=limit)
    items = []
    for mail in found:
        msg = message_from_string(mail.raw, policy=policy.default)
        items.append(
            {
                "id": mail.id,
                "message_id": mail.message_id,
                "from": mail.mail_from,
                "to": mail.rcpt_to,
                "subject": mail.subject,
                "text": _part(msg, "plain"),
                "html": _part(msg, "html"),
                "headers": {k: str(v) for k, v in msg.items()},
                "received_at": mail.received_at,
            }
        )
    return {"messages": items}
