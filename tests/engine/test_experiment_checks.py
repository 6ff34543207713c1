"""Experiments and goals when journeys and their tests load: a bad split, an experiment in
two journeys, an unknown ``experiment.NAME``, ``ctx.arm`` and the goal's keys, all at
file:line:col; and the ``arm:`` and ``conversions:`` expectations of journey tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import JourneyValidationError
from engine.goals import experiment_names
from engine.journey_tests import run_file
from engine.test_files import load_test_file
from tests.engine.support import catalog_of, load_journeys
from tests.engine.test_experiments import OFFERED, READER, TRIAL

# --- loading -----------------------------------------------------------------------------


def _problems(tmp_path: Path, *texts: str) -> list[str]:
    with pytest.raises(JourneyValidationError) as caught:
        load_journeys(tmp_path, *texts)
    return [f"{p.line}:{p.col} {p.path}: {p.message}" for p in caught.value.problems]


BAD_SPLIT = """
journey: bad
enroll: {on: [signed_up]}
start: s
states:
  s:
    enter:
      - split: {experiment: Trial, arms: {a: 1, b: 1}}
      - split: {experiment: t2, arms: {only: 1}}
      - split: {experiment: t3, arms: {a: 1.5, b: 1}}
      - split: {experiment: t4, arms: {Big: 1, b: 1}}
    on:
      left: done
  done: {final: true}
"""


def test_a_bad_split_is_reported_at_its_place(tmp_path: Path):
    found = _problems(tmp_path, BAD_SPLIT)
    assert found == [
        "8:29 states.s.enter[0].split.experiment: 'Trial' is not a valid name: use lower "
        "case letters, digits and _ , starting with a letter",
        "9:33 states.s.enter[1].split.arms: a split needs at least two arms, e.g. "
        "{offer: 90, holdout: 10}",
        "10:33 states.s.enter[2].split.arms: arm 'a': a weight is a whole number above 0, e.g. 45",
        "11:33 states.s.enter[3].split.arms: arm 'Big' is not a valid name: use lower case "
        "letters, digits and _, starting with a letter",
    ]


def test_experiments_belong_to_one_journey_and_references_must_name_one(tmp_path: Path):
    copy = TRIAL.replace("journey: trial", "journey: trial_copy")
    wrong_ref = READER.replace('experiment.trial_offer == ""', 'experiment.trial_ofer == ""')
    found = _problems(tmp_path, TRIAL, copy, wrong_ref)
    assert any(
        "states.welcome.enter[0].split.experiment: experiment 'trial_offer' is already split "
        "in journey 'trial'" in f
        for f in found
    ), found
    assert any(
        "states.s.on.ping[1].when: unknown experiment 'experiment.trial_ofer' (did you mean "
        "'trial_offer'?); no journey splits on it (experiments: trial_offer)" in f
        for f in found
    ), found


def test_ctx_arm_is_known_and_the_goal_is_checked(tmp_path: Path):
    load_journeys(tmp_path, TRIAL)  # ctx.arm in a when: without declaring it
    bad = TRIAL.replace("goal: {", "exit_on_goal: true\nbogus: {").replace(
        "welcome, when: 'ctx.arm", "welcome, when: 'ctx.army"
    )
    found = _problems(tmp_path, bad)
    assert any("bogus: unknown key 'bogus'" in f and "goal, exit_on_goal" in f for f in found)
    no_goal = TRIAL.split("goal:")[0] + "exit_on_goal: true\n"
    assert _problems(tmp_path, no_goal) == [
        "22:15 exit_on_goal: exit_on_goal needs a goal: add goal: {event: order_completed, "
        "within: 30d}"
    ]
    typo = TRIAL.replace('== "offer"', "== offer")
    (problem,) = _problems(tmp_path, typo)
    assert "states.welcome.enter[1].send.when: unknown variable 'offer'" in problem


# --- journey tests -----------------------------------------------------------------------

TESTS = f"""
journey: trial
tests:
  - name: wrong arm and conversions
    customer: {{id: {OFFERED}}}
    steps:
      - event: signed_up
        expect: {{arm: holdout}}
      - at: 2d
        event: order_completed
        properties: {{revenue: 30}}
        expect: {{conversions: [{{arm: offer, revenue: 31}}]}}
      - at: 3d
        expect: {{conversions: 2}}
"""


def test_arm_and_conversion_expectations_fail_with_both_values(tmp_path: Path):
    cat = catalog_of(tmp_path, TRIAL)
    path = tmp_path / "t.yaml"
    path.write_text(TESTS)
    (outcome,) = run_file(load_test_file(path, "rules/tests/trial.yaml", cat), cat)
    assert [str(f) for f in outcome.failures] == [
        "rules/tests/trial.yaml:8:23 tests[0].steps[0].expect.arm: expected arm 'holdout', "
        "got 'offer'",
        "rules/tests/trial.yaml:12:54 tests[0].steps[1].expect.conversions[0].revenue: "
        "expected a conversion with arm offer, revenue 31, got order_completed arm offer "
        "revenue 30 after 2d",
        "rules/tests/trial.yaml:14:31 tests[0].steps[2].expect.conversions: expected 2 "
        "conversions, got 1: order_completed arm offer revenue 30 after 2d",
    ]


def test_arm_and_conversions_are_checked_against_the_journey(tmp_path: Path):
    cat = catalog_of(tmp_path, TRIAL, READER)
    path = tmp_path / "t.yaml"
    path.write_text(
        """
