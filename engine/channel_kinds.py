"""What the pure layers know of a channel: its name, the parts of a message it carries,
the customer trait that holds its address and the traits that opt a customer out of it.

The engine lists no channel itself. Each module of the ``channels`` package describes its
channel with a :class:`ChannelKind` and registers it (``channels.registry.register``, which
calls :func:`register` here) when ``channels`` is imported; every entry point imports it
before it loads rules. So a new channel is one module in ``channels/``, while ``engine``
still imports nothing of the project: the names arrive as data, from the layer above.

What reads it: journey and policy validation (:func:`check_channel`, an unknown channel is
reported at file:line:col with the channels there are), the template check at load time
(:meth:`ChannelKind.missing_in`), rendering (``messaging``: :attr:`ChannelKind.parts`),
opt-outs (``store.consent``) and redaction (``engine.identity``: a channel's contact trait
is contact data)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from .names import did_you_mean

Form = Literal["text", "line", "stripped", "html", "json"]


@dataclass(frozen=True)
class Part:
    """One part of a rendered message (``subject``, ``sms``, ...), from the first of
    ``blocks`` the template has; none: the part is left out. ``form``: ``text`` as
    written, ``line`` whitespace collapsed to one non-empty line, ``stripped`` without
    leading and trailing space, ``html`` HTML-escaped values, ``json`` a JSON object (from a
    later block of ``blocks``: ``{block: its text}``). ``limit``: characters at most."""

    name: str
    blocks: tuple[str, ...]
    limit: int
    form: Form = "text"


@dataclass(frozen=True)
class ChannelKind:
    """A channel as data. ``needs``: groups of template blocks, at least one of each group
    present (``needs_text`` says it in words for the render error; by default "a {% block
    subject %} and a {% block text %} or {% block html %}"). ``contact``: the
    customer trait holding the address (``None``: the address is the action's ``url``).
    ``opt_out_traits``: identify traits that opt a customer out of it (default
    ``NAME_opt_out`` and ``NAMEOptOut``). ``plural``: what the unsubscribe page calls its
    messages."""

    name: str
    parts: tuple[Part, ...]
    needs: tuple[tuple[str, ...], ...]
    contact: str | None
    plural: str
    needs_text: str = ""
    opt_out_traits: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.needs_text:
            groups = (" or ".join(f"{{% block {b} %}}" for b in group) for group in self.needs)
            object.__setattr__(self, "needs_text", " and ".join(f"a {g}" for g in groups))
        if not self.opt_out_traits:
            camel = "".join(w.capitalize() for w in self.name.split("_"))
            traits = (f"{self.name}_opt_out", f"{camel[0].lower()}{camel[1:]}OptOut")
            object.__setattr__(self, "opt_out_traits", traits)

    @property
    def reaches_person(self) -> bool:
        """Whether it reaches the customer at an address of theirs (offers, surveys)."""
        return self.contact is not None

    def missing_in(self, blocks: Iterable[str]) -> str | None:
        """Why a template with ``blocks`` cannot be sent by this channel, or None."""
        have = set(blocks)
        for group in self.needs:
            if len(group) == 1 and group[0] not in have:
                return f"has no {{% block {group[0]} %}}, which {self.name} needs"
        for group in self.needs:
            if len(group) > 1 and not have.intersection(group):
                return f"needs one of the blocks {', '.join(sorted(group))} for {self.name}"
        return None


_KINDS: dict[str, ChannelKind] = {}


def register(kind: ChannelKind) -> None:
    """Make ``kind`` known; registering the same name twice with another description is a
    programming error."""
    known = _KINDS.get(kind.name)
    if known is not None and known != kind:
        raise ValueError(f"channel '{kind.name}' is registered twice, differently")
    _KINDS[kind.name] = kind


def unregister(name: str) -> None:
    """Forget the channel ``name`` (a test's own channel, once the test is done)."""
    _KINDS.pop(name, None)


def names() -> list[str]:
    """The registered channels' names, in registration order."""
    return list(_registered())


def kind(name: str) -> ChannelKind:
    """The channel ``name``; raises ``ValueError`` with the channels there are."""
    found = _registered().get(name)
    if found is None:
        raise ValueError(unknown(name))
    return found


def person_channels() -> list[str]:
    """The channels that reach a person at an address of theirs (email, sms, ...)."""
    return [k.name for k in _registered().values() if k.reaches_person]


def contact_traits() -> frozenset[str]:
    """The traits that hold a registered channel's address (none before any registers):
    contact data, which never travels to a workflow (``engine.identity``)."""
    return frozenset(k.contact for k in _KINDS.values() if k.contact)


def unknown(name: object) -> str:
    """The sentence for a channel that is not registered."""
    known = list(_registered())
    text = str(name)
    return f"unknown channel '{text}'{did_you_mean(text, known)}; channels are: {', '.join(known)}"


def check_channel(value: Any, info: Any) -> str:
    """A pydantic validator: ``value`` when it names a registered channel. Only YAML is
    checked (``from_yaml`` in the validation context): a definition stored when it was
    published, read back in a workflow, is taken as it is."""
    if not isinstance(value, str):
        raise ValueError(f"a channel is a name such as {', '.join(names())}, got {value!r}")
    context = getattr(info, "context", None)
    if context and context.get("from_yaml"):
        kind(value)
    return value


def check_person_channel(value: Any, info: Any) -> str:
    """:func:`check_channel`, for actions that reach a person (offers, surveys)."""
    name = check_channel(value, info)
    context = getattr(info, "context", None)
    if context and context.get("from_yaml") and not kind(name).reaches_person:
        people = ", ".join(person_channels())
        raise ValueError(
            f"channel '{name}' does not reach a person; this action goes by one of: {people}"
        )
    return name


def _registered() -> dict[str, ChannelKind]:
    if not _KINDS:
        # a process that loads rules or sends without importing ``channels`` first
        raise RuntimeError(
            "no channel is registered: import channels (it registers email, sms, webhook)"
            " before loading rules or sending"
        )
    return _KINDS
