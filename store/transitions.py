"""The journeys' state changes, ``journey_transitions``: appended once each (by key), for
reports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection


@dataclass(frozen=True)
class Transition:
    """One customer's move from one state of a journey to another."""

    key: str  # deterministic: a replayed or retried workflow writes it once
    customer_id: str
    journey: str
    version: int
    from_state: str | None
    to_state: str
    cause: str
    at: datetime


async def append(conn: AsyncConnection[Any], transitions: Sequence[Transition]) -> None:
    """Store ``transitions``; one stored before (same key) is left as it is."""
    if not transitions:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO journey_transitions (key, customer_id, journey, version,"
            " from_state, to_state, cause, at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (key) DO NOTHING",
            [_row(t) for t in transitions],
        )


def _row(t: Transition) -> tuple[Any, ...]:
    return (t.key, t.customer_id, t.journey, t.version, t.from_state, t.to_state, t.cause, t.at)
