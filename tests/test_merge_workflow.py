"""What a merge does to journeys, end to end (issue #13): real workflows on the
time-skipping server, real PostgreSQL, a real SMTP server for the relay, events and
merges through the real ingestion path (accept -> outbox -> dispatcher -> workflow)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType, WorkflowExecutionStatus
from temporalio.client import WorkflowHistory
from temporalio.service import RPCError, RPCStatusCode

from engine.model import CustomerState
from orchestration import customers
from orchestration.codec import data_converter
from orchestration.replay import replay_history
from settings import DEV_PAYLOAD_KEYS
from store import identity
from tests.conftest import running_worker
from tests.helpers import publish_shipped
from tests.standins import RecordingSMTPServer
from tests.test_actions_workflow import QUIET, Shop, rows, settings_for, zone_where_it_is
from workflows.customer import CustomerWorkflow
from workflows.io import Handover

HISTORIES = Path(__file__).parent / "histories"


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting: {what}"
        await asyncio.sleep(0.05)


async def merge(shop: Shop, absorbed: str, survivor: str) -> int:
    """Merge in PostgreSQL as ingestion and the admin do; the workflows learn of it from
    the dispatcher's next round."""
    async with shop.db.connection() as conn, conn.transaction():
        done = await identity.merge(conn, absorbed, survivor, via="admin", actor="test")
    assert done is not None
    return done.id


async def deliver(shop: Shop) -> None:
    """Dispatcher rounds until no event and no merge is left waiting."""
    for _ in range(20):
        done = await shop.dispatcher.deliver_once()
        async with shop.db.connection() as conn:
            waiting = await identity.pending_merges(conn)
        if not (done.events or waiting or done.merges_failed):
            return
    raise AssertionError("deliveries never settled")


async def status(env: Any, cid: str) -> int:
    info = await (await customers.handle(env.client, cid)).describe()
    return int(info.raw_description.workflow_execution_info.status)


COMPLETED = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED
RUNNING = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING


async def completed_with(env: Any, cid: str) -> Handover:
    assert await status(env, cid) == COMPLETED, f"{cid}'s workflow still runs"
    result = await (await customers.handle(env.client, cid)).result()
    assert isinstance(result, Handover)
    return result


async def state(env: Any, cid: str) -> CustomerState:
    return await customers.state(env.client, cid)


async def test_an_anonymous_visitor_welcomed_then_merged_is_not_welcomed_again(
    time_env, db, db_url, task_queue
):
    await publish_shipped(db_url)
    with RecordingSMTPServer() as smtp:
        async with running_worker(
            time_env.client, db, task_queue, settings=settings_for(smtp, db_url)
        ):
            shop = Shop(time_env, db, db_url, task_queue)
            await shop.send("identify", "anon-7", traits={"email": "visitor@x.test"})
            await shop.send("track", "anon-7", "Signed Up")
            await smtp.wait_for(1)  # the anonymous profile's welcome
            await shop.send("identify", "ann", traits={"email": "ann@x.test"})
            await merge(shop, "anon-7", "ann")
            await deliver(shop)
            await wait_until(
                lambda: _has_run(time_env, "ann", "lifecycle"), "ann takes lifecycle over"
            )
            # the known customer signs up (again, to them): no enrolment, no second welcome
            known = len((await state(time_env, "ann")).seen)
            await shop.send("track", "ann", "Signed Up")
            await wait_until(lambda: _applied(time_env, "ann", known + 1), "ann's sign-up")
            anon = await state(time_env, "anon-7")
            handover = await completed_with(time_env, "anon-7")
            ann = await state(time_env, "ann")
            # the adopted run goes on where it was: 14 days after the first sign-up
            await time_env.sleep(timedelta(days=14, hours=1))
            await wait_until(
                lambda: _in(time_env, "ann", "lifecycle", "dormant"), "ann turns dormant"
            )
            mail = await smtp.wait_for(2)
    run = anon.runs["lifecycle"]
    assert (run.status, run.history[-1].cause) == ("exited", "merged into ann")
    assert handover.runs["lifecycle"].status == "active" and handover.into == "ann"
    adopted = ann.runs["lifecycle"]
    assert (adopted.state, adopted.status) == ("new", "active")
    assert [h.cause for h in adopted.history] == ["enroll:signed_up", "continued from anon-7"]
    welcomes = await rows(db, "SELECT customer_id FROM messages WHERE template = 'welcome'")
    assert welcomes == [("ann",)]  # one, sent to the visitor, now the known customer's
    assert [m.rcpt_tos for m in mail] == [["visitor@x.test"], ["ann@x.test"]]
    assert "welcome" not in mail[1].message["Subject"].lower()
    log = await rows(
        db,
        "SELECT customer_id, from_state, to_state, cause FROM journey_transitions"
        " WHERE journey = 'lifecycle' ORDER BY at, key",
    )
    assert ("anon-7", "new", "exited", "merged into ann") in log
    assert ("ann", "new", "new", "continued from anon-7") in log
    assert log[-1] == ("ann", "new", "dormant", "timer:14d")


