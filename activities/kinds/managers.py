"""``assign_manager``: an account manager from a pool, or a place in the pool's queue."""

from __future__ import annotations

from activities.assignment import manager_note
from activities.delivery import config_error
from store import managers, waitlist
from workflows.io import ActionInput, ActionResult

from ._base import ActionBase, now_of, performs


@performs("assign_manager")
async def assign_account_manager(acts: ActionBase, data: ActionInput) -> ActionResult:
    """A manager with room, their introduction task and a note to them; when nobody has
    room, the customer waits in the pool's queue (assigned when a manager is added)."""
    pool = str(data.command.args["pool"])
    cmd = data.command
    now = now_of(data)
    base = acts.context(data)
    unknown: managers.UnknownPool | None = None
    async with acts.pool.connection() as conn, conn.transaction():
        await managers.lock_pool(conn, pool)  # held until the customer is queued
        try:
            got = await managers.assign(conn, customer_id=data.customer_id, pool=pool)
        except managers.UnknownPool as exc:
            got, unknown = None, exc
        if got is None:
            # nobody has room: wait in the pool's queue, assigned when a manager is added
            waiting = waitlist.Waiting(
                data.customer_id, pool, cmd.idempotency_key, cmd.journey, cmd.state,
                {k: v for k, v in base.items() if k != "manager"},
            )  # fmt: skip
            await waitlist.enqueue(conn, waiting)
        else:
            await waitlist.leave(conn, data.customer_id, pool)  # if it waited before
    if unknown is not None:
        raise config_error(
            f"{unknown}; the customer waits in the pool's queue and gets a manager "
            "when one is added"
        )
    if got is None:
        reason = (
            f"every active manager of pool '{pool}' is at capacity; the customer waits "
            "in the pool's queue and gets a manager when one is added"
        )
        return await acts.log(data, ActionResult(status="queued", reason=reason))
    manager, _new = got
    # the introduction task and the note to the manager: each once, by its own key
    async with acts.pool.connection() as conn:
        await waitlist.create_intro_task(
            conn,
            idempotency_key=cmd.idempotency_key,
            customer_id=data.customer_id,
            journey=cmd.journey,
            pool=pool,
            now=now,
        )
    out = manager_note(
        key=cmd.idempotency_key,
        customer_id=data.customer_id,
        journey=cmd.journey,
        state=cmd.state,
        manager=manager,
    )
    await acts.message(data, {**base, "manager": out.context["manager"]}, out)
    result = ActionResult(status="done", detail={"manager": manager.id})
    return await acts.log(data, result)
