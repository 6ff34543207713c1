"""The ceiling: a workflow that does nothing with its signals, and a worker for it.

python -m bench.noop TEMPORAL_ADDRESS TASK_QUEUE [customer]

With ``customer`` the worker also serves a no-op ``CustomerWorkflow`` that takes
Journeys' own (encrypted) start and signals unread, so dispatchers can be measured
against a worker that costs nothing (``bench.dispatch_bench``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RawValue
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


@workflow.defn(name="CustomerWorkflow")
class NoopCustomerWorkflow:
    """Journeys' customer workflow's name and messages, doing nothing with them."""

    def __init__(self) -> None:
        self.count = 0

    @workflow.signal(dynamic=True)
    def any_signal(self, name: str, args: Sequence[RawValue]) -> None:
        self.count += 1

    @workflow.query
    def seen(self) -> int:
        return self.count

    @workflow.run
    async def run(self, input: RawValue) -> None:
        await workflow.wait_condition(lambda: False)


async def main(address: str, task_queue: str, customer: bool = False) -> None:
    client = await Client.connect(address)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[NoopCustomerWorkflow if customer else NoopWorkflow],
        max_cached_workflows=20_000,
        max_concurrent_workflow_task_polls=20,
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=120),
    )
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:] == ["customer"]))