async def test_a_message_deferred_by_quiet_hours_is_dropped_by_the_merge(
    time_env, db, db_url, task_queue, tmp_path
):
    from engine.policy import load_policy

    (tmp_path / "policy.yaml").write_text(QUIET)
    await publish_shipped(db_url)
    now = await time_env.get_current_time()
    tz = zone_where_it_is(22, now)
    with RecordingSMTPServer() as smtp:
        settings = settings_for(smtp, db_url)
        async with running_worker(
            time_env.client, db, task_queue, settings=settings, policy=load_policy(tmp_path)
        ):
            shop = Shop(time_env, db, db_url, task_queue)
            for cid in ("night-anon", "night-other"):  # the other is not merged
                await shop.send("identify", cid, traits={"email": f"{cid}@x.test", "timezone": tz})
                await shop.send("track", cid, "Signed Up")
            await wait_until(lambda: _deferred(db, 2), "both welcomes wait for 09:00")
            await shop.send("identify", "night-ann", traits={"email": "ann@x.test"})
            await merge(shop, "night-anon", "night-ann")
            await deliver(shop)
            await completed_with(time_env, "night-anon")
            await time_env.sleep(timedelta(hours=12))
            mail = await smtp.wait_for(1)  # the other's welcome went out at 09:00
            await time_env.sleep(timedelta(hours=1))
    assert [m.rcpt_tos for m in mail] == [["night-other@x.test"]]
    got = await rows(
        db,
        "SELECT customer_id, status, reason FROM messages WHERE template = 'welcome'"
        " ORDER BY customer_id",
    )
    assert got == [
        ("night-ann", "suppressed", "merged into night-ann"),
        ("night-other", "sent", None),
    ]


async def test_an_alias_chain_ends_with_the_last_customer_holding_the_runs(
    time_env, db, db_url, task_queue
):
    """a -> b, delivered; then b -> c: c has a's lifecycle and b's lead follow-up, a and b
    completed. RECORD_HISTORIES=1 keeps b's history (an absorb, then a merge) in
    tests/histories/, which every later version must replay."""
    await publish_shipped(db_url)
    a, b, c = (f"{n}-{task_queue}" for n in "abc")
    async with running_worker(time_env.client, db, task_queue):
        shop = Shop(time_env, db, db_url, task_queue)
        await shop.send("track", a, "Signed Up")
        await shop.send("track", b, "Lead Created")
        await shop.send("track", c, "Order Completed", properties={"revenue": 5})
        await merge(shop, a, b)
        await deliver(shop)
        await wait_until(lambda: _has_run(time_env, b, "lifecycle"), "b takes a's lifecycle")
        assert (await state(time_env, b)).runs["lifecycle"].history[-1].cause == (
            f"continued from {a}"
        )
        await merge(shop, b, c)
        await deliver(shop)
        await wait_until(lambda: _has_run(time_env, c, "lead_followup"), "c takes b's runs")
        final = await state(time_env, c)
        for cid in (a, b):
            await completed_with(time_env, cid)
        history = await (await customers.handle(time_env.client, b)).fetch_history()
    # c's own lifecycle (it ordered) wins over a's; b's lead follow-up is c's now
    assert final.runs["lifecycle"].state == "active"
    assert [h.cause for h in final.runs["lifecycle"].history] == [
        "enroll:order_completed",
        "event:order_completed",
    ]
    lead = final.runs["lead_followup"]
    assert (lead.status, lead.history[-1].cause) == ("active", f"continued from {b}")
    assert await _replays(history) is None
    if os.environ.get("RECORD_HISTORIES"):
        (HISTORIES / "merge_absorbed_then_merged_v6.json").write_text(history.to_json())


