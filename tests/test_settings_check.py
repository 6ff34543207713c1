"""One settings check at every entry point: in production (the default) a development or
public secret is refused with a sentence saying what to set, before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import cli
from devstack.stack import Stack
from orchestration.codec import new_key_spec
from settings import Settings, UnsafeSettings, check_settings, get_settings, unsafe_defaults
from tests.helpers import ROOT

GOOD_SECRET = "a-long-random-production-secret"
# production's other secrets, set: each test speaks of the ones it leaves out
OTHER_SECRETS = {
    "JOURNEYS_PAYLOAD_KEYS": new_key_spec("k1"),
    "JOURNEYS_ID_SECRET": "another-long-random-production-secret",
}
# an address nothing listens on: an entry point that got past the check would hang or fail
# differently, so the refusal must come first
NOWHERE = {
    "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
    "TEMPORAL_ADDRESS": "127.0.0.1:9",
}


def production(**values: str) -> Settings:
    return Settings.model_validate({"JOURNEYS_ENV": "production", **OTHER_SECRETS, **values})


def test_production_refuses_the_public_link_secret_and_says_what_to_set():
    with pytest.raises(UnsafeSettings) as caught:
        check_settings(production())
    message = str(caught.value.code)
    assert message.startswith("JOURNEYS_LINK_SECRET is the development default")
    assert "secrets.token_urlsafe(32)" in message and "JOURNEYS_ENV=development" in message
    assert caught.value.code != 0  # an entry point that lets it through exits 1


def test_short_secrets_and_dev_keys_are_refused_and_all_reported_at_once():
    problems = unsafe_defaults(production(JOURNEYS_LINK_SECRET="short", JOURNEYS_DEV_WRITE_KEY="x"))
    assert len(problems) == 2
    assert "refusing to run on development secrets" in problems[0]
    assert "shorter than 16 characters" in problems[1]


def test_a_real_secret_in_production_and_anything_in_development_pass():
    check_settings(production(JOURNEYS_LINK_SECRET=GOOD_SECRET))
    check_settings(Settings.model_validate({"JOURNEYS_ENV": "development"}))


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    full = {**clean, **NOWHERE, "PYTHONPATH": str(ROOT), "JOURNEYS_ENV": "production", **env}
    # run from an empty directory, so no developer's .data/stack.env is read
    return subprocess.run(
        [sys.executable, *args], cwd=tmp_path, env=full, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("entry", [[str(ROOT / "worker.py")], ["-m", "api"]])
def test_the_worker_and_the_api_refuse_to_start(entry, tmp_path):
    done = _run(entry, tmp_path)
    assert done.returncode == 1, done.stderr
    assert "JOURNEYS_LINK_SECRET is the development default" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_worker_gets_past_the_check_with_a_secret(tmp_path):
    done = _run([str(ROOT / "worker.py")], tmp_path, JOURNEYS_LINK_SECRET=GOOD_SECRET,
                DATABASE_URL="", **OTHER_SECRETS)  # fmt: skip
    assert done.returncode == 1 and "DATABASE_URL is not set" in done.stderr


def test_live_cli_commands_refuse(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("JOURNEYS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("TEMPORAL_ADDRESS", NOWHERE["TEMPORAL_ADDRESS"])
    get_settings.cache_clear()
    try:
        assert cli.run(["show", "42"]) == 1
        assert "JOURNEYS_LINK_SECRET is the development default" in capsys.readouterr().err
        monkeypatch.setenv("JOURNEYS_ENV", "development")
        get_settings.cache_clear()
        assert cli.run(["show", "42"]) == 1  # past the check: now Temporal is unreachable
        assert "cannot reach Temporal" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()


def test_a_stack_in_production_refuses_before_starting_anything(tmp_path):
    stack = Stack(data_dir=tmp_path / "data", extra_env={"JOURNEYS_ENV": "production"})
    with pytest.raises(UnsafeSettings, match="JOURNEYS_LINK_SECRET"), stack.running():
        pass
    assert not (tmp_path / "data").exists() and stack.procs == []
