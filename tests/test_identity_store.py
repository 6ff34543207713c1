"""The id graph in PostgreSQL (store.identity): what a merge moves, idempotence, chains,
and merges racing each other and the batches that store under the same ids."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime

import psycopg

from store import identity

AT = datetime(2026, 6, 1, tzinfo=UTC)
_seq = iter(range(10**9))


async def stored_event(conn, customer: str, name: str = "order_completed") -> int:
    cur = await conn.execute(
        "INSERT INTO events (source, message_id, type, customer_id, name, properties,"
        " event_time, received_at) VALUES (1, %s, 'track', %s, %s, %s, %s, %s) RETURNING id",
        (f"m{next(_seq)}", customer, name, json.dumps({"revenue": 10}), AT, AT),
    )
    row = await cur.fetchone()
    await conn.execute(
        "INSERT INTO outbox (event_id, customer_id) VALUES (%s, %s)", (row[0], customer)
    )
    return row[0]


@contextlib.asynccontextmanager
async def transaction(url: str):
    """A connection of its own, in one transaction (as one API request has)."""
    async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
        yield conn


async def rows(conn, sql: str, *args):
    cur = await conn.execute(sql, args)
    return await cur.fetchall()


async def test_merge_moves_what_was_stored_and_keeps_the_sent_id(db):
    async with db.connection() as conn:
        await identity.resolve(conn, ["anon-1", "user-1"])
        await stored_event(conn, "anon-1")
        await stored_event(conn, "user-1")
        await conn.execute(
            "INSERT INTO customers (customer_id, traits, first_seen) VALUES"
            ' (\'anon-1\', \'{"plan": "free", "city": "Oslo"}\', \'2026-01-01\'),'
            " ('user-1', '{\"plan\": \"pro\"}', '2026-03-01')"
        )
        await conn.execute(
            "INSERT INTO consent (customer_id, channel, opted_out, source) VALUES"
            " ('anon-1', 'email', true, 'unsubscribe_link'), ('user-1', 'email', false, 'admin')"
        )
        merge = await identity.merge(conn, "anon-1", "user-1", via="identify", actor="key web")
        assert merge is not None and (merge.absorbed, merge.survivor) == ("anon-1", "user-1")
        assert await rows(conn, "SELECT customer_id, sent_as FROM events ORDER BY id") == [
            ("user-1", "anon-1"),
            ("user-1", None),
        ]
        assert await rows(conn, "SELECT DISTINCT customer_id FROM outbox") == [("user-1",)]
        assert await rows(conn, "SELECT customer_id, traits, first_seen FROM customers") == [
            ("user-1", {"plan": "pro", "city": "Oslo"}, datetime(2026, 1, 1, tzinfo=UTC))
        ]
        # the anonymous profile's unsubscribe still holds for the person
        assert await rows(conn, "SELECT customer_id, opted_out FROM consent") == [("user-1", True)]
        assert await identity.canonical(conn, "anon-1") == "user-1"
        assert await identity.ids_of(conn, "anon-1") == ["anon-1", "user-1"]
        assert await identity.resolve(conn, ["anon-1"]) == {"anon-1": "user-1"}
        # again, either way round: the same customer, nothing new
        assert await identity.merge(conn, "anon-1", "user-1", via="identify", actor="k") is None
        assert await identity.merge(conn, "user-1", "anon-1", via="alias", actor="k") is None
        assert [m.id for m in await identity.pending_merges(conn)] == [merge.id]


async def test_alias_chain_points_every_id_at_the_last(db):
    async with db.connection() as conn:
        await identity.merge(conn, "a", "b", via="alias", actor="k")
        await identity.merge(conn, "b", "c", via="alias", actor="k")
        assert await identity.canonicals(conn, ["a", "b", "c", "d"]) == {
            "a": "c",
            "b": "c",
            "c": "c",
            "d": "d",
        }
        # merging an absorbed id merges its customer
        third = await identity.merge(conn, "x", "a", via="alias", actor="k")
        assert third is not None and third.survivor == "c"
        assert await identity.ids_of(conn, "b") == ["a", "b", "c", "x"]
        assert [(m.absorbed, m.survivor) for m in await identity.merges_of(conn, "x")] == [
            ("x", "c"),
            ("b", "c"),
            ("a", "b"),
        ]


async def test_racing_merges_of_one_pair_merge_once(db, db_url):
    async def one(absorbed: str, survivor: str):
        async with transaction(db_url) as conn:
            return await identity.merge(conn, absorbed, survivor, via="alias", actor="k")

    results = await asyncio.gather(*(one("p", "q") for _ in range(4)), one("q", "p"))
    made = [r for r in results if r is not None]
    assert len(made) == 1
    async with db.connection() as conn:
        assert await rows(conn, "SELECT count(*) FROM merges") == [(1,)]
        roots = await identity.canonicals(conn, ["p", "q"])
        assert roots["p"] == roots["q"] == made[0].survivor


async def test_batches_storing_while_a_merge_commits_end_under_the_survivor(db, db_url):
    """Batches for both ids stream in while the ids merge: every event ends under the
    survivor, none is left behind under the absorbed id, and nothing deadlocks."""

    async def batch(customer: str) -> None:
        async with transaction(db_url) as conn:
            ids = await identity.resolve(conn, [customer])
            await stored_event(conn, ids[customer])

    async def merge_them() -> None:
        async with transaction(db_url) as conn:
            await identity.merge(conn, "s1", "s2", via="identify", actor="k")

    jobs = [batch("s1" if i % 2 else "s2") for i in range(40)]
    jobs.insert(20, merge_them())
    await asyncio.gather(*jobs)
    async with db.connection() as conn:
        assert await rows(conn, "SELECT customer_id, count(*) FROM events GROUP BY 1") == [
            ("s2", 40)
        ]
        assert await rows(conn, "SELECT DISTINCT customer_id FROM outbox") == [("s2",)]


async def test_facts_recorded_for_an_absorbed_id_are_the_survivors(db):
    """An activity of the absorbed customer's workflow, still running when the merge
    committed, records a fact under the old id: it lands under the survivor, and a late
    row of its own kind is moved when the merge settles."""
    from store import events

    async with db.connection() as conn:
        merge = await identity.merge(conn, "old", "new", via="alias", actor="k")
        assert merge is not None
        await events.record(conn, "old", "survey_answered", {"score": 9}, message_id="s:1")
        assert await rows(conn, "SELECT customer_id, sent_as FROM events") == [("new", "old")]
        await conn.execute(
            "INSERT INTO tasks (idempotency_key, customer_id, journey, title, due_at)"
            " VALUES ('t1', 'old', 'nps', 'call', now())"
        )
        await identity.settle(conn, merge)
        assert await rows(conn, "SELECT customer_id FROM tasks") == [("new",)]


async def test_a_write_key_never_merges_two_known_customers(db):
    """Two customers that each have a userId stay two when a write key's call would join
    them (a shared computer's anonymous id, a forged alias); the attempt is on record, and
    an anonymous visitor still joins a known customer."""
    async with db.connection() as conn:
        await identity.resolve(conn, ["u1", "u2", "visitor"], user_ids=["u1", "u2"])
        await identity.merge(conn, "visitor", "u1", via="identify", actor="k", refuse_known=True)
        refused = await identity.merge(
            conn, "visitor", "u2", via="identify", actor="key web", refuse_known=True
        )
        assert refused is not None and refused.refused == identity.REFUSED_KNOWN
        assert (refused.absorbed, refused.survivor) == ("u1", "u2")
        assert await identity.canonicals(conn, ["visitor", "u1", "u2"]) == {
            "visitor": "u1",
            "u1": "u1",
            "u2": "u2",
        }
        assert [m.id for m in await identity.pending_merges(conn)] != [refused.id]
        assert refused.id in [m.id for m in await identity.merges_of(conn, "u2")]
        # an admin may: they looked
        done = await identity.merge(conn, "u1", "u2", via="admin", reason="same person", actor="a")
        assert done is not None and done.refused is None
        assert await identity.ids_of(conn, "u2") == ["u1", "u2", "visitor"]


async def test_a_refused_pair_is_on_record_once(db):
    async with db.connection() as conn:
        await identity.resolve(conn, ["p1", "p2"], user_ids=["p1", "p2"])
        first = await identity.merge(conn, "p1", "p2", via="identify", actor="k", refuse_known=True)
        again = await identity.merge(conn, "p1", "p2", via="alias", actor="k", refuse_known=True)
        assert first is not None and again is not None and first.id == again.id
        assert await rows(conn, "SELECT count(*) FROM merges") == [(1,)]


async def test_a_survivors_events_wait_for_its_merges_handover(db):
    """The dispatcher takes a survivor's events only once the merge's handover reached its
    workflow: applied before, a sign-up would enrol it afresh in a journey the absorbed
    customer was already in, and send its welcome again."""
    from store import outbox

    async with db.connection() as conn:
        await stored_event(conn, "guest")
        merge = await identity.merge(conn, "guest", "member", via="identify", actor="k")
        assert merge is not None
        await stored_event(conn, "member")  # the sign-up, in the identify's batch

        async def waiting() -> list[str]:
            rows = await outbox.waiting(conn, resting=[], customers=10, per_customer=10)
            return sorted({r.customer_id for r in rows})

        assert await waiting() == []
        await identity.merge_delivered(conn, merge.id)
        assert await waiting() == ["member"]
