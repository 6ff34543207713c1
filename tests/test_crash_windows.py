"""Crash windows a chaos run found in sending messages (#10, section 7): a PostgreSQL drop
right after the relay took a message, ``delivery: at_most_once``, and a welcome whose
customer gives their email only after signing up (``await_contact``)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from temporalio.api.enums.v1 import EventType

from activities.actions import ActionActivities
from activities.delivery import Messenger, Outgoing
from engine.identity import workflow_id
from engine.policy import Delivery, Policy
from messaging.render import Renderer
from store import messages
from tests.conftest import running_worker
from tests.helpers import ROOT, local_activity_env, publish_shipped, send_action, until
from tests.standins import CaughtMail, RecordingSMTPServer
from tests.test_actions_workflow import Shop, rows, settings_for

BASE = {
    "customer": {"id": "c1", "tier": None, "segment": None},
    "journey": {"name": "lifecycle", "version": 1},
    "state": "new",
    "ctx": {},
    "event": None,
    "manager": None,
}
WELCOME = Outgoing(
    key="k1",
    customer_id="c1",
    journey="lifecycle",
    state="new",
    template="welcome",
    channel="email",
    marketing=False,
)
UNKNOWN = "outcome is unknown; delivery: at_most_once, so it is not sent again"


async def _customer(db: Any, email: str | None = "c1@example.com") -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO customers (customer_id, traits) VALUES ('c1', %s)",
            (Jsonb({"email": email} if email else {}),),
        )


def _cut_connections(db_url: str) -> None:
    """What a PostgreSQL restart does to the worker's pool: every connection is dropped
    (the next statement on each fails with AdminShutdown or a lost connection)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


async def test_postgres_dropping_after_the_relay_accepted_is_retried_never_resent(
    db, db_url, caplog
):
    await _customer(db)

    async def drop_postgres(_: CaughtMail) -> None:
        await asyncio.to_thread(_cut_connections, db_url)

    caplog.set_level(logging.WARNING, logger="activities._bookkeeping")
    with RecordingSMTPServer(on_data=drop_postgres) as smtp:
        messenger = Messenger(
            db, settings_for(smtp, db_url), Renderer(ROOT / "templates"), Policy()
        )
        sent = await messenger.send(WELCOME, BASE, datetime.now(UTC))
        again = await messenger.send(WELCOME, BASE, datetime.now(UTC))  # a retry finds it
    assert (sent.status, again.status) == ("done", "already_done")
    assert len(smtp.mail) == 1
    assert await rows(db, "SELECT status, delivering_until FROM messages") == [("sent", None)]
    assert "recording message k1 as sent failed" in caplog.text  # and then it worked


async def test_postgres_dropping_after_the_relay_accepted_still_logs_the_action_once(
    db, db_url, caplog
):
    """PostgreSQL drops right after the relay took the message: the 'sent' record and the
    action's log entry (one statement) are retried until it is back; one mail, one entry
    (tests/test_message_statements.py counts the statements)."""
    await _customer(db)

    async def drop_postgres(_: CaughtMail) -> None:
        await asyncio.to_thread(_cut_connections, db_url)

    caplog.set_level(logging.WARNING, logger="activities._bookkeeping")
    with RecordingSMTPServer(on_data=drop_postgres) as smtp:
        acts = ActionActivities(db, settings_for(smtp, db_url))
        env = local_activity_env()
        data = send_action("c1", "k1", datetime.now(UTC), template="welcome", channel="email")
        result = await env.run(acts.perform, data)
        again = await env.run(acts.perform, data)  # a retry finds it done
    assert (result.status, again.status) == ("done", "already_done")
    assert len(smtp.mail) == 1
    assert await rows(db, "SELECT status FROM messages") == [("sent",)]
    assert await rows(db, "SELECT idempotency_key, status FROM action_log") == [("k1", "done")]
    assert "recording message k1 as sent failed" in caplog.text  # and then it worked


async def test_a_log_entry_that_fails_after_the_relay_accepted_still_records_the_delivery(
    db, db_url, monkeypatch
):
    """The 'sent' record and the action's log entry are one statement: when the entry
    fails (not PostgreSQL: a retry would not help), the delivery is recorded alone, so a
    retry does not send the message again; the caller logs the action on its own."""
    from store import action_log

    await _customer(db)
    monkeypatch.setattr(action_log, "RECORD", "INSERT INTO no_such_table VALUES (1)")
    entry = action_log.ActionEntry("k1", "c1", "lifecycle", 1, "new", "send", {}, "done")
    with RecordingSMTPServer() as smtp:
        messenger = Messenger(
            db, settings_for(smtp, db_url), Renderer(ROOT / "templates"), Policy()
        )
        sent = await messenger.send(WELCOME, BASE, datetime.now(UTC), entry=entry)
        again = await messenger.send(WELCOME, BASE, datetime.now(UTC))
    assert (sent.status, sent.logged, again.status) == ("done", False, "already_done")
    assert len(smtp.mail) == 1
    assert await rows(db, "SELECT status, delivering_until FROM messages") == [("sent", None)]


