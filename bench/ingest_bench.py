"""Ingestion end to end: HTTP in -> PostgreSQL -> outbox -> Temporal -> state changed.

    python -m bench.ingest_bench [--customers 10000] [--events 100000] [--clients 8]

Starts its own embedded stack (Temporal dev server with the WAL pragmas, PostgreSQL, the
worker and the API as processes) in a temporary directory and prints one table:

* the ceiling: bare signal-with-start to a no-op workflow on the same server, measured
  before and again after Journeys' load, and the ratios taken against the mean of the two:
  the dev server's cost per start grows with what its database holds (about a quarter
  more per start after a few thousand workflows), so a ceiling measured only on the empty
  server, before the load, would charge that growth to Journeys;
* accepted events/s through /v1/batch, applied events/s (until every workflow shows every
  event), p50/p95/p99 send->applied latency at half the ceiling's rate, CPU of the worker
  and the server, worker RSS per cached customer;
* events no journey listens to: accepted/s (they never reach Temporal).

On 2 cores the server's own CPU is the limit, so the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from temporalio.client import Client

from bench._common import bench_stack, print_table, replay_rows
from devstack.stack import ROOT, Stack
from settings import Settings


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    total = t.user + t.system
    for child in proc.children(recursive=True):
        try:
            ct = child.cpu_times()
            total += ct.user + ct.system
        except psutil.NoSuchProcess:
            pass
    return total


async def ceiling(
    client: Client,
    address: str,
    n_customers: int,
    n_signals: int,
    concurrency: int,
    server: psutil.Process,
) -> tuple[float, float]:
    """Signals/s of bare signal-with-start to a no-op workflow, and the server's CPU
    seconds per signal meanwhile: plain JSON payloads, as the no-op worker reads them
    (Journeys' own client encrypts; that cost counts against it). Every signal to a
    customer not seen yet is a start, as in the real load of the same shape."""
    client = await Client.connect(address, namespace=client.namespace)
    queue = f"noop-{uuid.uuid4().hex[:6]}"
    worker = subprocess.Popen(  # noqa: ASYNC220  started once, before timing
        [sys.executable, "-m", "bench.noop", address, queue], cwd=ROOT
    )
    try:
        await asyncio.sleep(2)
        gate = asyncio.Semaphore(concurrency)
        ids = [f"noop-{queue}-{i}" for i in range(n_customers)]

        async def one(i: int) -> None:
            async with gate:
                await client.start_workflow(
                    "NoopWorkflow",
                    id=ids[i % n_customers],
                    task_queue=queue,
                    start_signal="event",
                    start_signal_args=[{"i": i}],
                )

        cpu = _cpu(server)
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n_signals)))
        # applied: every workflow has seen its signals
        want = {ids[c]: 0 for c in range(n_customers)}
        for i in range(n_signals):
            want[ids[i % n_customers]] += 1
        sample = random.Random(1).sample(list(want), min(50, len(want)))

        async def seen(w: str) -> int:
            try:
                return int(await client.get_workflow_handle(w).query("seen"))
            except Exception:  # a query times out while the server is saturated
                return -1

        while True:
            counts = await asyncio.gather(*(seen(w) for w in sample))
            if all(c == want[w] for c, w in zip(counts, sample, strict=True)):
                break
            await asyncio.sleep(0.5)
        return n_signals / (time.perf_counter() - started), (_cpu(server) - cpu) / n_signals
    finally:
        worker.terminate()
        worker.wait()


async def post_batches(
    url: str, key: str, batches: list[list[dict[str, Any]]], clients: int
) -> float:
    """Send ``batches`` with ``clients`` concurrent HTTP clients; return seconds taken."""
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)

    async def client_loop() -> None:
        async with httpx.AsyncClient(base_url=url, auth=(key, ""), timeout=60) as http:
            while not queue.empty():
                batch = queue.get_nowait()
                for _ in range(20):
                    r = await http.post("/v1/batch", json={"batch": batch})
                    if r.status_code == 200:
                        break
                    await asyncio.sleep(0.5)  # 429 backpressure or 503: retry like an SDK
                else:
                    raise RuntimeError(f"batch refused: {r.status_code} {r.text}")

    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    return time.perf_counter() - started


def order(customer: str, i: int) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": customer,
        "event": "Order Completed",
        "messageId": f"{customer}-{i}",
        "properties": {"revenue": 1.0},
        "timestamp": datetime.now(UTC).isoformat(),
    }


async def wait_applied(db_url: str, expected: dict[str, int]) -> None:
    """Until every customer's lifecycle journey counts its expected orders in the admin
    read model, which the workflow writes in the task that applied the event: polling
    PostgreSQL puts no load on Temporal or the worker (queries to the workflows did,
    hundreds a second, competing with the load being measured)."""
    import psycopg

    ids, wants = list(expected), [expected[c] for c in expected]
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        while True:
            cur = await conn.execute(
                "SELECT count(*) FROM unnest(%s::text[], %s::int[]) AS w(id, n)"
                " JOIN customer_journeys j ON j.customer_id = w.id AND j.journey = 'lifecycle'"
                " WHERE (j.context->>'orders')::int >= w.n",
                (ids, wants),
            )
            row = await cur.fetchone()
            if row and row[0] >= len(ids):
                return
            await asyncio.sleep(0.2)


async def latency(
    client: Client, stack: Stack, url: str, key: str, rate: float, seconds: float
) -> Latency:
    """Send->applied for single events at ``rate``/s over warm probe customers. "Applied" is
    the completion of the workflow task that took the event's signal, read afterwards
    from the customers' histories, so measuring adds no load while it runs."""
    import json

    import psycopg
    from temporalio.api.enums.v1 import EventType

    from engine.identity import workflow_id

    probes = [f"probe-{uuid.uuid4().hex[:6]}-{i}" for i in range(100)]
    async with httpx.AsyncClient(base_url=url, auth=(key, ""), timeout=30) as http:
        for p in probes:  # warm: the workflows exist and are cached before timing
            (await http.post("/v1/track", json=order(p, 0))).raise_for_status()
        await wait_applied(stack.database_url or "", dict.fromkeys(probes, 1))
        start = time.perf_counter()
        i = 0
        while time.perf_counter() - start < seconds:
            body = {
                **order(probes[i % len(probes)], i + 1),
                "properties": {"revenue": 1.0, "sent_at": time.time()},
            }
            (await http.post("/v1/track", json=body)).raise_for_status()
            i += 1
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
    expected = dict.fromkeys(probes, 1)
    for n in range(i):
        expected[probes[n % len(probes)]] += 1
    await wait_applied(stack.database_url or "", expected)
    async with await psycopg.AsyncConnection.connect(stack.database_url or "") as conn:
        cur = await conn.execute(
            "SELECT id, (properties->>'sent_at')::float FROM events WHERE properties ? 'sent_at'"
        )
        sent_at = {f"event-{r[0]}": r[1] for r in await cur.fetchall()}
    samples = Latency()
    for p in probes:
        history = await client.get_workflow_handle(workflow_id(p)).fetch_history()
        pending: list[tuple[str, float]] = []
        started = 0.0  # the workflow task that will apply the pending signals
        for ev in history.events:
            at = ev.event_time.ToDatetime(tzinfo=UTC).timestamp()
            if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                sealed = ev.workflow_execution_signaled_event_attributes.input.payloads[0]
                assert client.data_converter.payload_codec is not None
                (plain,) = await client.data_converter.payload_codec.decode([sealed])
                body = json.loads(plain.data)
                pending += [(e["id"], at) for e in body.get("events", [])]
            elif ev.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and pending:
                started = at
            elif ev.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and pending:
                for e, signaled in pending:
                    if e in sent_at:
                        samples.total.append(at - sent_at[e])
                        samples.to_signal.append(signaled - sent_at[e])
                        samples.in_workflow.append(at - signaled)
                        samples.to_start.append(max(0.0, started - signaled))
                        samples.in_task.append(at - max(started, signaled))
                pending = []
    return samples


@dataclass
class Latency:
    """Send->applied, and its two halves: send->signal in history (HTTP, PostgreSQL, the
    dispatcher) and signal->workflow task completed (the server's queue and the worker)."""

    total: list[float] = field(default_factory=list)
    to_signal: list[float] = field(default_factory=list)
    in_workflow: list[float] = field(default_factory=list)
    # signal->applied in two: until the worker took the task (the server's queue, the
    # poll), and the task itself (the worker's activations and local activities)
    to_start: list[float] = field(default_factory=list)
    in_task: list[float] = field(default_factory=list)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def run(args: argparse.Namespace) -> list[tuple[str, str]]:
    stack = bench_stack(Path(tempfile.mkdtemp(prefix="journeys-bench-")), "bench")
    with stack.running():
        stack.prepare_database()
        key, _ = stack.dev_keys()
        stack.start_api()
        worker = stack.start_worker()
        return asyncio.run(measure(args, stack, key, worker))


async def measure(
    args: argparse.Namespace, stack: Stack, key: str, worker: subprocess.Popen[bytes]
) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if True:
        address = stack.env()["TEMPORAL_ADDRESS"]
        settings = Settings.model_validate(stack.env())
        from orchestration.temporal import connect

        client = await connect(settings)
        server_p = psutil.Process(stack.temporal_proc.pid)  # type: ignore[union-attr]
        worker_p = psutil.Process(worker.pid)
        url = f"http://127.0.0.1:{stack.api_port}"

        # the same shape as the real load (events per customer, first event creates the
        # workflow), a tenth of its size
        n_sig = max(5000, args.events // 10)
        n_cust = max(500, n_sig * args.customers // args.events)
        top, bare_cpu = await ceiling(client, address, n_cust, n_sig, args.clients * 8, server_p)

        people = [f"c{i}" for i in range(args.customers)]
        expected = dict.fromkeys(people, 0)
        events = []
        for i in range(args.events):
            c = people[i % len(people)] if i < len(people) else random.choice(people)
            expected[c] += 1
            events.append(order(c, expected[c]))
        batches = [events[i : i + args.batch] for i in range(0, len(events), args.batch)]
        rss0 = worker_p.memory_info().rss
        cpu_w, cpu_s = _cpu(worker_p), _cpu(server_p)
        started = time.perf_counter()
        took = await post_batches(url, key, batches, args.clients)
        await wait_applied(stack.database_url or "", expected)
        applied_s = time.perf_counter() - started
        cpu_w, cpu_s = _cpu(worker_p) - cpu_w, _cpu(server_p) - cpu_s
        rss = worker_p.memory_info().rss
        after, after_cpu = await ceiling(client, address, n_cust, n_sig, args.clients * 8, server_p)
        rows.append(
            (
                "ceiling: bare signal-with-start, signals/s, before / after",
                f"{top:,.0f} / {after:,.0f}",
            )
        )
        rows.append(
            (
                "ceiling: server CPU, core-s per 1k signals, before / after",
                f"{bare_cpu * 1000:.2f} / {after_cpu * 1000:.2f}",
            )
        )
        top, bare_cpu = (top + after) / 2, (bare_cpu + after_cpu) / 2
        rows.append(("accepted events/s (/v1/batch)", f"{args.events / took:,.0f}"))
        rows.append(
            ("applied events/s (HTTP in -> state changed)", f"{args.events / applied_s:,.0f}")
        )
        rows.append(("applied / ceiling (mean of both)", f"{args.events / applied_s / top:.0%}"))
        rows.append(("worker CPU, core-seconds per 1k events", f"{cpu_w / args.events * 1000:.2f}"))
        rows.append(("server CPU, core-seconds per 1k events", f"{cpu_s / args.events * 1000:.2f}"))
        rows.append(
            ("server CPU / ceiling's (mean of both)", f"{cpu_s / args.events / bare_cpu:.2f}x")
        )
        rows.append(
            ("worker RSS per cached customer", f"{(rss - rss0) / args.customers / 1024:.0f} KB")
        )

        samples = await latency(client, stack, url, key, rate=top / 2, seconds=args.latency_seconds)
        total = samples.total
        rows.append((f"send->applied at {top / 2:,.0f}/s: p50", f"{pct(total, 50) * 1000:.0f} ms"))
        rows.append(("  p95", f"{pct(total, 95) * 1000:.0f} ms"))
        rows.append(("  p99", f"{pct(total, 99) * 1000:.0f} ms"))
        rows.append(("  mean", f"{statistics.mean(total) * 1000:.0f} ms"))
        for name, part in (
            ("  of which send->signal", samples.to_signal),
            ("  of which signal->applied", samples.in_workflow),
            ("    signal->task started", samples.to_start),
            ("    task started->completed", samples.in_task),
        ):
            rows.append(
                (
                    f"{name}, p50 / p99",
                    f"{pct(part, 50) * 1000:.0f} / {pct(part, 99) * 1000:.0f} ms",
                )
            )

        quiet = [
            {
                "type": "track",
                "userId": random.choice(people),
                "event": "Page Viewed",
                "messageId": f"q-{i}",
                "properties": {"path": "/"},
            }
            for i in range(args.events)
        ]
        took = await post_batches(
            url,
            key,
            [quiet[i : i + args.batch] for i in range(0, len(quiet), args.batch)],
            args.clients,
        )
        rows.append(("unlistened events accepted/s", f"{args.events / took:,.0f}"))
        rows.append(("unlistened / ceiling", f"{args.events / took / top:.0f}x"))

        rows += await replay_rows(client)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    parser.add_argument("--batch", type=int, default=100, help="events per /v1/batch call")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    args = parser.parse_args()
    print_table(
        f"customers={args.customers} events={args.events} clients={args.clients} "
        f"batch={args.batch}",
        run(args),
    )


if __name__ == "__main__":
    main()
