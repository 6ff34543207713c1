"""The template context is built in one place (``engine.template_context``) and declared in
one (``engine.templates.CONTEXT``): the two agree on every name and attribute."""

from __future__ import annotations

from datetime import UTC, datetime

from engine.model import Event
from engine.template_context import action_context, sample_context
from engine.templates import ACTION_ONLY, CONTEXT

NOW = datetime(2026, 5, 1, 12, 0, 30, 123, tzinfo=UTC)


def _sample() -> dict:
    return sample_context(
        customer_id="42",
        traits={"first_name": "Ada"},
        journey="lifecycle",
        version=3,
        state="new",
        ctx={"orders": 1},
        public_url="https://shop.example/",
        now=NOW,
    )


def test_the_sample_has_every_name_and_attribute_a_template_may_use():
    sample = _sample()
    assert set(sample) == set(CONTEXT)
    for name, attrs in CONTEXT.items():
        if attrs is not None and sample[name] is not None:
            assert set(sample[name]) == attrs, name
    assert CONTEXT["event"] is not None and CONTEXT["event"] <= set(Event.model_fields)


def test_the_sample_reads_like_a_real_message():
    sample = _sample()
    assert sample["customer"] == {
        "id": "42",
        "traits": {"first_name": "Ada"},
        "tier": None,
        "segment": None,
    }
    assert sample["journey"] == {"name": "lifecycle", "version": 3}
    assert sample["unsubscribe_url"] == "https://shop.example/u/SAMPLE-TOKEN"
    assert sample["survey"]["url"] == "https://shop.example/s/SAMPLE-TOKEN"
    assert sample["offer"]["expires_at"] == datetime(2026, 5, 15, 12, 0, 30, tzinfo=UTC)
    assert sample["event"] is None


def test_an_action_gives_every_name_but_the_action_only_ones_and_what_delivery_adds():
    context = action_context(
        customer_id="42",
        tier="gold",
        segment="vip",
        journey="lifecycle",
        version=1,
        state="new",
        ctx={},
        event=None,
        manager=None,
    )
    added_by_delivery = {"unsubscribe_url"}
    assert set(context) == set(CONTEXT) - set(ACTION_ONLY) - added_by_delivery
    assert context["customer"] == {"id": "42", "tier": "gold", "segment": "vip"}
