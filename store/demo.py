"""What ``journeys demo`` reads back while it fills a development stack: how far the
journeys got with its customers (all of whose ids start with one prefix), and the coupons
and survey links the journeys gave them. Reads only; the demo writes through the API.

Tables read: ``catalogs``, ``journey_versions``, ``events``, ``outbox``, ``dead_letters``,
``customer_metrics``, ``customer_snapshots``, ``customer_journeys``,
``experiment_assignments``, ``offers``, ``surveys``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection


def _like(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


@dataclass(frozen=True)
class Progress:
    """The demo customers' events stored (``sent``: those the demo sent, by their message
    ids), waiting in the outbox, and buried."""

    events: int
    sent: int
    outbox: int
    dead_letters: int


async def progress(conn: AsyncConnection[Any], prefix: str) -> Progress:
    """Counts for the customers whose id starts with ``prefix``."""
    like = _like(prefix)
    cur = await conn.execute(
        "SELECT (SELECT count(*) FROM events WHERE customer_id LIKE %(p)s),"
        " (SELECT count(*) FROM events WHERE customer_id LIKE %(p)s AND message_id LIKE %(p)s),"
        " (SELECT count(*) FROM outbox WHERE customer_id LIKE %(p)s),"
        " (SELECT count(*) FROM dead_letters WHERE customer_id LIKE %(p)s)",
        {"p": like},
    )
    row = await cur.fetchone()
    assert row is not None
    return Progress(*row)


async def tiered_as_of(conn: AsyncConnection[Any], prefix: str) -> datetime | None:
    """The time the customers' newest segment metrics are as of; None when no refresh
    tiered any of them yet."""
    cur = await conn.execute(
        "SELECT max(as_of) FROM customer_metrics WHERE customer_id LIKE %s", (_like(prefix),)
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def segments_behind(conn: AsyncConnection[Any], prefix: str) -> int:
    """Customers whose workflow has not yet shown the segment and tier of the latest
    refresh in its snapshot (the admin read model): their ``segment_changed`` is not
    applied yet."""
    cur = await conn.execute(
        "SELECT count(*) FROM customer_metrics m"
        " LEFT JOIN customer_snapshots s USING (customer_id)"
        " WHERE m.customer_id LIKE %s"
        " AND (s.segment IS DISTINCT FROM m.segment OR s.tier IS DISTINCT FROM m.tier)",
        (_like(prefix),),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def journey_states(conn: AsyncConnection[Any], prefix: str, journey: str) -> dict[str, str]:
    """customer id -> the state of their run of ``journey``, from the read model."""
    cur = await conn.execute(
        "SELECT customer_id, state FROM customer_journeys WHERE journey = %s"
        " AND customer_id LIKE %s",
        (journey, _like(prefix)),
    )
    return {c: s for c, s in await cur.fetchall()}


async def counted_orders(conn: AsyncConnection[Any], prefix: str) -> dict[str, int]:
    """customer id -> ``orders`` in their lifecycle run's context, from the read model."""
    cur = await conn.execute(
        "SELECT customer_id, (context ->> 'orders')::int FROM customer_journeys"
        " WHERE journey = 'lifecycle' AND customer_id LIKE %s AND context ? 'orders'",
        (_like(prefix),),
    )
    return {c: n for c, n in await cur.fetchall()}


async def assignments(
    conn: AsyncConnection[Any], experiment: str, prefix: str
) -> dict[str, tuple[str, datetime]]:
    """customer id -> (arm, time of the split) in ``experiment``."""
    cur = await conn.execute(
        "SELECT customer_id, arm, assigned_at FROM experiment_assignments"
        " WHERE experiment = %s AND customer_id LIKE %s",
        (experiment, _like(prefix)),
    )
    return {c: (arm, at) for c, arm, at in await cur.fetchall()}


async def open_coupons(
    conn: AsyncConnection[Any], journey: str, prefix: str, *, now: datetime
) -> dict[str, str]:
    """customer id -> the code of their newest unredeemed, unexpired offer of ``journey``."""
    cur = await conn.execute(
        "SELECT DISTINCT ON (customer_id) customer_id, code FROM offers"
        " WHERE journey = %s AND customer_id LIKE %s AND redeemed_at IS NULL"
        " AND expires_at > %s ORDER BY customer_id, created_at DESC",
        (journey, _like(prefix), now),
    )
    return {c: code for c, code in await cur.fetchall()}


@dataclass(frozen=True)
class SurveyLink:
    customer_id: str
    token: str
    answered: bool


async def nps_surveys(conn: AsyncConnection[Any], prefix: str) -> dict[str, SurveyLink]:
    """customer id -> their newest NPS survey."""
    cur = await conn.execute(
        "SELECT DISTINCT ON (customer_id) customer_id, token, answered_at IS NOT NULL"
        " FROM surveys WHERE kind = 'nps' AND customer_id LIKE %s"
        " ORDER BY customer_id, created_at DESC",
        (_like(prefix),),
    )
    return {c: SurveyLink(c, t, a) for c, t, a in await cur.fetchall()}


async def published_definitions(conn: AsyncConnection[Any]) -> dict[str, dict[str, Any]]:
    """journey -> the definition of its latest published version, as stored (the journey
    model's JSON): the demo reads what it needs (an experiment's arms) without knowing the
    rest of its shape."""
    cur = await conn.execute(
        "SELECT v.journey, v.definition FROM journey_versions v"
        " JOIN LATERAL (SELECT latest FROM catalogs ORDER BY seq DESC LIMIT 1) c ON true"
        " WHERE (c.latest ->> v.journey)::int = v.version"
    )
    return {j: d for j, d in await cur.fetchall()}
