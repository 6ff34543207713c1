"""Talking to customer workflows from outside: send events, read state, move, upgrade,
merge two customers' journeys.

Which workflow is a customer's: the customer id itself for ids safe to show; for ids that
look like contact details (or hold unsafe characters) a keyed hash of it
(:class:`CustomerIds`). Workflows started before the hash was keyed run under the legacy
unsalted hash; they keep being found, signalled and queried there (docs/api.md)."""

from __future__ import annotations

import asyncio
import functools
from collections import OrderedDict
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from engine import Catalog, CustomerState
from engine.identity import customer_key, is_hashed, workflow_id
from engine.model import Event
from workflows.customer import CUSTOMER_ID, CustomerWorkflow
from workflows.io import (
    CODE_VERSION,
    QUERY_STATE,
    SIGNAL_ABSORBED,
    SIGNAL_CATALOG,
    SIGNAL_EVENTS,
    SIGNAL_MERGE,
    UPDATE_MOVE,
    AbsorbedSignal,
    CatalogChanged,
    CustomerInput,
    CustomerPatch,
    EventsSignal,
    Handover,
    MergeSignal,
    MoveRequest,
    MoveResult,
)


class CustomerIds:
    """The workflow id of each customer, keyed with ``secret`` (``JOURNEYS_ID_SECRET``).

    For a hashed id, the legacy workflow (unsalted hash) is looked up once per process:
    while it runs it stays the customer's workflow; otherwise the keyed id is. The answer
    is remembered (nothing starts legacy workflows any more, so it cannot go stale the
    wrong way)."""

    def __init__(self, secret: str, *, remember: int = 100_000) -> None:
        self.secret = secret
        self._known: OrderedDict[str, str] = OrderedDict()
        self._remember = remember

    def key(self, customer_id: str) -> str:
        """The ``CustomerId`` search attribute of the customer's (new) workflow."""
        return customer_key(customer_id, self.secret)

    async def workflow_id(self, client: Client, customer_id: str) -> str:
        if not is_hashed(customer_id):
            return workflow_id(customer_id)
        known = self._known.get(customer_id)
        if known is not None:
            self._known.move_to_end(customer_id)
            return known
        legacy = workflow_id(customer_id)
        found = workflow_id(customer_id, self.secret)
        try:
            info = await client.get_workflow_handle(legacy).describe()
            if info.raw_description.workflow_execution_info.status == (
                WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
            ):
                found = legacy
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
        self._known[customer_id] = found
        if len(self._known) > self._remember:
            self._known.popitem(last=False)
        return found


Handle = WorkflowHandle[CustomerWorkflow, Handover | None]


@functools.cache
def _ids_for(secret: str) -> CustomerIds:
    return CustomerIds(secret)


def default_ids() -> CustomerIds:
    """The process's resolver, keyed with the settings' ``JOURNEYS_ID_SECRET``."""
    from settings import get_settings

    return _ids_for(get_settings().id_secret)


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
    ids: CustomerIds | None = None,
    state: CustomerState | None = None,
    catalog: Catalog | None = None,
) -> Handle:
    """Signal-with-start: the customer's first event creates their workflow (at
    ``code_version``: today's unless a test records an older run's history). A new
    workflow starts from ``state`` and with ``catalog`` (at ``catalog_seq``) if given (a
    journey test's customer, tags included); one already running ignores both."""
    return await _signal_with_start(
        client,
        CustomerInput(
            customer_id=customer_id,
            state=state,
            catalog_seq=catalog_seq,
            catalog=catalog,
            search_attributes=search_attributes,
            max_steps_per_run=max_steps_per_run,
            action_timeout_seconds=action_timeout_seconds,
            code_version=code_version,
        ),
        SIGNAL_EVENTS,
        EventsSignal(events=events, catalog_seq=catalog_seq, customer=customer),
        task_queue=task_queue,
        ids=ids or default_ids(),
    )


