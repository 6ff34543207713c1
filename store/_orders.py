"""The one pass of the segment refresh over the order events: every customer's RFM
aggregates and purchase summaries as of the refresh date, into a temporary table
``refresh_orders`` (dropped at commit, like ``refresh_forecast``) that both the forecast
(:mod:`store.forecasts`) and the metrics (:mod:`store.segments`) read.

Reading ``events`` once instead of twice is most of what the forecast costs the refresh:
the orders are grouped per customer and UTC day (a purchase, engine.forecast's
convention), then per customer; the RFM aggregates are sums of the daily ones (exact, as
revenue is ``numeric``). ``k`` numbers the customers by ``customer_id``: the forecast
fetches the summaries and writes its scores back by it, as fixed-width binary COPY.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

# The summaries follow engine.forecast.summarise (the reference): a purchase is a customer's
# day with orders, at its first order, worth the sum of its orders with negative values as
# 0; frequency the purchases after the first, recency and age in fractional days, monetary
# the mean value of the repeat purchases. The RFM sums keep negative values, as before.
# ``first_at`` is a window without ORDER BY over rows already sorted by customer: no sort.
_CREATE = """
CREATE TEMP TABLE refresh_orders ON COMMIT DROP AS
WITH orders AS (
  SELECT customer_id COLLATE "C" AS customer_id, (event_time AT TIME ZONE 'UTC')::date AS day,
    event_time,
    CASE jsonb_typeof(properties -> %(revenue)s)
      WHEN 'number' THEN (properties -> %(revenue)s)::numeric
      WHEN 'string' THEN CASE WHEN properties ->> %(revenue)s ~ %(numeric)s
                              THEN (properties ->> %(revenue)s)::numeric ELSE 0 END
      ELSE 0 END AS amount
  FROM events
  WHERE type = 'track' AND name = ANY(%(names)s) AND event_time <= %(as_of)s
), days AS (
  SELECT customer_id, min(event_time) AS at, max(event_time) AS last_at,
    count(*) AS n, count(*) FILTER (WHERE event_time > %(since)s) AS n_window,
    sum(amount) FILTER (WHERE event_time > %(since)s) AS revenue_window,
    sum(amount) AS amount, sum(greatest(amount, 0)) AS value
  FROM orders GROUP BY customer_id, day
), firsts AS (
  SELECT d.*, min(at) OVER (PARTITION BY customer_id) AS first_at FROM days d
), customers AS (
  SELECT customer_id COLLATE "default" AS customer_id,
    sum(n_window)::bigint AS orders, coalesce(sum(revenue_window), 0) AS revenue,
    sum(n)::bigint AS ltv_orders, sum(amount) AS ltv,
    min(at) AS first_order_at, max(last_at) AS last_order_at,
    (count(*) - 1)::float8 AS frequency,
    extract(epoch FROM max(at) - min(at))::float8 / 86400 AS recency,
    extract(epoch FROM %(as_of)s - min(at))::float8 / 86400 AS age,
    coalesce(sum(value) FILTER (WHERE at > first_at) / nullif(count(*) - 1, 0), 0)::float8
      AS monetary
  FROM firsts GROUP BY customer_id
)
SELECT row_number() OVER (ORDER BY customer_id COLLATE "C") AS k, * FROM customers
"""


async def collect(
    conn: AsyncConnection[Any],
    *,
    as_of: datetime,
    since: datetime,
    names: list[str],
    revenue: str,
    numeric: str,
) -> int:
    """Create ``refresh_orders`` (see the module docstring): per customer with an order up
        to ``as_of``, ``orders`` and ``revenue`` after ``since``, ``ltv_orders``, ``ltv``,
        ``first_order_at``, ``last_order_at`` and the summaries ``frequency``, ``recency``,
        ``age``, ``monetary``; and the empty ``refresh_forecast`` that the forecast fills (k,
    p_alive, churn_risk, expected_orders_90d, predicted_clv_365d: NULL for whom it has no
    row). Returns how many customers have an order."""
    cur = await conn.execute(
        _CREATE,
        {
            "as_of": as_of,
            "since": since,
            "names": names,
            "revenue": revenue,
            "numeric": numeric,
        },
    )
    await conn.execute("ANALYZE refresh_orders")
    await conn.execute(
        "CREATE TEMP TABLE refresh_forecast (k bigint, p_alive float8, churn_risk float8,"
        " expected_orders_90d float8, predicted_clv_365d float8) ON COMMIT DROP"
    )
    return cur.rowcount
