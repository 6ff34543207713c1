"""Helpers for tests that run real workflows."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from bench._common import local_activity_env as local_activity_env  # for the tests
from engine import Journey, load_rules
from engine.model import ActionCommand
from store import catalog as catalog_store
from workflows.io import ActionInput

ROOT = Path(__file__).resolve().parent.parent


async def publish(db_url: str, journeys: list[Journey]) -> int:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        return await catalog_store.publish(conn, journeys)


async def publish_shipped(db_url: str) -> int:
    return await publish(db_url, load_rules(ROOT / "rules", ROOT / "templates"))


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    """``check()``'s first truthy result, polled until ``timeout`` seconds have passed."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
    return result


def send_action(
    customer_id: str, key: str, now: datetime, *, state: str = "new", **args: Any
) -> ActionInput:
    """A lifecycle ``send`` action (``args``: template, channel, ...) as the workflow
    schedules it at ``now``."""
    command = ActionCommand(
        kind="send",
        args=args,
        journey="lifecycle",
        version=1,
        state=state,
        idempotency_key=key,
        summary=f"send {args.get('template')}",
    )
    return ActionInput(customer_id=customer_id, command=command, now=now)


def journeys_from(tmp_path: Path, name: str, text: str) -> list[Journey]:
    """Journeys from one YAML text, written to its own directory under tmp_path."""
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)
    return load_rules(folder, None)


# a condition that looks each item up in a 16,000-item list: quadratic, seconds of CEL if
# evaluated (issue #10); the engine records a problem and takes the next rule instead
COSTLY_LOOKUP = """
journey: shop
enroll: {on: [signed_up]}
start: new
states:
  new:
    on:
      order_completed:
        - when: event.properties.items.all(x, x in event.properties.items)
          goto: matched
        - goto: other
  matched: {final: true}
  other: {final: true}
"""
