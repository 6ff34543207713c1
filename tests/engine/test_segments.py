"""rules/segments.yaml: loading, defaults, errors at file:line:col, CEL -> SQL compilation
and the Python evaluator the SQL is tested against."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import JourneyValidationError
from engine._segment_sql import Unsupported, compile_case, compile_condition
from engine.segments import DEFAULT_SEGMENTS, Segments, check_cron, load_segments, segment_of

ROOT = Path(__file__).resolve().parents[2]


def load(tmp_path: Path, text: str) -> Segments:
    (tmp_path / "segments.yaml").write_text(text)
    return load_segments(tmp_path, display_root=tmp_path)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(JourneyValidationError) as err:
        load(tmp_path, text)
    return [str(p) for p in err.value.problems]


def test_shipped_file_is_the_default_map() -> None:
    shipped = load_segments(ROOT / "rules")
    assert shipped == Segments()
    assert shipped.names() == [n for n, _ in DEFAULT_SEGMENTS] and len(shipped.names()) == 11
    assert shipped.window == 365 * 86400 and shipped.orders.events == ["order_completed"]
    assert [(t.name, t.top) for t in shipped.tiers] == [("A", 10), ("B", 60), ("C", 100)]
    # the shipped scoring is the default: cume_dist, fixed bounds below 200 customers
    assert shipped.scoring.method == "cume_dist"
    assert shipped.scoring.min_population_for_quantiles == 200
    assert shipped.scoring.fixed_scores.revenue == [100.0, 250.0, 500.0, 1000.0]
    assert (shipped.forecast.enabled, shipped.forecast.min_repeat_customers) == (True, 50)


def test_no_file_or_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_segments(tmp_path) == Segments()
    assert load(tmp_path, "# nothing yet\n") == Segments()


def test_settings_are_read_and_digested(tmp_path: Path) -> None:
    defs = load(
        tmp_path,
        "orders: {events: [Order Completed, purchase], revenue: total}\n"
        "window: 90d\n"
        'schedule: "30 */6 * * mon-fri"\n'
        "tiers: [{name: gold, top: 20%}, {name: rest, top: 100%}]\n"
        "segments:\n"
        "  - {name: vip, when: 'traits.plan == \"gold\"'}\n"
        "  - {name: everyone, when: 'true'}\n",
    )
    assert defs.orders.events == ["order_completed", "purchase"] and defs.window == 90 * 86400
    assert defs.names() == ["vip", "everyone"] and defs.digest() != Segments().digest()
    assert defs.digest() == Segments.model_validate(defs.model_dump()).digest()


def test_mistakes_point_at_file_line_col(tmp_path: Path) -> None:
    text = (
        "window: 90\n"
        'schedule: "0 25 * * *"\n'
        "tiers:\n"
        "  - {name: A, top: 10}\n"
        "  - {name: B, top: 100%}\n"
        "segments:\n"
        "  - {name: big, whne: 'true'}\n"
    )
    assert problems(tmp_path, text) == [
        "segments.yaml:1:9 window: a bare number 90 has no unit; write a duration like 45s, "
        "90m, 12h, 30d, 2w, 1d12h or ISO-8601 P30D / PT12H",
        "segments.yaml:2:11 schedule: '25' is not a valid hour in '0 25 * * *': use *, a "
        "number 0-23, a range a-b, a list a,b or a step */n",
        "segments.yaml:4:20 tiers[0].top: '10' is not a share; write it like 10% (with the %)",
        "segments.yaml:7:5 segments[0]: missing required key 'when'",
        "segments.yaml:7:17 segments[0].whne: unknown key 'whne' (did you mean 'when'?); "
        "allowed here: name, when",
    ]


def test_tier_order_and_catch_all(tmp_path: Path) -> None:
    assert problems(tmp_path, "tiers: [{name: A, top: 50%}, {name: B, top: 40%}]\n") == [
        "segments.yaml:1:1 tiers: each 'top' must be larger than the one before"
    ]
    assert problems(tmp_path, "tiers: [{name: A, top: 150%}]\n") == [
        "segments.yaml:1:24 tiers[0].top: '150%' must be more than 0% and at most 100%"
    ]
    assert problems(
        tmp_path, "segments:\n  - {name: a, when: 'r >= 4'}\n  - {name: b, when: 'r >= 1'}\n"
    ) == [
        "segments.yaml:3:21 segments[1].when: the last segment must catch everyone else "
        "(when: 'true'); add one at the end, e.g. {name: lost, when: 'true'}"
    ]


def test_bad_cel_points_into_the_expression(tmp_path: Path) -> None:
    text = (
        "segments:\n"
        "  - {name: a, when: 'r >= && f'}\n"
        "  - {name: b, when: 'size(traits) > 1'}\n"
        "  - {name: c, when: 'recency > 3'}\n"
        "  - {name: d, when: 'revenue + 1 > 3.0'}\n"
        "  - {name: e, when: 'r + 1'}\n"
        "  - {name: z, when: 'true'}\n"
    )
    got = problems(tmp_path, text)
    assert got[0].startswith("segments.yaml:2:27 segments[0].when: CEL syntax error: extraneous")
    assert got[1:] == [
        "segments.yaml:3:21 segments[1].when: 'size()' is not supported in segment rules; "
        "segments can use numbers, strings, true/false, r, f, m, recency_days, orders, "
        "first_order_days, revenue, traits, comparisons, && || !, + - * /, parentheses, "
        "x in [...] and has(traits.x)",
        "segments.yaml:4:21 segments[2].when: unknown variable 'recency' (did you mean "
        "'recency_days'?); segments can use r, f, m, recency_days, orders, first_order_days, "
        "revenue, traits",
        "segments.yaml:5:21 segments[3].when: type error: Unsupported operation: float + int "
        "(revenue is a double: write 100.0, not 100)",
        "segments.yaml:6:21 segments[4].when: expected true/false here, got a number",
    ]
    assert problems(tmp_path, "segments: [{name: Bad, when: 'true'}]\n") == [
        "segments.yaml:1:19 segments[0].name: 'Bad' is not a valid name: use lower case "
        "letters, digits and _ , starting with a letter"
    ]


@pytest.mark.parametrize(
    ("source", "sql", "params"),
    [
        ("r >= 4 && f < 2", "((r >= (4)) AND (f < (2)))", []),
        ("!(m == 1) || true", "((NOT (m = (1))) OR TRUE)", []),
        ("orders / 2 > 1", "(div(orders, NULLIF((2), 0)) > (1))", []),
        ("revenue * 1.5 - 3.0 > -2.5", "(((revenue * (1.5)) - (3.0)) > (-2.5))", []),
        ("recency_days != 7", "(recency_days IS DISTINCT FROM (7))", []),
        ("r in [1, 2]", "(r IN ((1), (2)))", []),
        ("recency_days in []", "FALSE", []),
        ('traits.plan == "gold"', "((traits #> %s::text[]) = %s::jsonb)", [["plan"], '"gold"']),
        (
            "traits['a b'] in [1, 'x']",
            "((traits #> %s::text[]) IN (%s::jsonb, %s::jsonb))",
            [["a b"], "1", '"x"'],
        ),
        ("has(traits.vip.since)", "((traits #> %s::text[]) IS NOT NULL)", [["vip", "since"]]),
        (
            "traits.age > 30",
            "((CASE WHEN jsonb_typeof(traits #> %s::text[]) = 'number' "
            "THEN (traits #>> %s::text[])::numeric END) > (30))",
            [["age"], ["age"]],
        ),
        (
            "traits.vip",
            "(CASE WHEN jsonb_typeof(traits #> %s::text[]) = 'boolean' "
            "THEN (traits #>> %s::text[])::boolean END)",
            [["vip"], ["vip"]],
        ),
    ],
)
def test_cel_compiles_to_sql(source: str, sql: str, params: list[object]) -> None:
    got = compile_condition(source)
    assert (got.text, got.params) == (sql, params)


@pytest.mark.parametrize(
    ("source", "col", "words"),
    [
        ("r > 1 ? true : false", 7, "'? :' is not supported"),
        ("traits.tags.exists(t, t == 'x')", 13, "'exists()' is not supported"),
        ("r % 2 == 0", 3, "'%' is not supported"),
        ("r == 'x'", 3, "expected a number here, got a string"),
        ("'a' + 'b' == 'ab'", 5, "on strings is not supported"),
        ("r in [f]", 6, "lists may only hold literals"),
        ("r.x > 1", 2, "only traits have fields"),
        ("traits == 1", 8, "compare a trait"),
        ("1u > r", 1, "unsigned ints"),
        ("{'a': 1}.a == 1", 1, "maps is not supported"),
    ],
)
def test_unsupported_cel_is_refused_at_its_column(source: str, col: int, words: str) -> None:
    with pytest.raises(Unsupported) as err:
        compile_condition(source)
    assert words in err.value.message and err.value.col == col


def test_case_uses_the_last_rule_as_else() -> None:
    text, params = compile_case([("a", "r >= 4"), ("b", "traits.x == 1"), ("z", "true")])
    assert text == (
        "CASE WHEN (r >= (4)) THEN %s::text WHEN ((traits #> %s::text[]) = %s::jsonb) "
        "THEN %s::text ELSE %s::text END"
    )
    assert params == ["a", ["x"], "1", "b", "z"]


def test_cron_accepts_the_usual_forms() -> None:
    for ok in ("0 3 * * *", "*/15 0-6,22,23 1 jan-mar sun", "5 4 * * 7"):
        check_cron(ok)
    for bad in ("0 3 * *", "60 * * * *", "* * 0 * *", "*/0 * * * *", "@daily", "* * * * fun"):
        with pytest.raises(ValueError):
            check_cron(bad)


def test_python_evaluator_follows_rule_order_and_errors_do_not_match() -> None:
    defs = Segments()
    base = {"recency_days": 3, "orders": 5, "revenue": 500.0, "first_order_days": 90}
    assert segment_of(defs, {**base, "r": 5, "f": 5, "m": 5}) == "champions"
    assert segment_of(defs, {**base, "r": 1, "f": 5, "m": 5}) == "cant_lose"
    assert segment_of(defs, {**base, "r": 2, "f": 4, "m": 3}) == "at_risk"
    assert segment_of(defs, {"r": 0, "f": 0, "m": 0, "orders": 0, "revenue": 0}) == "lost"
    vip = Segments.model_validate(
        {"segments": [{"name": "vip", "when": "traits.age > 30"}, {"name": "x", "when": "true"}]}
    )
    assert segment_of(vip, {**base, "traits": {"age": 40}}) == "vip"
    assert segment_of(vip, {**base, "traits": {"age": "40"}}) == "x"  # a string: no match
    assert segment_of(vip, {**base, "traits": {}}) == "x"  # missing: no match
