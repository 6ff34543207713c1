"""Run journeys offline, in event time, with the same interpreter the workflows use.

Input is what ingestion would hand the workflows: events and profile updates, each with its
customer and time. ``ingest.event_file`` reads them from a file of Segment messages with
the API's own parser (``journeys simulate``). Each customer's messages are applied in
timestamp order; before each one, the timers due by its time fire at their own due time,
exactly as the workflow does when it wakes up.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import machine
from .catalog import Catalog
from .identity import redact_traits
from .model import ActionCommand, Customer, CustomerState, Event


@dataclass
class Message:
    """One input of the simulation. ``kind`` ``track``: ``event`` reaches the journeys;
    ``identify``: ``traits`` update the customer's profile (an identify call, or any
    message that carries traits, as ingestion stores them). ``line`` orders messages of
    the same time as the file does."""

    kind: str  # track | identify
    customer_id: str
    timestamp: datetime
    line: int
    event: Event | None = None
    traits: dict[str, Any] = field(default_factory=dict)


@dataclass
class CustomerResult:
    customer_id: str
    state: CustomerState
    actions: list[ActionCommand]

    def as_json(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "journeys": {
                name: {
                    "state": run.state,
                    "status": run.status,
                    "context": run.context,
                    "version": run.version,
                }
                for name, run in sorted(self.state.runs.items())
            },
            "actions": [
                {
                    "kind": a.kind,
                    "journey": a.journey,
                    "state": a.state,
                    "args": a.args,
                    "idempotency_key": a.idempotency_key,
                }
                for a in self.actions
            ],
        }


def simulate(
    catalog: Catalog, messages: list[Message], *, until: datetime | None = None
) -> list[CustomerResult]:
    """Every customer's final state and the actions that would have run."""
    by_customer: dict[str, list[Message]] = defaultdict(list)
    for m in messages:
        by_customer[m.customer_id].append(m)
    end = until or max((m.timestamp for m in messages), default=None)
    results = []
    for customer_id in sorted(by_customer):
        history = sorted(by_customer[customer_id], key=lambda m: (m.timestamp, m.line))
        state = CustomerState(customer=Customer(id=customer_id))
        actions: list[ActionCommand] = []
        for m in history:
            if until and m.timestamp > until:
                break
            step = machine.fire_timers(catalog, state, m.timestamp)
            state, actions = step.state, actions + step.actions
            if m.event is None:  # a profile update, as the workflow gets it with a signal
                customer = machine.patch_customer(state.customer, traits=redact_traits(m.traits))
                state = state.model_copy(update={"customer": customer})
                state = machine.refresh_calendar(catalog, state, m.timestamp)
                continue
            step = machine.handle_event(catalog, state, m.event, m.timestamp)
            state, actions = step.state, actions + step.actions
        if end is not None:
            step = machine.fire_timers(catalog, state, end)
            state, actions = step.state, actions + step.actions
        results.append(CustomerResult(customer_id, state, actions))
    return results
