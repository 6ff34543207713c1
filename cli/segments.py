"""``journeys segments refresh [--as-of DATE]``: tier every customer now (or as of a past
date, for back-fills and audits) through the same workflow the daily schedule runs, and
wait for it; ``journeys segments show`` prints customers per segment and tier."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import UTC, datetime

from .commands import Command, UserError


def _args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    refresh = sub.add_parser("refresh", help="recompute RFM, segments and tiers now")
    refresh.add_argument(
        "--as-of",
        help="tier the history as of this date or time (ISO-8601, UTC if no zone), e.g. 2026-01-31",
    )
    sub.add_parser("show", help="customers per segment and tier, from the latest refresh")


def _as_of(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"--as-of '{text}' is not a date; write it like 2026-01-31") from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    if when > datetime.now(UTC):
        raise UserError(f"--as-of {text} is in the future; the history ends now")
    return when


def segments(args: argparse.Namespace) -> int:
    if args.action == "show":
        return asyncio.run(_show())
    as_of = _as_of(args.as_of)
    return asyncio.run(_refresh(as_of))


async def _refresh(as_of: datetime | None) -> int:
    from workflows.segments import SCHEDULE_ID, RefreshRequest, SegmentRefreshWorkflow

    from .live import _connect

    settings, client, _ = await _connect(need_db=False)
    run_id = f"{SCHEDULE_ID}-manual-{uuid.uuid4().hex[:8]}"
    print(
        f"refreshing segments{f' as of {as_of:%Y-%m-%d %H:%M} UTC' if as_of else ''} "
        f"(workflow {run_id})...",
        flush=True,
    )
    outcome = await client.execute_workflow(
        SegmentRefreshWorkflow.run,
        RefreshRequest(as_of=as_of),
        id=run_id,
        task_queue=settings.task_queue,
    )
    print(
        f"refresh {outcome.refresh_id}: {outcome.customers} customers tiered, "
        f"{outcome.changed} changed segment or tier, {outcome.notified} told"
    )
    return 0


async def _show() -> int:
    import psycopg

    from settings import get_settings
    from store.segments import tier_counts

    url = get_settings().require_database_url()
    try:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            rows = await tier_counts(conn)
    except psycopg.OperationalError as exc:
        raise UserError(f"cannot reach PostgreSQL ({str(exc).strip()})") from None
    if not rows:
        print("no customers tiered yet: run 'journeys segments refresh'")
        return 0
    print(f"{'segment':<22}{'tier':<6}{'customers':>10}")
    for row in rows:
        print(f"{row.segment:<22}{row.tier:<6}{row.customers:>10}")
    return 0


SEGMENTS: dict[str, Command] = {
    "segments": ("tier customers: refresh RFM segments now, or show them", _args, segments),
}
