"""Admin reads and overrides (admin token): a customer, their events, the published
journeys, moving a customer to a state, upgrading a journey.

A customer is asked for by any of their ids: an id absorbed by a merge (docs/merging.md)
answers for the customer it joined (``customer_id``, with ``merged_into``), whose
workflow is the one read and moved."""

from __future__ import annotations

import asyncio
import re
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from engine import Catalog, CustomerState, JourneyValidationError, load_rules
from engine.identity import is_hashed, scrub_text
from orchestration import customers
from orchestration.merging import audit_entry
from orchestration.upgrade import upgrade_journey
from store import catalog, events, experiments, identity, read_model, tags
from store import customers as customer_store

from .deps import Admin, Pool, State, Temporal, connected
from .state import AppState

router = APIRouter()
PG_BIGINT = 2**63 - 1  # ids are bigserial: a larger number cannot name a row


def _shown(customer_id: str) -> str:
    """The id in an error sentence: itself when safe to show, never contact details."""
    return "with this id" if is_hashed(customer_id) else f"'{customer_id}'"


def _journeys(st: CustomerState) -> dict[str, Any]:
    out = {}
    for name, run in sorted(st.runs.items()):
        nxt = min(run.timers, key=lambda t: t.due_at) if run.timers else None
        out[name] = {
            "state": run.state,
            "status": run.status,
            "version": run.version,
            "context": run.context,
            "entered_at": run.entered_at,
            "enrolled_at": run.enrolled_at,
            "next_timer": {"after": nxt.label, "due_at": nxt.due_at} if nxt else None,
            "history": [t.model_dump(mode="json") for t in run.history],
            "arm": run.arm,
            "converted_at": run.converted_at,
        }
    return out


def _journeys_stored(
    snap: read_model.Snapshot,
    history: dict[str, Any],
    arms: list[experiments.Assignment],
    converted: list[experiments.Conversion],
) -> dict[str, Any]:
    arm_of = {a.journey: a.arm for a in arms}  # an experiment belongs to one journey
    out = {}
    for j in snap.journeys:
        nxt = (
            {"after": j.next_timer_label, "due_at": j.next_timer_due, "to": j.next_timer_target}
            if j.next_timer_due
            else None
        )
        out[j.journey] = {
            "state": j.state,
            "status": j.status,
            "version": j.version,
            "context": j.context,
            "entered_at": j.since,
            "enrolled_at": j.enrolled_at,
            "next_timer": nxt,
            "history": history.get(j.journey, []),
            "arm": arm_of.get(j.journey),
            "converted_at": _converted_at(j, converted),
        }
    return out


def _converted_at(
    j: read_model.JourneyRow, converted: list[experiments.Conversion]
) -> datetime | None:
    """When the journey's current run converted: a conversion started since it enrolled."""
    mine = [
        c.converted_at
        for c in converted
        if c.journey == j.journey and (j.enrolled_at is None or c.started_at >= j.enrolled_at)
    ]
    return max(mine, default=None)


