"""Single blocks of a template, rendered in the messages' sandbox for a page rather than a
message: the survey page reads its localised wording (``question``, ``submit``, ...) from
the survey's template this way. Bounded like a message (``_sandbox``, ``_limits``); a block
that fails is left out, so a page never breaks on ops' template."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import jinja2

from engine.templates import MAX_TEMPLATE_BYTES, SUFFIX

from ._limits import budget
from ._sandbox import Sandbox

__all__ = ["render_blocks"]
log = logging.getLogger(__name__)


def render_blocks(
    templates_dir: Path,
    name: str,
    blocks: list[str],
    context: dict[str, Any],
    *,
    max_seconds: float = 0.5,
) -> dict[str, str]:
    """The text of each of ``blocks`` that template ``name`` defines and renders without
    error, stripped. Raises ``OSError``, ``UnicodeDecodeError`` or
    ``jinja2.TemplateError`` when the template itself cannot be read or compiled."""
    template = _template(Path(templates_dir), name)
    out: dict[str, str] = {}
    with budget(max_seconds):
        for block_name in blocks:
            block = template.blocks.get(block_name)
            if block is None:
                continue
            try:
                out[block_name] = "".join(block(template.new_context(dict(context)))).strip()
            except Exception as exc:  # ops' template: a mistake must not break the page
                log.warning("block %s of template %s failed: %s", block_name, name, exc)
    return out


@functools.cache
def _sandbox() -> Sandbox:
    return Sandbox(autoescape=False)


@functools.lru_cache(maxsize=64)
def _compiled(path: Path, stamp: tuple[int, int]) -> jinja2.Template:
    return _sandbox().from_string(path.read_text(encoding="utf-8"))


def _template(templates_dir: Path, name: str) -> jinja2.Template:
    path = templates_dir / f"{name}{SUFFIX}"
    stat = path.stat()
    if stat.st_size > MAX_TEMPLATE_BYTES:
        raise OSError(f"{path} is larger than {MAX_TEMPLATE_BYTES} bytes")
    return _compiled(path, (stat.st_mtime_ns, stat.st_size))
