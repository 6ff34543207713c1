"""What the end-to-end benchmarks share: their own stack in a temporary directory, the
replay of every customer history after the load, and the table they print."""

from __future__ import annotations

import dataclasses
import resource
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from devstack.stack import Stack, free_port

Rows = list[tuple[str, str]]


def process_cpu() -> float:
    """This process's CPU so far, user and system, in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def local_activity_env() -> ActivityEnvironment:
    """An activity environment as the customer workflow runs an action: a local activity
    of 10 s, started now (a message's delivery budget is read from both). The message
    bench and the tests (``tests.helpers``) run actions in it."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info,
        is_local=True,
        start_to_close_timeout=timedelta(seconds=10),
        started_time=datetime.now(UTC),
    )
    return env


def bench_stack(data_dir: Path, task_queue: str, **kw: Any) -> Stack:
    """A stack of its own under ``data_dir`` (free ports, logs in ``data_dir/logs``)."""
    return Stack(
        data_dir=data_dir,
        temporal_port=free_port(),
        ui_port=free_port(),
        api_port=free_port(),
        log_dir=data_dir / "logs",
        task_queue=task_queue,
        **kw,
    )


async def replay_rows(client: Client) -> Rows:
    """Speed must never come from breaking determinism: every customer's history, as the
    load split its tasks, replays with the current code (``journeys replay``)."""
    from orchestration.replay import replay_all

    report = await replay_all(client, "WorkflowType = 'CustomerWorkflow'")
    for failure in report.failures[:5]:
        print(f"replay failure {failure.workflow_id}: {failure.reason[:300]}", file=sys.stderr)
    runs = max(1, report.replayed)
    return [
        ("customer histories replayed (journeys replay)", f"{report.replayed:,}"),
        ("  replay failures", f"{len(report.failures):,}"),
        ("  history events per run, mean", f"{report.events / runs:.1f}"),
        ("  history KB per run as stored, mean", f"{report.stored_bytes / runs / 1024:.1f}"),
    ]


def print_table(header: str, rows: Rows, value_width: int = 10) -> None:
    print(f"\n{header}")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>{value_width}}")
