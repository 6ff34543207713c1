"""What one message costs PostgreSQL, counted on the pool's connections. A welcome to a
customer with an email is three statements on two pool checkouts: in one transaction the
claim (the row, the policy's reads and the account manager) and the hand-over; after the
relay took it, the 'sent' record with the action's log entry. One to a customer without an
email yet (a first order before the identify) is three statements on one checkout: the
claim, the contact lock and the wait with the log entry. A change that adds a round trip
to every message fails here, not only in ``bench.message_bench``; and the wait's own check
of the address agrees with the claim's reading of it in Python."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import AsyncConnection, AsyncCursor
from psycopg.types.json import Jsonb

from activities.actions import ActionActivities
from engine.policy import Policy
from store import action_log, messages
from store.db import pool
from tests.helpers import local_activity_env, send_action, until
from tests.standins import RecordingSMTPServer
from tests.test_actions_workflow import rows, settings_for

STATEMENTS: list[str] = []


class _Counting(AsyncCursor[Any]):
    async def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        STATEMENTS.append(" ".join(str(query).split()[:2]))
        return await super().execute(query, *args, **kwargs)


async def _count(conn: AsyncConnection[Any]) -> None:
    conn.cursor_factory = _Counting


async def _welcome_to(db_url: str, traits: dict[str, Any]) -> tuple[list[str], int, Any]:
    """The welcome to c1 with ``traits``: its statements, pool checkouts and result."""
    db = pool(db_url, max_size=2, configure=_count)
    await db.open()
    try:
        async with db.connection() as conn:
            await conn.execute(
                "INSERT INTO customers (customer_id, traits) VALUES ('c1', %s)", (Jsonb(traits),)
            )
        with RecordingSMTPServer() as smtp:
            settings = settings_for(smtp, db_url)
            acts = ActionActivities(db, settings, policy=Policy(await_contact=900))
            env = local_activity_env()
            welcome = send_action(
                "c1", "k1", datetime.now(UTC), template="welcome", channel="email"
            )
            STATEMENTS.clear()
            before = db.get_stats().get("requests_num", 0)
            result = await env.run(acts.perform, welcome)
            checkouts = db.get_stats().get("requests_num", 0) - before
            statements = list(STATEMENTS)
        assert len(smtp.mail) == (1 if traits else 0)
    finally:
        await db.close()
    return statements, checkouts, result


async def test_a_welcome_is_three_statements_on_two_pool_checkouts(db, db_url):
    statements, checkouts, result = await _welcome_to(db_url, {"email": "c1@example.com"})
    assert result.status == "done"
    assert await rows(db, "SELECT status FROM messages") == [("sent",)]
    assert await rows(db, "SELECT status FROM action_log") == [("done",)]
    assert statements == ["WITH claimed", "UPDATE messages", "WITH changed"]
    assert checkouts == 2


async def test_a_welcome_waiting_for_the_email_is_three_statements_on_one_checkout(db, db_url):
    statements, checkouts, result = await _welcome_to(db_url, {})
    assert (result.status, result.wake_on) == ("deferred", "contact_added")
    assert await rows(db, "SELECT status, awaits FROM messages") == [("deferred", "email")]
    assert await rows(db, "SELECT status FROM action_log") == [("deferred",)]
    assert statements == ["WITH claimed", "SELECT pg_advisory_xact_lock(%s,", "WITH changed"]
    assert checkouts == 1


NEW = messages.NewMessage(
    key="k1", customer_id="c1", journey="lifecycle", state="new", template="welcome",
    channel="email", marketing=False,
)  # fmt: skip
NOW = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)
TRUTHY: list[Any] = ["a@b.test", " ", "0", 1, -1.5, True, ["a@b.test"], [[]], {"a": 1}]
FALSY: list[Any] = ["", 0, 0.0, -0.0, False, [], {}, None, "-"]  # "-": no such trait


@pytest.mark.parametrize(
    "email",
    TRUTHY + FALSY,
)
async def test_the_wait_reads_an_address_as_the_claim_does(db, email):
    """``wait_for_contact`` checks the trait in SQL; the messenger decided in Python
    (``traits.get('email')``) that there is none. Were they to disagree, a message would
    be tried again at once for ever, or wait for an address it has."""
    traits = {} if email == "-" else {"email": email}
    async with db.connection() as conn:
        await conn.execute("INSERT INTO customers (customer_id, traits) VALUES ('c1', %s)",
                           (Jsonb(traits),))  # fmt: skip
        async with conn.transaction():
            await messages.claim(conn, NEW, now=NOW)
            await messages.lock_contact(conn, ["c1"])
            waits = await messages.wait_for_contact(
                conn, NEW, "waiting", NOW + timedelta(minutes=15), contact="email"
            )
    assert waits == (not traits.get("email"))


async def test_the_wait_sees_an_address_an_identify_commits_under_the_lock(db, db_url):
    """An identify holds the contact lock while it writes the email (``ingest.accept``):
    the wait, queued behind the lock, then sees the address and leaves the message to be
    tried again at once; the action's log entry is written all the same."""
    entry = action_log.ActionEntry("k1", "c1", "lifecycle", 1, "new", "send", {}, "deferred")
    async with db.connection() as conn:
        await conn.execute("INSERT INTO customers (customer_id, traits) VALUES ('c1', '{}')")
    identify = await AsyncConnection.connect(db_url, autocommit=True)
    try:
        async with db.connection() as conn, conn.transaction():
            claimed = await messages.claim(conn, NEW, now=NOW)
            async with identify.transaction():
                await messages.lock_contact(identify, ["c1"])
                await identify.execute(
                    'UPDATE customers SET traits = \'{"email": "c1@example.com"}\''
                )

                async def wait() -> bool:
                    await messages.lock_contact(conn, ["c1"])
                    return await messages.wait_for_contact(
                        conn, NEW, "waiting", NOW + timedelta(minutes=15), contact="email",
                        log=entry,
                    )  # fmt: skip

                waiting = asyncio.ensure_future(wait())
                await until(lambda: _waits_for_a_lock(identify), timeout=10)
                assert not waiting.done()
            waits = await waiting  # the identify committed: the lock is free
    finally:
        await identify.close()
    assert claimed.traits == {} and waits is False
    assert await rows(db, "SELECT status, awaits FROM messages") == [("sending", None)]
    assert await rows(db, "SELECT status FROM action_log") == [("deferred",)]


async def _waits_for_a_lock(observer: AsyncConnection[Any]) -> bool:
    """Whether some session of this database waits for an advisory lock."""
    cur = await observer.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    )
    return bool((await cur.fetchone() or (0,))[0])
