"""Merging customers by hand (admin token): ``POST /v1/customers/merge`` and the audit log
of every merge, ``GET /v1/merges``; the same as ``journeys customers merge|merges``.

What a merge does and refuses is ``orchestration.merging``; its refusals
(``BadMerge`` 422, ``UnknownCustomer`` 404) are answered by the app's handlers of their
roots, with their sentence."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestration import merging
from store import identity
from store import keys as key_store

from .deps import Admin, Pool

router = APIRouter(tags=["admin"])


class MergeBody(BaseModel):
    """``from`` is absorbed into ``into`` (as ``alias`` merges ``previousId`` into
    ``userId``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(
        alias="from",
        min_length=1,
        max_length=merging.MAX_ID,
        description="the id of the customer to absorb (any of its ids; a number is its digits)",
    )
    into: str = Field(
        min_length=1,
        max_length=merging.MAX_ID,
        description="the id of the customer that takes it over (any of its ids, or a number)",
    )
    reason: str = Field(
        min_length=1, max_length=merging.MAX_REASON, description="why: kept in the audit log"
    )

    @field_validator("from_", "into", mode="before")
    @classmethod
    def _numbers_are_ids(cls, value: Any) -> Any:
        """A number is an id, as ingestion takes a numeric ``userId``."""
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value


@router.post("/v1/customers/merge")
async def merge_customers(admin: Admin, body: MergeBody, pool: Pool) -> dict[str, Any]:
    """Merge the customer ``from`` into ``into``: its events, profile, consent, tags,
    experiment arms, messages... become ``into``'s customer's, and the dispatcher tells
    both workflows (``into``'s takes over the journeys ``from``'s was in). Idempotent:
    ids that already are one customer answer ``"merged": false, "already": true``. 422
    for the same id twice or a blank reason, 404 for an id Journeys never saw."""
    async with pool.connection() as conn:
        name = await key_store.name_of(conn, admin)
        done = await merging.merge_by_hand(
            conn, body.from_, body.into, reason=body.reason, actor=f"admin key {name} (#{admin})"
        )
    return {
        "merged": done.merge is not None,
        "already": done.merge is None,
        "from": done.asked_from,
        "into": done.asked_into,
        "customer_id": done.customer_id,
        "ids": done.ids,
        "merge": merging.audit_entry(done.merge) if done.merge is not None else None,
        "message": done.sentence(),
    }


@router.get("/v1/merges")
async def get_merges(
    _: Admin,
    pool: Pool,
    customer: Annotated[
        str | None,
        Query(max_length=merging.MAX_ID, description="only the merges that made this customer"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The audit log of merges, newest first: who (``actor``: the write key of an
    identify or alias call, an admin key, a CLI user, a rule), when, why, through what
    (``via``), and whether both workflows were told yet (``delivered``). With
    ``customer``: the merges that made that customer (any of its ids), and its ids."""
    async with pool.connection() as conn:
        if customer is None:
            found = await identity.recent_merges(conn, limit)
            return {"merges": [merging.audit_entry(m) for m in found]}
        root = await identity.canonical(conn, customer)
        found = await identity.merges_of(conn, root, limit)
        ids = await identity.ids_of(conn, root)
    return {
        "customer_id": root,
        "ids": ids,
        "merges": [merging.audit_entry(m) for m in found],
    }
