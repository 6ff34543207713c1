"""The HTTP API: Segment-compatible ingestion, admin reads and overrides, health, metrics."""

from .app import create_app

__all__ = ["create_app"]
