"""What the CRM playbooks measure staff by: response time on tasks (created → completed,
median and p90 per pool and per manager), tasks overdue now, and how long a detractor
waits for the call-back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from ._sql import fetch_all, period
from .figures import CallBacks, Staff, StaffRow

_SECONDS = "extract(epoch FROM {end} - {start})::float8"
_TASK_TIME = _SECONDS.format(end="completed_at", start="created_at")
_CALL_TIME = _SECONDS.format(end="f.completed_at", start="s.answered_at")


async def staff_figures(
    conn: AsyncConnection[Any], *, as_of: datetime, since: datetime | None = None
) -> Staff:
    """Per pool, then per manager of the pool: tasks created in the period, completed, the
    median and p90 response time of those completed, open tasks overdue at ``as_of``; and
    the call-backs of the period's detractors."""
    rows = await fetch_all(
        conn,
        f"""
        WITH t AS (
            SELECT coalesce(t.pool, m.pool, 'unassigned') AS pool, m.id AS mid,
                   m.name, t.created_at, t.completed_at, t.status, t.due_at,
                   {period("t.created_at")} AS in_period
              FROM tasks t LEFT JOIN managers m ON m.id = t.manager_id
        )
        SELECT pool, name,
               count(*) FILTER (WHERE in_period),
               count(*) FILTER (WHERE in_period AND completed_at IS NOT NULL),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY {_TASK_TIME})
                   FILTER (WHERE in_period AND completed_at IS NOT NULL),
               percentile_cont(0.9) WITHIN GROUP (ORDER BY {_TASK_TIME})
                   FILTER (WHERE in_period AND completed_at IS NOT NULL),
               count(*) FILTER (WHERE status = 'open' AND due_at < %(as_of)s)
          FROM t
         GROUP BY GROUPING SETS ((pool), (pool, mid, name))
        HAVING (GROUPING(mid) = 1 OR mid IS NOT NULL)
           AND (count(*) FILTER (WHERE in_period) > 0
                OR count(*) FILTER (WHERE status = 'open' AND due_at < %(as_of)s) > 0)
         ORDER BY pool, GROUPING(mid) DESC, name, mid
        """,
        {"since": since, "as_of": as_of},
    )
    (cb,) = await fetch_all(
        conn,
        f"""
        SELECT count(*), count(f.completed_at),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY {_CALL_TIME}),
               percentile_cont(0.9) WITHIN GROUP (ORDER BY {_CALL_TIME})
          FROM surveys s
          LEFT JOIN LATERAL (
                SELECT t.completed_at FROM tasks t
                 WHERE t.customer_id = s.customer_id AND t.journey = s.journey
                   AND t.created_at >= s.answered_at
                 ORDER BY t.created_at, t.id LIMIT 1) f ON true
         WHERE s.kind = 'nps' AND s.answered_at IS NOT NULL AND s.score <= 6
           AND {period("s.answered_at")}
        """,
        {"since": since},
    )
    return Staff([StaffRow(*r) for r in rows], CallBacks(*cb))
