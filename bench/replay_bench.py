"""The worker's CPU per customer, without a server: recorded customer histories replayed
many times in one process, with the sandbox the worker runs and without it. It counts
what a live worker spends on a workflow task (the SDK's activation, the payload codec,
the sandbox, the interpreter), repeatably, whatever the server is doing; ``ingest_bench``
measures the whole system.

python -m bench.replay_bench [--copies 300] [--rounds 3]

Each figure is the least of its rounds: what the work costs when nothing else on the
machine takes the CPU's caches or a core away from it.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from bench._common import print_table, process_cpu
from orchestration.codec import data_converter
from orchestration.replay import repair_runner
from settings import DEV_PAYLOAD_KEYS
from workflows.customer import CustomerWorkflow

HISTORIES = Path(__file__).resolve().parent.parent / "tests" / "histories"
# (row, recorded history, only its first workflow task)
SHAPES = [
    ("new customer: the first task", "catalog_with_the_start_v6.json", True),
    ("new customer, then an order", "catalog_with_the_start_v6.json", False),
    ("two journeys' tags", "tags_across_two_journeys_v6.json", False),
]
WARM = 20


def first_task(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events up to what the first workflow task's commands recorded: the history of a
    customer whose first event was just applied."""
    done = next(i for i, e in enumerate(events) if e["eventType"].endswith("TASK_COMPLETED"))
    after = (
        i
        for i, e in enumerate(events)
        if i > done and e["eventType"].endswith(("EXECUTION_SIGNALED", "TASK_SCHEDULED"))
    )
    return events[: next(after, len(events))]


async def per_history(raw: dict[str, Any], copies: int, *, sandboxed: bool) -> float:
    """Milliseconds of this process's CPU per replayed copy of ``raw``."""
    histories = [
        WorkflowHistory.from_json(f"bench-{i}", copy.deepcopy(raw)) for i in range(WARM + copies)
    ]
    replayer = Replayer(
        workflows=[CustomerWorkflow],
        data_converter=data_converter(DEV_PAYLOAD_KEYS),  # as the recording encrypted
        workflow_runner=repair_runner(sandboxed=sandboxed),
    )

    async def each(part: list[WorkflowHistory]) -> AsyncIterator[WorkflowHistory]:
        for history in part:
            yield history

    async def replay(part: list[WorkflowHistory]) -> None:
        async with replayer.workflow_replay_iterator(each(part)) as results:
            async for result in results:
                if result.replay_failure is not None:
                    raise SystemExit(f"replay failed: {result.replay_failure}")

    await replay(histories[:WARM])
    cpu = process_cpu()
    await replay(histories[WARM:])
    return (process_cpu() - cpu) / copies * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--copies", type=int, default=300, help="replays of each history")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each; the least counts")
    args = parser.parse_args()
    rows = []
    started = time.perf_counter()
    for name, file, first in SHAPES:
        raw = json.loads((HISTORIES / file).read_text())
        if first:
            raw["events"] = first_task(raw["events"])
        sandboxed, bare = (
            min(asyncio.run(per_history(raw, args.copies, sandboxed=s)) for _ in range(args.rounds))
            for s in (True, False)
        )
        rows.append((f"{name} ({len(raw['events'])} events)", f"{sandboxed:.2f} / {bare:.2f} ms"))
    rows.append(("(run took)", f"{time.perf_counter() - started:.0f} s"))
    print_table("worker CPU per history replayed: sandboxed / not", rows, 18)


if __name__ == "__main__":
    main()
