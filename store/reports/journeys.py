"""Journey figures from ``journey_transitions``: customers per state now, entries, exits,
conversion between states and median time in state (definitions: docs/reports.md).

A person counts once across a merge (``engine.merging``): the absorbed customer's run
ends with a ``/merged`` exit and the survivor goes on in an ``/adopted`` copy of it. The
merged exit is neither an exit nor a state now, and ends no time in state; the adopted
row is no new entrant of its state (the absorbed customer entered it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from ._sql import period
from .figures import Count, Edge, JourneyFigures, StateTime

# Each customer's transitions in one journey, in the order the engine made them. Several
# can share a timestamp (enrol, then an immediate goto), so the key breaks ties: it ends
# in "/<enrollment>/<visit>" and an exit adds "/exit" after its visit.
ORDERED = r"""
    SELECT customer_id, journey, from_state, to_state, at, key,
           coalesce(lead(key) OVER w LIKE '%%/merged', false) AS next_merged,
           lead(from_state) OVER w AS next_from,
           lead(to_state) OVER w AS next_to,
           lead(at) OVER w AS next_at,
           lead(key) OVER w IS NULL AS last
      FROM journey_transitions
    WINDOW w AS (
        PARTITION BY customer_id, journey
        ORDER BY at,
                 substring(key from '/(\d+)/\d+(?:/exit)?$')::int,
                 substring(key from '/(\d+)(?:/exit)?$')::int,
                 right(key, 5) = '/exit'
    )
"""


async def journey_figures(
    conn: AsyncConnection[Any], *, since: datetime | None = None
) -> list[JourneyFigures]:
    """Per journey (by name): states now, entries, exits, edges, median time in state."""
    params = {"since": since}
    found: dict[str, JourneyFigures] = {}

    def of(journey: str) -> JourneyFigures:
        return found.setdefault(journey, JourneyFigures(journey))

    cur = await conn.execute(
        f"SELECT journey, to_state, count(*) FROM ({ORDERED}) t"
        " WHERE last AND key NOT LIKE '%%/merged'"
        " GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2",
        params,
    )
    for journey, state, n in await cur.fetchall():
        of(journey).states_now.append(Count(state, n))

    # exits: leaving by exit_when, or reaching a state its version marks final
    cur = await conn.execute(
        f"""
        WITH finals AS (
            SELECT v.journey, v.version, s.key AS state
              FROM journey_versions v, jsonb_each(v.definition -> 'states') s
             WHERE coalesce((s.value ->> 'final')::boolean, false)
        )
        SELECT t.journey,
               count(*) FILTER (WHERE t.from_state IS NULL),
               count(*) FILTER (WHERE (t.to_state = 'exited' OR f.state IS NOT NULL)
                                  AND t.key NOT LIKE '%%/merged')
          FROM journey_transitions t
          LEFT JOIN finals f
            ON f.journey = t.journey AND f.version = t.version AND f.state = t.to_state
         WHERE {period("at")}
         GROUP BY 1
        """,
        params,
    )
    for journey, entries, exits in await cur.fetchall():
        of(journey).entries, of(journey).exits = entries, exits

    cur = await conn.execute(
        f"""
        WITH t AS ({ORDERED}),
        entered AS (
            SELECT journey, to_state, count(DISTINCT customer_id) AS n
              FROM t WHERE {period("at")} AND key NOT LIKE '%%/adopted' GROUP BY 1, 2
        )
        SELECT t.journey, t.to_state, t.next_to, count(DISTINCT t.customer_id), e.n
          FROM t JOIN entered e ON e.journey = t.journey AND e.to_state = t.to_state
         WHERE {period("t.at")} AND t.next_from = t.to_state AND NOT t.next_merged
         GROUP BY 1, 2, 3, 5
         ORDER BY 1, 2, 4 DESC, 3
        """,
        params,
    )
    for journey, source, target, n, entrants in await cur.fetchall():
        of(journey).edges.append(Edge(source, target, n, entrants))

    cur = await conn.execute(
        f"""
        SELECT journey, to_state, count(*),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM next_at - at))
          FROM ({ORDERED}) t
         WHERE {period("at")} AND next_from = to_state AND NOT next_merged
         GROUP BY 1, 2 ORDER BY 1, 2
        """,
        params,
    )
    for journey, state, visits, median in await cur.fetchall():
        of(journey).time_in_state.append(StateTime(state, visits, float(median)))
    return [found[name] for name in sorted(found)]
