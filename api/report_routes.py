"""``GET /reports``: the report page, for admins. Besides ``Authorization: Bearer TOKEN``
it takes the admin token as the password of HTTP Basic (any user name), so a browser that
opens the URL asks for it; without one the answer says ``WWW-Authenticate: Basic``."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from reports import build_report, render_html

from .deps import BrowserAdmin, Pool

router = APIRouter()


@router.get("/reports", tags=["admin"], response_class=HTMLResponse)
async def reports_page(
    _: BrowserAdmin,
    pool: Pool,
    since: Annotated[
        date | None, Query(description="count only what happened from this day on (UTC)")
    ] = None,
    reactivation_days: Annotated[int, Query(ge=1, le=3650)] = 30,
) -> HTMLResponse:
    """The report with charts (definitions: docs/reports.md), as one self-contained page."""
    start = datetime(since.year, since.month, since.day, tzinfo=UTC) if since else None
    async with pool.connection() as conn:
        report = await build_report(conn, since=start, reactivation_days=reactivation_days)
    # the page holds customer figures: keep it out of shared caches
    return HTMLResponse(render_html(report), headers={"Cache-Control": "private, no-store"})
