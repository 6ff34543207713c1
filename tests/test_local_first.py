"""Actions run first as a local activity and fall back to a regular one: a relay that
refuses a few times still gets the message exactly once, and the hand-over shows in the
history (local markers, then a scheduled activity)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import psycopg
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

from activities.actions import ActionActivities
from activities.journeys import JourneyActivities
from activities.steps import StepActivities
from engine.identity import workflow_id
from engine.policy import Policy
from engine.segments import load_segments
from tests.conftest import running_worker
from tests.helpers import ROOT, publish_shipped
from tests.standins import RecordingSMTPServer
from tests.test_actions_workflow import Shop, rows, settings_for, settle
from tests.test_crash_windows import local_activities
from worker import all_activities, build_worker
from workflows.io import RecordTransitionsInput


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
    from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

    from orchestration.codec import data_converter
    from settings import DEV_PAYLOAD_KEYS
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
        data_converter=data_converter(DEV_PAYLOAD_KEYS),
        workflow_runner=sandbox_runner(),
    ).replay_workflow(history)


async def test_an_attempt_waits_while_another_may_still_be_delivering(db, db_url):
    """A local try that timed out may still be talking to the relay when the regular
    activity starts: the second attempt waits for the first one's deadline instead of
    sending the message a second time."""
    import pytest
    from psycopg.types.json import Jsonb

    from activities.delivery import Messenger, Outgoing
    from channels import TransientDeliveryError
    from engine.policy import Policy
    from messaging.render import Renderer
    from tests.helpers import ROOT

    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO customers (customer_id, traits) VALUES ('c9', %s)",
            (Jsonb({"email": "c9@example.com"}),),
        )
        await conn.execute(
            "INSERT INTO messages (idempotency_key, customer_id, journey, state, template,"
            " channel, marketing, status, attempts, delivering_until) VALUES ('k9', 'c9',"
            " 'lifecycle', 'new', 'welcome', 'email', false, 'sending', 1,"
            " now() + interval '30 seconds')"
        )
    out = Outgoing(
        key="k9",
        customer_id="c9",
        journey="lifecycle",
        state="new",
        template="welcome",
        channel="email",
        marketing=False,
    )
    base = {
        "customer": {"id": "c9", "tier": None, "segment": None},
        "journey": {"name": "lifecycle", "version": 1},
        "state": "new",
        "ctx": {},
        "event": None,
        "manager": None,
    }
    with RecordingSMTPServer() as smtp:
        settings = settings_for(smtp, db_url)
        messenger = Messenger(db, settings, Renderer(ROOT / "templates"), Policy())
        now = datetime.now(UTC)
        with pytest.raises(TransientDeliveryError, match="may still be delivering"):
            await messenger.send(out, base, now)
        assert smtp.mail == []
        async with db.connection() as conn:  # the first attempt's deadline passed
            await conn.execute("UPDATE messages SET delivering_until = now() - interval '1 second'")
        assert (await messenger.send(out, base, now)).status == "done"
        assert (await messenger.send(out, base, now)).status == "already_done"
        await smtp.wait_for(1)
    assert len(smtp.mail) == 1
    assert await rows(db, "SELECT status, delivering_until FROM messages") == [("sent", None)]


HOOK = """
journey: hook
enroll: {{on: [go]}}
start: idle
states:
  idle:
    on:
      ping:
        do: [{{send: {{template: lead_care, channel: webhook, url: "{url}/hook"}}}}]
      stop: done
  done: {{final: true}}
