"""Every report figure against a hand-built history with answers worked out by hand, the
empty database, the text and HTML renderings, the CLI and the admin-only page."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn

from api import create_app
from cli import run
from devstack.stack import free_port
from engine import load_rules
from ingest import keys
from reports import build_report, render_html, render_text
from reports.queries import (
    churn_rate,
    migration_matrix,
    offer_figures,
    reactivation_rate,
    repurchase_rate,
    survey_figures,
)
from settings import Settings, get_settings
from store import catalog

T0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday: NPS weeks start here
DAY = timedelta(days=1)


def at(days: float) -> datetime:
    return T0 + days * DAY


# (customer, [(key suffix, from, to, day)]): lifecycle; c4 only enrols in onboarding
TRANSITIONS = {
    "c1": [
        ("1/1", None, "new", 0),
        ("1/2", "new", "active", 1),
        ("1/3", "active", "dormant", 61),
        ("1/4", "dormant", "active", 70),
    ],
    "c2": [  # enrolled and moved on in the same instant: the key orders them
        ("1/2", "new", "active", 0),
        ("1/1", None, "new", 0),
        ("1/3", "active", "dormant", 60),
        ("1/4", "dormant", "lost", 90),
    ],
    "c3": [
        ("1/1", None, "new", 2),
        ("1/2", "new", "dormant", 16),
        ("1/3", "dormant", "active", 50),  # 34 days: too late to count as reactivated
        ("1/3/exit", "active", "exited", 55),
    ],
}
JOURNEYS = {  # published for real: exits count the states a version marks final
    "lifecycle": """
journey: lifecycle
enroll: {on: [signed_up]}
exit_when: 'event.name == "unsubscribed"'
start: new
states:
  new:
    on: {order_completed: [{goto: active}]}
    after: {14d: dormant}
  active:
    after: {60d: dormant}
  dormant:
    on: {order_completed: [{goto: active}]}
    after: {30d: lost}
  lost: {final: true}
""",
    "onboarding": """
journey: onboarding
enroll: {on: [signed_up]}
start: start
states:
  start:
    on: {order_completed: [{goto: done}]}
  done: {final: true}