@router.get("/v1/customers/{customer_id}", tags=["admin"])
async def get_customer(
    customer_id: str,
    _: Admin,
    state: State,
    live: Annotated[
        bool, Query(description="ask the customer's workflow instead of the read model")
    ] = False,
) -> dict[str, Any]:
    """A customer's profile and every journey they are in: from PostgreSQL's read model
    (fast, and available while Temporal or a worker is down), or with ``live=true`` from
    the customer's workflow itself. A customer whose workflow has not written the read
    model yet is asked live. Any id of a customer answers for them: ``customer_id`` is
    their id now, ``merged_into`` that id when the one asked for was absorbed by a merge,
    ``ids`` every id they have and ``merges`` the merges that made them, newest first."""
    async with state.pool.connection() as conn:
        root = await identity.canonical(conn, customer_id)
        profile = await customer_store.profile(conn, root)
        count = await events.count_of(conn, root)
        found = await customer_store.metrics(conn, root)
        snap = None if live else await read_model.read(conn, root)
        tagged = await tags.tags_of(conn, root)
        arms = await experiments.assignments_of(conn, root)
        converted = await experiments.conversions_of(conn, root)
        history = await read_model.history(conn, root) if snap else {}
        ids = await identity.ids_of(conn, root)
        merges = await identity.merges_of(conn, root)
    metrics = asdict(found) if found is not None else None
    journeys: dict[str, Any] = {}
    problems: list[Any] = []
    if snap is not None:
        journeys = _journeys_stored(snap, history, arms, converted)
        problems = snap.problems
        tier, segment = snap.tier, snap.segment
    else:
        journeys, problems, tier, segment = await _live(state, root)
    if found is not None:
        # the latest refresh is the truth; the workflow learns it on its next event
        tier, segment = found.tier, found.segment
    if profile is None and not journeys and not count:
        raise HTTPException(
            404, {"error": "unknown_customer", "message": f"no customer {_shown(customer_id)}"}
        )
    return {
        "customer_id": root,
        "merged_into": root if root != customer_id else None,
        "ids": ids,
        "merges": [audit_entry(m) for m in merges],
        "traits": profile.traits if profile else {},
        "anonymous_id": profile.anonymous_id if profile else None,
        "first_seen": profile.first_seen if profile else None,
        "tier": tier,
        "segment": segment,
        "tags": [t.tag for t in tagged],  # what tag actions wrote (segments read the same)
        # what split actions and goals wrote (engine.goals; the lift report reads the same)
        "experiments": {
            a.experiment: {"arm": a.arm, "journey": a.journey, "assigned_at": a.assigned_at}
            for a in arms
        },
        "conversions": [asdict(c) for c in converted],
        "metrics": metrics,
        "events": count,
        "journeys": journeys,
        "problems": problems,
        "read_from": "read_model" if snap is not None else "workflow",
        "as_of": snap.at if snap is not None else None,
    }


async def _live(
    state: AppState, customer_id: str
) -> tuple[dict[str, Any], list[Any], str | None, str | None]:
    """Journeys, problems, tier and segment from the customer's workflow (a query)."""
    client = await connected(state)
    try:
        st = await customers.state(client, customer_id, ids=state.ids)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise HTTPException(
                503,
                {
                    "error": "temporal_unavailable",
                    "message": "could not query the customer's workflow",
                },
            ) from None
        return {}, [], None, None
    problems = [p.model_dump(mode="json") for p in st.problems]
    return _journeys(st), problems, st.customer.tier, st.customer.segment


@router.get("/v1/customers/{customer_id}/events", tags=["admin"])
async def get_events(
    customer_id: str,
    _: Admin,
    pool: Pool,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=PG_BIGINT, description="page: events with id below this")
    ] = None,
) -> dict[str, Any]:
    """The customer's events, newest first (all of them, under any of their ids:
    ``sent_as`` is the id an event was sent under when that was absorbed by a merge)."""
    async with pool.connection() as conn:
        root = await identity.canonical(conn, customer_id)
        found = await events.of_customer(conn, root, before=before, limit=limit)
    items = [
        {
            "id": e.id,
            "type": e.type,
            "name": e.name,
            "properties": e.properties,
            "timestamp": e.event_time,
            "received_at": e.received_at,
            "message_id": e.message_id,
            "sent_as": e.sent_as,
        }
        for e in found
    ]
    return {
        "customer_id": root,
        "merged_into": root if root != customer_id else None,
        "events": items,
        "next": items[-1]["id"] if len(items) == limit else None,
    }


