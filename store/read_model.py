"""The admin read model: each customer's journeys as their workflow last wrote them.

Admin reads (``GET /v1/customers/{id}``, ``journeys show``) answer from here, so they are
fast and keep working while Temporal, a worker or the customer's workflow is down (a
killed worker's customers are frozen for up to the sticky timeout). The workflow writes a
snapshot with its transitions (activity ``record_transitions``, one call: ``record``); each
carries a sequence number that only grows, so a retried or late write of an older snapshot
changes nothing. Transitions go to ``journey_transitions``, once each by key, for reports.

    customer_snapshots   one row per customer: seq, time, tier, segment, problems
    customer_journeys    one row per customer and journey: state, status, context, since,
                         next timer (due, label, target), the seq that wrote it
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

HISTORY = 10  # transitions shown per journey, as the workflow keeps them


@dataclass
class JourneyRow:
    journey: str
    version: int
    state: str
    status: str
    context: dict[str, Any]
    since: datetime
    enrolled_at: datetime | None = None
    next_timer_due: datetime | None = None
    next_timer_label: str | None = None
    next_timer_target: str | None = None


@dataclass
class Snapshot:
    seq: int
    at: datetime
    tier: str | None = None
    segment: str | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)
    journeys: list[JourneyRow] = field(default_factory=list)


async def record(conn: AsyncConnection[Any], customer_id: str, log: str) -> None:
    """Store a workflow step's ``log`` (the JSON of ``workflows.io.RecordTransitionsInput``:
    its transitions, each once by key, and the customer's snapshot unless one with the
    same or a higher seq is there) in one call and one transaction. The customer's row is
    locked first, so concurrent writers serialise and the highest seq wins whatever the
    order they arrive in (the function ``journeys_record``,
    store/migrations/0023_record_in_one_call.sql)."""
    await conn.execute("SELECT journeys_record(%s, %s::jsonb)", (customer_id, log))


async def read(conn: AsyncConnection[Any], customer_id: str) -> Snapshot | None:
    """The customer's latest stored snapshot, or None when their workflow never wrote one."""
    cur = await conn.execute(
        "SELECT seq, at, tier, segment, problems FROM customer_snapshots WHERE customer_id = %s",
        (customer_id,),
    )
    head = await cur.fetchone()
    if head is None:
        return None
    cur = await conn.execute(
        "SELECT journey, version, state, status, context, since, enrolled_at, next_timer_due,"
        " next_timer_label, next_timer_target FROM customer_journeys WHERE customer_id = %s"
        " ORDER BY journey",
        (customer_id,),
    )
    journeys = [JourneyRow(*row) for row in await cur.fetchall()]
    return Snapshot(head[0], head[1], head[2], head[3], list(head[4]), journeys)


async def history(
    conn: AsyncConnection[Any], customer_id: str, *, per_journey: int = HISTORY
) -> dict[str, list[dict[str, Any]]]:
    """The customer's latest transitions per journey, oldest first, from the transition log."""
    cur = await conn.execute(
        "SELECT journey, at, from_state, to_state, cause FROM ("
        " SELECT *, row_number() OVER (PARTITION BY journey ORDER BY at DESC, key DESC) AS n"
        " FROM journey_transitions WHERE customer_id = %s) t"
        " WHERE n <= %s ORDER BY journey, at, key",
        (customer_id, per_journey),
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for journey, at, source, target, cause in await cur.fetchall():
        out.setdefault(journey, []).append(
            {"at": at, "from_state": source, "to_state": target, "cause": cause}
        )
    return out
