"""Which ids Journeys has seen: for refusing an admin's merge of an id that never reached
us (almost certainly a typo) before it becomes a customer of its own.

An id is known when the id graph has it (``customer_ids``: every id ingestion resolved
or a merge named), when a profile is stored under it, or when an event is (ids seen
before the id graph existed have no ``customer_ids`` row until they are seen again)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection


async def known(conn: AsyncConnection[Any], ids: Sequence[str]) -> set[str]:
    """The ones of ``ids`` that Journeys has seen."""
    cur = await conn.execute(
        "SELECT i FROM unnest(%s::text[]) i"
        " WHERE EXISTS (SELECT 1 FROM customer_ids c WHERE c.id = i)"
        " OR EXISTS (SELECT 1 FROM customers p WHERE p.customer_id = i)"
        " OR EXISTS (SELECT 1 FROM events e WHERE e.customer_id = i)",
        (list(ids),),
    )
    return {str(r[0]) for r in await cur.fetchall()}
