"""A whole report from PostgreSQL: every figure ``store.reports`` reads, in one consistent
snapshot (definitions, one line each: docs/reports.md). ``since`` bounds the time-based
figures."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection

from store.reports import (
    churn_rate,
    consistent,
    dead_letter_count,
    experiment_counts,
    forecast_figures,
    journey_figures,
    manager_load,
    message_figures,
    migration_matrix,
    offer_figures,
    reactivation_rate,
    repurchase_rate,
    segments_now,
    staff_figures,
    survey_figures,
)

from .lift import experiment_lifts
from .model import Report

__all__ = ["build_report"]  # each figure on its own: store.reports


async def build_report(
    conn: AsyncConnection[Any],
    *,
    since: datetime | None = None,
    reactivation_days: int = 30,
    now: datetime | None = None,
) -> Report:
    """Every figure. On an idle connection they are read in one repeatable-read snapshot,
    so the sections agree with each other while the engine keeps writing."""
    generated_at = now or datetime.now(UTC)
    async with consistent(conn):
        return Report(
            generated_at=generated_at,
            since=since,
            reactivation_days=reactivation_days,
            segments=await segments_now(conn),
            migration=await migration_matrix(conn),
            journeys=await journey_figures(conn, since=since),
            offers=await offer_figures(conn, since=since),
            reactivation=await reactivation_rate(conn, since=since, days=reactivation_days),
            repurchase=await repurchase_rate(conn, since=since),
            churn=await churn_rate(conn, since=since),
            surveys=await survey_figures(conn, since=since),
            managers=await manager_load(conn),
            dead_letters=await dead_letter_count(conn),
            messages=await message_figures(conn, since=since),
            staff=await staff_figures(conn, as_of=generated_at, since=since),
            # in a thread: the first one loads statsmodels, seconds the event loop keeps
            experiments=await asyncio.to_thread(
                experiment_lifts, await experiment_counts(conn, since=since)
            ),
            forecast=await forecast_figures(conn, now=generated_at),
        )
