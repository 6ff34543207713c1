"""Customer tags (table ``customer_tags``): what ``tag`` actions added and removed.

The customer's workflow is the source of truth (``engine.tags`` applies an action to its
state); the ``tag_customer`` activity writes the same change here, where segment rules,
``GET /v1/customers/{id}`` and ``journeys show`` read it. Writing is idempotent: a tag
already there keeps its first row (who tagged, when), a removed tag is simply gone, so
a retried activity changes nothing the first attempt did not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from engine.actions import TagCustomer
from engine.model import ActionCommand


@dataclass(frozen=True)
class TagRow:
    """One tag of one customer, with the action that added it."""

    tag: str
    tagged_at: datetime
    journey: str
    idempotency_key: str


async def record(
    conn: AsyncConnection[Any], customer_id: str, command: ActionCommand, *, now: datetime
) -> None:
    """Write what the ``tag`` action ``command`` did to the customer's state: its removals,
    then its additions (a tag already there keeps its row), in one transaction."""
    spec = TagCustomer.model_validate(command.args)
    async with conn.transaction():
        if spec.remove:
            await conn.execute(
                "DELETE FROM customer_tags WHERE customer_id = %s AND tag = ANY(%s)",
                (customer_id, spec.remove),
            )
        if spec.add:
            await conn.execute(
                "INSERT INTO customer_tags (customer_id, tag, tagged_at, journey,"
                " idempotency_key) SELECT %s, tag, %s, %s, %s FROM unnest(%s::text[]) tag"
                " ON CONFLICT (customer_id, tag) DO NOTHING",
                (customer_id, now, command.journey, command.idempotency_key, spec.add),
            )


async def tags_of(conn: AsyncConnection[Any], customer_id: str) -> list[TagRow]:
    """The customer's tags, by name."""
    cur = conn.cursor(row_factory=class_row(TagRow))
    await cur.execute(
        "SELECT tag, tagged_at, journey, idempotency_key FROM customer_tags"
        " WHERE customer_id = %s ORDER BY tag",
        (customer_id,),
    )
    return await cur.fetchall()
