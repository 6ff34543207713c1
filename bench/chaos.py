"""The chaos run: a real load while processes die, then an account of every event.

    python -m bench.chaos [--customers 200] [--events 2000] [--kills 3] [--workers 2]
                          [--seed 1] [--seconds 60] [--deadline 600]

Starts its own stack in a temporary directory (the Temporal dev server with the WAL
pragmas, an embedded PostgreSQL, the API, ``--workers`` worker processes, and an SMTP
stand-in that records every email). Each customer sends an ``identify`` with an email, a
``Signed Up`` and their share of ``--events`` ``Order Completed`` events (distinct
messageIds); every message is sent twice, all shuffled, in batches from 8 concurrent
senders over ``/v1/batch``, spread over ``--seconds``, retried on 5xx, 429 and connection
errors as an SDK would. Meanwhile a worker is SIGKILLed ``--kills`` times at random
moments (and restarted), and Temporal, PostgreSQL (an immediate, crash-like stop) and the
API are each killed and restarted once.

Then it waits (up to ``--deadline`` seconds) until every order is applied, replays every
customer's history with the current code, and prints one table: events lost or doubled
(in PostgreSQL and in the workflows' ``orders``), side effects not exactly once (welcome
``messages`` rows, ``action_log``), emails received twice (same Message-ID), dead letters,
replay failures, the emails found in the Temporal database or in any log, and the time
taken. Every count should be 0; the lines under the table name the customers behind any
that is not."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench._chaos_check import count, evidence_files, pii_hits, wait_applied
from bench._chaos_faults import Chaos, plan
from bench._chaos_load import build_load, send_all
from bench._chaos_report import Outcome, print_report
from bench._common import bench_stack
from devstack.stack import ROOT, Stack
from orchestration.replay import replay_all
from orchestration.temporal import connect_with_retry
from settings import Settings
from tests.standins import RecordingSMTPServer

SENDERS = 8
REPLAY_QUERY = 'WorkflowType = "CustomerWorkflow"'


def run(args: argparse.Namespace) -> Outcome:
    tmp = Path(tempfile.mkdtemp(prefix="journeys-chaos-"))
    rules = _rules(tmp, args.delivery)
    with RecordingSMTPServer() as smtp:
        stack = bench_stack(tmp, "chaos", rules_dir=rules, extra_env=smtp.env())
        began = time.monotonic()
        with stack.running():
            stack.prepare_database()
            key, _ = stack.dev_keys()
            api = stack.start_api()
            outcome = asyncio.run(measure(args, stack, key, api, smtp))
        outcome.total_seconds = time.monotonic() - began
        outcome.data_dir = tmp
        # after the stack stopped: every log is flushed and closed
        files = evidence_files(tmp)
        outcome.pii = pii_hits(files, {p.email for p in outcome.load.customers})
        outcome.pii_files = len(files)
        return outcome


async def measure(
    args: argparse.Namespace,
    stack: Stack,
    key: str,
    api: subprocess.Popen[bytes],
    smtp: RecordingSMTPServer,
) -> Outcome:
    load = build_load(
        customers=args.customers,
        events=args.events,
        batch=args.batch,
        seed=args.seed,
        run=f"{args.seed}",
    )
    chaos = Chaos(stack, api, workers=args.workers, seed=args.seed)
    faults = plan(kills=args.kills, spread=args.seconds, seed=args.seed)
    stop = asyncio.Event()
    started = time.monotonic()
    faulting = asyncio.create_task(chaos.run(faults, started, stop))
    url = f"http://127.0.0.1:{stack.api_port}"
    stats = await send_all(url, key, load, senders=SENDERS, spread=args.seconds, seed=args.seed)
    # every fault carried out before the wait is timed (or the fault task's error raised)
    done_waiting = asyncio.create_task(chaos.faults_done.wait())
    await asyncio.wait({faulting, done_waiting}, return_when=asyncio.FIRST_COMPLETED)
    if faulting.done():
        faulting.result()
    sent_at = time.monotonic()
    client = await connect_with_retry(Settings.model_validate(stack.env()), max_wait=120)
    assert stack.database_url
    settled = await wait_applied(client, stack.database_url, load, deadline=sent_at + args.deadline)
    applied_at = time.monotonic()
    counts = await count(client, stack.database_url, load, list(smtp.mail))
    replay_started = time.monotonic()
    report = await replay_all(client, REPLAY_QUERY, None)
    replayed, failures = report.replayed, report.failures
    replay_seconds = time.monotonic() - replay_started
    stop.set()
    await faulting
    return Outcome(
        args=args,
        load=load,
        stats=stats,
        faults=chaos.log,
        settled=settled,
        counts=counts,
        replayed=replayed,
        replay_failures=failures,
        send_seconds=sent_at - started,
        apply_seconds=applied_at - sent_at,
        replay_seconds=replay_seconds,
    )


def _rules(tmp: Path, delivery: str) -> Path:
    """The shipped rules, with the policy's default delivery mode set to ``delivery``."""
    rules = tmp / "rules"
    shutil.copytree(ROOT / "rules", rules)
    policy = rules / "policy.yaml"
    text = policy.read_text()
    assert "  default: at_least_once" in text, "rules/policy.yaml no longer says its default"
    policy.write_text(text.replace("  default: at_least_once", f"  default: {delivery}", 1))
    return rules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--events", type=int, default=2000, help="Order Completed, in all")
    parser.add_argument("--kills", type=int, default=3, help="worker SIGKILLs")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=20, help="messages per /v1/batch call")
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="the load and the faults spread over this"
    )
    parser.add_argument(
        "--deadline", type=float, default=600.0, help="seconds to wait for it all to apply"
    )
    parser.add_argument(
        "--delivery",
        choices=("at_least_once", "at_most_once"),
        default="at_least_once",
        help="the messaging policy's default delivery mode (rules/policy.yaml delivery:)",
    )
    args = parser.parse_args()
    if args.customers < 1 or args.workers < 1:
        parser.error("--customers and --workers must be at least 1")
    print_report(run(args))


if __name__ == "__main__":
    main()
