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
