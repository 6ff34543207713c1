"""The context a message template is rendered with, built in one place.

``engine.templates.CONTEXT`` declares the names and their attributes (``journeys validate``
checks templates against it); the functions here build them: :func:`action_context` is
what every action's message shares (the send activities); what one kind adds is built
beside its model in ``engine.actions`` (:func:`offer_context`, :func:`survey_context`, each
model's ``sample``), and :func:`sample_context` is all of it with samples, for
``journeys render``'s preview. Delivery adds the customer's full
profile (``customer.traits``) and ``unsubscribe_url`` when it sends.

Pure: the preview's clock is an argument.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .actions import ACTIONS, SampleFacts, offer_context, survey_context

SAMPLE_TOKEN = "SAMPLE-TOKEN"
SAMPLE_MANAGER = {"name": "Sam Sample", "email": "sam.sample@example.com"}
SAMPLE_VALID_FOR = timedelta(days=14)
__all__ = [
    "SAMPLE_MANAGER",
    "SAMPLE_TOKEN",
    "SAMPLE_VALID_FOR",
    "action_context",
    "offer_context",
    "sample_context",
    "survey_context",
]


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
    a real action makes the value: the manager, the opt-out link and what each action kind
    provides (its model's ``sample``: an offer, a survey, expiring ``SAMPLE_VALID_FOR``
    after ``now``). No event (as after a timer)."""
    base = public_url.rstrip("/")
    facts = SampleFacts(
        public_url=base,
        token=SAMPLE_TOKEN,
        expires_at=now.replace(microsecond=0) + SAMPLE_VALID_FOR,
    )
    samples: dict[str, Any] = {}
    for spec in ACTIONS.values():
        samples.update(spec.sample(facts))
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
        **samples,
    }


def sampled_names() -> list[str]:
    """The names :func:`sample_context` fills with samples (what each action kind
    provides, the manager and the opt-out link), for a preview to say so."""
    facts = SampleFacts(public_url="", token=SAMPLE_TOKEN, expires_at=datetime(2000, 1, 1))
    provided = {name for spec in ACTIONS.values() for name in spec.sample(facts)}
    return sorted(provided | {"manager", "unsubscribe_url"})
