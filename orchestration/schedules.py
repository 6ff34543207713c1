"""The Temporal Schedule that refreshes segments (``rules/segments.yaml`` ``schedule:``).

Created by the worker at start and brought in line with the definitions when they change;
an admin's pause in the Temporal UI is kept. Overlapping runs are skipped: a refresh that
takes longer than the interval is not doubled up."""

from __future__ import annotations

import logging

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from workflows.segments import SCHEDULE_ID, RefreshRequest, SegmentRefreshWorkflow

log = logging.getLogger(__name__)


def _action(task_queue: str) -> ScheduleActionStartWorkflow:
    return ScheduleActionStartWorkflow(
        SegmentRefreshWorkflow.run,
        RefreshRequest(),
        id=f"{SCHEDULE_ID}-run",
        task_queue=task_queue,
    )


async def ensure_segment_schedule(client: Client, *, task_queue: str, cron: str) -> str:
    """Create the schedule, or bring an existing one in line; return which was done.
    (The server keeps cron specs as calendars, so an update is simply always made.)"""
    spec = ScheduleSpec(cron_expressions=[cron])
    try:
        await client.create_schedule(
            SCHEDULE_ID,
            Schedule(
                action=_action(task_queue),
                spec=spec,
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            ),
        )
        log.info("created schedule %s (%s)", SCHEDULE_ID, cron)
        return "created"
    except ScheduleAlreadyRunningError:
        pass
    handle = client.get_schedule_handle(SCHEDULE_ID)

    async def update(input: ScheduleUpdateInput) -> ScheduleUpdate:
        schedule = input.description.schedule
        schedule.spec = spec
        schedule.action = _action(task_queue)
        return ScheduleUpdate(schedule=schedule)  # its state (paused or not) is kept

    await handle.update(update)
    log.info("updated schedule %s (%s)", SCHEDULE_ID, cron)
    return "updated"
