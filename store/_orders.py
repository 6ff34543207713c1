"""The one pass of the segment refresh over the order events: every customer's RFM
aggregates and purchase summaries as of the refresh date, into a temporary table
``refresh_orders`` (dropped at commit, like ``refresh_forecast``) that the metrics
(:mod:`store.segments`) read, and in memory for the forecast (:mod:`store.forecasts`).

PostgreSQL's executor grouping ten million orders per customer and day costs over a
minute (ten million groups of nearly one order each); numpy does it in seconds. So the
orders leave PostgreSQL once (:mod:`store._binary`), in arrays per block of event ids (a
parallel scan): the customer as two 64-bit hashes of their id, the time, and the amount
in integer micro-units; :func:`engine.order_totals.order_totals` groups them; the totals
come back by binary COPY. The numbers:

* customers are numbered ``k`` in ``refresh_ids``, every id with an event up to ``as_of``
  (an index-only scan of ``events_customer_time``), with the two hashes
  (``hashtextextended`` seeds 0 and 1): an order's customer is found by one hash and
  checked by the other. Should both collide among the ids (odds about 10^-16 at a
  million), the refresh stops with an error rather than join two customers. An order of
  a customer first seen after that scan (a concurrent write) waits for the next refresh;
* amounts count to six decimals: the sums are integers of 10^-6 (exact, returned as
  ``numeric``), each amount rounded to them (every currency has at most four decimals).
  An amount of 10^9 or more, and a customer whose sums could leave int64, are summed by
  the exact SQL below instead (:data:`_EXACT`, numeric throughout), for those customers
  only.

A purchase is a customer's day with orders (UTC), at its first order, worth the sum of its
orders with negative values as 0 (:func:`engine.forecast.summarise`, the reference). A
revenue property that is neither a JSON number nor a numeric string counts as 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import AsyncConnection

from engine.forecast import Summary
from engine.order_totals import UNITS_PER_CURRENCY, order_totals

from . import _binary

_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # binary timestamps count microseconds from it
# amounts from this on (in currency units) are summed in numeric, not in int64 micro-units
_LIMIT = 10**9

_AMOUNT = """CASE jsonb_typeof(properties -> %(revenue)s)
      WHEN 'number' THEN (properties -> %(revenue)s)::numeric
      WHEN 'string' THEN CASE WHEN properties ->> %(revenue)s ~ %(numeric)s
                              THEN (properties ->> %(revenue)s)::numeric ELSE 0 END
      ELSE 0 END"""
_IS_ORDER = "type = 'track' AND name = ANY(%(names)s) AND event_time <= %(as_of)s"

# every id with an event up to as_of, in index order: a superset of the customers with an
# order, read from events_customer_time alone (the planner is steered off hashing ten
# million ids, which costs three times the index-only scan)
_IDS = """
CREATE TEMP TABLE refresh_ids ON COMMIT DROP AS
SELECT row_number() OVER () AS k, customer_id,
  hashtextextended(customer_id, 0) AS h0, hashtextextended(customer_id, 1) AS h1
FROM (SELECT DISTINCT customer_id FROM events WHERE event_time <= %(as_of)s) ids
"""

# the amount appears once, so PostgreSQL computes it once; clamped to +-10^9 (an amount
# that reaches the clamp is summed by the exact SQL instead) and rounded to micro-units.
# The orders come in groups of consecutive event ids, each column an array.
_ORDERS = f"""
SELECT array_send(array_agg(hashtextextended(customer_id, 0))),
  array_send(array_agg(hashtextextended(customer_id, 1))), array_send(array_agg(event_time)),
  array_send(array_agg(
    (least(greatest({_AMOUNT}, -{_LIMIT}), {_LIMIT}) * {UNITS_PER_CURRENCY})::int8))
