"""A journey as a Mermaid state diagram: states, events, timers and actions."""

from __future__ import annotations

from .actions import unwrap
from .model import Journey, Rule


def _label(rule: Rule) -> str:
    parts = []
    if rule.when:
        parts.append(f"[{rule.when}]")
    done = [f"set {', '.join(rule.set)}"] if rule.set else []
    done += [unwrap(c).kind for c in rule.do]
    if done:
        parts.append("/ " + ", ".join(done))
    return " ".join(parts)


def _esc(text: str) -> str:
    return (
        text.replace('"', "'")
        .replace(":", "#colon;")
        .replace(";", "#59;")
        .replace("#colon#59;", "#colon;")
    )


def mermaid(journey: Journey) -> str:
    """``stateDiagram-v2`` text for ``journey``."""
    lines = ["stateDiagram-v2", f"    %% journey {journey.journey} v{journey.version or 1}"]
    enrol = ", ".join(journey.enroll.on)
    lines.append(f"    [*] --> {journey.start}: {_esc('enroll on ' + enrol)}")
    for name, state in journey.states.items():
        if state.enter:
            acts = ", ".join(
                unwrap(c).summary("customer").split(" to customer")[0].split(" for customer")[0]
                for c in state.enter
            )
            lines.append(f"    {name}: {_esc(name + ' / enter: ' + acts)}")
        for event, rules in state.on.items():
            for rule in rules:
                if rule.goto:
                    label = _esc(" ".join(p for p in (event, _label(rule)) if p))
                    lines.append(f"    {name} --> {rule.goto}: {label}")
        for timer in state.after:
            for rule in timer.rules:
                if rule.goto:
                    label = _esc(" ".join(p for p in (f"after {timer.label}", _label(rule)) if p))
                    lines.append(f"    {name} --> {rule.goto}: {label}")
        for at_name, entry in state.at.items():
            if entry.goto:
                label = _esc(" ".join(p for p in (f"at {at_name}", _label(entry)) if p))
                lines.append(f"    {name} --> {entry.goto}: {label}")
        stays = [
            f"{event} {_label(r)}"
            for event, rules in state.on.items()
            for r in rules
            if not r.goto and (r.do or r.set)
        ]
        stays += [
            f"after {t.label} {_label(r)}".rstrip()
            for t in state.after
            for r in t.rules
            if not r.goto
        ]
        stays += [f"at {n} {_label(e)}".rstrip() for n, e in state.at.items() if not e.goto]
        if stays:  # rules that act without moving the customer
            lines.append(f"    note right of {name}")
            lines += [f"        {_esc(text)}" for text in stays]
            lines.append("    end note")
        if state.final:
            lines.append(f"    {name} --> [*]")
    if journey.exit_when:
        lines.append(f"    note right of {journey.start}: {_esc('exit when ' + journey.exit_when)}")
    return "\n".join(lines) + "\n"
