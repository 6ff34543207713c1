"""Message templates as ops write them: ``templates/NAME.j2``, one file per message.

A template holds the parts of a message as Jinja2 blocks, one for each channel it serves::

    {% block subject %}Welcome, {{ customer.traits.first_name }}{% endblock %}
    {% block text %}...{% endblock %}      email text part (and the fallback for sms)
    {% block html %}...{% endblock %}      email HTML part
    {% block sms %}...{% endblock %}       SMS body
    {% block webhook %}{...}{% endblock %} JSON body for webhooks

Here templates are found and checked (syntax, channel parts) when journeys load; rendering
them is the business of the ``send_message`` activity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from jinja2 import nodes

from ._errors import Problem

SUFFIX = ".j2"
MAX_TEMPLATE_BYTES = 64 * 1024
CHANNEL_BLOCKS = {
    "email": ({"subject"}, {"text", "html"}),
    "sms": (set(), {"sms", "text"}),
    "webhook": (set(), {"webhook", "text"}),
}


@dataclass
class TemplateInfo:
    name: str
    path: str
    blocks: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)

    def missing_for(self, channel: str) -> str | None:
        """Why this template cannot serve ``channel``, or None when it can."""
        required, any_of = CHANNEL_BLOCKS[channel]
        missing = sorted(required - self.blocks)
        if missing:
            return f"has no {{% block {missing[0]} %}}, which {channel} needs"
        if any_of and not any_of & self.blocks:
            return f"needs one of the blocks {', '.join(sorted(any_of))} for {channel}"
        return None


def scan(directory: Path, display_root: Path | None = None) -> dict[str, TemplateInfo]:
    """Every template in ``directory`` with its blocks and syntax problems."""
    found: dict[str, TemplateInfo] = {}
    if not directory.is_dir():
        return found
    env = jinja2.Environment(autoescape=True)
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        name = path.name[: -len(SUFFIX)]
        shown = _display(path, display_root)
        info = TemplateInfo(name=name, path=shown)
        found[name] = info
        try:
            raw = path.read_bytes()
            if len(raw) > MAX_TEMPLATE_BYTES:
                info.problems.append(
                    Problem(
                        shown,
                        1,
                        1,
                        "",
                        f"template is {len(raw)} bytes; keep it under {MAX_TEMPLATE_BYTES}",
                    )
                )
                continue
            tree = env.parse(raw.decode("utf-8"))
        except jinja2.TemplateSyntaxError as exc:
            info.problems.append(
                Problem(shown, exc.lineno or 1, 1, "", f"template syntax error: {exc.message}")
            )
            continue
        except (OSError, UnicodeDecodeError) as exc:
            info.problems.append(Problem(shown, 1, 1, "", f"cannot read the template: {exc}"))
            continue
        info.blocks = {b.name for b in tree.find_all(nodes.Block)}
    return found


def _display(path: Path, root: Path | None) -> str:
    try:
        return str(path.relative_to(root)) if root else str(path)
    except ValueError:
        return str(path)
