"""What the Temporal UI shows for a customer: a markdown summary of every journey."""

from __future__ import annotations

import json
from datetime import datetime

from ._errors import UnknownJourneyError
from .catalog import Catalog
from .experiments import HOLDOUT
from .model import CustomerState, Run


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def experiment_lines(run: Run) -> list[str]:
    """The run's arm, what its holdout kept from the customer, and its conversion."""
    out = []
    if run.arm and run.split_at:
        line = f"- experiment {run.experiment}: arm `{run.arm}` since {_when(run.split_at)}"
        if run.arm == HOLDOUT:
            line += f"; holdout: no messages from this journey ({run.withheld} withheld)"
        out.append(line)
    if run.converted_at:
        out.append(f"- converted {_when(run.converted_at)} (goal reached)")
    return out


def markdown(state: CustomerState, catalog: Catalog | None = None) -> str:
    """The customer's tags; per journey: state, since when, context, next timer, last
    transitions and why."""
    out = [f"### Customer `{state.customer.id}`"]
    if state.customer.tags:
        out.append(f"Tags: {', '.join(state.customer.tags)}")
    if not state.runs:
        out.append("Not in any journey yet.")
    for name, run in sorted(state.runs.items()):
        status = "" if run.status == "active" else f" ({run.status})"
        out.append(
            f"\n**{name}** v{run.version}: `{run.state}`{status} since {_when(run.entered_at)}"
        )
        if run.context:
            out.append(f"- context: `{json.dumps(run.context, sort_keys=True)}`")
        out += experiment_lines(run)
        if run.timers:
            nxt = min(run.timers, key=lambda t: t.due_at)
            target = ""
            if catalog is not None:
                try:
                    spec = catalog.get(name, run.version).states[run.state]
                    gotos = [r.goto for r in spec.timer_rules(nxt) or [] if r.goto]
                    target = f" → `{gotos[0]}`" if gotos else ""
                except (UnknownJourneyError, KeyError, IndexError):  # not loaded, or changed
                    target = ""
            what = f"at: {nxt.at}" if nxt.at else f"after {nxt.label}"
            out.append(f"- next: {what}{target} at {_when(nxt.due_at)}")
        for t in reversed(run.history[-3:]):
            out.append(f"- {_when(t.at)}: {t.from_state or '∅'} → {t.to_state} ({t.cause})")
    if state.problems:
        p = state.problems[-1]
        out.append(f"\n⚠ last problem ({_when(p.at)}, {p.journey}/{p.state}): {p.message}")
    return "\n".join(out)
