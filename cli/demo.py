"""``journeys demo [--customers N] [--months M] [--seed S]``: fill a development stack
with a made-up shop (``cli.demo_shop``) sent through the real API, so a first report has
segments, journeys, offers, NPS and an experiment's lift to show.

The history is sent in event time (Segment ``timestamp``), but journeys run in workflow
time: each event is applied now, and timers count from now. So the demo cannot make a
``60d`` timer fire for a customer whose last order was months ago; what makes customers
slip away is the segment refresh, which reads the history in event time. The demo runs it
twice: as of two months ago, then as of today, so customers visibly move between segments
(the report's migration table) and the journeys that enrol on ``segment_changed``
(``at_risk``, the win-back experiment) react. The NPS survey is due 3 days after a delivery
in workflow time; the demo moves the customers it surveys to ``nps:surveyed`` (an admin
move, its reason recorded) and answers their survey links. Details: README, "First steps".
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from .commands import Command, UserError
from .demo_experiment import comeback_orders, find_experiment
from .demo_shop import Shop, generate

EXPERIMENT = "winback_2026q4"
HISTORY_REFRESH = timedelta(days=60)  # the first refresh: as of this long before today
UP_TO_DATE = timedelta(days=1)  # segments as of this recently need no refresh again
MANAGERS = (("Ann Example", "ann@example.com"), ("Ben Example", "ben@example.com"))
MOVE_REASON = "journeys demo: the survey is due 3 days after the delivery; asked now"


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--customers", type=int, default=500, metavar="N", help="customers (500)")
    p.add_argument("--months", type=int, default=18, metavar="M", help="months of history (18)")
    p.add_argument("--seed", type=int, default=1, help="the same seed makes the same shop (1)")
    p.add_argument("--api", metavar="URL", help="the API (default: JOURNEYS_API_HOST/PORT)")
    p.add_argument("--write-key", help="default: the development key 'make run' printed")
    p.add_argument("--admin-token", help="default: the development token 'make run' printed")
    p.add_argument(
        "--wait",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for the journeys at each step before giving up (600)",
    )


def demo(args: argparse.Namespace) -> int:
    from ingest.bootstrap import saved_dev_keys
    from settings import get_settings

    if args.customers < 1 or args.months < 1:
        raise UserError("--customers and --months take a number, 1 or more")
    settings = get_settings()
    if settings.env != "development":
        raise UserError(
            "the demo fills a development stack with made-up customers; JOURNEYS_ENV is "
            "not 'development' (start one with 'make run')"
        )
    saved_write, saved_admin = saved_dev_keys(settings.data_dir / "dev-keys.env")
    write = args.write_key or settings.dev_write_key or saved_write
    admin = args.admin_token or settings.dev_admin_token or saved_admin
    if not write or not admin:
        raise UserError(
            "no development keys found: start the stack with 'make run' (it prints them), "
            "or pass --write-key and --admin-token"
        )
    url = args.api or f"http://{settings.api_host}:{settings.api_port}"
    database = settings.require_database_url()
    return asyncio.run(_Demo(args, url, write, admin, database).run())


class _Demo:
    def __init__(
        self, args: argparse.Namespace, url: str, write: str, admin: str, database: str
    ) -> None:
        self.args = args
        self.url, self.write, self.admin, self.database = url, write, admin, database
        self.started = time.monotonic()
        self.end = datetime.now(UTC)
        self.shop: Shop = generate(
            customers=args.customers, months=args.months, seed=args.seed, end=self.end
        )
        self.prefix = f"demo{args.seed}-"

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:5.1f}s] {text}", flush=True)

    async def run(self) -> int:
        import psycopg

        from store.demo import published_definitions

        from ._demo_api import DemoApi

        try:
            conn = await psycopg.AsyncConnection.connect(self.database, autocommit=True)
        except psycopg.OperationalError as exc:
            raise UserError(
                f"cannot reach PostgreSQL ({str(exc).strip()}); is 'make run' running?"
            ) from None
        async with conn, DemoApi(self.url, write_key=self.write, admin_token=self.admin) as api:
            self.conn, self.api = conn, api
            await api.check()
            await api.journeys()  # the admin token works, before anything is sent
            published = await published_definitions(conn)
            before = await self._progress()
            await self._managers()
            await self._history()
            await self._refreshes(new_history=(await self._progress()).sent > before.sent)
            came_back = await self._experiment(published)
            await self._surveys(published)
            await self._settled(counts="lifecycle" in published)
            after = await self._progress()
        self._summary(before.sent, after.sent, came_back)
        return 0

    async def _progress(self) -> Any:
        from store.demo import progress

        return await progress(self.conn, self.prefix)

    async def _wait(
        self, what: str, left: Callable[[], Awaitable[int]], *, quiet: bool = False
    ) -> None:
        """Wait until ``left()`` is 0, saying how many are left every few seconds; a dead
        letter or the deadline stops the demo with a sentence."""
        deadline = time.monotonic() + self.args.wait
        said = 0.0
        while True:
            n = await left()
            p = await self._progress()
            if p.dead_letters:
                raise UserError(
                    f"{p.dead_letters} event(s) of the demo's customers became dead letters "
                    "(see 'journeys dead-letters list' and .data/logs/worker.log)"
                )
            if n == 0:
                return
            now = time.monotonic()
            if now > deadline:
                raise UserError(
                    f"still waiting for {what} after {self.args.wait:.0f}s ({n} left): is the "
                    "worker running? (.data/logs/worker.log); run the demo again to go on"
                )
            if not quiet and now - said >= 5:
                self.say(f"waiting for {what}: {n} left")
                said = now
            await asyncio.sleep(0.5)

    async def _outbox_empty(self) -> None:
        async def left() -> int:
            return int((await self._progress()).outbox)

        await self._wait("the journeys to take the events", left)

    async def _send(self, messages: list[dict[str, Any]], what: str) -> None:
        from ._demo_api import batches

        sent = 0
        total = len(messages)
        step = max(total // 5, 1)
        mark = step
        for batch in batches(messages):
            await self.api.send(batch)
            sent += len(batch)
            if sent >= mark or sent == total:
                self.say(f"sent {sent:,}/{total:,} {what}")
                mark = sent + step

    async def _managers(self) -> None:
        """Account managers for the ``vip`` pool, unless it has some: VIPs get one, and
        detractors' call-back tasks go to them."""
        if await self.api.managers("vip"):
            return
        for name, email in MANAGERS:
            await self.api.add_manager("vip", name, email, 50)
        self.say(f"added {len(MANAGERS)} account managers to the vip pool")

    async def _history(self) -> None:
        shop = self.shop
        orders = [o for c in shop.customers for o in c.orders]
        revenue = sum(o.revenue for o in orders)
        self.say(
            f"a shop of {len(shop.customers):,} customers over {self.args.months} months "
            f"(seed {shop.seed}): {len(orders):,} orders, {revenue:,.0f} EUR, "
            f"{sum(c.lapsed_at is not None for c in shop.customers)} lapsing"
        )
        await self._send(shop.messages(), "events")
        await self._outbox_empty()

    async def _refreshes(self, *, new_history: bool) -> None:
        """Segments as of two months ago (the first time), then as of today, each applied
        by the workflows before the next step. A run that stored no new history, on
        segments as of today already, refreshes nothing: it changes nothing, so running
        the demo again neither enrols anyone new nor sends another order."""
        from store.demo import segments_behind, tiered_as_of

        async def behind() -> int:
            return await segments_behind(self.conn, self.prefix)

        as_of = await tiered_as_of(self.conn, self.prefix)
        if as_of is None:
            await self._refresh(self.end - HISTORY_REFRESH)
            await self._outbox_empty()
            await self._wait("the workflows to learn their segments", behind)
        elif not new_history and as_of > self.end - UP_TO_DATE:
            self.say(f"segments are as of {as_of:%Y-%m-%d %H:%M} UTC already: no refresh")
            return
        await self._refresh(None)
        await self._outbox_empty()
        await self._wait("the workflows to learn their segments", behind)

    async def _refresh(self, as_of: datetime | None) -> None:
        """The refresh ``journeys segments refresh [--as-of]`` runs, with a deadline: the
        workflow needs a worker, and one that never ran is terminated, so it cannot tier
        the history as of a past date after today's refresh."""
        from workflows.segments import SCHEDULE_ID, RefreshRequest, SegmentRefreshWorkflow

        from .live import _connect

        settings, client, _ = await _connect(need_db=False)
        run_id = f"{SCHEDULE_ID}-demo-{uuid.uuid4().hex[:8]}"
        when = f" as of {as_of:%Y-%m-%d %H:%M} UTC" if as_of else " as of now"
        self.say(f"refreshing segments{when} (workflow {run_id})")
        handle = await client.start_workflow(
            SegmentRefreshWorkflow.run,
            RefreshRequest(as_of=as_of),
            id=run_id,
            task_queue=settings.task_queue,
        )
        try:
            outcome = await asyncio.wait_for(handle.result(), self.args.wait)
        except TimeoutError:
            await handle.terminate(reason="journeys demo gave up waiting for it")
            raise UserError(
                f"the segment refresh did not finish within {self.args.wait:.0f}s: is the "
                "worker running? (.data/logs/worker.log); run the demo again to go on"
            ) from None
        self.say(
            f"refresh {outcome.refresh_id}: {outcome.customers} customers tiered, "
            f"{outcome.changed} changed segment or tier"
        )

    async def _experiment(self, published: dict[str, Any]) -> int:
        """Come-back orders for the customers the refresh enrolled in the win-back
        experiment, more often the better their arm's offer; returns how many."""
        from store.demo import assignments, open_coupons

        found = find_experiment(published, EXPERIMENT)
        if found is None:
            self.say(
                f"experiment {EXPERIMENT} is not in the published journeys "
                "(rules/winback_test.yaml): "
                "no come-back orders, the report has no lift to show"
            )
            return 0
        journey, arms = found
        enrolled = await assignments(self.conn, EXPERIMENT, self.prefix)
        coupons = await open_coupons(self.conn, journey, self.prefix, now=datetime.now(UTC))
        plan = comeback_orders(
            self.shop.seed, EXPERIMENT, arms, enrolled, coupons, datetime.now(UTC)
        )
        if plan.differing:
            self.say(
                f"{len(plan.differing)} customer(s) are in another arm than the weights give "
                f"(changed weights?), e.g. {plan.differing[0]}"
            )
        back = plan.orders
        arms_text = ", ".join(f"{a} {n}" for a, n in plan.by_arm.items())
        self.say(
            f"{EXPERIMENT}: {len(enrolled)} lapsing customers enrolled ({arms_text}); "
            f"{len(back)} come back"
        )
        if back:
            await self._send(back, "come-back orders")
            await self._outbox_empty()
        return len(back)

    async def _surveys(self, published: dict[str, Any]) -> None:
        """Ask the surveyed customers now (an admin move to ``nps:surveyed``: the survey is
        due 3 days after the delivery in workflow time), then answer their links."""
        from store.demo import journey_states, nps_surveys

        if "nps" not in published:
            self.say("journey nps is not published: no surveys")
            return
        asked = await nps_surveys(self.conn, self.prefix)
        states = await journey_states(self.conn, self.prefix, "nps")
        due = [
            c.id
            for c in self.shop.customers
            if c.surveyed and c.id not in asked and states.get(c.id) == "delivered"
        ]
        limit = asyncio.Semaphore(4)

        async def move(customer: str) -> bool:
            async with limit:
                return await self.api.move(customer, "nps", "surveyed", MOVE_REASON)

        moved = [c for c, ok in zip(due, await asyncio.gather(*map(move, due)), strict=True) if ok]
        if moved:
            self.say(f"asked {len(moved)} customers for an NPS score")

        async def unsurveyed() -> int:
            found = await nps_surveys(self.conn, self.prefix)
            return sum(c not in found for c in moved)

        await self._wait("the surveys to go out", unsurveyed)
        links = await nps_surveys(self.conn, self.prefix)
        answers = [
            (links[c.id].token, c.nps)
            for c in self.shop.customers
            if c.nps is not None and c.id in links and not links[c.id].answered
        ]
        done = 0
        for token, score in answers:
            done += await self.api.answer(token, score)
        if done:
            self.say(f"{done} customers answered their NPS survey")
        await self._outbox_empty()

    async def _settled(self, *, counts: bool) -> None:
        """Wait until every customer's lifecycle run counted the orders sent for them
        (``counts``: the shipped ``lifecycle`` journey is published), and the outbox is
        empty."""
        from store.demo import counted_orders, progress

        if not counts:
            await self._outbox_empty()
            return

        expected = {c.id: len(c.orders) for c in self.shop.customers if c.orders}

        async def behind() -> int:
            counted = await counted_orders(self.conn, self.prefix)
            # at least: a come-back order counts one more
            return sum(counted.get(c, 0) < n for c, n in expected.items())

        await self._wait("the journeys to count every order", behind)
        if (await progress(self.conn, self.prefix)).outbox:
            await self._outbox_empty()

    def _summary(self, before: int, after: int, came_back: int) -> None:
        shop = self.shop
        orders = sum(len(c.orders) for c in shop.customers) + came_back
        sent = len(shop.messages()) + came_back
        print(
            f"\ndone in {time.monotonic() - self.started:.0f}s: {len(shop.customers):,} "
            f"customers, {sent:,} events sent ({after - before:,} new, the rest already "
            f"there), {orders:,} orders"
        )
        print(
            "next: .venv/bin/journeys report --html report.html   (or "
            f"{self.url}/reports, the admin token as the password)"
        )


DEMO: dict[str, Command] = {
    "demo": (
        "fill a development stack with a made-up shop, through the API, for a first report",
        _args,
        demo,
    ),
}
