"""Talking to customer workflows from outside: send events, read state, move, upgrade."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from engine import CustomerState
from engine.identity import customer_key, workflow_id
from engine.model import Event
from workflows.customer import CUSTOMER_ID, CustomerWorkflow
from workflows.io import (
    CODE_VERSION,
    QUERY_STATE,
    SIGNAL_CATALOG,
    SIGNAL_EVENTS,
    UPDATE_MOVE,
    CatalogChanged,
    CustomerInput,
    CustomerPatch,
    EventsSignal,
    MoveRequest,
    MoveResult,
)


async def send_events(
    client: Client,
    customer_id: str,
    events: list[Event],
    *,
    task_queue: str,
    catalog_seq: int,
    customer: CustomerPatch | None = None,
    search_attributes: bool = True,
    max_steps_per_run: int = 500,
    action_timeout_seconds: int = 60,
    code_version: int = CODE_VERSION,
) -> WorkflowHandle[CustomerWorkflow, None]:
    """Signal-with-start: the customer's first event creates their workflow (at
    ``code_version``: today's unless a test records an older run's history)."""
    return await client.start_workflow(
        CustomerWorkflow.run,
        CustomerInput(
            customer_id=customer_id,
            catalog_seq=catalog_seq,
            search_attributes=search_attributes,
            max_steps_per_run=max_steps_per_run,
            action_timeout_seconds=action_timeout_seconds,
            code_version=code_version,
        ),
        id=workflow_id(customer_id),
        task_queue=task_queue,
        start_signal=SIGNAL_EVENTS,
        start_signal_args=[EventsSignal(events=events, catalog_seq=catalog_seq, customer=customer)],
        static_summary=f"customer {customer_key(customer_id)}",
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(CUSTOMER_ID, customer_key(customer_id))]
        )
        if search_attributes
        else None,
        run_timeout=None,
        task_timeout=timedelta(seconds=10),
    )


def handle(client: Client, customer_id: str) -> WorkflowHandle[CustomerWorkflow, None]:
    return client.get_workflow_handle_for(CustomerWorkflow.run, workflow_id(customer_id))


async def state(client: Client, customer_id: str) -> CustomerState:
    result: CustomerState = await handle(client, customer_id).query(
        QUERY_STATE, result_type=CustomerState
    )
    return result


async def move(
    client: Client, customer_id: str, journey: str, to_state: str, reason: str
) -> MoveResult:
    result: MoveResult = await handle(client, customer_id).execute_update(
        UPDATE_MOVE,
        MoveRequest(journey=journey, state=to_state, reason=reason),
        result_type=MoveResult,
    )
    return result


async def notify_catalog(client: Client, customer_id: str, seq: int) -> None:
    await handle(client, customer_id).signal(SIGNAL_CATALOG, CatalogChanged(seq=seq))
