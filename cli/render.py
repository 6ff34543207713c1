"""``journeys render TEMPLATE --customer ID``: preview a message with a real customer's data.

The profile comes from PostgreSQL, the customer's state and ctx from their workflow when
Temporal answers (else the journey's initial context:), and what only a real action makes
(``engine.template_context.sampled_names``: an offer, a survey, the manager, the opt-out
link) is a sample. Notes on
what was sampled go to stderr, the message to stdout."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from channels import registry as channels
from engine.template_context import sampled_names

from .commands import Command, UserError

TEMPORAL_WAIT = 3.0  # seconds; a preview should not hang on a stack that is not running


def _render_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("template", help="template name, e.g. welcome for templates/welcome.j2")
    p.add_argument("--customer", required=True, metavar="ID", help="customer id (userId)")
    p.add_argument("--channel", choices=channels.names(), default="email")
    p.add_argument(
        "--journey",
        metavar="J",
        help="journey whose state and ctx to show (default: the customer's first journey)",
    )
    p.add_argument(
        "--templates",
        type=Path,
        metavar="DIR",
        help="directory of message templates (default: JOURNEYS_TEMPLATES or templates/)",
    )


def render(args: argparse.Namespace) -> int:
    """Print the parts of ``args.template`` rendered for ``args.customer``."""
    from messaging import Renderer, TemplateError
    from settings import get_settings

    settings = get_settings()
    customer = asyncio.run(_profile(settings.require_database_url(), args.customer))
    notes: list[str] = []
    run, tier_segment = asyncio.run(_journey_state(settings, args.customer, args.journey, notes))
    context = sample_context(args.customer, customer, run, args.journey, settings.public_url)
    context["customer"].update(tier_segment)
    if run is None:
        context["ctx"] = _initial_context(settings.rules_dir, context["journey"]["name"], notes)
    notes.append(f"{', '.join(sampled_names())} are samples; event is None")
    renderer = Renderer(args.templates or settings.templates_dir)
    try:
        rendered = renderer.render(args.template, args.channel, context)
    except TemplateError as exc:
        raise UserError(str(exc)) from None
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for part, value in rendered.parts.items():
        if isinstance(value, dict):  # a JSON part (webhook)
            import json

            value = json.dumps(value, indent=2, default=str)
        print(f"--- {part} ---\n{value.rstrip()}")
    return 0


def sample_context(
    customer_id: str,
    traits: dict[str, Any],
    run: Any | None,
    journey: str | None,
    public_url: str,
) -> dict[str, Any]:
    """The context the send activities would build for the customer's ``run`` (or, without
    one, for ``journey`` before any state), with samples for action results."""
    from engine.template_context import sample_context as sample

    return sample(
        customer_id=customer_id,
        traits=traits,
        journey=run.journey if run is not None else journey or "preview",
        version=run.version if run is not None else 1,
        state=run.state if run is not None else "preview",
        ctx=dict(run.context) if run is not None else {},
        public_url=public_url,
        now=datetime.now(UTC),
    )


async def _profile(url: str, customer_id: str) -> dict[str, Any]:
    import psycopg

    from store import customers

    try:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            found = await customers.profile(conn, customer_id)
    except psycopg.OperationalError as exc:
        raise UserError(f"cannot reach PostgreSQL ({str(exc).strip()})") from None
    except psycopg.errors.UndefinedTable:
        raise UserError(
            "the database has no Journeys schema yet: start the worker once to create it"
        ) from None
    if found is None:
        raise UserError(
            f"no customer '{customer_id}' in the database; a customer exists once an event "
            "or identify call for them was accepted"
        )
    return found.traits or {}


async def _journey_state(
    settings: Any, customer_id: str, journey: str | None, notes: list[str]
) -> tuple[Any | None, dict[str, Any]]:
    """The customer's run of ``journey`` (or their first) and tier/segment, from their
    workflow; (None, {}) with a note when Temporal or the run is not there."""
    from orchestration import customers
    from orchestration.temporal import connect

    try:
        client = await asyncio.wait_for(connect(settings), TEMPORAL_WAIT)
        state = await asyncio.wait_for(customers.state(client, customer_id), TEMPORAL_WAIT)
    except Exception as exc:  # any failure only makes the preview less complete
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        notes.append(f"no journey state from Temporal ({reason[:120]}); ctx is the initial one")
        return None, {}
    extra = {"tier": state.customer.tier, "segment": state.customer.segment}
    runs = state.runs
    if journey is None and runs:
        journey = sorted(runs)[0]
    if journey is None:
        notes.append(f"customer {customer_id} is in no journey yet; ctx is empty")
        return None, extra
    if journey not in runs:
        notes.append(
            f"customer {customer_id} is not in journey '{journey}'; ctx is the initial one"
        )
        return None, extra
    return runs[journey], extra


def _initial_context(rules: Path, journey: str, notes: list[str]) -> dict[str, Any]:
    from engine import JourneyError, load_rules

    try:
        found = {j.journey: j for j in load_rules(rules, None)}
    except JourneyError:
        notes.append(f"{rules}/ does not validate; ctx is empty")
        return {}
    if journey not in found:
        return {}
    return dict(found[journey].context)


RENDER: dict[str, Command] = {
    "render": (
        "preview a message template with a customer's real data (and sample offer, survey)",
        _render_args,
        render,
    ),
}
