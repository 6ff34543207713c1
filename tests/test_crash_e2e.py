"""Stopping and killing a real worker process while the relay holds a message (#10,
section 7): a graceful stop (SIGTERM) finishes the send and records it, so nothing is sent
twice; under ``delivery: at_most_once`` a SIGKILL in the window between the relay's answer
and the record leaves the message ``unknown``, not sent a second time."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import create_database, with_db
from tests.standins import CaughtMail, RecordingSMTPServer
from tests.test_actions_e2e import (
    EFFECTS,
    _customer,
    _logged,
    make_stack,
    rules_dir,
    run,
    send,
    sql,
    wait,
)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def database(pg_server: str) -> str:
    return with_db(pg_server, create_database(pg_server, "journeys_crash"))


def test_sigterm_while_the_relay_holds_the_message_sends_it_once(tmp_path: Path, database: str):
    worker: list[subprocess.Popen[bytes]] = []

    async def stop_worker_mid_send(_: CaughtMail) -> None:
        if len(worker) == 1:
            os.kill(worker[0].pid, signal.SIGTERM)  # the worker is told to stop ...
            await asyncio.sleep(1.5)  # ... while the relay has not answered yet

    # the local tries are refused, so the send goes on as a regular activity: the kind a
    # stopping worker cancels (it waits for local ones with their workflow task)
    refusals = ["451 4.7.1 try later"] * 2
    with RecordingSMTPServer(replies=refusals, on_data=stop_worker_mid_send) as smtp:
        rules = rules_dir(tmp_path, "effects", EFFECTS.format(hook="http://127.0.0.1:9/hook"))
        stack = make_stack(tmp_path, database, rules, smtp.env())
        with stack.running():
            stack.prepare_database()
            run(_customer(database, "term-1"))
            worker.append(stack.start_worker())
            run(send(stack, "term-1", "go", "send_email", timeout=10))
            assert worker[0].wait(timeout=60) == 0  # it finished the send, then exited
            assert run(_message_status(database, "term-1")) == ["sent"]
            worker.append(stack.start_worker())  # whatever was handed back runs here
            wait(lambda: run(_logged(database, "term-1")))
            stack.stop()
    assert [m.rcpt_tos for m in smtp.mail] == [["term-1@x.test"]]
    assert len(smtp.rejected) == 2
    assert run(_message_status(database, "term-1")) == ["sent"]


def test_at_most_once_sigkill_after_the_relay_accepted_records_unknown(
    tmp_path: Path, database: str
):
    with RecordingSMTPServer() as smtp:
        rules = rules_dir(tmp_path, "effects", EFFECTS.format(hook="http://127.0.0.1:9/hook"))
        (rules / "policy.yaml").write_text(
            "frequency_caps: []\ndelivery: {templates: {welcome: at_most_once}}\n"
        )
        env = {
            **smtp.env(),
            "JOURNEYS_FAULT_KILL_AT": "message_delivered",
            "JOURNEYS_FAULT_MARKER": str(tmp_path / "marker"),
        }
        stack = make_stack(tmp_path, database, rules, env)
        with stack.running():
            stack.prepare_database()
            run(_customer(database, "kill-1"))
            worker = stack.start_worker()
            run(send(stack, "kill-1", "go", "send_email"))
            assert worker.wait(timeout=60) == -signal.SIGKILL  # the relay took it, then
            stack.start_worker()  # the marker exists: this one runs through

            async def recorded() -> list[Any]:
                return await sql(
                    database, "SELECT status FROM action_log WHERE customer_id = 'kill-1'"
                )

            wait(lambda: run(recorded()) == [("skipped",)])
    assert len(smtp.mail) == 1  # once, not twice
    assert run(_message_status(database, "kill-1")) == ["unknown"]


async def _message_status(url: str, cid: str) -> list[str]:
    rows = await sql(url, "SELECT status FROM messages WHERE customer_id = %s", cid)
    return [r[0] for r in rows]
