"""Keys through the CLI, development keys, and the refusal of default secrets."""

from __future__ import annotations

import psycopg
import pytest

from cli import run
from ingest import keys
from ingest.bootstrap import check_secrets, dev_keys
from orchestration.codec import new_key_spec
from settings import Settings, get_settings


@pytest.fixture
def cli_env(db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.chdir(tmp_path)  # no .data/stack.env here
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_keys_create_list_revoke(cli_env, capsys):
    assert run(["keys", "create", "--kind", "write", "--name", "web shop"]) == 0
    out = capsys.readouterr().out
    secret = out.splitlines()[1]
    assert secret.startswith("jw_") and "not shown again" in out
    assert run(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert "web shop" in listing and secret not in listing and "active" in listing
    key_id = int(listing.splitlines()[1].split()[0])
    assert run(["keys", "revoke", str(key_id)]) == 0
    assert run(["keys", "revoke", str(key_id)]) == 1
    assert "no active key" in capsys.readouterr().err
    run(["keys", "list"])
    assert "revoked" in capsys.readouterr().out


async def test_dev_keys_from_env_then_reused(db_url, tmp_path):
    settings = Settings.model_validate(
        {
            "DATABASE_URL": db_url,
            "JOURNEYS_ENV": "development",
            "JOURNEYS_DEV_WRITE_KEY": "jw_fixed_for_scripts",
        }
    )
    keyfile = tmp_path / "dev-keys.env"
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        write, admin = await dev_keys(conn, settings, keyfile)
        assert write == "jw_fixed_for_scripts" and admin.startswith("ja_")
        again = await dev_keys(conn, settings.model_copy(update={"dev_write_key": None}), keyfile)
        assert again == (write, admin)  # make run shows the same keys next time
        live = [k for k in await keys.listing(conn) if not k.revoked_at]
    assert sorted(k.kind for k in live) == ["admin", "write"]


PRODUCTION_SECRETS = {
    "link_secret": "a-long-random-production-secret",
    "payload_keys": new_key_spec("k1"),
    "id_secret": "another-long-random-production-secret",
}


async def test_production_refuses_default_secrets_and_missing_admin(db_url):
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        prod = Settings.model_validate({"DATABASE_URL": db_url, "JOURNEYS_ENV": "production"})
        with pytest.raises(SystemExit, match="JOURNEYS_LINK_SECRET is the development default"):
            await check_secrets(conn, prod)
        with pytest.raises(SystemExit, match="JOURNEYS_PAYLOAD_KEYS holds the development key"):
            await check_secrets(
                conn, prod.model_copy(update={"link_secret": "a-long-random-production-secret"})
            )
        prod = prod.model_copy(update=PRODUCTION_SECRETS)
        with pytest.raises(SystemExit, match="no admin token exists"):
            await check_secrets(conn, prod)
        await keys.create(conn, "admin", "ops")
        await check_secrets(conn, prod)  # fine now
        leaky = prod.model_copy(update={"dev_admin_token": "ja_dev"})
        with pytest.raises(SystemExit, match="refusing to run on development secrets"):
            await check_secrets(conn, leaky)
        dev = leaky.model_copy(update={"env": "development"})
        await check_secrets(conn, dev)
