"""JSON Schemas (draft 2020-12) of the rule files, generated from their pydantic models, so
an editor (VS Code with the YAML extension, through the ``# yaml-language-server:`` line at
the top of each shipped file) completes keys and flags mistakes as ops type.

The schema describes the files as ops *write* them, which is not always what the models
hold: the models' before-validators turn durations (``14d``) into seconds, ``after: {14d:
dormant}`` into timers, a bare state name into ``{goto: ...}``. So the schema pydantic
generates is reshaped here, by the validators' names, to the written form; a change to the
models shows up as a diff of the committed files under ``rules/schema/`` (a test compares
them with what ``journeys schema`` makes). The schema is a first line of help, not the
judge: CEL, state names and templates are checked only when journeys load.

Channel names are data registered by the ``channels`` package (``engine.channel_kinds``),
so the caller imports ``channels`` first and the schema lists the channels there are."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from ._holiday_names import HOLIDAY_NAMES
from .actions import ACTIONS
from .channel_kinds import names as channel_names
from .channel_kinds import person_channels
from .durations import HELP as DURATION_HELP
from .durations import format_duration
from .experiments import MAX_ARMS, MAX_NAME_LENGTH
from .identity_rules import IdentityRules
from .model import NAME, Journey
from .policy import Policy
from .segments import Segments
from .test_files import _FileSpec as TestFileSpec

DRAFT = "https://json-schema.org/draft/2020-12/schema"
# what engine.durations.parse_duration reads: 45s 90m 12h 30d 2w 1d12h, or ISO-8601 P30D PT12H
DURATION_PATTERN = (
    r"^(?:(?=\d)(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?"
    r"|[Pp](?=\d|[Tt]\d)(?:\d+[Ww])?(?:\d+[Dd])?(?:[Tt](?:\d+[Hh])?(?:\d+[Mm])?(?:\d+[Ss])?)?)$"
)
_DURATION: dict[str, Any] = {
    "type": "string",
    "pattern": DURATION_PATTERN,
    "description": f"A duration: {DURATION_HELP}.",
}
_CEL = "A CEL expression (docs/journeys.md, Expressions)."

# Help for keys whose models say it only in comments; a Field's own description wins.
_HELP: dict[str, dict[str, str]] = {
    "Journey": {
        "journey": "The journey's id: [a-z][a-z0-9_]*, unique across rules/.",
        "description": "What this journey is for, in a sentence.",
        "enroll": "Which events enrol a customer who is not in this journey.",
        "exit_when": f"Checked first on every event, in any state; when true the run ends. {_CEL}",
        "context": "Per-customer variables (ctx.NAME) with their initial values.",
        "start": "The state an enrolled customer enters first.",
        "states": "The states, by name ([a-z][a-z0-9_]*).",
        "migrate": "Old state -> new state, for customers moved by `journeys upgrade`.",
        "goal": "When a customer converts: the event, within a time of the run's start.",
        "exit_on_goal": "true: the run ends (exited, cause goal) when the customer converts.",
    },
    "Goal": {
        "event": "The goal event's name (normalised to snake_case), e.g. order_completed.",
        "within": "How long after the enrolment (or the split, in an experiment) it counts.",
        "when": f"The event converts only when this holds. {_CEL}",
    },
    "Enroll": {
        "on": "An event name or a list of them (normalised to snake_case).",
        "when": f"Enrol only when this holds. {_CEL}",
        "reenter": "never (default): once ever; after_exit: again after the run ended.",
    },
    "State": {
        "enter": "Actions run when a customer enters the state.",
        "on": "Rules by event name, run in order when the event comes in this state.",
        "after": "Rules by duration (14d), run when the state has lasted that long.",
        "at": "Calendar timers by name: a rule run on a customer's date or on holidays.",
        "final": "A final state ends the run (status completed) after its enter actions.",
        "description": "What this state means, for people reading the journey.",
    },
    "CalendarTimer": {
        "date": f"The date (YYYY-MM-DD, MM-DD, a timestamp): customer.traits.birthday. {_CEL}",
        "calendar": f"The customer's country (ISO code, e.g. DE), for names:. {_CEL}",
        "names": "Holidays of that country to fire on (docs/journeys.md, Calendar timers).",
        "before": "Fire this long before the date (7d).",
        "after": "Fire this long after the date.",
        "time": 'Local time of day in the customer\'s time zone, "09:00" unless given.',
        "every": "year (default), month, or once.",
        "when": f"The rule applies only when this holds. {_CEL}",
        "set": f"Context variables to set, each to a {_CEL}",
        "do": "Actions to run.",
        "goto": "The state to move to.",
    },
    "Rule": {
        "when": f"The rule applies only when this holds. {_CEL}",
        "set": f"Context variables to set, each to a {_CEL}",
        "do": "Actions to run.",
        "goto": "The state to move to; stops the rules that follow.",
    },
    **{
        cls.__name__: {"when": f"Run this action only when this holds. {_CEL}"}
        for cls in ACTIONS.values()
        if cls.written and cls.kind != "split"
    },
    "Split": {
        "when": f"Run this action only when this holds. {_CEL}",
        "experiment": "The experiment's name ([a-z][a-z0-9_]*), split by this journey only.",
        "arms": "Arm names with whole-number weights (at least two); `holdout` gets no messages.",
    },
}


class _WrittenForm(GenerateJsonSchema):
    """Pydantic's generator, with the values of custom validators as ops write them."""

    def function_before_schema(self, schema: core_schema.BeforeValidatorFunctionSchema) -> Any:
        written = _BEFORE.get(_name(schema["function"]["function"]))
        return written() if written else super().function_before_schema(schema)

    def function_after_schema(self, schema: core_schema.AfterValidatorFunctionSchema) -> Any:
        name = _name(schema["function"]["function"])
        if name == "check_channel":
            return {"type": "string", "enum": channel_names()}
        if name == "check_person_channel":
            return {"type": "string", "enum": person_channels()}
        if name == "check_holiday_name":
            return {"type": "string", "enum": list(HOLIDAY_NAMES)}
        return super().function_after_schema(schema)


