"""The Jinja2 environment templates render in: Jinja's immutable sandbox, with every place
a template can build something big or spend time routed through the checks of ``_limits``.

* The operators ``*``, ``**``, ``%`` and ``+`` are intercepted (``call_binop``); every call
  (``call``) and every filter is checked before and after it runs.
* At parse time the template is rewritten so that each ``{{ output }}`` (also inside
  ``{% set %}`` captures), each ``{% for %}`` iterable and each ``~`` concatenation passes
  through a guard filter. The guards take the context (``pass_context``), which keeps Jinja
  from folding them away as constants at compile time.
* ``range()`` is capped, ``lipsum`` is gone, ``namespace()`` attributes are size-checked.
* A block is rendered on its own (``messaging.render``), so the template's top-level
  ``{% set %}`` and ``{% macro %}`` definitions are copied into each block at parse time.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from jinja2 import StrictUndefined, nodes, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, Namespace, missing
from jinja2.visitor import NodeTransformer

from engine.names import did_you_mean

from ._limits import (
    MAX_RANGE,
    MAX_VALUE,
    LimitExceeded,
    check,
    check_binop,
    check_format,
    current,
    size,
    stream,
    tick,
)

COUNT, ITERATE, VALUE = "_journeys_count", "_journeys_iterate", "_journeys_value"


class Undefined(StrictUndefined):
    """A missing value: printing, iterating or computing with it fails, with a message that
    says what was missing and what was there. A truth test is False, so the natural
    ``{% if customer.traits.first_name %}`` works when the trait is absent."""

    __slots__ = ()

    def __bool__(self) -> bool:  # type: ignore[override]
        return False

    @property
    def _undefined_message(self) -> str:
        name, obj = self._undefined_name, self._undefined_obj
        if self._undefined_hint:
            return self._undefined_hint
        if obj is missing:
            return f"'{name}' is undefined"
        if obj is None:
            return f"'{name}' is read from a value that is None; test it first with {{% if %}}"
        if isinstance(obj, dict):
            keys = sorted(str(k) for k in obj)
            there = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
            return (
                f"there is no '{name}'{did_you_mean(str(name), keys)} "
                f"(there is: {there or 'nothing'})"
            )
        return f"a {type(obj).__name__} has no '{name}'"


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise LimitExceeded(
            f"range() of {len(numbers):,} numbers is too long; at most {MAX_RANGE:,}"
        )
    return numbers


class _Namespace(Namespace):
    """``namespace()`` whose attributes are checked: ``{% set ns.x = ns.x ~ ns.x %}`` in a
    loop would otherwise double a string each time round."""

    def __setitem__(self, name: str, value: Any) -> None:
        tick()
        super().__setitem__(name, check(value))


# --- guards the parser inserts ------------------------------------------------------------


@pass_context
def _count(context: Context, value: Any) -> Any:
    b = current()
    if b is not None:
        b.wrote(value)
    return value


@pass_context
def _iterate(context: Context, value: Any) -> Any:
    b = current()
    return value if b is None else b.iterate(value)


@pass_context
def _value(context: Context, value: Any) -> Any:
    return check(value)


def _guard(node: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class _Guards(NodeTransformer):
    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [_guard(child, COUNT) for child in node.nodes]
        return node

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _guard(node.iter, ITERATE)  # type: ignore[arg-type]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [_guard(child, VALUE) for child in node.nodes]
        return _guard(node, VALUE)


# --- filters with a size that depends on an argument ---------------------------------------


def _width(n: Any) -> None:
    if isinstance(n, int) and n > MAX_VALUE:
        raise LimitExceeded(f"a width of {n:,} is too large; at most {MAX_VALUE:,}")


def _grows_to(estimate: int) -> None:
    if estimate > MAX_VALUE:
        raise LimitExceeded(f"this makes about {estimate:,} characters; at most {MAX_VALUE:,}")


def _replaced(s: Any, old: Any, new: Any, count: Any = None) -> None:
    text, old, new = str(s), str(old), str(new)
    n = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        n = min(n, count)
    _grows_to(len(text) + n * len(new))


def _indent(a: dict[str, Any]) -> None:
    width = a["width"]
    per_line = width if isinstance(width, int) else len(str(width))
    text = str(a["s"])
    _grows_to(len(text) + (text.count("\n") + 1) * per_line)


def _join(a: dict[str, Any]) -> None:
    items = a["value"]
    if not isinstance(items, str | list | tuple | dict):
        items = a["value"] = list(items)  # to measure it; the filter then joins the list
    _grows_to(size(items) + len(str(a["d"])) * len(items))


def _wordwrap(a: dict[str, Any]) -> None:
    text, width = str(a["s"]), a["width"]
    lines = len(text) // max(width, 1) + text.count("\n") + 1 if isinstance(width, int) else 1
    _grows_to(len(text) + lines * len(str(a["wrapstring"] or "\n")))


def _count_arg(key: str) -> Callable[[dict[str, Any]], None]:
    def checked(a: dict[str, Any]) -> None:
        if isinstance(a[key], int) and a[key] > MAX_RANGE:
            raise LimitExceeded(f"{key}={a[key]:,} is too large; at most {MAX_RANGE:,}")

    return checked


def _sum(a: dict[str, Any]) -> None:
    if not isinstance(a["start"], int | float):
        raise LimitExceeded("sum adds numbers; join text with |join")


_FILTER_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "center": lambda a: _width(a["width"]),
    "indent": _indent,
    "format": lambda a: check_format(a["value"]),
    "replace": lambda a: _replaced(a["s"], a["old"], a["new"], a["count"]),
    "join": _join,
    "batch": _count_arg("linecount"),
    "slice": _count_arg("slices"),
    "wordwrap": _wordwrap,
    "sum": _sum,
}


def _guarded(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    special = _FILTER_CHECKS.get(name)
    signature = inspect.signature(f) if special else None

    @functools.wraps(f)  # keeps jinja_pass_arg: the filter gets its context/environment
    def guarded(*args: Any, **kwargs: Any) -> Any:
        tick()
        for arg in (*args, *kwargs.values()):
            check(arg)
        if special is not None and signature is not None:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            special(bound.arguments)
            args, kwargs = bound.args, bound.kwargs
        result = f(*args, **kwargs)
        return stream(result) if isinstance(result, Iterator) else check(result)

    return guarded


def _check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse a call whose result would be huge; returns the arguments to call with."""
    for arg in (*args, *kwargs.values()):
        check(arg)
    name = getattr(obj, "__name__", None)
    owner = getattr(obj, "__self__", None)
    if isinstance(owner, str):
        if name in ("center", "ljust", "rjust", "zfill"):
            _width(args[0] if args else kwargs.get("width"))
        elif name == "expandtabs":
            tabsize = args[0] if args else kwargs.get("tabsize", 8)
            if isinstance(tabsize, int):
                _grows_to(len(owner) + owner.count("\t") * tabsize)
        elif name == "replace" and len(args) >= 2:
            _replaced(owner, args[0], args[1], args[2] if len(args) > 2 else kwargs.get("count"))
        elif name == "join" and args:
            items = list(args[0])
            _grows_to(size(items) + len(owner) * len(items))
            args = (items, *args[1:])
    if name == "strftime" and args:
        check_format(args[0])
    return args


class Sandbox(ImmutableSandboxedEnvironment):
    """The environment of every template render; see the module docstring."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(autoescape=autoescape, undefined=Undefined, cache_size=0)
        builtins = {"range": _range, "dict": dict, "cycler": Cycler, "joiner": Joiner}
        self.globals = {**builtins, "namespace": _Namespace}
        # engine.templates.GLOBALS names these for `journeys validate`:
        # tests/test_templates.py keeps the two in step
        self.filters = {name: _guarded(name, f) for name, f in self.filters.items()}
        self.filters.update({COUNT: _count, ITERATE: _iterate, VALUE: _value})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        definitions = [
            n for n in tree.body if isinstance(n, nodes.Assign | nodes.AssignBlock | nodes.Macro)
        ]
        if definitions:
            for block in list(tree.find_all(nodes.Block)):
                block.body[:0] = copy.deepcopy(definitions, {id(self): self})
        guarded = _Guards().visit(tree)
        assert isinstance(guarded, nodes.Template)
        guarded.set_environment(self)
        return guarded

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        tick()
        check_binop(operator, left, right)
        return check(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        tick()
        args = _check_call(obj, args, kwargs)
        return check(super().call(context, obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            check_format(value.__self__)
        return wrapped