async def _signal_with_start(
    client: Client,
    start: CustomerInput,
    signal: str,
    arg: Any,
    *,
    task_queue: str,
    ids: CustomerIds,
) -> Handle:
    customer_id, search_attributes = start.customer_id, start.search_attributes
    key = ids.key(customer_id)
    return await client.start_workflow(
        CustomerWorkflow.run,
        start,
        id=await ids.workflow_id(client, customer_id),
        task_queue=task_queue,
        start_signal=signal,
        start_signal_args=[arg],
        static_summary=f"customer {key}",
        search_attributes=TypedSearchAttributes([SearchAttributePair(CUSTOMER_ID, key)])
        if search_attributes
        else None,
        run_timeout=None,
        task_timeout=timedelta(seconds=10),
    )


async def send_merge(
    client: Client,
    absorbed: str,
    signal: MergeSignal,
    *,
    ids: CustomerIds | None = None,
    wait: timedelta = timedelta(seconds=60),
) -> Handover:
    """Tell ``absorbed``'s workflow it was merged (``signal.into``) and wait for what it
    hands over (``TimeoutError`` after ``wait``: send again later, it is idempotent).
    A customer without a workflow hands over nothing; one that completed already answers
    with its result, when that is the handover of this merge (else nothing)."""
    empty = Handover(merge_id=signal.merge_id, absorbed=absorbed, into=signal.into)
    wf = await handle(client, absorbed, ids=ids)
    try:
        await wf.signal(SIGNAL_MERGE, signal)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:  # not found: none, or it completed
            raise
    try:
        result = await asyncio.wait_for(wf.result(), wait.total_seconds())
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return empty  # the customer never had a workflow (no event reached one)
    except WorkflowFailureError:
        return empty  # terminated, cancelled or failed: its journeys ended with it
    if not isinstance(result, Handover) or result.merge_id != signal.merge_id:
        return empty
    return result


async def send_absorbed(
    client: Client,
    survivor: str,
    signal: AbsorbedSignal,
    *,
    task_queue: str,
    catalog_seq: int,
    ids: CustomerIds | None = None,
    search_attributes: bool = True,
) -> Handle:
    """Signal-with-start ``survivor``'s workflow with what an absorbed customer's handed
    over (a survivor without a workflow yet gets one, as with its first event)."""
    start = CustomerInput(
        customer_id=survivor,
        catalog_seq=catalog_seq,
        search_attributes=search_attributes,
        code_version=CODE_VERSION,
    )
    return await _signal_with_start(
        client, start, SIGNAL_ABSORBED, signal, task_queue=task_queue, ids=ids or default_ids()
    )


async def handle(client: Client, customer_id: str, *, ids: CustomerIds | None = None) -> Handle:
    """The customer's workflow (legacy or keyed id, see :class:`CustomerIds`)."""
    wid = await (ids or default_ids()).workflow_id(client, customer_id)
    return client.get_workflow_handle_for(CustomerWorkflow.run, wid)


async def state(
    client: Client, customer_id: str, *, ids: CustomerIds | None = None
) -> CustomerState:
    result: CustomerState = await (await handle(client, customer_id, ids=ids)).query(
        QUERY_STATE, result_type=CustomerState
    )
    return result


async def move(
    client: Client,
    customer_id: str,
    journey: str,
    to_state: str,
    reason: str,
    *,
    ids: CustomerIds | None = None,
) -> MoveResult:
    result: MoveResult = await (await handle(client, customer_id, ids=ids)).execute_update(
        UPDATE_MOVE,
        MoveRequest(journey=journey, state=to_state, reason=reason),
        result_type=MoveResult,
    )
    return result


async def notify_catalog(
    client: Client, customer_id: str, seq: int, *, ids: CustomerIds | None = None
) -> None:
    await (await handle(client, customer_id, ids=ids)).signal(
        SIGNAL_CATALOG, CatalogChanged(seq=seq)
    )
