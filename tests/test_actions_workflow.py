"""The shipped journeys' actions with their real effects, on the time-skipping server:
real PostgreSQL, a real SMTP server standing in for the relay, events through the real
ingestion path (accept -> outbox -> dispatcher -> workflow)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine.model import Event
from engine.names import normalize_event_name
from engine.policy import Policy
from ingest.accept import Interest, accept
from ingest.dispatcher import Dispatcher
from ingest.segment import Message
from orchestration import customers
from settings import Settings
from store import managers, surveys
from tests.conftest import running_worker
from tests.helpers import ROOT, journeys_from, publish, publish_shipped
from tests.standins import RecordingSMTPServer


def settings_for(smtp: RecordingSMTPServer, db_url: str, **extra: str) -> Settings:
    return Settings.model_validate(
        {
            **smtp.env(),
            "DATABASE_URL": db_url,
            "JOURNEYS_TEMPLATES": str(ROOT / "templates"),
            "JOURNEYS_PUBLIC_URL": "https://journeys.example",
            **extra,
        }
    )


class Shop:
    """Sends Segment messages the way the API does and delivers the outbox."""

    def __init__(
        self, env: Any, db: Any, db_url: str, task_queue: str, policy: Policy | None = None
    ) -> None:
        self.env = env
        self.db = db
        self.n = 0
        # as the API's: new customers' catalog with the start, zones from the policy
        self.dispatcher = Dispatcher(
            db,
            db_url,
            self._client,
            task_queue=task_queue,
            batch_size=100,
            time_zones=(policy or Policy()).time_zones(),
        )

    async def _client(self) -> Any:
        return self.env.client

    async def send(self, kind: str, customer: str, name: str | None = None, **fields: Any) -> None:
        self.n += 1
        now = await self.env.get_current_time()
        msg = Message(
            type=kind,
            message_id=f"m-{uuid.uuid4()}",
            customer_id=customer,
            anonymous_id=None,
            name=normalize_event_name(name) if name else None,
            properties=fields.get("properties", {}),
            traits=fields.get("traits", {}),
            event_time=now,
        )
        async with self.db.connection() as conn:
            await accept(conn, 1, [msg], now, Interest(set(), everything=True))
        await self.deliver()

    async def deliver(self) -> None:
        while (await self.dispatcher.deliver_once()).events:
            pass


async def rows(db: Any, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    async with db.connection() as conn:
        cur = await conn.execute(sql, args)
        return list(await cur.fetchall())


async def settle(env: Any, seconds: float = 2) -> None:
    await env.sleep(timedelta(seconds=seconds))


def survey_token(text: str) -> str:
    found = re.search(r"/s/([\w-]+)", text)
    assert found, text
    return found[1]


def body(mail: Any) -> str:
    part = mail.message.get_body(preferencelist=("plain", "html"))
    return str(part.get_content())


async def test_lifecycle_welcome_vip_manager_coupon_redeemed_active_again(
    time_env, db, db_url, task_queue
):
    await publish_shipped(db_url)
    async with db.connection() as conn:
        ann = await managers.add(conn, pool="vip", name="Ann", email="ann@shop.test", capacity=5)
    with RecordingSMTPServer() as smtp:
        settings = settings_for(smtp, db_url)
        async with running_worker(time_env.client, db, task_queue, settings=settings):
            shop = Shop(time_env, db, db_url, task_queue)
            cid = "cust-1"
            traits = {"email": "mia@example.com", "first_name": "Mia"}
            await shop.send("identify", cid, traits=traits)
            await shop.send("track", cid, "Signed Up")
            await smtp.wait_for(1)
            assert smtp.mail[0].rcpt_tos == ["mia@example.com"]
            assert smtp.mail[0].message["Subject"] == "Welcome aboard, Mia!"
            # big spender: VIP, a manager, a note to the manager, the VIP welcome
            await shop.send("track", cid, "Order Completed", properties={"revenue": 6000})
            mails = await smtp.wait_for(3)
            to = sorted((m.rcpt_tos[0], m.message["Subject"]) for m in mails[1:])
            assert [t[0] for t in to] == ["ann@shop.test", "mia@example.com"]
            st = await customers.state(time_env.client, cid)
            assert st.runs["lifecycle"].state == "vip"
            intro = await rows(db, "SELECT title, manager_id, status FROM tasks")
            assert intro == [(f"Introduce yourself to customer {cid}", ann.id, "open")]
            # 90 quiet days: dormant, a reactivation coupon by email
            await time_env.sleep(timedelta(days=91))
            mails = await smtp.wait_for(4)
            offer_mail = body(mails[3])
            code = re.search(r"JRN(?:-[2-9A-HJ-NP-Z]{4}){3}", offer_mail)
            assert code, offer_mail
            assert (await customers.state(time_env.client, cid)).runs["lifecycle"].state == (
                "dormant"
            )
            # the order that uses it redeems it and brings the customer back
            order = {"revenue": 20, "coupon": code.group(0).lower()}
            await shop.send("track", cid, "Order Completed", properties=order)
            await settle(time_env)
            await shop.deliver()
            await settle(time_env)
            st = await customers.state(time_env.client, cid)
            assert st.runs["lifecycle"].state == "active"
            redeemed = await rows(db, "SELECT redeemed_via FROM offers WHERE code = %s", code[0])
            assert redeemed[0][0].startswith("order:")
            names = await rows(db, "SELECT name FROM events WHERE customer_id = %s", cid)
            assert ("offer_redeemed",) in names
    sent = await rows(db, "SELECT template, status FROM messages ORDER BY id")
    assert sent == [
        ("welcome", "sent"),
        ("manager_assigned", "sent"),
        ("vip_welcome", "sent"),
        ("reactivation_offer", "sent"),
    ]
    assert len(smtp.mail) == 4  # nothing twice


def zone_where_it_is(hour: int, now: datetime) -> str:
    """An Etc/GMT zone in which the local time ``now`` falls in ``hour``."""
    for offset in range(-12, 15):
        name = f"Etc/GMT{'-' if offset >= 0 else '+'}{abs(offset)}"  # POSIX signs: inverted
        if now.astimezone(ZoneInfo(name)).hour == hour:
            return name
    raise AssertionError("no zone")


QUIET = """
quiet_hours: {from: "21:00", until: "09:00", default_time_zone: UTC}
"""


async def test_message_in_quiet_hours_goes_out_at_nine_local(
    time_env, db, db_url, task_queue, tmp_path
):
    from engine.policy import load_policy

    (tmp_path / "policy.yaml").write_text(QUIET)
    policy = load_policy(tmp_path)
    await publish_shipped(db_url)
    now = await time_env.get_current_time()
    tz = zone_where_it_is(22, now)
    with RecordingSMTPServer() as smtp:
        settings = settings_for(smtp, db_url)
        async with running_worker(
            time_env.client, db, task_queue, settings=settings, policy=policy
        ):
            shop = Shop(time_env, db, db_url, task_queue)
            await shop.send("identify", "night-owl", traits={"email": "o@x.test", "timezone": tz})
            await shop.send("track", "night-owl", "Signed Up")
            await settle(time_env)
            row = await rows(db, "SELECT status, reason, deferred_until FROM messages")
            assert row[0][0] == "deferred" and "quiet hours 21:00-09:00" in row[0][1]
            nine = row[0][2].astimezone(ZoneInfo(tz))
            assert (nine.hour, nine.minute) == (9, 0) and nine - now < timedelta(hours=12)
            assert smtp.mail == []
            await time_env.sleep(timedelta(hours=12))
            await smtp.wait_for(1)
    sent = await rows(db, "SELECT status, sent_at FROM messages")
    assert sent[0][0] == "sent"
    local = sent[0][1].astimezone(ZoneInfo(tz))
    assert (local.hour, local.minute) == (9, 0)


CAPPED = """
frequency_caps:
  - {name: weekly, channels: [email], max: 1, per: 7d, when_exceeded: skip}
