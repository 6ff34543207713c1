"""Published journey versions and catalogs in PostgreSQL.

Publishing is idempotent: a journey whose content (digest) was seen before keeps its
version; a changed one gets the next version; a new catalog row is written only when the
set of latest versions (or a floor) changes. Customers in flight keep the version they
were enrolled with until ``journeys upgrade`` raises the journey's floor."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from engine import Catalog, Journey, JourneyValidationError, Problem, migration_problems

_LOCK = 0x4A6F7572  # serialises publishers


class Head(NamedTuple):
    """The current catalog: its ``seq``, each journey's ``latest`` version, and the
    ``floor`` (the oldest version a customer may stay on)."""

    seq: int
    latest: dict[str, int]
    floor: dict[str, int]


async def head(conn: AsyncConnection[Any]) -> Head:
    """The current catalog; ``Head(0, {}, {})`` before any publish."""
    cur = await conn.execute("SELECT seq, latest, floor FROM catalogs ORDER BY seq DESC LIMIT 1")
    row = await cur.fetchone()
    return Head(row[0], row[1], row[2]) if row else Head(0, {}, {})


async def publish(
    conn: AsyncConnection[Any], journeys: list[Journey], *, reason: str = "publish"
) -> int:
    """Store new versions of ``journeys`` and make them current; return the catalog seq."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        seq, latest, floor = await head(conn)
        new_latest: dict[str, int] = {}
        for j in journeys:
            cur = await conn.execute(
                "SELECT version FROM journey_versions WHERE journey = %s AND digest = %s",
                (j.journey, j.digest),
            )
            row = await cur.fetchone()
            if row:
                version = row[0]
            else:
                cur = await conn.execute(
                    "SELECT coalesce(max(version), 0) + 1 FROM journey_versions WHERE journey = %s",
                    (j.journey,),
                )
                version = (await cur.fetchone() or (1,))[0]
                body = j.model_copy(update={"version": version}).model_dump(mode="json")
                await conn.execute(
                    "INSERT INTO journey_versions (journey, version, digest, definition, source)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (j.journey, version, j.digest, Jsonb(body), j.source),
                )
            new_latest[j.journey] = version
        new_floor = {k: v for k, v in floor.items() if k in new_latest}
        if seq and new_latest == latest and new_floor == floor:
            return seq
        return await _insert(conn, new_latest, new_floor, reason)


