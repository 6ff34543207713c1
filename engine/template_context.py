"""The context a message template is rendered with, built in one place.

``engine.templates.CONTEXT`` declares the names and their attributes (``journeys validate``
checks templates against it); the functions here build them: :func:`action_context` is
what every action's message shares (the send activities), :func:`offer_context` and
:func:`survey_context` what an offer or a survey adds, and :func:`sample_context` all of
it with samples, for ``journeys render``'s preview. Delivery adds the customer's full
profile (``customer.traits``) and ``unsubscribe_url`` when it sends.

Pure: the preview's clock is an argument.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

SAMPLE_TOKEN = "SAMPLE-TOKEN"
SAMPLE_MANAGER = {"name": "Sam Sample", "email": "sam.sample@example.com"}
SAMPLE_VALID_FOR = timedelta(days=14)


def action_context(
    *,
    customer_id: str,
    tier: str | None,
    segment: str | None,
    journey: str,
    version: int,
    state: str,
    ctx: dict[str, Any],
    event: dict[str, Any] | None,
    manager: dict[str, Any] | None,
    traits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What every message of an action has: the customer (``traits`` when known: delivery
    adds them from PostgreSQL), the journey, state and ctx the action ran in, the event
    that led there (None after a timer) and the customer's account manager, if any."""
    customer: dict[str, Any] = {"id": customer_id}
    if traits is not None:
        customer["traits"] = traits
    customer.update(tier=tier, segment=segment)
    return {
        "customer": customer,
        "journey": {"name": journey, "version": version},
        "state": state,
        "ctx": ctx,
        "event": event,
        "manager": manager,
    }


def offer_context(
    *,
    code: str,
    percent_off: float | None,
    amount_off: float | None,
    expires_at: datetime,
    discount: str,
) -> dict[str, Any]:
    """What an offer's message adds: ``offer`` (the coupon)."""
    return {
        "offer": {
            "code": code,
            "percent_off": percent_off,
            "amount_off": amount_off,
            "expires_at": expires_at,
            "discount": discount,
        }
    }


def survey_context(*, url: str, kind: str, expires_at: datetime) -> dict[str, Any]:
    """What a survey's message adds: ``survey`` (its link)."""
    return {"survey": {"url": url, "kind": kind, "expires_at": expires_at}}


def sample_context(
    *,
    customer_id: str,
    traits: dict[str, Any],
    journey: str,
    version: int,
    state: str,
    ctx: dict[str, Any],
    public_url: str,
    now: datetime,
) -> dict[str, Any]:
    """Every name a template may use, as an action would give it, with samples where only
    a real action makes the value: the manager, the opt-out link, an offer, a survey
    (expiring ``SAMPLE_VALID_FOR`` after ``now``). No event (as after a timer)."""
    expires = now.replace(microsecond=0) + SAMPLE_VALID_FOR
    base = public_url.rstrip("/")
    return {
        **action_context(
            customer_id=customer_id,
            traits=traits,
            tier=None,
            segment=None,
            journey=journey,
            version=version,
            state=state,
            ctx=ctx,
            event=None,
            manager=dict(SAMPLE_MANAGER),
        ),
        "unsubscribe_url": f"{base}/u/{SAMPLE_TOKEN}",
        **offer_context(
            code="SAMPLE-7KQ2-9XWD",
            percent_off=15,
            amount_off=None,
            expires_at=expires,
            discount="15%",
        ),
        **survey_context(url=f"{base}/s/{SAMPLE_TOKEN}", kind="nps", expires_at=expires),
    }
