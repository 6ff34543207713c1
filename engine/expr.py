"""CEL expressions: compiled once, checked when a journey is loaded, evaluated by the core.

We use the Rust-backed ``common-expression-language`` package (``import cel``): compiled
programs evaluate in ~1-20 µs against ~290 µs for the interpreted ``cel-python``
(``bench/cel_bench.py`` prints the comparison). It has no type checker and no cost limit,
so this module adds both, conservatively:

* size: at most ``MAX_SOURCE`` characters and ``MAX_COMPREHENSIONS`` comprehension macros
  (``all``, ``exists``, ``exists_one``, ``map``, ``filter``), never nested (found by a
  tokenizer, ``engine._cel_tokens``, so comments and strings cannot hide them);
* cost: an expression with a comprehension is evaluated only when the data it reads holds
  at most ``MAX_COMPREHENSION_VALUES`` values (its cost can grow with their square), so no
  condition holds a workflow task near Temporal's 2 s deadlock detector;
* names: root variables must be one of ``event ctx customer state now experiment``;
  ``ctx.x`` must be a declared context variable (or ``ctx.arm``, the run's experiment
  arm); functions must exist in the CEL runtime;
* types: a trial evaluation against the journey's initial context and an empty event
  catches type errors among context values, and checks that conditions give a bool and
  assignments keep the variable's type. Values that only exist at run time (event
  properties, traits) cannot be checked before they arrive: a failure then is recorded on
  the customer (see ``engine.machine``), never a crash.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import cel

from ._cel_tokens import code_only, comprehensions
from .errors import RulesError
from .names import did_you_mean

ROOTS = ("event", "ctx", "customer", "state", "now")
# roots accepted but not listed in "expressions can use ...": that sentence is pinned by
# golden files, and ``experiment`` only means something in journeys with a split
QUIET_ROOTS = ("experiment",)
RUN_ARM = "arm"  # ctx.arm: the run's experiment arm ("" outside experiments), never declared
MAX_SOURCE = 1000
MAX_COMPREHENSIONS = 2
# list items and map entries an expression with a comprehension may read: at most ~0.05 s
# of the worst case (a map/filter, or a lookup in a list of the data, per element)
MAX_COMPREHENSION_VALUES = 1000
_CTX_FIELD = re.compile(r"(?<![\w.])ctx\s*\.\s*([A-Za-z_]\w*)")
_SYNTAX_POS = re.compile(r"<input>:(\d+):(\d+): (?:Syntax error: )?(.*)")
_UNDEFINED = re.compile(r"Undefined variable or function: '([^']+)'")
_CANDIDATE_FUNCTIONS = [
    "size",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "timestamp",
    "duration",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "type",
    "dyn",
    "getFullYear",
    "getMonth",
    "getDayOfWeek",
    "getDayOfMonth",
    "getDate",
    "getDayOfYear",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
]
TRIAL_NOW = datetime(2026, 1, 1, tzinfo=UTC)


class ExpressionError(RulesError):
    """A CEL expression failed to evaluate; the message is for the admin."""


@functools.lru_cache(maxsize=4096)
def program(source: str) -> cel.Program:
    """The compiled program for ``source`` (compiling is pure, so a process cache is safe)."""
    return cel.compile(source)


@functools.cache
def known_functions() -> frozenset[str]:
    """Functions this CEL runtime really has. The library publishes no list and reports a
    wrong arity as "undefined", so each candidate is tried on sample arguments once."""
    samples = ("1", "1.5", "'a'", "now", "[1]", "{'a': 1}", "duration('1h')")
    found = set()
    for name in _CANDIDATE_FUNCTIONS:
        for sample in samples:
            forms = (f"{name}({sample})", f"{sample}.{name}()", f"{sample}.{name}({sample})")
            for form in forms:
                try:
                    cel.evaluate(form, {"now": TRIAL_NOW})
                except Exception as exc:
                    if "Undefined" in str(exc):
                        continue
                found.add(name)
                break
            if name in found:
                break
    return frozenset(found)


@functools.lru_cache(maxsize=4096)
def _iterated_roots(source: str) -> tuple[str, ...]:
    """The roots an expression with a comprehension reads (none without one)."""
    if not comprehensions(source):
        return ()
    return tuple(sorted(set(program(source).variables()) & {*ROOTS, *QUIET_ROOTS}))


def _values_over(values: list[Any], limit: int) -> bool:
    """Whether ``values`` hold more than ``limit`` list items and map entries in all; stops
    counting past the limit, so the check costs at most ``limit`` steps."""
    count, todo = 0, list(values)
    while todo:
        item = todo.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        count += len(children)
        if count > limit:
            return True
        todo.extend(c for c in children if isinstance(c, Mapping | list | tuple))
    return False


def _check_cost(source: str, env: Mapping[str, Any]) -> None:
    """Refuse an expression whose comprehensions would run over too much data.

    The library has no cost limit, and a comprehension over n values costs up to n²: each
    ``map``/``filter`` step copies the list built so far, and each reference to a list of
    the data inside the body (``x in event.properties.items``) converts that list again.
    16,000 values took 10.5 s, past the 2 s a workflow task may run before Temporal's
    deadlock detector fails it (and then fails it again on every retry). Over
    ``MAX_COMPREHENSION_VALUES`` the expression is not evaluated: the customer gets a
    problem, the rule does not apply, and the workflow goes on."""
    roots = _iterated_roots(source)
    if roots and _values_over([env.get(r) for r in roots], MAX_COMPREHENSION_VALUES):
        raise ExpressionError(
            f"'{source}': not evaluated: its comprehension would run over more than "
            f"{MAX_COMPREHENSION_VALUES} values of {', '.join(roots)} (list items and map "
            "entries), which could hold up the customer's workflow; keep the lists it "
            "reads shorter or test them without all/exists/map/filter"
        )


@functools.lru_cache(maxsize=4096)
def _names(source: str) -> frozenset[str]:
    """Every word of ``source`` (strings too): a superset of the variables it can read."""
    return frozenset(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", source))


def evaluate(source: str, env: Mapping[str, Any] | cel.Context) -> Any:
    """Evaluate ``source``; every failure becomes :class:`ExpressionError` with a sentence.

    An expression with a comprehension is refused (an :class:`ExpressionError` too) when
    the data it reads holds more than ``MAX_COMPREHENSION_VALUES`` values. CEL gets only the
    variables ``source`` names: it converts every value it is given (~1 µs each)."""
    if isinstance(env, Mapping):
        _check_cost(source, env)
        names = _names(source)
        env = {k: v for k, v in env.items() if k in names}
    try:
        return program(source).execute(env)
    except KeyError as exc:
        raise ExpressionError(
            f"'{source}': no field {exc} (guard it with has(...) or a ternary)"
        ) from None
    except TypeError as exc:
        raise ExpressionError(f"'{source}': type error: {_first_sentence(exc)}") from None
    except ZeroDivisionError:
        raise ExpressionError(f"'{source}': division by zero") from None
    except Exception as exc:
        message = _first_sentence(exc)
        m = _UNDEFINED.search(message)
        if m and m.group(1) in known_functions():
            # the library says "undefined" when a function gets arguments it cannot take
            message = (
                f"{m.group(1)}() cannot take these arguments (is one of them null "
                "or of another type?)"
            )
        raise ExpressionError(f"'{source}': {message}") from None


def _first_sentence(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split(". ")[0].rstrip(".")


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


def fits(declared: Any, value: Any) -> bool:
    """Whether ``value`` may be stored in a context variable whose initial value is
    ``declared``: same JSON kind, an int where a double is declared, anything where null is."""
    want, got = _json_kind(declared), _json_kind(value)
    return want == "null" or want == got or (want == "double" and got == "int")


def check(
    source: str,
    *,
    context: Mapping[str, Any],
    state: str,
    event_name: str | None,
    want: str,
    target: str | None = None,
) -> list[tuple[int, str]]:
    """Problems of one expression as ``(column_in_source, message)`` pairs.

    ``want`` is ``"bool"`` for conditions and ``"value"`` for assignments; ``target`` is the
    context variable an assignment writes, whose initial value fixes its type."""
    if not isinstance(source, str) or not source.strip():
        return [(1, "expected a CEL expression in quotes")]
    if len(source) > MAX_SOURCE:
        return [(1, f"expression is {len(source)} characters; keep it under {MAX_SOURCE}")]
    try:
        prog = program(source)
    except ValueError as exc:
        m = _SYNTAX_POS.search(str(exc))
        if m:
            return [(int(m.group(2)), f"CEL syntax error: {m.group(3).strip()}")]
        return [(1, f"CEL syntax error: {_first_sentence(exc)}")]
    problems = _check_size(source)
    code = code_only(source)  # names inside strings and comments are not names
    bound = {c.var for c in comprehensions(source)}
    for var in prog.variables():
        if var not in ROOTS and var not in QUIET_ROOTS and var not in bound:
            problems.append(
                (
                    _column(code, var),
                    f"unknown variable '{var}'{did_you_mean(var, ROOTS)}; "
                    f"expressions can use {', '.join(ROOTS)}",
                )
            )
    for fn in prog.functions():
        if fn[:1] in ("_", "@", "!", "-") or fn in known_functions():
            continue
        problems.append(
            (
                _column(code, fn),
                f"unknown function '{fn}'{did_you_mean(fn, known_functions())}",
            )
        )
    for m in _CTX_FIELD.finditer(code):
        if m.group(1) not in context and m.group(1) != RUN_ARM:
            names = sorted(context)
            problems.append(
                (
                    m.start(1) + 1,
                    f"unknown context variable 'ctx.{m.group(1)}'"
                    f"{did_you_mean(m.group(1), names)}; declare it under context: "
                    f"(declared: {', '.join(names) or 'none'})",
                )
            )
    if problems:
        return problems
    return _trial(
        prog, source, context=context, state=state, event_name=event_name, want=want, target=target
    )


def _column(code: str, name: str) -> int:
    """1-based column of ``name`` as a whole identifier in ``code``."""
    m = re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", code) or re.search(
        rf"(?<!\w){re.escape(name)}(?!\w)", code
    )
    return m.start() + 1 if m else 1


def _check_size(source: str) -> list[tuple[int, str]]:
    found = comprehensions(source)
    for c in found:
        if c.depth > 0:
            return [
                (
                    c.start + 1,
                    "nested comprehensions are not allowed (their cost "
                    "grows with the square of the input); use two rules",
                )
            ]
    if len(found) > MAX_COMPREHENSIONS:
        return [
            (
                found[MAX_COMPREHENSIONS].start + 1,
                f"at most {MAX_COMPREHENSIONS} comprehensions (all/exists/map/filter) "
                "per expression; split it into several rules",
            )
        ]
    return []


def _trial(
    prog: cel.Program,
    source: str,
    *,
    context: Mapping[str, Any],
    state: str,
    event_name: str | None,
    want: str,
    target: str | None,
) -> list[tuple[int, str]]:
    env = {
        "event": {
            "name": event_name or "",
            "id": "trial",
            "timestamp": TRIAL_NOW,
            "properties": {},
        },
        "ctx": {RUN_ARM: "", **context},
        "customer": {
            "id": "trial",
            "traits": {},
            "tier": "",
            "segment": "",
            "rfm": {"r": 0, "f": 0, "m": 0},
            "ltv": 0.0,
            "p_alive": 1.0,
            "churn_risk": 0.0,
            "predicted_clv": 0.0,
            "tags": [],
        },
        "state": state,
        "now": TRIAL_NOW,
        "experiment": {},  # which names exist is known across journeys (engine.loader)
    }
    dynamic = bool({"event", "customer"} & set(prog.variables())) or any(
        v is None for v in context.values()
    )
    try:
        result = prog.execute(env)
    except (KeyError, ZeroDivisionError):
        return []  # depends on data that only exists at run time
    except TypeError as exc:
        if dynamic:
            return []
        return [
            (1, f"type error: {_first_sentence(exc)} (convert with int(), double() or string())")
        ]
    except Exception as exc:
        if "Undefined" in str(exc):
            return [(1, _first_sentence(exc))]
        return []
    if want == "bool" and not isinstance(result, bool):
        return [(1, f"a condition must be true or false, this gives {_json_kind(result)}")]
    if target is not None and target in context and not fits(context[target], result):
        return [
            (
                1,
                f"ctx.{target} starts as {_json_kind(context[target])} but this gives "
                f"{_json_kind(result)}; convert it (e.g. double(...), int(...))",
            )
        ]
    if want == "value" and _json_kind(result) not in (
        "null",
        "bool",
        "int",
        "double",
        "string",
        "list",
        "map",
    ):
        return [
            (
                1,
                f"the result is a {_json_kind(result)}, which a context cannot hold; "
                "store string(...) or an int instead",
            )
        ]
    return []
