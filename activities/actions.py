"""One activity per action kind, each with its real effect, exactly once.

The action's deterministic idempotency key (customer, journey, enrolment, visit, step) is
the unique key of the row each effect creates (a message, a coupon, a survey, a task; an
assignment is unique per customer and pool, a tag per customer and tag), so a retried
activity (the worker died after the side effect, a provider timed out) finds its earlier
row and does nothing twice.
Messages an action sends use the key plus a suffix (``/message``, ``/notify``).

Bad configuration (a missing template, an unknown pool or budget) fails for good with a
sentence the Temporal UI shows; everything else is retried by Temporal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.exceptions import ApplicationError

from channels import TransientDeliveryError
from engine.actions import ACTIONS, Offer, Send, Survey, Task
from engine.identity import scrub_text
from engine.policy import Policy
from engine.template_context import action_context, offer_context, survey_context
from messaging.render import Renderer
from settings import Settings
from store import action_log, managers, offers, surveys, tags, tasks, waitlist
from workflows.io import ActionInput, ActionResult

from ._bookkeeping import with_retries
from ._faults import crash_point
from ._outgoing import Outgoing
from .assignment import manager_note
from .delivery import CONFIG_ERROR, Messenger, Sent, config_error

UNEXPECTED_ATTEMPTS = 5


def now_of(data: ActionInput) -> datetime:
    """The time of this attempt: the workflow's time when the action was scheduled, or the
    server's time of a later retry (an outage must not make a retry decide quiet hours,
    caps and expiries as of the first attempt). Both are server time, so this holds on
    the time-skipping test server too. A local activity runs within the workflow task
    that scheduled it, so the workflow's time is its time (its scheduled time is the
    worker's clock, not the server's)."""
    info = activity.info()
    if info.is_local and data.now is not None:
        return data.now
    scheduled = info.current_attempt_scheduled_time
    if data.now is None:
        return scheduled or datetime.now(UTC)
    return max(data.now, scheduled) if scheduled else data.now


class ActionActivities:
    """Activities that need the database; one instance per worker, sharing its pool."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        settings: Settings | None = None,
        *,
        policy: Policy | None = None,
        renderer: Renderer | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings or Settings()
        self.messenger = Messenger(
            pool,
            self.settings,
            renderer or Renderer(self.settings.templates_dir),
            policy or Policy(),
        )

    # --- helpers --------------------------------------------------------------------------

    def _check(self, data: ActionInput, kind: str) -> None:
        if data.command.kind != kind:
            raise ApplicationError(
                f"activity for '{kind}' got a '{data.command.kind}' action; the "
                "worker and the workflow disagree on the action registry",
                type=CONFIG_ERROR,
                non_retryable=True,
            )

    async def _act(
        self,
        data: ActionInput,
        kind: str,
        body: Callable[[ActionInput], Awaitable[ActionResult]],
    ) -> ActionResult:
        """Run one action; a failure for good is recorded in ``action_log`` too."""
        self._check(data, kind)
        try:
            return await body(data)
        except ApplicationError as exc:
            if exc.non_retryable:
                await self._log(data, ActionResult(status="failed", reason=str(exc)))
            raise
        except TransientDeliveryError:
            raise  # a provider's outage: retried until it is back
        except Exception as exc:
            # anything else is a bug or bad data; retrying forever would hold up every
            # later event of this customer, so after a few tries it fails for good
            if activity.info().attempt < UNEXPECTED_ATTEMPTS:
                raise
            message = scrub_text(f"{data.command.summary}: {type(exc).__name__}: {exc}")
            await self._log(data, ActionResult(status="failed", reason=message))
            raise ApplicationError(message, type="ActionError", non_retryable=True) from exc

    async def _base(self, data: ActionInput) -> dict[str, Any]:
        """The template context every action shares."""
        cmd = data.command
        async with self.pool.connection() as conn:
            manager = await managers.manager_of(conn, data.customer_id)
        event = cmd.event
        return action_context(
            customer_id=data.customer_id,
            tier=data.tier,
            segment=data.segment,
            journey=cmd.journey,
            version=cmd.version,
            state=cmd.state,
            ctx=data.context,
            event=event.model_dump(mode="json") if event else None,
            manager={"name": manager.name, "email": manager.email} if manager else None,
        )

    async def _log(self, data: ActionInput, result: ActionResult) -> ActionResult:
        """Every action, once, in ``action_log`` (with how it ended), for audits."""
        cmd = data.command
        entry = action_log.ActionEntry(
            idempotency_key=cmd.idempotency_key,
            customer_id=data.customer_id,
            journey=cmd.journey,
            version=cmd.version,
            state=cmd.state,
            action=cmd.kind,
            args=cmd.args,
            status=result.status if result.status != "already_done" else "done",
        )

        async def write() -> None:
            async with self.pool.connection() as conn:
                await action_log.record(conn, entry)

        # retried in place: failing here would make a retry act (send) again
        await with_retries(write, what=f"logging {cmd.summary}")
        activity.logger.info("%s: %s %s", cmd.summary, result.status, result.reason)
        crash_point(f"{cmd.kind}_done")  # tests: a crash before Temporal hears of it
        return result

    async def _message(
        self, data: ActionInput, base: dict[str, Any], out: Outgoing
    ) -> ActionResult:
        sent = await self.messenger.send(out, base, now_of(data), drop=data.drop_reason)
        return _result(sent)

    async def _with_message(
        self, data: ActionInput, out: Outgoing, detail: dict[str, Any]
    ) -> ActionResult:
        """The message of an action whose own effect (a coupon, a survey) is made: the
        action is done whatever becomes of the message, unless the policy deferred it,
        when the whole action runs again later (its effect is found, not made twice)."""
        sent = await self._message(data, await self._base(data), out)
        if sent.status == "deferred":
            return sent
        message = {"message": sent.status, **({"reason": sent.reason} if sent.reason else {})}
        return ActionResult(status="done", detail={**detail, **message})

    def _outgoing(self, data: ActionInput, suffix: str, **kw: Any) -> Outgoing:
        cmd = data.command
        return Outgoing(
            key=cmd.idempotency_key + suffix,
            customer_id=data.customer_id,
            journey=cmd.journey,
            state=cmd.state,
            **kw,
        )

    # --- what each action does ------------------------------------------------------------

    async def _send_message(self, data: ActionInput) -> ActionResult:
        spec = Send.model_validate(data.command.args)
        out = self._outgoing(
            data,
            "",
            template=spec.template,
            channel=spec.channel,
            marketing=not spec.transactional,
            url=spec.url,
        )
        result = await self._message(data, await self._base(data), out)
        return await self._log(data, result)

    async def _issue_offer(self, data: ActionInput) -> ActionResult:
        spec = Offer.model_validate(data.command.args)
        now = now_of(data)
        try:
            async with self.pool.connection() as conn, conn.transaction():
                coupon = await offers.issue(
                    conn,
                    idempotency_key=data.command.idempotency_key,
                    customer_id=data.customer_id,
                    journey=data.command.journey,
                    template=spec.template,
                    percent_off=spec.percent_off,
                    amount_off=spec.amount_off,
                    valid_for=timedelta(seconds=spec.valid_for),
                    budget=spec.budget,
                    now=now,
                )
        except offers.UnknownBudget as exc:
            raise config_error(str(exc)) from None
        if coupon is None:
            reason = f"offer budget '{spec.budget}' is exhausted: no coupon issued"
            return await self._log(data, ActionResult(status="skipped", reason=reason))
        offer = offer_context(
            code=coupon.code,
            percent_off=coupon.percent_off,
            amount_off=coupon.amount_off,
            expires_at=coupon.expires_at,
            discount=coupon.discount,
        )
        out = self._outgoing(
            data,
            "/message",
            template=spec.template,
            channel=spec.channel,
            marketing=True,
            context=offer,
        )
        result = await self._with_message(data, out, {"code": coupon.code})
        if result.detail.get("message") == "skipped":
            # a coupon nobody will see must not hold a place in the offer's budget
            async with self.pool.connection() as conn:
                await offers.void(conn, coupon.code, now=now)
            result.detail["coupon"] = "voided: its message was not sent"
        return await self._log(data, result)

    async def _assign_account_manager(self, data: ActionInput) -> ActionResult:
        pool = str(data.command.args["pool"])
        cmd = data.command
        now = now_of(data)
        base = await self._base(data)
        unknown: managers.UnknownPool | None = None
        async with self.pool.connection() as conn, conn.transaction():
            await managers.lock_pool(conn, pool)  # held until the customer is queued
            try:
                got = await managers.assign(conn, customer_id=data.customer_id, pool=pool)
            except managers.UnknownPool as exc:
                got, unknown = None, exc
            if got is None:
                # nobody has room: wait in the pool's queue, assigned when a manager is added
                waiting = waitlist.Waiting(
                    data.customer_id, pool, cmd.idempotency_key, cmd.journey, cmd.state,
                    {k: v for k, v in base.items() if k != "manager"},
                )  # fmt: skip
                await waitlist.enqueue(conn, waiting)
            else:
                await waitlist.leave(conn, data.customer_id, pool)  # if it waited before
        if unknown is not None:
            raise config_error(
                f"{unknown}; the customer waits in the pool's queue and gets a manager "
                "when one is added"
            )
        if got is None:
            reason = (
                f"every active manager of pool '{pool}' is at capacity; the customer waits "
                "in the pool's queue and gets a manager when one is added"
            )
            return await self._log(data, ActionResult(status="queued", reason=reason))
        manager, _new = got
        # the introduction task and the note to the manager: each once, by its own key
        async with self.pool.connection() as conn:
            await waitlist.create_intro_task(
                conn,
                idempotency_key=cmd.idempotency_key,
                customer_id=data.customer_id,
                journey=cmd.journey,
                pool=pool,
                now=now,
            )
        out = manager_note(
            key=cmd.idempotency_key,
            customer_id=data.customer_id,
            journey=cmd.journey,
            state=cmd.state,
            manager=manager,
        )
        await self._message(data, {**base, "manager": out.context["manager"]}, out)
        result = ActionResult(status="done", detail={"manager": manager.id})
        return await self._log(data, result)

    async def _send_survey(self, data: ActionInput) -> ActionResult:
        spec = Survey.model_validate(data.command.args)
        now = now_of(data)
        async with self.pool.connection() as conn, conn.transaction():
            survey = await surveys.create(
                conn,
                idempotency_key=data.command.idempotency_key,
                customer_id=data.customer_id,
                journey=data.command.journey,
                template=spec.template,
                kind=spec.kind_,
                expires_in=timedelta(seconds=spec.expires_in),
                now=now,
            )
        url = survey.url(self.settings.public_url)
        context = survey_context(url=url, kind=survey.kind, expires_at=survey.expires_at)
        out = self._outgoing(
            data,
            "/message",
            template=spec.template,
            channel=spec.channel,
            marketing=True,
            context=context,
        )
        result = await self._with_message(data, out, {"survey": survey.token[:6] + "..."})
        return await self._log(data, result)

    async def _create_task(self, data: ActionInput) -> ActionResult:
        spec = Task.model_validate(data.command.args)
        now = now_of(data)
        try:
            async with self.pool.connection() as conn, conn.transaction():
                task = await tasks.create(
                    conn,
                    idempotency_key=data.command.idempotency_key,
                    customer_id=data.customer_id,
                    journey=data.command.journey,
                    title=spec.title,
                    note=spec.note,
                    assignee=spec.assignee,
                    due_at=now + timedelta(seconds=spec.due_in),
                )
        except managers.UnknownPool as exc:
            raise config_error(str(exc)) from None
        return await self._log(data, ActionResult(status="done", detail={"task": task.id}))

    async def _tag_customer(self, data: ActionInput) -> ActionResult:
        async with self.pool.connection() as conn:  # the workflow holds them already
            await tags.record(conn, data.customer_id, data.command, now=now_of(data))
        return await self._log(data, ActionResult(status="done"))

    @activity.defn(name="send_message")
    async def send_message(self, data: ActionInput) -> ActionResult:
        return await self._act(data, "send", self._send_message)

    @activity.defn(name="issue_offer")
    async def issue_offer(self, data: ActionInput) -> ActionResult:
        return await self._act(data, "offer", self._issue_offer)

    @activity.defn(name="assign_account_manager")
    async def assign_account_manager(self, data: ActionInput) -> ActionResult:
        return await self._act(data, "assign_manager", self._assign_account_manager)

    @activity.defn(name="send_survey")
    async def send_survey(self, data: ActionInput) -> ActionResult:
        return await self._act(data, "survey", self._send_survey)

    @activity.defn(name="create_task")
    async def create_task(self, data: ActionInput) -> ActionResult:
        return await self._act(data, "task", self._create_task)

    @activity.defn(name="tag_customer")
    async def tag_customer(self, data: ActionInput) -> ActionResult:
        return await self._act(data, "tag", self._tag_customer)

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


def _result(sent: Sent) -> ActionResult:
    detail = {"provider_id": sent.provider_id} if sent.provider_id else {}
    return ActionResult(
        status=sent.status, reason=sent.reason, retry_at=sent.retry_at, detail=detail
    )
