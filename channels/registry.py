"""The channels there are: everything else asks here (or, below this layer, asks
``engine.channel_kinds``, which :func:`register` fills).

A channel is one module of this package that calls :func:`register` with a
:class:`Channel`: its description (name, template parts, contact trait, opt-out traits:
an ``engine.channel_kinds.ChannelKind``), its sender and the settings it reads. Importing
``channels`` imports every such module, so a new channel needs no other file to list it.
Tests may register a channel of their own the same way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine import channel_kinds
from engine.channel_kinds import ChannelKind
from settings import Settings


@dataclass(frozen=True)
class Outbound:
    """One rendered message for one address. ``parts``: what the channel's
    :attr:`ChannelKind.parts` rendered (``subject``, ``sms``, ...; a part the template has
    no block for is absent). ``to``: the customer's address from their ``contact`` trait, a
    staff address, or the action's ``url`` for a channel without a contact."""

    to: str
    parts: Mapping[str, Any]
    idempotency_key: str
    unsubscribe_url: str | None = None


Sender = Callable[[Settings, Outbound], Awaitable[str]]
"""Sends one message; returns the provider's id for it, raises
``PermanentDeliveryError`` (retrying cannot help) or ``TransientDeliveryError``."""


@dataclass(frozen=True)
class Channel:
    """A channel: what it is (``kind``), how it sends (``send``) and which ``Settings``
    fields it reads (``settings``: checked when it registers, named in docs)."""

    kind: ChannelKind
    send: Sender
    settings: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.kind.name


_CHANNELS: dict[str, Channel] = {}


def register(channel: Channel) -> Channel:
    """Make ``channel`` known to every layer; returns it. Its settings must be fields of
    :class:`Settings` (a typo there would otherwise surface only when it sends)."""
    unknown = [s for s in channel.settings if s not in Settings.model_fields]
    if unknown:
        raise ValueError(f"channel '{channel.name}' reads unknown settings: {', '.join(unknown)}")
    channel_kinds.register(channel.kind)
    _CHANNELS[channel.name] = channel
    return channel


def unregister(name: str) -> None:
    """Forget the channel ``name`` (a test's own channel, once the test is done)."""
    _CHANNELS.pop(name, None)
    channel_kinds.unregister(name)


def names() -> list[str]:
    """The channels' names, in registration order."""
    return list(_CHANNELS)


def get(name: str) -> Channel:
    """The channel ``name``; raises ``KeyError`` with the channels there are."""
    try:
        return _CHANNELS[name]
    except KeyError:
        raise KeyError(channel_kinds.unknown(name)) from None
