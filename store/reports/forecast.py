"""Forecast figures: how well a past refresh's expected orders came true (calibration by
decile of predicted) and the predicted CLV of today's customers by tier and segment.

The calibration takes the latest refresh kept in ``forecast_history`` whose 90 days have
passed by the report's ``now``: its customers in ten equal groups by their
``expected_orders_90d`` (``ntile(10)``, ties split by customer id), and per group the
purchases they made in the 90 days after its ``as_of``, counted as the forecast counts
them (a customer's orders on one UTC day are one purchase; a day on which they had already
ordered by ``as_of`` is not a new one).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from ._sql import fetch_all
from .figures import Calibration, ClvRow, Decile, ForecastFigures
from .segments import TIERS

HORIZON = timedelta(days=90)  # expected_orders_90d's horizon
_DEFAULT_ORDERS = ["order_completed"]  # a fit recorded before forecast_fits.order_events


async def forecast_figures(conn: AsyncConnection[Any], *, now: datetime) -> ForecastFigures | None:
    """The forecast section, or None while no customer has a forecast."""
    latest = await fetch_all(
        conn,
        "SELECT f.refresh_id, s.as_of FROM forecast_fits f"
        " JOIN segment_refreshes s ON s.id = f.refresh_id ORDER BY f.refresh_id DESC LIMIT 1",
    )
    (forecast_customers,) = (
        await fetch_all(conn, "SELECT count(*) FROM customer_metrics WHERE p_alive IS NOT NULL")
    )[0]
    if not latest or not forecast_customers:
        return None
    kept = await fetch_all(
        conn,
        "SELECT s.id, s.as_of, coalesce(f.order_events, %s) FROM segment_refreshes s"
        " JOIN forecast_fits f ON f.refresh_id = s.id"
        " WHERE EXISTS (SELECT FROM forecast_history h WHERE h.refresh_id = s.id)"
        " ORDER BY s.as_of DESC, s.id DESC",
        (_DEFAULT_ORDERS,),
    )
    ready = [k for k in kept if k[1] + HORIZON <= now]
    calibration = await _calibration(conn, *ready[0]) if ready else None
    waiting = min((k[1] + HORIZON for k in kept), default=None) if not ready else None
    return ForecastFigures(
        refresh_id=latest[0][0],
        as_of=latest[0][1],
        customers=forecast_customers,
        calibration=calibration,
        calibration_ready_at=waiting,
        by_tier=_in_tier_order(await _clv_by(conn, "tier")),
        by_segment=await _clv_by(conn, "segment"),
    )


async def _calibration(
    conn: AsyncConnection[Any], refresh_id: int, as_of: datetime, names: list[str]
) -> Calibration:
    rows = await fetch_all(conn, _CALIBRATION, {"id": refresh_id, "as_of": as_of, "names": names})
    deciles = [Decile(int(d), int(n), float(p), int(a)) for d, n, p, a in rows]
    return Calibration(refresh_id, as_of, as_of + HORIZON, deciles)


async def _clv_by(conn: AsyncConnection[Any], column: str) -> list[ClvRow]:
    rows = await fetch_all(
        conn,
        f"SELECT {column}, count(*), avg(predicted_clv_365d), sum(predicted_clv_365d),"
        "  avg(p_alive) FROM customer_metrics WHERE p_alive IS NOT NULL"
        " GROUP BY 1 ORDER BY 4 DESC, 1",
    )
    return [
        ClvRow(str(k), int(n), float(mean), float(total), float(p)) for k, n, mean, total, p in rows
    ]


def _in_tier_order(rows: list[ClvRow]) -> list[ClvRow]:
    rank = {t: i for i, t in enumerate(TIERS)}
    return sorted(rows, key=lambda r: (rank.get(r.label, len(TIERS)), r.label))


# Purchases after as_of per customer of the kept refresh: distinct UTC days with orders in
# (as_of, as_of + 90 days], less the day of as_of when they had ordered on it by as_of.
_CALIBRATION = """
WITH predicted AS (
  SELECT customer_id, expected_orders_90d AS predicted,
         ntile(10) OVER (ORDER BY expected_orders_90d, customer_id) AS decile
    FROM forecast_history WHERE refresh_id = %(id)s
), later AS (
  SELECT e.customer_id, floor(extract(epoch FROM e.event_time) / 86400) AS day
    FROM events e
   WHERE e.type = 'track' AND e.name = ANY(%(names)s)
     AND e.event_time > %(as_of)s AND e.event_time <= %(as_of)s + interval '90 days'
), purchases AS (
  SELECT customer_id, count(DISTINCT day) AS purchases
    FROM later l
   WHERE NOT (l.day = floor(extract(epoch FROM %(as_of)s::timestamptz) / 86400)
              AND EXISTS (SELECT FROM events b
                           WHERE b.customer_id = l.customer_id AND b.type = 'track'
                             AND b.name = ANY(%(names)s)
                             AND b.event_time >= to_timestamp(l.day * 86400)
                             AND b.event_time <= %(as_of)s))
   GROUP BY customer_id
)
SELECT decile, count(*), sum(predicted), coalesce(sum(purchases), 0)
  FROM predicted LEFT JOIN purchases USING (customer_id)
 GROUP BY decile ORDER BY decile
"""
