"""Event sources other than Segment: one module each, turning a provider's webhook into
Segment messages, so every check, the dedupe and the durability of ``/v1/batch`` follow.

A source module registers a :class:`Source` (its name, how to verify the provider's
signature, how to translate one delivery) when this package is imported: every public
module here is imported below, so a new source is one new module and no list to extend.
``POST /v1/sources/{name}`` (``api``) takes the write key like ``/v1/batch``, verifies,
translates and accepts. A translation returns Segment-shaped dicts, not ``Message``s:
they then pass ``ingest.segment.messages`` exactly as a batch sent by an SDK would, so a
source cannot store what the API would refuse.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from settings import Settings

from .._errors import IngestError

Translate = Callable[[dict[str, Any]], list[dict[str, Any]]]
Verify = Callable[[Settings, Mapping[str, str], bytes], None]


@dataclass(frozen=True)
class Source:
    """A provider whose webhooks become customer events.

    ``verify(settings, headers, body)`` raises :class:`IngestError` (401/403) unless the
    delivery is the provider's (write keys are public: a signature is what proves a payment
    happened). ``translate(delivery)`` returns the Segment messages it means (``[]`` for a
    kind of delivery Journeys does not use; the answer says it was ignored), and raises
    :class:`IngestError` (400) naming the field that is missing."""

    name: str
    verify: Verify
    translate: Translate


_SOURCES: dict[str, Source] = {}


def register(source: Source) -> Source:
    """Make ``source`` reachable at ``/v1/sources/{name}``; a name is registered once."""
    if source.name in _SOURCES and _SOURCES[source.name] is not source:
        raise ValueError(f"an event source named {source.name!r} is already registered")
    _SOURCES[source.name] = source
    return source


def unregister(name: str) -> None:
    """Forget a source (tests that register their own)."""
    _SOURCES.pop(name, None)


def names() -> list[str]:
    return sorted(_SOURCES)


def get(name: str) -> Source:
    """The source called ``name``, or a 404 naming the ones there are."""
    try:
        return _SOURCES[name]
    except KeyError:
        known = ", ".join(names()) or "none"
        raise IngestError(
            404, "unknown_source", f"there is no event source with that name; sources: {known}"
        ) from None


# every source module registers itself on import; sorted, so the order is the same each time
for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Source", "get", "names", "register", "unregister"]
