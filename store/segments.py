"""The segment refresh: RFM metrics, tiers and segments of every customer, set-based in
PostgreSQL (a few statements over ``events``, no per-customer loop), and who changed.

One transaction, serialised by an advisory lock:

1. ``orders`` (:mod:`store._orders`): one pass over the order events up to ``as_of``
   aggregates them per customer and UTC day, then per customer, into a temporary table:
   the RFM aggregates (window orders and revenue; all-time orders, revenue, first and last
   order) and the forecast's purchase summaries;
2. ``forecast`` (:mod:`store.forecasts`): BG/NBD and Gamma-Gamma fitted on the summaries,
   every customer's p_alive, churn_risk, expected orders and CLV into a temporary table
   (empty below the minimum of repeat customers: the columns are then NULL);
3. ``compute``: one statement ranks the customers with an order in the window into r, f, m
   (by ``scoring.method``, the fixed bounds when the population is small) and tiers
   (definitions in :mod:`engine.segments`), classifies them by the rules compiled to one
   SQL ``CASE``, and writes it all, with the forecast joined, into a new table
   ``customer_metrics_next``. Customers who had metrics but no order up to ``as_of`` any
   more get zeros and go through the rules too;
4. ``changes``: one join of the new metrics with the current ones: every customer whose
   segment or tier differs (or who had none) goes into ``segment_changes`` with the
   previous values, for the fan-out of ``segment_changed`` events, and who crossed a
   churn-risk band into ``churn_changes``; ``history`` keeps the expected orders for the
   calibration;
5. ``swap``: the new table gets its keys and replaces ``customer_metrics`` (so nothing may
   depend on that table: no views, no foreign keys to it).

A revenue property that is neither a JSON number nor a numeric string counts as 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from engine.segments import NO_TIER, Scoring, Segments

from . import _orders, forecasts

_LOCK = 0x5365676D  # advisory lock: one refresh at a time
# a revenue string is numeric only with a short exponent: '1e999999' would overflow numeric
_NUMERIC = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d{1,3})?\s*$"


@dataclass(frozen=True)
class RefreshResult:
    """What one refresh did; ``phases`` holds seconds per step (for the benchmark)."""

    id: int
    as_of: datetime
    customers: int
    changed: int
    phases: dict[str, float] = field(default_factory=dict)
    churn_changed: int = 0  # customers who crossed a churn-risk band
    forecast: bool = False  # whether the forecast was fitted (enough repeat customers)


async def refresh(
    conn: AsyncConnection[Any],
    defs: Segments,
    *,
    as_of: datetime,
    min_repeat_customers: int | None = None,
) -> RefreshResult:
    """Recompute every customer's metrics and forecast as of ``as_of`` (history after it is
    ignored) and record who changed segment, tier or churn band; see the module docstring.
    The forecast follows ``defs.forecast`` (``min_repeat_customers`` overrides its minimum,
    for tests and back-fills)."""
    phases: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        phases[name] = now - clock
        clock = now

    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        # the aggregate over a million customers stays in memory (~800 MB at 1M)
        await conn.execute("SET LOCAL work_mem = '1GB'")
        await conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
        cur = await conn.execute(
            "INSERT INTO segment_refreshes (as_of, definitions) VALUES (%s, %s) RETURNING id",
            (as_of, defs.digest()),
        )
        row = await cur.fetchone()
        assert row is not None
        refresh_id = int(row[0])
        orders = await _orders.collect(
            conn,
            as_of=as_of,
            since=as_of - timedelta(seconds=defs.window),
            names=defs.orders.events,
            revenue=defs.orders.revenue,
            numeric=_NUMERIC,
        )
        lap("orders")
        fitted = forecasts.Fitted(0, 0, None)
        if defs.forecast.enabled:
            fitted = await forecasts.forecast(
                conn,
                refresh_id=refresh_id,
                orders=orders,
                names=defs.orders.events,
                min_repeat_customers=(
                    defs.forecast.min_repeat_customers
                    if min_repeat_customers is None
                    else min_repeat_customers
                ),
            )
        lap("forecast")
        customers = await _compute(conn, defs, refresh_id, as_of)
        lap("compute")
        changed, churn_changed = await _record_changes(
            conn, refresh_id, bands=fitted.models is not None
        )
        lap("changes")
        if fitted.models is not None:
            await forecasts.keep_history(conn, refresh_id, as_of)
            lap("history")
        for statement in _SWAP:
            await conn.execute(statement)
        await conn.execute(
            "UPDATE segment_refreshes SET finished_at = clock_timestamp(), customers = %s,"
            " changed = %s WHERE id = %s",
            (customers, changed, refresh_id),
        )
        lap("swap")
    lap("commit")
    return RefreshResult(
        refresh_id, as_of, customers, changed, phases, churn_changed, fitted.models is not None
    )


async def _record_changes(
    conn: AsyncConnection[Any], refresh_id: int, *, bands: bool
) -> tuple[int, int]:
    """Record who changed segment or tier (``segment_changes``: every customer whose
    segment or tier in ``customer_metrics_next`` differs from ``customer_metrics``, or who
    had none) and, with ``bands``, who crossed a churn-risk band
    (:func:`store.forecasts.band_changes`), from one join of the new metrics with the
    current ones; returns how many of each."""
    churn = (
        f", churn AS ({forecasts.band_changes('pairs', 'p_risk', 'risk')} RETURNING 1)"
        if bands
        else ""
    )
    cur = await conn.execute(
        "WITH pairs AS (SELECT n.customer_id, p.customer_id IS NULL AS new,"
        "   p.segment AS p_segment, n.segment, p.tier AS p_tier, n.tier, n.r, n.f, n.m,"
        "   p.churn_risk AS p_risk, n.churn_risk AS risk"
        "  FROM customer_metrics_next n LEFT JOIN customer_metrics p USING (customer_id)"
        "), segments AS (INSERT INTO segment_changes (refresh_id, customer_id,"
        "   previous_segment, segment, previous_tier, tier, r, f, m)"
        "  SELECT %(refresh_id)s, customer_id, p_segment, segment, p_tier, tier, r, f, m"
        "  FROM pairs WHERE new OR p_segment <> segment OR p_tier <> tier RETURNING 1)"
        f"{churn}"
        " SELECT (SELECT count(*) FROM segments),"
        f" {'(SELECT count(*) FROM churn)' if bands else '0'}",
        {"refresh_id": refresh_id},
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


# Every row changes at every refresh (as_of, recency...), so the new metrics are written into
# a fresh table that replaces the old one: several times faster than upserting a million
# rows, and no bloat. Readers wait only for the swap itself, at the end of the transaction.
_SWAP = (
    "ALTER TABLE customer_metrics_next ADD CONSTRAINT customer_metrics_next_pkey"
    " PRIMARY KEY (customer_id)",
    "CREATE INDEX customer_metrics_next_segment ON customer_metrics_next (segment, tier)",
    "ALTER TABLE customer_metrics_next ADD CONSTRAINT customer_metrics_refresh_id_fkey"
    " FOREIGN KEY (refresh_id) REFERENCES segment_refreshes (id)",
    "DROP TABLE customer_metrics",
    "ALTER TABLE customer_metrics_next RENAME TO customer_metrics",
    "ALTER INDEX customer_metrics_next_pkey RENAME TO customer_metrics_pkey",
    "ALTER INDEX customer_metrics_next_segment RENAME TO customer_metrics_segment",
)


async def _compute(
    conn: AsyncConnection[Any], defs: Segments, refresh_id: int, as_of: datetime
) -> int:
    case_text, case_params = _renamed(*defs.case_sql(), "case")
    tier_text, tier_params = _renamed(
        " ".join("WHEN better * 100 < %s * scored_n THEN %s::text" for _ in defs.tiers),
        [p for t in defs.tiers for p in (Decimal(str(t.top)), t.name)],
        "tier",
    )
    await conn.execute(
        "CREATE TABLE customer_metrics_next"
        " (LIKE customer_metrics INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    statement = _COMPUTE.replace("{segment}", case_text).replace("{tier}", tier_text)
    for name, text in _scores(defs.scoring).items():
        statement = statement.replace("{" + name + "}", text)
    cur = await conn.execute(
        statement,
        {
            "min_population": defs.scoring.min_population_for_quantiles,
            **_bounds(defs.scoring),
            "refresh_id": refresh_id,
            "as_of": as_of,
            "no_tier": NO_TIER,
            **case_params,
            **tier_params,
        },
    )
    await conn.execute("ANALYZE customer_metrics_next")
    return cur.rowcount


# One statement: the order aggregates per customer (``orders``, from store._orders), customers with
# metrics but no order up to as_of added with zeros (``base``), scores among customers with
# an order in the window (``ranked``: rank() counts the strictly worse, count() the at most
# as good, ties included; the revenue ordering serves m and the tier; ``_scores`` turns them
# into r f m), then tier and segment.
_COMPUTE = """
WITH orders AS (
  SELECT k, customer_id, orders, revenue, ltv_orders, ltv, first_order_at, last_order_at
  FROM refresh_orders
), base AS (
  SELECT k, customer_id, orders, revenue, ltv, ltv_orders, first_order_at, last_order_at,
    floor(extract(epoch FROM %(as_of)s - last_order_at) / 86400)::int AS recency_days,
    floor(extract(epoch FROM %(as_of)s - first_order_at) / 86400)::int AS first_order_days
  FROM orders
  UNION ALL
  SELECT NULL, customer_id, 0, 0, 0, 0, NULL, NULL, NULL, NULL FROM customer_metrics p
  WHERE NOT EXISTS (SELECT FROM orders o WHERE o.customer_id = p.customer_id)
), ranked AS (
  SELECT b.*, count(*) OVER () AS scored_n,
    rank() OVER (ORDER BY recency_days DESC) - 1 AS r_below,
    rank() OVER (ORDER BY orders) - 1 AS f_below,
    rank() OVER (ORDER BY revenue) - 1 AS m_below,
    count(*) OVER (ORDER BY recency_days DESC) AS r_up_to,  -- peers included
    count(*) OVER (ORDER BY orders) AS f_up_to,
    count(*) OVER (ORDER BY revenue) AS m_up_to
  FROM base b WHERE orders > 0
), scored AS (
  SELECT k, customer_id, orders, revenue, ltv, ltv_orders, first_order_at, last_order_at,
    recency_days, first_order_days, {r} AS r, {f} AS f, {m} AS m,
    scored_n - m_up_to AS better, scored_n
  FROM ranked
  UNION ALL
  SELECT k, customer_id, orders, revenue, ltv, ltv_orders, first_order_at, last_order_at,
    recency_days, first_order_days, 0, 0, 0, NULL, NULL
  FROM base WHERE orders = 0
)
INSERT INTO customer_metrics_next (customer_id, refresh_id, as_of, recency_days, orders,
  revenue, first_order_days, r, f, m, segment, tier, ltv, ltv_orders, aov, first_order_at,
  last_order_at, computed_at, p_alive, churn_risk, expected_orders_90d, predicted_clv_365d)
