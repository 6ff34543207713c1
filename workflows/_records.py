"""What the customer workflow writes down outside Temporal: its transitions (for reports)
and its snapshot (the admin read model), in one local activity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from engine import Catalog, CustomerState
from engine.machine import TransitionRecord
from workflows.io import CustomerSnapshot, RecordTransitionsInput

STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def snapshot_key(state: CustomerState, catalog: Catalog | None) -> str:
    """What an admin read of ``state`` shows, to tell whether it changed (no seq, no time)."""
    snapshot = CustomerSnapshot.of(state, catalog, seq=0, at=_EPOCH)
    return snapshot.model_dump_json(exclude={"seq", "at"})


async def record(
    state: CustomerState,
    catalog: Catalog | None,
    rows: list[TransitionRecord],
    *,
    seq: int,
    local: bool,
) -> str:
    """Log ``rows`` (idempotent by key) with snapshot ``seq`` of ``state``; returns the
    snapshot's ``snapshot_key``. ``local``: as a local activity, which costs the server far
    less (histories recorded before that used a regular activity)."""
    snapshot = CustomerSnapshot.of(state, catalog, seq=seq, at=workflow.now())
    log = RecordTransitionsInput(customer_id=state.customer.id, transitions=rows, snapshot=snapshot)
    run_log = workflow.execute_local_activity if local else workflow.execute_activity
    await run_log(
        "record_transitions",
        log,
        result_type=int,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=STORE_RETRY,
        summary=f"log {len(rows)} transition(s)"
        if rows
        else "record the customer's state for admin reads",
    )
    return snapshot.model_dump_json(exclude={"seq", "at"})