"""


async def test_a_cancelled_workflow_does_not_start_its_action_again(
    time_env, db, db_url, task_queue, tmp_path
):
    """Cancelling a customer's workflow while an action runs locally ends there: the
    workflow is cancelled and the action is not handed on to a regular activity."""
    import asyncio

    import pytest
    from temporalio.client import WorkflowFailureError
    from temporalio.exceptions import is_cancelled_exception

    from engine.model import Event
    from orchestration import customers
    from tests.helpers import journeys_from, publish
    from tests.standins import RecordingHTTPServer, Reply

    with RecordingHTTPServer(script=[Reply(200, {"id": "slow"}, delay=3.0)]) as hook:
        seq = await publish(db_url, journeys_from(tmp_path, "hook", HOOK.format(url=hook.url)))
        with RecordingSMTPServer() as smtp:
            settings = settings_for(
                smtp, db_url, JOURNEYS_OUTBOUND_ALLOW="127.0.0.1", JOURNEYS_WEBHOOK_SECRET="s"
            )
            async with running_worker(time_env.client, db, task_queue, settings=settings):
                now = await time_env.get_current_time()
                handle = await customers.send_events(
                    time_env.client,
                    "c4",
                    [Event(name=n, id=n, timestamp=now) for n in ("go", "ping")],
                    task_queue=task_queue,
                    catalog_seq=seq,
                )
                while not hook.requests:  # the local try is talking to the hook
                    await asyncio.sleep(0.05)
                await handle.cancel()
                with pytest.raises(WorkflowFailureError) as failed:
                    await handle.result()
                history = await handle.fetch_history()
    assert is_cancelled_exception(failed.value.cause)
    assert len(hook.requests) == 1
    kinds = [e.event_type for e in history.events]
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in kinds
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED in kinds


async def test_a_new_customer_gets_the_catalog_with_the_start_and_loads_none(
    time_env, db, db_url, task_queue
):
    """The dispatcher sends a customer without a workflow the catalog in the start's
    input: their first task runs the welcome at once, with no load_catalog local activity
    (a workflow activation and ~11 KB of history less), logs the step's transitions in the
    welcome's local activity (another activation and marker less), and replays from the
    start event."""
    from temporalio.worker import Replayer

    from orchestration.codec import data_converter
    from orchestration.temporal import sandbox_runner
    from settings import DEV_PAYLOAD_KEYS
    from workflows.customer import CustomerWorkflow
    from workflows.io import CustomerInput

    await publish_shipped(db_url)
    with RecordingSMTPServer() as smtp:
        history = await welcomed(time_env, db, db_url, task_queue, smtp, "c-new")
    assert "load_catalog" not in local_activities(history)
    # the welcome and its step's log (-> new) in one local activity, one marker; the
    # order's step (new -> active) has no action and logs in its own
    assert local_activities(history) == ["act_then_record", "record_transitions"]
    assert await rows(
        db, "SELECT to_state FROM journey_transitions WHERE customer_id = 'c-new' ORDER BY at"
    ) == [("new",), ("active",)]
    converter = data_converter(DEV_PAYLOAD_KEYS)
    started = history.events[0].workflow_execution_started_event_attributes
    (start,) = await converter.decode(started.input.payloads, [CustomerInput])
    assert start.catalog is not None and "lifecycle" in start.catalog.latest
    assert start.catalog.seq == start.catalog_seq
    replayer = Replayer(
        workflows=[CustomerWorkflow], data_converter=converter, workflow_runner=sandbox_runner()
    )
    await replayer.replay_workflow(history)  # raises if it does not replay
    if os.environ.get("RECORD_HISTORIES"):  # replayed by test_customer_workflow
        (ROOT / "tests/histories/catalog_with_the_start_v6.json").write_text(history.to_json())


class _LogFailing(JourneyActivities):
    """The transitions' log fails ``times`` times (PostgreSQL going away), then works."""

    def __init__(self, db: Any, times: int) -> None:
        super().__init__(db)
        self.left = times

    async def record_transitions(self, data: RecordTransitionsInput) -> int:
        if self.left > 0:
            self.left -= 1
            raise psycopg.OperationalError("the server closed the connection unexpectedly")
        return await super().record_transitions(data)


async def test_a_step_whose_log_fails_with_its_action_sends_once_and_logs_once(
    time_env, db, db_url, task_queue
):
    """The welcome goes out in ``act_then_record`` but the step's log cannot be written
    (both quick tries): the welcome is not the one that failed, so the regular activity
    that follows finds it done by its key, and the log is written in its own local
    activity. One email, one message row, one transition row."""
    await publish_shipped(db_url)
    with RecordingSMTPServer() as smtp:
        settings = settings_for(smtp, db_url)
        actions = ActionActivities(db, settings, policy=Policy())
        flaky = _LogFailing(db, times=2)
        steps = StepActivities(actions, flaky)
        kept = all_activities(db, actions, load_segments(ROOT / "rules"))
        acts = [a for a in kept if getattr(a, "__name__", "") != "act_then_record"]
        worker = build_worker(
            time_env.client, settings, [*acts, steps.act_then_record], task_queue=task_queue
        )
        async with worker:
            shop = Shop(time_env, db, db_url, task_queue)
            await shop.send("identify", "c5", traits={"email": "c5@example.com"})
            await shop.send("track", "c5", "Signed Up")
            await smtp.wait_for(1)
            await settle(time_env, 5)
            history = await time_env.client.get_workflow_handle(workflow_id("c5")).fetch_history()
    assert flaky.left == 0
    assert [m.rcpt_tos for m in smtp.mail] == [["c5@example.com"]]
    assert await rows(db, "SELECT template, status FROM messages") == [("welcome", "sent")]
    assert await rows(db, "SELECT to_state FROM journey_transitions") == [("new",)]
    assert local_activities(history) == ["act_then_record", "record_transitions"]
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert scheduled == ["send_message"]
