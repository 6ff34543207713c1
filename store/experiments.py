"""Experiment assignments and conversions (tables ``experiment_assignments``, ``conversions``,
migration 0014): what ``split`` and goal actions did, written by their activities.

The customer's workflow is the source of truth (``engine.goals`` decides the arm and the
conversion in its state); the activities write the same here, where the lift report,
``GET /v1/customers/{id}`` and the demo read it. Writing is idempotent: the first row
stays (an assignment per customer and experiment, a conversion per run), so a retried
activity, a re-enrolment or a later split of the same experiment changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from engine.model import ActionCommand


@dataclass(frozen=True)
class Assignment:
    """A customer's arm of one experiment, as their first split gave it."""

    experiment: str
    arm: str
    journey: str
    version: int
    enrollment: int
    assigned_at: datetime
    idempotency_key: str


@dataclass(frozen=True)
class Conversion:
    """One journey run's conversion."""

    journey: str
    enrollment: int
    version: int
    experiment: str | None
    arm: str | None
    goal_event: str
    event_id: str
    revenue: float
    started_at: datetime
    converted_at: datetime
    idempotency_key: str


async def record_assignment(
    conn: AsyncConnection[Any], customer_id: str, command: ActionCommand
) -> bool:
    """Write the arm the ``split`` action ``command`` gave; False when the customer already
    had a row for the experiment (it stays as it was)."""
    args = command.args
    cur = await conn.execute(
        "INSERT INTO experiment_assignments (experiment, customer_id, arm, journey, version,"
        " enrollment, assigned_at, idempotency_key) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (experiment, customer_id) DO NOTHING RETURNING 1",
        (
            args["experiment"],
            customer_id,
            args["arm"],
            command.journey,
            command.version,
            args["enrollment"],
            datetime.fromisoformat(args["assigned_at"]),
            command.idempotency_key,
        ),
    )
    return await cur.fetchone() is not None


async def record_conversion(
    conn: AsyncConnection[Any], customer_id: str, command: ActionCommand
) -> bool:
    """Write the conversion the ``convert`` action ``command`` says; False when the run had
    converted already (the first row stays)."""
    args = command.args
    cur = await conn.execute(
        "INSERT INTO conversions (customer_id, journey, enrollment, version, experiment, arm,"
        " goal_event, event_id, revenue, started_at, converted_at, idempotency_key)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (customer_id, journey, enrollment) DO NOTHING RETURNING 1",
        (
            customer_id,
            command.journey,
            args["enrollment"],
            command.version,
            args.get("experiment"),
            args.get("arm"),
            args["goal_event"],
            args["event_id"],
            args.get("revenue") or 0,
            datetime.fromisoformat(args["started_at"]),
            datetime.fromisoformat(args["converted_at"]),
            command.idempotency_key,
        ),
    )
    return await cur.fetchone() is not None


async def assignments_of(conn: AsyncConnection[Any], customer_id: str) -> list[Assignment]:
    """The customer's arms, by experiment."""
    cur = conn.cursor(row_factory=class_row(Assignment))
    await cur.execute(
        "SELECT experiment, arm, journey, version, enrollment, assigned_at, idempotency_key"
        " FROM experiment_assignments WHERE customer_id = %s ORDER BY experiment",
        (customer_id,),
    )
    return await cur.fetchall()


async def conversions_of(conn: AsyncConnection[Any], customer_id: str) -> list[Conversion]:
    """The customer's conversions, oldest first."""
    cur = conn.cursor(row_factory=class_row(Conversion))
    await cur.execute(
        "SELECT journey, enrollment, version, experiment, arm, goal_event, event_id,"
        " revenue::float8 AS revenue, started_at, converted_at, idempotency_key"
        " FROM conversions WHERE customer_id = %s ORDER BY converted_at, journey",
        (customer_id,),
    )
    return await cur.fetchall()
