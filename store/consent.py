"""Per-channel opt-outs and the signed unsubscribe links that set them.

An opt-out for ``all`` covers every channel. Identify traits may opt a customer out
(``unsubscribed`` of all; of one channel, the traits its description names, by default
``email_opt_out``, ``sms_opt_out``, ``webhook_opt_out``, or camelCase: see
``engine.channel_kinds``);
a trait saying ``false`` only lifts opt-outs that identify traits set, never one the
customer made through an unsubscribe link: a shop re-sending stale traits must not
re-subscribe someone who asked to stop."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

from psycopg import AsyncConnection

from engine import channel_kinds

ALL = "all"


def channels() -> list[str]:
    """What an opt-out may name: every registered channel, and ``all``."""
    return [*channel_kinds.names(), ALL]


def _traits() -> dict[str, str]:
    """Identify trait -> the channel it opts out of."""
    traits = {"unsubscribed": ALL}
    for name in channel_kinds.names():
        traits.update(dict.fromkeys(channel_kinds.kind(name).opt_out_traits, name))
    return traits


def _channel(channel: str) -> str:
    known = channels()
    if channel not in known:
        raise ValueError(f"channel must be one of {', '.join(known)}, got '{channel}'")
    return channel


async def set_opt_out(
    conn: AsyncConnection[Any], customer_id: str, channel: str, opted_out: bool, source: str
) -> None:
    """Record the customer's choice for a channel. Opting back in to ``all`` lifts every
    opt-out of the customer."""
    _channel(channel)
    async with conn.transaction():
        if channel == "all" and not opted_out:
            await conn.execute(
                "UPDATE consent SET opted_out = false, source = %s, updated_at = now()"
                " WHERE customer_id = %s AND opted_out",
                (source, customer_id),
            )
        await conn.execute(
            "INSERT INTO consent (customer_id, channel, opted_out, source) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (customer_id, channel) DO UPDATE SET opted_out = EXCLUDED.opted_out,"
            " source = EXCLUDED.source, updated_at = now()",
            (customer_id, channel, opted_out, source),
        )


# whether %(customer)s opted out of %(channel)s or of everything: a query of its own, or a
# subquery of the one statement that claims a message (store.messages.claim)
OPTED_OUT = (
    "SELECT coalesce(bool_or(opted_out), false) FROM consent"
    " WHERE customer_id = %(customer)s AND channel IN (%(channel)s, 'all')"
)


async def opted_out(conn: AsyncConnection[Any], customer_id: str, channel: str) -> bool:
    """True if the customer opted out of ``channel`` or of everything."""
    cur = await conn.execute(OPTED_OUT, {"customer": customer_id, "channel": _channel(channel)})
    row = await cur.fetchone()
    return bool(row and row[0])


async def sync_from_traits(
    conn: AsyncConnection[Any], customer_id: str, traits: dict[str, Any]
) -> None:
    """Apply opt-out traits of an identify call (see the module docstring); other traits
    and non-boolean values are ignored."""
    wanted: dict[str, bool] = {}
    for trait, channel in _traits().items():
        value = traits.get(trait)
        if isinstance(value, bool):
            wanted[channel] = wanted.get(channel, False) or value
    for channel, out in sorted(wanted.items()):
        if out:
            await set_opt_out(conn, customer_id, channel, True, "identify")
        else:
            await conn.execute(
                "UPDATE consent SET opted_out = false, updated_at = now() WHERE customer_id = %s"
                " AND channel = %s AND source = 'identify'",
                (customer_id, channel),
            )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), b"unsubscribe:" + payload, hashlib.sha256).digest()[:16]


def unsubscribe_token(secret: str, customer_id: str, channel: str) -> str:
    """A URL-safe token naming (customer, channel), signed with HMAC-SHA256; it never
    expires, as an unsubscribe link must keep working."""
    payload = f"{_channel(channel)}:{customer_id}".encode()
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def check_unsubscribe_token(secret: str, token: str) -> tuple[str, str] | None:
    """(customer_id, channel) of a genuine token, else None."""
    body, dot, mac = token.partition(".")
    if not dot:
        return None
    try:
        payload, given = _unb64(body), _unb64(mac)
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(given, _mac(secret, payload)):
        return None
    channel, sep, customer_id = payload.decode(errors="replace").partition(":")
    if not sep or channel not in channels() or not customer_id:
        return None
    return customer_id, channel


def unsubscribe_url(public_url: str, secret: str, customer_id: str, channel: str) -> str:
    """The link for ``unsubscribe_url`` in messages (and a List-Unsubscribe header)."""
    return f"{public_url.rstrip('/')}/u/{unsubscribe_token(secret, customer_id, channel)}"
