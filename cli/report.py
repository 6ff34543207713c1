"""``journeys report [--since DATE] [--html FILE]``: the report's figures as text, and the
page with charts as one HTML file (the same page as ``GET /reports``)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, date, datetime
from pathlib import Path

from .commands import Command, UserError


def since_date(text: str) -> datetime:
    """``YYYY-MM-DD`` as midnight UTC of that day."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise UserError(f"--since takes a date as YYYY-MM-DD, got '{text}'") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--since", metavar="DATE", help="only count what happened from this day on (YYYY-MM-DD)"
    )
    p.add_argument("--html", metavar="FILE", type=Path, help="also write the page with charts")
    p.add_argument(
        "--reactivation-days",
        type=int,
        default=30,
        metavar="N",
        help="a dormant customer counts as reactivated when active again within N days (30)",
    )


async def _run(url: str, args: argparse.Namespace) -> str:
    import psycopg

    from reports import build_report, render_html, render_text
    from store.db import migrate

    await migrate(url)
    since = since_date(args.since) if args.since else None
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        report = await build_report(conn, since=since, reactivation_days=args.reactivation_days)
    if args.html is not None:
        try:
            args.html.write_text(render_html(report), encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {args.html}: {exc.strerror}") from None
    return render_text(report)


def report(args: argparse.Namespace) -> int:
    import psycopg

    from settings import get_settings

    if args.reactivation_days < 1:
        raise UserError("--reactivation-days takes a number of days, 1 or more")
    url = get_settings().require_database_url()
    try:
        text = asyncio.run(_run(url, args))
    except psycopg.OperationalError as exc:
        raise UserError(f"cannot reach PostgreSQL ({str(exc).strip()})") from None
    print(text)
    if args.html is not None:
        print(f"wrote {args.html}")
    return 0


REPORT: dict[str, Command] = {
    "report": (
        "print the report (segments, journeys, experiments, offers, rates, NPS, managers);"
        " --html FILE too",
        _args,
        report,
    ),
}
