"""The pure interpreter: CEL expressions that fail at run time."""

from __future__ import annotations

import json
from pathlib import Path

from engine.catalog import Catalog
from engine.machine import (
    MAX_CONTEXT_BYTES,
    MAX_PROBLEMS,
    handle_event,
)
from engine.model import CustomerState
from tests.engine.support import (
    HOUR,
    T0,
    Trace,
    catalog_of,
    customer,
    ev,
)

SHOP = """
journey: shop
enroll:
  on: [signed_up]
start: new
states:
  new:
    on:
      order_completed: done
  done:
    final: true
"""


# --- run-time CEL errors -----------------------------------------------------------------

FRAGILE = """
journey: j
enroll: {on: [go]}
context: {n: 0, total: 0.0, label: "", blob: ""}
start: s
states:
  s:
    on:
      order:
        - when: 'event.properties.revenue > 100'
          goto: big
        - goto: small
      flag:
        - when: 'event.properties.flag'
          goto: big
      put:
        - set: {n: 'event.properties.v'}
          goto: big
      put_total:
        - set: {total: 'event.properties.v'}
      put_two:
        - set: {label: '"changed"', n: 'event.properties.v'}
      store:
        - set: {blob: 'event.properties.blob'}
        - when: 'size(ctx.blob) > 0'
          goto: big
  big: {final: true}
  small: {final: true}
"""


def test_a_runtime_cel_error_makes_the_rule_not_match_and_is_recorded(tmp_path: Path):
    cat = catalog_of(tmp_path, FRAGILE)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    t.deliver(cat, ev("order", T0 + HOUR))  # no revenue property
    assert t.state.runs["j"].state == "small"
    (problem,) = t.state.problems
    assert (problem.journey, problem.state, problem.at) == ("j", "s", T0 + HOUR)
    assert problem.message == (
        "'event.properties.revenue > 100': no field 'revenue' (guard it with has(...) or a ternary)"
    )


def test_a_condition_that_is_not_a_bool_at_run_time_does_not_match(tmp_path: Path):
    cat = catalog_of(tmp_path, FRAGILE)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    t.deliver(cat, ev("flag", T0 + HOUR, flag="yes"))
    assert t.state.runs["j"].state == "s"
    assert [p.message for p in t.state.problems] == [
        "'event.properties.flag' gave 'yes', not true or false"
    ]


def test_problems_are_bounded_to_the_most_recent_twenty(tmp_path: Path):
    cat = catalog_of(tmp_path, FRAGILE)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    for i in range(MAX_PROBLEMS + 5):
        t.deliver(cat, ev("flag", T0 + i * HOUR, flag=i))
    assert MAX_PROBLEMS == 20
    assert len(t.state.problems) == 20
    assert [p.at for p in t.state.problems] == [T0 + i * HOUR for i in range(5, 25)]
    assert t.state.problems[-1].message == "'event.properties.flag' gave 24, not true or false"


def test_set_refuses_a_value_of_another_type(tmp_path: Path):
    cat = catalog_of(tmp_path, FRAGILE)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    step = t.deliver(cat, ev("put", T0 + HOUR, v="seven"))
    run = t.state.runs["j"]
    assert run.context["n"] == 0
    assert run.state == "s"  # the rule's goto was not taken
    assert step.transitions == []
    assert [p.message for p in t.state.problems] == [
        "set n: 'event.properties.v' gave str, but ctx.n holds int"
    ]


def test_a_refused_set_changes_none_of_its_variables(tmp_path: Path):
    cat = catalog_of(tmp_path, FRAGILE)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    t.deliver(cat, ev("put_two", T0 + HOUR, v=1.5))
    assert t.state.runs["j"].context == {"n": 0, "total": 0.0, "label": "", "blob": ""}
    assert len(t.state.problems) == 1


def test_set_converts_an_int_into_a_double_variable(tmp_path: Path):
    cat = catalog_of(tmp_path, FRAGILE)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    t.deliver(cat, ev("put_total", T0 + HOUR, v=3))
    total = t.state.runs["j"].context["total"]
    assert total == 3.0 and type(total) is float
    assert t.state.problems == []


def test_set_refuses_to_grow_the_context_over_its_size_limit(tmp_path: Path):
    cat = catalog_of(tmp_path, FRAGILE)
    t = Trace(customer())
    t.deliver(cat, ev("go"))
    t.deliver(cat, ev("store", T0 + HOUR, blob="x" * (MAX_CONTEXT_BYTES + 10)))
    run = t.state.runs["j"]
    assert (run.state, run.context["blob"]) == ("s", "")
    (problem,) = t.state.problems
    assert "over the 16384 limit" in problem.message
    # a value that fits is stored
    t.deliver(cat, ev("store", T0 + 2 * HOUR, blob="x" * 100))
    assert t.state.runs["j"].state == "big"
    assert t.state.runs["j"].context["blob"] == "x" * 100


def test_set_keeps_the_context_json_serialisable(shipped: Catalog):
    step = handle_event(shipped, customer(), ev("Order Completed", revenue="NaN"), T0)
    context = step.state.runs["lifecycle"].context
    json.dumps(context, allow_nan=False)
    back = CustomerState.model_validate_json(step.state.model_dump_json())
    assert back.runs["lifecycle"].context == context


def test_a_null_argument_is_not_reported_as_an_undefined_function(shipped: Catalog):
    step = handle_event(shipped, customer(), ev("Order Completed", revenue=None), T0)
    (problem,) = step.state.problems
    assert problem.message.startswith("set spent: 'ctx.spent + double(event.properties.revenue)'")
    assert "Undefined variable or function" not in problem.message
