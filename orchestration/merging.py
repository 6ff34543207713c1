"""Merging customers by hand: what ``POST /v1/customers/merge`` and ``journeys customers
merge A B --reason`` do, checked the same way for both.

The first id is absorbed into the second, as Segment's ``alias`` merges ``previousId``
into ``userId``. ``store.identity.merge`` moves what PostgreSQL holds under the absorbed
customer and queues the merge; the dispatcher (``ingest.dispatcher``) then tells both
workflows: the absorbed one ends its runs with the cause ``merged into X``, the survivor
takes over the journeys it never ran. Merging is idempotent: two ids that already are one
customer change nothing. An id Journeys never saw is refused rather than merged (it is
almost certainly a typo, and merging it would only make it an id of the other customer).
Every merge is in the audit log (``merges``): who (``actor``), when, why (``reason``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from engine.errors import InputError, RefusedError
from engine.identity import is_hashed
from store import identity
from store.identity import Merge

MAX_ID = 256  # as ingestion bounds a userId or an anonymousId
MAX_REASON = 500


class BadMerge(InputError):
    """A merge asked for wrongly (the same id twice, no reason, an id out of bounds)."""

    status = 422

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class UnknownCustomer(RefusedError):
    """An id to merge that Journeys never saw: nothing was merged."""

    status = 404
    code = "unknown_customer"


@dataclass(frozen=True)
class Merged:
    """What a merge by hand did. ``merge`` is the audit row, None when ``asked_from`` and
    ``asked_into`` already were one customer; ``customer_id`` is that customer's id now
    and ``ids`` every id it has."""

    asked_from: str
    asked_into: str
    merge: Merge | None
    customer_id: str
    ids: list[str]

    def sentence(self) -> str:
        """What happened, plainly (the CLI prints it, the API answers it as ``message``)."""
        a, b, m = self.asked_from, self.asked_into, self.merge
        if m is None:
            return f"{a} and {b} already are one customer ({self.customer_id}); nothing changed"
        gone = a if m.absorbed == a else f"{a} (customer {m.absorbed})"
        kept = b if m.survivor == b else f"{b} (customer {m.survivor})"
        return (
            f"merged {gone} into {kept} (merge #{m.id}); "
            f"{m.survivor}'s workflow takes over {m.absorbed}'s journeys"
        )


def shown(customer_id: str) -> str:
    """An id in a refusal: itself when safe to show, never contact details."""
    return "with this id" if is_hashed(customer_id) else f"'{customer_id}'"


def _check_id(value: str, role: str) -> None:
    if not value.strip():
        raise BadMerge("bad_id", f"the id of the customer {role} is empty")
    if len(value) > MAX_ID:
        raise BadMerge("bad_id", f"the id of the customer {role} is over {MAX_ID} characters")
    if "\x00" in value or not _encodes(value):
        raise BadMerge("bad_id", f"the id of the customer {role} holds a NUL or a lone surrogate")


def _encodes(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def check(absorbed: str, survivor: str, reason: str) -> str:
    """Refuse a merge asked for wrongly (:class:`BadMerge`); the reason, stripped."""
    _check_id(absorbed, "to absorb")
    _check_id(survivor, "to merge into")
    if absorbed == survivor:
        raise BadMerge(
            "same_customer",
            "the two ids are the same: name the customer to absorb, then the one it joins",
        )
    text = reason.strip()
    if not text:
        raise BadMerge("bad_reason", "give the reason for the merge: the audit log keeps it")
    if len(text) > MAX_REASON:
        raise BadMerge("bad_reason", f"the reason is over {MAX_REASON} characters")
    if "\x00" in text or not _encodes(text):
        raise BadMerge("bad_reason", "the reason holds a NUL or a lone surrogate")
    return text


async def merge_by_hand(
    conn: AsyncConnection[Any], absorbed: str, survivor: str, *, reason: str, actor: str
) -> Merged:
    """Merge ``absorbed``'s customer into ``survivor``'s (``via='admin'``), in one
    transaction. Raises :class:`BadMerge` or :class:`UnknownCustomer`; nothing is merged
    then."""
    text = check(absorbed, survivor, reason)
    async with conn.transaction():
        found = await identity.known(conn, [absorbed, survivor])
        for value, role in ((absorbed, "to absorb"), (survivor, "to merge into")):
            if value not in found:
                raise UnknownCustomer(
                    f"no customer {shown(value)} {role}: Journeys never saw this id"
                    " (a typo?); nothing was merged"
                )
        row = await identity.merge(conn, absorbed, survivor, via="admin", reason=text, actor=actor)
        root = await identity.canonical(conn, survivor)
        ids = await identity.ids_of(conn, root)
    return Merged(absorbed, survivor, row, root, ids)


def audit_entry(m: Merge) -> dict[str, Any]:
    """One row of the audit log as the API answers it: ``delivered`` once both workflows
    were told (``attempts`` and ``last_error`` say why not yet); ``refused`` says why a
    write key's merge was not made (the ids stay two customers), else null."""
    return {
        "id": m.id,
        "absorbed": m.absorbed,
        "survivor": m.survivor,
        "via": m.via,
        "reason": m.reason,
        "actor": m.actor,
        "at": m.at,
        "delivered": m.delivered_at is not None,
        "delivered_at": m.delivered_at,
        "attempts": m.attempts,
        "last_error": m.last_error,
        "refused": m.refused,
    }
