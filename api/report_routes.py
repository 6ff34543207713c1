"""``GET /reports``: the report page, for admins. Besides ``Authorization: Bearer TOKEN``
it takes the admin token as the password of HTTP Basic (any user name), so a browser that
opens the URL asks for it; without one the answer says ``WWW-Authenticate: Basic``."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from ingest.segment import IngestError
from reports import build_report, render_html

from .admin_routes import check_admin
from .app import AppState
from .auth import credential

router = APIRouter()

CHALLENGE = {"WWW-Authenticate": 'Basic realm="Journeys reports", charset="UTF-8"'}


def _token(header: str | None) -> str | None:
    """Bearer as everywhere else; Basic: the password, or the user name when the password is
    empty (how curl -u TOKEN: and the write-key convention send it)."""
    if header and header.strip().lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header.strip()[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, password = decoded.partition(":")
        return password or user or None
    try:
        return credential(header)
    except IngestError:
        return None


async def require_admin_browser(request: Request) -> AppState:
    """The admin token, from a Bearer header or a browser's Basic login."""
    state: AppState = request.app.state.journeys
    token = _token(request.headers.get("authorization"))
    if not token:
        raise HTTPException(
            401,
            {
                "error": "missing_token",
                "message": "log in with the admin token as password (any user name),"
                " or send Authorization: Bearer TOKEN",
            },
            headers=CHALLENGE,
        )
    await check_admin(state, token, what="read reports", headers=CHALLENGE)
    return state


BrowserAdmin = Annotated[AppState, Depends(require_admin_browser)]


@router.get("/reports", tags=["admin"], response_class=HTMLResponse)
async def reports_page(
    state: BrowserAdmin,
    since: Annotated[
        date | None, Query(description="count only what happened from this day on (UTC)")
    ] = None,
    reactivation_days: Annotated[int, Query(ge=1, le=3650)] = 30,
) -> HTMLResponse:
    """The report with charts (definitions: docs/reports.md), as one self-contained page."""
    start = datetime(since.year, since.month, since.day, tzinfo=UTC) if since else None
    async with state.pool.connection() as conn:
        report = await build_report(conn, since=start, reactivation_days=reactivation_days)
    # the page holds customer figures: keep it out of shared caches
    return HTMLResponse(render_html(report), headers={"Cache-Control": "private, no-store"})
