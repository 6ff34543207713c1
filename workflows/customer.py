"""One long-lived workflow per customer runs every journey they are in.

The workflow is a shell: it feeds events, timers and admin moves to the pure interpreter in
``engine.machine`` and carries out what it returns (activities, search attributes, the
markdown shown in the Temporal UI). History stays bounded by continue-as-new, which
carries the state, the pending timers' deadlines (inside the state) and the dedupe window.
A customer merged into another ends its journeys and completes, handing them over
(``engine.merging``); the survivor's workflow takes them over.
"""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, SearchAttributeKey
from temporalio.exceptions import ApplicationError, FailureError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from engine import Catalog, CustomerState, MoveError, Step, machine, merging
    from engine.calendar import run_holidays_with
    from engine.catalog import shared
    from engine.identity import customer_key
    from engine.machine import TransitionRecord
    from engine.model import Customer, Problem
    from workflows import _actions, _catalog, _shown
    from workflows._actions import PATCH_LOCAL_FIRST, execute_action, is_stale
    from workflows._inbox import decode_events, patched
    from workflows._records import log_of, record, shown, snapshot_key
    from workflows.io import (
        CODE_VERSION,
        QUERY_STATE,
        SIGNAL_ABSORBED,
        SIGNAL_CATALOG,
        SIGNAL_EVENTS,
        SIGNAL_MERGE,
        UPDATE_MOVE,
        AbsorbedSignal,
        ActionInput,
        CatalogChanged,
        CustomerInput,
        DeferredAction,
        EventsSignal,
        Handover,
        MergeSignal,
        MoveRequest,
        MoveResult,
        RecordTransitionsInput,
    )

run_holidays_with(workflow.unsafe.sandbox_unrestricted)  # reads its own files: see there

CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
PATCH_LOCAL_TRANSITIONS = "transitions-as-local-activity"
# a move's new timers and deferred messages are armed at once (before: at the next event)
PATCH_ARM_AFTER_MOVE = "arm-timer-after-move"
# runs started at this code version or later (workflows.io.CODE_VERSION) have the patched
# behaviours above from their first task, without asking workflow.patched
CODE_VERSION_DECIDED = 4
# runs from this version on also write the admin read model when only the context changed
CODE_VERSION_SNAPSHOTS = 5
# runs from this version on log a step's transitions with its last action
CODE_VERSION_LOG_WITH_ACTION = 6


