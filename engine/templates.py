"""Message templates as ops write them: ``templates/NAME.j2``, one file per message.

A template holds the parts of a message as Jinja2 blocks, one for each channel it serves
(each channel names the blocks it renders: ``engine.channel_kinds``)::

    {% block subject %}Welcome, {{ customer.traits.first_name }}{% endblock %}
    {% block text %}...{% endblock %}      email text part (and the fallback for sms)
    {% block html %}...{% endblock %}      email HTML part
    {% block sms %}...{% endblock %}       SMS body
    {% block webhook %}{...}{% endblock %} JSON body for webhooks

Here templates are found and checked when journeys load: syntax, channel parts, and the
variables they use against :data:`CONTEXT`, what the send activities give every template.
A name no action provides, or an attribute a known object does not have, is a problem of
the template file; a name the template's action does not provide (``offer`` in a plain
``send``) or a ``ctx.X`` its journey does not declare is a problem of the journey (see
:meth:`TemplateInfo.context_problems`). Rendering is ``messaging.render``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from jinja2 import meta, nodes

from . import channel_kinds
from ._errors import Problem
from .actions import ACTIONS
from .names import did_you_mean

SUFFIX = ".j2"
MAX_TEMPLATE_BYTES = 64 * 1024

# The names every action's messages have, with the attributes of those whose shape is fixed
# (None: free-form or a plain value); an action kind adds its own (``ActionSpec.provides``).
# messaging.render documents each; engine.template_context builds them (for the send
# activities and the preview of journeys render).
SHARED_CONTEXT: dict[str, frozenset[str] | None] = {
    "customer": frozenset({"id", "traits", "tier", "segment"}),
    "journey": frozenset({"name", "version"}),
    "state": None,
    "ctx": None,  # checked against the journey's context: instead
    "event": frozenset({"name", "properties", "timestamp"}),
    "unsubscribe_url": None,
    "manager": frozenset({"name", "email"}),
}


def declared_context() -> tuple[dict[str, frozenset[str] | None], dict[str, str]]:
    """Every name a template may use (with its attributes), and which names only one
    action kind provides (name -> kind), from the shared names and the action models."""
    names = dict(SHARED_CONTEXT)
    only: dict[str, str] = {}
    for kind, spec in ACTIONS.items():
        for name, attrs in spec.provides.items():
            names[name] = attrs
            only[name] = kind
    return names, only


# every action kind is registered by engine.actions, imported above
CONTEXT, ACTION_ONLY = declared_context()
# Jinja's globals that templates keep (lipsum is dropped: it only makes text up).
GLOBALS = ("range", "dict", "cycler", "joiner", "namespace")


def names_for(kind: str) -> list[str]:
    """The context names a template of an action of ``kind`` may use."""
    return sorted(n for n in CONTEXT if ACTION_ONLY.get(n, kind) == kind)


@dataclass(frozen=True)
class Use:
    """A context variable a template reads: ``name`` or ``name.attr``, at template ``line``."""

    line: int
    name: str
    attr: str | None = None

    def __str__(self) -> str:
        return f"{self.name}.{self.attr}" if self.attr else self.name


@dataclass
class TemplateInfo:
    name: str
    path: str
    blocks: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    uses: list[Use] = field(default_factory=list)

    def missing_for(self, channel: str) -> str | None:
        """Why this template cannot serve ``channel``, or None when it can."""
        return channel_kinds.kind(channel).missing_in(self.blocks)

    def context_problems(self, kind: str, declared: Iterable[str]) -> list[str]:
        """Why this template cannot serve an action of ``kind`` in a journey whose context:
        declares ``declared``: one message per variable it uses that it would not have."""
        allowed = names_for(kind)
        declared = sorted(declared)
        out: list[str] = []
        refused: set[str] = set()
        for use in self.uses:
            where = f"{{{{ {use} }}}} ({self.path}:{use.line})"
            only = ACTION_ONLY.get(use.name)
            if only and only != kind:
                if use.name in refused:
                    continue  # once per name: survey.url and survey.kind are one mistake
                refused.add(use.name)
                out.append(
                    f"template '{self.name}' uses {where}, which only {only} actions provide; "
                    f"a template of a {kind} action can use: {', '.join(allowed)}"
                )
            elif use.name == "ctx" and use.attr and use.attr not in declared:
                out.append(
                    f"template '{self.name}' uses {where}, which this journey does not declare"
                    f"{did_you_mean(use.attr, declared)}; declare it under context: "
                    f"(declared: {', '.join(declared) or 'nothing'})"
                )
        return out


def scan(directory: Path, display_root: Path | None = None) -> dict[str, TemplateInfo]:
    """Every template in ``directory`` with its blocks, the variables it uses and its
    problems (syntax, size, unknown variables)."""
    found: dict[str, TemplateInfo] = {}
    if not directory.is_dir():
        return found
    env = jinja2.Environment(autoescape=True)
    env.globals = {k: v for k, v in env.globals.items() if k in GLOBALS}
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
            undeclared = meta.find_undeclared_variables(tree) - _top_level_names(tree)
        except jinja2.TemplateSyntaxError as exc:
            info.problems.append(
                Problem(shown, exc.lineno or 1, 1, "", f"template syntax error: {exc.message}")
            )
            continue
        except (OSError, UnicodeDecodeError) as exc:
            info.problems.append(Problem(shown, 1, 1, "", f"cannot read the template: {exc}"))
            continue
        info.blocks = {b.name for b in tree.find_all(nodes.Block)}
        info.uses = uses(tree, undeclared)
        info.problems += _variable_problems(info, tree)
    return found


_DICT_METHODS = frozenset({"get", "items", "keys", "values"})


def uses(tree: nodes.Template, undeclared: set[str]) -> list[Use]:
    """The context variables ``tree`` reads (first use of each), from Jinja's own analysis of
    which names are not the template's own (``{% set %}``, loop variables, macros). An
    attribute is recorded only for a name the template never binds anywhere, as the
    analysis does not say which use of a name that is both bound and read is which."""
    bound = {n.name for n in tree.find_all(nodes.Name) if n.ctx != "load"}
    bound |= {m.name for m in tree.find_all(nodes.Macro)}
    first: dict[tuple[str, str | None], Use] = {}

    def note(use: Use) -> None:
        key = (use.name, use.attr)
        if key not in first or use.line < first[key].line:
            first[key] = use

    for node in tree.find_all((nodes.Name, nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Name):
            if node.ctx == "load" and node.name in undeclared:
                note(Use(node.lineno, node.name))
            continue
        assert isinstance(node, nodes.Getattr | nodes.Getitem)
        inner = node.node
        if not (isinstance(inner, nodes.Name) and inner.name in undeclared):
            continue
        if inner.name in bound or inner.ctx != "load":
            continue
        if isinstance(node, nodes.Getattr):
            if node.attr not in _DICT_METHODS:  # ctx.get('x', 0) reads a dict, no attribute
                note(Use(node.lineno, inner.name, node.attr))
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            note(Use(node.lineno, inner.name, node.arg.value))
    return sorted(first.values(), key=lambda u: (u.line, u.name, u.attr or ""))


def _top_level_names(tree: nodes.Template) -> set[str]:
    """Names the template defines outside its blocks. Blocks render on their own, with these
    definitions copied in (``messaging._sandbox``), but Jinja's analysis sees each block
    alone and would take their names for context variables."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, nodes.Assign | nodes.AssignBlock):
            names |= {n.name for n in node.target.find_all(nodes.Name)}
            if isinstance(node.target, nodes.Name):
                names.add(node.target.name)
        elif isinstance(node, nodes.Macro):
            names.add(node.name)
    return names


