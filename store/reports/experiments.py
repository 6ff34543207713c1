"""What experiments recorded, counted: per experiment and arm, the customers assigned
(``experiment_assignments``) and the conversions of their runs (``conversions``). The
statistics over these counts (intervals, lift, p-values, the verdict) are
``reports.lift``'s; definitions: docs/reports.md, "Experiments"."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from ._sql import fetch_all, period
from .figures import ArmCounts, ExperimentCounts

# The customers assigned in the period (of one experiment, or all). A conversion counts
# for the arm of the customer's assignment (intent to treat: the arm they were given,
# whatever their runs did after), at any time after it.
_ASSIGNED = f"""
    SELECT experiment, customer_id, arm, journey, assigned_at
      FROM experiment_assignments
     WHERE (%(name)s::text IS NULL OR experiment = %(name)s) AND {period("assigned_at")}
"""


async def experiment_counts(
    conn: AsyncConnection[Any], *, name: str | None = None, since: datetime | None = None
) -> list[ExperimentCounts]:
    """Every experiment (or only ``name``) by name, with customers assigned in the period
    per arm, those of them who converted, their conversions and the revenue."""
    params = {"name": name, "since": since}
    arms = await fetch_all(
        conn,
        f"""
        WITH a AS ({_ASSIGNED}),
        c AS (
            SELECT a.experiment, a.customer_id, count(*) AS n, sum(c.revenue) AS revenue
              FROM a JOIN conversions c
                ON c.experiment = a.experiment AND c.customer_id = a.customer_id
             GROUP BY 1, 2
        )
        SELECT a.experiment, a.arm, count(*), count(c.n), coalesce(sum(c.n), 0)::int,
               coalesce(sum(c.revenue), 0)
          FROM a LEFT JOIN c USING (experiment, customer_id)
         GROUP BY 1, 2 ORDER BY 1, 2
        """,
        params,
    )
    found: dict[str, list[ArmCounts]] = {}
    for experiment, arm, customers, converters, conversions, revenue in arms:
        found.setdefault(experiment, []).append(
            ArmCounts(arm, customers, converters, conversions, float(revenue))
        )
    about = await fetch_all(
        conn,
        f"""
        SELECT experiment, array_agg(DISTINCT journey ORDER BY journey),
               min(assigned_at), max(assigned_at)
          FROM ({_ASSIGNED}) a GROUP BY 1 ORDER BY 1
        """,
        params,
    )
    return [
        ExperimentCounts(experiment, list(journeys), first, last, found[experiment])
        for experiment, journeys, first, last in about
    ]
