"""What the customer workflow writes down outside Temporal: its transitions (for reports)
and its snapshot (the admin read model), in one local activity: its own, or (runs from
``CODE_VERSION`` 6) the one of the step's last action (``workflows._actions``)."""

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
    return _shown(CustomerSnapshot.of(state, catalog, seq=0, at=_EPOCH))


def log_of(
    state: CustomerState, catalog: Catalog | None, rows: list[TransitionRecord], *, seq: int
) -> RecordTransitionsInput:
    """What logging ``rows`` writes: them (idempotent by key) and snapshot ``seq`` of
    ``state`` for admin reads."""
    snapshot = CustomerSnapshot.of(state, catalog, seq=seq, at=workflow.now())
    return RecordTransitionsInput(
        customer_id=state.customer.id, transitions=rows, snapshot=snapshot
    )


def shown(log: RecordTransitionsInput) -> str:
    """The ``snapshot_key`` of what ``log`` writes."""
    assert log.snapshot is not None
    return _shown(log.snapshot)


def _shown(snapshot: CustomerSnapshot) -> str:
    return snapshot.model_dump_json(exclude={"seq", "at"})


def summary(log: RecordTransitionsInput) -> str:
    rows = len(log.transitions)
    return f"log {rows} transition(s)" if rows else "record the customer's state for admin reads"


async def record(log: RecordTransitionsInput, *, local: bool) -> None:
    """Write ``log`` in an activity of its own. ``local``: as a local activity, which costs
    the server far less (histories recorded before that used a regular activity)."""
    run_log = workflow.execute_local_activity if local else workflow.execute_activity
    await run_log(
        "record_transitions",
        log,
        result_type=int,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=STORE_RETRY,
        summary=summary(log),
    )
