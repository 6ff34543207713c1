"""SQL pieces the report queries share: the period bound and what an order is worth."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

# An order's revenue: a JSON number, or a string holding one; anything else counts as 0.
REVENUE = r"""
    CASE WHEN jsonb_typeof(e.properties -> 'revenue') = 'number'
              THEN (e.properties ->> 'revenue')::numeric
         WHEN (e.properties ->> 'revenue') ~ '^\s*-?\d+(\.\d+)?\s*$'
              THEN trim(e.properties ->> 'revenue')::numeric
         ELSE 0 END
"""
ORDER = "e.type = 'track' AND e.name = 'order_completed'"


def period(column: str) -> str:
    """SQL: ``column`` falls in the report's period (from ``%(since)s``, if given)."""
    return f"(%(since)s::timestamptz IS NULL OR {column} >= %(since)s)"


async def fetch_all(conn: AsyncConnection[Any], sql: str, params: Any = None) -> list[Any]:
    """Every row of one query."""
    cur = await conn.execute(sql, params)
    return await cur.fetchall()
