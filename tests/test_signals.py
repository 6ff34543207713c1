"""A signal the workflow cannot decode is a problem the admin sees, not a silent drop."""

from __future__ import annotations

import asyncio

from engine.model import Event
from orchestration import customers
from tests.conftest import running_worker
from tests.helpers import publish_shipped
from workflows.io import SIGNAL_EVENTS


async def test_an_undecodable_events_signal_is_recorded_as_a_problem(
    time_env, db, db_url, task_queue
):
    seq = await publish_shipped(db_url)
    client = time_env.client
    cid = f"undecodable-{task_queue}"
    async with running_worker(client, db, task_queue):
        now = await time_env.get_current_time()
        handle = await customers.send_events(
            client,
            cid,
            [Event(name="Signed Up", id="s1", timestamp=now)],
            task_queue=task_queue,
            catalog_seq=seq,
        )
        # what an older or foreign sender might put in the signal: not an EventsSignal
        await handle.signal(SIGNAL_EVENTS, {"events": "not a list", "email": "ann@example.com"})
        await customers.send_events(
            client,
            cid,
            [Event(name="Order Completed", id="o1", timestamp=now, properties={"revenue": 5})],
            task_queue=task_queue,
            catalog_seq=seq,
        )
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            st = await customers.state(client, cid)
            if st.runs["lifecycle"].context.get("orders") == 1:
                break
            assert asyncio.get_running_loop().time() < deadline, st
            await asyncio.sleep(0.1)
    signal_problems = [p for p in st.problems if "events signal" in p.message]
    assert len(signal_problems) == 1, st.problems
    problem = signal_problems[0]
    assert "an events signal of" in problem.message
    assert "could not be decoded (ValidationError)" in problem.message
    assert "ann@example.com" not in problem.message  # its data never shows
    assert st.runs["lifecycle"].state == "active"  # later signals still apply