async def _handed_over_then_killed(db: Any) -> None:
    """The row a worker SIGKILLed between the relay's answer and its record leaves."""
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO messages (idempotency_key, customer_id, journey, state, template,"
            " channel, marketing, status, attempts, delivering_until) VALUES ('k1', 'c1',"
            " 'lifecycle', 'new', 'welcome', 'email', false, 'sending', 1,"
            " now() - interval '1 second')"
        )


async def test_at_most_once_records_unknown_instead_of_sending_again(db, db_url):
    await _customer(db)
    await _handed_over_then_killed(db)
    policy = Policy(delivery=Delivery(templates={"welcome": "at_most_once"}))
    with RecordingSMTPServer() as smtp:
        messenger = Messenger(db, settings_for(smtp, db_url), Renderer(ROOT / "templates"), policy)
        first = await messenger.send(WELCOME, BASE, datetime.now(UTC))
        later = await messenger.send(WELCOME, BASE, datetime.now(UTC))
    assert first.status == "skipped" and UNKNOWN in first.reason
    assert later.status == "skipped" and later.reason.startswith("unknown before:")
    assert smtp.mail == []
    assert await rows(db, "SELECT status FROM messages") == [("unknown",)]
    # the report shows it
    from reports import build_report, render_html, render_text

    async with db.connection() as conn:
        report = await build_report(conn)
    assert report.messages is not None and report.messages.unknown == 1
    text = render_text(report)
    assert "Messages\n========" in text and "1 message(s) with an unknown outcome" in text
    assert '<section id="messages"' in render_html(report)


async def test_at_least_once_sends_again_what_an_earlier_attempt_left_unrecorded(db, db_url):
    await _customer(db)
    await _handed_over_then_killed(db)
    policy = Policy(delivery=Delivery(channels={"sms": "at_most_once"}))  # not email
    with RecordingSMTPServer() as smtp:
        messenger = Messenger(db, settings_for(smtp, db_url), Renderer(ROOT / "templates"), policy)
        assert (await messenger.send(WELCOME, BASE, datetime.now(UTC))).status == "done"
    assert len(smtp.mail) == 1  # the same Message-ID as the first time: receivers drop it
    assert await rows(db, "SELECT status FROM messages") == [("sent",)]


async def _welcome(db: Any) -> list[tuple[Any, ...]]:
    return await rows(db, "SELECT status, reason FROM messages WHERE template = 'welcome'")


async def test_a_welcome_waits_for_the_email_of_a_later_identify_and_goes_out_once(
    time_env, db, db_url, task_queue
):
    await publish_shipped(db_url)
    with RecordingSMTPServer() as smtp:
        settings = settings_for(smtp, db_url)
        policy = Policy(await_contact=15 * 60)
        async with running_worker(
            time_env.client, db, task_queue, settings=settings, policy=policy
        ):
            shop = Shop(time_env, db, db_url, task_queue)
            await shop.send("track", "c1", "Signed Up")  # no email known yet
            await until(lambda: _welcome_is(db, "deferred"))
            await time_env.sleep(5 * 60)
            # the identify wakes the workflow (a contact_added event): the welcome goes
            # out with no time passing, not at a later check
            await shop.send("identify", "c1", traits={"email": "c1@example.com"})
            await until(lambda: _welcome_is(db, "sent"))
            await time_env.sleep(20 * 60)  # past the wait: nothing more happens
            history = await time_env.client.get_workflow_handle(workflow_id("c1")).fetch_history()
            if os.environ.get("RECORD_HISTORIES"):  # replayed by test_customer_workflow
                (ROOT / "tests/histories/welcome_woken_by_contact_added_v6.json").write_text(
                    history.to_json()
                )
    assert [m.rcpt_tos for m in smtp.mail] == [["c1@example.com"]]
    assert [s for s, _ in await _welcome(db)] == ["sent"]
    # deferred (with the sign-up step's log), then sent
    assert local_activities(history) == ["act_then_record", "send_message"]


