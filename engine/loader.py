"""Load journeys from ``rules/``: parse YAML once, validate everything, report every
problem at once with ``file:line:col``, the dotted path and how to fix it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ._errors import JourneyValidationError, Problem
from ._yaml import Document, parse, read_mapping
from .actions import ACTIONS, FROM_YAML
from .catalog import digest
from .checks import check_journey, unknown_action_message
from .experiment_checks import catalog_problems
from .model import CalendarTimer, Enroll, Goal, Journey, Rule, State
from .names import did_you_mean
from .templates import TemplateInfo, scan

RESERVED = {
    "policy.yaml": "messaging policy",
    "segments.yaml": "segment definitions",
    "identity.yaml": "identity rules",
}
SUFFIXES = (".yaml", ".yml")


def load_rules(
    rules_dir: Path | str = "rules",
    templates_dir: Path | str | None = "templates",
    *,
    paths: list[Path] | None = None,
) -> list[Journey]:
    """Every journey in ``rules_dir`` (or just ``paths``), validated; raises
    :class:`JourneyValidationError` with all problems of all files."""
    rules_dir = Path(rules_dir)
    files = sorted(paths) if paths else _journey_files(rules_dir)
    root = Path.cwd()
    templates: dict[str, TemplateInfo] | None = None
    problems: list[Problem] = []
    if templates_dir is not None:
        templates = scan(Path(templates_dir), root)
        for info in templates.values():
            problems += info.problems
    if not files and not paths:
        problems.append(
            Problem(
                _display(rules_dir, root),
                1,
                1,
                "",
                "no journeys found; add a rules/NAME.yaml with journey: NAME",
            )
        )
    journeys: list[Journey] = []
    seen: dict[str, str] = {}
    for path in files:
        journey, found = load_file(path, templates, display=_display(path, root))
        problems += found
        if journey is None:
            continue
        if journey.journey in seen:
            problems.append(
                Problem(
                    journey.source,
                    1,
                    1,
                    "journey",
                    f"journey '{journey.journey}' is also defined in "
                    f"{seen[journey.journey]}; journey ids must be unique",
                )
            )
            continue
        seen[journey.journey] = journey.source
        journeys.append(journey)
    # experiment.NAME may name a split of any journey: checked only when all are loaded
    problems += catalog_problems(journeys, references=not paths)
    if problems:
        raise JourneyValidationError(problems)
    return journeys


def _journey_files(rules_dir: Path) -> list[Path]:
    if not rules_dir.is_dir():
        return []
    return sorted(
        p
        for p in rules_dir.iterdir()
        if p.suffix in SUFFIXES and p.name not in RESERVED and p.is_file()
    )


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def load_file(
    path: Path, templates: dict[str, TemplateInfo] | None, *, display: str | None = None
) -> tuple[Journey | None, list[Problem]]:
    """One journey file: the journey, or None and its problems."""
    shown = display or str(path)
    doc, problems = parse(path, shown)
    if doc is None:
        return None, problems
    if not isinstance(doc.data, dict):
        return None, [
            Problem(shown, 1, 1, "", "a journey file is a mapping that starts with 'journey: NAME'")
        ]
    if "journey" not in doc.data:
        return None, [
            Problem(
                shown,
                1,
                1,
                "",
                "not a journey: add 'journey: NAME' at the top "
                f"(files named {', '.join(RESERVED)} hold other rules)",
            )
        ]
    try:
        journey = Journey.model_validate(doc.data, context=FROM_YAML)
    except ValidationError as exc:
        problems = [_pydantic_problem(doc, err) for err in exc.errors()]
        return None, problems + _checks_despite(doc, exc, templates, problems)
    journey = journey.model_copy(update={"source": shown})
    problems = check_journey(doc, journey, templates)
    if problems:
        return None, problems
    return journey.model_copy(update={"digest": digest(journey)}), []


def _checks_despite(
    doc: Document,
    exc: ValidationError,
    templates: dict[str, TemplateInfo] | None,
    found: list[Problem],
) -> list[Problem]:
    """The semantic problems of a file that also has shape problems, so that every mistake
    is reported at once: unknown keys are dropped and the rest validated again. When the
    shape problems are of another kind, or the rest still fails, there is nothing more."""
    if any(err["type"] != "extra_forbidden" for err in exc.errors()):
        return []
    pruned = copy.deepcopy(doc.data)
    for err in exc.errors():
        _drop(pruned, list(err["loc"]))
    try:
        journey = Journey.model_validate(pruned, context=FROM_YAML)
    except ValidationError:
        return []
    return [p for p in check_journey(doc, journey, templates) if p not in found]


def _drop(data: Any, loc: list[int | str]) -> None:
    parent = _value_at(data, loc[:-1])
    if isinstance(parent, dict):
        parent.pop(loc[-1], None)


_FIELD_HINTS = {
    "journey": "an id like lifecycle ([a-z][a-z0-9_]*)",
    "enroll": "enroll: {on: [event_name, ...]}",
    "start": "the name of the state new customers start in",
    "states": "a mapping of state names to states",
}


M = TypeVar("M", bound=BaseModel)


def validate_mapping(
    doc: Document, model: type[M], allowed_keys: Callable[[list[int | str]], list[str]]
) -> M:
    """``doc`` (a rules file holding one mapping) as ``model``, or
    :class:`JourneyValidationError` with every problem at file:line:col; ``allowed_keys``
    names the keys a misspelt one could have meant, at its place."""
    try:
        return model.model_validate(doc.data, context=FROM_YAML)
    except ValidationError as exc:
        problems = [_pydantic_problem(doc, e, allowed_keys) for e in exc.errors()]
        raise JourneyValidationError(problems) from None


def load_mapping_file(
    path: Path,
    display_root: Path | None,
    model: type[M],
    allowed_keys: Callable[[list[int | str]], list[str]],
    *,
    shape: str,
    check: Callable[[Document, M], list[Problem]] | None = None,
) -> M:
    """One rules file holding one mapping (policy, segments, identity) as ``model``: its
    defaults when the file is absent; :func:`validate_mapping`, then ``check``'s problems
    (rules pydantic cannot state), raised together as :class:`JourneyValidationError`."""
    doc = read_mapping(path, display_root, shape=shape)
    if doc is None:
        return model()
    found = validate_mapping(doc, model, allowed_keys)
    problems = check(doc, found) if check else []
    if problems:
        raise JourneyValidationError(problems)
    return found


def twice_named(doc: Document, key: str, names: list[str]) -> list[Problem]:
    """A problem at each ``key[i].name`` that an earlier entry already uses."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            problems.append(doc.problem((key, i, "name"), f"'{name}' is used twice"))
        seen.add(name)
    return problems


