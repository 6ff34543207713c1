"""Per-action-kind behaviour lives on the action's model (``engine.actions``) and is read,
not spelled, elsewhere: which deferred actions are dropped when the customer left their
state (the workflow's ``is_stale``), which template names only one kind provides
(``engine.templates``). A kind registered here, and only here, gets the behaviour."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import ClassVar

import pytest

from engine import Customer, CustomerState, Run
from engine.actions import ACTIONS, ActionSpec, action
from engine.model import ActionCommand
from engine.templates import ACTION_ONLY, CONTEXT, declared_context
from workflows._actions import is_stale
from workflows.io import ActionInput, DeferredAction

NOW = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture
def voucher() -> Iterator[type[ActionSpec]]:
    """A new action kind, as a newcomer would add it to engine/actions.py."""

    @action("voucher", activity="send_voucher")
    class Voucher(ActionSpec):
        dropped_when_stale = True
        provides: ClassVar[dict[str, frozenset[str] | None]] = {
            "voucher": frozenset({"code", "valid_until"})
        }

    yield Voucher
    del ACTIONS["voucher"]


def _deferred(kind: str, *, visit: int) -> DeferredAction:
    command = ActionCommand(
        kind=kind, args={}, journey="j", version=1, state="s", idempotency_key="k", summary=kind
    )
    return DeferredAction(
        due=NOW, input=ActionInput(customer_id="c", command=command), enrollment=1, visit=visit
    )


def _state(*, visit: int) -> CustomerState:
    run = Run(journey="j", version=1, state="s", entered_at=NOW, enrolled_at=NOW, visit=visit)
    return CustomerState(customer=Customer(id="c"), runs={"j": run})


@pytest.mark.parametrize("kind", sorted(k for k, spec in ACTIONS.items() if spec.activity))
def test_a_deferred_action_after_the_customer_moved_on_is_dropped_as_its_model_says(kind: str):
    moved_on = _state(visit=2)
    assert is_stale(moved_on, _deferred(kind, visit=1)) is ACTIONS[kind].dropped_when_stale
    assert is_stale(_state(visit=1), _deferred(kind, visit=1)) is False


def test_the_shipped_kinds_keep_their_behaviour():
    assert sorted(k for k, spec in ACTIONS.items() if spec.dropped_when_stale) == [
        "offer",
        "survey",
    ]
    assert ACTION_ONLY == {"offer": "offer", "survey": "survey"}


def test_a_new_kind_gets_its_behaviour_from_its_model_alone(voucher: type[ActionSpec]):
    assert voucher.kind == "voucher"
    assert is_stale(_state(visit=2), _deferred("voucher", visit=1))
    names, only = declared_context()
    assert names["voucher"] == frozenset({"code", "valid_until"})
    assert only["voucher"] == "voucher"
    assert names["customer"] == CONTEXT["customer"]
