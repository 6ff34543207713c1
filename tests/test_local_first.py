"""Actions run first as a local activity and fall back to a regular one: a relay that
refuses a few times still gets the message exactly once, and the hand-over shows in the
history (local markers, then a scheduled activity)."""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

from engine.identity import workflow_id
from tests.conftest import running_worker
from tests.helpers import publish_shipped
from tests.standins import RecordingSMTPServer
from tests.test_actions_workflow import Shop, rows, settings_for, settle


async def welcomed(
    env: Any,
    db: Any,
    db_url: str,
    task_queue: str,
    smtp: RecordingSMTPServer,
    cid: str,
    **extra: str,
) -> WorkflowHistory:
    """A new customer with an email address signs up (the welcome goes out); their
    workflow's history once things settled."""
    settings = settings_for(smtp, db_url, **extra)
    async with running_worker(env.client, db, task_queue, settings=settings):
        shop = Shop(env, db, db_url, task_queue)
        await shop.send("identify", cid, traits={"email": f"{cid}@example.com"})
        await shop.send("track", cid, "Signed Up")
        await shop.send("track", cid, "Order Completed", properties={"revenue": 5})
        await smtp.wait_for(1)
        await settle(env, 5)
        return await env.client.get_workflow_handle(workflow_id(cid)).fetch_history()


async def test_a_refusing_relay_hands_the_send_to_a_regular_activity_and_sends_once(
    time_env, db, db_url, task_queue
):
    await publish_shipped(db_url)
    # the local tries (two) and the regular activity's first attempt are refused
    with RecordingSMTPServer(replies=["451 4.7.1 try later"] * 3) as smtp:
        history = await welcomed(time_env, db, db_url, task_queue, smtp, "c1")
    assert len(smtp.rejected) == 3
    assert [m.rcpt_tos for m in smtp.mail] == [["c1@example.com"]]
    assert await rows(db, "SELECT template, status FROM messages") == [("welcome", "sent")]
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert scheduled == ["send_message"]


async def test_a_healthy_send_costs_the_server_no_activity_task(time_env, db, db_url, task_queue):
    await publish_shipped(db_url)
    with RecordingSMTPServer() as smtp:
        history = await welcomed(time_env, db, db_url, task_queue, smtp, "c2")
    kinds = {e.event_type for e in history.events}
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in kinds
    assert EventType.EVENT_TYPE_MARKER_RECORDED in kinds
    assert await rows(db, "SELECT template, status FROM messages") == [("welcome", "sent")]


async def test_without_the_sandbox_the_same_workflow_runs_and_replays_sandboxed(
    time_env, db, db_url, task_queue
):
    """``JOURNEYS_WORKFLOW_SANDBOX=false`` (less CPU) runs the same code: a history made
    without the sandbox replays inside it, so the setting can change across restarts."""
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

    from worker import build_worker, sandbox_runner
    from workflows.customer import CustomerWorkflow

    await publish_shipped(db_url)
    with RecordingSMTPServer() as smtp:
        settings = settings_for(smtp, db_url, JOURNEYS_WORKFLOW_SANDBOX="false")
        plain = build_worker(time_env.client, settings, [], task_queue=f"{task_queue}-other")
        assert isinstance(plain.config()["workflow_runner"], UnsandboxedWorkflowRunner)
        history = await welcomed(
            time_env, db, db_url, task_queue, smtp, "c3", JOURNEYS_WORKFLOW_SANDBOX="false"
        )
    await Replayer(
        workflows=[CustomerWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=sandbox_runner(),
    ).replay_workflow(history)
