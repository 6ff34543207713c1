"""A step's last action and the log of its transitions, in one local activity.

The customer workflow used to run them as two local activities: one more workflow
activation and one more history marker per step, for every new customer. Here the action
runs first, exactly as its own activity would (same idempotency key, same failures), then
the log is written. A failure to write the log is never the action's: it is raised as
retryable, so once the quick tries are spent the workflow runs the action as a regular
activity (which finds it done by its key) and writes the log in its own local activity.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.io import ActionResult, ActThenRecordInput

from .actions import ActionActivities
from .journeys import JourneyActivities


class StepActivities:
    def __init__(self, actions: ActionActivities, journeys: JourneyActivities) -> None:
        self._actions = actions
        self._journeys = journeys

    @activity.defn(name="act_then_record")
    async def act_then_record(self, data: ActThenRecordInput) -> ActionResult:
        """Run the action, then (only once it is done, deferred or skipped) log the step."""
        result = await self._actions.perform(data.action)
        try:
            await self._journeys.record_transitions(data.record)
        except Exception as exc:
            raise ApplicationError(
                f"the action is done but its step's log was not written: {type(exc).__name__}",
                type="StepLogFailed",
            ) from exc
        return result
