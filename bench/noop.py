"""The ceiling: a workflow that does nothing with its signals, and a worker for it.

python -m bench.noop TEMPORAL_ADDRESS TASK_QUEUE
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker


@workflow.defn(name="NoopWorkflow")
class NoopWorkflow:
    def __init__(self) -> None:
        self.count = 0

    @workflow.signal
    def event(self, payload: dict[str, Any]) -> None:
        self.count += 1

    @workflow.query
    def seen(self) -> int:
        return self.count

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


async def main(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[NoopWorkflow],
        max_cached_workflows=20_000,
        max_concurrent_workflow_task_polls=20,
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=120),
    )
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
