"""Where SQL lives: every statement in ``store/`` (the segment rules' compiler in
``engine/`` writes SQL expressions, not statements, and ``store.segments`` runs them), and
events and their NOTIFY have one writer (``store/events.py``; the dead-letter retry puts a
buried event back into the outbox). A static check of the source, so a statement written in
the wrong place fails here with its file and line."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRITES = re.compile(r"\b(INSERT INTO|UPDATE\s+\w+\s+SET|DELETE FROM|NOTIFY|LISTEN)\b")
STATEMENTS = re.compile(WRITES.pattern + r"|\bSELECT\b.*\bFROM\b")
SHIPPED = (
    "engine", "settings", "messaging", "channels", "workflows", "activities", "reports",
    "orchestration", "ingest", "api", "cli", "devstack",
)  # fmt: skip
COMPILER = {"engine/_segment_sql.py", "engine/_segment_tokens.py"}
EVENT_WRITES = re.compile(r"\b(INSERT INTO (events|outbox)\b|NOTIFY)")


def _hits(pattern: re.Pattern[str], paths: list[Path]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in paths
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]


def _sources(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py"))


def test_activities_and_ingest_write_only_through_store() -> None:
    assert _hits(WRITES, _sources("activities", "ingest")) == []


def test_no_sql_statement_outside_store() -> None:
    paths = [p for p in _sources(*SHIPPED) if str(p.relative_to(ROOT)) not in COMPILER]
    assert _hits(STATEMENTS, [*paths, ROOT / "worker.py"]) == []


def test_events_outbox_and_notify_have_one_writer() -> None:
    project = [
        p
        for p in ROOT.rglob("*.py")
        if not {"tests", ".venv", ".tools", "bench"} & set(p.relative_to(ROOT).parts)
    ]
    allowed = {
        "store/events.py",  # new events, their outbox rows, the dispatcher's wake-up
        "store/dead_letters.py",  # an admin's retry moves a dead letter back to the outbox
    }
    found = [h for h in _hits(EVENT_WRITES, project) if h.split(":")[0] not in allowed]
    assert found == []
