"""Sending one message, exactly once, within the messaging policy.

Every message has a row in ``messages`` (``store.messages``) under the action's
idempotency key, and moves through it::

    (new) -> deferred -> ... -> sending -> sent
                  \\-> suppressed        |-> failed
                                        \\-> unknown   (delivery: at_most_once)

1. In one transaction the row is created (or found), and the policy decides: a message
   already sent, suppressed, failed or unknown is not touched again (a retried activity
   after a crash ends here); a suppressed one records why; a deferred one records until
   when, and the workflow holds it as a timer. A customer without the channel's address
   is waited for (``await_contact``, one timer, woken by the identify that brings the
   address) before the message is suppressed.
2. The row is marked as handed over (``delivering_until``), the message is rendered (a
   template error fails for good, with a sentence for ops) and handed to the channel with
   the idempotency key: the SMTP Message-ID and the HTTP ``Idempotency-Key`` derive from
   it, so even a crash between the provider's answer and step 3 leaves the provider able
   to drop the resend. Under ``delivery: at_most_once`` an attempt that finds an earlier
   one handed over without an outcome records ``unknown`` instead of sending.
3. The row becomes ``sent`` with the provider's id; that write is retried while
   PostgreSQL recovers, and a stopping worker lets it finish: the delivery itself is never
   redone once the provider accepted it.

Contact details are read from PostgreSQL here, never from workflow history.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from temporalio.exceptions import ApplicationError

from channels import PermanentDeliveryError, TransientDeliveryError, registry
from engine.identity import contact_values, is_hashed, scrub_text
from engine.policy import DeliveryMode, Policy, decide
from messaging.render import Renderer, TemplateError
from settings import Settings
from store import consent, messages
from store.action_log import ActionEntry
from workflows.io import CONTACT_ADDED

from ._bookkeeping import RETRYABLE, finish_despite_cancel, with_retries
from ._faults import crash_point
from ._outgoing import MIN_DELIVERY_SECONDS, Outgoing, budget_left, deliver

__all__ = ["CONFIG_ERROR", "Messenger", "Outgoing", "Sent", "config_error"]
log = logging.getLogger(__name__)
CONFIG_ERROR = "ActionConfigError"


@dataclass
class Sent:
    status: Literal["done", "already_done", "skipped", "deferred"]
    reason: str = ""
    retry_at: datetime | None = None
    provider_id: str | None = None
    wake_on: str | None = None  # an event that makes it due at once (workflows.io)
    logged: bool = False  # the action's log entry was written with the message's record


def config_error(message: str, known: list[str] | None = None) -> ApplicationError:
    """A failure retrying cannot fix: shown in the Temporal UI for an admin to act on,
    without contact details (``known``: the customer's, which a text may quote)."""
    return ApplicationError(scrub_text(message, known or []), type=CONFIG_ERROR, non_retryable=True)


class Messenger:
    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        settings: Settings,
        renderer: Renderer,
        policy: Policy,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.renderer = renderer
        self.policy = policy

    async def send(
        self,
        out: Outgoing,
        base: dict[str, Any],
        now: datetime,
        *,
        drop: str | None = None,
        entry: ActionEntry | None = None,
    ) -> Sent:
        """Send ``out`` once; ``base`` is the template context shared by all actions
        (customer, journey, state, ctx, event). ``drop``: a deferred message no longer
        wanted, recorded as suppressed with that reason. ``entry``: the action's log entry,
        written with the outcome this attempt writes, in its statement (``logged``): sent,
        deferred, suppressed, or unknown at the claim; the caller logs any other."""
        try:
            kind = registry.get(out.channel).kind
        except KeyError as exc:  # a channel removed since the journey was published
            raise config_error(f"{out.template}: {exc.args[0]}") from None
        mode = self.policy.delivery.mode(out.template, out.channel)
        window = self.policy.longest_window()  # the caps count marketing messages since
        caps = out.marketing and window and out.to is None  # staff notes are not capped
        since = now - timedelta(seconds=window) if caps else None
        skipped, logged = _as(entry, "skipped"), entry is not None
        async with self.pool.connection() as conn, conn.transaction():
            # the row, locked, and what the policy reads of the customer: one round trip
            row = await messages.claim(conn, _new_message(out), now=now, since=since)
            if row.status == "sent":
                return Sent("already_done", provider_id=row.provider_id)
            if row.status in ("suppressed", "failed", "unknown"):
                return Sent("skipped", reason=f"{row.status} before: {row.reason}")
            if row.in_flight:
                # an earlier attempt may still be delivering (a local activity that timed
                # out goes on until its deadline): wait for it rather than send twice
                raise TransientDeliveryError(
                    "an earlier attempt may still be delivering this message; retrying"
                )
            if row.handed_over and mode == "at_most_once":
                # an earlier attempt gave it to the provider and never wrote down how that
                # ended (its worker was killed): at most once means not sending it again
                await messages.mark(conn, out.key, "unknown", UNKNOWN_OUTCOME, log=skipped)
                return Sent("skipped", reason=UNKNOWN_OUTCOME, logged=logged)
            if drop is not None:
                await messages.mark(conn, out.key, "suppressed", drop, log=skipped)
                return Sent("skipped", reason=drop, logged=logged)
            traits = row.traits
            verdict = await self._decide(conn, out, row, now, entry)
            if verdict is not None:
                return verdict
            if kind.contact is None and not out.url:
                raise config_error(f"{out.template} by {out.channel} has no url to post to")
            recipient = out.to or out.url or (traits.get(kind.contact) if kind.contact else None)
            if not recipient:
                first = row.first_attempt
                return await self._no_address(conn, out, now, first, kind.contact, entry)
            budget = budget_left()
            deadline = asyncio.get_running_loop().time() + budget
            if budget < MIN_DELIVERY_SECONDS:
                raise TransientDeliveryError(
                    "too little of this attempt's time is left to deliver; retrying"
                )
            # from here the message counts as handed over until its outcome is written
            await messages.hand_over(conn, out.key, for_seconds=budget + 1.0)
        # what a provider's or a template's error text may quote back: scrubbed from it
        # a webhook's url is the journey's, not the customer's: not scrubbed
        known = [*contact_values(traits), *([str(recipient)] if kind.contact else [])]
        if is_hashed(out.customer_id):
            known.append(out.customer_id)
        context = {**base, "customer": {**base.get("customer", {}), "traits": traits}}
        if context.get("manager") is None:  # the customer's, read with the claim
            context["manager"] = row.manager
        if out.marketing:
            token = consent.unsubscribe_token(
                self.settings.link_secret, out.customer_id, out.channel
            )
            context["unsubscribe_url"] = f"{self.settings.public_url.rstrip('/')}/u/{token}"
        else:
            context.setdefault("unsubscribe_url", None)
        context.update(out.context)
        try:
            # off the event loop: a heavy template must not stall other activities
            rendered = await asyncio.to_thread(self.renderer.render, out.template, kind, context)
        except TemplateError as exc:
            why = scrub_text(str(exc), known)
            await self._finish(out.key, "failed", reason=why)
            raise config_error(f"template {out.template}: {why}") from None
        # a stopping worker lets this finish: cut off, its retry would send it again
        return await finish_despite_cancel(
            self._deliver_and_record(
                out, str(recipient), rendered, context, now, deadline, mode, known, entry
            )
        )

    async def _deliver_and_record(
        self,
        out: Outgoing,
        recipient: str,
        rendered: Any,
        context: dict[str, Any],
        now: datetime,
        deadline: float,
        mode: DeliveryMode,
        known: list[str],
        entry: ActionEntry | None,
    ) -> Sent:
        try:
            # end this attempt before Temporal gives up on it, so a retry never runs
            # while this one is still talking to the provider
            async with asyncio.timeout_at(deadline):
                provider_id = await deliver(self.settings, out, recipient, rendered, context)
        except TimeoutError:
            if mode == "at_most_once":  # it may have arrived: not sent again
                await self._finish(out.key, "unknown", reason=f"{UNKNOWN_OUTCOME} (timed out)")
                return Sent("skipped", reason=UNKNOWN_OUTCOME)
            await self._finish(out.key, "sending", reason="retrying: the provider was too slow")
            raise TransientDeliveryError(
                f"{out.channel} delivery took longer than this attempt may; retrying"
            ) from None
        except PermanentDeliveryError as exc:
            why = scrub_text(str(exc), known)
            await self._finish(out.key, "failed", reason=why)
            raise config_error(
                f"{out.channel} to customer {out.customer_id}: {why}", known
            ) from None
        except TransientDeliveryError as exc:
            # a provider may quote the customer's name back: retried under a scrubbed text
            why = scrub_text(str(exc), known)
            if mode == "at_most_once" and exc.maybe_delivered:
                await self._finish(out.key, "unknown", reason=f"{UNKNOWN_OUTCOME} ({why})")
                return Sent("skipped", reason=UNKNOWN_OUTCOME)
            await self._finish(out.key, "sending", reason=f"retrying: {why}")
            raise TransientDeliveryError(why, maybe_delivered=exc.maybe_delivered) from None
        crash_point("message_delivered")  # tests: a crash before the row says 'sent'
        try:
            try:
                await self._finish(
                    out.key,
                    "sent",
                    provider_id=provider_id,
                    subject=rendered.subject,
                    sent_at=now,
                    entry=_as(entry, "done"),
                )
            except RETRYABLE:
                raise
            except Exception as exc:
                if entry is None:
                    raise
                # the log entry failed, not PostgreSQL: the delivery is recorded without
                # it (left unrecorded, a retry would send the message again)
                log.error("message %s: log entry failed (%s)", out.key, type(exc).__name__)
                await self._finish(
                    out.key, "sent", provider_id=provider_id, subject=rendered.subject, sent_at=now
                )
                return Sent("done", provider_id=provider_id)
        except RETRYABLE as exc:
            # delivered, and PostgreSQL stayed away for the rest of the attempt: report it
            # delivered anyway, since failing would make the retry send it a second time
            log.error(
                "message %s was delivered but could not be recorded as sent: %s",
                out.key,
                type(exc).__name__,
            )
            return Sent("done", reason="delivered; its record could not be written")
        return Sent("done", provider_id=provider_id, logged=entry is not None)

    async def _no_address(
        self,
        conn: AsyncConnection[Any],
        out: Outgoing,
        now: datetime,
        first: datetime,
        contact: str | None,
        entry: ActionEntry | None,
    ) -> Sent:
        """A customer without the channel's address: wait for it (``await_contact``, from
        the message's first attempt: an identify often comes after the sign-up), then
        suppress it. One timer for the whole wait: the identify that brings the address
        wakes the workflow with a ``contact_added`` event (``ingest.accept``)."""
        what = contact or "address"
        wait = self.policy.await_contact if out.to is None else 0
        give_up = first + timedelta(seconds=wait)
        logged = entry is not None
        if now < give_up and contact is not None:
            await messages.lock_contact(conn, [out.customer_id])
            # the wait, unless an identify committed the address since the claim read the
            # traits (the lock makes this statement see it): then tried again at once
            reason = f"waiting up to {_human(wait)} for the customer's {what}"
            deferred = _as(entry, "deferred")
            new = _new_message(out)
            if not await messages.wait_for_contact(
                conn, new, reason, give_up, contact=contact, log=deferred
            ):
                came = f"the customer's {what} just came"
                return Sent("deferred", reason=came, retry_at=now, logged=logged)
            return Sent(
                "deferred", reason=reason, retry_at=give_up, wake_on=CONTACT_ADDED, logged=logged
            )
        why = f"the customer's profile has no {what}"
        if wait:
            why += f" (waited {_human(wait)} for it)"
        await messages.mark(conn, out.key, "suppressed", why, log=_as(entry, "skipped"))
        return Sent("skipped", reason=why, logged=logged)

    async def _decide(
        self,
        conn: AsyncConnection[Any],
        out: Outgoing,
        row: messages.Claimed,
        now: datetime,
        entry: ActionEntry | None,
    ) -> Sent | None:
        if out.to is not None:  # staff notifications: the customer's policy is not theirs
            return None
        traits = row.traits
        opted_out = out.marketing and (
            row.opted_out
            or any(
                _truthy(traits.get(t))
                for t in self.policy.consent.opt_out_traits.get(out.channel, [])
            )
        )
        recent: list[tuple[datetime, Any]] = row.recent()
        quiet = self.policy.quiet_hours
        zone = traits.get(quiet.time_zone_trait) if quiet else None
        decision = decide(
            self.policy,
            channel=out.channel,
            marketing=out.marketing,
            now=now,
            opted_out=bool(opted_out),
            time_zone=str(zone) if zone else None,
            recent=recent,
        )
        if decision.verdict == "send":
            return None
        logged = entry is not None
        if decision.verdict == "skip":
            skipped = _as(entry, "skipped")
            await messages.mark(conn, out.key, "suppressed", decision.reason, log=skipped)
            return Sent("skipped", reason=decision.reason, logged=logged)
        until, deferred = decision.until, _as(entry, "deferred")
        await messages.defer(conn, out.key, decision.reason, until, log=deferred)
        return Sent("deferred", reason=decision.reason, retry_at=until, logged=logged)

    async def _finish(
        self,
        key: str,
        status: messages.Status,
        *,
        reason: str | None = None,
        provider_id: str | None = None,
        subject: str | None = None,
        sent_at: datetime | None = None,
        entry: ActionEntry | None = None,
    ) -> None:
        """Write how the attempt ended (with the action's log ``entry``, if given),
        retried while PostgreSQL recovers (never the delivery: see
        ``activities._bookkeeping``)."""

        async def write() -> None:
            async with self.pool.connection() as conn:
                await messages.finish(
                    conn,
                    key,
                    status,
                    reason=reason,
                    provider_id=provider_id,
                    subject=subject,
                    sent_at=sent_at,
                    log=entry,
                )

        await with_retries(write, what=f"recording message {key} as {status}")


def _new_message(out: Outgoing) -> messages.NewMessage:
    return messages.NewMessage(
        key=out.key,
        customer_id=out.customer_id,
        journey=out.journey,
        state=out.state,
        template=out.template,
        channel=out.channel,
        marketing=out.marketing,
    )


UNKNOWN_OUTCOME = (
    "an earlier attempt handed it to the provider and its outcome is unknown;"
    " delivery: at_most_once, so it is not sent again"
)


def _as(entry: ActionEntry | None, status: str) -> ActionEntry | None:
    """The action's log entry as the message ended."""
    return dataclasses.replace(entry, status=status) if entry is not None else None


def _human(seconds: int) -> str:
    from engine.durations import format_duration

    return format_duration(seconds)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "y", "on")
    return bool(value)
