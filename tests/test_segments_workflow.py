"""Tiering drives journeys, on the time-skipping server with real PostgreSQL: a champion
who slides to "can't lose" enters the shipped at_risk journey, whose manager gets a call
task and who gets a personal offer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from psycopg.types.json import Jsonb

from orchestration import customers
from store import managers
from tests.conftest import running_worker
from tests.helpers import publish_shipped
from tests.standins import RecordingSMTPServer
from tests.test_actions_workflow import Shop, rows, settings_for
from workflows.segments import RefreshRequest, SegmentRefreshWorkflow


async def order(conn: Any, customer: str, n: int, at: Any, revenue: float) -> None:
    await conn.execute(
        "INSERT INTO events (source, message_id, type, customer_id, name, properties,"
        " event_time, received_at) VALUES (1, %s, 'track', %s, 'order_completed', %s, %s, %s)",
        (f"{customer}-{n}", customer, Jsonb({"revenue": revenue}), at, at),
    )


async def test_champion_sliding_to_cant_lose_gets_a_call_and_an_offer(
    time_env, db, db_url, task_queue
):
    await publish_shipped(db_url)
    now = await time_env.get_current_time()
    async with db.connection() as conn:
        ann = await managers.add(conn, pool="vip", name="Ann", email="ann@shop.test", capacity=9)
        await managers.assign(conn, customer_id="star", pool="vip")
        await conn.execute(
            "INSERT INTO customers (customer_id, traits) VALUES ('star', %s)",
            (Jsonb({"email": "star@x.test", "first_name": "Stella"}),),
        )
        # ten customers are below min_population_for_quantiles (200): the shipped fixed
        # bounds score them, so star slides by its own recency, not by a rank among ten
        for k in range(6):  # big and frequent (f = 4, m = 5), 195-200 days ago
            await order(conn, "star", k, now - timedelta(days=200 - k), 1000)
        for i in range(9):  # small, long ago; then once more, lately
            await order(conn, f"other-{i}", 0, now - timedelta(days=300), 10)
            await order(conn, f"other-{i}", 1, now - timedelta(days=5), 10)
    with RecordingSMTPServer() as smtp:
        settings = settings_for(smtp, db_url)
        async with running_worker(time_env.client, db, task_queue, settings=settings):
            shop = Shop(time_env, db, db_url, task_queue)

            async def refresh(days_ago: int) -> Any:
                return await time_env.client.execute_workflow(
                    SegmentRefreshWorkflow.run,
                    RefreshRequest(as_of=now - timedelta(days=days_ago)),
                    id=f"refresh-{days_ago}",
                    task_queue=task_queue,
                )

            first = await refresh(190)  # star ordered 5 days before: r = 5, champions
            assert first.changed == 10 and first.notified == 10
            await shop.deliver()
            assert (
                await rows(db, "SELECT segment FROM customer_metrics WHERE customer_id = 'star'")
            ) == [("champions",)]
            # everyone else ordered since; star did not: 195 days is over 180, r = 1
            second = await refresh(0)
            assert second.notified == second.changed > 0
            await shop.deliver()
            await time_env.sleep(timedelta(seconds=3))
            st = await customers.state(time_env.client, "star")
            assert st.customer.segment == "cant_lose"
            assert st.runs["at_risk"].state == "sliding"
            # the enter actions run after the state shows; retries (if any) need time to pass.
            # In steps: one 2-minute skip is one long call to the test server, which timed
            # out ("Timeout expired") on a loaded machine while the worker was busy
            for _ in range(8):
                await time_env.sleep(timedelta(seconds=15))
                if smtp.mail:
                    break
            try:
                mails = await smtp.wait_for(1, timeout=20)
            except AssertionError:
                done = await rows(db, "SELECT action, status FROM action_log")
                sent = await rows(db, "SELECT template, status, reason FROM messages")
                raise AssertionError(f"no offer email; actions {done}, messages {sent}") from None
    assert mails[0].rcpt_tos == ["star@x.test"] and "Stella" in mails[0].message["Subject"]
    tasks = await rows(db, "SELECT title, manager_id FROM tasks")
    assert tasks == [("Call a valuable customer who is slipping away", ann.id)]
    # nobody else was a champion or loyal before: nobody else enters the journey
    entered = await rows(
        db, "SELECT customer_id FROM journey_transitions WHERE journey = 'at_risk'"
    )
    assert entered == [("star",)]
