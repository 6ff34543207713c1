"""Rendering ops' message templates (``templates/NAME.j2``) for one customer.

A template's parts are Jinja2 blocks (see ``engine.templates``); which blocks a channel
renders, and how, its description says (``engine.channel_kinds``: email renders ``subject``,
``text`` and ``html``, sms ``sms``, webhook a JSON object). Each part renders on its own in a
bounded sandbox (``_sandbox``, ``_limits``): no Python internals, no changes to the
context, at most ``max_seconds`` per message, bounded output. Only an ``html`` part is
HTML-escaped; a JSON part (webhook) should write values with ``|tojson``. A missing value is an
error, not an empty string, except in truth tests: ``{% if customer.traits.first_name %}``.

The context the send activities pass (``engine.templates.CONTEXT`` lists the same names,
and ``journeys validate`` checks templates against it):

=================  ======================================================================
``customer``       dict: ``id``, ``traits`` (the full profile from PostgreSQL), ``tier``,
                   ``segment``
``journey``        dict: ``name``, ``version``
``state``          str: the customer's state in that journey
``ctx``            dict: the journey run's context: (its declared variables)
``event``          dict or None: ``name``, ``properties``, ``timestamp`` of the event that
                   led here (None after a timer)
``unsubscribe_url``  str: the customer's opt-out link (None in transactional messages)
``manager``        dict or None: ``name``, ``email`` of the customer's account manager
``offer``          ``offer`` actions only, dict: ``code``, ``percent_off``, ``amount_off``,
                   ``expires_at`` (datetime), ``discount`` (text such as "15%")
``survey``         ``survey`` actions only, dict: ``url``, ``kind``, ``expires_at``
=================  ======================================================================

Dicts read like objects: ``customer.traits.first_name``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2

from engine import channel_kinds
from engine.channel_kinds import ChannelKind, Part
from engine.errors import RulesError
from engine.templates import MAX_TEMPLATE_BYTES, SUFFIX

from ._limits import LimitExceeded, budget
from ._sandbox import Sandbox

__all__ = ["Rendered", "Renderer", "TemplateError"]

_NAME = re.compile(r"[a-z][a-z0-9_]*")


class TemplateError(RulesError):
    """A template cannot be rendered: the message says which template, which line if known,
    and what to fix. Retrying does not help."""


@dataclass(frozen=True)
class Rendered:
    """One message, ready for its channel: its parts by name (a JSON part is a dict). A
    part reads as an attribute too, None when the channel does not use it or the template
    has no block for it: ``rendered.subject``, ``rendered.sms``."""

    parts: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self.parts.get(name)


@dataclass
class _Compiled:
    stamp: tuple[int, int]  # (mtime_ns, size) of the file it came from
    source: str
    path: str
    plain: jinja2.Template
    html: jinja2.Template | None = None  # compiled again with autoescape, when first needed


class Renderer:
    """Renders the templates of one directory; compiled templates are cached until their
    file changes. Safe to share between threads."""

    def __init__(self, directory: Path, *, max_seconds: float = 2.0) -> None:
        self.directory = Path(directory)
        self.max_seconds = max_seconds
        self._plain = Sandbox(autoescape=False)
        self._escaped = Sandbox(autoescape=True)
        self._cache: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def render(self, name: str, channel: str | ChannelKind, context: dict[str, Any]) -> Rendered:
        """The message ``name`` renders for ``channel`` (a registered channel's name or its
        description) with ``context``; raises :class:`TemplateError` (and renders nothing)
        when any needed part fails."""
        kind = channel if isinstance(channel, ChannelKind) else _kind(channel)
        compiled = self._load(name)
        blocks = compiled.plain.blocks
        if any(not set(group) & set(blocks) for group in kind.needs):
            raise TemplateError(
                f"template {compiled.path} needs {kind.needs_text} to be sent by {kind.name}"
            )
        parts: dict[str, Any] = {}
        with budget(self.max_seconds):
            for part in kind.parts:
                block = next((b for b in part.blocks if b in blocks), None)
                if block is not None:
                    parts[part.name] = self._shaped(compiled, part, block, context)
        return Rendered(parts)

    def _shaped(self, compiled: _Compiled, part: Part, block: str, context: dict[str, Any]) -> Any:
        """``block`` rendered as ``part`` of the message (see ``engine.channel_kinds.Part``)."""
        text = self._part(
            compiled, block, context, limit=part.limit, label=part.name, escaped=part.form == "html"
        )
        if part.form == "line":
            text = " ".join(text.split())
            if not text:
                raise TemplateError(f"template {compiled.path}: the {part.name} is empty")
        elif part.form == "stripped":
            text = text.strip()
        elif part.form == "json":
            if block != part.blocks[0]:  # a fallback block: its text, as a JSON object
                return {block: text}
            return self._json(compiled, part.name, text)
        return text

    def _json(self, compiled: _Compiled, block: str, body: str) -> dict[str, Any]:
        try:
            data = json.loads(body)
        except json.JSONDecodeError as exc:
            raise TemplateError(
                f"template {compiled.path}: the {block} block is not valid JSON ({exc.msg} at "
                f"line {exc.lineno} column {exc.colno} of the output); write values with "
                '|tojson, e.g. {"name": {{ customer.traits.first_name|tojson }}}'
            ) from None
        if not isinstance(data, dict):
            raise TemplateError(
                f"template {compiled.path}: the {block} block must make a JSON object "
                f"({{...}}), not a {type(data).__name__}"
            )
        return data

    def _part(
        self,
        compiled: _Compiled,
        block: str,
        context: dict[str, Any],
        *,
        limit: int,
        label: str,
        escaped: bool = False,
    ) -> str:
        """One block, rendered with its output counted as it is produced (at most ``limit``
        characters: the ``label`` part is too long beyond)."""
        template = self._html_of(compiled) if escaped else compiled.plain
        most = limit
        out: list[str] = []
        length = 0
        try:
            for chunk in template.blocks[block](template.new_context(dict(context))):
                length += len(chunk)
                if length > most:
                    raise TemplateError(
                        f"template {compiled.path}: the {label} part is longer than "
                        f"{most:,} characters; shorten it"
                    )
                out.append(chunk)
        except TemplateError:
            raise
        except Exception as exc:  # anything a template does wrong is the template's error
            raise TemplateError(_explain(compiled, template, exc)) from None
        return "".join(out)

    def _load(self, name: str) -> _Compiled:
        if not _NAME.fullmatch(name):
            raise TemplateError(f"'{name}' is not a template name ([a-z][a-z0-9_]*)")
        path = self.directory / f"{name}{SUFFIX}"
        shown = str(path)
        try:
            stat = path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            with self._lock:
                cached = self._cache.get(name)
            if cached and cached.stamp == stamp:
                return cached
            if stat.st_size > MAX_TEMPLATE_BYTES:
                raise TemplateError(
                    f"template {shown} is {stat.st_size} bytes; keep it under {MAX_TEMPLATE_BYTES}"
                )
            source = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            known = sorted(p.name[: -len(SUFFIX)] for p in self.directory.glob(f"*{SUFFIX}"))
            raise TemplateError(
                f"no template '{name}': create {shown} (templates: {', '.join(known) or 'none'})"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(f"cannot read template {shown}: {exc}") from None
        compiled = _Compiled(stamp, source, shown, self._compile(self._plain, source, shown))
        with self._lock:
            self._cache[name] = compiled
        return compiled

    def _html_of(self, compiled: _Compiled) -> jinja2.Template:
        if compiled.html is None:
            compiled.html = self._compile(self._escaped, compiled.source, compiled.path)
        return compiled.html

    def _compile(self, env: Sandbox, source: str, shown: str) -> jinja2.Template:
        try:
            code = env.compile(source, name=Path(shown).name, filename=shown)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"template {shown}:{exc.lineno}: syntax error: {exc.message}"
            ) from None
        return env.template_class.from_code(env, code, env.make_globals(None))


def _kind(channel: str) -> ChannelKind:
    try:
        return channel_kinds.kind(channel)
    except ValueError as exc:
        raise TemplateError(str(exc)) from None


def _explain(compiled: _Compiled, template: jinja2.Template, exc: Exception) -> str:
    """``template FILE:LINE: what went wrong; what to do``."""
    line = _line(template, exc.__traceback__)
    where = f"{compiled.path}:{line}" if line else compiled.path
    if isinstance(exc, jinja2.exceptions.SecurityError):
        fix = "templates may only read the values they are given, not Python internals"
    elif isinstance(exc, jinja2.UndefinedError):
        fix = "give it a default ({{ x|default('') }}) or test it ({% if x is defined %})"
    elif isinstance(exc, LimitExceeded):
        return f"template {where}: {exc}"
    elif isinstance(exc, RecursionError):
        return f"template {where}: macros call each other too deeply; stop the recursion"
    else:
        return f"template {where}: {type(exc).__name__}: {exc}"
    return f"template {where}: {str(exc).rstrip('.')}; {fix}"


def _line(template: jinja2.Template, tb: TracebackType | None) -> int | None:
    """The template line of the innermost frame of ``template``'s code in ``tb``."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == template.filename:
            line = template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return line
