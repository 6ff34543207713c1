"""What we know of a customer: their profile (``customers``: traits as identify calls
merged them, contact details included) and their latest metrics (``customer_metrics``, as
the last segment refresh wrote them). Reads only; ingestion writes profiles and the
refresh writes metrics.

Who reads what:

* ``profile``: the admin API (``GET /v1/customers/{id}``) and ``journeys render``;
* ``traits``: the send activities (a message's address, consent and quiet-hours traits);
* ``metrics``: the admin API;
* ``facts``: the dispatcher, what a customer's journeys may know of them with an event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row


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


@dataclass(frozen=True)
class Facts:
    """What journeys may be told of a customer: traits (None: no profile yet) and the
    latest segment, tier, RFM scores and lifetime value (None: never refreshed)."""

    customer_id: str
    traits: dict[str, Any] | None
    segment: str | None
    tier: str | None
    r: int | None
    f: int | None
    m: int | None
    ltv: Decimal | None


async def profile(conn: AsyncConnection[Any], customer_id: str) -> Profile | None:
    """The customer's profile, or None when no event or identify call named them yet."""
    cur = conn.cursor(row_factory=class_row(Profile))
    await cur.execute(
        "SELECT customer_id, traits, anonymous_id, first_seen, updated_at FROM customers"
        " WHERE customer_id = %s",
        (customer_id,),
    )
    return await cur.fetchone()


async def traits(conn: AsyncConnection[Any], customer_id: str) -> dict[str, Any]:
    """The customer's traits; ``{}`` for a customer without a profile."""
    found = await profile(conn, customer_id)
    return dict(found.traits) if found is not None and found.traits else {}


_METRICS = (
    "recency_days, orders, revenue, r, f, m, segment, tier, ltv, ltv_orders, aov,"
    " first_order_at, last_order_at, as_of, computed_at"
)


async def metrics(conn: AsyncConnection[Any], customer_id: str) -> Metrics | None:
    """The customer's latest metrics, or None before a refresh tiered them."""
    cur = conn.cursor(row_factory=class_row(Metrics))
    await cur.execute(
        f"SELECT {_METRICS} FROM customer_metrics WHERE customer_id = %s", (customer_id,)
    )
    return await cur.fetchone()


async def facts(conn: AsyncConnection[Any], customer_ids: list[str]) -> list[Facts]:
    """``Facts`` for each of ``customer_ids`` (one row each, known or not), in one query."""
    cur = conn.cursor(row_factory=class_row(Facts))
    await cur.execute(
        "SELECT i.id AS customer_id, c.traits, m.segment, m.tier, m.r, m.f, m.m, m.ltv"
        " FROM unnest(%s::text[]) AS i(id)"
        " LEFT JOIN customers c ON c.customer_id = i.id"
        " LEFT JOIN customer_metrics m ON m.customer_id = i.id",
        (customer_ids,),
    )
    return await cur.fetchall()
