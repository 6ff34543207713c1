"""What the customer workflow shows outside PostgreSQL: its search attributes and the
details the Temporal UI shows (pure: safe in workflow code)."""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributeUpdate

from engine import Catalog, CustomerState, machine
from engine.ui_summary import markdown
from workflows.io import DeferredAction

JOURNEYS = SearchAttributeKey.for_keyword_list("Journeys")
JOURNEY_VERSIONS = SearchAttributeKey.for_keyword_list("JourneyVersions")


def attributes(state: CustomerState) -> tuple[list[str], list[str]]:
    """``Journeys`` (journey:state) and ``JourneyVersions`` (journey@version of active
    runs)."""
    journeys = machine.journeys_attribute(state)
    versions = sorted(f"{n}@{r.version}" for n, r in state.runs.items() if r.status == "active")
    return journeys, versions


def updates(journeys: list[str], versions: list[str]) -> list[SearchAttributeUpdate[Any]]:
    """The upserts that set ``attributes`` (an empty list unsets its attribute)."""
    return [
        JOURNEYS.value_set(journeys) if journeys else JOURNEYS.value_unset(),
        JOURNEY_VERSIONS.value_set(versions) if versions else JOURNEY_VERSIONS.value_unset(),
    ]


def details(state: CustomerState, catalog: Catalog | None, deferred: list[DeferredAction]) -> str:
    """The markdown of the workflow's UI details, with the messages the policy held back."""
    text = markdown(state, catalog)
    if deferred:  # what happens next includes messages the policy held back
        text += "\n\n**Deferred messages**\n" + "".join(
            f"\n- {d.input.command.summary}: at {d.due:%Y-%m-%d %H:%M} UTC ({d.reason})"
            for d in sorted(deferred, key=lambda d: d.due)
        )
    return text
