"""The lift report over a seeded history with known conversion rates (holdout 10%,
offer_15 15%, offer_25 20%): the counts, the known lift inside the interval, in the store,
over real HTTP, on the page and in the text; unknown experiments, small samples, and a
report without experiments that stays as it was."""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg

from api import create_app
from cli import run
from engine.experiments import HOLDOUT, assign
from reports import build_report, render_html, render_text
from reports.lift import experiment_lift
from settings import Settings, get_settings
from store.reports import experiment_counts
from tests.report_seed import connect
from tests.test_report_page import serve_reports

T = datetime(2026, 10, 1, 9, tzinfo=UTC)
D = timedelta(days=1)
NAME = "winback_2026q4"
WEIGHTS = {"offer_15": 45, "offer_25": 45, HOLDOUT: 10}
TRUE_RATE = {HOLDOUT: 0.10, "offer_15": 0.15, "offer_25": 0.20}
REVENUE = {HOLDOUT: 30.0, "offer_15": 40.0, "offer_25": 50.0}  # per conversion
CUSTOMERS = 6000


def history() -> dict[str, list[tuple[str, bool]]]:
    """Per arm, each customer and whether they converted: arms by the engine's own
    assignment, conversions drawn at the arm's true rate from a fixed seed."""
    rng = random.Random(2026)
    arms: dict[str, list[tuple[str, bool]]] = {a: [] for a in WEIGHTS}
    for i in range(CUSTOMERS):
        customer = f"c{i}"
        arm = assign(NAME, WEIGHTS, customer)
        arms[arm].append((customer, rng.random() < TRUE_RATE[arm]))
    return arms


def _assignment(experiment: str, customer: str, arm: str, at: datetime) -> tuple[Any, ...]:
    return (experiment, customer, arm, "winback_test", 1, 1, at, f"split/{experiment}/{customer}")


def _conversion(
    experiment: str | None, customer: str, arm: str | None, revenue: float, *, enrollment: int = 1
) -> tuple[Any, ...]:
    return (
        customer,
        "winback_test" if experiment else "lifecycle",
        enrollment,
        1,
        experiment,
        arm,
        "order_completed",
        f"e-{customer}-{enrollment}",
        revenue,
        T,
        T + 3 * D,
        f"goal/{customer}/{enrollment}",
    )


async def insert(
    conn: psycopg.AsyncConnection[Any], assignments: list[tuple], conversions: list[tuple]
) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO experiment_assignments (experiment, customer_id, arm, journey, version,"
            " enrollment, assigned_at, idempotency_key) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            assignments,
        )
        await cur.executemany(
            "INSERT INTO conversions (customer_id, journey, enrollment, version, experiment, arm,"
            " goal_event, event_id, revenue, started_at, converted_at, idempotency_key)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            conversions,
        )


async def seed(conn: psycopg.AsyncConnection[Any]) -> dict[str, list[tuple[str, bool]]]:
    arms = history()
    assignments, conversions = [], []
    for arm, customers in arms.items():
        for n, (customer, converted) in enumerate(customers):
            assignments.append(_assignment(NAME, customer, arm, T + (n % 10) * D))
            if converted:
                conversions.append(_conversion(NAME, customer, arm, REVENUE[arm]))
    # one offer_25 converter came back and converted in a second run: one customer, two
    # conversions, both revenues
    twice = next(c for c, converted in arms["offer_25"] if converted)
    conversions.append(_conversion(NAME, twice, "offer_25", 50.0, enrollment=2))
    # a holdout non-converter's goal in a journey outside the experiment does not count
    other = next(c for c, converted in arms[HOLDOUT] if not converted)
    conversions.append(_conversion(None, other, None, 99.0, enrollment=3))
    # a tiny second experiment: too small to tell
    for i in range(30):
        arm = HOLDOUT if i < 10 else "nudge"
        assignments.append(_assignment("nudge_test", f"n{i}", arm, T))
        if i % 4 == 0:
            conversions.append(_conversion("nudge_test", f"n{i}", arm, 5.0))
    await insert(conn, assignments, conversions)
    return arms