def _variable_problems(info: TemplateInfo, tree: nodes.Template) -> list[Problem]:
    """Mistakes whatever the action: names no action provides, attributes a known object
    lacks, and references to other templates (each message is one self-contained file)."""
    problems: list[Problem] = []
    for ref in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        problems.append(
            Problem(
                info.path,
                ref.lineno,
                1,
                "",
                "a template cannot extend, include or import another template; keep each "
                "message in its own file (a {% macro %} in the same file can share text)",
            )
        )
    known = sorted(CONTEXT)
    for use in info.uses:
        attrs = CONTEXT.get(use.name)
        if use.name not in CONTEXT:
            if use.attr is None:
                problems.append(
                    Problem(
                        info.path,
                        use.line,
                        1,
                        "",
                        f"unknown variable '{use.name}'{did_you_mean(use.name, known)}; "
                        f"templates can use: {', '.join(known)}",
                    )
                )
        elif use.attr is not None and attrs is not None and use.attr not in attrs:
            problems.append(
                Problem(
                    info.path,
                    use.line,
                    1,
                    "",
                    f"{use.name} has no '{use.attr}'{did_you_mean(use.attr, attrs)}; "
                    f"{use.name} has: {', '.join(sorted(attrs))}",
                )
            )
    return problems


def _display(path: Path, root: Path | None) -> str:
    try:
        return str(path.relative_to(root)) if root else str(path)
    except ValueError:
        return str(path)