@router.get("/v1/journeys", tags=["admin"])
async def get_journeys(_: Admin, pool: Pool, client: Temporal) -> dict[str, Any]:
    """Published journeys, their versions, and how many customers are in each state."""
    async with pool.connection() as conn:
        seq, latest, _floor = await catalog.head(conn)
        versions = await catalog.published(conn)
    out: dict[str, Any] = {}
    for v in versions:
        name = v.journey
        entry = out.setdefault(name, {"latest": latest.get(name), "versions": [], "states": {}})
        entry["versions"].append(
            {
                "version": v.version,
                "digest": v.digest,
                "source": v.source,
                "published_at": v.published_at,
            }
        )
        if v.version == latest.get(name):
            for st in v.states:
                query = f"WorkflowType = 'CustomerWorkflow' AND Journeys = '{name}:{st}'"
                try:
                    entry["states"][st] = (await client.count_workflows(query)).count
                except RPCError:
                    entry["states"][st] = None
    return {"catalog": seq, "journeys": out}


class MoveBody(BaseModel):
    state: str = Field(min_length=1)
    reason: str = Field(min_length=1, max_length=500)


@router.post("/v1/customers/{customer_id}/journeys/{journey}/move", tags=["admin"])
async def move_customer(
    customer_id: str, journey: str, body: MoveBody, _: Admin, state: State
) -> dict[str, Any]:
    """Move a customer to a state (validated; the reason is recorded in the history). An
    id absorbed by a merge moves the run of the customer it joined (``merged_into``)."""
    client = await connected(state)  # not a dependency: a bad body is a 422 first
    async with state.pool.connection() as conn:
        root = await identity.canonical(conn, customer_id)
    merged = f" (merged into {_shown(root)})" if root != customer_id else ""
    try:
        result = await customers.move(client, root, journey, body.state, body.reason, ids=state.ids)
    except WorkflowUpdateFailedError as exc:
        # the sentence names what was asked for: only identifiers are echoed
        asked = [v for v in (body.state, journey) if not re.fullmatch(r"[a-z][a-z0-9_]*", v)]
        message = scrub_text(str(exc.cause or exc), asked)
        raise HTTPException(400, {"error": "invalid_move", "message": message}) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(
                404,
                {
                    "error": "unknown_customer",
                    "message": f"no workflow for customer {_shown(customer_id)}{merged}",
                },
            ) from None
        raise
    answer = {**result.model_dump(), "customer_id": root, "merged_into": None}
    if root != customer_id:
        answer["merged_into"] = root
        answer["message"] = (
            f"{customer_id} was merged into {root}: {root}'s run of {journey} was moved"
        )
    return answer


@router.post("/v1/journeys/{journey}/upgrade", tags=["admin"])
async def upgrade(journey: str, _: Admin, pool: Pool, state: State) -> dict[str, Any]:
    """Publish the journeys of the server's rules directory (``JOURNEYS_RULES``) and move
    the customers of ``journey`` in flight to its newest version: what ``journeys upgrade``
    does (``orchestration.upgrade``), for a deploy that ships rules without the CLI. A 422
    lists every problem at file:line when the rules do not validate, or when an older
    version has a state the new one neither has nor maps under ``migrate:``; nobody is
    moved then."""
    client = await connected(state)
    settings = state.settings
    # rules that do not validate: the app's RulesError handler answers 422 invalid_rules
    found = await asyncio.to_thread(load_rules, settings.rules_dir, settings.templates_dir)
    rules = Catalog.of(found)
    if journey not in rules.latest:
        shown = f"'{journey}'" if re.fullmatch(r"[a-z][a-z0-9_]*", journey) else "with this name"
        known = ", ".join(sorted(rules.latest)) or "none"
        raise HTTPException(
            404,
            {
                "error": "unknown_journey",
                "message": f"the rules hold no journey {shown}; journeys: {known}",
            },
        )
    async with pool.connection() as conn:
        try:
            done = await upgrade_journey(conn, client, rules.journeys(), journey)
        except JourneyValidationError as exc:
            raise HTTPException(
                422,
                {"error": "unmapped_state", "message": f"{exc}; fix migrate:, nobody was moved"},
            ) from None
    return {
        "journey": journey,
        "version": done.version,
        "catalog": done.seq,
        "notified": done.notified,
    }
