"""The SMS channel: a JSON POST (``{"to": ..., "body": ...}``) to the provider at
JOURNEYS_SMS_URL, with a bearer token when JOURNEYS_SMS_TOKEN is set.

A template sends by SMS with an ``sms`` block, or else its ``text`` block; the address is
the customer's ``phone`` trait."""

from __future__ import annotations

import json
import re

from engine.channel_kinds import ChannelKind, Part
from settings import Settings

from ._errors import PermanentDeliveryError
from .http import post, provider_id
from .registry import Channel, Outbound, register


async def send_sms(settings: Settings, *, to: str, body: str, idempotency_key: str) -> str:
    """Send ``body`` to the phone number ``to`` through the SMS provider; returns the
    provider's message id (or ``"HTTP <status>"`` when it gives none)."""
    if not settings.sms_url:
        raise PermanentDeliveryError(
            "no SMS provider is configured: set JOURNEYS_SMS_URL to the provider's endpoint"
            " (and JOURNEYS_SMS_TOKEN if it needs a bearer token)"
        )
    number = re.sub(r"[\s().-]", "", to)
    if not re.fullmatch(r"\+?[0-9]{4,15}", number):
        raise PermanentDeliveryError(f"{to!r} is not a phone number (expected e.g. +4915112345678)")
    headers = {"Content-Type": "application/json"}
    if settings.sms_token:
        headers["Authorization"] = f"Bearer {settings.sms_token}"
    content = json.dumps({"to": number, "body": body}, separators=(",", ":")).encode()
    response = await post(
        settings,
        settings.sms_url,
        content,
        headers,
        idempotency_key=idempotency_key,
        what="SMS",
        hint="check JOURNEYS_SMS_URL and JOURNEYS_SMS_TOKEN",
        trusted=True,
    )
    return provider_id(response)


async def _send(settings: Settings, message: Outbound) -> str:
    body = message.parts.get("sms") or ""
    return await send_sms(
        settings, to=message.to, body=body, idempotency_key=message.idempotency_key
    )


CHANNEL = register(
    Channel(
        ChannelKind(
            name="sms",
            # ten concatenated SMS segments; leading and trailing space costs characters
            parts=(Part("sms", ("sms", "text"), limit=1600, form="stripped"),),
            needs=(("sms", "text"),),
            needs_text="an sms or a text block",
            contact="phone",
            plural="text messages",
        ),
        _send,
        settings=("sms_url", "sms_token", "outbound_allow", "outbound_timeout_seconds"),
    )
)
