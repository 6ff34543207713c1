"""Real customer workflows on the time-skipping test server, with real PostgreSQL."""

from __future__ import annotations

import json
import os
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from temporalio.client import WorkflowHistory, WorkflowUpdateFailedError
from temporalio.worker import Replayer

from engine.identity import workflow_id
from engine.model import Event
from engine.simulate import simulate
from ingest.event_file import parse_messages
from orchestration import customers
from orchestration.codec import data_converter
from orchestration.replay import replay_history
from settings import DEV_PAYLOAD_KEYS
from store import catalog as catalog_store
from tests.conftest import running_worker
from tests.helpers import ROOT, journeys_from, publish, publish_shipped
from workflows.customer import CustomerWorkflow


async def test_quiet_customer_is_dormant_after_60_days_then_lost(time_env, db, db_url, task_queue):
    seq = await publish_shipped(db_url)
    client = time_env.client
    async with running_worker(client, db, task_queue):
        now = await time_env.get_current_time()
        cid = f"c-{task_queue}"
        await customers.send_events(
            client,
            cid,
            [Event(name="Order Completed", id="o1", timestamp=now, properties={"revenue": 100})],
            task_queue=task_queue,
            catalog_seq=seq,
        )
        await time_env.sleep(timedelta(days=1))
        st = await customers.state(client, cid)
        assert st.runs["lifecycle"].state == "active"
        await time_env.sleep(timedelta(days=60))
        st = await customers.state(client, cid)
        assert st.runs["lifecycle"].state == "dormant"
        await time_env.sleep(timedelta(days=30))
        st = await customers.state(client, cid)
        assert st.runs["lifecycle"].state == "lost"
        assert st.runs["lifecycle"].status == "completed"
    async with db.connection() as conn:
        cur = await conn.execute("SELECT action FROM action_log ORDER BY created_at")
        assert [r[0] for r in await cur.fetchall()] == ["send", "offer"]
        cur = await conn.execute(
            "SELECT from_state, to_state, cause FROM journey_transitions ORDER BY at, key"
        )
        rows = await cur.fetchall()
    assert [(r[0], r[1]) for r in rows] == [
        (None, "new"),
        ("new", "active"),
        ("active", "dormant"),
        ("dormant", "lost"),
    ]


async def _event(env, name: str, **props) -> Event:
    return Event(
        name=name, id=str(uuid.uuid4()), timestamp=await env.get_current_time(), properties=props
    )


async def test_continue_as_new_keeps_state_and_dedupe_window(time_env, db, db_url, task_queue):
    seq = await publish_shipped(db_url)
    client = time_env.client
    cid = f"can-{task_queue}"
    async with running_worker(client, db, task_queue):
        first = await _event(time_env, "Order Completed", revenue=10)
        handle = await customers.send_events(
            client, cid, [first], task_queue=task_queue, catalog_seq=seq, max_steps_per_run=4
        )
        first_run = (await handle.describe()).run_id
        for _ in range(11):
            await customers.send_events(
                client,
                cid,
                [await _event(time_env, "order_completed", revenue=10)],
                task_queue=task_queue,
                catalog_seq=seq,
                max_steps_per_run=4,
            )
        # the very first event again, after several continue-as-new: applied once
        await customers.send_events(client, cid, [first], task_queue=task_queue, catalog_seq=seq)
        await time_env.sleep(timedelta(seconds=5))
        st = await customers.state(client, cid)
        assert st.runs["lifecycle"].context == {"orders": 12, "spent": 120.0}
        assert st.runs["lifecycle"].state == "active"
        latest_run = (await client.get_workflow_handle(workflow_id(cid)).describe()).run_id
        assert latest_run != first_run
        # timers survive continue-as-new: 60 days later the customer is dormant
        await time_env.sleep(timedelta(days=61))
        assert (await customers.state(client, cid)).runs["lifecycle"].state == "dormant"


V1 = """
journey: upg
enroll: {on: [joined]}
context: {points: 0}
start: trial
states:
  trial:
    on:
      paid: member
    after:
      10d: expired
  member:
    on:
      left: gone
  expired:
    final: true
  gone:
    final: true
"""
V2 = """
journey: upg
enroll: {on: [joined]}
context: {points: 0, level: 1}
start: trial
migrate:
  member: subscriber
states:
  trial:
    on:
      paid: subscriber
    after:
      20d: expired
  subscriber:
    on:
      left: gone
  expired:
    final: true
  gone:
    final: true
"""