def _pydantic_problem(
    doc: Document,
    err: ErrorDetails,
    allowed_keys: Callable[[list[int | str]], list[str]] | None = None,
) -> Problem:
    loc = list(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = (allowed_keys or (lambda at: _allowed_keys(doc, at)))(loc)
        name = str(loc[-1])
        hint = did_you_mean(name, allowed)
        text = f"unknown key '{name}'{hint}"
        if allowed:
            text += f"; allowed here: {', '.join(allowed)}"
        return doc.problem(loc, text, key=True)
    if kind == "missing":
        name = str(loc[-1])
        hint = _FIELD_HINTS.get(name, "")
        return doc.problem(
            loc[:-1], f"missing required key '{name}'" + (f": {hint}" if hint else "")
        )
    if kind == "unknown_action":
        value = _value_at(doc.data, loc)
        keys = list(value) if isinstance(value, dict) else []
        return doc.problem(loc, unknown_action_message(keys), key=bool(keys))
    if kind == "string_pattern_mismatch":
        return doc.problem(
            loc,
            f"'{err['input']}' is not a valid name: use lower case letters, "
            "digits and _ , starting with a letter",
        )
    item = (err.get("ctx") or {}).get("item")
    if isinstance(item, int):  # a list's check that names the item at fault ("listed twice")
        return doc.problem([*loc, item], err["msg"])
    if len(loc) >= 2 and loc[-2] == "after" and isinstance(loc[-1], int):
        # an after: timer is its key (14d: rules): point at the key, not at its rules
        return doc.problem(loc, _value_error(err["msg"]), key=True)
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        message = f"{message[0].lower()}{message[1:]} (got {_shown(err['input'])})"
    else:
        message = f"{message[0].lower()}{message[1:]}"
    return doc.problem(loc, message)


def _value_error(message: str) -> str:
    return message.removeprefix("Value error, ")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _value_at(data: Any, loc: list[int | str]) -> Any:
    prev = None
    for seg in loc:
        if seg == prev and isinstance(seg, str):
            continue
        prev = seg
        if isinstance(data, dict) and seg in data:
            data = data[seg]
        elif isinstance(data, list) and isinstance(seg, int) and seg < len(data):
            data = data[seg]
    return data


def _allowed_keys(doc: Document, loc: list[int | str]) -> list[str]:
    """The keys the model at ``loc[:-1]`` accepts, found by walking the model classes."""

    parent = [s for s in loc[:-1] if isinstance(s, str)]
    model: type[BaseModel] = Journey
    if not parent:
        model = Journey
    elif parent[-1] == "enroll":
        model = Enroll
    elif parent[-1] == "goal":
        model = Goal
    elif parent[-1] in ACTIONS:
        model = ACTIONS[parent[-1]]
    elif len(parent) == 2 and parent[0] == "states":
        model = State
    elif len(parent) == 4 and parent[0] == "states" and parent[2] == "at":
        model = CalendarTimer
    elif "on" in parent or "after" in parent:
        model = Rule
    return [
        f.alias or n
        for n, f in model.model_fields.items()
        if n not in ("version", "digest", "source", "label", "seconds", "rules")
    ]
