"""The tag action in the pure interpreter: tags change the customer's state when the action
is emitted, so later rules of every journey see ``customer.tags``; their bounds are YAML
errors where the file shows them and problems where only run time does. Segment rules
compile ``"x" in tags`` to SQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import JourneyValidationError, handle_event
from engine._segment_sql import Unsupported, compile_condition
from engine.actions import MAX_TAG_LENGTH, MAX_TAGS
from engine.model import Customer, CustomerState
from engine.segments import SegmentRule, Segments, check_rule, segment_of
from engine.ui_summary import markdown
from tests.engine.support import T0, catalog_of, customer, ev, load_journeys

# journeys run in name order: the tagger before the router
TAGGER = """
journey: a_tagger
enroll: {on: [signed_up]}
start: new
states:
  new:
    on:
      signed_up:
        when: 'event.properties.plan == "pro"'
        do: [{tag: vip}, {tag: {add: [pro_plan]}}]
      downgraded:
        do: [{tag: {remove: [vip, pro_plan]}}]
      closed: done
  done: {final: true}
"""
ROUTER = """
journey: b_router
enroll: {on: [signed_up, order_completed]}
start: first
states:
  first:
    on:
      order_completed:
        - when: '"vip" in customer.tags'
          goto: vip
        - goto: regular
  vip: {final: true}
  regular: {final: true}
"""
ENROLL_IF_VIP = """
journey: c_vip_only
enroll: {on: [signed_up], when: '"vip" in customer.tags'}
start: welcomed
states:
  welcomed: {final: true}
"""


def test_a_tag_is_seen_at_once_by_the_other_journeys(tmp_path: Path) -> None:
    cat = catalog_of(tmp_path, TAGGER, ROUTER, ENROLL_IF_VIP)
    before = customer()
    step = handle_event(cat, before, ev("signed_up", plan="pro"), T0)
    assert step.state.customer.tags == ["pro_plan", "vip"]
    assert before.customer.tags == []  # the interpreter is pure: the input is untouched
    tags = [(a.kind, a.args, a.journey) for a in step.actions]
    assert tags == [
        ("tag", {"add": ["vip"], "remove": []}, "a_tagger"),
        ("tag", {"add": ["pro_plan"], "remove": []}, "a_tagger"),
    ]
    # the same event enrolled c_vip_only: its enroll.when saw the tag a_tagger just set
    assert step.state.runs["c_vip_only"].state == "welcomed"
    later = handle_event(cat, step.state, ev("order_completed"), T0)
    assert later.state.runs["b_router"].state == "vip"


def test_removed_tags_are_gone_and_others_branch_on_it(tmp_path: Path) -> None:
    cat = catalog_of(tmp_path, TAGGER, ROUTER)
    state = handle_event(cat, customer(), ev("signed_up", plan="pro"), T0).state
    state = handle_event(cat, state, ev("downgraded"), T0).state
    assert state.customer.tags == []
    assert handle_event(cat, state, ev("order_completed"), T0).state.runs["b_router"].state == (
        "regular"
    )


def test_a_customer_holds_at_most_max_tags_and_a_problem_says_which_were_dropped(
    tmp_path: Path,
) -> None:
    cat = catalog_of(tmp_path, TAGGER)
    full = [f"t{i:02}" for i in range(MAX_TAGS - 1)]
    state = CustomerState(customer=Customer(id="c1", tags=full))
    step = handle_event(cat, state, ev("signed_up", plan="pro"), T0)
    assert len(step.state.customer.tags) == MAX_TAGS and "vip" in step.state.customer.tags
    assert [a.args["add"] for a in step.actions] == [["vip"], []]  # PostgreSQL gets the same
    (problem,) = step.state.problems
    assert problem.message.startswith(f"tag: a customer holds at most {MAX_TAGS} tags; not ")
    assert "pro_plan" in problem.message


def test_old_states_without_tags_decode() -> None:
    old = {"customer": {"id": "c1", "traits": {}, "rfm": {"r": 0, "f": 0, "m": 0}, "ltv": 0.0}}
    assert CustomerState.model_validate(old).customer.tags == []


def test_tag_bounds_are_yaml_errors(tmp_path: Path) -> None:
    long = "x" * (MAX_TAG_LENGTH + 1)
    text = f"""
