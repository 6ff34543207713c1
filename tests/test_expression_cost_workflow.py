"""A costly CEL condition in a real workflow (time-skipping server, sandboxed): 16,000
items looked up inside a comprehension took 10.5 s, past the SDK's 2 s deadlock detector,
and the workflow task failed on every retry. Now it is a problem on the customer, and the
journey goes on."""

from __future__ import annotations

import asyncio
from typing import Any

from engine.model import Event
from orchestration import customers
from tests.conftest import running_worker
from tests.helpers import COSTLY_LOOKUP, journeys_from, publish


async def test_a_costly_condition_is_a_problem_not_a_stuck_workflow(
    time_env, db, db_url, task_queue, tmp_path
):
    seq = await publish(db_url, journeys_from(tmp_path, "shop", COSTLY_LOOKUP))
    async with running_worker(time_env.client, db, task_queue):
        now = await time_env.get_current_time()
        events = [
            Event(name="signed_up", id="e1", timestamp=now),
            Event(
                name="order_completed",
                id="e2",
                timestamp=now,
                properties={"items": list(range(16_000))},
            ),
        ]
        await customers.send_events(
            time_env.client, "c1", events, task_queue=task_queue, catalog_seq=seq
        )
        state: Any = None
        deadline = asyncio.get_running_loop().time() + 15
        while asyncio.get_running_loop().time() < deadline:
            state = await customers.state(time_env.client, "c1")
            if "shop" in state.runs and state.runs["shop"].state != "new":
                break
            await asyncio.sleep(0.1)
    assert state.runs["shop"].state == "other"
    (problem,) = state.problems
    assert "not evaluated" in problem.message and "more than 1000 values" in problem.message
