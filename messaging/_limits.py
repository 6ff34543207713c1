"""Bounds on what one render may build and spend, and the checks that enforce them.

``ImmutableSandboxedEnvironment`` stops templates from reaching Python internals
(``__class__``, ``__globals__``) and from mutating their context, but not from exhausting
the worker: ``{{ 'x' * 10**9 }}`` allocates a gigabyte and a nested loop can spin for hours.
The environment in ``_sandbox`` calls the checks here at every place a template can make
something big or spend time; sizes are estimated *before* the work where the work is what
is dangerous (``'x' * n``, ``s.center(n)``, ``'%9999d' % x``).

Limits are per render (:class:`Budget`, held in a context variable, so concurrent renders
in threads or tasks do not share one); the clock is checked at each guard, so a template
stops within one guarded step of its deadline.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from jinja2.utils import Namespace

from engine.errors import RulesError

MAX_VALUE = 1_000_000  # characters (or items) of any one value a template builds
MAX_OUTPUT = 2_000_000  # characters one render writes, {% set %} captures included
MAX_ITERATIONS = 100_000  # {% for %} iterations per render
MAX_RANGE = 10_000  # numbers one range() may hold
MAX_INT_BITS = 10_000  # an integer's size (about 3,000 digits)
MAX_WIDTH = 1_000  # a field width or precision in a format string


class LimitExceeded(RulesError):
    """A template went past one of the bounds; the message says which and what to do."""


class Budget:
    """What one render may still spend: time, output characters, loop iterations."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.output = 0
        self.iterations = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitExceeded(
                f"rendering took longer than {self.seconds:g} s; make its loops shorter"
            )

    def wrote(self, value: Any) -> None:
        self.output += size(value, MAX_OUTPUT - self.output + 1)
        if self.output > MAX_OUTPUT:
            raise LimitExceeded(
                f"the template writes more than {MAX_OUTPUT:,} characters; make its loops shorter"
            )
        self.tick()

    def iterate(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.iterations += 1
            if self.iterations > MAX_ITERATIONS:
                raise LimitExceeded(
                    f"the template's loops run more than {MAX_ITERATIONS:,} times; make them "
                    "shorter"
                )
            self.tick()
            yield item


_budget: ContextVar[Budget | None] = ContextVar("journeys_template_budget", default=None)


@contextmanager
def budget(seconds: float) -> Iterator[Budget]:
    """Bounds for the renders inside the ``with`` block (this thread or task only)."""
    b = Budget(seconds)
    token = _budget.set(b)
    try:
        yield b
    finally:
        _budget.reset(token)


def current() -> Budget | None:
    """The budget of the render in progress, or None (e.g. while a template compiles)."""
    return _budget.get()


def tick() -> None:
    """Stop the current render if its time is up (no-op outside a render)."""
    b = _budget.get()
    if b is not None:
        b.tick()


def size(value: Any, limit: int = MAX_VALUE + 1) -> int:
    """About how many characters ``str(value)`` has, counting no further than ``limit``
    (so a huge nested value costs little to measure)."""
    total = 0
    todo = [value]
    while todo and total < limit:
        v = todo.pop()
        if isinstance(v, str | bytes):
            total += len(v)
        elif isinstance(v, bool) or v is None:
            total += 5
        elif isinstance(v, int):
            total += v.bit_length() // 3 + 1
        elif isinstance(v, dict):
            total += 2 + 4 * len(v)
            todo.extend(v.keys())
            todo.extend(v.values())
        elif isinstance(v, list | tuple | set | frozenset):
            total += 2 + 2 * len(v)
            todo.extend(v)
        elif isinstance(v, Namespace):
            todo.append(object.__getattribute__(v, "_Namespace__attrs"))
        else:
            total += 16  # numbers, dates, functions: their text is short
    return total


def check(value: Any) -> Any:
    """``value``, unless it is too big to keep building on."""
    if size(value) > MAX_VALUE:
        raise LimitExceeded(
            f"a value in the template grows past {MAX_VALUE:,} characters; build less text"
        )
    return value


_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d*)(?:\.(\d*))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*?:([^{}]*)\}")


_FROM_ARGUMENT = re.compile(
    r"%(?:\([^)]*\))?[-#0 +]*\*|%(?:\([^)]*\))?[-#0 +]*\d*\.\*|\{[^{}]*:[^{}]*\{"
)


def check_format(fmt: Any) -> None:
    """Refuse format strings with huge widths or precisions (``'%999999999d'``), or with
    widths taken from the arguments (``'%*d'``, ``'{0:{1}}'``), which cannot be checked."""
    if not isinstance(fmt, str):
        return
    if _FROM_ARGUMENT.search(fmt):
        raise LimitExceeded(
            "a format width may not come from an argument ('%*d', '{0:{1}}'); write the "
            "number into the format"
        )
    numbers = [n for m in _PERCENT_FIELD.finditer(fmt) for n in m.groups() if n]
    numbers += [n for m in _BRACE_SPEC.finditer(fmt) for n in re.findall(r"\d+", m[1])]
    for n in numbers:
        if len(n) > 6 or int(n) > MAX_WIDTH:
            raise LimitExceeded(
                f"a format width or precision of {n} is too large; at most {MAX_WIDTH}"
            )


def stream(items: Iterator[Any]) -> Iterator[Any]:
    """``items`` (a lazy filter result, e.g. of ``map``), refused once it has made more than
    :data:`MAX_VALUE` characters in all, so that ``|list`` or ``|join`` of it stays small."""
    total = 0
    for item in items:
        total += size(item)
        if total > MAX_VALUE:
            raise LimitExceeded(
                f"a sequence in the template grows past {MAX_VALUE:,} characters; build less"
            )
        tick()
        yield item


def check_binop(op: str, left: Any, right: Any) -> None:
    """Refuse ``*``, ``**`` and ``%`` whose result would be huge, before computing it."""
    if op == "*":
        for seq, n in ((left, right), (right, left)):
            sequence = isinstance(seq, str | bytes | list | tuple)
            if sequence and isinstance(n, int) and n > 0 and size(seq) * n > MAX_VALUE:
                raise LimitExceeded(
                    f"repeating a value {n:,} times makes more than {MAX_VALUE:,} "
                    "characters; repeat it less"
                )
        if isinstance(left, int) and isinstance(right, int):
            _check_bits(left.bit_length() + right.bit_length())
    elif op == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
        _check_bits(max(left.bit_length(), 1) * right)
    elif op == "%" and isinstance(left, str):
        check_format(left)
        check(right)


def _check_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise LimitExceeded(f"a number in the template grows past {MAX_INT_BITS:,} bits")
