"""The JSON Schemas editors read (``rules/schema/``): generated from the models, current,
accepting every shipped rule file and the documented example, and refusing typical
mistakes at their path."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from ruamel.yaml import YAML

from cli import run
from engine.schema import SCHEMAS, dumps

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
SHIPPED = sorted(RULES.glob("*.yaml"))


def _kind(path: Path) -> str:
    return path.stem if path.stem in ("policy", "segments", "identity") else "journey"


def _validator(kind: str) -> Draft202012Validator:
    schema = SCHEMAS[kind]()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _load(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


@pytest.mark.parametrize("kind", list(SCHEMAS))
def test_committed_schema_is_what_journeys_schema_generates(kind: str) -> None:
    committed = RULES / "schema" / f"{kind}.schema.json"
    fix = f"run: journeys schema {kind} --output rules/schema/{kind}.schema.json"
    assert committed.is_file(), f"{committed} is missing; {fix}"
    assert committed.read_text(encoding="utf-8") == dumps(SCHEMAS[kind]()), (
        f"{committed.relative_to(ROOT)} is stale (the models changed); {fix}"
    )


def test_journeys_schema_prints_and_writes_the_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["schema", "policy"]) == 0
    assert json.loads(capsys.readouterr().out) == SCHEMAS["policy"]()
    out = tmp_path / "sub" / "journey.schema.json"
    assert run(["schema", "--output", str(out)]) == 0  # journey is the default
    assert out.read_text(encoding="utf-8") == dumps(SCHEMAS["journey"]())


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_file_names_its_schema_and_is_valid(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    first = text.splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert match, f"{path.name}: the first line should name its schema, not {first!r}"
    assert match.group(1) == f"schema/{_kind(path)}.schema.json"
    assert (path.parent / match.group(1)).is_file()
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator(_kind(path)).iter_errors(_load(text))
    ]
    assert errors == []


def test_the_documented_journey_is_valid() -> None:
    docs = (ROOT / "docs" / "journeys.md").read_text(encoding="utf-8")
    examples = re.findall(r"```yaml\n(.*?)```", docs, flags=re.S)
    journeys = [_load(e) for e in examples]
    journeys = [j for j in journeys if isinstance(j, dict) and "journey" in j]
    assert journeys, "docs/journeys.md has no journey example"
    for journey in journeys:
        assert list(_validator("journey").iter_errors(journey)) == []


def _lifecycle() -> Any:
    return _load((RULES / "lifecycle.yaml").read_text(encoding="utf-8"))


def _mistake(data: Any) -> tuple[str, str]:
    error = best_match(_validator("journey").iter_errors(data))
    assert error is not None, "the mistake was accepted"
    return ".".join(map(str, error.absolute_path)), error.message


def test_an_unknown_key_is_refused_at_its_place() -> None:
    data = _lifecycle()
    data["states"]["new"]["enter"][0]["send"]["templat"] = "welcome"
    assert _mistake(data) == (
        "states.new.enter.0.send",
        "Additional properties are not allowed ('templat' was unexpected)",
    )
    data = _lifecycle()
    data["states"]["new"]["enter"][0] = {"sned": {"template": "welcome"}}
    path, message = _mistake(data)
    assert (path, "'sned' was unexpected" in message) == ("states.new.enter.0", True)


def test_a_wrong_type_is_refused_at_its_place() -> None:
    data = _lifecycle()
    data["states"]["lost"]["final"] = "yes"
    assert _mistake(data) == ("states.lost.final", "'yes' is not of type 'boolean'")
    data = _lifecycle()
    data["enroll"]["reenter"] = "sometimes"
    assert _mistake(data)[0] == "enroll.reenter"


def test_durations_and_channels_are_as_ops_write_them() -> None:
    schema = SCHEMAS["journey"]()
    offer = schema["$defs"]["Offer"]["properties"]
    assert offer["valid_for"]["type"] == "string" and offer["valid_for"]["default"] == "2w"
    validator = _validator("journey")
    pattern = re.compile(
        schema["$defs"]["State"]["properties"]["after"]["propertyNames"]["pattern"]
    )
    for good in ("45s", "90m", "1d12h", "2w", "P30D", "PT12H"):
        assert pattern.match(good), good
    for bad in ("14", "two weeks", "P", "PT", "14 d"):
        assert not pattern.match(bad), bad
    data = _lifecycle()
    data["states"]["new"]["after"] = {"two weeks": "dormant"}
    assert _mistake(data)[0] == "states.new.after"
    data = _lifecycle()
    data["states"]["new"]["enter"][0]["send"]["channel"] = "fax"
    assert _mistake(data) == (
        "states.new.enter.0.send.channel",
        "'fax' is not one of ['email', 'sms', 'webhook']",
    )
    shorthand = copy.deepcopy(_lifecycle())
    shorthand["states"]["new"]["enter"] = [{"tag": "vip"}, {"tag": ["a", "b"]}]
    assert list(validator.iter_errors(shorthand)) == []


def test_what_the_actions_check_across_fields() -> None:
    validator = _validator("journey")
    for send, ok in (
        ({"template": "t", "channel": "webhook"}, False),
        ({"template": "t", "channel": "webhook", "url": "https://x"}, True),
        ({"template": "t", "url": "https://x"}, False),
        ({"template": "t", "channel": "sms"}, True),
    ):
        data = _lifecycle()
        data["states"]["new"]["enter"] = [{"send": send}]
        assert validator.is_valid(data) is ok, send
    for offer, ok in (
        ({"template": "t", "percent_off": 15}, True),
        ({"template": "t", "amount_off": 5}, True),
        ({"template": "t"}, False),
        ({"template": "t", "percent_off": 15, "amount_off": 5}, False),
    ):
        data = _lifecycle()
        data["states"]["new"]["enter"] = [{"offer": offer}]
        assert validator.is_valid(data) is ok, offer


TESTS = sorted((RULES / "tests").glob("*.yaml"))


@pytest.mark.parametrize("path", TESTS, ids=[p.name for p in TESTS])
def test_every_shipped_test_file_names_its_schema_and_is_valid(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "# yaml-language-server: $schema=../schema/test.schema.json"
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator("test").iter_errors(_load(text))
    ]
    assert errors == []


def test_a_test_files_mistakes_are_refused_at_their_place() -> None:
    validator = _validator("test")
    wrong = _load(
        "journey: lifecycle\n"
        "tests:\n"
        "  - name: t\n"
        "    steps:\n"
        "      - at: 3x\n"
        "        evnt: signed_up\n"
        "        expect: {status: sleeping}\n"
    )
    found = {".".join(map(str, e.absolute_path)): e.message for e in validator.iter_errors(wrong)}
    assert set(found) == {"tests.0.steps.0", "tests.0.steps.0.at", "tests.0.steps.0.expect.status"}
    assert "'evnt' was unexpected" in found["tests.0.steps.0"]
