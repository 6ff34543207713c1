"""One activity per action kind. Each is idempotent: the action's deterministic key is the
primary key of ``action_log``, so a retried activity (the worker died after the side
effect, the call timed out) finds its earlier row and does nothing twice.

In this version every action records that it ran; later versions give each its real
effect (messages, coupons, managers, surveys, tasks) behind the same key."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.exceptions import ApplicationError

from engine.actions import ACTIONS
from workflows.io import ActionInput, ActionResult

CONFIG_ERROR = "ActionConfigError"


class ActionActivities:
    """Activities that need the database; one instance per worker, sharing its pool."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self.pool = pool

    async def _record(self, data: ActionInput, kind: str) -> ActionResult:
        cmd = data.command
        if cmd.kind != kind:
            raise ApplicationError(
                f"activity for '{kind}' got a '{cmd.kind}' action; the "
                "worker and the workflow disagree on the action registry",
                type=CONFIG_ERROR,
                non_retryable=True,
            )
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO action_log (idempotency_key, customer_id, journey, version, state,"
                " action, args) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key",
                (
                    cmd.idempotency_key,
                    data.customer_id,
                    cmd.journey,
                    cmd.version,
                    cmd.state,
                    cmd.kind,
                    Jsonb(cmd.args),
                ),
            )
            inserted = await cur.fetchone() is not None
        activity.logger.info("%s %s", "ran" if inserted else "already ran", cmd.summary)
        return ActionResult(status="done" if inserted else "already_done")

    @activity.defn(name="send_message")
    async def send_message(self, data: ActionInput) -> ActionResult:
        return await self._record(data, "send")

    @activity.defn(name="issue_offer")
    async def issue_offer(self, data: ActionInput) -> ActionResult:
        return await self._record(data, "offer")

    @activity.defn(name="assign_account_manager")
    async def assign_account_manager(self, data: ActionInput) -> ActionResult:
        return await self._record(data, "assign_manager")

    @activity.defn(name="send_survey")
    async def send_survey(self, data: ActionInput) -> ActionResult:
        return await self._record(data, "survey")

    @activity.defn(name="create_task")
    async def create_task(self, data: ActionInput) -> ActionResult:
        return await self._record(data, "task")

    @activity.defn(name="tag_customer")
    async def tag_customer(self, data: ActionInput) -> ActionResult:
        return await self._record(data, "tag")

    def all(self) -> list[Any]:
        """Every action activity; fails loudly if an action kind has no activity."""
        methods = {
            getattr(m, "__temporal_activity_definition").name: m
            for m in (
                self.send_message,
                self.issue_offer,
                self.assign_account_manager,
                self.send_survey,
                self.create_task,
                self.tag_customer,
            )
        }
        missing = [k for k, cls in ACTIONS.items() if cls.activity and cls.activity not in methods]
        if missing:
            raise RuntimeError(f"actions without an activity: {', '.join(missing)}")
        return list(methods.values())
