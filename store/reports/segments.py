"""Segment figures from ``customer_metrics`` and the last refresh's ``segment_changes``."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from ._sql import fetch_all
from .figures import Count, Migration, Segments

TIERS = ("A", "B", "C", "none")


async def segments_now(conn: AsyncConnection[Any]) -> Segments:
    """Customers per segment (most first) and per tier (A, B, C, none) now."""
    segments = [
        Count(s, n)
        for s, n in await fetch_all(
            conn,
            "SELECT segment, count(*) FROM customer_metrics GROUP BY 1 ORDER BY 2 DESC, 1",
        )
    ]
    tiers = dict(await fetch_all(conn, "SELECT tier, count(*) FROM customer_metrics GROUP BY 1"))
    order = [*TIERS, *sorted(set(tiers) - set(TIERS))]
    (latest,) = (await fetch_all(conn, "SELECT max(computed_at) FROM customer_metrics"))[0]
    return Segments(segments, [Count(t, tiers[t]) for t in order if t in tiers], latest)


async def migration_matrix(conn: AsyncConnection[Any]) -> Migration | None:
    """Segment before -> after for the last finished refresh: its recorded changes off the
    diagonal, every other customer with metrics on it. None before the first refresh."""
    done = await fetch_all(
        conn,
        "SELECT id, as_of FROM segment_refreshes WHERE finished_at IS NOT NULL"
        " ORDER BY id DESC LIMIT 2",
    )
    if not done:
        return None
    last, as_of = done[0]
    rows = await fetch_all(
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
