"""Durations, event names and CEL expression checks."""

from __future__ import annotations

import pytest

from engine import expr
from engine.durations import HELP, format_duration, parse_duration
from engine.names import did_you_mean, normalize_event_name

# --- durations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("45s", 45),
        ("90m", 90 * 60),
        ("12h", 12 * 3600),
        ("30d", 30 * 86400),
        ("2w", 14 * 86400),
        ("1d12h", 36 * 3600),
        ("1w2d3h4m5s", 7 * 86400 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5),
        (" 14d ", 14 * 86400),
        ("P30D", 30 * 86400),
        ("PT12H", 12 * 3600),
        ("P1W", 7 * 86400),
        ("P1DT12H", 36 * 3600),
        ("PT90M", 90 * 60),
        ("p2d", 2 * 86400),
    ],
)
def test_parse_duration(text: str, seconds: int):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", f"'0' is not a duration; {HELP}"),
        ("0s", f"duration '0s' must be longer than zero; {HELP}"),
        ("P0D", f"duration 'P0D' must be longer than zero; {HELP}"),
        ("", f"'' is not a duration; {HELP}"),
        ("abc", f"'abc' is not a duration; {HELP}"),
        ("14 days", f"'14 days' is not a duration; {HELP}"),
        ("P", f"'P' is not a duration; {HELP}"),
        ("PT", f"'PT' is not a duration; {HELP}"),
        ("1h1d", f"'1h1d' is not a duration; {HELP}"),
        (30, f"a bare number 30 has no unit; {HELP}"),
        (0, f"a bare number 0 has no unit; {HELP}"),
        (True, f"expected a duration, got bool; {HELP}"),
        (1.5, f"expected a duration, got float; {HELP}"),
    ],
)
def test_parse_duration_errors_say_how_to_write_one(value: object, message: str):
    with pytest.raises(ValueError) as exc:
        parse_duration(value)  # type: ignore[arg-type]
    assert str(exc.value) == message


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(1209600, "2w"), (129600, "1d12h"), (45, "45s"), (5400, "1h30m"), (0, "0s")],
)
def test_format_duration_is_the_shortest_form(seconds: int, text: str):
    assert format_duration(seconds) == text
    if seconds:
        assert parse_duration(text) == seconds


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Order Completed",
        "order-completed",
        "OrderCompleted",
        "orderCompleted",
        "order_completed",
        "  Order  Completed  ",
        "ORDER COMPLETED",
        "order.completed",
    ],
)
def test_normalize_event_name(name: str):
    assert normalize_event_name(name) == "order_completed"


def test_normalize_event_name_keeps_digits_and_drops_edge_punctuation():
    assert normalize_event_name("Step2Done") == "step2_done"
    assert normalize_event_name("__signed up!__") == "signed_up"
    assert normalize_event_name("") == ""


def test_did_you_mean():
    assert did_you_mean("actve", ["new", "active", "vip"]) == " (did you mean 'active'?)"
    assert did_you_mean("zzz", ["new", "active"]) == ""


# --- expressions -------------------------------------------------------------------------


def check(source: str, **context: object) -> list[tuple[int, str]]:
    return expr.check(source, context=context, state="s", event_name="e", want="bool")


def test_check_accepts_a_good_expression():
    assert check('ctx.n > 1 && has(event.properties.x) && state == "s"', n=0) == []


def test_check_limits_the_size_of_an_expression():
    source = "true && " * 124 + "true"
    assert len(source) == 996
    assert check(source) == []
    long = source + " && x"
    assert check(long) == [(1, f"expression is {len(long)} characters; keep it under 1000")]


def test_check_allows_two_comprehensions_but_not_three():
    two = "[1].all(x, x > 0) && [2].exists(y, y > 0)"
    assert check(two) == []
    three = two + " && [3].exists_one(z, z > 0)"
    assert check(three) == [
        (
            three.index("exists_one(") + len("exists_one") + 1,
            "at most 2 comprehensions (all/exists/map/filter) per expression; "
            "split it into several rules",
        )
    ]


def test_check_rejects_nested_comprehensions():
    source = "[1, 2].all(x, [1].exists(y, y > x))"
    assert check(source) == [
        (
            source.index("exists(") + len("exists") + 1,
            "nested comprehensions are not allowed (their cost grows with the square of the "
            "input); use two rules",
        )
    ]


