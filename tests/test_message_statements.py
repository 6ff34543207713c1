"""What one message costs PostgreSQL, counted on the pool's connections: a welcome to a
customer with an email is three statements on two pool checkouts. In one transaction the
claim (the row, the policy's reads and the account manager) and the hand-over; after the
relay took it, the 'sent' record with the action's log entry. A change that adds a round
trip to every message fails here, not only in ``bench.message_bench``."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, AsyncCursor
from psycopg.types.json import Jsonb
from temporalio.testing import ActivityEnvironment

from activities.actions import ActionActivities
from engine.model import ActionCommand
from store.db import pool
from tests.standins import RecordingSMTPServer
from tests.test_actions_workflow import rows, settings_for
from workflows.io import ActionInput

STATEMENTS: list[str] = []


class _Counting(AsyncCursor[Any]):
    async def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        STATEMENTS.append(" ".join(str(query).split()[:2]))
        return await super().execute(query, *args, **kwargs)


async def _count(conn: AsyncConnection[Any]) -> None:
    conn.cursor_factory = _Counting


def _welcome(key: str) -> ActionInput:
    command = ActionCommand(
        kind="send", args={"template": "welcome", "channel": "email"}, journey="lifecycle",
        version=1, state="new", idempotency_key=key, summary="send welcome",
    )  # fmt: skip
    return ActionInput(customer_id="c1", command=command, now=datetime.now(UTC))


async def test_a_welcome_is_three_statements_on_two_pool_checkouts(db_url):
    db = pool(db_url, max_size=2, configure=_count)
    await db.open()
    try:
        async with db.connection() as conn:
            await conn.execute(
                "INSERT INTO customers (customer_id, traits) VALUES ('c1', %s)",
                (Jsonb({"email": "c1@example.com"}),),
            )
        with RecordingSMTPServer() as smtp:
            acts = ActionActivities(db, settings_for(smtp, db_url))
            env = ActivityEnvironment()
            env.info = dataclasses.replace(  # as the workflow runs it: local, 10 s
                env.info, is_local=True, start_to_close_timeout=timedelta(seconds=10),
                started_time=datetime.now(UTC),
            )  # fmt: skip
            STATEMENTS.clear()
            before = db.get_stats().get("requests_num", 0)
            assert (await env.run(acts.perform, _welcome("k1"))).status == "done"
            checkouts = db.get_stats().get("requests_num", 0) - before
            sent = list(STATEMENTS)
        assert len(smtp.mail) == 1
        assert await rows(db, "SELECT status FROM messages") == [("sent",)]
        assert await rows(db, "SELECT status FROM action_log") == [("done",)]
    finally:
        await db.close()
    assert sent == ["WITH claimed", "UPDATE messages", "WITH finished"]
    assert checkouts == 2
