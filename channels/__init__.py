"""Delivery channels: email over SMTP, SMS and webhooks over HTTP, one module each.

Each channel module registers itself (:func:`channels.registry.register`: name, template
parts, contact trait, opt-out traits, sender, settings) when this package is imported:
every public module here is imported below, so a new channel is one new module and no list
to extend. Everything else asks :mod:`channels.registry` (or, below this layer,
``engine.channel_kinds``) which channels there are.

A sender takes the settings and one :class:`Outbound` message with the action's
idempotency key, returns the provider's id for the message, and raises
:class:`PermanentDeliveryError` (retrying cannot help) or :class:`TransientDeliveryError`
(it may)."""

import importlib
import pkgutil

from . import registry
from ._errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError, header_key
from .email import Email, message_id, send_email
from .guard import AllowList, why_blocked
from .http import sign, verify
from .registry import Channel, Outbound
from .sms import send_sms
from .webhook import post_webhook

# every channel module registers itself on import; sorted, so the order is the same each time
for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "AllowList",
    "Channel",
    "DeliveryError",
    "Email",
    "Outbound",
    "PermanentDeliveryError",
    "TransientDeliveryError",
    "header_key",
    "message_id",
    "post_webhook",
    "registry",
    "send_email",
    "send_sms",
    "sign",
    "verify",
    "why_blocked",
]