@workflow.defn(name="CustomerWorkflow")
class CustomerWorkflow:
    @workflow.init
    def __init__(self, input: CustomerInput) -> None:
        self._state = input.state or CustomerState(customer=Customer(id=input.customer_id))
        self._inbox: deque[EventsSignal] = deque(input.pending)
        self._deferred: list[DeferredAction] = list(input.deferred)
        self._wanted_seq = input.catalog_seq
        self._catalog: Catalog | None = None
        # the catalog sent with the start, until used; not kept in the input (memory)
        self._given, input.catalog = input.catalog, None
        self._lock = asyncio.Lock()
        self._steps = 0
        self._use_attributes = input.search_attributes
        self._max_steps = input.max_steps_per_run
        self._action_timeout = timedelta(seconds=input.action_timeout_seconds)
        self._shown: tuple[list[str], list[str]] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._timer_due: datetime | None = None
        self._details = ""
        self._code_version = input.code_version
        self._snapshot_seq = input.snapshot_seq
        self._snapshot_shown = ""  # what the last snapshot written holds (without seq, at)
        self._merge = input.merge  # merged into another customer: end, hand over, complete
        self._absorbed: deque[Handover] = deque(input.absorbed)
        self._merged: merging.Handover | None = None

    # --- messages -------------------------------------------------------------------------

    @workflow.signal(name=SIGNAL_EVENTS)
    def events(self, raw: RawValue) -> None:
        signal = decode_events(raw)  # one that cannot be decoded is a problem shown
        if isinstance(signal, str):
            self._problem("", "", signal)
        else:
            self._inbox.append(signal)

    @workflow.signal(name=SIGNAL_MERGE)
    def merge(self, signal: MergeSignal) -> None:
        if self._merge is None:  # delivered again (a dispatcher retry): the first counts
            self._merge = signal

    @workflow.signal(name=SIGNAL_ABSORBED)
    def absorbed(self, signal: AbsorbedSignal) -> None:
        self._absorbed.append(signal.handover)

    @workflow.signal(name=SIGNAL_CATALOG)
    def catalog_changed(self, signal: CatalogChanged) -> None:
        self._wanted_seq = max(self._wanted_seq, signal.seq)

    @workflow.query(name=QUERY_STATE)
    def state(self) -> CustomerState:
        return self._state

    @workflow.update(name=UPDATE_MOVE)
    async def move(self, request: MoveRequest) -> MoveResult:
        async with self._lock:
            if self._merged is not None:  # its journeys went to the survivor
                raise ApplicationError(f"the customer was {self._merged_cause()}", type="MoveError")
            await self._ensure_catalog()
            assert self._catalog is not None
            try:
                step = self._try_move(request)
            except MoveError as exc:  # fails the update, not the workflow task
                raise ApplicationError(str(exc), type="MoveError", non_retryable=True) from None
            await self._carry_out(step)
            if self._has(PATCH_ARM_AFTER_MOVE):
                self._arm_timer()
        run = self._state.runs[request.journey]
        return MoveResult(journey=request.journey, state=run.state, version=run.version)

    @move.validator
    def _validate_move(self, request: MoveRequest) -> None:
        if self._catalog is None:
            return  # checked again by the handler once the catalog is loaded
        try:
            self._try_move(request)
        except MoveError as exc:
            raise ValueError(str(exc)) from None

    def _try_move(self, r: MoveRequest) -> Step:
        assert self._catalog is not None
        now = workflow.now()
        return machine.move(self._catalog, self._state, r.journey, r.state, r.reason, now)

    # --- main loop ------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: CustomerInput) -> Handover | None:
        if self._use_attributes and not workflow.info().typed_search_attributes.get(CUSTOMER_ID):
            # senders set it at start; older starts did not. Ids that look like contact
            # details are hashed, as in the workflow id.
            key = customer_key(input.customer_id)
            workflow.upsert_search_attributes([CUSTOMER_ID.value_set(key)])
        while True:
            async with self._lock:
                await self._ensure_catalog()
                await self._fire_timers()
                await self._run_deferred()
                while self._absorbed:  # before the inbox: it gets the absorbed's pending
                    await self._absorb(self._absorbed.popleft())
                while self._inbox:
                    await self._apply(self._inbox.popleft())
                    await self._fire_timers()
                if self._merge is not None:
                    await self._merge_away(self._merge)
                if self._code_version >= CODE_VERSION_SNAPSHOTS or self._merged is not None:
                    await self._record_snapshot()
                self._publish()
            if self._merged is not None or self._should_continue_as_new():
                break
            self._arm_timer()
            await workflow.wait_condition(
                lambda: (
                    bool(self._inbox)
                    or self._timer_fired()
                    or self._catalog_stale()
                    or self._should_continue_as_new()
                    or bool(self._absorbed or self._merge)
                )
            )
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._merged is not None:  # events that came meanwhile go to the survivor
            return Handover(**dict(self._merged), pending=list(self._inbox))
        workflow.continue_as_new(
            CustomerInput(
                customer_id=input.customer_id,
                state=self._state,
                pending=list(self._inbox),
                deferred=self._deferred,
                catalog_seq=max(self._wanted_seq, self._catalog.seq if self._catalog else 0),
                catalog=self._catalog,  # the next run's first task needs no load_catalog
                search_attributes=self._use_attributes,
                max_steps_per_run=self._max_steps,
                action_timeout_seconds=input.action_timeout_seconds,
                code_version=CODE_VERSION,  # a new run starts with today's behaviours
                snapshot_seq=self._snapshot_seq,
                merge=self._merge,
                absorbed=list(self._absorbed),
            )
        )

    def _has(self, patch: str) -> bool:
        """Whether this run has the behaviour ``patch`` introduced. Runs started at
        ``CODE_VERSION_DECIDED`` or later have them all, without a marker; older runs ask
        ``workflow.patched``, at the same places as when their history was recorded."""
        return self._code_version >= CODE_VERSION_DECIDED or workflow.patched(patch)

    def _should_continue_as_new(self) -> bool:
        return self._steps >= self._max_steps or workflow.info().is_continue_as_new_suggested()

    def _catalog_stale(self) -> bool:
        return self._catalog is not None and self._wanted_seq > self._catalog.seq

    def _timer_fired(self) -> bool:
        return self._timer is not None and self._timer.done()

    def _arm_timer(self) -> None:
        """One durable timer for the earliest deadline; re-armed only when it changes, so
        events that do not move deadlines add no timer commands to history."""
        due = _actions.next_due(self._state, self._deferred)  # of a journey or a deferred message
        if due == self._timer_due and self._timer is not None and not self._timer.done():
            return
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
        self._timer, self._timer_due = None, due
        if due is not None:
            delay = max((due - workflow.now()).total_seconds(), 0.001)
            self._timer = asyncio.ensure_future(
                workflow.sleep(delay, summary=f"next timer {due:%Y-%m-%d %H:%M}")
            )

    async def _run_deferred(self, woken: list[DeferredAction] | None = None) -> None:
        """Messages the policy held back whose time has come (or ``woken`` by an event
        they wait for): asked again, same key."""
        now = workflow.now()
        due, self._deferred = _actions.take_due(self._deferred, now, woken)
        for item in due:
            update: dict[str, Any] = {"now": now}
            if is_stale(self._state, item):
                # the customer moved on meanwhile: a win-back offer after they came back,
                # say, would be wrong; the message is recorded as dropped, not sent
                update["drop_reason"] = "the journey moved on before the message could go out"
            await self._run_action(item.input.model_copy(update=update))

    async def _ensure_catalog(self) -> None:
        if self._catalog is not None and not self._catalog_stale():
            return
        versions = sorted({Catalog.key(r.journey, r.version) for r in self._state.runs.values()})
        asked = self._wanted_seq
        given, self._given = self._given, None
        self._catalog = shared(await _catalog.obtain(given, versions, asked))
        if self._wanted_seq == asked:
            # the store's head is the truth: never reload forever for a seq it lacks
            self._wanted_seq = self._catalog.seq
        else:  # a newer notice arrived while loading
            self._wanted_seq = max(self._wanted_seq, self._catalog.seq)
        await self._carry_out(machine.upgrade(self._catalog, self._state, workflow.now()))

    async def _merge_away(self, signal: MergeSignal) -> None:
        """End every run (``engine.merging``), drop the deferred messages, log it all."""
        assert self._catalog is not None
        now = workflow.now()
        step, self._merged = merging.merge_away(
            self._catalog, self._state, signal.into, now, merge_id=signal.merge_id
        )
        await self._carry_out(step)
        dropped, self._deferred = self._deferred, []
        for item in dropped:  # recorded as dropped, never sent
            drop = {"now": now, "drop_reason": self._merged_cause()}
            await self._run_action(item.input.model_copy(update=drop))
        if self._timer is not None:
            self._timer.cancel()

    def _merged_cause(self) -> str:
        return merging.merged_cause(self._merged.into if self._merged else "")

    async def _absorb(self, handover: Handover) -> None:
        """Take over a merged customer's runs; load the versions they are on if needed."""
        assert self._catalog is not None
        await self._carry_out(merging.absorb(self._catalog, self._state, handover, workflow.now()))
        if merging.missing(self._catalog, self._state):
            self._catalog = None
            await self._ensure_catalog()
            assert self._catalog is not None
        self._state = machine.refresh_calendar(self._catalog, self._state, workflow.now())
        # its events only: what is known of the customer comes from PostgreSQL
        self._inbox.extend(s.model_copy(update={"customer": None}) for s in handover.pending)

    async def _fire_timers(self) -> None:
        assert self._catalog is not None
        due = machine.next_due(self._state)
        if due is not None and due <= workflow.now():
            await self._carry_out(machine.fire_timers(self._catalog, self._state, workflow.now()))

    async def _apply(self, signal: EventsSignal) -> None:
        if signal.catalog_seq > self._wanted_seq:
            self._wanted_seq = signal.catalog_seq
            await self._ensure_catalog()
        assert self._catalog is not None
        if signal.customer is not None:  # what is known of them changed
            self._state = patched(self._catalog, self._state, signal.customer, workflow.now())
        for event in signal.events:
            await self._carry_out(
                machine.handle_event(self._catalog, self._state, event, workflow.now())
            )
        woken = _actions.woken_by(self._deferred, signal.events)
        if woken:  # the address a message waits for came (CONTACT_ADDED): not at its timer
            await self._run_deferred(woken)

    async def _carry_out(self, step: Step) -> None:
        self._state = step.state
        if step.duplicate:
            return
        self._steps += 1
        logged = False
        together = self._code_version >= CODE_VERSION_LOG_WITH_ACTION and step.transitions
        for i, command in enumerate(step.actions):
            run = self._state.runs.get(command.journey)
            last = together and i == len(step.actions) - 1
            logged = await self._run_action(
                ActionInput(
                    customer_id=self._state.customer.id,
                    command=command,
                    context=dict(run.context) if run else {},
                    now=workflow.now(),
                    tier=self._state.customer.tier,
                    segment=self._state.customer.segment,
                ),
                self._next_log(step.transitions) if last else None,
            )
        if step.transitions and not logged:
            await self._record(step.transitions)

    async def _record_snapshot(self) -> None:
        """Keep the admin read model (PostgreSQL) up to date when the customer changed
        without a transition (an order counted in ``active``, a problem): one local activity,
        only when what it shows changed."""
        if self._snapshot_shown != snapshot_key(self._state, self._catalog):
            await self._record([])

    async def _record(self, rows: list[TransitionRecord]) -> None:
        log = self._next_log(rows)
        await record(log, local=self._has(PATCH_LOCAL_TRANSITIONS))
        self._snapshot_shown = shown(log)

    def _next_log(self, rows: list[TransitionRecord]) -> RecordTransitionsInput:
        self._snapshot_seq += 1
        return log_of(self._state, self._catalog, rows, seq=self._snapshot_seq)

    async def _run_action(
        self, data: ActionInput, log: RecordTransitionsInput | None = None
    ) -> bool:
        """Carry out ``data``; with ``log``, write it too if it can go with the action
        (returns whether it went)."""
        command = data.command
        try:
            result, logged = await execute_action(
                data, self._action_timeout, local_first=self._has(PATCH_LOCAL_FIRST), log=log
            )
        except FailureError as exc:  # an activity's error, or a local activity's own
            if is_cancelled_exception(exc):
                raise  # the workflow is being cancelled: not a problem of the journey
            cause = exc.cause or exc
            self._problem(command.journey, command.state, f"{command.summary} failed: {cause}")
            return False
        if logged and log is not None:
            self._snapshot_shown = shown(log)
        deferred = _actions.deferral(self._state, data, result)
        if deferred is not None:
            self._deferred.append(deferred)
        return logged

    def _problem(self, journey: str, state: str, message: str) -> None:
        """Record what went wrong where the admin looks (state, UI details), bounded."""
        self._state.problems.append(
            Problem(at=workflow.now(), journey=journey, state=state, message=message)
        )
        del self._state.problems[: -machine.MAX_PROBLEMS]
        workflow.logger.error("customer problem: %s", message)

    def _publish(self) -> None:
        """Search attributes and UI details, when they changed."""
        shown = _shown.attributes(self._state)
        if self._use_attributes and self._shown != shown:
            workflow.upsert_search_attributes(_shown.updates(*shown))
        self._shown = shown
        details = _shown.details(self._state, self._catalog, self._deferred)
        if details != self._details:
            self._details = details
            workflow.set_current_details(details)
