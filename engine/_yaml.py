"""YAML with positions: ruamel keeps line and column of every key and item, so errors
found later (by pydantic or by our checks) can point at ``file:line:col``.

Anchors (``&name``) and aliases (``*name``) are refused before the document is built: an
alias is a copy, so nine levels of ten aliases each turn a 381-byte file into a billion
nodes (6.3 s per level of copying, the API and worker stuck at start). Scanning the events
first is linear in the file's size, so even such a file is refused in milliseconds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import AliasEvent, NodeEvent

from ._errors import Problem
from .names import normalize_event_name

Loc = Sequence[int | str]
MAX_SHOWN_ANCHORS = 5  # a bomb has hundreds of aliases: the first few say enough


class Document:
    """One parsed YAML file: plain data for validation, the ruamel tree for positions."""

    def __init__(self, path: str, tree: Any, text: str = "") -> None:
        self.path = path
        self.tree = tree
        self.lines = text.splitlines()
        self.data = _plain(tree)

    def locate(self, loc: Loc, *, key: bool = False) -> tuple[int, int, str]:
        """``(line, col, dotted path)`` of ``loc`` (1-based), as close as the tree allows.

        ``key=True`` points at the last key rather than its value (for unknown keys)."""
        node = self.tree
        line, col = 1, 1
        if isinstance(node, CommentedMap | CommentedSeq):
            line, col = node.lc.line + 1, node.lc.col + 1
        parts: list[str] = []
        prev: int | str | None = None
        segs = list(loc)
        for i, seg in enumerate(segs):
            if seg == prev and isinstance(seg, str):
                continue  # pydantic repeats a tagged union's tag: ('send', 'send', ...)
            prev = seg
            last = i == len(segs) - 1
            if isinstance(node, CommentedMap):
                if isinstance(seg, int) and (not parts or parts[-1] != "after"):
                    continue  # a lone rule mapping validated as a one-item list
                found = _find_key(node, seg)
                if found is None:
                    continue
                parts.append(str(found))
                kl, kc = node.lc.key(found)
                vl, vc = node.lc.value(found)
                value = node[found]
                collection = isinstance(value, CommentedMap | CommentedSeq)
                line, col = (kl + 1, kc + 1) if (last and key) or collection else (vl + 1, vc + 1)
                node = value
            elif isinstance(node, CommentedSeq) and isinstance(seg, int) and seg < len(node):
                parts.append(f"[{seg}]")
                il, ic = node.lc.item(seg)
                line, col = il + 1, ic + 1
                node = node[seg]
        path = ".".join(parts).replace(".[", "[")
        return line, col, path

    def problem(self, loc: Loc, message: str, *, key: bool = False, col_offset: int = 0) -> Problem:
        line, col, path = self.locate(loc, key=key)
        return Problem(self.path, line, col + col_offset, path, message)


def _find_key(node: CommentedMap, seg: int | str) -> Any:
    if isinstance(seg, int):
        keys = list(node.keys())
        return keys[seg] if 0 <= seg < len(keys) else None
    if seg in node:
        return seg
    for k in node:
        if isinstance(k, str) and normalize_event_name(k) == seg:
            return k
    for k in node:  # durations parsed from keys: 14d
        if str(k) == str(seg):
            return k
    return None


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {(k if isinstance(k, str) else str(k)): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def parse(path: Path, display: str) -> tuple[Document | None, list[Problem]]:
    """Parse one YAML file; a syntax error becomes a Problem at its position."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(display, 1, 1, "", f"cannot read the file: {exc}")]
    try:
        anchors = _anchors(yaml, text, display)
        if anchors:
            return None, anchors
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        context = str(exc.context or "")
        if context and exc.context_mark is not None and exc.problem_mark is not None:
            started = exc.context_mark
            context += f" (started at line {started.line + 1}, column {started.column + 1})"
        what = ": ".join(x for x in (context, str(exc.problem or "")) if x)
        return None, [Problem(display, line, col, "", f"YAML syntax error: {what}")]
    except Exception as exc:  # ruamel raises a few unmarked errors too
        return None, [Problem(display, 1, 1, "", f"YAML error: {exc}")]
    return Document(display, tree, text), []


def _anchors(yaml: YAML, text: str, display: str) -> list[Problem]:
    """Every anchor and alias in ``text`` (the first few), as problems at their position."""
    found: list[Problem] = []
    count = 0
    for event in yaml.parse(text):
        if isinstance(event, AliasEvent):
            what = f"alias '*{event.anchor}'"
        elif isinstance(event, NodeEvent) and event.anchor:
            what = f"anchor '&{event.anchor}'"
        else:
            continue
        count += 1
        if count <= MAX_SHOWN_ANCHORS:
            mark = event.start_mark
            found.append(
                Problem(
                    display,
                    mark.line + 1,
                    mark.column + 1,
                    "",
                    f"YAML {what}: anchors and aliases are not allowed in rules files; "
                    "write the value out where it is used",
                )
            )
    if count > MAX_SHOWN_ANCHORS:
        last = found[-1]
        found[-1] = replace(
            last, message=f"{last.message} ({count - MAX_SHOWN_ANCHORS} more in this file)"
        )
    return found


def read_mapping(path: Path, display_root: Path | None, *, shape: str) -> Document | None:
    """A rules file that holds one mapping (``policy.yaml``, ``segments.yaml``): its
    document, or None when the file is missing or empty (the defaults apply). Raises
    :class:`JourneyValidationError` for YAML errors and for anything but a mapping
    (``shape`` says what it should be)."""
    from ._errors import JourneyValidationError

    if not path.is_file():
        return None
    try:
        shown = str(path.relative_to(display_root or Path.cwd()))
    except ValueError:
        shown = str(path)
    doc, problems = parse(path, shown)
    if doc is None:
        raise JourneyValidationError(problems)
    if doc.data is None:
        return None
    if not isinstance(doc.data, dict):
        raise JourneyValidationError([Problem(shown, 1, 1, "", f"{path.name} is {shape}")])
    return doc
