"""Customer profiles, ``customers``: the traits merged over every identify.

Written by ingestion (:func:`merge_traits`, in the transaction that stores the messages);
read with the customer's metrics by the outbox dispatcher (:func:`standings`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class TraitsUpdate:
    """Traits to merge into one customer's profile (new keys win), and the anonymous id
    seen with them, if any."""

    customer_id: str
    traits: dict[str, Any]
    anonymous_id: str | None


@dataclass(frozen=True)
class ProfileSize:
    """How big a profile is after a merge: its traits as text, and their top-level keys."""

    customer_id: str
    bytes: int
    keys: int


async def merge_traits(
    conn: AsyncConnection[Any], updates: Sequence[TraitsUpdate]
) -> list[ProfileSize]:
    """Create or update the profiles in one statement, in the order given (callers sort
    by customer id, so concurrent merges never deadlock); returns each profile's size."""
    if not updates:
        return []
    cur = conn.cursor(row_factory=class_row(ProfileSize))
    await cur.execute(
        """
        INSERT INTO customers (customer_id, traits, anonymous_id)
        SELECT * FROM unnest(%s::text[], %s::jsonb[], %s::text[])
        ON CONFLICT (customer_id) DO UPDATE
           SET traits = customers.traits || EXCLUDED.traits,
               anonymous_id = coalesce(EXCLUDED.anonymous_id, customers.anonymous_id),
               updated_at = now()
        RETURNING customer_id, octet_length(traits::text) AS bytes,
                  (SELECT count(*) FROM jsonb_object_keys(traits)) AS keys
        """,
        (
            [u.customer_id for u in updates],
            [Jsonb(u.traits) for u in updates],
            [u.anonymous_id for u in updates],
        ),
    )
    return await cur.fetchall()


@dataclass(frozen=True)
class Standing:
    """What the journeys may know of a customer when their events are delivered: the
    stored traits and the latest segment refresh's metrics (None: never stored)."""

    customer_id: str
    traits: dict[str, Any] | None
    segment: str | None
    tier: str | None
    r: int | None
    f: int | None
    m: int | None
    ltv: Any


async def standings(conn: AsyncConnection[Any], customer_ids: list[str]) -> list[Standing]:
    """The :class:`Standing` of each of ``customer_ids`` (one row each, known or not)."""
    cur = conn.cursor(row_factory=class_row(Standing))
    await cur.execute(
        "SELECT i.id AS customer_id, c.traits, m.segment, m.tier, m.r, m.f, m.m, m.ltv"
        " FROM unnest(%s::text[]) AS i(id)"
        " LEFT JOIN customers c ON c.customer_id = i.id"
        " LEFT JOIN customer_metrics m ON m.customer_id = i.id",
        (customer_ids,),
    )
    return await cur.fetchall()
