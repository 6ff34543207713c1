"""Durations, event names, CEL checks, identity, the Mermaid graph and the simulator."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine import expr
from engine.catalog import Catalog
from engine.durations import HELP, format_duration, parse_duration
from engine.graph import mermaid
from engine.identity import customer_key, redact_traits, workflow_id
from engine.loader import load_rules
from engine.names import did_you_mean, normalize_event_name
from engine.simulate import SimulationInputError, parse_messages, simulate
from tests.engine.support import ROOT

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


# --- identity ----------------------------------------------------------------------------


def _hashed(value: str) -> str:
    return "customer-h-" + hashlib.sha256(value.encode()).hexdigest()[:32]


@pytest.mark.parametrize("cid", ["user_123", "cus_8fK2a", "123456", "a.b:c-d"])
def test_workflow_id_keeps_safe_ids(cid: str):
    assert workflow_id(cid) == f"customer-{cid}"
    assert customer_key(cid) == cid


@pytest.mark.parametrize(
    "cid", ["ann@example.com", "+49 170 1234567", "(030) 123-4567", "has space", "x" * 129]
)
def test_workflow_id_hashes_contact_details_and_unsafe_ids(cid: str):
    assert workflow_id(cid) == _hashed(cid)
    assert cid not in workflow_id(cid)


def test_redact_traits_drops_contact_details():
    traits = {
        "email": "ann@example.com",
        "phone": "+49 170 1234567",
        "name": "Ann",
        "First Name": "Ann",
        "lastName": "Lee",
        "E-Mail": "ann@example.com",
        "address": {"street": "Main 1", "city": "Berlin"},
        "work": "ann@work.example",
        "plan": "pro",
        "orders": 3,
        "tier": "gold",
    }
    assert redact_traits(traits) == {"plan": "pro", "orders": 3, "tier": "gold"}


def test_redact_traits_drops_phone_numbers_and_addresses_under_any_key():
    traits = {
        "Phone Number": "+49 170 1234567",
        "contact": "+49 170 1234567",
        "shipping": {"street": "Main 1", "city": "Berlin", "zip": "10115"},
        "plan": "pro",
    }
    assert redact_traits(traits) == {"plan": "pro"}


# --- graph -------------------------------------------------------------------------------


@pytest.fixture
def shipped(monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.chdir(ROOT)
    return {j.journey: j for j in load_rules("rules", "templates")}


@pytest.mark.parametrize("name", ["lifecycle", "lead_followup", "nps"])
def test_mermaid_shows_every_state(shipped: dict, name: str):
    journey = shipped[name]
    text = mermaid(journey)
    assert text.startswith(f"stateDiagram-v2\n    %% journey {name} v1\n")
    assert f"    [*] --> {journey.start}: enroll on " in text
    for state, spec in journey.states.items():
        assert f"    {state} " in text or f" --> {state}:" in text
        if spec.final:
            assert f"    {state} --> [*]\n" in text


def test_mermaid_of_lifecycle(shipped: dict):
    text = mermaid(shipped["lifecycle"])
    for line in [
        "    [*] --> new: enroll on signed_up, order_completed",
        "    new: new / enter#colon; send welcome by email",
        "    new --> vip: order_completed [ctx.spent >= 5000.0]",
        "    new --> active: order_completed",
        "    new --> dormant: after 14d",
        "    active --> dormant: after 60d",
        "    vip --> dormant: after 90d",
        "    dormant --> lost: after 30d",
        "    note right of new: exit when event.name == 'unsubscribed'",
    ]:
        assert line + "\n" in text
    for state in shipped["lifecycle"].states.values():
        for timer in state.after:
            assert f"after {timer.label}" in text


@pytest.mark.parametrize("name", ["lead_followup", "nps"])
def test_mermaid_shows_every_timer(shipped: dict, name: str):
    text = mermaid(shipped[name])
    for state in shipped[name].states.values():
        for timer in state.after:
            assert f"after {timer.label}" in text


# --- simulator ---------------------------------------------------------------------------


def _line(**message: object) -> str:
    return json.dumps(message)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"userId": "u1",',
            "ev.jsonl:3: not JSON (Expecting property name enclosed in double quotes at column 17)",
        ),
        ("[1, 2]", "ev.jsonl:3: each line must be a JSON object"),
        (
            _line(type="track", event="x", timestamp="2025-01-01T00:00:00Z"),
            "ev.jsonl:3: needs userId or anonymousId",
        ),
        (
            _line(type="track", event="x", userId="u1"),
            "ev.jsonl:3: timestamp must be an ISO-8601 string",
        ),
        (
            _line(type="track", event="x", userId="u1", timestamp="yesterday"),
            "ev.jsonl:3: 'yesterday' is not an ISO-8601 timestamp",
        ),
        (
            _line(type="page", userId="u1", timestamp="2025-01-01T00:00:00Z"),
            "ev.jsonl:3: type 'page' is not supported here (use track or identify)",
        ),
        (
            _line(type="track", userId="u1", timestamp="2025-01-01T00:00:00Z"),
            "ev.jsonl:3: a track message needs an 'event' name",
        ),
    ],
)
def test_parse_messages_errors_name_the_line(line: str, message: str):
    lines = ["# a comment", "", line]
    with pytest.raises(SimulationInputError) as exc:
        parse_messages(lines, source="ev.jsonl")
    assert str(exc.value) == message


EVENTS = [
    _line(
        type="identify",
        userId="u1",
        timestamp="2025-01-01T00:00:00Z",
        traits={"email": "ann@example.com", "plan": "pro"},
    ),
    "# comments and blank lines are skipped",
    "",
    _line(
        type="track",
        userId="u1",
        event="Signed Up",
        timestamp="2025-01-01T00:00:00Z",
        messageId="m1",
    ),
    _line(
        anonymousId="anon",
        event="Order Completed",
        timestamp="2025-01-02T00:00:00",
        properties={"revenue": 6000},
    ),
    _line(
        userId="u1",
        event="Order Completed",
        timestamp="2025-01-20T00:00:00Z",
        properties={"revenue": 10},
    ),
    # a duplicate messageId changes nothing
    _line(
        type="track",
        userId="u1",
        event="Signed Up",
        timestamp="2025-01-20T01:00:00Z",
        messageId="m1",
    ),
]


def test_parse_messages_reads_track_and_identify():
    messages = parse_messages(EVENTS)
    assert [(m.kind, m.customer_id, m.line) for m in messages] == [
        ("identify", "u1", 1),
        ("track", "u1", 4),
        ("track", "anon", 5),
        ("track", "u1", 6),
        ("track", "u1", 7),
    ]
    order = messages[2].event
    assert order is not None
    assert (order.name, order.id, order.timestamp) == (
        "order_completed",
        "events:5",
        datetime(2025, 1, 2, tzinfo=UTC),
    )
    assert messages[0].traits == {"email": "ann@example.com", "plan": "pro"}


@pytest.fixture
def catalog(monkeypatch: pytest.MonkeyPatch) -> Catalog:
    monkeypatch.chdir(ROOT)
    return Catalog.of(load_rules("rules", "templates"))


def test_simulate_runs_each_customer_in_event_time(catalog: Catalog):
    results = {r.customer_id: r for r in simulate(catalog, parse_messages(EVENTS))}
    assert sorted(results) == ["anon", "u1"]
    anon = results["anon"].as_json()
    assert anon["journeys"] == {
        "lifecycle": {
            "state": "vip",
            "status": "active",
            "context": {"orders": 1, "spent": 6000.0},
            "version": 1,
        }
    }
    assert [a["kind"] for a in anon["actions"]] == ["send", "assign_manager", "send"]
    u1 = results["u1"]
    # signed up on the 1st, dormant on the 15th (offer), active again with the order on the 20th
    assert [(a.kind, a.idempotency_key) for a in u1.actions] == [
        ("send", "u1/lifecycle/1/1/enter:new/0"),
        ("offer", "u1/lifecycle/1/2/enter:dormant/0"),
    ]
    run = u1.state.runs["lifecycle"]
    assert (run.state, run.context) == ("active", {"orders": 1, "spent": 10.0})
    assert u1.state.customer.traits == {"plan": "pro"}  # the email was redacted


def test_simulate_until_fires_timers_up_to_then(catalog: Catalog):
    until = datetime(2025, 6, 1, tzinfo=UTC)
    results = {r.customer_id: r for r in simulate(catalog, parse_messages(EVENTS), until=until)}
    # u1 active since Jan 20: dormant 60 days later (Mar 21), lost 30 days after that (Apr 20)
    run = results["u1"].state.runs["lifecycle"]
    assert (run.state, run.status, run.entered_at) == (
        "lost",
        "completed",
        datetime(2025, 4, 20, tzinfo=UTC),
    )
    early = {
        r.customer_id: r
        for r in simulate(catalog, parse_messages(EVENTS), until=datetime(2025, 1, 10, tzinfo=UTC))
    }
    assert early["u1"].state.runs["lifecycle"].state == "new"
    assert early["u1"].state.runs["lifecycle"].context == {"orders": 0, "spent": 0.0}


def test_simulate_reads_a_file_written_by_hand(tmp_path: Path, catalog: Catalog):
    path = tmp_path / "events.jsonl"
    path.write_text(
        "\n".join(
            [
                _line(userId="l1", event="Lead Created", timestamp="2025-01-01T00:00:00Z"),
                _line(userId="l1", event="page_viewed", timestamp="2025-02-15T00:00:00Z"),
            ]
        )
    )
    (result,) = simulate(catalog, parse_messages(path.read_text().splitlines(), str(path)))
    assert [(a.kind, a.state) for a in result.actions] == [
        ("send", "waiting"),
        ("task", "waiting"),
        ("tag", "waiting"),
    ]
    assert result.state.runs["lead_followup"].state == "closed"