journey: trial
tests:
  - name: names
    steps:
      - event: signed_up
        expect: {arm: ofer, actions: [split]}
      - expect: {journey: z_reader, conversions: 0}
"""
    )
    with pytest.raises(JourneyValidationError) as caught:
        load_test_file(path, "rules/tests/trial.yaml", cat)
    assert [p.message for p in caught.value.problems] == [
        "journey 'trial' has no arm 'ofer' (did you mean 'offer'?); arms: holdout, offer",
        "split is not among actions: check it with arm:",
        "journey 'z_reader' has no goal, so nobody converts; add goal: to it or leave this key out",
    ]


# --- every place: calendar timers (at:) are checked like after: timers ------------------

AT_ENTRY = """
journey: cal
enroll: {on: [signed_up]}
start: s
states:
  s:
    at:
      birthday:
        date: customer.traits.birthday
        when: WHEN
        do:
          - ACTION
    on:
      left: done
  done: {final: true}
"""


def _at(when: str = "'true'", action: str = "tag: {add: [born]}") -> str:
    return AT_ENTRY.replace("WHEN", when).replace("ACTION", action)


def test_an_at_entry_actions_when_is_checked_like_an_after_timers(tmp_path: Path):
    bad = "send: {template: welcome, when: 'ctx.arm === 2'}"
    (problem,) = _problems(tmp_path, _at(action=bad))
    # the error's own column in the file: the third '=' of ===
    assert problem.startswith("12:56 states.s.at.birthday.do[0].send.when: CEL syntax"), problem
    after = (
        _at(action=bad)
        .replace("at:\n      birthday:", "after:\n      1d:")
        .replace("        date: customer.traits.birthday\n", "")
    )
    (problem,) = _problems(tmp_path, after)
    assert problem.startswith("11:56 states.s.after.1d.do[0].send.when: CEL syntax"), problem


def test_experiment_names_in_an_at_entry_must_name_an_experiment(tmp_path: Path):
    found = _problems(
        tmp_path,
        _at(
            when="'experiment.nosuch == \"x\"'",
            action="send: {template: w, when: 'experiment.nosuch_either == \"\"'}",
        ),
    )
    assert [f.split(" (experiments")[0] for f in found] == [
        "10:15 states.s.at.birthday.when: unknown experiment 'experiment.nosuch'; no journey "
        "splits on it",
        "12:39 states.s.at.birthday.do[0].send.when: unknown experiment "
        "'experiment.nosuch_either'; no journey splits on it",
    ]


SPLIT_AT = "split: {experiment: birthday_gift, arms: {gift: 1, holdout: 1}}"


def test_a_split_in_an_at_entry_is_an_experiment_of_the_journey(tmp_path: Path):
    reader = READER.replace("trial_offer", "birthday_gift")
    cat = catalog_of(tmp_path, _at(action=SPLIT_AT), reader)  # experiment.birthday_gift is known
    assert experiment_names(cat) == {"birthday_gift"}
    two = _at(action=SPLIT_AT).replace(
        "    on:\n", "    enter:\n      - split: {experiment: other, arms: {a: 1, b: 1}}\n    on:\n"
    )
    assert _problems(tmp_path, two) == [
        "12:33 states.s.at.birthday.do[0].split.experiment: a journey splits on one "
        "experiment; this one already splits on 'other'"
    ]
    copy = TRIAL.replace("trial_offer", "birthday_gift")
    (problem,) = _problems(tmp_path, _at(action=SPLIT_AT), copy)
    assert "experiment 'birthday_gift' is already split in journey 'cal'" in problem


# --- a message before the split would reach the holdout ---------------------------------


def test_a_message_before_the_split_in_the_same_list_is_refused(tmp_path: Path):
    early = TRIAL.replace(
        "    enter:\n      - split",
        "    enter:\n      - send: {template: hello}\n      - split",
    )
    assert _problems(tmp_path, early) == [
        "8:9 states.welcome.enter[0].send: send comes before the split in this list, so it "
        "reaches the holdout too; put it after the split (a message for everyone, such as a "
        "welcome, goes in a state before the one that splits)"
    ]
    in_at = _at(action=f"survey: {{kind: nps, template: nps_survey}}\n          - {SPLIT_AT}")
    (problem,) = _problems(tmp_path, in_at)
    assert problem.startswith("12:13 states.s.at.birthday.do[0].survey: survey comes before")
    # staff work and tags before the split are no message: they stay allowed
    load_journeys(
        tmp_path, TRIAL.replace("      - split", "      - tag: {add: [x]}\n      - split")
    )
