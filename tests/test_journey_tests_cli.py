"""``journeys test``: the shipped journeys' tests in rules/tests/ pass (so ``make test``
and CI run them), and a failing test or a malformed test file exits 1 with file:line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import cli
from engine.loader import load_rules

ROOT = Path(__file__).resolve().parents[1]

JOURNEY = """
journey: follow
enroll: {on: [lead_created]}
start: waiting
states:
  waiting:
    on:
      lead_replied: engaged
    after:
      3d:
        do: [task: {title: Call this lead}]
  engaged:
    final: true
"""

TESTS = """
journey: follow
tests:
  - name: a reply engages
    steps:
      - event: lead_created
      - at: 1d
        event: lead_replied
        expect: {state: engaged}
  - name: a call at 3 days
    steps:
      - event: lead_created
      - at: 3d
        expect: {actions: [task: {title: Call this customer}]}
"""


def test_the_shipped_journey_tests_pass(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    code = cli.run(["test"])
    out = capsys.readouterr().out
    assert code == 0, out
    shipped = [j.journey for j in load_rules(ROOT / "rules", ROOT / "templates")]
    assert {"lifecycle", "lead_followup", "nps", "at_risk", "birthday", "winback_test"} <= set(
        shipped
    )
    for journey in shipped:  # every shipped journey has tests, and they ran
        assert f"ok   rules/tests/{journey}.yaml:" in out, f"rules/{journey}.yaml has no tests"
    assert " 0 failed, " in out.splitlines()[-1]
    print(out.splitlines()[-1])


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    (folder / "tests").mkdir(parents=True)
    (folder / "follow.yaml").write_text(textwrap.dedent(JOURNEY))
    return folder


def test_a_failing_test_exits_1_with_the_line_and_both_values(rules, monkeypatch, capsys):
    monkeypatch.chdir(rules.parent)
    (rules / "tests" / "follow.yaml").write_text(TESTS)
    assert cli.run(["test", "--rules", "rules", "--templates", str(rules)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "ok   rules/tests/follow.yaml:4 a reply engages"
    assert lines[1] == "FAIL rules/tests/follow.yaml:10 a call at 3 days"
    assert lines[2].startswith(
        "     rules/tests/follow.yaml:14:28 tests[1].steps[1].expect.actions[0]: expected "
        '{"task": {"title": "Call this customer"}}, got task {'
    )
    assert '"title": "Call this lead"' in lines[2]
    assert lines[3].startswith("1 passed, 1 failed, 2 tests in 1 file, ")


def test_a_malformed_test_file_exits_1_with_every_problem(rules, monkeypatch, capsys):
    monkeypatch.chdir(rules.parent)
    bad = rules / "tests" / "bad.yaml"
    bad.write_text("journey: follow\ntests:\n  - name: x\n    stepz: []\n")
    assert cli.run(["test", "--rules", "rules", "--templates", str(rules), str(bad)]) == 1
    err = capsys.readouterr().err
    assert "rules/tests/bad.yaml:3:5 tests[0]: missing required key 'steps'" in err
    assert "rules/tests/bad.yaml:4:5 tests[0].stepz: unknown key 'stepz' (did you mean" in err
    assert "journeys test: 2 problems in test files" in err
