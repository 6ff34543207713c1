"""Customer identity and redaction, Mermaid graphs, the offline simulator."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.catalog import Catalog
from engine.graph import mermaid
from engine.identity import customer_key, redact_traits, workflow_id
from engine.loader import load_rules
from engine.simulate import simulate
from ingest.event_file import SimulationInputError, parse_messages
from tests.engine.support import ROOT

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
def shipped_by_name(monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.chdir(ROOT)
    return {j.journey: j for j in load_rules("rules", "templates")}


@pytest.mark.parametrize("name", ["lifecycle", "lead_followup", "nps"])
def test_mermaid_shows_every_state(shipped_by_name: dict, name: str):
    journey = shipped_by_name[name]
    text = mermaid(journey)
    assert text.startswith(f"stateDiagram-v2\n    %% journey {name} v1\n")
    assert f"    [*] --> {journey.start}: enroll on " in text
    for state, spec in journey.states.items():
        assert f"    {state} " in text or f" --> {state}:" in text
        if spec.final:
            assert f"    {state} --> [*]\n" in text


def test_mermaid_of_lifecycle(shipped_by_name: dict):
    text = mermaid(shipped_by_name["lifecycle"])
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
    for state in shipped_by_name["lifecycle"].states.values():
        for timer in state.after:
            assert f"after {timer.label}" in text


@pytest.mark.parametrize("name", ["lead_followup", "nps"])
def test_mermaid_shows_every_timer(shipped_by_name: dict, name: str):
    text = mermaid(shipped_by_name[name])
    for state in shipped_by_name[name].states.values():
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
            "ev.jsonl:3: the body is not valid JSON at line 1 column 17",
        ),
        ("[1, 2]", "ev.jsonl:3: the body must be a JSON object"),
        (
            _line(type="track", event="x", timestamp="2025-01-01T00:00:00Z"),
            "ev.jsonl:3: message needs a userId or an anonymousId",
        ),
        (
            _line(type="track", event="x", userId="u1"),
            "ev.jsonl:3: message.timestamp is required in an event file (there is no time of receipt)",
        ),
        (
            _line(type="track", event="x", userId="u1", timestamp="yesterday"),
            "ev.jsonl:3: message.timestamp is not an ISO-8601 timestamp",
        ),
        (
            _line(type="click", userId="u1", timestamp="2025-01-01T00:00:00Z"),
            "ev.jsonl:3: message.type must be one of track, identify, page, screen, group, alias",
        ),
        (
            _line(type="track", userId="u1", timestamp="2025-01-01T00:00:00Z"),
            "ev.jsonl:3: message.event (the event name) is required",
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
