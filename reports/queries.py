"""Every figure of the report, each one set-based SQL over what the engine records
(definitions, one line each: docs/reports.md). ``since`` bounds the time-based figures."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus

from .journeys import journey_figures, period
from .model import (
    Count,
    ManagerLoad,
    Managers,
    Messages,
    Migration,
    NpsWeek,
    OfferRow,
    Offers,
    Rate,
    Report,
    Segments,
    Surveys,
)

# An order's revenue: a JSON number, or a string holding one; anything else counts as 0.
REVENUE = r"""
    CASE WHEN jsonb_typeof(e.properties -> 'revenue') = 'number'
              THEN (e.properties ->> 'revenue')::numeric
         WHEN (e.properties ->> 'revenue') ~ '^\s*-?\d+(\.\d+)?\s*$'
              THEN trim(e.properties ->> 'revenue')::numeric
         ELSE 0 END
"""
ORDER = "e.type = 'track' AND e.name = 'order_completed'"
TIERS = ("A", "B", "C", "none")


async def _rows(conn: AsyncConnection[Any], sql: str, params: Any = None) -> list[Any]:
    cur = await conn.execute(sql, params)
    return await cur.fetchall()


async def segments_now(conn: AsyncConnection[Any]) -> Segments:
    """Customers per segment (most first) and per tier (A, B, C, none) now."""
    segments = [
        Count(s, n)
        for s, n in await _rows(
            conn,
            "SELECT segment, count(*) FROM customer_metrics GROUP BY 1 ORDER BY 2 DESC, 1",
        )
    ]
    tiers = dict(await _rows(conn, "SELECT tier, count(*) FROM customer_metrics GROUP BY 1"))
    order = [*TIERS, *sorted(set(tiers) - set(TIERS))]
    (latest,) = (await _rows(conn, "SELECT max(computed_at) FROM customer_metrics"))[0]
    return Segments(segments, [Count(t, tiers[t]) for t in order if t in tiers], latest)


async def migration_matrix(conn: AsyncConnection[Any]) -> Migration | None:
    """Segment before -> after for the last finished refresh: its recorded changes off the
    diagonal, every other customer with metrics on it. None before the first refresh."""
    done = await _rows(
        conn,
        "SELECT id, as_of FROM segment_refreshes WHERE finished_at IS NOT NULL"
        " ORDER BY id DESC LIMIT 2",
    )
    if not done:
        return None
    last, as_of = done[0]
    rows = await _rows(
        conn,
        """
        SELECT coalesce(previous_segment, '(new)'), segment, count(*)
          FROM segment_changes WHERE refresh_id = %(id)s GROUP BY 1, 2
        UNION ALL
        SELECT segment, segment, count(*)
          FROM customer_metrics m
         WHERE NOT EXISTS (SELECT FROM segment_changes c
                            WHERE c.refresh_id = %(id)s AND c.customer_id = m.customer_id)
         GROUP BY 1, 2
        """,
        {"id": last},
    )
    cells: dict[tuple[str, str], int] = {}
    for before, after, n in rows:
        cells[(before, after)] = cells.get((before, after), 0) + n
    return Migration(last, as_of, done[1][1] if len(done) > 1 else None, cells)


async def offer_figures(conn: AsyncConnection[Any], *, since: datetime | None = None) -> Offers:
    """Offers issued in the period per template: redeemed (ever since), and the revenue of
    the orders that redeemed them."""
    rows = await _rows(
        conn,
        f"""
        SELECT o.template, count(*), count(o.redeemed_at), coalesce(sum({REVENUE}), 0)
          FROM offers o
          LEFT JOIN events e
            ON e.id = substring(o.redeemed_via from '^order:(\\d+)$')::bigint
           AND {ORDER}
         WHERE {period("o.created_at")}
         GROUP BY 1 ORDER BY 2 DESC, 1
        """,
        {"since": since},
    )
    by_template = [OfferRow(t, issued, redeemed, float(rev)) for t, issued, redeemed, rev in rows]
    total = OfferRow(
        "all",
        sum(r.issued for r in by_template),
        sum(r.redeemed for r in by_template),
        sum(r.revenue for r in by_template),
    )
    return Offers(total, by_template)


async def reactivation_rate(
    conn: AsyncConnection[Any],
    *,
    since: datetime | None = None,
    days: int = 30,
    dormant: str = "dormant",
    active: str = "active",
) -> Rate:
    """Customers who entered ``dormant`` in the period, and how many of them entered
    ``active`` in the same journey within ``days`` days after."""
    rows = await _rows(
        conn,
        f"""
        WITH d AS (
            SELECT d.customer_id,
                   EXISTS (SELECT FROM journey_transitions a
                            WHERE a.customer_id = d.customer_id AND a.journey = d.journey
                              AND a.to_state = %(active)s AND a.at > d.at
                              AND a.at <= d.at + make_interval(days => %(days)s)) AS back
              FROM journey_transitions d
             WHERE d.to_state = %(dormant)s AND {period("d.at")}
        )
        SELECT count(DISTINCT customer_id) FILTER (WHERE back), count(DISTINCT customer_id)
          FROM d
        """,
        {"since": since, "days": days, "dormant": dormant, "active": active},
    )
    return Rate(*rows[0])


async def repurchase_rate(conn: AsyncConnection[Any], *, since: datetime | None = None) -> Rate:
    """Customers with two or more orders in the period, of those with at least one."""
    rows = await _rows(
        conn,
        f"""
        SELECT count(*) FILTER (WHERE n >= 2), count(*)
          FROM (SELECT customer_id, count(*) AS n FROM events e
                 WHERE {ORDER} AND {period("e.event_time")} GROUP BY 1) o
        """,
        {"since": since},
    )
    return Rate(*rows[0])


async def churn_rate(
    conn: AsyncConnection[Any], *, since: datetime | None = None, lost: str = "lost"
) -> Rate:
    """Customers who ever ordered and entered ``lost`` in the period, of every customer who
    ever ordered."""
    rows = await _rows(
        conn,
        f"""
        WITH buyers AS (SELECT DISTINCT customer_id FROM events e WHERE {ORDER})
        SELECT count(*) FILTER (WHERE EXISTS (
                   SELECT FROM journey_transitions t
                    WHERE t.customer_id = b.customer_id AND t.to_state = %(lost)s
                      AND {period("t.at")})),
               count(*)
          FROM buyers b
        """,
        {"since": since, "lost": lost},
    )
    return Rate(*rows[0])


async def survey_figures(conn: AsyncConnection[Any], *, since: datetime | None = None) -> Surveys:
    """NPS per week a survey was sent (UTC Mondays), with response rate; CSAT average."""
    rows = await _rows(
        conn,
        f"""
        SELECT date_trunc('week', created_at AT TIME ZONE 'UTC')::date, count(*),
               count(score) FILTER (WHERE answered_at IS NOT NULL),
               count(*) FILTER (WHERE answered_at IS NOT NULL AND score >= 9),
               count(*) FILTER (WHERE answered_at IS NOT NULL AND score BETWEEN 7 AND 8),
               count(*) FILTER (WHERE answered_at IS NOT NULL AND score <= 6)
          FROM surveys WHERE kind = 'nps' AND {period("created_at")}
         GROUP BY 1 ORDER BY 1
        """,
        {"since": since},
    )
    weeks = [NpsWeek(*r) for r in rows]
    total = NpsWeek(None, *(sum(getattr(w, f) for w in weeks) for f in _NPS_COUNTS))
    (csat,) = await _rows(
        conn,
        "SELECT count(score), avg(score)::float8 FROM surveys"
        f" WHERE kind = 'csat' AND answered_at IS NOT NULL AND {period('created_at')}",
        {"since": since},
    )
    return Surveys(weeks, total, csat[0], csat[1])


_NPS_COUNTS = ("sent", "answered", "promoters", "passives", "detractors")


async def manager_load(conn: AsyncConnection[Any]) -> Managers:
    """Every manager's assigned customers and open tasks now; open tasks in pool queues."""
    rows = await _rows(
        conn,
        """
        SELECT m.id, m.pool, m.name, m.active, m.capacity,
               (SELECT count(*) FROM manager_assignments a WHERE a.manager_id = m.id),
               (SELECT count(*) FROM tasks t WHERE t.manager_id = m.id AND t.status = 'open')
          FROM managers m ORDER BY m.pool, m.name, m.id
        """,
    )
    queues = await _rows(
        conn,
        "SELECT pool, count(*) FROM tasks WHERE status = 'open' AND manager_id IS NULL"
        " AND pool IS NOT NULL GROUP BY 1 ORDER BY 1",
    )
    return Managers([ManagerLoad(*r) for r in rows], [Count(p, n) for p, n in queues])


