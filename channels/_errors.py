"""What a delivery can fail with, so the activity knows whether retrying can help.

    DeliveryError
    ├── PermanentDeliveryError   retrying cannot help: a bad address, a 4xx answer, a target
    │                            the SSRF guard refuses, missing configuration
    └── TransientDeliveryError   retrying may help: timeouts, refused connections, 5xx, 429,
                                 SMTP 4xx

The message of each is a sentence an admin can act on; activities turn permanent errors into
non-retryable ``ApplicationError`` and let Temporal retry transient ones."""

from __future__ import annotations


class DeliveryError(Exception):
    """A message could not be delivered."""


class PermanentDeliveryError(DeliveryError):
    """Retrying the same delivery cannot succeed; fix the data or the configuration."""


class TransientDeliveryError(DeliveryError):
    """The receiver or the network failed for now; the same delivery may succeed later."""


_PRINTABLE = set(range(0x21, 0x7F))


def header_key(key: str) -> str:
    """The idempotency key as a header value: itself when it is short printable ASCII
    (readable in a provider's logs), else ``sha256:HEX`` of it (customer ids may hold any
    character, and a line break in a header would be an injection)."""
    raw = key.encode()
    if len(raw) <= 200 and all(b in _PRINTABLE for b in raw):
        return key
    import hashlib

    return "sha256:" + hashlib.sha256(raw).hexdigest()
