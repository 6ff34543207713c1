"""Development-only endpoints (JOURNEYS_ENV=development): the mail the development mail
catcher caught, so a newcomer sees the messages their journeys sent."""

from __future__ import annotations

from email import message_from_string, policy
from email.message import EmailMessage
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from .admin_routes import require_admin
from .app import AppState

router = APIRouter()


async def require_dev_admin(request: Request) -> AppState:
    """The admin token, and only in development: elsewhere these routes do not exist."""
    state: AppState = request.app.state.journeys
    if state.settings.env != "development":
        raise HTTPException(
            404,
            {
                "error": "not_found",
                "message": "development endpoints exist only with JOURNEYS_ENV=development",
            },
        )
    return await require_admin(request)


DevAdmin = Annotated[AppState, Depends(require_dev_admin)]


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
    state: DevAdmin,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    to: Annotated[str | None, Query(description="only mail to this address")] = None,
) -> dict[str, Any]:
    """What the development mail catcher caught, newest first."""
    async with state.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, message_id, mail_from, rcpt_to, subject, raw, received_at"
            " FROM dev_mail WHERE %s::text IS NULL"
            " OR EXISTS (SELECT 1 FROM unnest(rcpt_to) r WHERE lower(r) = lower(%s))"
            " ORDER BY id DESC LIMIT %s",
            (to, to, limit),
        )
        rows = await cur.fetchall()
    items = []
    for id_, message_id, mail_from, rcpt_to, subject, raw, received_at in rows:
        msg = message_from_string(raw, policy=policy.default)
        items.append(
            {
                "id": id_,
                "message_id": message_id,
                "from": mail_from,
                "to": rcpt_to,
                "subject": subject,
                "text": _part(msg, "plain"),
                "html": _part(msg, "html"),
                "headers": {k: str(v) for k, v in msg.items()},
                "received_at": received_at,
            }
        )
    return {"messages": items}