"""

TWO = """
journey: promo
enroll: {on: [promo_started]}
start: a
states:
  a:
    enter:
      - send: {template: referral_ask}
      - send: {template: lead_care}
      - send: {template: welcome, transactional: true}
    on: {never: done}
  done: {final: true}
"""


async def test_caps_hold_across_messages_and_consent_is_respected(
    time_env, db, db_url, task_queue, tmp_path
):
    from engine.policy import load_policy

    (tmp_path / "policy.yaml").write_text(CAPPED)
    await publish(db_url, journeys_from(tmp_path, "promo", TWO))
    with RecordingSMTPServer() as smtp:
        settings = settings_for(smtp, db_url)
        async with running_worker(
            time_env.client, db, task_queue, settings=settings, policy=load_policy(tmp_path)
        ):
            shop = Shop(time_env, db, db_url, task_queue)
            await shop.send("identify", "capped", traits={"email": "c@x.test"})
            await shop.send("identify", "quiet", traits={"email": "q@x.test", "unsubscribed": True})
            await shop.send("track", "capped", "Promo Started")
            await shop.send("track", "quiet", "Promo Started")
            await settle(time_env, 5)
    got = await rows(
        db, "SELECT customer_id, template, status, reason FROM messages ORDER BY customer_id, id"
    )
    assert got == [
        ("capped", "referral_ask", "sent", None),
        ("capped", "lead_care", "suppressed", "frequency cap weekly: 1 per 1w reached"),
        ("capped", "welcome", "sent", None),  # transactional: not capped
        ("quiet", "referral_ask", "suppressed", "the customer opted out of email"),
        ("quiet", "lead_care", "suppressed", "the customer opted out of email"),
        ("quiet", "welcome", "sent", None),
    ]
    assert sorted(m.rcpt_tos[0] for m in smtp.mail) == ["c@x.test", "c@x.test", "q@x.test"]
    unsubscribe = smtp.mail[0].message["List-Unsubscribe"]
    assert unsubscribe and "https://journeys.example/u/" in unsubscribe


async def test_nps_detractor_gets_a_task_promoter_is_asked_for_a_referral(
    time_env, db, db_url, task_queue
):
    await publish_shipped(db_url)
    async with db.connection() as conn:
        ann = await managers.add(conn, pool="vip", name="Ann", email="ann@shop.test", capacity=5)
        await managers.assign(conn, customer_id="sad", pool="vip")
    with RecordingSMTPServer() as smtp:
        settings = settings_for(smtp, db_url)
        async with running_worker(time_env.client, db, task_queue, settings=settings):
            shop = Shop(time_env, db, db_url, task_queue)
            for cid in ("sad", "happy"):
                await shop.send("identify", cid, traits={"email": f"{cid}@x.test"})
                await shop.send("track", cid, "Order Delivered")
            await time_env.sleep(timedelta(days=3, hours=1))
            mails = await smtp.wait_for(2)
            links = {m.rcpt_tos[0]: survey_token(body(m)) for m in mails}
            async with db.connection() as conn:
                now = await time_env.get_current_time()
                await surveys.answer(conn, links["sad@x.test"], score=3, comment="late", now=now)
                await surveys.answer(conn, links["happy@x.test"], score=10, comment=None, now=now)
            await shop.deliver()
            await settle(time_env)
            sad = await customers.state(time_env.client, "sad")
            happy = await customers.state(time_env.client, "happy")
            assert sad.runs["nps"].state == "detractor" and sad.runs["nps"].context["score"] == 3
            assert happy.runs["nps"].state == "promoter"
            await smtp.wait_for(3)
    tasks = await rows(db, "SELECT customer_id, title, manager_id FROM tasks")
    assert tasks == [("sad", "Call back an unhappy customer", ann.id)]
    assert [m.message["Subject"] for m in smtp.mail if m.rcpt_tos == ["happy@x.test"]][-1]


async def test_lead_followup_care_message_call_task_then_closed(time_env, db, db_url, task_queue):
    await publish_shipped(db_url)
    async with db.connection() as conn:
        bob = await managers.add(conn, pool="sales", name="Bob", email="bob@shop.test", capacity=9)
    with RecordingSMTPServer() as smtp:
        settings = settings_for(smtp, db_url)
        async with running_worker(time_env.client, db, task_queue, settings=settings):
            shop = Shop(time_env, db, db_url, task_queue)
            await shop.send("identify", "lead", traits={"email": "lead@x.test"})
            await shop.send("track", "lead", "Lead Created")
            await time_env.sleep(timedelta(days=3, hours=1))
            await smtp.wait_for(1)
            await time_env.sleep(timedelta(days=4))
            await settle(time_env)
            tasks = await rows(db, "SELECT title, pool, status FROM tasks")
            assert tasks == [("Call this lead", "sales", "open")]
            await time_env.sleep(timedelta(days=24))
            st = await customers.state(time_env.client, "lead")
            assert st.runs["lead_followup"].state == "closed"
    assert bob.pool == "sales"


MISCONFIGURED = """
journey: vip_only
enroll: {on: [promoted]}
start: vip
states:
  vip:
    enter:
      - assign_manager: {pool: nobody}
    on: {never: done}
  done: {final: true}