async def _insert(
    conn: AsyncConnection[Any], latest: dict[str, int], floor: dict[str, int], reason: str
) -> int:
    cur = await conn.execute(
        "INSERT INTO catalogs (latest, floor, reason) VALUES (%s, %s, %s) RETURNING seq",
        (Jsonb(latest), Jsonb(floor), reason),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def load(conn: AsyncConnection[Any], *, extra: list[str] | None = None) -> Catalog:
    """The current catalog with the definitions of its latest versions and of ``extra``
    keys (``name@version``) that in-flight customers are on."""
    seq, latest, floor = await head(conn)
    wanted = {Catalog.key(n, v) for n, v in latest.items()} | set(extra or ())
    versions = await definitions(conn, sorted(wanted))
    return Catalog(seq=seq, latest=latest, floor=floor, versions=versions)


async def definitions(conn: AsyncConnection[Any], keys: list[str]) -> dict[str, Journey]:
    """Published definitions by ``name@version`` key (unknown keys are left out)."""
    if not keys:
        return {}
    pairs = [k.rsplit("@", 1) for k in keys]
    cur = await conn.execute(
        "SELECT journey, version, definition FROM journey_versions"
        " WHERE (journey, version) IN (SELECT * FROM unnest(%s::text[], %s::int[]))",
        ([p[0] for p in pairs], [int(p[1]) for p in pairs]),
    )
    return {
        Catalog.key(name, version): Journey.model_validate(body)
        for name, version, body in await cur.fetchall()
    }


@dataclass(frozen=True)
class Published:
    """One published version, as admins list it (``GET /v1/journeys``)."""

    journey: str
    version: int
    digest: str
    source: str
    published_at: datetime
    states: list[str]  # the names under ``states:``, in stored order


async def published(conn: AsyncConnection[Any]) -> list[Published]:
    """Every published version of every journey, by journey and version."""
    cur = conn.cursor(row_factory=class_row(Published))
    await cur.execute(
        "SELECT journey, version, digest, source, published_at,"
        " ARRAY(SELECT k FROM jsonb_object_keys(definition -> 'states') WITH ORDINALITY"
        " AS s(k, n) ORDER BY n) AS states"
        " FROM journey_versions ORDER BY journey, version"
    )
    return await cur.fetchall()


async def every_version(conn: AsyncConnection[Any]) -> list[Journey]:
    """Every published definition, of every journey and version."""
    cur = await conn.execute("SELECT definition FROM journey_versions")
    return [Journey.model_validate(row[0]) for row in await cur.fetchall()]


async def versions_of(conn: AsyncConnection[Any], journey: str) -> list[Journey]:
    """The published definitions of ``journey``, oldest first."""
    cur = await conn.execute(
        "SELECT definition FROM journey_versions WHERE journey = %s ORDER BY version", (journey,)
    )
    return [Journey.model_validate(row[0]) for row in await cur.fetchall()]


class Raised(NamedTuple):
    """A raised floor: the catalog ``seq`` customers move to and the journey's ``version``."""

    seq: int
    version: int


async def raise_floor(conn: AsyncConnection[Any], journey: str) -> Raised:
    """Make every customer of ``journey`` move to its latest version at their next step.
    Returns ``(catalog seq, latest version)``; raises JourneyValidationError when an older
    version has states the latest one does not map."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        seq, latest, floor = await head(conn)
        if journey not in latest:
            raise JourneyValidationError(
                [
                    Problem(
                        "rules",
                        1,
                        1,
                        "",
                        f"journey '{journey}' is not "
                        f"published; journeys: {', '.join(sorted(latest))}",
                    )
                ]
            )
        versions = await versions_of(conn, journey)
        newest = next(v for v in versions if v.version == latest[journey])
        problems = migration_problems([v for v in versions if v.version < newest.version], newest)
        if problems:
            raise JourneyValidationError(problems)
        if floor.get(journey) == newest.version:
            return Raised(seq, newest.version)
        new_seq = await _insert(
            conn,
            latest,
            {**floor, journey: newest.version},
            f"upgrade {journey} to v{newest.version}",
        )
        return Raised(new_seq, newest.version)


class Loader:
    """Catalogs as a process loads them again and again: the parsed definitions cached
    (a published version never changes), the head re-read at most once a second or when
    a newer seq is asked for. Used by the ``load_catalog`` activity and by the dispatcher,
    which sends a new customer's first catalog with the start (``CustomerInput.catalog``)."""

    def __init__(self) -> None:
        self._definitions: dict[str, Journey] = {}
        self._head = Head(0, {}, {})
        self._head_at = float("-inf")

    async def load(
        self,
        conn: AsyncConnection[Any],
        *,
        versions: Iterable[str] = (),
        min_seq: int = 0,
        zones: dict[str, str] | None = None,
    ) -> Catalog:
        """The current catalog plus ``versions`` (``name@version``); ``zones``: where its
        calendar timers find the customer's time zone (``Policy.time_zones``)."""
        now = time.monotonic()
        if now - self._head_at > 1.0 or self._head.seq < min_seq:
            self._head = await head(conn)
            self._head_at = now
        seq, latest, floor = self._head
        wanted = {Catalog.key(n, v) for n, v in latest.items()} | set(versions)
        missing = sorted(wanted - set(self._definitions))
        if missing:
            self._definitions.update(await definitions(conn, missing))
        found = {k: self._definitions[k] for k in wanted if k in self._definitions}
        return Catalog(seq=seq, latest=latest, floor=floor, versions=found, **(zones or {}))
