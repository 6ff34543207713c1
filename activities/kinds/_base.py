"""What every action kind's activity shares, and the registry the kind modules fill.

A kind module writes what its action does as ``async def (acts, data) -> ActionResult``
decorated with :func:`performs`; ``activities.actions.ActionActivities.all()`` turns each
into the Temporal activity its model names (``engine.actions``), wrapped in :meth:`act`.
The helpers here are what such a body needs: the shared template context, the message an
action sends, and its ``action_log`` row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities._bookkeeping import with_retries
from activities._faults import crash_point
from activities._outgoing import Outgoing
from activities.delivery import CONFIG_ERROR, Messenger, Sent
from channels import TransientDeliveryError
from engine.identity import scrub_text
from engine.policy import Policy
from engine.template_context import action_context
from messaging.render import Renderer
from settings import Settings
from store import action_log
from workflows.io import ActionInput, ActionResult

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


class ActionBase:
    """The database pool, the settings and the messenger every action uses; one instance
    per worker, sharing its pool."""

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

    def _check(self, data: ActionInput, kind: str) -> None:
        if data.command.kind != kind:
            raise ApplicationError(
                f"activity for '{kind}' got a '{data.command.kind}' action; the "
                "worker and the workflow disagree on the action registry",
                type=CONFIG_ERROR,
                non_retryable=True,
            )

    async def act(
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
                await self.log(data, ActionResult(status="failed", reason=str(exc)))
            raise
        except TransientDeliveryError:
            raise  # a provider's outage: retried until it is back
        except Exception as exc:
            # anything else is a bug or bad data; retrying forever would hold up every
            # later event of this customer, so after a few tries it fails for good
            if activity.info().attempt < UNEXPECTED_ATTEMPTS:
                raise
            message = scrub_text(f"{data.command.summary}: {type(exc).__name__}: {exc}")
            await self.log(data, ActionResult(status="failed", reason=message))
            raise ApplicationError(message, type="ActionError", non_retryable=True) from exc

    def context(self, data: ActionInput) -> dict[str, Any]:
        """The template context every action shares. Its ``manager`` is None here: the
        messenger fills in the customer's account manager from the message's claim
        (``store.messages.claim``), unless the action names one (``assign_manager``)."""
        cmd = data.command
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
            manager=None,
        )

    def entry(self, data: ActionInput, status: str) -> action_log.ActionEntry:
        """The action's ``action_log`` entry, as it ended (``already_done`` is ``done``)."""
        cmd = data.command
        return action_log.ActionEntry(
            idempotency_key=cmd.idempotency_key,
            customer_id=data.customer_id,
            journey=cmd.journey,
            version=cmd.version,
            state=cmd.state,
            action=cmd.kind,
            args=cmd.args,
            status=status if status != "already_done" else "done",
        )

    async def log(
        self, data: ActionInput, result: ActionResult, *, written: bool = False
    ) -> ActionResult:
        """Every action, once, in ``action_log`` (with how it ended), for audits;
        ``written``: its entry was written already (with the message it sent)."""
        cmd = data.command
        if not written:
            entry = self.entry(data, result.status)

            async def write() -> None:
                async with self.pool.connection() as conn:
                    await action_log.record(conn, entry)

            # retried in place: failing here would make a retry act (send) again
            await with_retries(write, what=f"logging {cmd.summary}")
        activity.logger.info("%s: %s %s", cmd.summary, result.status, result.reason)
        crash_point(f"{cmd.kind}_done")  # tests: a crash before Temporal hears of it
        return result

    async def message(self, data: ActionInput, base: dict[str, Any], out: Outgoing) -> ActionResult:
        """Send ``out`` with the template context ``base``: the action's result is the
        message's (sent, skipped, deferred by the policy)."""
        sent = await self.messenger.send(out, base, now_of(data), drop=data.drop_reason)
        return _result(sent)

    async def message_then_log(
        self, data: ActionInput, base: dict[str, Any], out: Outgoing
    ) -> ActionResult:
        """:meth:`message`, then :meth:`log` its result. The action's entry goes with
        what the messenger writes of the message (sent, deferred, suppressed), in the
        same statement: a round trip and a pool checkout less per message. Only ``send``
        uses it; the kinds whose message is a part of their effect log on their own."""
        entry = self.entry(data, "done")  # its status is the message's outcome
        sent = await self.messenger.send(
            out, base, now_of(data), drop=data.drop_reason, entry=entry
        )
        return await self.log(data, _result(sent), written=sent.logged)

    async def with_message(
        self, data: ActionInput, out: Outgoing, detail: dict[str, Any]
    ) -> ActionResult:
        """The message of an action whose own effect (a coupon, a survey) is made: the
        action is done whatever becomes of the message, unless the policy deferred it,
        when the whole action runs again later (its effect is found, not made twice)."""
        sent = await self.message(data, self.context(data), out)
        if sent.status == "deferred":
            return sent
        message = {"message": sent.status, **({"reason": sent.reason} if sent.reason else {})}
        return ActionResult(status="done", detail={**detail, **message})

    def outgoing(self, data: ActionInput, suffix: str, **kw: Any) -> Outgoing:
        """The message an action sends, keyed by its idempotency key plus ``suffix``."""
        cmd = data.command
        return Outgoing(
            key=cmd.idempotency_key + suffix,
            customer_id=data.customer_id,
            journey=cmd.journey,
            state=cmd.state,
            **kw,
        )


def _result(sent: Sent) -> ActionResult:
    detail = {"provider_id": sent.provider_id} if sent.provider_id else {}
    return ActionResult(
        status=sent.status,
        reason=sent.reason,
        retry_at=sent.retry_at,
        detail=detail,
        wake_on=sent.wake_on,
    )


Perform = Callable[[ActionBase, ActionInput], Awaitable[ActionResult]]
"""What an action kind does: its body, run by its activity inside :meth:`ActionBase.act`."""

PERFORMERS: dict[str, Perform] = {}


def performs(kind: str) -> Callable[[Perform], Perform]:
    """Register what the action ``kind`` does (the YAML key of its ``engine.actions``
    model, whose ``activity`` names the Temporal activity that runs it)."""

    def register(body: Perform) -> Perform:
        if kind in PERFORMERS:
            raise RuntimeError(f"two activities for the action '{kind}'")
        PERFORMERS[kind] = body
        return body

    return register
