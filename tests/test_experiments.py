"""Experiments and goals for real: the customer's workflow on the time-skipping server, real
PostgreSQL, a real SMTP server for the relay, events through the real ingestion path. The
holdout never receives a message; a conversion is recorded once with its arm, revenue and
time; ``exit_on_goal`` ends the run; the arm stays the same across continue-as-new, a
re-enrolment and an upgrade to other weights; ``GET /v1/customers/{id}`` shows them."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from engine.experiments import HOLDOUT, assign
from engine.model import Event, Run
from ingest import keys
from orchestration import customers
from settings import Settings
from store import catalog as catalog_store
from tests.conftest import running_worker
from tests.helpers import ROOT, journeys_from, publish, until
from tests.standins import RecordingSMTPServer
from tests.test_actions_workflow import Shop, rows, settings_for, settle
from tests.test_upgrade import serving
from workflows.io import SIGNAL_EVENTS, EventsSignal

TRIAL = """
journey: trial
enroll: {on: [signed_up]}
start: welcome
states:
  welcome:
    enter:
      - split: {experiment: trial_offer, arms: {offer: 50, holdout: 50}}
      - send: {template: welcome}
      - offer: {template: reactivation_offer, percent_off: 15, when: 'ctx.arm == "offer"'}
    on:
      order_completed: bought
    after:
      30d: quiet
  bought: {final: true}
  quiet: {final: true}
goal: {event: order_completed, within: 14d, when: 'event.properties.revenue > 0'}
exit_on_goal: true
"""
ARMS = {"offer": 50, "holdout": 50}


def first_in(arm: str, prefix: str, arms: dict[str, int] = ARMS, also: Any = None) -> str:
    """The first id ``prefix-N`` in ``arm`` of trial_offer (and satisfying ``also``)."""
    for i in range(1000):
        cid = f"{prefix}-{i}"
        if assign("trial_offer", arms, cid) == arm and (also is None or also(cid)):
            return cid
    raise AssertionError("no such id")


async def test_the_holdout_gets_no_message_and_converts_once_with_arm_revenue_and_time(
    time_env, db, db_url, task_queue, tmp_path: Path
) -> None:
    seq = await publish(db_url, journeys_from(tmp_path, "trial", TRIAL))
    assert seq
    offered, held = first_in("offer", "shopper"), first_in(HOLDOUT, "shopper")
    async with db.connection() as conn:
        _, admin = await keys.create(conn, "admin", "test admin")
    with RecordingSMTPServer() as smtp:
        settings = settings_for(smtp, db_url, JOURNEYS_TASK_QUEUE=task_queue)
        async with running_worker(time_env.client, db, task_queue, settings=settings):
            shop = Shop(time_env, db, db_url, task_queue)
            for cid in (offered, held):
                await shop.send("identify", cid, traits={"email": f"{cid}@example.com"})
                await shop.send("track", cid, "Signed Up")
            await smtp.wait_for(2)  # the offered customer's welcome and offer
            await until(
                lambda: rows(db, "SELECT 1 FROM experiment_assignments HAVING count(*) = 2")
            )
            await settle(time_env)
            assert {m.rcpt_tos[0] for m in smtp.mail} == {f"{offered}@example.com"}
            state = await customers.state(time_env.client, held)
            # the welcome was withheld; the offer's when: (the offer arm) did not hold
            assert (state.runs["trial"].arm, state.runs["trial"].withheld) == (HOLDOUT, 1)
            split_at = state.runs["trial"].split_at
            assert split_at == state.runs["trial"].enrolled_at
            # twelve days later the held customer orders: the goal, within its 14 days
            await time_env.sleep(timedelta(days=12))
            await shop.send("track", held, "Order Completed", properties={"revenue": 30})
            converted = await until(
                lambda: rows(
                    db,
                    "SELECT arm, experiment, revenue::float8, started_at, converted_at,"
                    " goal_event, enrollment FROM conversions WHERE customer_id = %s",
                    held,
                )
            )
            await shop.send("track", held, "Order Completed", properties={"revenue": 99})
            await settle(time_env)
            run = (await customers.state(time_env.client, held)).runs["trial"]
            assert (run.status, run.history[-1].cause) == ("exited", "goal")
            if os.environ.get("RECORD_HISTORIES"):  # replayed by test_customer_workflow
                history = await (await customers.handle(time_env.client, held)).fetch_history()
                (ROOT / "tests/histories/experiment_holdout_converts_v6.json").write_text(
                    history.to_json()
                )
            async with (
                serving(_api_settings(db_url, task_queue), time_env.client) as url,
                httpx.AsyncClient(base_url=url, timeout=10) as http,
            ):
                auth = {"Authorization": f"Bearer {admin}"}
                shown = (await http.get(f"/v1/customers/{held}", headers=auth)).json()
    ((arm, experiment, revenue, start, at, goal_event, enrollment),) = converted
    assert (arm, experiment, revenue, goal_event, enrollment) == (
        HOLDOUT,
        "trial_offer",
        30.0,
        "order_completed",
        1,
    )
    assert start == split_at  # the window opened at the split (here: the enrolment)
    assert timedelta(days=12) <= at - start < timedelta(days=12, minutes=5)
    assert await rows(db, "SELECT count(*) FROM conversions") == [(1,)]  # once, and only hers
    sent = await rows(db, "SELECT customer_id, template, status FROM messages ORDER BY id")
    assert sent == [(offered, "welcome", "sent"), (offered, "reactivation_offer", "sent")]
    held_log = await rows(
        db, "SELECT action, status FROM action_log WHERE customer_id = %s ORDER BY 1", held
    )
    assert held_log == [("convert", "done"), ("split", "done")]  # no send, no offer
    assigned = await rows(
        db, "SELECT customer_id, arm, journey FROM experiment_assignments ORDER BY arm"
    )
    assert assigned == [(held, HOLDOUT, "trial"), (offered, "offer", "trial")]
    assert shown["experiments"]["trial_offer"]["arm"] == HOLDOUT
    assert shown["journeys"]["trial"]["arm"] == HOLDOUT
    assert shown["journeys"]["trial"]["converted_at"] is not None
    ((conversion),) = shown["conversions"]
    assert (conversion["arm"], conversion["revenue"]) == (HOLDOUT, 30.0)


def _api_settings(db_url: str, task_queue: str) -> Settings:
    return Settings.model_validate(
        {
            "DATABASE_URL": db_url,
            "JOURNEYS_TASK_QUEUE": task_queue,
            "JOURNEYS_ENV": "development",
            "JOURNEYS_DISPATCHER": "false",
            "JOURNEYS_TEMPLATES": str(ROOT / "templates"),
        }
    )


async def _run(env: Any, cid: str) -> Run:
    return (await customers.state(env.client, cid)).runs["sticky"]


STICKY = """
journey: sticky
enroll: {on: [joined], reenter: after_exit}
start: member
states:
  member:
    enter:
      - split: {experiment: sticky_test, arms: {a: 50, b: 50}}
    on:
      left: gone
  gone: {final: true}
