"""Signals the customer workflow decodes itself."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import RawValue

from workflows.io import EventsSignal


def decode_events(raw: RawValue) -> EventsSignal | str:
    """The events signal in ``raw``, or the problem to show when it cannot be decoded.
    Decoded here, not by the SDK: a signal it cannot decode would be dropped with a log
    line only; this way it becomes a problem the admin sees (no data, only its size)."""
    try:
        signal: EventsSignal = workflow.payload_converter().from_payload(raw.payload, EventsSignal)
    except Exception as exc:
        return (
            f"an events signal of {raw.payload.ByteSize():,} bytes could not be decoded "
            f"({type(exc).__name__}); its events are in PostgreSQL but were not applied"
        )
    return signal
