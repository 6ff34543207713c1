"""``journeys customers merge|ids|merges`` against a real PostgreSQL (issue #13, Admin):
A is absorbed into B, said plainly; the audit log records who (``cli <user>``), when and
why; a merge asked wrongly is exit 1 with a sentence and merges nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg
import pytest

from cli import run
from settings import get_settings

AT = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
def cli_env(db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("USER", "ann")
    monkeypatch.chdir(tmp_path)  # no .data/stack.env here
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


def _seen(db_url: str, *ids: str) -> None:
    """Customers as ingestion stores them: a profile and an event each."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        for n, cid in enumerate(ids):
            conn.execute(
                "INSERT INTO customers (customer_id, traits, first_seen) VALUES (%s, %s, %s)",
                (cid, json.dumps({"n": n}), AT),
            )
            conn.execute(
                "INSERT INTO events (source, message_id, type, customer_id, name, properties,"
                " event_time, received_at) VALUES (1, %s, 'track', %s, 'page_viewed', '{}', %s, %s)",
                (f"m-{cid}", cid, AT, AT),
            )


def _rows(db_url: str, sql: str) -> list[tuple]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(sql).fetchall()


def test_merge_then_ids_then_the_audit_log(cli_env, capsys):
    _seen(cli_env, "anon-1", "user-1", "crm-9")
    assert run(["customers", "merge", "anon-1", "user-1", "--reason", "same person"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "merged anon-1 into user-1 (merge #1); user-1's workflow takes over anon-1's journeys",
        "user-1's ids: anon-1, user-1",
    ]
    assert _rows(cli_env, "SELECT absorbed, survivor, via, reason, actor FROM merges") == [
        ("anon-1", "user-1", "admin", "same person", "cli ann")
    ]
    assert _rows(cli_env, "SELECT customer_id FROM customers ORDER BY 1") == [
        ("crm-9",),
        ("user-1",),
    ]

    # again, either way round: one customer already, exit 0, nothing new
    assert run(["customers", "merge", "user-1", "anon-1", "--reason", "again"]) == 0
    assert capsys.readouterr().out == (
        "user-1 and anon-1 already are one customer (user-1); nothing changed\n"
    )
    # a chain: the survivor is absorbed in turn, and every id follows
    assert run(["customers", "merge", "user-1", "crm-9", "--reason", "CRM import"]) == 0
    assert "merged user-1 into crm-9 (merge #2)" in capsys.readouterr().out

    assert run(["customers", "ids", "anon-1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [
        "customer crm-9 (anon-1 was merged into it)",
        "ids: anon-1, crm-9, user-1",
        "merges, newest first:",
    ]
    assert len(out) == 5
    assert out[3].startswith("  #2  ") and out[4].startswith("  #1  ")
    assert out[3].endswith(
        "UTC  via admin  by cli ann: user-1 into crm-9, CRM import; "
        "waiting for delivery (0 attempt(s))"
    )
    assert "by cli ann: anon-1 into user-1, same person;" in out[4]
    stamp = datetime.strptime(out[4].split("  ")[2], "%Y-%m-%d %H:%M:%S UTC")
    assert abs((datetime.now(UTC).replace(tzinfo=None) - stamp).total_seconds()) < 60

    assert run(["customers", "ids", "crm-9"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "customer crm-9"
    assert run(["customers", "merges", "--limit", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1].startswith("  #2  ")
    assert run(["customers", "merges", "--customer", "nobody"]) == 0
    assert capsys.readouterr().out == "no merges of customer nobody\n"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["merge", "known-1", "known-1", "--reason", "x"], "the two ids are the same"),
        (["merge", "typo-1", "known-1", "--reason", "x"], "no customer 'typo-1' to absorb"),
        (["merge", "known-1", "typo-2", "--reason", "x"], "no customer 'typo-2' to merge into"),
        (["merge", "known-1", "known-2", "--reason", "  "], "give the reason for the merge"),
        (["merge", "known-1", "known-2", "--reason", "x" * 501], "over 500 characters"),
        (["merge", "k" * 257, "known-2", "--reason", "x"], "over 256 characters"),
        (["merge", "a\x00b", "known-2", "--reason", "x"], "holds a NUL"),
        (["merge", "known-1", "known-2", "--reason", "\udcff"], "lone surrogate"),
        (["ids", "typo-3"], "no customer 'typo-3': Journeys never saw this id"),
        (["ids", "ann@shop.example"], "no customer with this id"),
        (["merges", "--limit", "0"], "--limit takes a number"),
    ],
)
def test_a_command_asked_wrongly_is_exit_1_with_a_sentence(cli_env, capsys, argv, words):
    _seen(cli_env, "known-1", "known-2")
    assert run(["customers", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("journeys customers: ") and words in err, err
    assert _rows(cli_env, "SELECT count(*) FROM merges") == [(0,)]
    assert _rows(cli_env, "SELECT count(*) FROM customers") == [(2,)]


def test_a_merge_without_a_reason_is_bad_usage(cli_env, capsys):
    with pytest.raises(SystemExit) as exited:
        run(["customers", "merge", "a", "b"])
    assert exited.value.code == 2
    assert "--reason" in capsys.readouterr().err


async def _refused_by_a_write_key(db_url: str, a: str, b: str) -> None:
    """An identify of a write key that would join two known people: refused and recorded."""
    from store import identity

    async with await psycopg.AsyncConnection.connect(db_url) as conn, conn.transaction():
        await identity.resolve(conn, [a, b], user_ids=[a, b])
        row = await identity.merge(
            conn, a, b, via="identify", actor="write key web", refuse_known=True
        )
        assert row is not None and row.refused


def test_a_refused_merge_shows_in_the_log_and_an_admin_can_still_merge(cli_env, capsys):
    import asyncio

    _seen(cli_env, "ann-home", "ann-work")
    asyncio.run(_refused_by_a_write_key(cli_env, "ann-home", "ann-work"))
    assert run(["customers", "ids", "ann-home"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["customer ann-home", "ids: ann-home"]
    assert "via identify  by write key web: ann-home into ann-work" in out[3]
    assert "REFUSED, not merged: both are known customers" in out[3]
    # what the refusal tells the admin to do
    assert run(["customers", "merge", "ann-home", "ann-work", "--reason", "one Ann"]) == 0
    assert capsys.readouterr().out.startswith("merged ann-home into ann-work (merge #2)")
    assert run(["customers", "ids", "ann-work"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "ids: ann-home, ann-work" and len(out) == 5
    assert out[3].endswith("one Ann; waiting for delivery (0 attempt(s))")


async def test_show_and_move_find_the_survivor_of_an_absorbed_id(db, db_url, monkeypatch, capsys):
    """``journeys show A`` and ``journeys move A`` talk to the workflow that holds A's
    journeys now: the survivor's, once A was merged."""
    from cli import live
    from settings import get_settings
    from store import identity

    async with db.connection() as conn:
        await identity.merge(conn, "shown-a", "shown-b", via="admin", reason="dup", actor="t")
    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        assert await live._canonical("shown-a") == "shown-b"
        assert await live._canonical("shown-b") == "shown-b"
        assert await live._canonical("never-seen") == "never-seen"
    finally:
        get_settings.cache_clear()
    assert "shown-a was merged into shown-b" in capsys.readouterr().err
