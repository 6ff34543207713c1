"""Journey tests (engine.test_files, engine.journey_tests): failures point at the
expectation's line with both values, every expectation kind can fail, malformed files
are refused at file:line:col, and time advancing fires timers."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from engine import JourneyValidationError
from engine.catalog import Catalog
from engine.journey_tests import CHECKS, Outcome, run_file
from engine.test_files import load_test_file
from tests.engine.support import ROOT, catalog_of

FOLLOW = """
journey: follow
enroll: {on: [lead_created]}
context: {reminders: 0, score: 0.0}
start: waiting
states:
  waiting:
    on:
      lead_replied:
        - set: {score: 'ctx.score + double(event.properties.points)'}
        - goto: engaged
    after:
      3d:
        set: {reminders: 'ctx.reminders + 1'}
        do:
          - task: {title: Call this lead, assignee: sales, due_in: 2d}
      30d:
        do: [tag: low_priority]
        goto: closed
  engaged:
    final: true
  closed:
    final: true
"""


@pytest.fixture
def follow(tmp_path: Path) -> Catalog:
    return catalog_of(tmp_path, FOLLOW)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "follow_test.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def results(tmp_path: Path, catalog: Catalog, text: str) -> list[Outcome]:
    path = write(tmp_path, text)
    return run_file(load_test_file(path, "rules/tests/follow.yaml", catalog), catalog)


def problems(tmp_path: Path, catalog: Catalog, text: str) -> list[str]:
    with pytest.raises(JourneyValidationError) as caught:
        load_test_file(write(tmp_path, text), "rules/tests/follow.yaml", catalog)
    return [str(p) for p in caught.value.problems]


def test_a_failing_expectation_shows_the_file_line_and_both_values(tmp_path, follow):
    (result,) = results(
        tmp_path,
        follow,
        """
        journey: follow
        tests:
          - name: closed after a month
            steps:
              - event: lead_created
              - at: 29d
                expect: {state: closed}
        """,
    )
    assert not result.ok
    assert (result.file, result.line, result.name) == (
        "rules/tests/follow.yaml",
        3,
        "closed after a month",
    )
    assert [str(f) for f in result.failures] == [
        "rules/tests/follow.yaml:7:25 tests[0].steps[1].expect.state: "
        "expected state 'closed', got 'waiting'"
    ]


def test_time_advancing_fires_timers_at_their_due_time(tmp_path, follow):
    (result,) = results(
        tmp_path,
        follow,
        """
        journey: follow
        tests:
          - name: the call at 3 days, closed at 30
            steps:
              - at: 0s
                event: lead_created
              - at: 2d23h59m
                expect: {state: waiting, context: {reminders: 0}, actions: []}
              - at: 3d
                expect:
                  context: {reminders: 1}
                  actions: [task: {title: Call this lead, due_in: 2d}]
              - at: 400d
                expect: {state: closed, status: completed, tags: [low_priority],
                         actions: [tag: low_priority]}
        """,
    )
    assert result.ok, result.failures


# one wrong expectation per kind, with the words its failure must hold: a kind that can
# never fail would make every test of it pass
WRONG = {
    "state": ("state: engaged", ["expected state 'engaged'", "got 'waiting'"]),
    "status": ("status: completed", ["expected status 'completed'", "got 'active'"]),
    "context": ("context: {reminders: 2}", ["expected ctx.reminders 2", "got 1"]),
    "actions": ("actions: [task: {assignee: manager}]", ['"assignee": "manager"', "sales"]),
    "tags": ("tags: [vip]", ['expected tags ["vip"]', "got []"]),
    "problems": ("problems: [no such]", ['expected problems ["no such"]', "got: none"]),
}


def test_every_expectation_kind_has_a_failing_case():
    assert sorted(WRONG) == sorted(CHECKS)


@pytest.mark.parametrize("kind", sorted(WRONG))
def test_each_expectation_kind_can_fail(tmp_path, follow, kind):
    wrong, words = WRONG[kind]
    (result,) = results(
        tmp_path,
        follow,
        f"""
        journey: follow
        tests:
          - name: wrong {kind}
            steps:
              - event: lead_created
              - at: 4d
                expect: {{{wrong}}}
        """,
    )
    (failure,) = result.failures
    assert failure.line == 7 and failure.path.startswith("tests[0].steps[1].expect." + kind)
    for word in words:
        assert word in failure.message


def test_a_count_of_actions_that_differs_fails_with_what_was_done(tmp_path, follow):
    (result,) = results(
        tmp_path,
        follow,
        """
        journey: follow
        tests:
          - name: nothing at 3 days
            steps:
              - event: lead_created
              - at: 3d
                expect: {actions: []}
        """,
    )
    assert [f.message for f in result.failures] == [
        'expected 0 actions, got 1: task {"assignee": "sales", "due_in": 172800, '
        '"note": null, "title": "Call this lead"}'
    ]


def test_a_runtime_problem_no_expectation_names_fails_the_test(tmp_path, follow):
    text = """
        journey: follow
        tests:
          - name: a reply without points
            steps:
              - event: lead_created
              - at: 1d
                event: lead_replied
                expect: {{state: engaged{extra}}}
        """
    (bad,) = results(tmp_path, follow, text.format(extra=""))
    (failure,) = bad.failures
    assert failure.line == 3 and "problems no expectation names" in failure.message
    assert "follow.waiting" in failure.message
    (named,) = results(tmp_path, follow, text.format(extra=", problems: [points]"))
    assert named.ok, named.failures


def test_malformed_files_give_every_problem_at_file_line_col(tmp_path, follow):
    found = problems(
        tmp_path,
        follow,
        """
        journey: follow
        tests:
          - name: typos
            steps:
              - evnt: lead_created
              - at: 3x
              - at: 1d
                expect: {state: wating, context: {remindrs: 1}, actions: [tsk]}
              - at: 0s
                expect: {conversions: 1}
        """,
    )
    assert found == [
        "rules/tests/follow.yaml:5:9 tests[0].steps[0].evnt: unknown key 'evnt' (did you "
        "mean 'event'?); allowed here: at, event, properties, id, customer, expect",
        "rules/tests/follow.yaml:6:13 tests[0].steps[1].at: '3x' is not a duration; write a "
        "duration like 45s, 90m, 12h, 30d, 2w, 1d12h or ISO-8601 P30D / PT12H",
    ]  # conversions: 1 is a valid shape since goals are recorded (#12)
    # once the shape is right, the names are checked against the journey
    found = problems(
        tmp_path,
        follow,
        """
        journey: follow
        tests:
          - name: typos
            steps:
              - at: 1d
                event: lead_created
                expect: {state: wating, context: {remindrs: 1}, actions: [tsk]}
              - at: 0s
                expect: {state: closed}
        """,
    )
    assert found == [
        "rules/tests/follow.yaml:7:25 tests[0].steps[0].expect.state: journey 'follow' has no "
        "state 'wating' (did you mean 'waiting'?); states: waiting, engaged, closed",
        "rules/tests/follow.yaml:7:43 tests[0].steps[0].expect.context.remindrs: journey "
        "'follow' has no context variable 'remindrs' (did you mean 'reminders'?)",
        "rules/tests/follow.yaml:7:67 tests[0].steps[0].expect.actions[0]: unknown action "
        "'tsk' (did you mean 'task'?); kinds: "
        "send, offer, assign_manager, survey, task, tag, emit",
        "rules/tests/follow.yaml:8:13 tests[0].steps[1].at: steps go forward in time",
    ]


def test_a_yaml_error_and_an_unknown_journey_are_located(tmp_path, follow):
    (syntax,) = problems(tmp_path, follow, "journey: follow\ntests: [\n")
    assert syntax.startswith("rules/tests/follow.yaml:3:1 YAML syntax error")
    (unknown,) = problems(tmp_path, follow, "journey: folow\ntests: [{name: x, steps: [{}]}]\n")
    assert unknown == (
        "rules/tests/follow.yaml:1:10 journey: no journey 'folow' (did you mean 'follow'?); "
        "journeys: ['follow']"
    )


def test_the_shipped_tests_pass_hundreds_per_second(monkeypatch):
    """Every shipped journey has tests in rules/tests/, and they pass; the rate is printed,
    not asserted (the machine decides it)."""
    from engine.loader import load_rules

    monkeypatch.chdir(ROOT)
    catalog = Catalog.of(load_rules("rules", "templates"))
    files = [
        load_test_file(p, f"rules/tests/{p.name}", catalog)
        for p in sorted((ROOT / "rules" / "tests").glob("*.yaml"))
    ]
    assert {f.journey for f in files} == set(catalog.latest)
    rounds, started = 20, time.perf_counter()
    for _ in range(rounds):
        done = [r for f in files for r in run_file(f, catalog)]
        assert [str(x) for r in done for x in r.failures] == []
    took = time.perf_counter() - started
    print(
        f"\n{rounds * len(done)} journey tests in {took:.3f} s: {rounds * len(done) / took:.0f}/s"
    )
