"""Per-action-kind behaviour lives on the action's model (``engine.actions``) and is read,
not spelled, elsewhere: which deferred actions are dropped when the customer left their
state (the workflow's ``is_stale``), which template names only one kind provides
(``engine.templates``) and their samples in ``journeys render`` (``engine.template_context``);
what the kind does is one body registered with ``activities.kinds.performs``, which the
worker's activity list collects. A kind registered here, and only here, gets all of it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest
from psycopg.types.json import Jsonb
from temporalio.testing import ActivityEnvironment

from activities.actions import ActionActivities
from activities.kinds import PERFORMERS, ActionBase, performs
from cli import run as cli_run
from engine import Customer, CustomerState, Run
from engine.actions import ACTIONS, ActionSpec, SampleFacts, action
from engine.model import ActionCommand
from engine.policy import Policy
from engine.template_context import sample_context
from engine.templates import ACTION_ONLY, CONTEXT, declared_context
from settings import Settings
from workflows._actions import is_stale
from workflows.io import ActionInput, ActionResult, DeferredAction

NOW = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture
def voucher_model() -> Iterator[type[ActionSpec]]:
    """A new action kind, as a newcomer would add it to engine/actions.py."""

    @action("voucher", activity="send_voucher")
    class Voucher(ActionSpec):
        dropped_when_stale = True
        provides: ClassVar[dict[str, frozenset[str] | None]] = {
            "voucher": frozenset({"code", "valid_until"})
        }

        @classmethod
        def sample(cls, facts: SampleFacts) -> dict[str, Any]:
            return {"voucher": {"code": "SAMPLE-VOUCHER", "valid_until": facts.expires_at}}

    yield Voucher
    del ACTIONS["voucher"]


@pytest.fixture
def voucher(voucher_model: type[ActionSpec]) -> Iterator[type[ActionSpec]]:
    """The kind's model and what it does, as a newcomer would add it in a new module
    activities/kinds/vouchers.py."""

    @performs("voucher")
    async def send_voucher(acts: ActionBase, data: ActionInput) -> ActionResult:
        return await acts.log(data, ActionResult(status="done", detail={"voucher": "V-1"}))

    yield voucher_model
    del PERFORMERS["voucher"]


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


async def test_a_new_kinds_activity_is_collected_for_the_worker_and_runs(
    voucher: type[ActionSpec], db
) -> None:
    acts = ActionActivities(db, Settings(), policy=Policy())
    names = {getattr(a, "__temporal_activity_definition").name for a in acts.all()}
    shipped = {spec.activity for spec in ACTIONS.values() if spec.activity}
    assert names == shipped and "send_voucher" in names
    command = ActionCommand(
        kind="voucher",
        args={},
        journey="j",
        version=1,
        state="s",
        idempotency_key="c1/j/1/1/v",
        summary="voucher for customer c1",
    )
    data = ActionInput(customer_id="c1", command=command, now=NOW)
    result = await ActivityEnvironment().run(acts.send_voucher, data)
    assert (result.status, result.detail) == ("done", {"voucher": "V-1"})
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT action, status FROM action_log WHERE idempotency_key = %s",
            ("c1/j/1/1/v",),
        )
        assert await cur.fetchall() == [("voucher", "done")]


async def test_a_kind_without_an_activity_stops_the_worker_loudly(
    voucher_model: type[ActionSpec], db
) -> None:
    with pytest.raises(RuntimeError, match="actions without an activity: voucher"):
        ActionActivities(db, Settings(), policy=Policy()).all()


def test_a_new_kinds_sample_is_in_the_preview(voucher: type[ActionSpec]) -> None:
    sample = sample_context(
        customer_id="42",
        traits={},
        journey="j",
        version=1,
        state="s",
        ctx={},
        public_url="https://shop.example/",
        now=NOW,
    )
    assert sample["voucher"] == {
        "code": "SAMPLE-VOUCHER",
        "valid_until": datetime(2026, 5, 15, tzinfo=UTC),
    }
    assert set(sample) == set(declared_context()[0])


def test_journeys_render_previews_a_new_kinds_template(
    voucher: type[ActionSpec],
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from settings import get_settings

    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")  # nothing listens: no journey state
    monkeypatch.setenv("JOURNEYS_PUBLIC_URL", "https://shop.example")
    get_settings.cache_clear()
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO customers (customer_id, traits) VALUES (%s, %s)",
            ("c-1", Jsonb({"first_name": "Ada", "email": "ada@example.com"})),
        )
    (tmp_path / "voucher_mail.j2").write_text(
        "{% block subject %}A voucher{% endblock %}"
        "{% block text %}Code {{ voucher.code }}, {{ customer.traits.first_name }}{% endblock %}"
    )
    try:
        code = cli_run(
            ["render", "voucher_mail", "--customer", "c-1", "--templates", str(tmp_path)]
        )
    finally:
        get_settings.cache_clear()
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "--- text ---\nCode SAMPLE-VOUCHER, Ada" in out