SELECT customer_id, %(refresh_id)s, %(as_of)s, recency_days, orders, revenue,
  first_order_days, r, f, m, {segment},
  CASE WHEN orders = 0 THEN %(no_tier)s {tier} END,
  ltv, ltv_orders, CASE WHEN ltv_orders > 0 THEN ltv / ltv_orders END, first_order_at,
  last_order_at, now(), nullif(f.p_alive, 'NaN'), nullif(f.churn_risk, 'NaN'),
  nullif(f.expected_orders_90d, 'NaN'), nullif(f.predicted_clv_365d, 'NaN')
FROM (SELECT s.*, coalesce(c.traits, '{}') AS traits
      FROM scored s LEFT JOIN customers c USING (customer_id)) x
  LEFT JOIN refresh_forecast f USING (k)
"""


# (measure, column, fixed comparison): recency is better the fewer days since the last order
_MEASURES = (("r", "recency_days", ">"), ("f", "orders", ">="), ("m", "revenue", ">="))


def _scores(scoring: Scoring) -> dict[str, str]:
    """The SQL of r, f and m over ``ranked`` for ``scoring`` (engine._segment_scoring has
    the same rules in Python)."""
    out = {}
    for name, column, reaches in _MEASURES:
        if scoring.method == "quintiles":
            out[name] = f"1 + 5 * {name}_below / scored_n"
            continue
        hits = " + ".join(f"({column} {reaches} %({name}_bound{i})s)::int" for i in range(4))
        fixed = f"5 - ({hits})" if name == "r" else f"1 + {hits}"
        out[name] = (
            f"CASE WHEN scored_n < %(min_population)s THEN {fixed}"
            f" WHEN {name}_below = 0 AND {name}_up_to < scored_n THEN 1"
            f" ELSE (5 * {name}_up_to + scored_n - 1) / scored_n END"
        )
    return out


def _bounds(scoring: Scoring) -> dict[str, Any]:
    fixed = scoring.fixed_scores
    out: dict[str, Any] = {f"r_bound{i}": b for i, b in enumerate(fixed.recency_days)}
    out |= {f"f_bound{i}": b for i, b in enumerate(fixed.orders)}
    return out | {f"m_bound{i}": Decimal(str(b)) for i, b in enumerate(fixed.revenue)}


def _renamed(text: str, params: list[Any], prefix: str) -> tuple[str, dict[str, Any]]:
    """Positional ``%s`` (the compiled rules' placeholders) as named ones, so they can sit
    in a statement with named parameters. The compiler writes ``%`` only as placeholders."""
    parts = text.split("%s")
    if len(parts) != len(params) + 1:
        raise ValueError(
            f"a compiled rule has {len(parts) - 1} placeholders for {len(params)} values"
        )
    out = [parts[0]]
    for i, part in enumerate(parts[1:]):
        out.append(f"%({prefix}{i})s{part}")
    return "".join(out), {f"{prefix}{i}": p for i, p in enumerate(params)}


async def migration_matrix(conn: AsyncConnection[Any]) -> dict[tuple[str | None, str], int]:
    """Customers per (segment in the refresh before, segment now) between the last two
    refreshes, the diagonal included; ``None`` is "had no metrics before". Who did not
    change is not in ``segment_changes``, so their previous segment is their current one."""
    cur = await conn.execute(
        "SELECT CASE WHEN c.customer_id IS NULL THEN m.segment ELSE c.previous_segment END,"
        "  m.segment, count(*)"
        " FROM customer_metrics m"
        " LEFT JOIN segment_changes c ON c.refresh_id = m.refresh_id"
        "   AND c.customer_id = m.customer_id"
        " WHERE m.refresh_id = (SELECT max(refresh_id) FROM customer_metrics)"
        " GROUP BY 1, 2"
    )
    return {(prev, now): int(n) for prev, now, n in await cur.fetchall()}


async def metrics_of(conn: AsyncConnection[Any], customer_id: str) -> dict[str, Any] | None:
    """A customer's latest metrics (JSON-ready: money as float, times as datetimes), or
    None before their first refresh."""
    cur = await conn.execute(
        "SELECT recency_days, orders, revenue, r, f, m, segment, tier, ltv, ltv_orders, aov,"
        " first_order_days, first_order_at, last_order_at, as_of, computed_at, refresh_id,"
        " p_alive, churn_risk, expected_orders_90d, predicted_clv_365d"
        " FROM customer_metrics WHERE customer_id = %s",
        (customer_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    assert cur.description is not None
    names = [d.name for d in cur.description]
    return {k: float(v) if isinstance(v, Decimal) else v for k, v in zip(names, row, strict=True)}


@dataclass(frozen=True)
class Finished:
    """A refresh that committed, found again by the request key that made it."""

    id: int
    as_of: datetime
    customers: int
    changed: int


async def finished(conn: AsyncConnection[Any], request_key: str) -> Finished | None:
    """The refresh ``request_key`` made, if it committed (so a retried activity finds it
    instead of making another)."""
    cur = conn.cursor(row_factory=class_row(Finished))
    await cur.execute(
        "SELECT id, as_of, customers, changed FROM segment_refreshes"
        " WHERE request_key = %s AND finished_at IS NOT NULL",
        (request_key,),
    )
    return await cur.fetchone()


async def set_request_key(conn: AsyncConnection[Any], refresh_id: int, request_key: str) -> None:
    """Remember which request made a refresh, in the refresh's transaction."""
    await conn.execute(
        "UPDATE segment_refreshes SET request_key = %s WHERE id = %s", (request_key, refresh_id)
    )


@dataclass(frozen=True)
class TierCount:
    """How many customers the latest refresh put in ``segment`` with ``tier``."""

    segment: str
    tier: str
    customers: int


async def tier_counts(conn: AsyncConnection[Any]) -> list[TierCount]:
    """Customers per segment and tier now, by segment then tier."""
    cur = conn.cursor(row_factory=class_row(TierCount))
    await cur.execute(
        "SELECT segment, tier, count(*) AS customers FROM customer_metrics"
        " GROUP BY segment, tier ORDER BY segment, tier"
    )
    return await cur.fetchall()