async def message_figures(conn: AsyncConnection[Any], *, since: datetime | None = None) -> Messages:
    """Messages of the period (by ``created_at``) per status, most first."""
    rows = await _rows(
        conn,
        "SELECT status, count(*) FROM messages WHERE %(since)s::timestamptz IS NULL"
        " OR created_at >= %(since)s GROUP BY 1 ORDER BY 2 DESC, 1",
        {"since": since},
    )
    counts = [Count(s, n) for s, n in rows]
    return Messages(counts, sum(c.count for c in counts if c.label == "unknown"))


async def build_report(
    conn: AsyncConnection[Any],
    *,
    since: datetime | None = None,
    reactivation_days: int = 30,
    now: datetime | None = None,
) -> Report:
    """Every figure. On an idle connection they are read in one repeatable-read snapshot,
    so the sections agree with each other while the engine keeps writing."""
    if conn.info.transaction_status != TransactionStatus.IDLE:
        return await _report(conn, since, reactivation_days, now)
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return await _report(conn, since, reactivation_days, now)


async def _report(
    conn: AsyncConnection[Any], since: datetime | None, days: int, now: datetime | None
) -> Report:
    return Report(
        generated_at=now or datetime.now(UTC),
        since=since,
        reactivation_days=days,
        segments=await segments_now(conn),
        migration=await migration_matrix(conn),
        journeys=await journey_figures(conn, since=since),
        offers=await offer_figures(conn, since=since),
        reactivation=await reactivation_rate(conn, since=since, days=days),
        repurchase=await repurchase_rate(conn, since=since),
        churn=await churn_rate(conn, since=since),
        surveys=await survey_figures(conn, since=since),
        managers=await manager_load(conn),
        dead_letters=await dead_letter_count(conn),
        messages=await message_figures(conn, since=since),
    )


async def dead_letter_count(conn: AsyncConnection[Any]) -> int:
    """Events whose delivery failed for good and wait for an admin (``journeys
    dead-letters``); not bounded by ``since``: they are today's work."""
    cur = await conn.execute("SELECT count(*) FROM dead_letters")
    row = await cur.fetchone()
    return int(row[0]) if row else 0