""",
}
# (customer, day, revenue, coupon redeemed by this order)
ORDERS = [
    ("c1", 1, 100, None),
    ("c1", 70, "50.5", "o1"),
    ("c2", 0, 200, None),
    ("c3", 50, 80, "o3"),
    ("c5", 10, 30, None),
]
# (code, customer, template, created day, redeemed day or None); o4 redeemed by an admin
OFFERS = [
    ("o1", "c1", "reactivation_offer", 61, 70),
    ("o2", "c2", "reactivation_offer", 60, None),
    ("o3", "c3", "reactivation_offer", 16, 50),
    ("o4", "c5", "welcome_gift", 5, 6),
]
# (kind, sent day, score or None)
SURVEYS = [
    ("nps", 1, 10),
    ("nps", 2, 9),
    ("nps", 3, 3),
    ("nps", 4, None),
    ("nps", 8, 7),
    ("nps", 9, None),
    ("nps", 22, None),
    ("csat", 3, 4),
    ("csat", 4, 5),
    ("csat", 5, None),
]


async def seed(conn: psycopg.AsyncConnection[Any]) -> None:
    """The hand-built history the expected figures below are worked out from."""
    with tempfile.TemporaryDirectory() as folder:
        for name, text in JOURNEYS.items():
            (Path(folder) / f"{name}.yaml").write_text(text)
        await catalog.publish(conn, load_rules(Path(folder), None))
    rows = [
        (f"{c}/lifecycle/{key}", c, "lifecycle", src, dst, f"cause:{dst}", at(day))
        for c, moves in TRANSITIONS.items()
        for key, src, dst, day in moves
    ]
    rows.append(("c4/onboarding/1/1", "c4", "onboarding", None, "start", "enroll:x", at(3)))
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO journey_transitions (key, customer_id, journey, version, from_state,"
            " to_state, cause, at) VALUES (%s, %s, %s, 1, %s, %s, %s, %s)",
            rows,
        )
    order_ids: dict[str, int] = {}
    for i, (customer, day, revenue, coupon) in enumerate(ORDERS):
        cur = await conn.execute(
            "INSERT INTO events (source, message_id, type, customer_id, name, properties,"
            " event_time, received_at) VALUES (1, %s, 'track', %s, 'order_completed', %s, %s, %s)"
            " RETURNING id",
            (f"m{i}", customer, json.dumps({"revenue": revenue}), at(day), at(day)),
        )
        row = await cur.fetchone()
        assert row is not None
        if coupon:
            order_ids[coupon] = row[0]
    await conn.execute(  # not an order: never counted
        "INSERT INTO events (source, message_id, type, customer_id, name, properties,"
        " event_time, received_at) VALUES (1, 'v', 'track', 'c5', 'page_viewed',"
        " '{\"revenue\": 999}', %s, %s)",
        (at(11), at(11)),
    )
    for code, customer, template, created, redeemed in OFFERS:
        via = f"order:{order_ids[code]}" if code in order_ids else "api"
        await conn.execute(
            "INSERT INTO offers (code, idempotency_key, customer_id, journey, template,"
            " percent_off, expires_at, created_at, redeemed_at, redeemed_via)"
            " VALUES (%s, %s, %s, 'lifecycle', %s, 15, %s, %s, %s, %s)",
            (code, f"k-{code}", customer, template, at(created + 14), at(created))
            + ((at(redeemed), via) if redeemed is not None else (None, None)),
        )
    for i, (kind, sent, score) in enumerate(SURVEYS):
        await conn.execute(
            "INSERT INTO surveys (token, idempotency_key, customer_id, journey, template, kind,"
            " expires_at, created_at, answered_at, score)"
            " VALUES (%s, %s, 'c1', 'nps', 't', %s, %s, %s, %s, %s)",
            (f"s{i}", f"ks{i}", kind, at(sent + 14), at(sent), at(sent + 1), score)
            if score is not None
            else (f"s{i}", f"ks{i}", kind, at(sent + 14), at(sent), None, None),
        )
    await seed_managers(conn)
    await seed_segments(conn)


async def seed_managers(conn: psycopg.AsyncConnection[Any]) -> None:
    cur = await conn.execute(
        "INSERT INTO managers (pool, name, email, capacity, active) VALUES"
        " ('vip', 'Ann', 'ann@x.example', 4, true), ('vip', 'Bob', 'bob@x.example', 2, false)"
        " RETURNING id"
    )
    ann, _ = [r[0] for r in await cur.fetchall()]
    await conn.execute(
        "INSERT INTO manager_assignments (customer_id, pool, manager_id)"
        " VALUES ('c1', 'vip', %s), ('c2', 'vip', %s)",
        (ann, ann),
    )
    await conn.execute(
        "INSERT INTO tasks (idempotency_key, customer_id, journey, title, pool, manager_id,"
        " due_at, status) VALUES ('t1', 'c1', 'nps', 'call', NULL, %s, %s, 'open'),"
        " ('t2', 'c2', 'nps', 'call', NULL, %s, %s, 'done'),"
        " ('t3', 'c3', 'nps', 'call', 'sales', NULL, %s, 'open')",
        (ann, T0, ann, T0, T0),
    )


async def seed_segments(conn: psycopg.AsyncConnection[Any]) -> None:
    """Two finished refreshes and one still running; the last finished one moved c2 from
    champions to at_risk, brought in c3, changed only c1's tier and left c5 alone."""
    cur = await conn.execute(
        "INSERT INTO segment_refreshes (as_of, definitions, finished_at) VALUES"
        " (%s, 'x', %s), (%s, 'x', %s), (%s, 'x', NULL) RETURNING id",
        (at(30), at(30), at(60), at(60), at(90)),
    )
    _, last, _ = [r[0] for r in await cur.fetchall()]
    for customer, segment, tier in [
        ("c1", "champions", "A"),
        ("c2", "at_risk", "B"),
        ("c3", "at_risk", "C"),
        ("c5", "hibernating", "none"),
    ]:
        await conn.execute(
            "INSERT INTO customer_metrics (customer_id, refresh_id, as_of, orders, revenue,"
            " r, f, m, segment, tier, ltv, ltv_orders, computed_at)"
            " VALUES (%s, %s, %s, 1, 10, 3, 3, 3, %s, %s, 10, 1, %s)",
            (customer, last, at(60), segment, tier, at(60)),
        )
    await conn.execute(
        "INSERT INTO segment_changes (refresh_id, customer_id, previous_segment, segment,"
        " previous_tier, tier, r, f, m) VALUES"
        " (%(id)s, 'c2', 'champions', 'at_risk', 'A', 'B', 2, 3, 3),"
        " (%(id)s, 'c3', NULL, 'at_risk', NULL, 'C', 2, 1, 1),"
        " (%(id)s, 'c1', 'champions', 'champions', 'B', 'A', 5, 5, 5)",
        {"id": last},
    )


