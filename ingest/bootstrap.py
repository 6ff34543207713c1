"""Keys for a development stack, and the refusal to run production on default secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from psycopg import AsyncConnection

from settings import Settings, StartupRefused, check_settings
from store import keys as key_store

from . import keys


def _read(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def saved_dev_keys(keyfile: Path) -> tuple[str | None, str | None]:
    """The development write key and admin token kept in ``keyfile`` by :func:`dev_keys`
    (``.data/dev-keys.env`` for ``make run``), without creating any."""
    saved = _read(keyfile)
    return saved.get("JOURNEYS_DEV_WRITE_KEY"), saved.get("JOURNEYS_DEV_ADMIN_TOKEN")


async def dev_keys(
    conn: AsyncConnection[Any], settings: Settings, keyfile: Path
) -> tuple[str, str]:
    """The development write key and admin token: ``JOURNEYS_DEV_WRITE_KEY`` /
    ``JOURNEYS_DEV_ADMIN_TOKEN`` when set, else the ones generated for this ``.data/``
    before (kept in ``keyfile`` so ``make run`` can show them again), else new ones."""
    saved = _read(keyfile)
    write = settings.dev_write_key or saved.get("JOURNEYS_DEV_WRITE_KEY") or keys.new_key("write")
    admin = (
        settings.dev_admin_token or saved.get("JOURNEYS_DEV_ADMIN_TOKEN") or keys.new_key("admin")
    )
    await keys.create(conn, "write", "development write key", key=write)
    await keys.create(conn, "admin", "development admin token", key=admin)
    _save(keyfile, f"JOURNEYS_DEV_WRITE_KEY={write}\nJOURNEYS_DEV_ADMIN_TOKEN={admin}\n")
    return write, admin


def _save(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)


async def check_secrets(conn: AsyncConnection[Any], settings: Settings) -> None:
    """Outside development mode, refuse development secrets (:func:`settings.check_settings`)
    and a stack with no admin."""
    if settings.env == "development":
        return
    check_settings(settings)
    if not await key_store.live_admins(conn):
        raise StartupRefused(
            "no admin token exists: create one with 'journeys keys create --kind "
            "admin --name ops' (or set JOURNEYS_ENV=development for a dev stack)"
        )
