"""Coupons against real PostgreSQL: code format, idempotent issue, budgets under
concurrency, redemption refusals, one winner among concurrent redemptions, and the
``offer_redeemed`` event."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest

from store import offers
from store.db import pool as make_pool

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CODE = re.compile(r"^JRN(-[2-9A-HJ-NP-Z]{4}){3}$")


async def _issue(conn, key: str, *, customer: str = "ann", budget: str | None = None, **kw):
    args = {
        "idempotency_key": key,
        "customer_id": customer,
        "journey": "lifecycle",
        "template": "reactivation_offer",
        "percent_off": 15.0,
        "amount_off": None,
        "valid_for": timedelta(days=14),
        "budget": budget,
        "now": NOW,
        **kw,
    }
    return await offers.issue(conn, **args)


async def _count(conn, sql: str, *args) -> int:
    cur = await conn.execute(sql, args)
    return int((await cur.fetchone())[0])


def test_codes_are_readable_unambiguous_and_unique():
    codes = {offers.new_code() for _ in range(5000)}
    assert len(codes) == 5000
    assert all(CODE.match(c) for c in codes)
    assert not set("01IO") & set("".join(codes).replace("JRN", ""))
    code = next(iter(codes))
    assert offers.normalize_code(code.lower().replace("-", " ")) == code
    assert offers.normalize_code(f"  {code.lower().replace('-', '')} ") == code
    assert offers.normalize_code("summer10") == "SUMMER10"


async def test_issue_is_idempotent_and_codes_differ(db):
    async with db.connection() as conn:
        first = await _issue(conn, "k1")
        again = await _issue(conn, "k1", percent_off=50.0)
        other = await _issue(conn, "k2", percent_off=None, amount_off=10)
    assert first is not None and again is not None and other is not None
    assert again == first and CODE.match(first.code)
    assert other.code != first.code
    assert (first.discount, other.discount) == ("15%", "10.00 off")
    assert first.expires_at == NOW + timedelta(days=14) and first.redeemed_at is None


async def test_budget_issues_exactly_n_under_concurrency(db, db_url):
    async with db.connection() as conn:
        await offers.set_budget(conn, "winback", 7)
    wide = make_pool(db_url, min_size=20, max_size=20)
    await wide.open()
    try:

        async def one(i: int):
            async with wide.connection() as conn:
                return await _issue(conn, f"k{i}", customer=f"c{i}", budget="winback")

        results = await asyncio.gather(*(one(i) for i in range(50)))
    finally:
        await wide.close()
    issued = [c for c in results if c is not None]
    assert len(issued) == 7 and len({c.code for c in issued}) == 7
    async with db.connection() as conn:
        assert await _count(conn, "SELECT count(*) FROM offers") == 7
        # a retry of an issued coupon still returns it although the budget is full
        winner = issued[0]
        key = f"k{winner.customer_id[1:]}"
        assert await _issue(conn, key, customer=winner.customer_id, budget="winback") == winner
        assert await _issue(conn, "late", budget="winback") is None
        # a redeemed coupon is no longer live: room for one more
        await offers.redeem(conn, winner.code, customer_id=winner.customer_id, via="api", now=NOW)
        assert await _issue(conn, "late", budget="winback") is not None
        assert await _issue(conn, "later", budget="winback") is None
        # expired coupons free the budget as well
        later = NOW + timedelta(days=15)
        assert await _issue(conn, "much-later", budget="winback", now=later) is not None


async def test_unknown_budget_is_a_configuration_error(db):
    async with db.connection() as conn:
        with pytest.raises(offers.UnknownBudget, match="PUT /v1/offer-budgets/nope"):
            await _issue(conn, "k", budget="nope")
        assert await _count(conn, "SELECT count(*) FROM offers") == 0


async def test_redeem_and_its_refusals(db):
    async with db.connection() as conn:
        coupon = await _issue(conn, "k1")
        old = await _issue(conn, "k2", valid_for=timedelta(days=1))
        assert coupon is not None and old is not None
        typed = coupon.code.lower().replace("-", "")
        done = await offers.redeem(conn, typed, customer_id="ann", via="api", now=NOW)
        assert done.redeemed_at == NOW and done.redeemed_via == "api"

        async def refused(code: str, customer: str | None, when: datetime) -> offers.RedeemRefused:
            with pytest.raises(offers.RedeemRefused) as info:
                await offers.redeem(conn, code, customer_id=customer, via="api", now=when)
            return info.value

        again = await refused(coupon.code, "ann", NOW)
        assert again.code == "already_redeemed"
        assert again.reason == f"code {coupon.code} was already redeemed on 2026-11-23 12:00 UTC"
        late = await refused(old.code, "ann", NOW + timedelta(days=2))
        assert late.reason == f"code {old.code} expired on 2026-11-24 12:00 UTC"
        theirs = await refused(old.code, "bob", NOW)
        assert theirs.reason == f"code {old.code} belongs to another customer"
        unknown = await refused("JRN-2222-3333-4444", None, NOW)
        assert (unknown.code, unknown.reason) == (
            "unknown_code",
            "unknown code 'JRN-2222-3333-4444'",
        )
        # the refusals changed nothing
        cur = await conn.execute("SELECT redeemed_at FROM offers WHERE code = %s", (old.code,))
        assert (await cur.fetchone())[0] is None


async def test_concurrent_double_redeem_has_one_winner_and_one_event(db, db_url):
    async with db.connection() as conn:
        coupon = await _issue(conn, "k1")
    assert coupon is not None
    wide = make_pool(db_url, min_size=10, max_size=10)
    await wide.open()
    try:
        barrier = asyncio.Barrier(10)

        async def one(i: int):
            async with wide.connection() as conn:
                await barrier.wait()  # every connection ready: a real race
                try:
                    return await offers.redeem(
                        conn, coupon.code, customer_id="ann", via=f"api{i}", now=NOW
                    )
                except offers.RedeemRefused as exc:
                    return exc

        results = await asyncio.gather(*(one(i) for i in range(10)))
    finally:
        await wide.close()
    winners = [r for r in results if isinstance(r, offers.Coupon)]
    assert len(winners) == 1
    assert all(r.code == "already_redeemed" for r in results if isinstance(r, offers.RedeemRefused))
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT e.customer_id, e.name, e.properties, e.source FROM events e"
            " JOIN outbox o ON o.event_id = e.id WHERE e.message_id = %s",
            (f"offer_redeemed:{coupon.code}",),
        )
        rows = await cur.fetchall()
    assert len(rows) == 1
    customer, name, props, source = rows[0]
    assert (customer, name, source) == ("ann", "offer_redeemed", 0)
    assert props == {
        "code": coupon.code,
        "percent_off": 15.0,
        "amount_off": None,
        "journey": "lifecycle",
        "via": winners[0].redeemed_via,
    }


async def test_redeem_from_order(db):
    async with db.connection() as conn:
        coupon = await _issue(conn, "k1")
        assert coupon is not None
        props = {"revenue": 60, "coupon": coupon.code.lower()}
        assert await offers.redeem_from_order(conn, "bob", 41, props, now=NOW) == (
            f"code {coupon.code} belongs to another customer"
        )
        assert await offers.redeem_from_order(conn, "ann", 42, props, now=NOW) is None
        # the same order delivered again is not a second redemption
        assert await offers.redeem_from_order(conn, "ann", 42, props, now=NOW) is None
        reason = await offers.redeem_from_order(conn, "ann", 43, props, now=NOW)
        assert reason is not None and reason.startswith(f"code {coupon.code} was already redeemed")
        assert await offers.redeem_from_order(conn, "ann", 44, {"coupon": "SUMMER10"}) == (
            "unknown code 'SUMMER10'"
        )
        assert await offers.redeem_from_order(conn, "ann", 45, {"revenue": 10}) is None
        assert await offers.redeem_from_order(conn, "ann", 46, {"coupon": 7}) is None
        cur = await conn.execute("SELECT redeemed_via FROM offers WHERE code = %s", (coupon.code,))
        assert (await cur.fetchone())[0] == "order:42"
        assert await _count(conn, "SELECT count(*) FROM events WHERE name = 'offer_redeemed'") == 1
