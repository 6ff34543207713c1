"""The refusal every ingestion check raises; its own module so the checks that
``ingest.segment`` calls (``ingest.sanitize``) can raise it without a circular import.
``ingest.segment.IngestError`` stays the public name."""

from __future__ import annotations

from engine.errors import InputError


class IngestError(InputError):
    """A request we refuse; ``status`` is the HTTP status, the message says what to fix
    and never repeats the submitted data (it may hold personal data)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.code = reason  # the ``error`` field, as every root's handler reads it