"""
HEAVY = {"a": 1, "b": 99}


async def test_the_arm_is_the_same_across_continue_as_new_re_enrolment_and_an_upgrade(
    time_env, db, db_url, task_queue, tmp_path: Path
) -> None:
    client = time_env.client
    seq = await publish(db_url, journeys_from(tmp_path / "v1", "sticky", STICKY))
    # in arm a at 50/50, but in b if the 1/99 weights of v2 were asked
    cid = next(
        c
        for c in (f"sticky-{i}" for i in range(1000))
        if assign("sticky_test", {"a": 50, "b": 50}, c) == "a"
        and assign("sticky_test", HEAVY, c) == "b"
    )
    n = 0

    async def events(*names: str) -> None:
        nonlocal n
        now = await time_env.get_current_time()
        batch = []
        for name in names:
            n += 1
            batch.append(Event(name=name, id=f"{cid}-{n}", timestamp=now))
        handle = await customers.handle(client, cid)
        await handle.signal(SIGNAL_EVENTS, EventsSignal(events=batch, catalog_seq=seq))
        await settle(time_env)  # a query in the same instant as a signal may not be answered

    async with running_worker(client, db, task_queue):
        now = await time_env.get_current_time()
        first = await customers.send_events(
            client,
            cid,
            [Event(name="joined", id=f"{cid}-0", timestamp=now)],
            task_queue=task_queue,
            catalog_seq=seq,
            max_steps_per_run=2,  # continue-as-new every other step
        )
        first_run = first.result_run_id
        await settle(time_env)  # as after a signal below
        assert (await until(lambda: _arm_of(time_env, cid, enrollment=1))) == "a"
        await events("left")
        await events("joined")  # enrolment 2, after a continue-as-new
        assert (await until(lambda: _arm_of(time_env, cid, enrollment=2))) == "a"
        described = await (await customers.handle(client, cid)).describe()
        assert described.run_id != first_run, "no continue-as-new happened"
        # v2 changes the weights; the floor moves the active run to it, then a new enrolment
        v2 = STICKY.replace("{a: 50, b: 50}", "{a: 1, b: 99}")
        seq = await publish(db_url, journeys_from(tmp_path / "v2", "sticky", v2))
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            seq = (await catalog_store.raise_floor(conn, "sticky")).seq
        await customers.notify_catalog(client, cid, seq)
        await settle(time_env)  # as after a signal above
        upgraded = await until(lambda: _on_v2(time_env, cid))
        assert (upgraded.arm, upgraded.enrollment) == ("a", 2)
        await events("left")
        await events("joined")
        assert (await until(lambda: _arm_of(time_env, cid, enrollment=3))) == "a"
        run = await _run(time_env, cid)
        assert run.version == 2
    assigned = await rows(
        db,
        "SELECT arm, version, enrollment FROM experiment_assignments WHERE customer_id = %s",
        cid,
    )
    assert assigned == [("a", 1, 1)]  # the first row stays
    logged = await rows(db, "SELECT count(*) FROM action_log WHERE action = 'split'")
    assert logged == [(3,)]  # each enrolment's split ran its activity


async def _arm_of(env: Any, cid: str, *, enrollment: int) -> str | None:
    run = await _run(env, cid)
    return run.arm if run.enrollment == enrollment and run.status == "active" else None


async def _on_v2(env: Any, cid: str) -> Run | None:
    run = await _run(env, cid)
    return run if run.version == 2 else None
