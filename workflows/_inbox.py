"""Signals the customer workflow decodes itself, and what they change."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.common import RawValue

from engine import Catalog, CustomerState, machine
from workflows.io import CustomerPatch, EventsSignal


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


def patched(
    catalog: Catalog, state: CustomerState, patch: CustomerPatch, now: datetime
) -> CustomerState:
    """``state`` with what ``patch`` says of the customer; calendar timers follow a date
    that changed."""
    # every field of the patch is a parameter of patch_customer, by the same name
    known = {name: getattr(patch, name) for name in type(patch).model_fields}
    state.customer = machine.patch_customer(state.customer, **known)
    return machine.refresh_calendar(catalog, state, now)
