"""Coupons (``offers``, ``offer_budgets``): unique, hard-to-guess codes with a discount and
an expiry, optional budgets (at most N live coupons of a kind), and redemption, which is
also an event for journeys.

Errors::

    OfferError              anything an offer call refuses
    ├── UnknownBudget       a journey names a budget nobody set (configuration)
    └── RedeemRefused       unknown code, already redeemed, expired, another customer's
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from engine.errors import RefusedError

from . import events

log = logging.getLogger(__name__)

# 32 symbols, none of 0/O/1/I, so a code read aloud or retyped from paper survives:
# exactly 5 bits a character, 12 random characters = 60 bits.
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
PREFIX = "JRN"
GROUPS, GROUP_LEN = 3, 4


class OfferError(RefusedError):
    """Something an offer call refuses; the message says why."""


class UnknownBudget(OfferError):
    """The offer names a budget that was never set: ops must set it before it can issue."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"offer budget '{name}' is not set; set it with PUT /v1/offer-budgets/{name} "
            '{"max_live": N} (or remove budget: from the journey)'
        )
        self.name = name


class RedeemRefused(OfferError):
    """A redemption that cannot happen. ``code`` is machine-readable (unknown_code,
    already_redeemed, expired, other_customer); ``reason`` is the sentence for people."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Coupon:
    code: str
    customer_id: str
    percent_off: float | None
    amount_off: float | None
    expires_at: datetime
    budget: str | None
    created_at: datetime
    redeemed_at: datetime | None
    journey: str
    template: str
    redeemed_via: str | None

    @property
    def discount(self) -> str:
        """``15%`` or ``10.00 off``, as messages show it."""
        if self.percent_off is not None:
            return f"{self.percent_off:g}%"
        return f"{self.amount_off or 0:.2f} off"


_COLUMNS = (
    "code, customer_id, percent_off::float8 AS percent_off, amount_off::float8 AS amount_off,"
    " expires_at, budget, created_at, redeemed_at, journey, template, redeemed_via"
)


def new_code() -> str:
    """A fresh code such as ``JRN-7KQ4-M9XH-2TPA`` (60 random bits from ``secrets``)."""
    chars = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP_LEN))
    groups = [chars[i : i + GROUP_LEN] for i in range(0, len(chars), GROUP_LEN)]
    return "-".join([PREFIX, *groups])


def normalize_code(text: str) -> str:
    """The stored form of a code as a customer typed it: case, spaces and dashes ignored
    (``jrn 7kq4m9xh2tpa`` -> ``JRN-7KQ4-M9XH-2TPA``); anything else is returned upper-cased
    so that it simply matches nothing."""
    raw = re.sub(r"[\s\-_]", "", text).upper()
    body = raw[len(PREFIX) :] if raw.startswith(PREFIX) else ""
    if len(body) != GROUPS * GROUP_LEN:
        return text.strip().upper()
    return "-".join([PREFIX, *(body[i : i + GROUP_LEN] for i in range(0, len(body), GROUP_LEN))])


_BY = {
    column: f"SELECT {_COLUMNS} FROM offers WHERE {column} = %s"
    for column in ("code", "idempotency_key")
}  # the only columns a coupon is looked up by: no name reaches the SQL from a caller


async def _by(conn: AsyncConnection[Any], column: str, value: str) -> Coupon | None:
    cur = conn.cursor(row_factory=class_row(Coupon))
    await cur.execute(_BY[column], (value,))
    return await cur.fetchone()


async def get(conn: AsyncConnection[Any], code: str) -> Coupon | None:
    """The coupon with this code (any spelling), or None."""
    return await _by(conn, "code", normalize_code(code))


async def set_budget(conn: AsyncConnection[Any], name: str, max_live: int) -> None:
    """Create or change a budget: at most ``max_live`` unredeemed, unexpired coupons."""
    if max_live < 0:
        raise OfferError(f"budget '{name}': max_live must be 0 or more, got {max_live}")
    await conn.execute(
        "INSERT INTO offer_budgets (name, max_live) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET max_live = EXCLUDED.max_live, updated_at = now()",
        (name, max_live),
    )


async def issue(
    conn: AsyncConnection[Any],
    *,
    idempotency_key: str,
    customer_id: str,
    journey: str,
    template: str,
    percent_off: float | None,
    amount_off: float | None,
    valid_for: timedelta,
    budget: str | None,
    now: datetime,
) -> Coupon | None:
    """Issue a coupon, once per ``idempotency_key`` (a retry returns the first coupon).
    None when ``budget`` has no room left: nothing is stored then, so a later retry may
    issue if a coupon was redeemed or expired meanwhile. Raises UnknownBudget."""
    if (percent_off is None) == (amount_off is None):
        raise OfferError("give exactly one of percent_off or amount_off")
    async with conn.transaction():
        if budget is not None:
            # Concurrent issues of one budget queue on its row, so the count below is exact.
            cur = await conn.execute(
                "SELECT max_live FROM offer_budgets WHERE name = %s FOR UPDATE", (budget,)
            )
            row = await cur.fetchone()
            if row is None:
                raise UnknownBudget(budget)
            existing = await _by(conn, "idempotency_key", idempotency_key)
            if existing is not None:
                return existing
            cur = await conn.execute(
                "SELECT count(*) FROM offers"
                " WHERE budget = %s AND redeemed_at IS NULL AND expires_at > %s",
                (budget, now),
            )
            live = await cur.fetchone()
            if live is not None and int(live[0]) >= int(row[0]):
                return None
        while True:
            # No conflict target: a clash on the key (a concurrent retry) or, vanishingly
            # rarely, on the code both land here; only the key is looked up afterwards.
            cur = await conn.execute(
                "INSERT INTO offers (code, idempotency_key, customer_id, journey, template,"
                " budget, percent_off, amount_off, expires_at, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
                " RETURNING code",
                (
                    new_code(),
                    idempotency_key,
                    customer_id,
                    journey,
                    template,
                    budget,
                    percent_off,
                    amount_off,
                    now + valid_for,
                    now,
                ),
            )
            inserted = await cur.fetchone()
            coupon = await _by(
                conn, *(("code", inserted[0]) if inserted else ("idempotency_key", idempotency_key))
            )
            if coupon is not None:
                return coupon


def _when(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


async def void(conn: AsyncConnection[Any], code: str, *, now: datetime) -> None:
    """End an unredeemed coupon now (its message never went out): it stops counting
    against its budget and can no longer be redeemed."""
    await conn.execute(
        "UPDATE offers SET expires_at = least(expires_at, %s)"
        " WHERE code = %s AND redeemed_at IS NULL",
        (now, code),
    )


async def redeem(
    conn: AsyncConnection[Any], code: str, *, customer_id: str | None, via: str, now: datetime
) -> Coupon:
    """Redeem a coupon; exactly one of concurrent redemptions wins. ``customer_id`` None
    skips the owner check (an admin redeeming). ``via`` says how (``api``, ``order:ID``);
    redeeming again with the same order ``via`` returns the coupon (a re-delivered order).
    Records ``offer_redeemed`` for the customer in the same transaction."""
    normalized = normalize_code(code)
    async with conn.transaction():
        cur = conn.cursor(row_factory=class_row(Coupon))
        await cur.execute(
            "UPDATE offers SET redeemed_at = %s, redeemed_via = %s"
            " WHERE code = %s AND redeemed_at IS NULL AND expires_at > %s"
            " AND (%s::text IS NULL OR customer_id = %s)"
            f" RETURNING {_COLUMNS}",
            (now, via, normalized, now, customer_id, customer_id),
        )
        won = await cur.fetchone()
        if won is not None:
            await events.record(
                conn,
                won.customer_id,
                "offer_redeemed",
                {
                    "code": won.code,
                    "percent_off": won.percent_off,
                    "amount_off": won.amount_off,
                    "journey": won.journey,
                    "via": via,
                },
                message_id=f"offer_redeemed:{won.code}",
                at=now,
            )
            return won
        coupon = await _by(conn, "code", normalized)
    if coupon is None:
        raise RedeemRefused("unknown_code", f"unknown code '{code.strip()}'")
    if customer_id is not None and coupon.customer_id != customer_id:
        raise RedeemRefused("other_customer", f"code {coupon.code} belongs to another customer")
    if coupon.redeemed_at is not None:
        if via != "api" and coupon.redeemed_via == via:
            return coupon
        raise RedeemRefused(
            "already_redeemed",
            f"code {coupon.code} was already redeemed on {_when(coupon.redeemed_at)}",
        )
    raise RedeemRefused("expired", f"code {coupon.code} expired on {_when(coupon.expires_at)}")


async def redeem_from_order(
    conn: AsyncConnection[Any],
    customer_id: str,
    event_id: int | str,
    properties: dict[str, Any],
    *,
    now: datetime | None = None,
) -> str | None:
    """Redeem the ``coupon`` of a Segment ``Order Completed`` (e-commerce spec) for the
    ordering customer. Never raises for a bad coupon, since the order stands anyway:
    returns None when redeemed or when the order carries no coupon, else the refusal."""
    coupon = properties.get("coupon")
    if not isinstance(coupon, str) or not coupon.strip():
        return None
    try:
        await redeem(
            conn, coupon, customer_id=customer_id, via=f"order:{event_id}", now=now or _now()
        )
    except RedeemRefused as exc:
        # Shops also accept coupons of their own: an unknown code is normal, not news.
        level = logging.DEBUG if exc.code == "unknown_code" else logging.INFO
        log.log(level, "order %s of customer %s: %s", event_id, customer_id, exc.reason)
        return exc.reason
    return None


def _now() -> datetime:
    return datetime.now(UTC)