async def test_upgrade_moves_customers_in_flight_through_migrate_map(
    time_env, db, db_url, task_queue, tmp_path
):
    client = time_env.client
    seq1 = await publish(db_url, journeys_from(tmp_path / "v1", "upg", V1))
    member, trial = f"m-{task_queue}", f"t-{task_queue}"
    async with running_worker(client, db, task_queue):
        for cid, names in ((member, ["joined", "paid"]), (trial, ["joined"])):
            events = [await _event(time_env, n) for n in names]
            await customers.send_events(
                client, cid, events, task_queue=task_queue, catalog_seq=seq1
            )
        await time_env.sleep(timedelta(days=5))
        assert (await customers.state(client, member)).runs["upg"].state == "member"
        # v2 renames member -> subscriber and lengthens the trial; publish and upgrade
        await publish(db_url, journeys_from(tmp_path / "v2", "upg", V2))
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            seq2, version = await catalog_store.raise_floor(conn, "upg")
        assert version == 2
        for cid in (member, trial):
            await customers.notify_catalog(client, cid, seq2)
        await time_env.sleep(timedelta(days=1))
        m = (await customers.state(client, member)).runs["upg"]
        assert (m.version, m.state, m.context) == (2, "subscriber", {"points": 0, "level": 1})
        assert m.history[-1].cause == "upgrade v1->v2"
        # the trial timer now counts 20 days from entry, not 10: still in trial at day 15
        await time_env.sleep(timedelta(days=9))
        t = (await customers.state(client, trial)).runs["upg"]
        assert (t.version, t.state) == (2, "trial")
        await time_env.sleep(timedelta(days=6))
        assert (await customers.state(client, trial)).runs["upg"].state == "expired"


async def test_upgrade_refuses_a_removed_state_without_migrate(db_url, tmp_path):
    await publish(db_url, journeys_from(tmp_path / "v1", "upg", V1))
    broken = V2.replace("migrate:\n  member: subscriber\n", "")
    await publish(db_url, journeys_from(tmp_path / "v2", "upg", broken))
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        with pytest.raises(Exception, match="state 'member' of v1 is gone"):
            await catalog_store.raise_floor(conn, "upg")
        _, _, floor = await catalog_store.head(conn)
    assert floor == {}


async def test_admin_move_is_validated_and_recorded(time_env, db, db_url, task_queue):
    seq = await publish_shipped(db_url)
    client = time_env.client
    cid = f"mv-{task_queue}"
    async with running_worker(client, db, task_queue):
        await customers.send_events(
            client,
            cid,
            [await _event(time_env, "signed_up")],
            task_queue=task_queue,
            catalog_seq=seq,
        )
        result = await customers.move(client, cid, "lifecycle", "vip", "big account")
        assert (result.state, result.version) == ("vip", 1)
        with pytest.raises(WorkflowUpdateFailedError) as bad:
            await customers.move(client, cid, "lifecycle", "vipp", "typo")
        assert "no state 'vipp'" in str(bad.value.cause)
        st = await customers.state(client, cid)
    run = st.runs["lifecycle"]
    assert run.state == "vip"
    assert run.history[-1].cause == "admin: big account"
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT action FROM action_log WHERE customer_id = %s ORDER BY created_at", (cid,)
        )
        assert [r[0] for r in await cur.fetchall()] == ["send", "assign_manager", "send"]


async def test_history_replays_on_a_fresh_worker(time_env, db, db_url, task_queue):
    """A worker without cache rebuilds a customer by replaying history: the replay must
    take the same decisions. RECORD_HISTORIES=NAME keeps this run's history as
    tests/histories/NAME.json, for the replay test of every later version."""
    seq = await publish_shipped(db_url)
    client = time_env.client
    cid = f"rs-{task_queue}"
    async with running_worker(client, db, task_queue):
        handle = await customers.send_events(
            client,
            cid,
            [await _event(time_env, "lead_created")],
            task_queue=task_queue,
            catalog_seq=seq,
        )
        await time_env.sleep(timedelta(days=4))
        await customers.send_events(
            client,
            cid,
            [await _event(time_env, "signed_up")],
            task_queue=task_queue,
            catalog_seq=seq,
        )
        await time_env.sleep(timedelta(days=30))
        st = await customers.state(client, cid)
        history = await handle.fetch_history()
    assert (st.runs["lead_followup"].state, st.runs["lead_followup"].status) == (
        "closed",
        "completed",
    )
    assert st.runs["lifecycle"].state == "dormant"
    await replayer().replay_workflow(history)
    name = os.environ.get("RECORD_HISTORIES")  # RECORD_HISTORIES=lead_followup_v3 -> a file
    if name:
        HISTORIES.mkdir(exist_ok=True)
        (HISTORIES / f"{name}.json").write_text(history.to_json())
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT action, count(*) FROM action_log WHERE customer_id = %s"
            " GROUP BY action ORDER BY action",
            (cid,),
        )
        assert await cur.fetchall() == [("offer", 1), ("send", 2), ("tag", 1), ("task", 1)]


