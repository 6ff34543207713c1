"""What we know of a customer: their profile (``customers``: the traits merged over every
identify, contact details included) and their latest metrics (``customer_metrics``, as
the last segment refresh wrote them).

Who writes and reads what:

* :func:`merge_traits`: ingestion, in the transaction that stores the messages;
* :func:`profile`: the admin API (``GET /v1/customers/{id}``) and ``journeys render``;
* :func:`traits`: the send activities (a message's address, consent and quiet-hours traits);
* :func:`metrics`: the admin API;
* :func:`standings`: the outbox dispatcher, what journeys may know of a customer with an
  event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
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
    first_order_at: datetime | None = None  # for calendar timers (customer.first_order)
    p_alive: float | None = None  # the refresh's forecast (None: it had none)
    churn_risk: float | None = None
    predicted_clv_365d: float | None = None
    seen: bool = False  # their workflow has written the admin read model: it exists


async def standings(conn: AsyncConnection[Any], customer_ids: list[str]) -> list[Standing]:
    """The :class:`Standing` of each of ``customer_ids`` (one row each, known or not)."""
    cur = conn.cursor(row_factory=class_row(Standing))
    await cur.execute(
        "SELECT i.id AS customer_id, c.traits, m.segment, m.tier, m.r, m.f, m.m, m.ltv,"
        " m.first_order_at, m.p_alive, m.churn_risk, m.predicted_clv_365d,"
        " s.customer_id IS NOT NULL AS seen"
        " FROM unnest(%s::text[]) AS i(id)"
        " LEFT JOIN customers c ON c.customer_id = i.id"
        " LEFT JOIN customer_metrics m ON m.customer_id = i.id"
        " LEFT JOIN customer_snapshots s ON s.customer_id = i.id",
        (customer_ids,),
    )
    return await cur.fetchall()


@dataclass(frozen=True)
class Profile:
    """A customer's row: every trait (contact details too) and when we first saw them."""

    customer_id: str
    traits: dict[str, Any]
    anonymous_id: str | None
    first_seen: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Metrics:
    """A customer's RFM figures, segment and tier from the latest refresh. Money stays
    ``Decimal`` (``numeric`` columns), as the admin API has always answered it."""

    recency_days: int | None
    orders: int
    revenue: Decimal
    r: int
    f: int
    m: int
    segment: str
    tier: str
    ltv: Decimal
    ltv_orders: int
    aov: Decimal | None
    first_order_at: datetime | None
    last_order_at: datetime | None
    as_of: datetime
    computed_at: datetime
    # the refresh's forecast (docs/segments.md, Forecast); None: that refresh had none
    p_alive: float | None = None
    churn_risk: float | None = None
    expected_orders_90d: float | None = None
    predicted_clv_365d: float | None = None


async def profile(conn: AsyncConnection[Any], customer_id: str) -> Profile | None:
    """The customer's profile, or None when no event or identify call named them yet."""
    cur = conn.cursor(row_factory=class_row(Profile))
    await cur.execute(
        "SELECT customer_id, traits, anonymous_id, first_seen, updated_at FROM customers"
        " WHERE customer_id = %s",
        (customer_id,),
    )
    return await cur.fetchone()


# the traits of %(customer)s, {} without a profile: a query of its own, or a subquery of the
# one statement that claims a message (store.messages.claim)
TRAITS = (
    "SELECT coalesce((SELECT traits FROM customers WHERE customer_id = %(customer)s), '{}'::jsonb)"
)


async def traits(conn: AsyncConnection[Any], customer_id: str) -> dict[str, Any]:
    """The customer's traits; ``{}`` for a customer without a profile."""
    cur = await conn.execute(TRAITS, {"customer": customer_id})
    row = await cur.fetchone()
    return dict(row[0]) if row and row[0] else {}


_METRICS = (
    "recency_days, orders, revenue, r, f, m, segment, tier, ltv, ltv_orders, aov,"
    " first_order_at, last_order_at, as_of, computed_at,"
    " p_alive, churn_risk, expected_orders_90d, predicted_clv_365d"
)


async def metrics(conn: AsyncConnection[Any], customer_id: str) -> Metrics | None:
    """The customer's latest metrics, or None before a refresh tiered them."""
    cur = conn.cursor(row_factory=class_row(Metrics))
    await cur.execute(
        f"SELECT {_METRICS} FROM customer_metrics WHERE customer_id = %s", (customer_id,)
    )
    return await cur.fetchone()
