"""Handing one rendered message to its channel, and how long an attempt may take."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from channels import Outbound, registry
from settings import Settings

MIN_DELIVERY_SECONDS = 1.0


@dataclass
class Outgoing:
    """One message to send: to the customer (policy applies) or to staff about them."""

    key: str
    customer_id: str
    journey: str
    state: str
    template: str
    channel: str  # a registered channel's name (channels.registry)
    marketing: bool
    context: dict[str, Any] = field(default_factory=dict)  # offer, survey, manager, ...
    to: str | None = None  # staff address; None: the customer's, read from their profile
    url: str | None = None  # webhook target


async def deliver(
    settings: Settings, out: Outgoing, recipient: str, rendered: Any, context: dict[str, Any]
) -> str:
    """Hand ``out`` to its channel's sender; returns the provider's id for it."""
    message = Outbound(
        to=recipient,
        parts=rendered.parts,
        idempotency_key=out.key,
        unsubscribe_url=context.get("unsubscribe_url"),
    )
    return await registry.get(out.channel).send(settings, message)


def budget_left() -> float:
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
