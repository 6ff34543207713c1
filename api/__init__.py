"""The HTTP API: Segment-compatible ingestion, admin reads and overrides, health, metrics."""

import channels  # noqa: F401  registers the channels rules, consent and rendering ask for

from .app import create_app

__all__ = ["create_app"]
