"""Run journeys offline, in event time, with the same interpreter the workflows use.

Input is Segment ``track`` / ``identify`` messages, one JSON object per line. Each customer's
events are applied in timestamp order; before each event, the timers due by its time fire
at their own due time, exactly as the workflow does when it wakes up.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import machine
from .catalog import Catalog
from .errors import InputError
from .identity import redact_traits
from .model import ActionCommand, Customer, CustomerState, Event


class SimulationInputError(InputError, ValueError):
    """A line of the event file is not a usable Segment message; the text says which."""


@dataclass
class Message:
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


def parse_time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise SimulationInputError(f"{where}: timestamp must be an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SimulationInputError(f"{where}: '{value}' is not an ISO-8601 timestamp") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_messages(lines: Iterable[str], source: str = "events") -> list[Message]:
    """Segment messages from JSON lines; blank lines and ``#`` comments are skipped."""
    out: list[Message] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        where = f"{source}:{number}"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SimulationInputError(
                f"{where}: not JSON ({exc.msg} at column {exc.colno})"
            ) from None
        if not isinstance(data, dict):
            raise SimulationInputError(f"{where}: each line must be a JSON object")
        kind = data.get("type", "track" if "event" in data else None)
        customer = data.get("userId") or data.get("anonymousId")
        if not customer:
            raise SimulationInputError(f"{where}: needs userId or anonymousId")
        stamp = parse_time(data.get("timestamp"), where)
        if kind == "track":
            name = data.get("event")
            if not isinstance(name, str) or not name.strip():
                raise SimulationInputError(f"{where}: a track message needs an 'event' name")
            event = Event(
                name=name,
                id=str(data.get("messageId") or f"{source}:{number}"),
                timestamp=stamp,
                properties=data.get("properties") or {},
            )
            out.append(Message("track", str(customer), stamp, number, event=event))
        elif kind == "identify":
            traits = data.get("traits") or (data.get("context") or {}).get("traits") or {}
            out.append(Message("identify", str(customer), stamp, number, traits=traits))
        else:
            raise SimulationInputError(
                f"{where}: type '{kind}' is not supported here (use track or identify)"
            )
    return out


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
            if m.kind == "identify":
                traits = {**state.customer.traits, **redact_traits(m.traits)}
                state = state.model_copy(
                    update={"customer": state.customer.model_copy(update={"traits": traits})}
                )
                continue
            assert m.event is not None
            step = machine.handle_event(catalog, state, m.event, m.timestamp)
            state, actions = step.state, actions + step.actions
        if end is not None:
            step = machine.fire_timers(catalog, state, end)
            state, actions = step.state, actions + step.actions
        results.append(CustomerResult(customer_id, state, actions))
    return results