journey: j
enroll: {{on: [go]}}
start: s
states:
  s:
    on:
      go:
        do:
          - tag: {long}
          - tag: {{add: [a], remove: [a]}}
          - tag: [{", ".join(f"t{i}" for i in range(MAX_TAGS + 1))}]
"""
    with pytest.raises(JourneyValidationError) as err:
        load_journeys(tmp_path, text)
    got = [p.message for p in err.value.problems]
    assert got == [
        f"tag 'xxxxxxxxxxxxxxxxxxxx...' has {MAX_TAG_LENGTH + 1} characters; a tag has at "
        f"most {MAX_TAG_LENGTH}",
        "'a' is both added and removed; keep it in one list",
        f"{MAX_TAGS + 1} tags in one action; a customer holds at most {MAX_TAGS}",
    ]


def test_customer_tags_type_checks_in_journeys(tmp_path: Path) -> None:
    (journey,) = load_journeys(tmp_path, ROUTER)  # loads: no problem with customer.tags
    assert journey.journey == "b_router"


def test_journeys_show_and_the_temporal_ui_list_the_tags() -> None:
    state = CustomerState(customer=Customer(id="c1", tags=["pro_plan", "vip"]))
    assert markdown(state).splitlines()[1] == "Tags: pro_plan, vip"
    assert "Tags" not in markdown(customer())


# --- segments ------------------------------------------------------------------------------

HAS_TAG = "(customer_id IN (SELECT t.customer_id FROM customer_tags t WHERE t.tag = %s))"


@pytest.mark.parametrize(
    ("source", "sql", "params"),
    [
        ('"vip" in tags', HAS_TAG, ["vip"]),
        ("'vip' in customer.tags", HAS_TAG, ["vip"]),
        ('!("vip" in tags) && r >= 4', f"((NOT {HAS_TAG}) AND (r >= (4)))", ["vip"]),
    ],
)
def test_tags_compile_to_a_lookup_in_customer_tags(source: str, sql: str, params: list) -> None:
    got = compile_condition(source)
    assert (got.text, got.params) == (sql, params)
    assert check_rule(source) == []


@pytest.mark.parametrize(
    ("source", "col", "message"),
    [
        ("tags == 1", 6, "tags can only follow 'in': \"vip\" in tags"),
        ("1 in tags", 3, 'ask for one tag by name: "vip" in tags'),
        ("customer.rfm > 1", 9, "segments know customer.tags and customer.traits, not "
         "customer.rfm"),
        ("tag == 'x'", 1, "unknown variable 'tag' (did you mean 'tags'?); segments can use "
         "r, f, m, recency_days, orders, first_order_days, revenue, traits"),
    ],
)  # fmt: skip
def test_tags_outside_in_are_refused_with_their_column(source: str, col: int, message: str):
    with pytest.raises(Unsupported) as err:
        compile_condition(source)
    assert (err.value.col, err.value.message) == (col, message)


def test_the_python_reference_reads_tags() -> None:
    defs = Segments(
        segments=[
            SegmentRule(name="vips", when='"vip" in customer.tags'),
            SegmentRule(name="pros", when='"pro" in tags'),
            SegmentRule(name="rest", when="true"),
        ]
    )
    base = {"r": 0, "f": 0, "m": 0, "orders": 0, "revenue": 0}
    assert segment_of(defs, {**base, "tags": ["pro", "vip"]}) == "vips"
    assert segment_of(defs, {**base, "tags": ["pro"]}) == "pros"
    assert segment_of(defs, base) == "rest"