async def test_merges_committed_together_reach_the_current_survivor(
    time_env, db, db_url, task_queue
):
    """a -> b and b -> c committed before the dispatcher runs: a's runs go straight to c
    (b's canonical now), b's too; no workflow is started for b."""
    await publish_shipped(db_url)
    a, b, c = (f"{n}2-{task_queue}" for n in "abc")
    async with running_worker(time_env.client, db, task_queue):
        shop = Shop(time_env, db, db_url, task_queue)
        await shop.send("track", a, "Signed Up")
        await merge(shop, a, b)
        await merge(shop, b, c)
        await deliver(shop)
        await wait_until(lambda: _has_run(time_env, c, "lifecycle"), "c takes a's lifecycle")
        await completed_with(time_env, a)
        with pytest.raises(RPCError) as none:
            await status(time_env, b)
        assert none.value.status == RPCStatusCode.NOT_FOUND
        started = await (await customers.handle(time_env.client, c)).fetch_history()
    # c's workflow, started by the handover, has today's behaviours (no patch markers)
    markers = [
        e.marker_recorded_event_attributes.marker_name
        for e in started.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]
    assert markers and "core_patch" not in markers
    async with db.connection() as conn:
        assert await identity.pending_merges(conn) == []


async def test_a_merge_delivered_twice_changes_nothing_the_second_time(
    time_env, db, db_url, task_queue
):
    await publish_shipped(db_url)
    a, b = f"twice-a-{task_queue}", f"twice-b-{task_queue}"
    async with running_worker(time_env.client, db, task_queue):
        shop = Shop(time_env, db, db_url, task_queue)
        await shop.send("track", a, "Signed Up")
        await shop.send("track", b, "Lead Created")
        merge_id = await merge(shop, a, b)
        await deliver(shop)
        await wait_until(lambda: _has_run(time_env, b, "lifecycle"), "b takes a's lifecycle")
        first = await state(time_env, b)
        logged = await rows(db, "SELECT count(*) FROM journey_transitions")
        # the dispatcher crashed before it marked the merge delivered: it comes again
        await db_execute(db, "UPDATE merges SET delivered_at = NULL WHERE id = %s", merge_id)
        done = await shop.dispatcher.deliver_once()
        assert done.merges == 1
        await time_env.sleep(timedelta(seconds=5))
        again = await state(time_env, b)
    assert again.runs == first.runs and again.seen == first.seen
    assert await rows(db, "SELECT count(*) FROM journey_transitions") == logged
    assert await rows(db, "SELECT delivered_at IS NOT NULL FROM merges") == [(True,)]


async def test_a_failing_merge_holds_later_merges_of_its_customers_only(
    time_env, db, db_url, task_queue, monkeypatch
):
    """Temporal refuses the first merge (a fault injected into the signal): the next merge
    sharing a customer with it waits, in order; an unrelated one goes on."""
    await publish_shipped(db_url)
    async with running_worker(time_env.client, db, task_queue):
        shop = Shop(time_env, db, db_url, task_queue)
        for cid in ("x", "p"):
            await shop.send("track", cid, "Signed Up")
        first = await merge(shop, "x", "y")
        held = await merge(shop, "y", "z")
        other = await merge(shop, "p", "q")
        real = customers.send_merge
        calls: list[str] = []

        async def refusing(client: Any, absorbed: str, *args: Any, **kw: Any) -> Handover:
            calls.append(absorbed)
            if absorbed == "x" and calls.count("x") == 1:
                raise RuntimeError("Temporal is unreachable")
            return await real(client, absorbed, *args, **kw)

        monkeypatch.setattr(customers, "send_merge", refusing)
        done = await shop.dispatcher.deliver_once()
        assert (done.merges, done.merges_failed) == (1, 1)
        assert calls == ["x", "p"]
        failed = await rows(db, "SELECT id, attempts, last_error FROM merges ORDER BY id")
        assert failed[0] == (first, 1, "RuntimeError: Temporal is unreachable")
        assert [
            r[0] for r in await rows(db, "SELECT id FROM merges WHERE delivered_at IS NULL")
        ] == [
            first,
            held,
        ]
        await deliver(shop)
        await wait_until(lambda: _has_run(time_env, "z", "lifecycle"), "z takes x's lifecycle")
        await wait_until(lambda: _has_run(time_env, "q", "lifecycle"), "q takes p's lifecycle")
    assert other not in (first, held)