FROM events
WHERE {_IS_ORDER}
GROUP BY id / 65536  -- migration 0020 keeps statistics on this expression
"""
_ID_ARRAYS = (
    "SELECT array_send(array_agg(k)), array_send(array_agg(h0)), array_send(array_agg(h1))"
    " FROM refresh_ids"
)

# The same aggregates, exact in numeric, for the customers numbered ``only``: per customer and UTC
# day, then per customer. ``first_at`` is a window without ORDER BY over rows already
# sorted by customer: no sort.
_EXACT = f"""
WITH orders AS (
  SELECT customer_id, (event_time AT TIME ZONE 'UTC')::date AS day, event_time,
    {_AMOUNT} AS amount
  FROM events
  WHERE {_IS_ORDER}
    AND customer_id IN (SELECT customer_id FROM refresh_ids WHERE k = ANY(%(only)s))
), days AS (
  SELECT customer_id, min(event_time) AS at, max(event_time) AS last_at,
    count(*) AS n, count(*) FILTER (WHERE event_time > %(since)s) AS n_window,
    sum(amount) FILTER (WHERE event_time > %(since)s) AS revenue_window,
    sum(amount) AS amount, sum(greatest(amount, 0)) AS value
  FROM orders GROUP BY customer_id, day
), firsts AS (
  SELECT d.*, min(at) OVER (PARTITION BY customer_id) AS first_at FROM days d
)
SELECT i.k, f.customer_id,
  sum(n_window)::bigint AS orders, coalesce(sum(revenue_window), 0) AS revenue,
  sum(n)::bigint AS ltv_orders, sum(amount) AS ltv,
  min(at) AS first_order_at, max(last_at) AS last_order_at,
  (count(*) - 1)::float8 AS frequency,
  extract(epoch FROM max(at) - min(at))::float8 / 86400 AS recency,
  extract(epoch FROM %(as_of)s - min(at))::float8 / 86400 AS age,
  coalesce(sum(value) FILTER (WHERE at > first_at) / nullif(count(*) - 1, 0), 0)::float8
    AS monetary