@pytest.fixture
async def seeded(db_url: str) -> str:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await seed(conn)
    return db_url


async def connect(url: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(url, autocommit=True)


# --- the figures ---------------------------------------------------------------------------


async def test_segments_tiers_and_migration(seeded):
    async with await connect(seeded) as conn:
        report = await build_report(conn)
        m = await migration_matrix(conn)
    seg = report.segments
    assert [(c.label, c.count) for c in seg.segments] == [
        ("at_risk", 2),
        ("champions", 1),
        ("hibernating", 1),
    ]
    assert [(c.label, c.count) for c in seg.tiers] == [("A", 1), ("B", 1), ("C", 1), ("none", 1)]
    assert seg.computed_at == at(60)
    assert m is not None and m.as_of == at(60) and m.previous_as_of == at(30)
    assert m.cells == {
        ("champions", "at_risk"): 1,
        ("(new)", "at_risk"): 1,
        ("champions", "champions"): 1,  # only the tier changed
        ("hibernating", "hibernating"): 1,  # unchanged
    }
    assert m.moved == 2
    assert m.before == ["(new)", "champions", "hibernating"]


async def test_journey_figures(seeded):
    async with await connect(seeded) as conn:
        report = await build_report(conn)
    onboarding, lifecycle = report.journeys[1], report.journeys[0]
    assert lifecycle.journey == "lifecycle" and onboarding.journey == "onboarding"
    assert {c.label: c.count for c in lifecycle.states_now} == {
        "active": 1,
        "lost": 1,
        "exited": 1,
    }
    assert (lifecycle.entries, lifecycle.exits) == (3, 2)  # exits: c2 lost (final), c3 exited
    edges = {(e.source, e.target): (e.customers, e.entrants) for e in lifecycle.edges}
    assert edges == {
        ("new", "active"): (2, 3),
        ("new", "dormant"): (1, 3),
        ("active", "dormant"): (2, 3),
        ("active", "exited"): (1, 3),
        ("dormant", "active"): (2, 3),
        ("dormant", "lost"): (1, 3),
    }
    times = {t.state: (t.visits, t.median_seconds) for t in lifecycle.time_in_state}
    assert times == {
        "new": (3, 1 * 86400),  # 1d, 0s, 14d
        "active": (3, 60 * 86400),  # 60d, 60d, 5d (c1's second visit has not ended)
        "dormant": (3, 30 * 86400),  # 9d, 30d, 34d
    }
    assert [(c.label, c.count) for c in onboarding.states_now] == [("start", 1)]
    assert (onboarding.entries, onboarding.exits, onboarding.edges) == (1, 0, [])


async def test_journey_figures_since(seeded):
    async with await connect(seeded) as conn:
        report = await build_report(conn, since=at(20))
    lifecycle, onboarding = report.journeys
    # customers per state are "now", whatever the period
    assert [(c.label, c.count) for c in onboarding.states_now] == [("start", 1)]
    assert onboarding.entries == 0
    assert {c.label: c.count for c in lifecycle.states_now} == {
        "active": 1,
        "lost": 1,
        "exited": 1,
    }
    assert (lifecycle.entries, lifecycle.exits) == (0, 2)
    edges = {(e.source, e.target): (e.customers, e.entrants) for e in lifecycle.edges}
    assert edges == {  # only entries on day 20 or later count
        ("dormant", "active"): (1, 2),
        ("dormant", "lost"): (1, 2),
        ("active", "exited"): (1, 2),
    }
    times = {t.state: (t.visits, t.median_seconds) for t in lifecycle.time_in_state}
    assert times == {"dormant": (2, 19.5 * 86400), "active": (1, 5 * 86400)}


async def test_offers(seeded):
    async with await connect(seeded) as conn:
        offers = await offer_figures(conn)
        later = await offer_figures(conn, since=at(20))
    t = offers.total
    assert (t.issued, t.redeemed, t.rate, t.revenue) == (4, 3, 0.75, 130.5)
    assert [(r.template, r.issued, r.redeemed, r.revenue) for r in offers.by_template] == [
        ("reactivation_offer", 3, 2, 130.5),
        ("welcome_gift", 1, 1, 0.0),  # redeemed by an admin: no order, no revenue
    ]
    t = later.total
    assert (t.issued, t.redeemed, t.revenue) == (2, 1, 50.5)


async def test_rates(seeded):
    async with await connect(seeded) as conn:
        reactivated = await reactivation_rate(conn)
        within_40 = await reactivation_rate(conn, days=40)
        reactivated_later = await reactivation_rate(conn, since=at(20))
        repurchase = await repurchase_rate(conn)
        repurchase_later = await repurchase_rate(conn, since=at(20))
        churn = await churn_rate(conn)
        churn_late = await churn_rate(conn, since=at(91))
    assert (reactivated.numerator, reactivated.denominator) == (1, 3)
    assert (within_40.numerator, within_40.denominator) == (2, 3)
    assert (reactivated_later.numerator, reactivated_later.denominator) == (1, 2)
    assert (repurchase.numerator, repurchase.denominator, repurchase.rate) == (1, 4, 0.25)
    assert (repurchase_later.numerator, repurchase_later.denominator) == (0, 2)
    assert (churn.numerator, churn.denominator) == (1, 4)
    assert (churn_late.numerator, churn_late.denominator, churn_late.rate) == (0, 4, 0.0)


async def test_nps_and_csat(seeded):
    async with await connect(seeded) as conn:
        sv = await survey_figures(conn)
    weeks = [
        (str(w.week), w.sent, w.answered, w.promoters, w.passives, w.detractors) for w in sv.weeks
    ]
    assert weeks == [
        ("2026-01-05", 4, 3, 2, 0, 1),
        ("2026-01-12", 2, 1, 0, 1, 0),
        ("2026-01-26", 1, 0, 0, 0, 0),
    ]
    assert [w.nps for w in sv.weeks] == [pytest.approx(100 / 3), 0.0, None]
    assert [w.response_rate for w in sv.weeks] == [0.75, 0.5, 0.0]
    assert (sv.total.sent, sv.total.answered, sv.total.nps) == (7, 4, 25.0)
    assert (sv.csat_answers, sv.csat_average) == (2, 4.5)


async def test_manager_load(seeded):
    async with await connect(seeded) as conn:
        report = await build_report(conn)
    got = [
        (m.name, m.active, m.assigned, m.capacity, m.load, m.open_tasks)
        for m in report.managers.managers
    ]
    assert got == [("Ann", True, 2, 4, 0.5, 1), ("Bob", False, 0, 2, 0.0, 0)]
    assert [(q.label, q.count) for q in report.managers.queues] == [("sales", 1)]


# --- empty, text, HTML ---------------------------------------------------------------------

SECTIONS = ("segments", "migration", "rates", "offers", "journeys", "nps", "managers")


async def test_empty_database_renders_no_data_yet(db_url):
    async with await connect(db_url) as conn:
        report = await build_report(conn)
    assert report.migration is None and report.journeys == []
    assert report.offers.total.rate is None and report.surveys.total.nps is None
    assert (report.churn.rate, report.repurchase.rate, report.reactivation.rate) == (
        None,
        None,
        None,
    )
    page = render_html(report)
    for section in SECTIONS:
        body = page.split(f'<section id="{section}"')[1].split("</section>")[0]
        assert "No data yet." in body, section
    assert "n/a" in page
    text = render_text(report)
    assert text.count("no data yet") == 6  # every section but the rates table


async def test_page_and_text_show_the_figures(seeded):
    async with await connect(seeded) as conn:
        report = await build_report(conn, now=at(100))
    page = render_html(report)
    assert "No data yet." not in page
    # segments, tiers, rates, offers, lifecycle states/edges/times, onboarding states, nps,
    # managers
    assert page.count("<svg") == 10
    assert page.count("<figure>") == page.count("<svg") + 1  # and the migration matrix
    assert 'role="img"' in page and "<figcaption>" in page and 'name="viewport"' in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing fetched from outside
    assert "<script" not in page
    assert "130.50" in page and "75.0%" in page and "25.0" in page
    text = render_text(report)
    assert "generated 2026-04-15 00:00 UTC" in text
    # aligned: every row of the offers table has the same width as its header rule
    offers = text.split("Offers\n======\n")[1].split("\n\n")[0].splitlines()
    assert offers[0].split() == ["offer", "issued", "redeemed", "rate", "revenue"]
    assert offers[2].split() == ["reactivation_offer", "3", "2", "66.7%", "130.50"]
    assert offers[-1].split() == ["all", "4", "3", "75.0%", "130.50"]
    assert len({len(line) for line in offers[1:]}) == 1
    assert "reactivation (30d)  33.3%  1 of 3 who went dormant" in text
    assert "CSAT average 4.50 over 2 answer(s)" in text
    assert re.search(r"\nAnn +vip +2 +4 +50.0% +1\n", text)


async def test_every_value_is_escaped(db_url):
    async with await connect(db_url) as conn:
        await conn.execute(
            "INSERT INTO journey_transitions (key, customer_id, journey, version, from_state,"
            " to_state, cause, at) VALUES ('k', 'c', '<script>x</script>', 1, NULL,"
            " 'a&\"b', 'e', now())"
        )
        page = render_html(await build_report(conn))
    assert "<script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "a&amp;&#34;b" in page


# --- the command ---------------------------------------------------------------------------


def test_cli_report_text_and_html(seeded, monkeypatch, capsys, tmp_path: Path):
    monkeypatch.setenv("DATABASE_URL", seeded)
    get_settings.cache_clear()
    try:
        page = tmp_path / "report.html"
        assert run(["report", "--since", "2026-01-25", "--html", str(page)]) == 0
        out = capsys.readouterr().out
        assert "Journeys report, since 2026-01-25" in out
        assert re.search(r"dormant\s+active\s+1\s+2\s+50.0%", out)
        assert f"wrote {page}" in out
        assert "<svg" in page.read_text()
        assert run(["report", "--since", "25/01/2026"]) == 1
        assert "--since takes a date as YYYY-MM-DD" in capsys.readouterr().err
        assert run(["report", "--html", str(tmp_path / "missing" / "r.html")]) == 1
        assert "cannot write" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()


# --- the page ------------------------------------------------------------------------------


@dataclass
class Served:
    url: str
    admin: str
    write: str


@asynccontextmanager
async def serve_reports(db_url: str) -> AsyncIterator[Served]:
    """The real app (without Temporal or the dispatcher) on a uvicorn port of its own."""
    async with await connect(db_url) as conn:
        _, write = await keys.create(conn, "write", "test source")
        _, admin = await keys.create(conn, "admin", "test admin")
    settings = Settings.model_validate(
        {"DATABASE_URL": db_url, "JOURNEYS_DISPATCHER": False, "JOURNEYS_ENV": "development"}
    )
    app = create_app(settings)
    if not any(getattr(r, "path", None) == "/reports" for r in app.routes):
        from api.report_routes import router

        app.include_router(router)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", admin, write)
    finally:
        server.should_exit = True
        await task


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_reports_page_needs_the_admin_token(seeded):
    async with serve_reports(seeded) as s, httpx.AsyncClient(base_url=s.url) as http:
        r = await http.get("/reports")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
        assert "admin token as password" in r.json()["message"]
        r = await http.get("/reports", headers=basic("me", "wrong"))
        assert r.status_code == 401 and r.json()["error"] == "bad_token"
        r = await http.get("/reports", headers={"Authorization": f"Bearer {s.write}"})
        assert r.status_code == 403
        r = await http.get("/reports", headers=basic("anyone", s.admin))  # a browser login
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert r.headers["cache-control"] == "private, no-store"
        r = await http.get(
            "/reports",
            params={"since": "2026-01-25"},
            headers={"Authorization": f"Bearer {s.admin}"},
        )
        assert r.status_code == 200 and "Since 2026-01-25" in r.text
        assert "<svg" in r.text
        r = await http.get(
            "/reports", params={"since": "soon"}, headers={"Authorization": f"Bearer {s.admin}"}
        )
        assert r.status_code == 422
