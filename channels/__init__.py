"""Delivery channels: email over SMTP, SMS and webhooks over HTTP.

Each send function takes the settings and the action's idempotency key, returns the
provider's id for the message, and raises :class:`PermanentDeliveryError` (retrying cannot
help) or :class:`TransientDeliveryError` (it may). ``channels.mailcatcher`` is the
development SMTP server ``make run`` starts; it is not imported here."""

from ._errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError, header_key
from .email import Email, message_id, send_email
from .guard import AllowList, why_blocked
from .http import post_webhook, send_sms, sign, verify

__all__ = [
    "AllowList",
    "DeliveryError",
    "Email",
    "PermanentDeliveryError",
    "TransientDeliveryError",
    "header_key",
    "message_id",
    "post_webhook",
    "send_email",
    "send_sms",
    "sign",
    "verify",
    "why_blocked",
]
