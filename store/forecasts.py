"""The forecast step of the segment refresh: BG/NBD and Gamma-Gamma (:mod:`engine.forecast`)
fitted on the per-customer purchase summaries of the refresh's one pass over ``events``
(:mod:`store._orders`), every customer scored into a temporary table that
the new metrics join, and who crossed a churn-risk band since the refresh before recorded in
``churn_changes`` for the ``churn_risk_changed`` fan-out
(:func:`store.events.record_churn_changes`).

It runs inside :func:`store.segments.refresh`'s transaction, before the new metrics are
built (the bands and the history after, on ``customer_metrics_next``, before the swap).
Below ``forecast.min_repeat_customers`` of ``rules/segments.yaml`` (default 50) customers
with a repeat purchase the parameters are not identified (a fit runs but means little), so
nothing is fitted and the columns stay NULL; such a refresh records no band crossings
either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import AsyncConnection

from engine.forecast import Models, fit, score

from . import _binary
from ._orders import Orders

# forecast_history keeps a refresh's predictions when no kept one is this close in as_of,
# and the latest HISTORY_KEEP of them: the calibration needs one at least 90 days old
HISTORY_EVERY_DAYS = 30
HISTORY_KEEP = 5
# a refresh s whose predictions are kept (a lookup in the primary key, not a scan)
_KEPT = "EXISTS (SELECT FROM forecast_history h WHERE h.refresh_id = s.id)"
# Churn-risk bands: a customer's band is how many of these their churn_risk reaches
# (0: below 0.25 ... 3: 0.75 and above); crossing one between refreshes is an event.
BANDS = (0.25, 0.5, 0.75)


@dataclass(frozen=True)
class Fitted:
    """What the forecast step of one refresh did (``models`` None: skipped, too few)."""

    customers: int
    repeat_customers: int
    models: Models | None


async def forecast(
    conn: AsyncConnection[Any],
    *,
    refresh_id: int,
    orders: Orders,
    names: list[str],
    min_repeat_customers: int,
) -> Fitted:
    """Fit and score the customers of ``orders`` (:func:`store._orders.collect`, orders:
    track events named one of ``names``) into ``refresh_forecast`` (left empty when
    nothing is fitted), which the metrics join; record the fit in ``forecast_fits``. The
    scores go in by binary COPY: no Python object per customer, no UPDATE of a million
    rows."""
    summary = orders.summary
    if not len(summary):
        return Fitted(0, 0, None)
    repeat = int(np.count_nonzero(summary.frequency > 0))
    if repeat < min_repeat_customers:
        return Fitted(len(summary), repeat, None)
    models = fit(summary)
    result = score(models, summary)
    await _binary.copy_in(
        conn,
        "COPY refresh_forecast FROM STDIN (FORMAT BINARY)",
        [
            (orders.k, "i8"),
            (_column(result.p_alive), "f8"),
            (_column(result.churn_risk), "f8"),
            (_column(result.expected_orders_90d), "f8"),
            (_column(result.predicted_clv_365d), "f8"),
        ],
    )
    await conn.execute("ANALYZE refresh_forecast")
    gg = models.gamma_gamma
    bg = models.bgnbd
    await conn.execute(
        "INSERT INTO forecast_fits (refresh_id, r, alpha, a, b, p, q, v, customers,"
        " repeat_customers, order_events) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            refresh_id,
            bg.r,
            bg.alpha,
            bg.a,
            bg.b,
            gg.p if gg else None,
            gg.q if gg else None,
            gg.v if gg else None,
            models.customers,
            models.repeat_customers,
            names,
        ),
    )
    return Fitted(len(summary), repeat, models)


async def keep_history(conn: AsyncConnection[Any], refresh_id: int, as_of: datetime) -> bool:
    """Copy this refresh's expected orders from ``customer_metrics_next`` into
    ``forecast_history`` unless a kept refresh is within :data:`HISTORY_EVERY_DAYS` of
    ``as_of``, then drop all but the latest :data:`HISTORY_KEEP` kept refreshes (by
    ``as_of``); returns whether it kept this one. Call after :func:`forecast` fitted."""
    cur = await conn.execute(
        "SELECT EXISTS (SELECT FROM segment_refreshes s"
        " WHERE s.as_of > %(as_of)s - make_interval(days => %(every)s)"
        "   AND s.as_of < %(as_of)s + make_interval(days => %(every)s)"
        f"   AND {_KEPT})",
        {"as_of": as_of, "every": HISTORY_EVERY_DAYS},
    )
    row = await cur.fetchone()
    if row is None or row[0]:
        return False
    await conn.execute(
        "INSERT INTO forecast_history (refresh_id, customer_id, expected_orders_90d)"
        " SELECT %s, customer_id, expected_orders_90d FROM customer_metrics_next"
        " WHERE expected_orders_90d IS NOT NULL",
        (refresh_id,),
    )
    await conn.execute(
        "DELETE FROM forecast_history WHERE refresh_id IN ("
        " SELECT s.id FROM segment_refreshes s"
        f" WHERE {_KEPT} ORDER BY s.as_of DESC, s.id DESC OFFSET %s)",
        (HISTORY_KEEP,),
    )
    return True


def band_changes(source: str, previous: str, current: str) -> str:
    """The INSERT into ``churn_changes`` (parameter ``%(refresh_id)s``) of every row of
    ``source`` (``customer_id``, the churn risks ``previous`` and ``current``, both
    forecast) whose churn-risk band differs; store.segments runs it in the statement that
    records the segment changes, over one join of the new metrics with the current ones."""
    return (
        "INSERT INTO churn_changes (refresh_id, customer_id, previous_band, band,"
        " previous_churn_risk, churn_risk)"
        f" SELECT %(refresh_id)s, customer_id, {_band(previous)}, {_band(current)},"
        f" {previous}, {current} FROM {source}"
        f" WHERE {current} IS NOT NULL AND {previous} IS NOT NULL"
        f"   AND {_band(previous)} <> {_band(current)}"
    )


def _column(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # engine.forecast promises finite columns; should a fit ever break that, the column is
    # NULL (no forecast: the NaN is NULL where the metrics join it), rather than a value
    # every comparison would fail
    return np.where(np.isfinite(values), values, np.nan)


def band(churn_risk: float) -> int:
    """The band of a churn risk (see :data:`BANDS`), as the SQL computes it."""
    return sum(churn_risk >= b for b in BANDS)


def _band(churn_risk: str) -> str:
    return "(" + " + ".join(f"({churn_risk} >= {b})::int" for b in BANDS) + ")::smallint"


async def latest_fit(conn: AsyncConnection[Any]) -> dict[str, Any] | None:
    """The parameters of the latest refresh that forecast, or None."""
    cur = await conn.execute(
        "SELECT refresh_id, r, alpha, a, b, p, q, v, customers, repeat_customers, fitted_at"
        " FROM forecast_fits ORDER BY refresh_id DESC LIMIT 1"
    )
    row = await cur.fetchone()
    if row is None:
        return None
    assert cur.description is not None
    return dict(zip([d.name for d in cur.description], row, strict=True))
