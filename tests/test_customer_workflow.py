"""Real customer workflows on the time-skipping test server, with real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from engine import load_rules
from engine.model import Event
from runtime import customers
from store import catalog as catalog_store
from tests.conftest import ROOT, running_worker


async def publish_shipped(db_url: str) -> int:
    journeys = load_rules(ROOT / "rules", ROOT / "templates")
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        return await catalog_store.publish(conn, journeys)


def ev(name: str, eid: str, env, **props) -> Event:
    return Event(name=name, id=eid, timestamp=env.now if hasattr(env, "now") else None,
                 properties=props)


async def test_quiet_customer_is_dormant_after_60_days_then_lost(time_env, db, db_url, task_queue):
    seq = await publish_shipped(db_url)
    client = time_env.client
    async with running_worker(client, db, task_queue):
        now = await time_env.get_current_time()
        cid = f"c-{task_queue}"
        await customers.send_events(
            client, cid,
            [Event(name="Order Completed", id="o1", timestamp=now, properties={"revenue": 100})],
            task_queue=task_queue, catalog_seq=seq,
        )
        await time_env.sleep(timedelta(days=1))
        st = await customers.state(client, cid)
        assert st.runs["lifecycle"].state == "active"
        await time_env.sleep(timedelta(days=60))
        st = await customers.state(client, cid)
        assert st.runs["lifecycle"].state == "dormant"
        await time_env.sleep(timedelta(days=30))
        st = await customers.state(client, cid)
        assert st.runs["lifecycle"].state == "lost"
        assert st.runs["lifecycle"].status == "completed"
    async with db.connection() as conn:
        cur = await conn.execute("SELECT action FROM action_log ORDER BY created_at")
        assert [r[0] for r in await cur.fetchall()] == ["send", "offer"]
        cur = await conn.execute("SELECT from_state, to_state, cause FROM journey_transitions ORDER BY at, key")
        rows = await cur.fetchall()
    assert [(r[0], r[1]) for r in rows] == [
        (None, "new"), ("new", "active"), ("active", "dormant"), ("dormant", "lost")]