async def test_counts_and_the_known_lift_inside_the_interval(db_url):
    async with await connect(db_url) as conn:
        arms = await seed(conn)
        found = await experiment_counts(conn, name=NAME)
        everything = await experiment_counts(conn)
    assert [e.experiment for e in everything] == ["nudge_test", NAME]
    (counts,) = found
    assert counts.journeys == ["winback_test"] and counts.customers == CUSTOMERS
    assert (counts.first_assigned, counts.last_assigned) == (T, T + 9 * D)
    by_arm = {a.arm: a for a in counts.arms}
    for arm, customers in arms.items():
        converted = sum(c for _, c in customers)
        extra = arm == "offer_25"  # the customer who converted twice
        got = by_arm[arm]
        assert (got.customers, got.converters) == (len(customers), converted)
        assert got.conversions == converted + extra
        assert got.revenue == REVENUE[arm] * (converted + extra)
    lift = experiment_lift(counts)
    assert lift.compared == 2 and lift.holdout is not None
    for a in lift.arms:
        assert a.interval.low <= TRUE_RATE[a.arm] <= a.interval.high, a.arm
        assert a.warning is None
        if a.lift is not None:
            true_lift = TRUE_RATE[a.arm] - TRUE_RATE[HOLDOUT]
            assert a.lift.interval.low <= true_lift <= a.lift.interval.high, a.arm
            assert a.lift.likely_real, a.verdict  # 5 and 10 points on ~600 holdout customers
            assert a.verdict.endswith(": likely a real effect")
    assert by_arm["offer_25"].revenue / by_arm["offer_25"].customers == next(
        a.revenue_per_customer for a in lift.arms if a.arm == "offer_25"
    )


async def test_the_period_counts_customers_assigned_in_it(db_url):
    async with await connect(db_url) as conn:
        await seed(conn)
        (late,) = await experiment_counts(conn, name=NAME, since=T + 5 * D)
        assert await experiment_counts(conn, name="nobody") == []
    assert late.first_assigned == T + 5 * D
    assert 0.4 * CUSTOMERS < late.customers < 0.6 * CUSTOMERS  # days 5..9 of 0..9


async def test_page_and_text_show_each_experiment(db_url):
    async with await connect(db_url) as conn:
        await seed(conn)
        report = await build_report(conn, now=T + 30 * D)
    assert [e.experiment for e in report.experiments] == ["nudge_test", NAME]
    page = render_html(report)
    assert '<a href="#experiments">Experiments</a>' in page
    body = page.split('<section id="experiments"')[1].split("</section>")[0]
    assert f"<h3>{NAME}</h3>" in body and "<h3>nudge_test</h3>" in body
    assert "offer_25 converts" in body and ": likely a real effect</li>" in body
    assert '<p class="warning" role="note">too small a sample to tell: nudge has' in body
    assert '<th scope="col">p (Holm)</th>' in body  # two arms against one holdout
    # a forest plot per experiment: each compared arm's lift and interval around zero
    assert body.count('<svg class="chart intervals" data-points="2"') == 1
    assert body.count('<svg class="chart intervals" data-points="1"') == 1
    assert "<title>offer_25: +" in body
    holdout_row = re.search(r"<tr><td>holdout</td>(.*?)</tr>", body)
    assert holdout_row and "<td></td>" in holdout_row.group(1)  # no lift against itself

    text = render_text(report)
    section = text.split(f"Experiment {NAME}\n")[1].split("\n\n\n")[0]
    assert f"{CUSTOMERS} customer(s) assigned from 2026-10-01 09:00 UTC" in section
    assert re.search(r"\nholdout +\d+ +\d+ +\d+\.\d% +\d+\.\d% to \d+\.\d%", section)
    assert re.search(r"\noffer_25 +\d+ +\d+ +\d+\.\d% .* \+\d+\.\d +\d+\.\d to \d+\.\d", section)
    assert section.count(": likely a real effect") == 2
    assert "warning" not in section
    nudge = text.split("Experiment nudge_test\n")[1].split("\n\n\n")[0]
    assert "too small a sample to tell yet" in nudge
    assert (
        "\nwarning: too small a sample to tell: nudge has 20 customer(s);"
        " holdout has 10 customer(s) and 3 who converted (at least 100 customers," in nudge
    )


