"""``task``: a task for a person (the customer's account manager, or a pool's)."""

from __future__ import annotations

from datetime import timedelta

from activities.delivery import config_error
from engine.actions import Task
from store import managers, tasks
from workflows.io import ActionInput, ActionResult

from ._base import ActionBase, now_of, performs


@performs("task")
async def create_task(acts: ActionBase, data: ActionInput) -> ActionResult:
    """The task, once, due ``due_in`` after this attempt's time."""
    spec = Task.model_validate(data.command.args)
    now = now_of(data)
    try:
        async with acts.pool.connection() as conn, conn.transaction():
            task = await tasks.create(
                conn,
                idempotency_key=data.command.idempotency_key,
                customer_id=data.customer_id,
                journey=data.command.journey,
                title=spec.title,
                note=spec.note,
                assignee=spec.assignee,
                due_at=now + timedelta(seconds=spec.due_in),
            )
    except managers.UnknownPool as exc:
        raise config_error(str(exc)) from None
    return await acts.log(data, ActionResult(status="done", detail={"task": task.id}))