def replayer() -> Replayer:
    from worker import sandbox_runner

    return Replayer(
        workflows=[CustomerWorkflow],
        data_converter=data_converter(DEV_PAYLOAD_KEYS),
        workflow_runner=sandbox_runner(),
    )


HISTORIES = Path(__file__).parent / "histories"


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.name)
async def test_recorded_histories_still_replay(path: Path):
    """Histories recorded by earlier versions, replayed as a worker would (with the repair
    of split tasks, orchestration.replay): a change that would break customers in flight (a
    non-deterministic workflow change) fails here."""
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    failure = await replay_history(
        history,
        workflows=[CustomerWorkflow],
        data_converter=data_converter(DEV_PAYLOAD_KEYS),
    )
    assert failure is None, failure


EVENTS = """
{"type":"identify","userId":"ann","traits":{"email":"ann@example.com","plan":"pro"},"timestamp":"T+0h"}
{"type":"track","userId":"ann","event":"Signed Up","timestamp":"T+1h","messageId":"a1"}
{"type":"track","userId":"ann","event":"Order Completed","properties":{"revenue":2500},"timestamp":"T+50h","messageId":"a2"}
{"type":"track","userId":"ann","event":"Order Completed","properties":{"revenue":2600},"timestamp":"T+300h","messageId":"a3"}
{"type":"track","userId":"bob","event":"Signed Up","timestamp":"T+2h","messageId":"b1"}
{"type":"track","userId":"bob","event":"Order Delivered","timestamp":"T+3h","messageId":"b2"}
{"type":"track","userId":"cat","event":"Lead Created","timestamp":"T+5h","messageId":"c1"}
{"type":"track","userId":"cat","event":"Order Completed","properties":{"revenue":40},"timestamp":"T+400h","messageId":"c2"}
{"type":"track","userId":"cat","event":"Order Completed","properties":{"revenue":40},"timestamp":"T+400h","messageId":"c2"}
"""


async def test_simulator_and_workflows_agree(time_env, db, db_url, task_queue):
    seq = await publish_shipped(db_url)
    client = time_env.client
    start = await time_env.get_current_time()
    lines = []
    for line in EVENTS.strip().splitlines():
        hours = int(line.split('"T+')[1].split("h")[0])
        stamp = (start + timedelta(hours=hours, minutes=1)).isoformat()
        lines.append(line.replace(f"T+{hours}h", stamp))
    messages = parse_messages(lines)
    until = start + timedelta(days=120)
    from engine import Catalog, load_rules

    expected = {
        r.customer_id: r
        for r in simulate(
            Catalog.of(load_rules(ROOT / "rules", ROOT / "templates")), messages, until=until
        )
    }
    prefix = task_queue
    async with running_worker(client, db, task_queue):
        for m in sorted(messages, key=lambda m: (m.timestamp, m.line)):
            now = await time_env.get_current_time()
            if m.timestamp > now:
                await time_env.sleep(m.timestamp - now)
            from engine.identity import redact_traits
            from workflows.io import CustomerPatch

            if m.kind == "identify":
                await customers.send_events(
                    client,
                    prefix + m.customer_id,
                    [],
                    task_queue=task_queue,
                    catalog_seq=seq,
                    customer=CustomerPatch(traits=redact_traits(m.traits)),
                )
            else:
                assert m.event is not None
                event = m.event.model_copy(update={"timestamp": m.timestamp})
                await customers.send_events(
                    client, prefix + m.customer_id, [event], task_queue=task_queue, catalog_seq=seq
                )
        await time_env.sleep(until - await time_env.get_current_time())
        actual = {cid: await customers.state(client, prefix + cid) for cid in expected}
    for cid, result in expected.items():
        want = {n: (r.state, r.status, r.context) for n, r in result.state.runs.items()}
        got = {n: (r.state, r.status, r.context) for n, r in actual[cid].runs.items()}
        assert got == want, cid
        assert actual[cid].customer.traits == {"plan": "pro"} if cid == "ann" else True
    # spot-check the story the file tells
    ann = expected["ann"].state.runs["lifecycle"]
    assert (ann.state, ann.context["spent"]) == ("dormant", 5100.0)  # VIP at 5100, quiet 90d
    assert [t.to_state for t in ann.history] == ["new", "active", "vip", "dormant"]
    assert expected["bob"].state.runs["nps"].state == "no_answer"
    assert expected["cat"].state.runs["lifecycle"].context["orders"] == 1
    assert json.dumps(expected["cat"].as_json())  # serialisable as the CLI prints it
