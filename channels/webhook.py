"""The webhook channel: the message as a JSON object, POSTed to the action's ``url`` and
signed with JOURNEYS_WEBHOOK_SECRET (``Journeys-Signature``, see :func:`channels.http.sign`).

A template sends by webhook with a ``webhook`` block that writes a JSON object (values
with ``|tojson``), or else its ``text`` block, sent as ``{"text": ...}``. A webhook reaches
a system, not a person: it has no contact trait, offers and surveys do not go by it."""

from __future__ import annotations

import json
import logging
from typing import Any

from engine.channel_kinds import ChannelKind, Part
from settings import Settings

from .http import SIGNATURE_HEADER, post, provider_id
from .registry import Channel, Outbound, register

log = logging.getLogger(__name__)
_warned_unsigned = False


async def post_webhook(
    settings: Settings, *, url: str, payload: dict[str, Any], idempotency_key: str
) -> str:
    """POST ``payload`` as JSON to ``url``, signed when JOURNEYS_WEBHOOK_SECRET is set;
    returns the receiver's id for it (or ``"HTTP <status>"``)."""
    global _warned_unsigned
    # sorted and compact, so every retry sends the same bytes; str() for dates and decimals
    content = json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()
    if not settings.webhook_secret and not _warned_unsigned:
        _warned_unsigned = True
        log.warning(
            "webhooks are sent unsigned: set JOURNEYS_WEBHOOK_SECRET so receivers can verify"
            " the %s header",
            SIGNATURE_HEADER,
        )
    response = await post(
        settings,
        url,
        content,
        {"Content-Type": "application/json"},
        idempotency_key=idempotency_key,
        what="webhook",
        hint="check the webhook URL and what its receiver expects",
        secret=settings.webhook_secret,
    )
    return provider_id(response)


async def _send(settings: Settings, message: Outbound) -> str:
    payload = message.parts.get("webhook") or {"text": message.parts.get("text")}
    return await post_webhook(
        settings, url=message.to, payload=payload, idempotency_key=message.idempotency_key
    )


CHANNEL = register(
    Channel(
        ChannelKind(
            name="webhook",
            parts=(Part("webhook", ("webhook", "text"), limit=64 * 1024, form="json"),),
            needs=(("webhook", "text"),),
            needs_text="a webhook or a text block",
            contact=None,
            plural="notifications",
        ),
        _send,
        settings=("webhook_secret", "outbound_allow", "outbound_timeout_seconds"),
    )
)
