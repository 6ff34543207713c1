"""Experiments (admin token): ``GET /v1/experiments`` lists them with their customers per
arm; ``GET /v1/experiments/{name}`` gives one experiment's lift report, the figures of
the report page's Experiments section (definitions: docs/reports.md, "Experiments")."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from reports.lift import (
    ADJUSTMENT,
    LEVEL,
    LIFT_METHOD,
    RATE_METHOD,
    TEST_METHOD,
    ArmLift,
    ExperimentLift,
    Interval,
    experiment_lift,
)
from store.reports import experiment_counts

from .deps import Admin, Pool

router = APIRouter(tags=["experiments"])

_NAME = Path(pattern="^[a-z][a-z0-9_]*$", max_length=100, description="the experiment of a `split`")
_SINCE = Query(description="count only the customers assigned from this day on (UTC)")


def _start(since: date | None) -> datetime | None:
    return datetime(since.year, since.month, since.day, tzinfo=UTC) if since else None


def _pair(i: Interval) -> list[float]:
    return [i.low, i.high]


def _arm(a: ArmLift) -> dict[str, Any]:
    c, lift = a.counts, a.lift
    return {
        "arm": a.arm,
        "customers": c.customers,
        "converted": c.converters,
        "conversions": c.conversions,
        "conversion_rate": a.rate,
        "conversion_rate_interval": _pair(a.interval),
        "revenue": c.revenue,
        "revenue_per_customer": a.revenue_per_customer,
        "revenue_per_converter": a.revenue_per_converter,
        "vs_holdout": None
        if lift is None
        else {
            "lift": lift.absolute,
            "lift_interval": _pair(lift.interval),
            "relative_lift": lift.relative,
            "p_value": lift.p_value,
            "p_value_adjusted": lift.p_adjusted,
            "likely_real": lift.likely_real,
        },
        "verdict": a.verdict,
        "warning": a.warning,
    }


def _experiment(e: ExperimentLift) -> dict[str, Any]:
    c = e.counts
    return {
        "experiment": e.experiment,
        "journeys": c.journeys,
        "customers": c.customers,
        "first_assigned_at": c.first_assigned,
        "last_assigned_at": c.last_assigned,
        "holdout": e.holdout.arm if e.holdout else None,
        "compared": e.compared,
        "arms": [_arm(a) for a in e.arms],
        "methods": {
            "level": LEVEL,
            "conversion_rate_interval": RATE_METHOD,
            "lift_interval": LIFT_METHOD,
            "p_value": TEST_METHOD,
            "p_value_adjusted": ADJUSTMENT,
        },
    }


@router.get("/v1/experiments")
async def list_experiments(
    _: Admin, pool: Pool, since: Annotated[date | None, _SINCE] = None
) -> dict[str, Any]:
    """Every experiment that has assigned a customer, by name: its journeys, customers
    per arm and the first and last assignment."""
    async with pool.connection() as conn:
        found = await experiment_counts(conn, since=_start(since))
    return {
        "experiments": [
            {
                "experiment": c.experiment,
                "journeys": c.journeys,
                "customers": c.customers,
                "arms": {a.arm: a.customers for a in c.arms},
                "first_assigned_at": c.first_assigned,
                "last_assigned_at": c.last_assigned,
            }
            for c in found
        ]
    }


@router.get("/v1/experiments/{name}")
async def get_experiment(
    name: Annotated[str, _NAME],
    _: Admin,
    pool: Pool,
    since: Annotated[date | None, _SINCE] = None,
) -> dict[str, Any]:
    """One experiment's lift report: per arm, customers, conversions, the conversion rate
    with its 95% interval, revenue per customer and per converter; against the holdout,
    the lift with its interval, the relative lift, the p-value, the verdict and the
    small-sample warning."""
    async with pool.connection() as conn:
        found = await experiment_counts(conn, name=name, since=_start(since))
    if not found:
        raise HTTPException(
            404,
            {
                "error": "unknown_experiment",
                "message": f"no experiment '{name}' has assigned a customer"
                + (" in this period" if since else "")
                + " (GET /v1/experiments lists them)",
            },
        )
    # in a thread: the first call loads statsmodels, seconds the event loop keeps serving
    return _experiment(await asyncio.to_thread(experiment_lift, found[0]))
