"""Helpers for the pure-engine tests: journeys from YAML text, customers, events, delivery."""

from __future__ import annotations

import itertools
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine import machine
from engine.catalog import Catalog
from engine.loader import load_rules
from engine.machine import TransitionRecord
from engine.model import ActionCommand, Customer, CustomerState, Event, Journey

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)

_dirs = itertools.count()
_ids = itertools.count()


def load_journeys(tmp_path: Path, *texts: str) -> list[Journey]:
    """Journeys from YAML texts, each written to its own file in a fresh folder under
    ``tmp_path`` and loaded with ``load_rules(folder, None)``."""
    folder = tmp_path / f"rules{next(_dirs)}"
    folder.mkdir(parents=True)
    for i, text in enumerate(texts):
        (folder / f"j{i}.yaml").write_text(textwrap.dedent(text))
    return load_rules(folder, None)


def load_one(tmp_path: Path, text: str) -> Journey:
    (journey,) = load_journeys(tmp_path, text)
    return journey


def catalog_of(tmp_path: Path, *texts: str) -> Catalog:
    return Catalog.of(load_journeys(tmp_path, *texts))


def two_versions(v1: Journey, v2: Journey, *, floor: int = 2) -> Catalog:
    """A catalog holding ``v1`` as version 1 and ``v2`` as version 2 (the latest)."""
    name = v1.journey
    return Catalog(
        versions={
            f"{name}@1": v1.model_copy(update={"version": 1}),
            f"{name}@2": v2.model_copy(update={"version": 2}),
        },
        latest={name: 2},
        floor={name: floor},
    )


def customer(cid: str = "c1", **traits: Any) -> CustomerState:
    return CustomerState(customer=Customer(id=cid, traits=traits))


def ev(name: str, at: datetime = T0, id: str | None = None, **properties: Any) -> Event:
    """An external event; ids are unique unless given."""
    return Event(name=name, id=id or f"ev{next(_ids)}", timestamp=at, properties=properties)


@dataclass
class Trace:
    """Everything a sequence of interpreter calls produced."""

    state: CustomerState
    actions: list[ActionCommand] = field(default_factory=list)
    transitions: list[TransitionRecord] = field(default_factory=list)

    def add(self, step: machine.Step) -> machine.Step:
        self.state = step.state
        self.actions += step.actions
        self.transitions += step.transitions
        return step

    def deliver(self, catalog: Catalog, event: Event, now: datetime | None = None) -> machine.Step:
        """What the workflow does when an event arrives: fire due timers, then the event."""
        at = now or event.timestamp
        self.add(machine.fire_timers(catalog, self.state, at))
        return self.add(machine.handle_event(catalog, self.state, event, at))

    def timers(self, catalog: Catalog, now: datetime) -> machine.Step:
        return self.add(machine.fire_timers(catalog, self.state, now))

    def keys(self) -> list[str]:
        return [a.idempotency_key for a in self.actions]


def dump(state: CustomerState) -> dict[str, Any]:
    """A state as JSON, the form tests compare (and workflows carry)."""
    return state.model_dump(mode="json")