"""


async def test_bad_configuration_fails_for_good_with_a_sentence(
    time_env, db, db_url, task_queue, tmp_path
):
    seq = await publish(db_url, journeys_from(tmp_path, "vip_only", MISCONFIGURED))
    async with running_worker(time_env.client, db, task_queue):
        now = await time_env.get_current_time()
        await customers.send_events(
            time_env.client,
            "x",
            [Event(name="promoted", id="p1", timestamp=now)],
            task_queue=task_queue,
            catalog_seq=seq,
        )
        await settle(time_env, 5)
        st = await customers.state(time_env.client, "x")
    assert len(st.problems) == 1
    assert "pool 'nobody'" in st.problems[0].message
    assert "journeys managers add" in st.problems[0].message
    # its step is logged all the same (the action was to carry the log: act_then_record)
    assert await rows(db, "SELECT to_state FROM journey_transitions") == [("vip",)]
    (shown,) = await rows(db, "SELECT problems FROM customer_snapshots")  # the admin's view
    assert [p["message"] for p in shown[0]] == [st.problems[0].message]


async def test_a_move_at_night_defers_its_offer_and_a_stale_deferral_is_dropped(
    time_env, db, db_url, task_queue, tmp_path
):
    from engine.policy import load_policy

    (tmp_path / "policy.yaml").write_text(QUIET)
    await publish_shipped(db_url)
    now = await time_env.get_current_time()
    tz = zone_where_it_is(22, now)
    with RecordingSMTPServer() as smtp:
        settings = settings_for(smtp, db_url)
        async with running_worker(
            time_env.client, db, task_queue, settings=settings, policy=load_policy(tmp_path)
        ):
            shop = Shop(time_env, db, db_url, task_queue)
            for cid in ("moved", "came-back"):
                await shop.send("identify", cid, traits={"email": f"{cid}@x.test", "timezone": tz})
                await shop.send("track", cid, "Signed Up")
                await customers.move(time_env.client, cid, "lifecycle", "dormant", "test")
            await settle(time_env)
            # both reactivation offers wait for 09:00; one customer orders meanwhile
            await shop.send("track", "came-back", "Order Completed", properties={"revenue": 5})
            await settle(time_env)
            assert (await customers.state(time_env.client, "came-back")).runs[
                "lifecycle"
            ].state == "active"
            # nothing else happens to "moved": the timer armed by the move wakes it
            await time_env.sleep(timedelta(hours=12))
            await smtp.wait_for(3)  # 2 welcomes + 1 offer
    got = await rows(
        db,
        "SELECT customer_id, template, status, reason FROM messages"
        " WHERE template = 'reactivation_offer' ORDER BY customer_id",
    )
    assert got == [
        (
            "came-back",
            "reactivation_offer",
            "suppressed",
            "the journey moved on before the message could go out",
        ),
        ("moved", "reactivation_offer", "sent", None),
    ]
    # the coupon nobody saw no longer counts: it expired when its message was dropped
    live = await rows(
        db, "SELECT customer_id FROM offers WHERE expires_at > now() + interval '1 day'"
    )
    assert live == [("moved",)]
