"""``tag``: the customer's tags in PostgreSQL (the workflow's state holds them already)."""

from __future__ import annotations

from store import tags
from workflows.io import ActionInput, ActionResult

from ._base import ActionBase, now_of, performs


@performs("tag")
async def tag_customer(acts: ActionBase, data: ActionInput) -> ActionResult:
    """Tags added and removed, as the action says; a retry finds them done."""
    async with acts.pool.connection() as conn:  # the workflow holds them already
        await tags.record(conn, data.customer_id, data.command, now=now_of(data))
    return await acts.log(data, ActionResult(status="done"))
