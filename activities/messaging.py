"""Sending one message, exactly once, within the messaging policy.

Every message has a row in ``messages`` under the action's idempotency key, and moves
through it::

    (new) -> deferred -> ... -> sending -> sent
                  \\-> suppressed        \\-> failed

1. In one transaction the row is created (or found), and the policy decides: a message
   already sent, suppressed or failed is not touched again (a retried activity after a
   crash ends here); a suppressed one records why; a deferred one records until when, and
   the workflow holds it as a timer.
2. The message is rendered (a template error fails for good, with a sentence for ops) and
   handed to the channel with the idempotency key: the SMTP Message-ID and the HTTP
   ``Idempotency-Key`` derive from it, so even a crash between the provider's answer and
   step 3 leaves the provider able to drop the resend.
3. The row becomes ``sent`` with the provider's id.

Contact details are read from PostgreSQL here, never from workflow history.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from temporalio.exceptions import ApplicationError

from channels import (
    Email,
    PermanentDeliveryError,
    TransientDeliveryError,
    post_webhook,
    send_email,
    send_sms,
)
from engine.identity import contact_values, is_hashed, scrub_text
from engine.policy import Policy, decide
from messaging.render import Renderer, TemplateError
from settings import Settings
from store import consent

from ._faults import crash_point

log = logging.getLogger(__name__)
CONFIG_ERROR = "ActionConfigError"
Channel = Literal["email", "sms", "webhook"]
_ADDRESS = {"email": "email", "sms": "phone"}


@dataclass
class Outgoing:
    """One message to send: to the customer (policy applies) or to staff about them."""

    key: str
    customer_id: str
    journey: str
    state: str
    template: str
    channel: Channel
    marketing: bool
    context: dict[str, Any] = field(default_factory=dict)  # offer, survey, manager, ...
    to: str | None = None  # staff address; None: the customer's, read from their profile
    url: str | None = None  # webhook target


@dataclass
class Sent:
    status: Literal["done", "already_done", "skipped", "deferred"]
    reason: str = ""
    retry_at: datetime | None = None
    provider_id: str | None = None


def config_error(message: str, known: list[str] | None = None) -> ApplicationError:
    """A failure retrying cannot fix: shown in the Temporal UI for an admin to act on,
    without contact details (``known``: the customer's, which a text may quote)."""
    return ApplicationError(scrub_text(message, known or []), type=CONFIG_ERROR, non_retryable=True)


async def profile(conn: AsyncConnection[Any], customer_id: str) -> dict[str, Any]:
    cur = await conn.execute("SELECT traits FROM customers WHERE customer_id = %s", (customer_id,))
    row = await cur.fetchone()
    return dict(row[0]) if row and row[0] else {}


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
        self, out: Outgoing, base: dict[str, Any], now: datetime, *, drop: str | None = None
    ) -> Sent:
        """Send ``out`` once; ``base`` is the template context shared by all actions
        (customer, journey, state, ctx, event). ``drop``: a deferred message no longer
        wanted, recorded as suppressed with that reason."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO messages (idempotency_key, customer_id, journey, state, template,"
                " channel, marketing, status) VALUES (%s, %s, %s, %s, %s, %s, %s, 'sending')"
                " ON CONFLICT (idempotency_key) DO NOTHING",
                (
                    out.key,
                    out.customer_id,
                    out.journey,
                    out.state,
                    out.template,
                    out.channel,
                    out.marketing,
                ),
            )
            cur = await conn.execute(
                "SELECT status, reason, provider_id, delivering_until > now() FROM messages"
                " WHERE idempotency_key = %s FOR UPDATE",
                (out.key,),
            )
            row = await cur.fetchone()
            assert row is not None
            status, reason, provider_id, in_flight = row
            if status == "sent":
                return Sent("already_done", provider_id=provider_id)
            if status in ("suppressed", "failed"):
                return Sent("skipped", reason=f"{status} before: {reason}")
            if in_flight:
                # an earlier attempt may still be delivering (a local activity that timed
                # out goes on until its deadline): wait for it rather than send twice
                raise TransientDeliveryError(
                    "an earlier attempt may still be delivering this message; retrying"
                )
            if drop is not None:
                await self._mark(conn, out.key, "suppressed", drop)
                return Sent("skipped", reason=drop)
            traits = await profile(conn, out.customer_id)
            verdict = await self._decide(conn, out, traits, now)
            if verdict is not None:
                return verdict
            if out.channel == "webhook" and not out.url:
                raise config_error(f"{out.template} by webhook has no url to post to")
            recipient = out.to or out.url or traits.get(_ADDRESS.get(out.channel, ""))
            if not recipient:
                why = f"the customer's profile has no {_ADDRESS.get(out.channel, 'address')}"
                await self._mark(conn, out.key, "suppressed", why)
                return Sent("skipped", reason=why)
            budget = _budget()
            deadline = asyncio.get_running_loop().time() + budget
            if budget < MIN_DELIVERY_SECONDS:
                raise TransientDeliveryError(
                    "too little of this attempt's time is left to deliver; retrying"
                )
            await conn.execute(
                "UPDATE messages SET status = 'sending', attempts = attempts + 1, reason = NULL,"
                " deferred_until = NULL, updated_at = now(),"
                " delivering_until = now() + make_interval(secs => %s)"
                " WHERE idempotency_key = %s",
                (budget + 1.0, out.key),
            )
        # what a provider's or a template's error text may quote back: scrubbed from it
        known = [*contact_values(traits), *([str(recipient)] if out.channel != "webhook" else [])]
        if is_hashed(out.customer_id):
            known.append(out.customer_id)
        context = {**base, "customer": {**base.get("customer", {}), "traits": traits}}
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
            rendered = await asyncio.to_thread(
                self.renderer.render, out.template, out.channel, context
            )
        except TemplateError as exc:
            why = scrub_text(str(exc), known)
            await self._finish(out.key, "failed", reason=why)
            raise config_error(f"template {out.template}: {why}") from None
        try:
            # end this attempt before Temporal gives up on it, so a retry never runs
            # while this one is still talking to the provider
            async with asyncio.timeout_at(deadline):
                provider_id = await self._deliver(out, str(recipient), rendered, context)
        except TimeoutError:
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
            await self._finish(out.key, "sending", reason=f"retrying: {why}")
            raise TransientDeliveryError(why) from None
        crash_point("message_delivered")  # tests: a crash before the row says 'sent'
        await self._finish(
            out.key, "sent", provider_id=provider_id, subject=rendered.subject, sent_at=now
        )
        return Sent("done", provider_id=provider_id)

    async def _decide(
        self, conn: AsyncConnection[Any], out: Outgoing, traits: dict[str, Any], now: datetime
    ) -> Sent | None:
        if out.to is not None:  # staff notifications: the customer's policy is not theirs
            return None
        opted_out = out.marketing and (
            await consent.opted_out(conn, out.customer_id, out.channel)
            or any(
                _truthy(traits.get(t))
                for t in self.policy.consent.opt_out_traits.get(out.channel, [])
            )
        )
        window = self.policy.longest_window()
        recent: list[tuple[datetime, Any]] = []
        if out.marketing and window:
            cur = await conn.execute(
                "SELECT sent_at, channel FROM messages WHERE customer_id = %s AND marketing"
                " AND status = 'sent' AND sent_at > %s",
                (out.customer_id, now - timedelta(seconds=window)),
            )
            recent = [(r[0], r[1]) for r in await cur.fetchall()]
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
        if decision.verdict == "skip":
            await self._mark(conn, out.key, "suppressed", decision.reason)
            return Sent("skipped", reason=decision.reason)
        await conn.execute(
            "UPDATE messages SET status = 'deferred', reason = %s, deferred_until = %s,"
            " updated_at = now() WHERE idempotency_key = %s",
            (decision.reason, decision.until, out.key),
        )
        return Sent("deferred", reason=decision.reason, retry_at=decision.until)

    async def _deliver(
        self, out: Outgoing, recipient: str, rendered: Any, context: dict[str, Any]
    ) -> str:
        if out.channel == "email":
            return await send_email(
                self.settings,
                Email(
                    to=recipient,
                    subject=rendered.subject or "",
                    text=rendered.text,
                    html=rendered.html,
                    idempotency_key=out.key,
                    unsubscribe_url=context.get("unsubscribe_url"),
                ),
            )
        if out.channel == "sms":
            body = rendered.sms or rendered.text or ""
            return await send_sms(self.settings, to=recipient, body=body, idempotency_key=out.key)
        payload = rendered.webhook or {"text": rendered.text}
        return await post_webhook(
            self.settings, url=recipient, payload=payload, idempotency_key=out.key
        )

    async def _mark(self, conn: AsyncConnection[Any], key: str, status: str, reason: str) -> None:
        await conn.execute(
            "UPDATE messages SET status = %s, reason = %s, updated_at = now()"
            " WHERE idempotency_key = %s",
            (status, reason, key),
        )

    async def _finish(
        self,
        key: str,
        status: str,
        *,
        reason: str | None = None,
        provider_id: str | None = None,
        subject: str | None = None,
        sent_at: datetime | None = None,
    ) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE messages SET status = %s, reason = %s,"
                " provider_id = coalesce(%s, provider_id), subject = coalesce(%s, subject),"
                " sent_at = %s, updated_at = now(), delivering_until = NULL"
                " WHERE idempotency_key = %s",
                (status, reason, provider_id, subject, sent_at, key),
            )


MIN_DELIVERY_SECONDS = 1.0


def _budget() -> float:
    """Seconds this attempt may still spend delivering: its start-to-close timeout from
    when this attempt started, less a margin for recording the result (3 s, or a quarter
    of a short timeout). Below
    ``MIN_DELIVERY_SECONDS`` the attempt does not start delivering at all."""
    from temporalio import activity

    try:
        info = activity.info()
    except RuntimeError:  # called outside an activity (tests of the messenger alone)
        return 60.0
    timeout = info.start_to_close_timeout
    if timeout is None:
        return 60.0
    elapsed = (datetime.now(UTC) - info.started_time).total_seconds()
    margin = min(3.0, timeout.total_seconds() / 4)
    return timeout.total_seconds() - max(elapsed, 0.0) - margin


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "y", "on")
    return bool(value)


def utcnow() -> datetime:
    return datetime.now(UTC)
