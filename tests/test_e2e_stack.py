"""End to end on the real Temporal dev server: the stack ``make run`` starts (dev server,
embedded PostgreSQL, worker process), driven through the ``journeys`` CLI and the
``temporal`` CLI, as an operator would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import Stack, binary, free_port
from tests.conftest import ROOT, create_database, with_db

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def stack(tmp_path: Path, pg_server: str) -> Iterator[Stack]:
    s = outage_stack(tmp_path, f"e2e-{os.getpid()}-{tmp_path.name[-6:]}", _fresh_db(pg_server))
    with s.running():
        s.prepare_database()
        yield s


def _fresh_db(pg_server: str) -> str:
    return with_db(pg_server, create_database(pg_server, "journeys_e2e"))


def cli(stack: Stack, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack.env()}
    proc = subprocess.run(
        [binary("journeys"), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"journeys {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def show(stack: Stack, customer: str) -> dict:
    return json.loads(cli(stack, "show", customer, "--json").stdout)


def eventually(check, *, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (AssertionError, json.JSONDecodeError, KeyError) as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"not true within {timeout}s: {last}")


def temporal_list(stack: Stack, query: str) -> list[dict]:
    out = subprocess.run(
        [
            binary("temporal"),
            "workflow",
            "list",
            "--address",
            stack.env()["TEMPORAL_ADDRESS"],
            "--query",
            query,
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return json.loads(out) if out.strip() else []


def test_events_in_states_visible_in_cli_and_search(stack: Stack):
    worker = stack.start_worker()
    cli(stack, "send", "e2e-1", "Signed Up")
    cli(stack, "send", "e2e-1", "Order Completed", "--prop", "revenue=6000", "--id", "order-1")
    cli(stack, "send", "e2e-1", "Order Completed", "--prop", "revenue=6000", "--id", "order-1")
    cli(stack, "send", "e2e-2", "Signed Up", "--trait", "email=a@b.example", "--trait", "plan=pro")

    state = eventually(
        lambda: (s := show(stack, "e2e-1"))["runs"]["lifecycle"]["state"] == "vip" and s
    )
    assert state["runs"]["lifecycle"]["context"] == {"orders": 1, "spent": 6000.0}  # once
    other = eventually(lambda: show(stack, "e2e-2"))
    assert other["customer"]["traits"] == {"plan": "pro"}  # contact details never reach history
    text = cli(stack, "show", "e2e-1").stdout
    assert "lifecycle v1: vip since" in text and "new → vip (event:order_completed)" in text

    vips = eventually(lambda: temporal_list(stack, 'Journeys = "lifecycle:vip"'))
    assert [w["execution"]["workflowId"] for w in vips] == ["customer-e2e-1"]
    by_id = eventually(lambda: temporal_list(stack, 'CustomerId = "e2e-1"'))
    assert [w["execution"]["workflowId"] for w in by_id] == ["customer-e2e-1"]
    news = eventually(lambda: temporal_list(stack, 'Journeys = "lifecycle:new"'))
    assert [w["execution"]["workflowId"] for w in news] == ["customer-e2e-2"]

    # what the Temporal UI shows an admin: the workflow's current details, decrypted by
    # the API's codec endpoint with the admin token
    _, admin = stack.dev_keys()
    stack.start_api()
    details = subprocess.run(
        [
            binary("temporal"),
            "workflow",
            "metadata",
            "--address",
            stack.env()["TEMPORAL_ADDRESS"],
            "-w",
            "customer-e2e-1",
            "--codec-endpoint",
            stack.codec_endpoint(),
            "--codec-auth",
            f"Bearer {admin}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "**lifecycle** v1: `vip` since" in details
    assert "next: after 90d → `dormant` at" in details
    assert "new → vip (event:order_completed)" in details
    moved = cli(stack, "move", "e2e-2", "lifecycle", "dormant", "--reason", "test")
    assert "lifecycle:dormant" in moved.stdout
    bad = cli(stack, "move", "e2e-2", "lifecycle", "nowhere", "--reason", "x", check=False)
    assert bad.returncode == 1 and "no state 'nowhere'" in bad.stderr
    cli(stack, "send", "e2e-3", "Page Viewed")  # no journey cares: a customer in none
    assert eventually(lambda: show(stack, "e2e-3"))["runs"] == {}
    missing = cli(stack, "show", "nobody", check=False)
    assert missing.returncode == 1 and "no customer 'nobody'" in missing.stderr
    assert worker.poll() is None
    assert_every_customer_replays(stack, 3)
    bad = cli(stack, "replay", "--query", "NoSuchField = 1", check=False)
    assert bad.returncode == 1 and "Temporal refused the query" in bad.stderr


def assert_every_customer_replays(stack: Stack, customers: int) -> None:
    """``journeys replay`` over every customer after a load: the code replays them all."""
    out = cli(stack, "replay").stdout
    assert f"replayed {customers} history(ies) with the current code: 0 failure(s)" in out, out


def test_worker_killed_and_temporal_restarted_nothing_lost(stack: Stack):
    worker = stack.start_worker()
    cli(stack, "send", "e2e-k", "Signed Up")
    eventually(lambda: show(stack, "e2e-k")["runs"]["lifecycle"]["state"] == "new")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    # events sent while no worker runs wait in Temporal
    cli(stack, "send", "e2e-k", "Order Completed", "--prop", "revenue=10", "--id", "k-1")
    stack.procs.remove(worker)
    stack.start_worker()
    eventually(lambda: show(stack, "e2e-k")["runs"]["lifecycle"]["state"] == "active")
    # restart Temporal itself under the worker: it reconnects and goes on
    stack.stop_temporal()
    stack.start_temporal()
    cli(stack, "send", "e2e-k", "Order Completed", "--prop", "revenue=10", "--id", "k-2")
    st = eventually(
        lambda: (s := show(stack, "e2e-k"))["runs"]["lifecycle"]["context"]["orders"] == 2 and s,
        timeout=90,
    )
    assert st["runs"]["lifecycle"]["context"] == {"orders": 2, "spent": 20.0}


def test_worker_waits_for_temporal_that_is_not_up_yet(tmp_path: Path, pg_server: str):
    s = outage_stack(tmp_path, "late", _fresh_db(pg_server))
    s.data_dir.mkdir(parents=True)
    try:
        worker = s.start_worker()  # no Temporal yet
        worker_log = tmp_path / "logs" / "worker.log"

        def waiting() -> bool:
            assert worker.poll() is None, worker_log.read_text()  # it must not give up
            log = worker_log.read_text()
            return "not reachable" in log and "retrying" in log

        # it migrates and publishes first, which takes a while on a busy machine
        eventually(waiting, timeout=60)
        time.sleep(2)
        assert worker.poll() is None, worker_log.read_text()
        s.start_temporal()
        s.prepare_database()
        cli(s, "send", "late-1", "Lead Created")
        eventually(
            lambda: show(s, "late-1")["runs"]["lead_followup"]["state"] == "waiting", timeout=60
        )
    finally:
        s.stop()


def test_worker_waits_for_postgres_that_is_not_up_yet(tmp_path: Path, pg_server: str):
    from urllib.parse import parse_qs, urlparse

    # PostgreSQL at a socket directory that has no socket yet: unreachable until the
    # test links the real server's socket into it
    real_dir = parse_qs(urlparse(pg_server).query)["host"][0]
    (real,) = (p for p in Path(real_dir).glob(".s.PGSQL.*") if not p.name.endswith(".lock"))
    late_dir = Path(tempfile.mkdtemp(prefix="pg-late-"))
    url = _fresh_db(pg_server).replace(real_dir, str(late_dir))
    assert url != pg_server
    s = outage_stack(tmp_path, "pglate", url)
    with s.running():
        worker = s.start_worker()
        worker_log = tmp_path / "logs" / "worker.log"

        def log_says(*words: str) -> bool:
            assert worker.poll() is None, worker_log.read_text()  # it must not give up
            log = worker_log.read_text()
            return all(w in log for w in words)

        eventually(lambda: log_says("PostgreSQL is not reachable", "retrying"), timeout=60)
        (late_dir / real.name).symlink_to(real)  # PostgreSQL comes up
        eventually(lambda: log_says("published", "worker polling task queue"), timeout=90)
        assert worker.poll() is None


def _post(stack: Stack, path: str, body: dict, key: str) -> int:
    import httpx

    r = httpx.post(
        f"http://127.0.0.1:{stack.api_port}{path}", json=body, auth=(key, ""), timeout=10
    )
    return r.status_code


def _orders(stack: Stack, customer: str) -> int:
    return show(stack, customer)["runs"]["lifecycle"]["context"]["orders"]


def outage_stack(tmp_path: Path, queue: str, database_url: str | None) -> Stack:
    """A stack of its own, on free ports, whose parts the test stops and starts."""
    return Stack(
        data_dir=tmp_path / "data",
        temporal_port=free_port(),
        ui_port=free_port(),
        api_port=free_port(),
        database_url=database_url,
        log_dir=tmp_path / "logs",
        task_queue=queue,
        extra_env={"JOURNEYS_STICKY_TIMEOUT_SECONDS": "3"},
    )


def order(customer: str, message_id: str) -> dict:
    return {
        "userId": customer,
        "event": "Order Completed",
        "messageId": message_id,
        "properties": {"revenue": 10},
    }


def test_ingestion_goes_on_while_temporal_is_down(tmp_path: Path, pg_server: str):
    s = outage_stack(tmp_path, "outage", _fresh_db(pg_server))
    s.data_dir.mkdir(parents=True)
    try:
        s.prepare_database()
        write, _ = s.dev_keys()
        s.start_api()  # Temporal is not running
        for i in range(5):
            assert _post(s, "/v1/track", order("down-1", f"d{i}"), write) == 200
        import psycopg

        with psycopg.connect(s.database_url or "") as conn:
            waiting = conn.execute("SELECT count(*) FROM outbox").fetchone()
        assert waiting == (5,)  # stored durably, waiting for the engine
        s.start_temporal()
        s.start_worker()
        eventually(lambda: _orders(s, "down-1") == 5, timeout=90)
        # Temporal restarts under the API and the worker: they reconnect, nothing is lost
        s.stop_temporal()
        for i in range(5, 8):
            assert _post(s, "/v1/track", order("down-1", f"d{i}"), write) == 200
        s.start_temporal()
        eventually(lambda: _orders(s, "down-1") == 8, timeout=120)
        with psycopg.connect(s.database_url or "") as conn:
            assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (0,)
    finally:
        s.stop()


def test_worker_sigkill_mid_stream_nothing_lost_nothing_twice(tmp_path: Path, pg_server: str):
    import threading

    s = outage_stack(tmp_path, "kill", _fresh_db(pg_server))
    with s.running():
        s.prepare_database()
        write, _ = s.dev_keys()
        s.start_api()
        worker = s.start_worker()
        n = 60
        statuses: list[int] = []

        def stream() -> None:
            for i in range(n):
                body = order("kill-1", f"k{i}")
                statuses.append(_post(s, "/v1/track", body, write))
                if i % 7 == 0:  # an SDK retry: the same message again
                    statuses.append(_post(s, "/v1/track", body, write))
                time.sleep(0.05)

        sender = threading.Thread(target=stream)
        sender.start()
        time.sleep(1.0)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        s.procs.remove(worker)
        time.sleep(1.0)
        s.start_worker()
        sender.join()
        assert set(statuses) == {200}
        eventually(lambda: _orders(s, "kill-1") == n, timeout=120)
        time.sleep(2)
        assert _orders(s, "kill-1") == n
        import psycopg

        with psycopg.connect(s.database_url or "") as conn:
            # every action ran once: one welcome, no duplicates after the kill
            rows = conn.execute(
                "SELECT action, count(*) FROM action_log GROUP BY action"
            ).fetchall()
        assert dict(rows) == {"send": 1}
        assert_every_customer_replays(s, 1)  # its history, split by the kill, replays


def test_postgres_restart_refuses_then_accepts_and_delivers(tmp_path: Path):
    s = outage_stack(tmp_path, "pgdown", None)  # its own embedded PostgreSQL
    with s.running():  # its own embedded PostgreSQL, which we stop and start
        s.prepare_database()
        write, _ = s.dev_keys()
        s.start_api()
        s.start_worker()

        assert _post(s, "/v1/track", order("pg-1", "p0"), write) == 200
        eventually(lambda: _orders(s, "pg-1") == 1, timeout=60)
        url = s.database_url
        s.stop_postgres()
        # while the store is down nothing is acknowledged: SDKs keep the event and retry
        assert _post(s, "/v1/track", order("pg-1", "p1"), write) == 503
        s.restart_postgres()
        assert s.database_url == url
        eventually(lambda: _post(s, "/v1/track", order("pg-1", "p1"), write) == 200, timeout=60)
        assert _post(s, "/v1/track", order("pg-1", "p2"), write) == 200
        eventually(lambda: _orders(s, "pg-1") == 3, timeout=90)
