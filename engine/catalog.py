"""A catalog: every published journey version, and which version new customers get."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    model_validator,
)

from ._errors import UnknownJourneyError
from .model import Journey
from .names import normalize_event_name


class Catalog(BaseModel):
    """The journeys a workflow runs. ``latest`` maps a journey to the version new
    enrolments get; ``floor`` to the lowest version in-flight customers may stay on
    (``journeys upgrade`` raises it); ``seq`` orders catalogs so a stale one is ignored."""

    seq: int = 0
    latest: dict[str, int] = Field(default_factory=dict)
    floor: dict[str, int] = Field(default_factory=dict)
    versions: dict[str, Journey] = Field(default_factory=dict)  # "name@version" -> definition
    # where calendar timers (at:) find the customer's time zone: the trait the messaging
    # policy names (quiet_hours.time_zone_trait), else its default zone; filled from
    # rules/policy.yaml by load_catalog, defaults so catalogs recorded before them decode
    time_zone_trait: str = "timezone"
    default_time_zone: str = "UTC"

    @model_validator(mode="wrap")
    @classmethod
    def _decoded_once(
        cls, data: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Catalog:
        """A catalog decoded from JSON (a new customer's start, a ``load_catalog``
        marker) is the process's shared instance when one with the same content key is
        already there: every new customer's start carries the same catalog, and
        validating it again cost ~0.3 ms per customer (0.44 -> 0.125 ms per start's
        input). Same key, same content (``shared``), so the workflow sees exactly what
        decoding would give."""
        if info.mode == "json":
            key = _raw_key(data)
            found = _SHARED.get(key) if key is not None else None
            if found is not None:
                return found
            return shared(handler(data))
        made: Catalog = handler(data)
        return made

    @staticmethod
    def key(name: str, version: int) -> str:
        return f"{name}@{version}"

    def get(self, name: str, version: int) -> Journey:
        try:
            return self.versions[self.key(name, version)]
        except KeyError:
            raise UnknownJourneyError(f"journey {name} version {version} is not loaded") from None

    def current(self, name: str) -> Journey:
        return self.get(name, self.latest[name])

    def journeys(self) -> list[Journey]:
        """Latest version of every journey, in name order."""
        return [self.current(n) for n in sorted(self.latest)]

    def interest(self) -> tuple[set[str], bool]:
        """``(names, everything)``: the events some journey reacts to. Others never need to
        reach a workflow. ``everything`` is true when an ``exit_when`` may hold for any
        event (it is checked on every event); one that only compares ``event.name`` with
        literals adds just those names."""
        names: set[str] = set()
        everything = False
        for j in self.versions.values():
            names |= j.events()
            if j.exit_when:
                exits = exit_event_names(j.exit_when)
                if exits is None:
                    everything = True
                else:
                    names |= exits
        return names, everything

    @classmethod
    def of(cls, journeys: list[Journey], *, seq: int = 0) -> Catalog:
        """A catalog of freshly loaded journeys, each as version 1 unless already versioned."""
        versions = {}
        latest = {}
        for j in journeys:
            version = j.version or 1
            j = j.model_copy(update={"version": version, "digest": j.digest or digest(j)})
            versions[cls.key(j.journey, version)] = j
            latest[j.journey] = version
        return cls(seq=seq, latest=latest, floor={}, versions=versions)


_SHARED: dict[tuple[object, ...], Catalog] = {}
_SHARED_MAX = 256


def shared(catalog: Catalog) -> Catalog:
    """The one instance of this catalog in the process. Every customer's workflow loads
    the same few catalogs, and a parsed catalog is ~70 KB of objects: shared, a worker
    caching 10,000 customers holds one copy instead of 10,000, and the garbage collector
    has that much less to walk. Safe because a catalog is never changed once made and
    equal keys mean equal content (the journeys' content digests are in the key); it is
    used only in the workflow, after the local activity's result was recorded."""
    if any(not j.digest for j in catalog.versions.values()):
        return catalog  # not from the store: no content key to trust
    key = _key(
        catalog.seq,
        catalog.latest,
        catalog.floor,
        ((k, j.digest, j.source) for k, j in catalog.versions.items()),
        catalog.time_zone_trait,
        catalog.default_time_zone,
    )
    found = _SHARED.get(key)
    if found is None:
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()  # old heads nobody asks for any more; rare
        found = _SHARED.setdefault(key, catalog)
    return found


def _key(
    seq: int,
    latest: dict[str, int],
    floor: dict[str, int],
    versions: Any,
    zone_trait: str,
    zone: str,
) -> tuple[object, ...]:
    """A catalog's content key: its seq, heads, and every version's content digest."""
    return (
        seq,
        tuple(sorted(latest.items())),
        tuple(sorted(floor.items())),
        tuple(sorted(versions)),
        zone_trait,
        zone,
    )


# what a dump without the field means (fields left out of JSON decode to their defaults)
_DEFAULTS = {name: f.default for name, f in Catalog.model_fields.items()}
_NO_SOURCE = Journey.model_fields["source"].default


def _raw_key(data: Any) -> tuple[object, ...] | None:
    """``_key`` of a catalog not yet validated (decoded JSON), or None when it has no
    trustworthy key (a version without a digest, or a shape only validation can judge)."""
    try:
        versions = [
            (k, j["digest"], j.get("source", _NO_SOURCE)) for k, j in data["versions"].items()
        ]
        if not all(isinstance(d, str) and d for _, d, _ in versions):
            return None
        key = _key(
            data.get("seq", _DEFAULTS["seq"]),
            data.get("latest", {}),
            data.get("floor", {}),
            versions,
            data.get("time_zone_trait", _DEFAULTS["time_zone_trait"]),
            data.get("default_time_zone", _DEFAULTS["default_time_zone"]),
        )
        hash(key)  # hostile JSON may hold lists where numbers belong
        return key
    except (KeyError, TypeError, AttributeError):
        return None


_NAME_TEST = re.compile(r"""event\.name\s*==\s*(?:"([^"]*)"|'([^']*)')""")


def exit_event_names(source: str) -> set[str] | None:
    """Event names an ``exit_when`` can hold for, when it is only ``event.name == "x"``
    tests joined by ``||``; None when it may hold for any event."""
    names = {normalize_event_name(a or b) for a, b in _NAME_TEST.findall(source)}
    rest = _NAME_TEST.sub("", source)
    if names and re.fullmatch(r"[\s()|]*", rest):
        return names
    return None


_STATE_KEYS_ADDED: dict[str, object] = {"at": {}}


def digest(journey: Journey) -> str:
    """Content hash of a definition, blind to its version, digest and file name."""
    body = journey.model_dump(mode="json", exclude={"version", "digest", "source"})
    for state in body["states"].values():
        # keys added to the language later are left out while unused, so the digest of a
        # journey that does not use them stays what it was (else every journey would be
        # published again, as a new version, by the first worker that knows them)
        for key, empty in _STATE_KEYS_ADDED.items():
            if state.get(key) == empty:
                del state[key]
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:16]
