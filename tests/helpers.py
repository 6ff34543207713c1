"""Helpers for tests that run real workflows."""

from __future__ import annotations

from pathlib import Path

import psycopg

from engine import Journey, load_rules
from store import catalog as catalog_store

ROOT = Path(__file__).resolve().parent.parent


async def publish(db_url: str, journeys: list[Journey]) -> int:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        return await catalog_store.publish(conn, journeys)


async def publish_shipped(db_url: str) -> int:
    return await publish(db_url, load_rules(ROOT / "rules", ROOT / "templates"))


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
