"""Delivery scale-out: 1, 2 and 4 dispatchers, and 1 and 2 workers, against one server.

    python -m bench.dispatch_bench [--customers 2000] [--worker-customers 600]
                                   [--events-per-customer 2]

Starts its own embedded stack (Temporal dev server with the WAL pragmas, PostgreSQL, the
API with its dispatcher off) in a temporary directory. Each row fills the outbox through
``/v1/batch`` with new customers first (every signal a signal-with-start that creates a
workflow, the server's dearest call), then runs the dispatchers as ``journeys dispatch``
processes (started, and holding the partitions between them, before the clock starts)
and times them from the first request until the outbox is empty:

* against a no-op worker (``bench.noop customer``: Journeys' workflow name, nothing
  done), so the figure is what the dispatchers and the server sustain, and each
  dispatcher's CPU per 1k signals shows whether the dispatchers are the limit;
* against 1 and 2 real workers (``worker.py``), until every customer's journey shows
  every order in the read model (PostgreSQL, so measuring puts no load on Temporal), and
  then every customer's history replays with the current code.

On 2 cores the server's CPU is the ceiling; the table shows where each process spends.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil
import psycopg

from bench import ingest_bench
from bench._common import bench_stack, print_table, replay_rows
from bench.ingest_bench import _cpu, order, post_batches
from devstack.stack import ROOT, Stack
from store import outbox


def _dispatchers(stack: Stack, n: int, queue: str) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, **stack.env(), "JOURNEYS_TASK_QUEUE": queue, "PYTHONUNBUFFERED": "1"}
    return [
        subprocess.Popen(
            [sys.executable, "-m", "cli", "dispatch"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(n)
    ]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    while True:
        if await check():
            return
        await asyncio.sleep(0.1)


async def _ready(url: str, n: int) -> bool:
    """Whether ``n`` dispatchers run and hold every partition between them."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        members = await outbox.members(conn)
        held = await outbox.partitions_held(conn)
    return len(members) == n and held == outbox.PARTITIONS


async def _empty(url: str) -> bool:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return await outbox.depth(conn) == 0


async def _fill(url: str, key: str, people: list[str], per: int) -> None:
    # every customer's first order first: the first signals create the workflows
    events = [order(p, i) for i in range(1, per + 1) for p in people]
    batches = [events[i : i + 100] for i in range(0, len(events), 100)]
    await post_batches(url, key, batches, 8)


async def _one_row(
    stack: Stack,
    key: str,
    server: psutil.Process,
    *,
    dispatchers: int,
    queue: str,
    people: list[str],
    per: int,
    wait_applied: bool,
) -> tuple[float, float, list[float]]:
    """(events/s, server CPU per 1k events, CPU per 1k events of each dispatcher) for
    one run: fill the outbox, then time the dispatchers until it is empty
    (and, with ``wait_applied``, until every customer shows every order)."""
    url = f"http://127.0.0.1:{stack.api_port}"
    db = stack.database_url or ""
    procs = _dispatchers(stack, dispatchers, queue)
    handles = [psutil.Process(p.pid) for p in procs]
    try:
        # started and dealt the partitions before timing: process start-up is not delivery
        await _until(lambda: _ready(db, dispatchers))
        cpu_s, cpu_d = _cpu(server), [_cpu(h) for h in handles]
        started = time.perf_counter()
        await _fill(url, key, people, per)
        await _until(lambda: _empty(db))
        if wait_applied:
            await ingest_bench.wait_applied(db, dict.fromkeys(people, per))
        took = time.perf_counter() - started
        cpu_each = [_cpu(h) - c for h, c in zip(handles, cpu_d, strict=True)]
    finally:
        _stop(procs)
    events = len(people) * per  # in fewer signals: a backlog coalesces each customer's
    server_cpu = _cpu(server) - cpu_s
    return events / took, server_cpu / events * 1000, [c / events * 1000 for c in cpu_each]


async def measure(args: argparse.Namespace, stack: Stack, key: str) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    server = psutil.Process(stack.temporal_proc.pid)  # type: ignore[union-attr]
    address = stack.env()["TEMPORAL_ADDRESS"]
    noop_queue = f"noop-{uuid.uuid4().hex[:6]}"
    noop = subprocess.Popen(  # noqa: ASYNC220  started once, before timing
        [sys.executable, "-m", "bench.noop", address, noop_queue, "customer"], cwd=ROOT
    )
    try:
        await asyncio.sleep(2)
        for n in (1, 2, 4):
            people = [f"n{n}-{uuid.uuid4().hex[:6]}-{i}" for i in range(args.customers)]
            ev, server_cpu, each = await _one_row(
                stack,
                key,
                server,
                dispatchers=n,
                queue=noop_queue,
                people=people,
                per=args.events_per_customer,
                wait_applied=False,
            )
            rows.append(
                (
                    f"{n} dispatcher(s), no-op worker: events/s",
                    f"{ev:,.0f}",
                )
            )
            rows.append(("  server CPU, core-s per 1k events", f"{server_cpu:.2f}"))
            rows.append(
                (
                    "  each dispatcher's CPU, core-s per 1k events",
                    " / ".join(f"{c:.2f}" for c in each),
                )
            )
    finally:
        noop.terminate()
        noop.wait()

    workers: list[subprocess.Popen[bytes]] = []
    for m in (1, 2):
        while len(workers) < m:
            workers.append(stack.start_worker())
        await asyncio.sleep(3)  # the new worker polls before timing
        people = [f"w{m}-{uuid.uuid4().hex[:6]}-{i}" for i in range(args.worker_customers)]
        ev, server_cpu, _ = await _one_row(
            stack,
            key,
            server,
            dispatchers=1,
            queue=stack.task_queue,
            people=people,
            per=args.events_per_customer,
            wait_applied=True,
        )
        rows.append((f"1 dispatcher, {m} worker(s): applied events/s", f"{ev:,.0f}"))
        rows.append(("  server CPU, core-s per 1k events", f"{server_cpu:.2f}"))

    from orchestration.temporal import connect
    from settings import Settings

    rows += await replay_rows(await connect(Settings.model_validate(stack.env())))
    return rows


def run(args: argparse.Namespace) -> list[tuple[str, str]]:
    stack = bench_stack(
        Path(tempfile.mkdtemp(prefix="journeys-dispatch-bench-")),
        "bench",
        extra_env={"JOURNEYS_DISPATCHER": "false"},  # only the measured dispatchers send
    )
    with stack.running():
        stack.prepare_database()
        key, _ = stack.dev_keys()
        stack.start_api()
        return asyncio.run(measure(args, stack, key))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=2000, help="per no-op row")
    parser.add_argument("--worker-customers", type=int, default=600, help="per worker row")
    parser.add_argument("--events-per-customer", type=int, default=2)
    args = parser.parse_args()
    print_table(
        f"customers={args.customers} (no-op rows), {args.worker_customers} (worker rows); "
        f"events per customer={args.events_per_customer}",
        run(args),
        value_width=14,
    )


if __name__ == "__main__":
    main()