def _name(function: Callable[..., Any]) -> str:
    return str(getattr(getattr(function, "__func__", function), "__qualname__", ""))


_BEFORE: dict[str, Callable[[], JsonSchemaValue]] = {
    "_seconds": lambda: dict(_DURATION),
    "_offset_seconds": lambda: dict(_DURATION),
    "_await_seconds": lambda: {
        "anyOf": [dict(_DURATION), {"const": 0}],
        "description": f"0 (at once), or a duration: {DURATION_HELP}.",
    },
    # YAML 1.1 readers take an unquoted 21:00 for the number 1260, which the model accepts
    "_clock": lambda: {
        "anyOf": [{"type": "string", "pattern": r"^\d{1,2}:\d{2}(:\d{2})?$"}, {"type": "integer"}],
        "description": 'A time of day, like "21:00".',
    },
    "_zone": lambda: {"type": "string", "description": "An IANA time zone, like Europe/Berlin."},
    "Step._at": lambda: {
        "anyOf": [dict(_DURATION), {"const": 0}],
        "description": "When, after the test's start: 0s, 3d, 2w; left out: the previous "
        "step's time.",
    },
    "ConversionExpect._after": lambda: {
        "anyOf": [dict(_DURATION), {"const": 0}],
        "description": "The time from the run's start (its split, or its enrolment) to the "
        "conversion: 0s, 12d.",
    },
    "Split._arms": lambda: {
        "type": "object",
        "propertyNames": {"pattern": NAME, "maxLength": MAX_NAME_LENGTH},
        "additionalProperties": {"type": "integer", "minimum": 1},
        "minProperties": 2,
        "maxProperties": MAX_ARMS,
        "description": f"Arm names with whole-number weights, two to {MAX_ARMS}; `holdout` "
        "gets no messages from the journey.",
    },
    "Tier._percent": lambda: {
        "type": "string",
        "pattern": r"^\s*\d+(\.\d+)?\s*%$",
        "description": "A share of the scored customers, like 10% (with the %).",
    },
}


def journey_schema() -> dict[str, Any]:
    """The schema of a journey file (``rules/*.yaml`` but policy and segments)."""
    schema = _generate(Journey, "journey", "A journey (docs/journeys.md).")
    _actions_as_one_key_mappings(schema)
    defs = schema["$defs"]
    for internal in ("version", "digest", "source"):  # set when published, never written
        schema["properties"].pop(internal, None)
    defs["Rules"] = {
        "description": "A state name (shorthand for {goto: name}), one rule, or a list of rules.",
        "anyOf": [
            {"type": "string", "description": "The state to go to."},
            {"$ref": "#/$defs/Rule"},
            {"type": "array", "items": {"$ref": "#/$defs/Rule"}},
        ],
    }
    state = defs["State"]["properties"]
    state["on"] = {
        "type": "object",
        "additionalProperties": {"$ref": "#/$defs/Rules"},
    }
    state["after"] = {
        "type": "object",
        "propertyNames": {"pattern": DURATION_PATTERN},
        "additionalProperties": {"$ref": "#/$defs/Rules"},
    }
    defs.pop("Timer", None)
    defs["Enroll"]["properties"]["on"] = {
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}, "minItems": 1},
        ],
    }
    tag = defs[ACTIONS["tag"].__name__]
    tag_name = tag["properties"]["add"]["items"]
    defs[ACTIONS["tag"].__name__] = {
        "description": tag.get("description", ""),
        "anyOf": [
            {**tag_name, "description": "One tag to add."},
            {"type": "array", "items": tag_name, "description": "Tags to add."},
            {k: v for k, v in tag.items() if k != "description"},
        ],
    }
    _cross_field_rules(defs)
    _describe(schema)
    return schema


