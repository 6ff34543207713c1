"""Dead letters (admin token): events whose delivery failed for good, to list, retry or drop.

``GET /v1/dead-letters``, ``POST /v1/dead-letters/{id}/retry``, ``DELETE
/v1/dead-letters/{id}``; the same as ``journeys dead-letters list|retry|drop``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from store import dead_letters

from .admin_routes import Admin

router = APIRouter(tags=["dead letters"])

_ID = Path(ge=1, le=2**63 - 1, description="the dead letter's id")


def _missing(letter_id: int) -> HTTPException:
    return HTTPException(
        404, {"error": "unknown_dead_letter", "message": f"no dead letter {letter_id}"}
    )


@router.get("/v1/dead-letters")
async def get_dead_letters(
    state: Admin,
    customer_id: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="page: dead letters with id below")
    ] = None,
) -> dict[str, Any]:
    """Dead letters, newest first: the event (id, name, size), the reason, when it was
    queued and buried. The event's data: ``GET /v1/customers/{id}/events``."""
    if customer_id is not None and "\x00" in customer_id:
        raise HTTPException(
            400, {"error": "bad_field", "message": "customer_id cannot contain NUL characters"}
        )
    async with state.pool.connection() as conn:
        found = await dead_letters.listing(
            conn, customer_id=customer_id, before=before, limit=limit
        )
        total = await dead_letters.count(conn)
    items = [asdict(d) for d in found]
    return {
        "dead_letters": items,
        "total": total,
        "next": items[-1]["id"] if len(items) == limit else None,
    }


@router.post("/v1/dead-letters/{letter_id}/retry")
async def retry_dead_letter(letter_id: Annotated[int, _ID], state: Admin) -> dict[str, Any]:
    """Put the event back into the outbox: it is delivered with the customer's next round
    (or becomes a new dead letter if it fails for good again)."""
    async with state.pool.connection() as conn:
        if not await dead_letters.retry(conn, [letter_id]):
            raise _missing(letter_id)
    return {"retried": letter_id}


@router.delete("/v1/dead-letters/{letter_id}")
async def drop_dead_letter(letter_id: Annotated[int, _ID], state: Admin) -> dict[str, Any]:
    """Forget the dead letter: its event stays in the history and is never delivered."""
    async with state.pool.connection() as conn:
        if not await dead_letters.drop(conn, [letter_id]):
            raise _missing(letter_id)
    return {"dropped": letter_id}
