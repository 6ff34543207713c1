"""``journeys replay [--query Q] [--limit N]``: replay live customers' histories with the
code installed here, as a new worker would after a restart. Run it before deploying a new
worker: a failure is a customer the new code would leave stuck (a non-deterministic
workflow change), named with the reason; the exit code is 1 if there is any."""

from __future__ import annotations

import argparse
import asyncio

from .commands import Command, UserError

CUSTOMERS = "WorkflowType = 'CustomerWorkflow'"


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--query",
        help="a Temporal visibility query selecting the workflows "
        "(default: every customer, WorkflowType = 'CustomerWorkflow'), "
        "e.g. \"Journeys = 'lifecycle:vip'\" or \"ExecutionStatus = 'Running'\"",
    )
    p.add_argument("--limit", type=int, help="replay at most N histories (default: all)")


def replay(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be a positive number of histories")
    return asyncio.run(_replay(args.query, args.limit))


async def _replay(query: str | None, limit: int | None) -> int:
    from temporalio.service import RPCError

    from orchestration.replay import replay_all

    from .live import _connect

    _, client, _ = await _connect(need_db=False)
    try:
        report = await replay_all(client, query or CUSTOMERS, limit)
    except RPCError as exc:
        raise UserError(f"Temporal refused the query: {exc.message}") from None
    for failure in report.failures:
        print(f"FAIL {failure.workflow_id} (run {failure.run_id}): {failure.reason}")
    print(
        f"replayed {report.replayed} history(ies) with the current code: "
        f"{len(report.failures)} failure(s)"
    )
    return 1 if report.failures else 0


REPLAY: dict[str, Command] = {
    "replay": (
        "replay live customers' histories with this code (run before deploying a worker)",
        _args,
        replay,
    )
}
