"""A catalog: every published journey version, and which version new customers get."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, Field

from ._errors import UnknownJourneyError
from .model import Journey


class Catalog(BaseModel):
    """The journeys a workflow runs. ``latest`` maps a journey to the version new
    enrolments get; ``floor`` to the lowest version in-flight customers may stay on
    (``journeys upgrade`` raises it); ``seq`` orders catalogs so a stale one is ignored."""

    seq: int = 0
    latest: dict[str, int] = Field(default_factory=dict)
    floor: dict[str, int] = Field(default_factory=dict)
    versions: dict[str, Journey] = Field(default_factory=dict)  # "name@version" -> definition

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

    def event_names(self) -> set[str]:
        """Events any journey reacts to; others never need to reach a workflow, unless a
        journey has ``exit_when`` (checked on every event)."""
        names: set[str] = set()
        for j in self.versions.values():
            names |= j.events()
        return names

    def listens_to_everything(self) -> bool:
        return any(j.exit_when for j in self.versions.values())

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


def digest(journey: Journey) -> str:
    """Content hash of a definition, blind to its version, digest and file name."""
    body = journey.model_dump(mode="json", exclude={"version", "digest", "source"})
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:16]