async def db_execute(db: Any, sql: str, *args: Any) -> None:
    async with db.connection() as conn:
        await conn.execute(sql, args)


async def _has_run(env: Any, cid: str, journey: str) -> bool:
    try:
        return journey in (await state(env, cid)).runs
    except Exception:
        return False


async def _in(env: Any, cid: str, journey: str, where: str) -> bool:
    run = (await state(env, cid)).runs.get(journey)
    return run is not None and run.state == where


async def _applied(env: Any, cid: str, count: int) -> bool:
    return len((await state(env, cid)).seen) >= count


async def _deferred(db: Any, count: int) -> bool:
    return len(await rows(db, "SELECT 1 FROM messages WHERE status = 'deferred'")) >= count


async def _replays(history: WorkflowHistory) -> str | None:
    return await replay_history(
        history, workflows=[CustomerWorkflow], data_converter=data_converter(DEV_PAYLOAD_KEYS)
    )


async def test_a_run_on_an_older_version_is_taken_over_with_that_version(
    time_env, db, db_url, task_queue, tmp_path
):
    """a enrolled in upg v1; v2 is published since (so the survivor's catalog holds only
    v2): b reloads its catalog with v1 and a's run goes on by v1's rules."""
    from tests.helpers import journeys_from, publish
    from tests.test_customer_workflow import V1, V2

    await publish(db_url, journeys_from(tmp_path / "v1", "upg", V1))
    a, b = f"old-a-{task_queue}", f"old-b-{task_queue}"
    async with running_worker(time_env.client, db, task_queue):
        shop = Shop(time_env, db, db_url, task_queue)
        await shop.send("track", a, "joined")
        await wait_until(lambda: _has_run(time_env, a, "upg"), "a enrols in upg v1")
        await publish(db_url, journeys_from(tmp_path / "v2", "upg", V2))
        shop.dispatcher._seq = (0, 0.0)  # read the new catalog head now
        await shop.send("track", b, "Page Viewed")  # b's workflow loads the v2 catalog
        await wait_until(lambda: _applied(time_env, b, 1), "b's workflow runs")
        await merge(shop, a, b)
        await deliver(shop)
        await wait_until(lambda: _has_run(time_env, b, "upg"), "b takes a's upg run")
        await shop.send("track", b, "paid")
        await wait_until(lambda: _in(time_env, b, "upg", "member"), "v1's rule takes b on")
        run = (await state(time_env, b)).runs["upg"]
    assert (run.version, run.state) == (1, "member")  # v2 would have said subscriber


async def test_events_the_absorbed_received_too_late_are_applied_by_the_survivor_once(
    time_env, db, db_url, task_queue
):
    """A handover's pending events (they reached the absorbed workflow while it ended) are
    applied by the survivor, an event it has applied already not again."""
    from engine.model import Event
    from workflows.io import AbsorbedSignal, EventsSignal

    seq = await publish_shipped(db_url)
    b = f"late-b-{task_queue}"
    async with running_worker(time_env.client, db, task_queue):
        now = await time_env.get_current_time()
        order = Event(name="order_completed", id="late-1", timestamp=now, properties={"revenue": 7})
        await customers.send_events(
            time_env.client, b, [order], task_queue=task_queue, catalog_seq=seq
        )
        late = Event(name="order_completed", id="late-2", timestamp=now, properties={"revenue": 5})
        handover = Handover(
            merge_id=1,
            absorbed="gone",
            into=b,
            pending=[EventsSignal(events=[order, late], catalog_seq=seq)],
        )
        await customers.send_absorbed(
            time_env.client,
            b,
            AbsorbedSignal(handover=handover),
            task_queue=task_queue,
            catalog_seq=seq,
        )
        await wait_until(lambda: _applied(time_env, b, 2), "the late order applied")
        run = (await state(time_env, b)).runs["lifecycle"]
    assert run.context == {"orders": 2, "spent": 12.0}  # late-1 once, late-2 once
