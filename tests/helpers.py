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