async def test_an_identify_without_the_awaited_address_or_for_another_customer_wakes_nothing(
    time_env, db, db_url, task_queue
):
    await publish_shipped(db_url)
    with RecordingSMTPServer() as smtp:
        settings = settings_for(smtp, db_url)
        async with running_worker(
            time_env.client, db, task_queue, settings=settings, policy=Policy(await_contact=900)
        ):
            shop = Shop(time_env, db, db_url, task_queue)
            await shop.send("track", "c3", "Signed Up")
            await until(lambda: _welcome_is(db, "deferred"))
            await shop.send("identify", "c3", traits={"name": "Ann", "phone": "+4930123"})
            await shop.send("identify", "c4", traits={"email": "c4@example.com"})
            added = await rows(db, "SELECT count(*) FROM events WHERE name = 'contact_added'")
            await shop.send("identify", "c3", traits={"email": "c3@example.com"})
            again = await rows(
                db, "SELECT customer_id, properties FROM events WHERE name = 'contact_added'"
            )
            await until(lambda: _welcome_is(db, "sent"))
    assert added == [(0,)]  # no email for c3, and c4 waits for nothing
    assert again == [("c3", {"traits": ["email"]})]
    assert [m.rcpt_tos for m in smtp.mail] == [["c3@example.com"]]


async def test_a_welcome_without_an_email_is_suppressed_after_the_wait_with_its_reason(
    time_env, db, db_url, task_queue
):
    await publish_shipped(db_url)
    with RecordingSMTPServer() as smtp:
        settings = settings_for(smtp, db_url)
        policy = Policy(await_contact=15 * 60)
        async with running_worker(
            time_env.client, db, task_queue, settings=settings, policy=policy
        ):
            shop = Shop(time_env, db, db_url, task_queue)
            await shop.send("track", "c2", "Signed Up")
            await until(lambda: _welcome_is(db, "deferred"))
            reason = (await _welcome(db))[0][1]
            assert reason == "waiting up to 15m for the customer's email"

            async def suppressed() -> bool:
                await time_env.sleep(60)
                return await _welcome_is(db, "suppressed")

            await until(suppressed)
            history = await time_env.client.get_workflow_handle(workflow_id("c2")).fetch_history()
    assert smtp.mail == []
    assert await _welcome(db) == [
        ("suppressed", "the customer's profile has no email (waited 15m for it)")
    ]
    # one timer for the whole wait: the first try and the one at its end, nothing between
    assert local_activities(history) == ["act_then_record", "send_message"]


def local_activities(history: Any) -> list[str]:
    """The activity type of each local activity marker in ``history``, in order."""
    return [
        json.loads(e.marker_recorded_event_attributes.details["data"].payloads[0].data)[
            "activity_type"
        ]
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    ]


async def _welcome_is(db: Any, status: str) -> bool:
    return [s for s, _ in await _welcome(db)] == [status]


async def test_an_address_committed_while_the_message_starts_waiting_is_tried_at_once(
    db, db_url, monkeypatch
):
    """The identify commits between the attempt's first read of the traits and its wait:
    under the contact lock the attempt reads them again and tries at once, so the
    identify's wake-up (which found no waiting message yet) is not needed."""
    await _customer(db)  # the email is there, but the claim's read does not see it
    real = messages.claim

    async def read_before_the_identify(conn: Any, *args: Any, **kwargs: Any) -> Any:
        return dataclasses.replace(await real(conn, *args, **kwargs), traits={})

    monkeypatch.setattr(messages, "claim", read_before_the_identify)
    with RecordingSMTPServer() as smtp:
        messenger = Messenger(
            db, settings_for(smtp, db_url), Renderer(ROOT / "templates"), Policy(await_contact=900)
        )
        now = datetime.now(UTC)
        sent = await messenger.send(WELCOME, BASE, now)
    assert (sent.status, sent.retry_at, sent.wake_on) == ("deferred", now, None)
    assert await rows(db, "SELECT awaits FROM messages") == [(None,)]


async def test_the_contact_lock_is_per_customer_and_held_to_the_end_of_the_transaction(db):
    async with db.connection() as holder, holder.transaction():
        await messages.lock_contact(holder, ["c1", "c2"])
        async with db.connection() as other:
            await other.execute("SET lock_timeout = '50ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                async with other.transaction():
                    await messages.lock_contact(other, ["c3", "c1"])
            async with other.transaction():
                await messages.lock_contact(other, ["c3"])  # another customer: not held up
            await other.execute("RESET lock_timeout")
