"""Limits that keep one journey file or one customer's data from holding up the system:
comprehensions found by a tokenizer (comments and strings cannot hide them), their cost
bounded at evaluation, and YAML anchors refused before they are expanded."""

from __future__ import annotations

import time
from pathlib import Path

import cel
import pytest

from engine import JourneyValidationError, expr, load_rules
from engine._cel_tokens import code_only, comprehensions, tokens
from engine.policy import load_policy
from tests.engine.support import ROOT, T0, Trace, catalog_of, customer, ev
from tests.helpers import COSTLY_LOOKUP

TEMPLATES = ROOT / "templates"
NESTED = "nested comprehensions are not allowed"

# Each hides two nested comprehensions from a regular expression that knows quotes and
# escapes but not CEL: a quote in a comment, a raw string ending in a backslash, a quote
# inside a triple-quoted string.
HIDDEN = [
    "event.properties.items.all(x, // don't\n x.all(y, y.all(z, z != 'q')))",
    "event.properties.items.all(x, r'\\' != '' && x.all(y, y.all(z, z > 0 && z != 'a')))",
    "event.properties.items.all(x, '''it's''' != '' && x.all(y, y.all(z, z != 'q')))",
    'event.properties.items.all(x, R"\\" != "" && x.all(y, y.all(z, z != "q")))',
    "event.properties.items.all(x, br'\\' != b'' && x.all(y, y.all(z, z != 'q')))",
]


def test_the_library_takes_these_lexical_forms_as_the_tokenizer_does():
    assert cel.evaluate("1 // a comment with a quote: '\n + 2", {}) == 3
    assert cel.evaluate("size(r'\\') == 1 && size(R\"\\\\\") == 2", {}) is True
    assert cel.evaluate("size('''it's''') == 4 && size(\"\"\"a\"b\"\"\") == 3", {}) is True
    assert cel.evaluate("br'\\' == b'\\\\'", {}) is True
    for source in HIDDEN:
        assert cel.evaluate(source, {"event": {"properties": {"items": [[[1]]]}}}) is True
    strings = [t.text for t in tokens("r'\\' + '''a'b''' + \"x\\\"y\" // 'c'")]
    assert strings == ["r'\\'", "+", "'''a'b'''", "+", '"x\\"y"']


@pytest.mark.parametrize("source", HIDDEN)
def test_comments_and_strings_cannot_hide_nested_comprehensions(source):
    found = comprehensions(source)
    assert [(c.macro, c.var, c.depth) for c in found] == [
        ("all", "x", 0),
        ("all", "y", 1),
        ("all", "z", 2),
    ]
    problems = expr.check(source, context={}, state="a", event_name="e", want="bool")
    assert problems == [(source.index("x.all(") + 6, problems[0][1])]
    assert problems[0][1].startswith(NESTED)


def test_two_levels_are_refused_as_nested_where_the_inner_one_opens():
    source = "event.properties.items.all(x, // ok)\n x.exists(y, y > 0))"
    ((col, message),) = expr.check(source, context={}, state="a", event_name="e", want="bool")
    assert col == source.index("x.exists(") + 9 and message.startswith(NESTED)


def test_names_in_comments_and_strings_are_not_checked():
    source = "event.name == 'ctx.nope' // and ctx.nope here is a comment too"
    assert expr.check(source, context={}, state="a", event_name="e", want="bool") == []
    assert "nope" not in code_only(source)
    assert len(code_only(source)) == len(source)


def test_a_nested_comprehension_behind_a_comment_is_a_validation_error_with_its_line(
    tmp_path: Path,
):
    (tmp_path / "shop.yaml").write_text(
        "journey: shop\nenroll:\n  on: [signed_up]\nstart: new\nstates:\n  new:\n    on:\n"
        "      order_completed:\n"
        "        - when: event.properties.items.all(x, r'\\' != '' && x.all(y, y.all(z, z"
        " != 'a')))\n"
        "          goto: done\n  done:\n    final: true\n"
    )
    with pytest.raises(JourneyValidationError) as caught:
        load_rules(tmp_path, TEMPLATES)
    (problem,) = caught.value.problems
    line = (tmp_path / "shop.yaml").read_text().splitlines()[problem.line - 1]
    assert problem.file.endswith("shop.yaml") and problem.line == 9
    assert line[problem.col - 1 :].startswith("(y, y.all")
    assert problem.message.startswith(NESTED)


# --- cost at evaluation --------------------------------------------------------------------


def test_x_in_a_list_of_16000_inside_a_comprehension_is_a_recorded_problem(tmp_path: Path):
    catalog = catalog_of(tmp_path, COSTLY_LOOKUP)
    t = Trace(customer())
    t.deliver(catalog, ev("signed_up"))
    started = time.perf_counter()
    t.deliver(catalog, ev("order_completed", T0, items=list(range(16_000))))
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0  # unbounded, this took 10.5 s: past the SDK's 2 s detector
    (problem,) = t.state.problems
    assert "not evaluated" in problem.message
    assert f"more than {expr.MAX_COMPREHENSION_VALUES} values of event" in problem.message
    assert t.state.runs["shop"].state == "other"  # the rule did not apply, the next did


def test_comprehensions_within_the_bound_are_evaluated():
    items = list(range(expr.MAX_COMPREHENSION_VALUES - 2))  # + properties + items
    env = {"event": {"properties": {"items": items}}}
    source = "event.properties.items.all(x, x in event.properties.items)"
    assert expr.evaluate(source, env) is True
    many = {"event": {"properties": {"items": [*items, 1]}}}
    with pytest.raises(expr.ExpressionError, match="not evaluated"):
        expr.evaluate(source, many)
    # without a comprehension the cost is linear: any size is evaluated
    assert expr.evaluate("5 in event.properties.items", many) is True


def test_the_bound_counts_map_entries_and_nested_lists():
    wide = {"event": {"properties": {"m": {str(i): [i, i] for i in range(400)}}}}
    with pytest.raises(expr.ExpressionError, match="not evaluated"):
        expr.evaluate("event.properties.m.all(k, k != '')", wide)


# --- YAML anchors --------------------------------------------------------------------------


def alias_bomb(levels: int = 9) -> str:
    """The "billion laughs" in YAML: each level is nine aliases of the one before."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"[: levels - 1], strict=False):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_in_milliseconds(tmp_path: Path):
    bomb = alias_bomb()
    assert len(bomb) <= 400
    (tmp_path / "bomb.yaml").write_text(bomb)
    started = time.perf_counter()
    with pytest.raises(JourneyValidationError) as caught:
        load_rules(tmp_path, TEMPLATES)
    assert time.perf_counter() - started < 0.5
    problems = caught.value.problems
    assert [(p.line, p.col) for p in problems] == [(1, 4), (2, 4), (2, 8), (2, 11), (2, 14)]
    assert problems[0].message.startswith("YAML anchor '&a': anchors and aliases are not")
    assert problems[-1].message.endswith(f"({9 + 8 * 9 - 5} more in this file)")


def test_anchors_are_refused_in_the_policy_file_too(tmp_path: Path):
    (tmp_path / "policy.yaml").write_text("quiet_hours: &q {start: '21:00', end: '08:00'}\n")
    with pytest.raises(JourneyValidationError, match=r"policy.yaml:1:14 YAML anchor '&q'"):
        load_policy(tmp_path, display_root=tmp_path)
