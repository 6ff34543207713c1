"""Every report figure against a hand-built history with answers worked out by hand, the
empty database, the text and HTML renderings, the CLI and the admin-only page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli import run
from reports import build_report, render_html, render_text
from settings import get_settings
from store.reports import (
    churn_rate,
    migration_matrix,
    offer_figures,
    reactivation_rate,
    repurchase_rate,
    survey_figures,
)
from tests.report_seed import at, connect, seeded

__all__ = ["seeded"]  # a fixture, used by name

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


async def test_journey_figures_count_a_merged_person_once(seeded):
    """A visitor entered lifecycle, was merged into a known customer who went on in the
    adopted run and became active: one entrant of new, no exit, one customer active more."""
    rows = [
        ("anon/lifecycle/1/1", "anon", None, "new", "enrolled", 1),
        ("anon/lifecycle/1/1/merged", "anon", "new", "exited", "merged into known", 2),
        ("known/lifecycle/1/1/adopted", "known", "new", "new", "continued from anon", 2),
        ("known/lifecycle/1/2", "known", "new", "active", "order", 3),
    ]
    async with await connect(seeded) as conn:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO journey_transitions (key, customer_id, journey, version,"
                " from_state, to_state, cause, at) VALUES (%s, %s, 'lifecycle', 1, %s, %s, %s, %s)",
                [(k, c, f, t, why, at(d)) for k, c, f, t, why, d in rows],
            )
        await conn.commit()
        report = await build_report(conn)
    lifecycle = report.journeys[0]
    assert {c.label: c.count for c in lifecycle.states_now} == {
        "active": 2,
        "lost": 1,
        "exited": 1,
    }
    assert (lifecycle.entries, lifecycle.exits) == (4, 2)
    edges = {(e.source, e.target): (e.customers, e.entrants) for e in lifecycle.edges}
    assert edges[("new", "active")] == (3, 4)
    assert ("new", "exited") not in edges
    times = {t.state: (t.visits, t.median_seconds) for t in lifecycle.time_in_state}
    assert times["new"] == (4, 1 * 86400)  # the adopted visit (1d), not the merged one
