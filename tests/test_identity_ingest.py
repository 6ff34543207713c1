"""Identity at ingestion, through the real HTTP API on real PostgreSQL: identify and alias
merge, ids resolve before anything is stored (events, outbox, profiles), merges race each
other and the events streaming in, and the segment refresh counts a person once.

No Temporal here: the dispatcher is off, so the outbox rows stay where ingestion put them
and can be checked (telling the workflows of a merge is the dispatcher's, tested there)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.segments import Segments
from store import identity
from store import segments as segment_store
from tests._identity_http import KEY_NAME, Served, serving, track


@pytest.fixture
async def served(db, db_url) -> AsyncIterator[Served]:
    async with serving(db, db_url) as s:
        yield s


async def test_an_anonymous_visitor_who_signs_up_is_one_customer(served: Served):
    await served.ok("track", track("Product Viewed", anon="anon-1"))
    await served.ok("page", {"anonymousId": "anon-1", "name": "Pricing"})
    await served.ok(
        "identify", {"anonymousId": "anon-1", "traits": {"plan": "free", "city": "Oslo"}}
    )
    await served.ok(
        "identify",
        {"anonymousId": "anon-1", "userId": "ann", "traits": {"plan": "pro"}, "messageId": "i1"},
    )
    await served.ok("track", track("Order Completed", user="ann"))
    await served.ok("track", track("Cart Viewed", anon="anon-1"))  # the old id still reaches her

    assert await served.canonical("anon-1", "ann") == ["ann", "ann"]
    events = await served.rows("SELECT type, customer_id, sent_as FROM events ORDER BY id")
    assert events == [
        ("track", "ann", "anon-1"),
        ("page", "ann", "anon-1"),
        ("identify", "ann", "anon-1"),
        ("identify", "ann", None),
        ("track", "ann", None),
        ("track", "ann", "anon-1"),
    ]
    assert await served.rows("SELECT DISTINCT customer_id FROM outbox") == [("ann",)]
    # one profile: hers wins where both say something, the visitor's fills in the rest
    assert await served.rows("SELECT customer_id, traits FROM customers") == [
        ("ann", {"plan": "pro", "city": "Oslo"})
    ]
    assert await served.rows("SELECT absorbed, survivor, via, reason, actor FROM merges") == [
        ("anon-1", "ann", "identify", "identify i1", f"write key {KEY_NAME}")
    ]
    # the same identify again (a new messageId) changes nothing
    await served.ok("identify", {"anonymousId": "anon-1", "userId": "ann"})
    assert len(await served.rows("SELECT id FROM merges")) == 1


async def test_a_batch_is_applied_in_its_order(served: Served):
    batch = [
        {"type": "track", "anonymousId": "v1", "event": "Viewed"},
        {"type": "identify", "anonymousId": "v1", "traits": {"plan": "free", "city": "Rome"}},
        {"type": "identify", "anonymousId": "v1", "userId": "bo", "traits": {"plan": "pro"}},
        {"type": "track", "anonymousId": "v1", "event": "Clicked"},
        {"type": "identify", "anonymousId": "v1", "traits": {"city": "Milan"}},
    ]
    async with served.http() as http:
        answer = await http.post("/v1/batch", json={"batch": batch})
    assert answer.status_code == 200, answer.text
    assert await served.rows("SELECT customer_id, sent_as FROM events ORDER BY id") == [
        ("bo", "v1"),
        ("bo", "v1"),
        ("bo", None),
        ("bo", "v1"),
        ("bo", "v1"),
    ]
    # before the merge the traits were the visitor's (bo's win), after it they are bo's
    assert await served.rows("SELECT customer_id, traits FROM customers") == [
        ("bo", {"plan": "pro", "city": "Milan"})
    ]
    assert await served.rows("SELECT count(*) FROM outbox WHERE customer_id <> 'bo'") == [(0,)]


async def test_an_alias_chain_resolves_every_id_to_the_last(db, db_url, tmp_path: Path):
    # b and c are both known (sent as userIds): ops let write keys merge such customers
    (tmp_path / "identity.yaml").write_text("merge_known_customers: true\n")
    async with serving(db, db_url, rules=tmp_path) as served:
        for sent in ("a", "b", "c"):
            await served.ok("track", track("Order Completed", user=sent))
        await served.ok("alias", {"previousId": "a", "userId": "b"})
        await served.ok("track", track("Order Completed", user="a"))  # a is b's now
        await served.ok("alias", {"previousId": "b", "userId": "c"})
        await served.ok("track", track("Order Completed", user="b"))

        assert await served.canonical("a", "b", "c") == ["c", "c", "c"]
        async with served.db.connection() as conn:
            assert await identity.ids_of(conn, "a") == ["a", "b", "c"]
        events = await served.rows(
            "SELECT customer_id, coalesce(sent_as, customer_id) FROM events"
            " WHERE type = 'track' ORDER BY id"
        )
        assert events == [("c", "a"), ("c", "b"), ("c", "c"), ("c", "a"), ("c", "b")]
        assert await served.rows("SELECT DISTINCT customer_id FROM events") == [("c",)]
        assert await served.rows("SELECT DISTINCT customer_id FROM outbox") == [("c",)]
        assert await served.rows(
            "SELECT absorbed, survivor, via, refused FROM merges ORDER BY id"
        ) == [("a", "b", "alias", None), ("b", "c", "alias", None)]


async def test_a_write_key_never_joins_two_known_customers(served: Served):
    """Two people on one device: identify links the anonymous profile to the first; the
    second's identify (and an alias between them) is refused and recorded, not merged: once
    per pair, however often the device asks again."""
    await served.ok("track", track("Viewed", anon="device-1"))
    await served.ok("identify", {"anonymousId": "device-1", "userId": "alice"})
    await served.ok("identify", {"anonymousId": "device-1", "userId": "bob", "traits": {"x": 1}})
    await served.ok("alias", {"previousId": "alice", "userId": "bob"})
    assert await served.canonical("device-1", "alice", "bob") == ["alice", "alice", "bob"]
    assert await served.rows("SELECT absorbed, survivor, via, refused FROM merges ORDER BY id") == [
        ("device-1", "alice", "identify", None),
        ("alice", "bob", "identify", identity.REFUSED_KNOWN),
    ]
    assert await served.rows("SELECT customer_id, traits FROM customers ORDER BY 1") == [
        ("alice", {}),
        ("bob", {"x": 1}),
    ]


async def test_two_merges_of_the_same_pair_at_once_merge_once(served: Served):
    await served.ok("track", track("Order Completed", anon="p"))
    await served.ok("track", track("Order Completed", user="q"))
    answers = await asyncio.gather(
        *(served.post("alias", {"previousId": "p", "userId": "q"}) for _ in range(6)),
        *(served.post("identify", {"anonymousId": "p", "userId": "q"}) for _ in range(4)),
    )
    assert [a.status_code for a in answers] == [200] * 10
    assert await served.rows("SELECT absorbed, survivor FROM merges") == [("p", "q")]
    assert await served.canonical("p", "q") == ["q", "q"]
    assert await served.rows("SELECT DISTINCT customer_id FROM events") == [("q",)]


async def test_a_to_b_racing_b_to_a_ends_as_one_customer(served: Served):
    for round_ in range(5):
        a, b = f"x{round_}", f"y{round_}"
        await served.ok("track", track("Order Completed", anon=a))
        await served.ok("track", track("Order Completed", anon=b))
        answers = await asyncio.gather(
            served.post("alias", {"previousId": a, "userId": b}),
            served.post("alias", {"previousId": b, "userId": a}),
        )
        assert [x.status_code for x in answers] == [200, 200]
        merged = await served.rows(
            "SELECT absorbed, survivor FROM merges WHERE absorbed IN (%s, %s)", a, b
        )
        assert len(merged) == 1  # the second found them one customer: nothing to do
        survivor = merged[0][1]
        assert await served.canonical(a, b) == [survivor, survivor]
        # the graph is one hop and consistent: each id points at the survivor, which is its own
        assert await served.rows(
            "SELECT id, canonical FROM customer_ids WHERE id IN (%s, %s) ORDER BY id", a, b
        ) == [(a, survivor), (b, survivor)]
        stored = await served.rows(
            "SELECT DISTINCT customer_id FROM events WHERE coalesce(sent_as, customer_id)"
            " IN (%s, %s)",
            a,
            b,
        )
        assert stored == [(survivor,)]


async def test_a_merge_while_events_for_both_ids_stream_in_loses_none(served: Served):
    sent: list[str] = []

    async def stream(customer: str, tag: str, n: int) -> None:
        who = "userId" if customer == "s2" else "anonymousId"  # a visitor, then known
        async with served.http() as http:
            for i in range(n):
                batch = [
                    {"type": "track", who: customer, "event": "Page Viewed", "messageId": m}
                    for m in (f"{customer}-{tag}{i}-1", f"{customer}-{tag}{i}-2")
                ]
                answer = await http.post("/v1/batch", json={"batch": batch})
                assert answer.status_code == 200, answer.text
                sent.extend(m["messageId"] for m in batch)

    async def merge_midway() -> None:
        while len(sent) < 20:  # some events of both are stored before the merge
            await asyncio.sleep(0.01)
        await served.ok("alias", {"previousId": "s1", "userId": "s2"})

    await asyncio.gather(
        stream("s1", "a", 40), stream("s2", "b", 40), stream("s1", "c", 40), merge_midway()
    )

    stored = await served.rows(
        "SELECT message_id, customer_id, sent_as FROM events WHERE type = 'track'"
    )
    assert sorted(m for m, _, _ in stored) == sorted(sent)  # none lost, none twice
    assert {c for _, c, _ in stored} == {"s2"}
    assert {m.split("-")[0] for m, _, s in stored if s == "s1"} == {"s1"}
    assert await served.rows("SELECT DISTINCT customer_id FROM outbox") == [("s2",)]
    assert await served.rows(
        "SELECT count(*) FROM outbox o JOIN events e ON e.id = o.event_id WHERE e.type = 'track'"
    ) == [(len(sent),)]


async def test_the_segment_refresh_counts_a_person_once(served: Served):
    as_of = datetime(2026, 6, 1, tzinfo=UTC)
    for sent, days in (("anon-9", 30), ("anon-9", 20), ("kim", 10)):
        stamp = (as_of - timedelta(days=days)).isoformat()
        await served.ok(
            "track",
            {
                **track("Order Completed", anon=sent if sent.startswith("anon") else None),
                **({"userId": sent} if not sent.startswith("anon") else {}),
                "properties": {"revenue": 100},
                "timestamp": stamp,
            },
        )
    async with served.db.connection() as conn:
        await segment_store.refresh(conn, Segments(), as_of=as_of)
    assert sorted(r[0] for r in await served.rows("SELECT customer_id FROM customer_metrics")) == [
        "anon-9",
        "kim",
    ]
    await served.ok("identify", {"anonymousId": "anon-9", "userId": "kim"})
    # the absorbed customer's metrics go at once; the next refresh counts the person once
    assert await served.rows("SELECT customer_id FROM customer_metrics") == [("kim",)]
    async with served.db.connection() as conn:
        await segment_store.refresh(conn, Segments(), as_of=as_of)
    assert await served.rows("SELECT customer_id, orders, revenue FROM customer_metrics") == [
        ("kim", 3, 300)
    ]