async def test_the_api_lists_and_reports_experiments(db_url):
    async with await connect(db_url) as conn:
        arms = await seed(conn)
    async with serve_reports(db_url) as s, httpx.AsyncClient(base_url=s.url) as http:
        admin = {"Authorization": f"Bearer {s.admin}"}
        listed = await http.get("/v1/experiments", headers=admin)
        one = await http.get(f"/v1/experiments/{NAME}", headers=admin)
        unknown = await http.get("/v1/experiments/no_such_test", headers=admin)
        bad = await http.get("/v1/experiments/Not-A-Name", headers=admin)
        anonymous = await http.get(f"/v1/experiments/{NAME}")
        writer = await http.get("/v1/experiments", headers={"Authorization": f"Bearer {s.write}"})
    assert listed.status_code == 200
    assert [e["experiment"] for e in listed.json()["experiments"]] == ["nudge_test", NAME]
    winback = listed.json()["experiments"][1]
    assert winback["arms"] == {arm: len(c) for arm, c in sorted(arms.items())}
    assert winback["customers"] == CUSTOMERS and winback["journeys"] == ["winback_test"]

    assert one.status_code == 200
    body = one.json()
    assert (body["experiment"], body["holdout"], body["compared"]) == (NAME, HOLDOUT, 2)
    assert body["methods"]["lift_interval"] == "newcomb"
    got = {a["arm"]: a for a in body["arms"]}
    assert list(got) == [HOLDOUT, "offer_15", "offer_25"]
    assert got[HOLDOUT]["vs_holdout"] is None
    for arm, customers in arms.items():
        a = got[arm]
        assert a["customers"] == len(customers)
        assert a["converted"] == sum(c for _, c in customers)
        low, high = a["conversion_rate_interval"]
        assert low <= TRUE_RATE[arm] <= high
    offer = got["offer_25"]["vs_holdout"]
    low, high = offer["lift_interval"]
    assert low <= 0.10 <= high and offer["likely_real"] is True
    assert offer["p_value"] < 0.001 and offer["p_value_adjusted"] >= offer["p_value"]
    assert got["offer_25"]["verdict"].endswith("likely a real effect")

    assert unknown.status_code == 404
    assert unknown.json() == {
        "error": "unknown_experiment",
        "message": "no experiment 'no_such_test' has assigned a customer"
        " (GET /v1/experiments lists them)",
    }
    assert bad.status_code == 422
    assert (anonymous.status_code, writer.status_code) == (401, 403)
    # the contract, from the app as served (serve_reports adds a second /reports router
    # when it misses the first, which /openapi.json would warn about)
    openapi = create_app(
        Settings.model_validate({"DATABASE_URL": db_url, "JOURNEYS_DISPATCHER": False})
    ).openapi()
    operation = openapi["paths"]["/v1/experiments/{name}"]["get"]
    assert operation["security"] == [{"adminToken": []}]
    assert {"401", "403", "422"} <= set(operation["responses"])


async def test_small_experiment_over_http_carries_the_warning(db_url):
    async with await connect(db_url) as conn:
        await seed(conn)
    async with serve_reports(db_url) as s, httpx.AsyncClient(base_url=s.url) as http:
        r = await http.get(
            "/v1/experiments/nudge_test", headers={"Authorization": f"Bearer {s.admin}"}
        )
    nudge = next(a for a in r.json()["arms"] if a["arm"] == "nudge")
    assert nudge["customers"] == 20 and nudge["converted"] == 5
    assert nudge["warning"].startswith("too small a sample to tell: nudge has 20 customer(s);")
    assert nudge["verdict"].endswith("too small a sample to tell yet")


async def test_without_experiments_the_report_stays_as_it_was(db_url):
    async with await connect(db_url) as conn:
        report = await build_report(conn)
    assert report.experiments == []
    text = render_text(report)
    assert "Experiment" not in text
    page = render_html(report)
    assert 'id="experiments"' not in page and "#experiments" not in page


def test_nothing_loads_statsmodels_until_an_experiment_is_reported():
    """statsmodels takes seconds to import (numpy, scipy, pandas): the CLI, the API and a
    report without experiments never load it."""
    code = (
        "import sys, cli, api.app, reports, reports.lift\n"
        "from reports.lift import experiment_lifts\n"
        "experiment_lifts([])\n"
        "print(any(m.split('.')[0] in ('statsmodels', 'scipy') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_journeys_report_prints_the_experiments(db_url, monkeypatch, capsys, tmp_path):
    async with await connect(db_url) as conn:
        await seed(conn)
    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        page = tmp_path / "report.html"
        # run() drives its own event loop: off this test's loop, as a command line would
        assert await asyncio.to_thread(run, ["report", "--html", str(page)]) == 0
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out
    assert f"Experiment {NAME}\n" in out and "Experiment nudge_test\n" in out
    assert re.search(r"\noffer_25 converts \d+\.\d points better than the holdout", out)
    assert '<section id="experiments"' in page.read_text()
