"""``journeys demo`` on the real stack (Temporal dev server, PostgreSQL, worker, API, mail
catcher): a small shop sent through the API, segments refreshed, surveys answered, and the
report has something to show; a second run stores nothing new."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devstack.stack import Stack, binary, free_port
from tests.conftest import ROOT, create_database, with_db

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def stack(tmp_path: Path, pg_server: str) -> Iterator[Stack]:
    smtp = str(free_port())
    s = Stack(
        data_dir=tmp_path / "data",
        temporal_port=free_port(),
        ui_port=free_port(),
        api_port=free_port(),
        database_url=with_db(pg_server, create_database(pg_server, "journeys_demo")),
        log_dir=tmp_path / "logs",
        task_queue=f"demo-{os.getpid()}-{tmp_path.name[-6:]}",
        extra_env={"SMTP_PORT": smtp, "JOURNEYS_MAILCATCHER_PORT": smtp},
    )
    with s.running():
        s.prepare_database()
        yield s


def journeys(stack: Stack, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("journeys"), *args],
        cwd=ROOT,
        env={**os.environ, **stack.env(), **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_demo_fills_the_stack_and_the_report_shows_it(stack: Stack, tmp_path: Path):
    write, admin = stack.dev_keys()
    keys = {"JOURNEYS_DEV_WRITE_KEY": write, "JOURNEYS_DEV_ADMIN_TOKEN": admin}
    args = ("demo", "--customers", "30", "--months", "3", "--seed", "7", "--wait", "120")

    down = journeys(stack, *args, env=keys)  # nothing listens on the API port yet
    assert down.returncode == 1 and "start the stack with 'make run'" in down.stderr

    stack.start_mailcatcher()
    stack.start_api()
    stuck = journeys(stack, *args[:-1], "5", env=keys)  # no worker: it says so in 5 s
    assert stuck.returncode == 1 and "is the worker running?" in stuck.stderr, stuck.stderr
    stack.start_worker()
    first = journeys(stack, *args, env=keys)  # goes on: the history is there already
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert "a shop of 30 customers over 3 months (seed 7)" in out
    assert "refreshing segments as of" in out  # the history refresh, then today's
    assert "customers answered their NPS survey" in out
    assert "done in" in out

    with psycopg.connect(stack.database_url or "") as conn:
        events = conn.execute(
            "SELECT name, count(*) FROM events WHERE customer_id LIKE 'demo7-%' GROUP BY 1"
        ).fetchall()
        tiered = conn.execute(
            "SELECT count(*) FROM customer_metrics WHERE customer_id LIKE 'demo7-%'"
        ).fetchone()
        answered = conn.execute(
            "SELECT count(*) FROM surveys WHERE answered_at IS NOT NULL"
        ).fetchone()
        refreshes = conn.execute("SELECT count(*) FROM segment_refreshes").fetchone()
        buyers = conn.execute(
            "SELECT count(DISTINCT customer_id) FROM events WHERE name = 'order_completed'"
        ).fetchone()
    counts: dict[str, int] = dict(events)
    assert counts["signed_up"] == 30 and counts["order_completed"] > 30
    assert counts["order_delivered"] > 0 and counts["segment_changed"] > 0
    assert tiered == buyers and refreshes == (2,)  # as of 60 days ago, then today
    assert answered is not None and answered[0] > 0

    report = journeys(stack, "report", "--html", str(tmp_path / "r.html"), env=keys)
    assert report.returncode == 0, report.stderr
    text = report.stdout
    for figure in ("Customers per segment", "Journey lifecycle", "Journey nps", "NPS"):
        assert figure in text, text
    assert (tmp_path / "r.html").stat().st_size > 10_000

    # the same seed again: every message id is known, nothing is stored twice
    again = journeys(stack, *args, env=keys)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "(0 new, the rest already there)" in again.stdout, again.stdout
    assert "already: no refresh" in again.stdout  # nothing new to tier
    assert "asked" not in again.stdout  # nobody is surveyed twice


def test_demo_sends_come_back_orders_that_convert_in_the_experiment(stack: Stack):
    write, admin = stack.dev_keys()
    keys = {"JOURNEYS_DEV_WRITE_KEY": write, "JOURNEYS_DEV_ADMIN_TOKEN": admin}
    stack.start_mailcatcher()
    stack.start_worker()
    stack.start_api()
    args = ("demo", "--customers", "150", "--months", "12", "--seed", "3", "--wait", "120")
    run = journeys(stack, *args, env=keys)
    assert run.returncode == 0, run.stdout + run.stderr
    found = re.search(
        r"winback_2026q4: (\d+) lapsing customers enrolled .*; (\d+) come back", run.stdout
    )
    assert found, run.stdout
    enrolled, back = int(found[1]), int(found[2])
    assert enrolled > 0
    with psycopg.connect(stack.database_url or "") as conn:
        assigned = conn.execute(
            "SELECT count(*) FROM experiment_assignments WHERE experiment = 'winback_2026q4'"
        ).fetchone()
        converted = conn.execute(
            "SELECT count(*) FROM conversions WHERE experiment = 'winback_2026q4'"
        ).fetchone()
    assert assigned == (enrolled,)
    assert converted == (back,)  # every come-back order is a conversion, once
    again = journeys(stack, *args, env=keys)  # the come-back orders are not sent twice
    assert again.returncode == 0 and "(0 new, the rest already there)" in again.stdout
