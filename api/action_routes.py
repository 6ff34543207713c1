"""What actions left behind, for staff (admin token): coupon redemption and budgets,
account managers and staff tasks. The pages customers use: ``api.public_routes``."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from store import managers, offers, tasks, waitlist

from .deps import Admin, Pool

router = APIRouter()

NAME = r"^[a-z][a-z0-9_]*$"  # budget and pool names, as journeys write them
PG_INT = 2**31 - 1  # PostgreSQL integer columns (max_live, capacity)
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]  # bigserial ids


def _now() -> datetime:
    return datetime.now(UTC)


# --- offers -------------------------------------------------------------------------------


class RedeemBody(BaseModel):
    customer_id: str | None = Field(None, description="refuse unless the coupon is theirs")


def _coupon(c: offers.Coupon) -> dict[str, Any]:
    return {**asdict(c), "discount": c.discount}


@router.post("/v1/offers/{code}/redeem", tags=["offers"])
async def redeem_offer(
    code: str, _: Admin, db: Pool, body: RedeemBody | None = None
) -> dict[str, Any]:
    """Redeem a coupon (case and dashes do not matter): 404 unknown code, 409 refused
    (already redeemed, expired, another customer's) with the reason."""
    async with db.connection() as conn:
        coupon = await offers.redeem(
            conn, code, customer_id=body.customer_id if body else None, via="api", now=_now()
        )
    return _coupon(coupon)


class BudgetBody(BaseModel):
    max_live: int = Field(
        ge=0, le=PG_INT, description="at most this many unredeemed, unexpired coupons"
    )


@router.put("/v1/offer-budgets/{name}", tags=["offers"])
async def put_budget(
    name: Annotated[str, Path(pattern=NAME, max_length=100)], body: BudgetBody, _: Admin, db: Pool
) -> dict[str, Any]:
    """Create or change an offer budget (journeys name it in ``offer: {budget: NAME}``)."""
    async with db.connection() as conn:
        await offers.set_budget(conn, name, body.max_live)
    return {"name": name, "max_live": body.max_live}


# --- account managers -----------------------------------------------------------------------


class ManagerBody(BaseModel):
    pool: str = Field(min_length=1, max_length=100, pattern=NAME)
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    capacity: int = Field(gt=0, le=1_000_000)


@router.get("/v1/managers", tags=["managers"])
async def get_managers(_: Admin, db: Pool, pool: str | None = None) -> dict[str, Any]:
    """Managers (of one pool) with their load and capacity."""
    async with db.connection() as conn:
        found = await managers.list_managers(conn, pool)
    return {"managers": [asdict(m) for m in found]}


@router.post("/v1/managers", tags=["managers"], status_code=201)
async def post_manager(body: ManagerBody, _: Admin, db: Pool) -> dict[str, Any]:
    """Add an account manager to a pool (bringing a deactivated one back). Customers
    waiting in the pool's queue get a manager at once (``assigned_from_queue``: how many);
    the worker sends their managers' notes."""
    async with db.connection() as conn:
        manager = await managers.add(conn, **body.model_dump())
        assigned = await waitlist.assign_waiting(conn, manager.pool, now=datetime.now(UTC))
        manager = await managers.get(conn, manager.id) or manager  # its load now
    return {**asdict(manager), "assigned_from_queue": len(assigned)}


@router.post("/v1/managers/{manager_id}/deactivate", tags=["managers"])
async def deactivate_manager(manager_id: RowId, _: Admin, db: Pool) -> dict[str, Any]:
    """Deactivate a manager; their customers and open tasks go to the others."""
    async with db.connection() as conn:
        moves = await managers.deactivate(conn, manager_id)
    return {
        "deactivated": manager_id,
        "reassigned": [{"customer_id": c, "manager": asdict(m) if m else None} for c, m in moves],
    }


# --- tasks ------------------------------------------------------------------------------------


def _task(t: tasks.Task) -> dict[str, Any]:
    return {**asdict(t), "assignee": t.assignee}


@router.get("/v1/tasks", tags=["tasks"])
async def get_tasks(
    _: Admin,
    db: Pool,
    assignee: Annotated[
        str | None,
        Query(max_length=320, description="manager email or id, pool name, or 'unassigned'"),
    ] = None,
    status: Annotated[str | None, Query(pattern="^(open|done)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Staff tasks by due date."""
    async with db.connection() as conn:
        found = await tasks.list_tasks(conn, assignee=assignee, status=status, limit=limit)
    return {"tasks": [_task(t) for t in found]}


class CompleteBody(BaseModel):
    by: str | None = Field(None, max_length=320, description="who did it (default: admin)")


@router.post("/v1/tasks/{task_id}/complete", tags=["tasks"])
async def complete_task(
    task_id: RowId, _: Admin, db: Pool, body: CompleteBody | None = None
) -> dict[str, Any]:
    """Mark a task done (again: no change); the customer's journeys get task_completed."""
    by = (body.by if body else None) or "admin"
    async with db.connection() as conn:
        task = await tasks.complete(conn, task_id, by=by, now=_now())
    return _task(task)
