"""Golden files of validation messages: tests/golden/<case>.yaml is a journey with one kind of
mistake, tests/golden/<case>.txt the exact text of the JourneyValidationError it raises.

``UPDATE_GOLDEN=1 pytest tests/engine/test_loader_golden.py`` rewrites the .txt files from
the current messages, except for the cases in KNOWN_BUGS, whose .txt holds the message as it
should be (written by hand) until the loader is fixed. Read every rewritten file before
committing it: a golden file pins what operators see.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from engine._errors import JourneyValidationError
from engine.loader import load_rules
from tests.engine.support import ROOT

GOLDEN = ROOT / "tests" / "golden"
TEMPLATES = ROOT / "templates"
CASES = sorted(p.stem for p in GOLDEN.glob("*.yaml"))
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

KNOWN_BUGS: dict[str, str] = {}

# Problems about the file as a whole, or about its top-level mapping, carry no dotted path.
ROOT_LEVEL = {"yaml_syntax_error", "yaml_anchor", "missing_journey_key", "unknown_top_key"}


def validation_text(case: str) -> str:
    """``str(JourneyValidationError)`` for loading just ``tests/golden/<case>.yaml``."""
    with pytest.raises(JourneyValidationError) as exc:
        load_rules(rules_dir=GOLDEN, templates_dir=TEMPLATES, paths=[GOLDEN / f"{case}.yaml"])
    return str(exc.value)


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # so files are shown as tests/golden/<case>.yaml


def _params(cases: list[str]) -> list:
    return [
        pytest.param(
            c, marks=pytest.mark.xfail(reason=KNOWN_BUGS[c], strict=True) if c in KNOWN_BUGS else ()
        )
        for c in cases
    ]


def test_every_case_has_its_golden_file():
    assert len(CASES) >= 20
    texts = sorted(p.stem for p in GOLDEN.glob("*.txt"))
    assert texts == CASES


@pytest.mark.parametrize("case", _params(CASES))
def test_golden(case: str):
    golden = GOLDEN / f"{case}.txt"
    actual = validation_text(case)
    if UPDATE and case not in KNOWN_BUGS:
        golden.write_text(actual + "\n")
    assert actual == golden.read_text().rstrip("\n")


PATH = r"[a-z_][\w-]*(?:\[\d+\])*(?:\.[\w -]+(?:\[\d+\])*)*"


@pytest.mark.parametrize("case", CASES)
def test_first_line_is_file_line_col_path_message(case: str):
    first = validation_text(case).splitlines()[0]
    m = re.fullmatch(rf"tests/golden/{case}\.yaml:(\d+):(\d+) (.+)", first)
    assert m, first
    line, col, rest = int(m[1]), int(m[2]), m[3]
    lines = (GOLDEN / f"{case}.yaml").read_text().splitlines()
    assert 1 <= line <= len(lines)
    assert 1 <= col <= len(lines[line - 1]) + 1
    if case in ROOT_LEVEL:
        assert re.fullmatch(r"[a-zA-Z'].*\S", rest), rest
    else:
        assert re.fullmatch(rf"({PATH}): (\S.*)", rest), rest


# What each problem's line:col must point at in the file, in the order they are reported.
POINTS_AT = {
    "unknown_goto_state": ["actve"],
    "unknown_start_state": ["newbie"],
    "unknown_top_key": ["journey: shop", "enrol:"],
    "unknown_rule_key": ["gotoo: done"],
    "unknown_action": ["sned:"],
    "unknown_template": ["welcom,"],
    "bad_duration": ["14 days:"],
    "cel_syntax_error": ["> 10'"],
    "unknown_cel_variable": ["evnt.properties"],
    "unknown_ctx_variable": ["order:", "ordrs + 1", "oders > 3"],
    "ctx_type_error": ["'ctx.orders + 1.5'"],
    "condition_not_bool": ["'ctx.orders + 1'"],
    "unreachable_state": ["orphan:"],
    "dead_end_state": ["waiting:"],
    "final_with_rules": ["true"],
    "several_errors": ["welcom}", "order > 1", "actve"],
    "missing_journey_key": ["enroll:"],
    "offer_without_discount": ["offer:"],
    "bad_context_name": ["Total-Spent:"],
    "shape_and_semantic_errors": ["welcom}", "gotoo:", "actve"],
    "yaml_anchor": ["&greet", "*greet"],
    "cel_hidden_nesting": ["(x, x.all("],
    "duration_too_long": ["4000000d}", "3651d}", "P4000W}", "999", "1000000d,", "4000000d:"],
    "holiday_listed_twice": ["new_year]"],
    "too_many_arms": ["arms:"],
}


def test_every_case_says_where_its_problems_are():
    assert set(POINTS_AT) == set(CASES) - {"yaml_syntax_error"}


@pytest.mark.parametrize("case", _params(sorted(POINTS_AT)))
def test_each_problem_points_at_its_mistake(case: str):
    lines = (GOLDEN / f"{case}.yaml").read_text().splitlines()
    with pytest.raises(JourneyValidationError) as exc:
        load_rules(rules_dir=GOLDEN, templates_dir=TEMPLATES, paths=[GOLDEN / f"{case}.yaml"])
    pointed = [lines[p.line - 1][p.col - 1 :] for p in exc.value.problems]
    assert len(pointed) == len(POINTS_AT[case])
    for text, expected in zip(pointed, POINTS_AT[case], strict=True):
        assert text.startswith(expected), (text, expected)


def test_a_yaml_syntax_error_says_where_the_unclosed_sequence_started():
    text = validation_text("yaml_syntax_error")
    assert "line 3" in text or ":3:7" in text


def test_several_errors_in_one_file_are_reported_together():
    with pytest.raises(JourneyValidationError) as exc:
        load_rules(
            rules_dir=GOLDEN, templates_dir=TEMPLATES, paths=[GOLDEN / "several_errors.yaml"]
        )
    assert [(p.line, p.path) for p in exc.value.problems] == [
        (10, "states.new.enter[0].send.template"),
        (13, "states.new.on.order_completed[0].when"),
        (14, "states.new.on.order_completed[0].goto"),
    ]


def test_problems_of_several_files_are_reported_together():
    paths = [GOLDEN / "unknown_start_state.yaml", GOLDEN / "unknown_action.yaml"]
    with pytest.raises(JourneyValidationError) as exc:
        load_rules(rules_dir=GOLDEN, templates_dir=TEMPLATES, paths=paths)
    assert [p.file for p in exc.value.problems] == [
        "tests/golden/unknown_action.yaml",
        "tests/golden/unknown_start_state.yaml",
    ]


def test_a_journey_defined_twice_is_reported(tmp_path: Path):
    text = (ROOT / "rules" / "nps.yaml").read_text()
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text)
    with pytest.raises(JourneyValidationError) as exc:
        load_rules(tmp_path, TEMPLATES)
    (problem,) = exc.value.problems
    assert problem.message == (
        f"journey 'nps' is also defined in {tmp_path / 'a.yaml'}; journey ids must be unique"
    )


def test_an_empty_rules_folder_is_reported(tmp_path: Path):
    with pytest.raises(JourneyValidationError) as exc:
        load_rules(tmp_path, None)
    (problem,) = exc.value.problems
    assert problem.message == "no journeys found; add a rules/NAME.yaml with journey: NAME"


def test_the_shipped_rules_load():
    journeys = load_rules("rules", "templates")
    assert [j.journey for j in journeys] == [
        "at_risk",
        "birthday",  # shipped with calendar timers (#12)
        "churn_warning",  # shipped with forecasts (#13)
        "lead_followup",
        "lifecycle",
        "nps",
        "winback_test",  # shipped with experiments (#12)
    ]
    assert [j.source for j in journeys] == [
        "rules/at_risk.yaml",
        "rules/birthday.yaml",
        "rules/churn_warning.yaml",
        "rules/lead_followup.yaml",
        "rules/lifecycle.yaml",
        "rules/nps.yaml",
        "rules/winback_test.yaml",
    ]
    assert all(len(j.digest) == 16 for j in journeys)
