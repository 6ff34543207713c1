"""``rules/identity.yaml``: off as shipped, errors at file:line:col, and the pure
normalisation the merge rules compare values by."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import JourneyValidationError
from engine.identity_rules import load_identity_rules, normalized, verified_value
from engine.rule_files import load_rule_files

ROOT = Path(__file__).resolve().parents[2]


def _load(tmp_path: Path, text: str):
    (tmp_path / "identity.yaml").write_text(text)
    return load_identity_rules(tmp_path, display_root=tmp_path)


def test_the_shipped_file_merges_on_nothing():
    shipped = load_identity_rules(ROOT / "rules")
    assert shipped.merge_on == [] and shipped.active() == []
    assert load_rule_files(ROOT / "rules", ROOT / "templates").identity.active() == []


def test_no_file_is_no_rules(tmp_path: Path):
    assert load_identity_rules(tmp_path).active() == []


def test_rules_load_with_their_kind_and_disabled_ones_are_not_active(tmp_path: Path):
    rules = _load(
        tmp_path,
        "merge_on:\n"
        "  - {name: verified_email, trait: email, verified_by: email_verified}\n"
        "  - {name: verified_phone, trait: phone, verified_by: phone_verified, enabled: false}\n"
        "  - {name: work_mail, trait: work_email, verified_by: work_ok, kind: email}\n",
    )
    assert [(r.name, r.compares_as) for r in rules.merge_on] == [
        ("verified_email", "email"),
        ("verified_phone", "phone"),
        ("work_mail", "email"),
    ]
    assert [r.name for r in rules.active()] == ["verified_email", "work_mail"]


def test_every_mistake_is_reported_at_its_place(tmp_path: Path):
    with pytest.raises(JourneyValidationError) as exc:
        _load(
            tmp_path,
            "merge_on:\n"
            "  - {name: verified_email, trait: email, verified_by: email_verified}\n"
            "  - name: mobile\n"
            "    trait: mobile\n"
            "    verifed_by: mobile_ok\n"
            "  - {name: Bad, trait: email, verified_by: email_ok}\n"
            "  - {name: p, trait: phone, verified_by: phone_ok, kind: fax}\n"
            "  - {name: same, trait: email, verified_by: email}\n"
            "  - {name: m2, trait: mobile, verified_by: mobile_ok}\n",
        )
    assert str(exc.value).splitlines() == [
        "identity.yaml:3:5 merge_on[1]: missing required key 'verified_by'",
        "identity.yaml:5:5 merge_on[1].verifed_by: unknown key 'verifed_by' (did you mean "
        "'verified_by'?); allowed here: name, trait, verified_by, kind, enabled",
        "identity.yaml:6:12 merge_on[2].name: 'Bad' is not a valid name: use lower case "
        "letters, digits and _ , starting with a letter",
        "identity.yaml:7:58 merge_on[3].kind: input should be 'email' or 'phone'",
        "identity.yaml:8:5 merge_on[4]: verified_by names the trait that says the value was "
        "verified, not the value's own trait",
        "identity.yaml:9:5 merge_on[5]: say how 'mobile' values compare: add kind: email "
        "or kind: phone",
    ]


def test_a_name_used_twice_and_a_wrong_shape_are_reported(tmp_path: Path):
    with pytest.raises(JourneyValidationError, match=r"identity.yaml:3:12 merge_on\[1\].name: "):
        _load(
            tmp_path,
            "merge_on:\n  - {name: a, trait: email, verified_by: v}\n"
            "  - {name: a, trait: phone, verified_by: w}\n",
        )
    with pytest.raises(JourneyValidationError, match=r"identity\.yaml:1:1 identity\.yaml is a "):
        _load(tmp_path, "- {name: a}\n")
    with pytest.raises(JourneyValidationError, match=r"identity\.yaml:3:1 YAML syntax error"):
        _load(tmp_path, "merge_on: [\n  {name: a\n")


def test_identity_yaml_is_not_read_as_a_journey(tmp_path: Path):
    (tmp_path / "identity.yaml").write_text("merge_on: []\n")
    (tmp_path / "j.yaml").write_text(
        "journey: j\nenroll: {on: signed_up}\nstart: a\nstates: {a: {final: true}}\n"
    )
    assert [j.journey for j in load_rule_files(tmp_path, None).journeys] == ["j"]


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("email", "  Ann@Example.ORG ", "ann@example.org"),
        ("email", "ann", None),
        ("email", "@example.org", None),
        ("email", "", None),
        ("email", 7, None),
        ("email", "a@" + "x" * 400, None),
        ("phone", "+49 (170) 123-4567", "+491701234567"),
        ("phone", "0170 1234567", "01701234567"),
        ("phone", "12-34", None),
        ("phone", True, None),
    ],
)
def test_values_compare_normalised(kind, value, expected):
    assert normalized(kind, value) == expected


def test_only_a_value_verified_by_a_json_true_counts(tmp_path: Path):
    (rule,) = _load(
        tmp_path, "merge_on: [{name: e, trait: email, verified_by: email_verified}]\n"
    ).merge_on
    assert verified_value(rule, {"email": "A@x.org", "email_verified": True}) == "a@x.org"
    for flag in ("true", 1, False, None):
        assert verified_value(rule, {"email": "A@x.org", "email_verified": flag}) is None
    assert verified_value(rule, {"email_verified": True}) is None


def test_write_keys_join_known_customers_only_when_ops_say_so(tmp_path: Path):
    assert load_identity_rules(ROOT / "rules").merge_known_customers is False
    assert load_identity_rules(tmp_path).merge_known_customers is False
    assert _load(tmp_path, "merge_known_customers: true\n").merge_known_customers is True
    with pytest.raises(JourneyValidationError, match=r"identity\.yaml:1:24 merge_known_customers"):
        _load(tmp_path, "merge_known_customers: sometimes\n")