FROM firsts f JOIN refresh_ids i USING (customer_id)
GROUP BY i.k, f.customer_id
"""


@dataclass(frozen=True)
class Orders:
    """The customers with an order up to the refresh date: their numbers ``k`` in
    ``refresh_ids`` / ``refresh_orders``, ascending, and their purchase summaries."""

    k: npt.NDArray[np.int64]
    summary: Summary


async def collect(
    conn: AsyncConnection[Any],
    *,
    as_of: datetime,
    since: datetime,
    names: list[str],
    revenue: str,
    numeric: str,
) -> Orders:
    """Create ``refresh_orders`` (see the module docstring): per customer with an order up
    to ``as_of``, ``k``, ``customer_id``, ``orders`` and ``revenue`` after ``since``,
    ``ltv_orders``, ``ltv``, ``first_order_at`` and ``last_order_at``; and the empty
    ``refresh_forecast`` that the forecast fills (k, p_alive, churn_risk,
    expected_orders_90d, predicted_clv_365d: NULL for whom it has no row). Returns the
    customers with an order and their summaries."""
    params = {
        "as_of": as_of,
        "since": since,
        "names": names,
        "revenue": revenue,
        "numeric": numeric,
    }
    await conn.execute("SET LOCAL enable_hashagg = off")
    await conn.execute(_IDS, params)
    await conn.execute("RESET enable_hashagg")
    ids = [c async for c in _binary.arrays(conn, _ID_ARRAYS, None, 3)]
    find = _Lookup(*ids[0])
    parts: list[tuple[npt.NDArray[np.int64], ...]] = []
    async for h0, h1, at, units in _binary.arrays(conn, _ORDERS, params, 4):
        k, found = find(h0, h1)
        parts.append((k, at[found], units[found]))
    k, at, units = (
        np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, np.int64) for i in range(3)
    )
    inexact = np.abs(units) >= _LIMIT * UNITS_PER_CURRENCY
    units[inexact] = 0  # summed exactly below, with their customer's other orders
    totals = order_totals(k, at, units, since=_micros(since), as_of=_micros(as_of))
    exact = totals.overflow | np.isin(totals.customer, k[inexact])
    kept = ~exact
    await conn.execute(
        "CREATE TEMP TABLE refresh_totals (k bigint, orders bigint, revenue bigint,"
        " ltv_orders bigint, ltv bigint, first_order_at timestamptz,"
        " last_order_at timestamptz) ON COMMIT DROP"
    )
    await _binary.copy_in(
        conn,
        "COPY refresh_totals FROM STDIN (FORMAT BINARY)",
        [
            (totals.customer[kept], "i8"),
            (totals.orders[kept], "i8"),
            (totals.revenue[kept], "i8"),
            (totals.ltv_orders[kept], "i8"),
            (totals.ltv[kept], "i8"),
            (totals.first_at[kept], "i8"),
            (totals.last_at[kept], "i8"),
        ],
    )
    scale = f"{1 / UNITS_PER_CURRENCY:.6f}"
    await conn.execute(
        "CREATE TEMP TABLE refresh_orders ON COMMIT DROP AS"
        " SELECT t.k, i.customer_id, t.orders,"
        f"  trim_scale(t.revenue * {scale}) AS revenue, t.ltv_orders,"
        f"  trim_scale(t.ltv * {scale}) AS ltv, t.first_order_at, t.last_order_at"
        " FROM refresh_totals t JOIN refresh_ids i USING (k)"
    )
    summary = totals.summary
    if exact.any():
        summary = await _exactly(conn, params, totals.customer, exact, summary)
    await conn.execute("ANALYZE refresh_orders")
    await conn.execute(
        "CREATE TEMP TABLE refresh_forecast (k bigint, p_alive float8, churn_risk float8,"
        " expected_orders_90d float8, predicted_clv_365d float8) ON COMMIT DROP"
    )
    return Orders(totals.customer, summary)


async def _exactly(
    conn: AsyncConnection[Any],
    params: dict[str, Any],
    customers: npt.NDArray[np.int64],
    exact: npt.NDArray[np.bool_],
    summary: Summary,
) -> Summary:
    """Sum the orders of the customers ``customers[exact]`` in numeric (:data:`_EXACT`)
    into ``refresh_orders``; returns ``summary`` with their rows from the same SQL."""
    # one evaluation of _EXACT: the totals go into refresh_orders, the summaries come back
    cur = await conn.execute(
        f"WITH x AS ({_EXACT}), kept AS (INSERT INTO refresh_orders (k, customer_id, orders,"
        "  revenue, ltv_orders, ltv, first_order_at, last_order_at)"
        "  SELECT k, customer_id, orders, revenue, ltv_orders, ltv, first_order_at,"
        "   last_order_at FROM x)"
        " SELECT k, frequency, recency, age, monetary FROM x",
        params | {"only": customers[exact].tolist()},
    )
    columns = [np.array(c) for c in zip(*await cur.fetchall(), strict=True)]
    at = np.searchsorted(customers, columns[0].astype(np.int64))
    fields = [summary.frequency, summary.recency, summary.age, summary.monetary]
    out = [f.copy() for f in fields]
    for field, values in zip(out, columns[1:], strict=True):
        field[at] = values.astype(np.float64)
    return Summary.of(*out)


class _Lookup:
    """Customer numbers by the two hashes of their id (``refresh_ids``)."""

    def __init__(
        self, k: npt.NDArray[np.int64], h0: npt.NDArray[np.int64], h1: npt.NDArray[np.int64]
    ) -> None:
        for swapped, (first, second) in enumerate(((h0, h1), (h1, h0))):
            order = np.argsort(first)
            self.first, self.second, self.k = first[order], second[order], k[order]
            self.swapped = bool(swapped)
            if not (np.diff(self.first) == 0).any():
                return
        raise RuntimeError(
            "customer ids collide under both 64-bit hashes (hashtextextended seeds 0 and"
            " 1): the refresh cannot tell their orders apart"
        )

    def __call__(
        self, h0: npt.NDArray[np.int64], h1: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """The numbers of the orders' customers that are known, and which orders those are."""
        first, second = (h1, h0) if self.swapped else (h0, h1)
        if not len(self.first):
            return first[:0], np.zeros(len(first), dtype=bool)
        at = np.minimum(np.searchsorted(self.first, first), len(self.first) - 1)
        found = (self.first[at] == first) & (self.second[at] == second)
        return self.k[at[found]], found


def _micros(at: datetime) -> int:
    """``at`` as PostgreSQL's binary timestamptz: microseconds since 2000-01-01 UTC."""
    return (at - _PG_EPOCH) // timedelta(microseconds=1)
