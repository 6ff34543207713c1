"""What actions left behind, counted: offers and the orders that redeemed them, survey
answers, managers' load and queues, messages per status, dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from ._sql import ORDER, REVENUE, fetch_all, period
from .figures import Count, ManagerLoad, Managers, Messages, NpsWeek, OfferRow, Offers, Surveys

_NPS_COUNTS = ("sent", "answered", "promoters", "passives", "detractors")


async def offer_figures(conn: AsyncConnection[Any], *, since: datetime | None = None) -> Offers:
    """Offers issued in the period per template: redeemed (ever since), and the revenue of
    the orders that redeemed them."""
    rows = await fetch_all(
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


async def survey_figures(conn: AsyncConnection[Any], *, since: datetime | None = None) -> Surveys:
    """NPS per week a survey was sent (UTC Mondays), with response rate; CSAT average."""
    rows = await fetch_all(
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
    (csat,) = await fetch_all(
        conn,
        "SELECT count(score), avg(score)::float8 FROM surveys"
        f" WHERE kind = 'csat' AND answered_at IS NOT NULL AND {period('created_at')}",
        {"since": since},
    )
    return Surveys(weeks, total, csat[0], csat[1])


async def manager_load(conn: AsyncConnection[Any]) -> Managers:
    """Every manager's assigned customers and open tasks now; open tasks in pool queues."""
    rows = await fetch_all(
        conn,
        """
        SELECT m.id, m.pool, m.name, m.active, m.capacity,
               (SELECT count(*) FROM manager_assignments a WHERE a.manager_id = m.id),
               (SELECT count(*) FROM tasks t WHERE t.manager_id = m.id AND t.status = 'open')
          FROM managers m ORDER BY m.pool, m.name, m.id
        """,
    )
    queues = await fetch_all(
        conn,
        "SELECT pool, count(*) FROM tasks WHERE status = 'open' AND manager_id IS NULL"
        " AND pool IS NOT NULL GROUP BY 1 ORDER BY 1",
    )
    return Managers([ManagerLoad(*r) for r in rows], [Count(p, n) for p, n in queues])


async def message_figures(conn: AsyncConnection[Any], *, since: datetime | None = None) -> Messages:
    """Messages of the period (by ``created_at``) per status, most first."""
    rows = await fetch_all(
        conn,
        "SELECT status, count(*) FROM messages WHERE %(since)s::timestamptz IS NULL"
        " OR created_at >= %(since)s GROUP BY 1 ORDER BY 2 DESC, 1",
        {"since": since},
    )
    counts = [Count(s, n) for s, n in rows]
    return Messages(counts, sum(c.count for c in counts if c.label == "unknown"))


async def dead_letter_count(conn: AsyncConnection[Any]) -> int:
    """Events whose delivery failed for good and wait for an admin (``journeys
    dead-letters``); not bounded by ``since``: they are today's work."""
    cur = await conn.execute("SELECT count(*) FROM dead_letters")
    row = await cur.fetchone()
    return int(row[0]) if row else 0