def test_check_rejects_an_unknown_function_with_did_you_mean():
    source = "ctx.n > 1 && sizee(ctx.n) > 1"
    assert check(source, n=0) == [(14, "unknown function 'sizee' (did you mean 'size'?)")]
    assert check("foo(1) == 1") == [(1, "unknown function 'foo'")]


def test_check_rejects_an_unknown_root_variable():
    assert check("has(evnt.name)") == [
        (
            5,
            "unknown variable 'evnt' (did you mean 'event'?); expressions can use event, ctx, "
            "customer, state, now",
        )
    ]


def test_check_rejects_an_unknown_context_variable():
    assert check("ctx.ordrs > 1", orders=0) == [
        (
            5,
            "unknown context variable 'ctx.ordrs' (did you mean 'orders'?); declare it under "
            "context: (declared: orders)",
        )
    ]


def test_check_reports_a_syntax_error():
    ((col, message),) = check("1 +")
    assert message.startswith("CEL syntax error: ")
    assert col >= 1


def test_a_syntax_error_points_at_the_offending_character():
    source = "ctx.n > > 10"
    ((col, _),) = check(source, n=0)
    assert source[col - 1] == ">" and col == source.rindex(">") + 1


def test_a_syntax_error_message_does_not_stutter():
    ((_, message),) = check("ctx.n > > 10", n=0)
    assert "Syntax error" not in message.removeprefix("CEL syntax error: ")


def test_an_unknown_variable_that_is_a_prefix_of_a_known_one_is_located_correctly():
    source = 'state == "new" && stat == "x"'
    ((col, message),) = check(source)
    assert message.startswith("unknown variable 'stat'")
    assert col == source.index("stat ") + 1


def test_ctx_inside_a_string_literal_is_not_a_context_variable():
    assert check('event.properties.referrer == "ctx.io"', orders=0) == []


def test_check_types_ctx_only_expressions_by_a_trial_run():
    problems = expr.check(
        "ctx.orders + 1.5", context={"orders": 0}, state="s", event_name="e", want="value"
    )
    assert [(c, m.split(":")[0]) for c, m in problems] == [(1, "type error")]
    assert problems[0][1].endswith("(convert with int(), double() or string())")
    assert check("ctx.orders + 1", orders=0) == [
        (1, "a condition must be true or false, this gives int")
    ]
    assert expr.check(
        '"x"', context={"n": 0}, state="s", event_name="e", want="value", target="n"
    ) == [(1, "ctx.n starts as int but this gives string; convert it (e.g. double(...), int(...))")]
    # values that only exist at run time are not judged
    assert check("event.properties.revenue + 1.5 > 2.0") == []


def test_evaluate_turns_every_failure_into_an_expression_error():
    with pytest.raises(expr.ExpressionError) as exc:
        expr.evaluate("ctx.a / ctx.b > 1", {"ctx": {"a": 1, "b": 0}})
    assert str(exc.value) == "'ctx.a / ctx.b > 1': division by zero"
    with pytest.raises(expr.ExpressionError) as exc:
        expr.evaluate("event.properties.x", {"event": {"properties": {}}})
    assert str(exc.value) == (
        "'event.properties.x': no field 'x' (guard it with has(...) or a ternary)"
    )


def test_evaluate_hands_cel_only_the_variables_the_expression_names():
    # CEL converts every variable it is given; one it cannot convert shows which it got
    env = {"ctx": {"orders": 2}, "customer": object(), "event": {"name": "Order"}}
    assert expr.evaluate("ctx.orders + 1", env) == 3
    assert expr.evaluate("event.name == 'Order' && ctx.orders == 2", env) is True
    with pytest.raises(expr.ExpressionError, match="convert"):
        expr.evaluate("customer.tier == ''", env)


@pytest.mark.parametrize(
    ("declared", "value", "fits"),
    [
        (0, 1, True),
        (0.0, 1, True),
        (0, 1.5, False),
        (0, "1", False),
        (0, True, False),
        ("", "x", True),
        (None, [1], True),
        ([], {}, False),
    ],
)
def test_fits(declared: object, value: object, fits: bool):
    assert expr.fits(declared, value) is fits
