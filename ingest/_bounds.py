"""Shape limits of the free-form objects of a message: ``properties``, ``traits``, ``context``.

Whatever we accept must reach the customer's workflow, and Temporal's JSON converter refuses
objects nested ~200 levels deep (pydantic's recursion limit) long after we answered 200; a
long list makes a journey's ``x in list`` condition quadratic. So a message is refused at the
door, with the path of the offending field (keys only, shortened; never a value):

- ``MAX_DEPTH``: objects and lists nested at most 32 levels (the field itself is level 1);
- ``MAX_LIST_ITEMS``: a list holds at most 1,000 items.

The size of each field is bounded by the 32 KB message limit (``ingest.segment``), the
stored profile by ``MAX_TRAITS_BYTES`` and ``MAX_TRAIT_KEYS`` (``ingest.accept``).

Pure and iterative (no recursion), so a hostile nesting cannot exhaust the stack here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 32
MAX_LIST_ITEMS = 1000
MAX_TRAITS_BYTES = 64 * 1024  # the stored profile, merged over every identify
MAX_TRAIT_KEYS = 500  # top-level keys of the stored profile

_SHOWN_KEYS = 4  # path segments shown before "..."
_KEY_CHARS = 40


@dataclass(frozen=True)
class Refusal:
    """Why a message is refused: ``reason`` is the error code, ``message`` the sentence."""

    reason: str
    message: str


def check_fields(where: str, fields: dict[str, Any]) -> Refusal | None:
    """The first field of ``fields`` (name -> value) that breaks a limit, or None."""
    for name, value in fields.items():
        if isinstance(value, dict | list):
            refusal = _check(f"{where}.{name}", value)
            if refusal is not None:
                return refusal
    return None


def _check(root: str, value: dict[str, Any] | list[Any]) -> Refusal | None:
    # (container, depth, path segments from the root): depth-first, one frame per container
    stack: list[tuple[Any, int, tuple[str, ...]]] = [(value, 1, ())]
    while stack:
        node, depth, path = stack.pop()
        if depth > MAX_DEPTH:
            where = _path(root, path)
            return Refusal("too_deep", f"{where}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, list):
            if len(node) > MAX_LIST_ITEMS:
                return Refusal(
                    "too_many_items",
                    f"{_path(root, path)}: a list may hold at most {MAX_LIST_ITEMS} items",
                )
            children: Any = ((f"[{i}]", v) for i, v in enumerate(node))
        else:
            children = ((_key(k), v) for k, v in node.items())
        for segment, child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1, (*path, segment)))
    return None


def _key(key: Any) -> str:
    text = str(key)
    return f".{text[:_KEY_CHARS]}{'…' if len(text) > _KEY_CHARS else ''}"


def _path(root: str, path: tuple[str, ...]) -> str:
    shown = "".join(path[:_SHOWN_KEYS])
    return f"{root}{shown}{'...' if len(path) > _SHOWN_KEYS else ''}"
