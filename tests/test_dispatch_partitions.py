"""Several dispatchers deliver one outbox (issue #14, scale-out): the 64 partitions are
dealt among the dispatchers alive, each customer is delivered by one of them at a time and
in event order, a dispatcher that stops or dies hands its partitions over, and a
dispatcher of the code before partitions (one leader, the whole outbox) never runs beside
them. Real PostgreSQL; the end-to-end tests deliver to real workflows (time-skipping
server) and run ``journeys dispatch`` as a process of its own."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from typing import Any

import psycopg
import pytest

from ingest._ownership import Ownership, share
from ingest.accept import Interest, accept
from ingest.dispatcher import Dispatcher
from ingest.segment import Message
from store import outbox
from tests.conftest import running_worker
from tests.helpers import ROOT, publish_shipped
from tests.test_api import eventually
from tests.test_poison import orders_are

pytestmark = pytest.mark.timeout(180)


# --- the deal -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 64, 100])
def test_every_partition_is_dealt_to_exactly_one_member(n: int):
    members = [3 * i + 1 for i in range(n)]  # slots need not be consecutive
    shares = [share(m, members) for m in members]
    assert sorted(p for s in shares for p in s) == list(range(outbox.PARTITIONS))
    sizes = [len(s) for s in shares]
    assert max(sizes) - min(sizes) <= 1  # as even as 64 allows
    assert share(999, members) == set()  # not a member: nothing


def test_the_partition_column_matches_for_every_customer_id_shape(db_url: str):
    ids = ["c1", "user-é", "anon-" + "x" * 300, "a@b.example", ""]
    with psycopg.connect(db_url) as conn:
        parts = conn.execute(
            "SELECT (hashtextextended(c, 0) & 63)::int FROM unnest(%s::text[]) AS c", (ids,)
        ).fetchall()
    assert all(0 <= p < outbox.PARTITIONS for (p,) in parts)


# --- membership on real connections -----------------------------------------------------------


async def _connect(url: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(url, autocommit=True)


async def _converged(owners: list[Ownership]) -> bool:
    for own in owners:
        await own.rebalance(force=True)
    held = [own.held for own in owners]
    disjoint = sum(len(h) for h in held) == len(set().union(*held))
    return disjoint and set().union(*held) == set(range(outbox.PARTITIONS))


async def test_dispatchers_share_the_partitions_and_take_over_a_dead_ones(db_url: str):
    conns = [await _connect(db_url) for _ in range(3)]
    try:
        owners = []
        for conn in conns:
            own = await Ownership.join(conn)
            assert own is not None
            owners.append(own)
        assert sorted(o.slot for o in owners) == [0, 1, 2]
        assert await outbox.members(conns[0]) == [0, 1, 2]
        await eventually(lambda: _converged(owners), timeout=60)
        assert sorted(len(o.held) for o in owners) == [21, 21, 22]
        assert sum(o.delivers_merges for o in owners) == 1  # partition 0's holder

        # one dies (its connection ends, no goodbye): the two others take its partitions
        await conns[1].close()
        alive = [owners[0], owners[2]]
        await eventually(lambda: _converged(alive), timeout=60)
        assert sorted(len(o.held) for o in alive) == [32, 32]
        assert sum(o.delivers_merges for o in alive) == 1

        # a newcomer gets the lowest free slot and its share
        conns[1] = await _connect(db_url)
        newcomer = await Ownership.join(conns[1])
        assert newcomer is not None and newcomer.slot == 1
        everyone = [owners[0], newcomer, owners[2]]
        await eventually(lambda: _converged(everyone), timeout=60)
        assert len(newcomer.held) == 21
    finally:
        for conn in conns:
            await conn.close()


async def test_a_leader_of_the_code_before_partitions_never_runs_beside_them(db_url: str):
    old, new = await _connect(db_url), await _connect(db_url)
    try:
        # the older code takes the leader lock alone: a partitioned dispatcher waits
        await old.execute("SELECT pg_advisory_lock(%s)", (outbox._LEADER_LOCK,))
        assert await Ownership.join(new) is None
        await old.execute("SELECT pg_advisory_unlock(%s)", (outbox._LEADER_LOCK,))
        # and the other way round: an older leader cannot start beside a partitioned one
        assert await Ownership.join(new) is not None
        cur = await old.execute("SELECT pg_try_advisory_lock(%s)", (outbox._LEADER_LOCK,))
        assert (await cur.fetchone()) == (False,)
    finally:
        await old.close()
        await new.close()


# --- delivery end to end ------------------------------------------------------------------


def _order(customer: str, i: int, at: Any) -> Message:
    return Message(
        type="track",
        message_id=f"m-{customer}-{i}",
        customer_id=customer,
        anonymous_id=None,
        name="order_completed",
        properties={"revenue": 10.0},
        traits={},
        event_time=at,
    )


async def _accept(db: Any, env: Any, orders: list[tuple[str, int]]) -> None:
    now = await env.get_current_time()
    async with db.connection() as conn:
        batch = [_order(c, i, now) for c, i in orders]
        await accept(conn, 1, batch, now, Interest(set(), everything=True))


async def _outbox_empty(db: Any) -> bool:
    async with db.connection() as conn:
        return await outbox.depth(conn) == 0


async def test_two_dispatchers_deliver_each_customer_once_in_order_and_one_takes_over(
    time_env: Any, db: Any, db_url: str, task_queue: str, monkeypatch: pytest.MonkeyPatch
):
    await publish_shipped(db_url)
    sent: list[tuple[int, str, list[int]]] = []  # (dispatcher, customer, event ids delivered)

    async def client() -> Any:
        return time_env.client

    people = [f"p-{uuid.uuid4().hex[:6]}-{i}" for i in range(24)]
    stops = [asyncio.Event(), asyncio.Event()]
    dispatchers = [
        Dispatcher(db, db_url, client, task_queue=task_queue, batch_size=5, per_customer=2)
        for _ in stops
    ]
    for n, d in enumerate(dispatchers):  # what each one delivered, as it returns it
        original = d._deliver

        async def deliver(client: Any, customer_id: str, *rest: Any, _o=original, _n=n) -> Any:
            out = await _o(client, customer_id, *rest)
            sent.append((_n, customer_id, list(out.delivered)))
            return out

        monkeypatch.setattr(d, "_deliver", deliver)
    async with running_worker(time_env.client, db, task_queue):
        tasks = [
            asyncio.create_task(d.run(stop)) for d, stop in zip(dispatchers, stops, strict=True)
        ]
        await eventually(lambda: _all_held(dispatchers), timeout=60)
        # five orders each, accepted in three waves, so rounds interleave with new events
        for wave in ([1, 2], [3], [4, 5]):
            await _accept(db, time_env, [(p, i) for p in people for i in wave])
        await eventually(lambda: _outbox_empty(db), timeout=60)
        for p in people:
            await eventually(lambda p=p: orders_are(time_env, p, 5), timeout=60)

        # each event once; each customer's events in order, all by one dispatcher
        by_customer: dict[str, list[int]] = defaultdict(list)
        served: dict[str, set[int]] = defaultdict(set)
        for number, customer, ids in sent:
            by_customer[customer] += ids
            served[customer].add(number)
        for p in people:
            ids = by_customer[p]
            assert ids == sorted(ids) and len(ids) == len(set(ids)) == 5, (p, ids)
            assert len(served[p]) == 1, (p, served[p])
        assert {n for s in served.values() for n in s} == {0, 1}  # both did work

        # one stops: the other takes its partitions and delivers its customers' next events
        stops[0].set()
        await tasks[0]
        await eventually(lambda: _holds_all(dispatchers[1]), timeout=60)
        mark = len(sent)
        await _accept(db, time_env, [(p, 6) for p in people])
        await eventually(lambda: _outbox_empty(db), timeout=60)
        for p in people:
            await eventually(lambda p=p: orders_are(time_env, p, 6), timeout=60)
        assert {number for number, _, _ in sent[mark:]} == {1}
        stops[1].set()
        await tasks[1]


async def _all_held(dispatchers: list[Dispatcher]) -> bool:
    owners = [d.ownership for d in dispatchers]
    if any(o is None for o in owners):
        return False
    held = [o.held for o in owners if o is not None]
    return sum(len(h) for h in held) == outbox.PARTITIONS and all(held)


async def _holds_all(d: Dispatcher) -> bool:
    return d.ownership is not None and len(d.ownership.held) == outbox.PARTITIONS


def test_dispatch_refuses_a_bad_flag_with_a_sentence(capsys: pytest.CaptureFixture[str]):
    from cli import run

    assert run(["dispatch", "--concurrency", "0"]) == 1
    err = capsys.readouterr().err
    assert "--concurrency 0 is out of range; give a number from 1 to 10000" in err


async def test_journeys_dispatch_runs_as_a_process_and_stops_on_sigterm(
    time_env: Any, db: Any, db_url: str, task_queue: str
):
    await publish_shipped(db_url)
    target = time_env.client.service_client.config.target_host
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "TEMPORAL_ADDRESS": target,
        "JOURNEYS_TASK_QUEUE": task_queue,
        "JOURNEYS_DISPATCHER": "false",
        "JOURNEYS_ENV": "development",  # the development keys the test server's client has
    }
    people = [f"d-{uuid.uuid4().hex[:6]}-{i}" for i in range(5)]
    async with running_worker(time_env.client, db, task_queue):
        proc = subprocess.Popen(  # noqa: ASYNC220  started once; waited for below
            [sys.executable, "-m", "cli", "dispatch", "--concurrency", "4"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        delivered: BaseException | None = None
        try:
            await _accept(db, time_env, [(p, i) for p in people for i in (1, 2)])

            async def delivered_or_exited() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(f"journeys dispatch exited ({proc.returncode})")
                return await _outbox_empty(db)

            await eventually(delivered_or_exited, timeout=60)
            for p in people:
                await eventually(lambda p=p: orders_are(time_env, p, 2), timeout=60)
        except AssertionError as exc:
            delivered = exc
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
        text = out.decode()
        assert delivered is None, f"{delivered}; the process printed: {text}"
        assert proc.returncode == 0, text
        assert f"dispatching the outbox to task queue '{task_queue}'" in text
        assert "dispatcher stopped" in text
