"""Characters, numbers and nesting that JSON allows but our stores do not, refused with a
400 before anything is stored.

What Python's ``json`` accepts and PostgreSQL, UTF-8 or Temporal's converter then refuse
(each used to be a 500):

* ``\\u0000``: PostgreSQL ``text`` and ``jsonb`` cannot hold NUL;
* a lone surrogate (``\\ud800``): not encodable as UTF-8;
* ``NaN``, ``Infinity``, ``1e400`` (which parses as infinity): not JSON for ``jsonb`` nor
  for Temporal's JSON converter;
* integers of more than 308 digits: they fit no double (RFC 8259 says interoperable
  numbers do), and past 4,300 digits Python refuses to parse them with a ``ValueError``;
* nesting about 1,000 deep: ``json.loads`` raises ``RecursionError``.

Refusals name the field (``batch[3].properties.note``), never its value: it may hold
personal data."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from ._errors import IngestError

MAX_INT_DIGITS = 308
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")
_SAFE_KEY = re.compile(r"[A-Za-z_$@][A-Za-z0-9_$@-]{0,63}")


def _constant(name: str) -> Any:
    raise IngestError(
        400, "bad_number", f"the body holds {name}, which JSON does not allow; send a number"
    )


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise IngestError(400, "bad_number", "a number in the body is too large for a 64-bit float")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise IngestError(
            400,
            "bad_number",
            f"an integer in the body has more than {MAX_INT_DIGITS} digits; send a string",
        )
    return int(text)


def loads(body: bytes | str) -> Any:
    """``json.loads`` that refuses NaN, infinities, huge integers and runaway nesting with
    an :class:`IngestError`; malformed JSON still raises ``json.JSONDecodeError`` (or
    ``UnicodeDecodeError`` for bytes that are not UTF-8) for the caller to word."""
    try:
        return json.loads(body, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except RecursionError:
        raise IngestError(400, "too_deep", "the JSON is nested too deeply") from None


def _step(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    # a key is submitted data too: shown only when it looks like a field name
    shown = key if _SAFE_KEY.fullmatch(key) else "<key>"
    return f"{path}.{shown}" if path else shown


def field_path(parts: Iterable[str | int]) -> str:
    """``("body", "items", 3)`` as ``body.items[3]``, keys that do not look like field
    names shown as ``<key>``."""
    path = ""
    for part in parts:
        path = _step(path, part)
    return path


def _refuse(path: str, text: str, *, key: bool) -> IngestError:
    what = f"{path or 'the body'} has a key that" if key else (path or "the body")
    problem = (
        "contains a NUL character (\\u0000); remove it"
        if "\x00" in text
        else "is not valid Unicode (a lone surrogate); send UTF-8 text"
    )
    return IngestError(400, "bad_text", f"{what} {problem}")


def check_text(value: Any, where: str) -> None:
    """Refuse any string, key or value, anywhere in ``value`` that PostgreSQL or UTF-8
    cannot hold. Iterative, so a deeply nested value cannot exhaust the stack."""
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if _BAD_CHAR.search(item):
                raise _refuse(path, item, key=False)
        elif isinstance(item, dict):
            for k, v in item.items():
                if isinstance(k, str) and _BAD_CHAR.search(k):
                    raise _refuse(path, k, key=True)
                stack.append((_step(path, k), v))
        elif isinstance(item, list):
            stack.extend((_step(path, i), v) for i, v in enumerate(item))
