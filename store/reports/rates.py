"""Rates over customers (definitions: docs/reports.md): reactivation and churn from the
transition log, repurchase from the orders in ``events``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from ._sql import ORDER, fetch_all, period
from .figures import Rate


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
    rows = await fetch_all(
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
    rows = await fetch_all(
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
    rows = await fetch_all(
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
