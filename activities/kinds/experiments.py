"""``split`` and ``convert``: a customer's experiment arm and a run's conversion in
PostgreSQL (the workflow's state holds them already, ``engine.goals``)."""

from __future__ import annotations

from store import experiments
from workflows.io import ActionInput, ActionResult

from ._base import ActionBase, performs


@performs("split")
async def record_experiment_assignment(acts: ActionBase, data: ActionInput) -> ActionResult:
    """The customer's arm, once per experiment: a retry or a later split finds it."""
    async with acts.pool.connection() as conn:
        new = await experiments.record_assignment(conn, data.customer_id, data.command)
    arm = data.command.args["arm"]
    return await acts.log(
        data, ActionResult(status="done" if new else "already_done", detail={"arm": arm})
    )


@performs("convert")
async def record_conversion(acts: ActionBase, data: ActionInput) -> ActionResult:
    """The run's conversion, once: a retry finds it."""
    async with acts.pool.connection() as conn:
        new = await experiments.record_conversion(conn, data.customer_id, data.command)
    return await acts.log(data, ActionResult(status="done" if new else "already_done"))
