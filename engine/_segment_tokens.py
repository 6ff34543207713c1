"""The words of segment rules: which variables exist, and the tokenizer.

``engine._segment_sql`` parses the tokens into SQL; this module only splits a rule into
numbers, strings, names and operators, refusing what the segment subset never has (a
stray character, an unsigned int, a number out of range) with its column.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import RulesError

INTS = ("r", "f", "m", "recency_days", "orders", "first_order_days")
NUMBERS = (*INTS, "revenue")
NULLABLE = ("recency_days", "first_order_days")  # a customer without orders has neither
VARIABLES = (*NUMBERS, "traits")
SUPPORTED = (
    "segments can use numbers, strings, true/false, "
    + ", ".join(VARIABLES)
    + ", comparisons, && || !, + - * /, parentheses, x in [...] and has(traits.x)"
)

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\.\d+|\d+)(?P<suffix>[uU]?)"
    r"|(?P<str>'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\")"
    r"|(?P<name>[A-Za-z_]\w*)"
    r"|(?P<op>&&|\|\||==|!=|<=|>=|[<>!+\-*/%()\[\],.?:{}]))"
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}


class Unsupported(RulesError):
    """A construct outside the segment subset; ``col`` is 1-based in the expression."""

    def __init__(self, col: int, message: str) -> None:
        super().__init__(message)
        self.col = col
        self.message = message


@dataclass
class Token:
    kind: str
    text: str
    col: int
    value: Any = None


def tokens(source: str) -> list[Token]:
    out: list[Token] = []
    pos = 0
    while pos < len(source):
        if not source[pos:].strip():
            break
        m = _TOKEN.match(source, pos)
        if not m or m.end() == pos:
            col = pos + len(source[pos:]) - len(source[pos:].lstrip()) + 1
            raise Unsupported(col, f"'{source[col - 1]}' is not understood here; {SUPPORTED}")
        col = m.start(m.lastgroup or 0) + 1
        if m.group("num") is not None:
            col = m.start("num") + 1
            if m.group("suffix"):
                raise Unsupported(col, f"unsigned ints are not supported; {SUPPORTED}")
            raw = m.group("num")
            value: Any = int(raw) if raw.isdigit() else float(raw)
            if not math.isfinite(value) or abs(value) >= 2**63:
                raise Unsupported(col, f"{raw} is out of range")
            out.append(Token("int" if raw.isdigit() else "double", raw, col, value))
        elif m.group("str") is not None:
            raw = m.group("str")
            value = re.sub(r"\\(.)", lambda e: _ESCAPES.get(e.group(1), e.group(1)), raw[1:-1])
            out.append(Token("string", raw, col, value))
        elif m.group("name") is not None:
            out.append(Token("name", m.group("name"), col))
        else:
            out.append(Token("op", m.group("op"), col))
        pos = m.end()
    out.append(Token("end", "", len(source) + 1))
    return out
