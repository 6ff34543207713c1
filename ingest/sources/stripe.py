"""Stripe webhooks as customer events: payments become ``Order Completed``, refunds
``Order Refunded``, a cancelled subscription ``Subscription Cancelled``, a created or
updated Stripe customer an ``identify`` with their email and name.

Point a Stripe webhook endpoint at ``https://WRITE_KEY:@HOST/v1/sources/stripe`` (Stripe
sends the URL's user as HTTP Basic) and set ``JOURNEYS_STRIPE_WEBHOOK_SECRET`` to its
signing secret: a delivery whose ``Stripe-Signature`` does not sign its body with that
secret, or is more than five minutes old, is refused. Stripe retries a delivery until it
gets a 2xx; its event id is the ``messageId``, so a retry is stored once.

The customer is ``metadata.userId`` (or ``metadata.user_id``) of the Stripe object when
the shop sets it, as Stripe recommends for linking its customers to yours; otherwise the
Stripe customer id (``cus_...``). Amounts are in the currency's minor unit in Stripe and
become ``revenue`` in major units (zero-decimal currencies such as JPY as they are).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from channels.http import verify as verify_signature
from settings import Settings

from .._errors import IngestError
from . import Source, register

# https://docs.stripe.com/currencies#zero-decimal
ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
TOLERANCE_SECONDS = 300


def verify(settings: Settings, headers: Mapping[str, str], body: bytes) -> None:
    secret = settings.stripe_webhook_secret
    if not secret:
        raise IngestError(
            403,
            "source_not_configured",
            "set JOURNEYS_STRIPE_WEBHOOK_SECRET to the endpoint's signing secret "
            "to accept Stripe webhooks",
        )
    header = headers.get("stripe-signature")
    if not header:
        raise IngestError(401, "bad_signature", "the Stripe-Signature header is missing")
    if not verify_signature(secret, header, body, tolerance=TOLERANCE_SECONDS):
        raise IngestError(
            401,
            "bad_signature",
            "the Stripe-Signature does not sign this body with the endpoint's secret, "
            "or is more than five minutes old",
        )


def _field(obj: Mapping[str, Any], key: str, where: str, kind: type) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise IngestError(
            400, "bad_source_message", f"a Stripe event needs {where}.{key} ({kind.__name__})"
        )
    return value


def _customer(obj: Mapping[str, Any], *, is_customer: bool = False) -> str:
    """Whose the object is: the shop's id in its metadata, else the Stripe customer's id
    (the object's own id when it is the customer)."""
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping):
        for key in ("userId", "user_id"):
            if isinstance(metadata.get(key), str) and metadata[key]:
                return str(metadata[key])
    customer = obj.get("id") if is_customer else obj.get("customer")
    if isinstance(customer, Mapping):  # an expanded customer object
        customer = customer.get("id")
    if not isinstance(customer, str) or not customer:
        raise IngestError(
            400,
            "bad_source_message",
            "a Stripe event needs data.object.customer or data.object.metadata.userId "
            "to know whose it is",
        )
    return customer


def _amount(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    amount = _field(obj, key, "data.object", int)
    currency = _field(obj, "currency", "data.object", str).lower()
    major = amount if currency in ZERO_DECIMAL else amount / 100
    return {"revenue": major, "currency": currency.upper()}


def translate(delivery: dict[str, Any]) -> list[dict[str, Any]]:
    event_id = _field(delivery, "id", "the event", str)
    kind = _field(delivery, "type", "the event", str)
    created = _field(delivery, "created", "the event", int)
    data = _field(delivery, "data", "the event", dict)
    obj = _field(data, "object", "data", dict)
    base = {
        "messageId": f"stripe:{event_id}",
        "timestamp": datetime.fromtimestamp(created, UTC).isoformat(),
        "context": {"integration": {"name": "stripe"}},
    }

    def track(name: str, properties: dict[str, Any]) -> list[dict[str, Any]]:
        who = _customer(obj)
        return [{**base, "type": "track", "userId": who, "event": name, "properties": properties}]

    if kind == "charge.succeeded":
        return track("Order Completed", {**_amount(obj, "amount"), "order_id": obj.get("id")})
    if kind == "charge.refunded":
        return track(
            "Order Refunded", {**_amount(obj, "amount_refunded"), "order_id": obj.get("id")}
        )
    if kind == "customer.subscription.deleted":
        return track("Subscription Cancelled", {"subscription_id": obj.get("id")})
    if kind in ("customer.created", "customer.updated"):
        who = _customer(obj, is_customer=True)
        traits = {
            k: obj[k] for k in ("email", "name", "phone") if isinstance(obj.get(k), str) and obj[k]
        }
        return [{**base, "type": "identify", "userId": who, "traits": traits}]
    return []


SOURCE = register(Source("stripe", verify, translate))