def _cross_field_rules(defs: dict[str, Any]) -> None:
    """What the actions' after-validators check across fields, where a schema can say it."""
    addressed = [n for n in channel_names() if n not in person_channels()]
    if addressed:  # a channel without a person's address posts to the action's url
        to_url = {"required": ["channel"], "properties": {"channel": {"enum": addressed}}}
        defs[ACTIONS["send"].__name__]["allOf"] = [
            {"if": to_url, "then": {"required": ["url"]}},
            {"if": {"required": ["url"]}, "then": to_url},
        ]
    defs[ACTIONS["offer"].__name__]["oneOf"] = [
        {"required": ["percent_off"], "description": "a percentage off"},
        {"required": ["amount_off"], "description": "an amount off"},
    ]


def policy_schema() -> dict[str, Any]:
    """The schema of ``rules/policy.yaml``."""
    return _generate(Policy, "policy", "The messaging policy (docs/journeys.md).")


def segments_schema() -> dict[str, Any]:
    """The schema of ``rules/segments.yaml``."""
    return _generate(Segments, "segments", "Customer segments: RFM, tiers, named segments.")


def identity_schema() -> dict[str, Any]:
    """The schema of ``rules/identity.yaml``."""
    schema = _generate(
        IdentityRules, "identity", "Identity rules: merging on verified traits (docs/identity.md)."
    )
    _optional_as_written(schema)
    return schema


def test_file_schema() -> dict[str, Any]:
    """The schema of a journey test file (``rules/tests/*.yaml``, ``journeys test``)."""
    schema = _generate(
        TestFileSpec, "journey test", "Tests of one journey (docs/journeys.md, Testing journeys)."
    )
    _optional_as_written(schema)
    return schema


def _optional_as_written(node: Any) -> None:
    """``X | None`` fields as ``X``: nobody writes ``null`` for a key they can leave out, and
    an editor then reports a mistake inside the value at its own key, not as "valid under
    none of" the value and null."""
    if isinstance(node, dict):
        alternatives = node.get("anyOf")
        if isinstance(alternatives, list) and {"type": "null"} in alternatives:
            rest = [a for a in alternatives if a != {"type": "null"}]
            del node["anyOf"]
            node.pop("default", None)
            if len(rest) == 1:
                node.update(rest[0])
            else:
                node["anyOf"] = rest
        for value in node.values():
            _optional_as_written(value)
    elif isinstance(node, list):
        for value in node:
            _optional_as_written(value)


SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "journey": journey_schema,
    "policy": policy_schema,
    "segments": segments_schema,
    "identity": identity_schema,
    "test": test_file_schema,
}


def dumps(schema: dict[str, Any]) -> str:
    """The schema as committed under ``rules/schema/``: stable key order, one newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def _generate(model: type[BaseModel], name: str, description: str) -> dict[str, Any]:
    body = model.model_json_schema(mode="validation", schema_generator=_WrittenForm)
    body.pop("title", None)
    body["description"] = description
    _durations_shown_as_written(body)
    return {"$schema": DRAFT, "title": name, **body}


def _actions_as_one_key_mappings(schema: dict[str, Any]) -> None:
    """One ``Action`` object with every kind as an optional key, exactly one given, in place
    of pydantic's oneOf of one-key models: an editor then completes the kinds, and a mistake
    is reported at its key instead of as "valid under none of the alternatives"."""
    defs = schema["$defs"]
    kinds = {}
    written = {kind: cls for kind, cls in ACTIONS.items() if cls.written}
    for kind, cls in written.items():
        step = defs.pop(f"{cls.__name__}Step")
        kinds[kind] = step["properties"][kind]
    defs["Action"] = {
        "description": "One action as a one-key mapping, e.g. {send: {template: welcome}}.",
        "type": "object",
        "properties": kinds,
        "additionalProperties": False,
        "minProperties": 1,
        "maxProperties": 1,
    }
    steps = {f"#/$defs/{cls.__name__}Step" for cls in written.values()}

    def replace(node: Any) -> Any:
        if isinstance(node, dict):
            refs = {alt.get("$ref") for alt in node.get("oneOf", []) if isinstance(alt, dict)}
            if refs and refs <= steps:
                return {"$ref": "#/$defs/Action"}
            return {k: replace(v) for k, v in node.items()}
        if isinstance(node, list):
            return [replace(v) for v in node]
        return node

    for key, value in list(schema.items()):
        schema[key] = replace(value)


def _durations_shown_as_written(node: Any) -> None:
    """Defaults of duration fields as ops write them (``14d``, not ``1209600``)."""
    if isinstance(node, dict):
        default = node.get("default")
        if node.get("pattern") == DURATION_PATTERN and isinstance(default, int) and default > 0:
            node["default"] = format_duration(default)
        for value in node.values():
            _durations_shown_as_written(value)
    elif isinstance(node, list):
        for value in node:
            _durations_shown_as_written(value)


def _describe(schema: dict[str, Any]) -> None:
    for model, help_texts in _HELP.items():
        node = schema if model == "Journey" else schema["$defs"].get(model, {})
        props = node.get("properties", {})  # none: a def rewritten as anyOf (tag)
        for key, text in help_texts.items():
            if key in props:
                props[key].setdefault("description", text)
