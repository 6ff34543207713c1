"""Message templates: the bounded sandbox (escapes, huge output, slow loops, missing values
are refused with a sentence and nothing is rendered), the parts per channel, the load-time
variable checks (golden messages) and ``journeys render`` against a real database.

Golden cases: ``tests/golden/templates/<case>.yaml`` is a journey, ``<case>/`` its templates
and ``<case>.txt`` the exact validation text; ``UPDATE_GOLDEN=1`` rewrites the .txt files
(read every rewritten file before committing it)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from cli import run as cli_run
from cli.render import sample_context
from engine import JourneyValidationError, load_rules
from engine.templates import GLOBALS, scan
from messaging import Renderer, TemplateError
from messaging._sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "templates"
CASES = sorted(p.stem for p in GOLDEN.glob("*.yaml"))
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def context(**traits: Any) -> dict[str, Any]:
    ctx = sample_context("42", traits, None, "lifecycle", "https://shop.example")
    ctx["ctx"] = {"orders": 2}
    return ctx


def template(tmp_path: Path, body: str, *, name: str = "t") -> Renderer:
    """A renderer over one template ``name`` whose text block is ``body`` (or the whole
    file, when ``body`` has blocks of its own)."""
    if "{% block" not in body:
        body = f"{{% block subject %}}Hi{{% endblock %}}{{% block text %}}{body}{{% endblock %}}"
    (tmp_path / f"{name}.j2").write_text(body)
    return Renderer(tmp_path)


def refused(tmp_path: Path, body: str, channel: str = "email", **kw: Any) -> str:
    renderer = template(tmp_path, body)
    if kw:
        renderer = Renderer(tmp_path, **kw)
    started = time.monotonic()
    with pytest.raises(TemplateError) as exc:
        renderer.render("t", channel, context(first_name="Ada"))
    assert time.monotonic() - started < 1.5, "a refused template must fail fast"
    return str(exc.value)


# --- the sandbox --------------------------------------------------------------------------

ESCAPES = {
    "{{ ''.__class__ }}": "'__class__' of 'str' object is unsafe",
    "{{ cycler.__init__.__globals__ }}": "'__init__' of 'type' object is unsafe",
    "{{ ().__class__.__base__.__subclasses__() }}": "'__class__' of 'tuple' object is unsafe",
    "{{ customer|attr('__class__') }}": "'__class__' of 'dict' object is unsafe",
    "{{ customer.traits.update({'x': 1}) }}": "'update' of 'dict' object is unsafe",
    "{{ lipsum(10**6) }}": "'lipsum' is undefined",
}


@pytest.mark.parametrize("body", ESCAPES)
def test_sandbox_escapes_are_refused_with_the_line(tmp_path: Path, body: str):
    message = refused(tmp_path, "\n" + body)
    assert message.startswith(f"template {tmp_path / 't.j2'}:2: ")
    assert ESCAPES[body] in message


BOMBS = {
    "{{ 'x' * 10**9 }}": "repeating a value 1,000,000,000 times",
    "{{ [1, 2] * 10**8 }}": "repeating a value",
    "{{ 10 ** (10 ** 5) }}": "grows past 10,000 bits",
    "{{ range(10**9)|list }}": "range() of 1,000,000,000 numbers is too long",
    "{{ 'x'|center(10**9) }}": "a width of 1,000,000,000 is too large",
    "{{ 'x'.rjust(999999999) }}": "a width of 999,999,999 is too large",
    "{{ '%999999999d' % 1 }}": "a format width or precision of 999999999",
    "{{ '{:>999999999}'.format(1) }}": "a format width or precision of 999999999",
    "{{ '{0:{1}}'.format(1, 999999999) }}": "a format width may not come from an argument",
    "{{ '%*d' % (999999999, 1) }}": "a format width may not come from an argument",
    "{{ range(10000)|map('center', 100000)|join }}": "a sequence in the template grows past",
    "{{ 'ab'|replace('', 'x' * 900000) }}": "this makes about",
    "{{ range(10000)|join('x' * 1000) }}": "this makes about",
    "{% set s = 'xxxxxxxxxx' %}" + "{% set s = s ~ s %}" * 40: "grows past 1,000,000",
    "{% set ns = namespace(s='xx') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}": "grows past 1,000,000",
    "{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f('x') }}": "grows past 1,000,000",
    "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}": (
        "loops run more than 100,000 times"
    ),
    "{% set s %}{% for i in range(10000) %}{{ 'y' * 10000 }}{% endfor %}{% endset %}": (
        "writes more than 2,000,000 characters"
    ),
    "{% for i in range(10000) %}{{ 'y' * 100 }}{% endfor %}": (
        "the text part is longer than 262,144 characters"
    ),
}


@pytest.mark.parametrize("body", BOMBS)
def test_huge_values_and_endless_loops_are_refused_quickly(tmp_path: Path, body: str):
    assert BOMBS[body] in refused(tmp_path, body)


def test_a_slow_template_stops_at_its_deadline(tmp_path: Path):
    slow = "{% for i in range(10000) %}{{ range(10000)|sum }}{% endfor %}"
    message = refused(tmp_path, slow, max_seconds=0.05)
    assert "rendering took longer than 0.05 s" in message


def test_missing_values_name_the_variable_and_line(tmp_path: Path):
    message = refused(tmp_path, "Hello\n{{ missing_var }}")
    assert message.startswith(f"template {tmp_path / 't.j2'}:2: 'missing_var' is undefined; ")
    message = refused(tmp_path, "{{ customer.traits.frist_name }}")
    assert ":1: there is no 'frist_name' (did you mean 'first_name'?)" in message
    assert "|default('')" in message


def test_a_missing_value_is_false_in_a_truth_test(tmp_path: Path):
    body = "{% if customer.traits.nope %}yes{% else %}no{% endif %} {{ manager.name }}"
    assert template(tmp_path, body).render("t", "email", context()).text == "no Sam Sample"


def test_html_is_escaped_and_the_other_parts_are_not(tmp_path: Path):
    body = (
        "{% block subject %}Hi {{ customer.traits.name }}{% endblock %}"
        "{% block text %}Hi {{ customer.traits.name }}{% endblock %}"
        "{% block html %}<p>Hi {{ customer.traits.name }}</p>{% endblock %}"
        "{% block sms %}Hi {{ customer.traits.name }}{% endblock %}"
    )
    renderer = template(tmp_path, body)
    mail = renderer.render("t", "email", context(name="<script>x()</script>"))
    assert mail.html == "<p>Hi &lt;script&gt;x()&lt;/script&gt;</p>"
    assert mail.text == mail.subject == "Hi <script>x()</script>"
    assert renderer.render("t", "sms", context(name="<b>")).sms == "Hi <b>"


def test_webhook_json(tmp_path: Path):
    good = '{% block webhook %}{"name": {{ customer.traits.name|tojson }}, "n": 1}{% endblock %}'
    got = template(tmp_path, good).render("t", "webhook", context(name='A "quoted" <name>'))
    assert got.webhook == {"name": 'A "quoted" <name>', "n": 1}
    bad = '{% block webhook %}{"name": {{ customer.traits.first_name }}}{% endblock %}'
    assert "the webhook block is not valid JSON" in refused(tmp_path, bad, "webhook")
    assert "must make a JSON object" in refused(
        tmp_path, "{% block webhook %}[1]{% endblock %}", "webhook"
    )
    text_only = template(tmp_path, "{% block text %}hi {{ state }}{% endblock %}")
    assert text_only.render("t", "webhook", context()).webhook == {"text": "hi preview"}


def test_parts_per_channel(tmp_path: Path):
    renderer = template(tmp_path, "{% block text %}  text {{ customer.id }}\n{% endblock %}")
    assert renderer.render("t", "sms", context()).sms == "text 42"
    assert "needs a {% block subject %}" in refused(tmp_path, "{% block text %}x{% endblock %}")
    assert "needs an sms or a text block" in refused(
        tmp_path, "{% block subject %}x{% endblock %}", "sms"
    )
    assert "the sms part is longer than 1,600" in refused(
        tmp_path,
        "{% block sms %}{% for i in range(161) %}0123456789{% endfor %}{% endblock %}",
        "sms",
    )
    with pytest.raises(TemplateError, match="no template 'nope': create"):
        renderer.render("nope", "email", context())
    with pytest.raises(TemplateError, match="is not a template name"):
        renderer.render("../secrets", "email", context())


def test_top_level_definitions_reach_every_block(tmp_path: Path):
    body = (
        "{% set who = customer.traits.name|default('there') %}"
        "{% macro money(x) %}{{ '%.2f'|format(x) }} EUR{% endmacro %}"
        "{% block subject %}Hi {{ who }}{% endblock %}"
        "{% block text %}{{ who }}: {{ money(offer.percent_off) }} "
        "{{ offer.expires_at.strftime('%Y') }}{% endblock %}"
    )
    got = template(tmp_path, body).render("t", "email", context())
    assert (got.subject, got.text) == ("Hi there", f"there: 15.00 EUR {datetime.now(UTC).year}")


def test_a_changed_file_is_compiled_again(tmp_path: Path):
    renderer = template(tmp_path, "one")
    assert renderer.render("t", "email", context()).text == "one"
    path = tmp_path / "t.j2"
    path.write_text(path.read_text().replace("one", "two"))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert renderer.render("t", "email", context()).text == "two"


def test_every_shipped_template_renders_for_email():
    renderer = Renderer(ROOT / "templates")
    for info in scan(ROOT / "templates").values():
        if info.missing_for("email") is None:
            assert renderer.render(info.name, "email", context()).subject


def test_the_sandbox_keeps_the_globals_the_checks_know():
    assert set(Sandbox(autoescape=False).globals) == set(GLOBALS)


# --- load-time checks ---------------------------------------------------------------------


@pytest.fixture
def _at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # so files are shown as tests/golden/templates/...


def validation_text(case: str) -> str:
    with pytest.raises(JourneyValidationError) as exc:
        load_rules(rules_dir=GOLDEN, templates_dir=GOLDEN / case, paths=[GOLDEN / f"{case}.yaml"])
    return str(exc.value)


def test_there_are_golden_cases():
    assert len(CASES) >= 5
    assert sorted(p.stem for p in GOLDEN.glob("*.txt")) == CASES


@pytest.mark.usefixtures("_at_repo_root")
@pytest.mark.parametrize("case", CASES)
def test_golden(case: str):
    golden = GOLDEN / f"{case}.txt"
    actual = validation_text(case)
    if UPDATE:
        golden.write_text(actual + "\n")
    assert actual == golden.read_text().rstrip("\n")


@pytest.mark.usefixtures("_at_repo_root")
def test_action_specific_problems_point_at_the_journey_action():
    for case, pointed in [("offer_in_send", "promo}"), ("undeclared_ctx", "thanks,")]:
        (problem,) = JourneyValidationError_of(case)
        assert problem.file == f"tests/golden/templates/{case}.yaml"
        line = (GOLDEN / f"{case}.yaml").read_text().splitlines()[problem.line - 1]
        assert line[problem.col - 1 :].startswith(pointed)


def JourneyValidationError_of(case: str) -> list[Any]:
    with pytest.raises(JourneyValidationError) as exc:
        load_rules(rules_dir=GOLDEN, templates_dir=GOLDEN / case, paths=[GOLDEN / f"{case}.yaml"])
    return exc.value.problems


def test_template_local_names_are_not_flagged(tmp_path: Path):
    (tmp_path / "t.j2").write_text(
        "{% set n = namespace(total=0) %}{% macro line(item) %}{{ item.title }}{% endmacro %}"
        "{% block subject %}{{ offer.code }}{% endblock %}"
        "{% block text %}{% for item in ctx.lines %}{{ line(item) }}{{ loop.index }}"
        "{% set n.total = n.total + 1 %}{% endfor %}{{ range(3)|join }}"
        "{{ ctx.get('items', []) }}{% endblock %}"
    )
    info = scan(tmp_path)["t"]
    assert info.problems == []
    assert [str(u) for u in info.uses] == ["ctx", "ctx.lines", "offer", "offer.code"]
    assert info.context_problems("offer", ["lines"]) == []
    assert info.context_problems("send", ["lines"])[0].startswith(
        "template 't' uses {{ offer }} (" + str(tmp_path / "t.j2") + ":1), which only offer"
    )


def test_the_shipped_journeys_and_templates_are_valid(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(ROOT)
    assert {j.journey for j in load_rules("rules", "templates")} >= {"lifecycle", "nps"}
    assert all(not info.problems for info in scan(ROOT / "templates").values())


# --- journeys render ----------------------------------------------------------------------


@pytest.fixture
def live_settings(db_url: str, monkeypatch: pytest.MonkeyPatch):
    from settings import get_settings

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")  # nothing listens: no journey state
    monkeypatch.setenv("JOURNEYS_PUBLIC_URL", "https://shop.example")
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


def test_render_previews_a_real_customer(live_settings: str, capsys: pytest.CaptureFixture[str]):
    with psycopg.connect(live_settings, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO customers (customer_id, traits) VALUES (%s, %s)",
            ("c-1", Jsonb({"first_name": "Ada <3", "email": "ada@example.com"})),
        )
    code = cli_run(["render", "welcome", "--customer", "c-1", "--journey", "lifecycle"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "--- subject ---\nWelcome aboard, Ada <3!" in out
    assert "<p>Hello Ada &lt;3,</p>" in out
    assert "no journey state from Temporal" in err and "are samples" in err

    assert cli_run(["render", "reactivation_offer", "--customer", "c-1", "--channel", "sms"]) == 0
    assert "15% off with code SAMPLE-" in capsys.readouterr().out


def test_render_refuses_an_unknown_customer_or_a_broken_template(
    live_settings: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    assert cli_run(["render", "welcome", "--customer", "nobody"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("journeys render: no customer 'nobody' in the database;")
    with psycopg.connect(live_settings, autocommit=True) as conn:
        conn.execute("INSERT INTO customers (customer_id) VALUES ('c-2')")
    (tmp_path / "t.j2").write_text("{% block sms %}{{ customer.traits.first_name }}{% endblock %}")
    args = ["render", "t", "--customer", "c-2", "--channel", "sms", "--templates", str(tmp_path)]
    assert cli_run(args) == 1
    assert "t.j2:1: there is no 'first_name' (there is: nothing)" in capsys.readouterr().err


def test_offers_and_surveys_reach_people_not_webhooks(tmp_path):
    from engine import JourneyValidationError, load_rules

    (tmp_path / "o.yaml").write_text(
        "journey: o\nenroll: {on: [x]}\nstart: a\nstates:\n  a:\n    enter:\n"
        "      - offer: {template: t, percent_off: 5, channel: webhook}\n"
        "    on: {y: b}\n  b: {final: true}\n"
    )
    with pytest.raises(JourneyValidationError, match="channel"):
        load_rules(tmp_path, None)
