"""Keys for a development stack, and the refusal to run production on default secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from psycopg import AsyncConnection

from runtime.codec import PayloadKeyError, parse_keys
from settings import DEV_ID_SECRET, DEV_PAYLOAD_KEYS, Settings, check_settings

from . import keys


def _read(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


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
    check_payload_secrets(settings)  # and a malformed key list
    cur = await conn.execute(
        "SELECT count(*) FROM api_keys WHERE kind = 'admin' AND revoked_at IS NULL"
    )
    row = await cur.fetchone()
    if not row or not row[0]:
        raise SystemExit(
            "no admin token exists: create one with 'journeys keys create --kind "
            "admin --name ops' (or set JOURNEYS_ENV=development for a dev stack)"
        )


def check_payload_secrets(settings: Settings) -> None:
    """Refuse the development payload key and id secret (and a malformed key list)."""
    try:
        keys = parse_keys(settings.payload_keys)
    except PayloadKeyError as exc:
        raise SystemExit(f"JOURNEYS_PAYLOAD_KEYS: {exc}") from None
    dev = dict(parse_keys(DEV_PAYLOAD_KEYS))
    if any(key_id in dev or key in dev.values() for key_id, key in keys):
        raise SystemExit(
            "JOURNEYS_PAYLOAD_KEYS holds the development key: set it to keys of your own"
            " (they encrypt everything Temporal stores), e.g. "
            "python -c 'from runtime.codec import new_key_spec; print(new_key_spec(\"k1\"))'"
        )
    if settings.id_secret == DEV_ID_SECRET or len(settings.id_secret) < 16:
        raise SystemExit(
            "JOURNEYS_ID_SECRET is the development default (or shorter than 16 characters):"
            " set it to a long random value once (it keys the hashed customer ids in"
            " workflow ids), e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
