"""What a merge of two customers does to their journeys (pure: no I/O, no clock).

When the absorbed customer A becomes part of the survivor X (``store.identity.merge``),
A's workflow calls :func:`merge_away`: every active run of A ends with the cause
``merged into X`` (timers cancelled, the exit logged like any other), and the runs as they
were before, A's experiment arms, tags and applied event ids go into a :class:`Handover`.
X's workflow calls :func:`absorb` with it: X keeps every run of its own; a run of a
journey X never ran is adopted as it was (same state, context and timers: the person goes
on where they were, and what was already done for them is not done again), with a
``continued from A`` entry in its history; arms X lacks, tags and event ids are joined.

Calling :func:`absorb` twice with the same handover changes nothing the second time.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from ._outcome import DEDUPE_MAX, DEDUPE_WINDOW, MAX_HISTORY, Step, TransitionRecord, copy_state
from .actions import MAX_TAGS
from .catalog import Catalog
from .identity import shown_id
from .model import CustomerState, Run, Transition

__all__ = ["Handover", "absorb", "adopted_cause", "merge_away", "merged_cause", "missing"]


class Handover(BaseModel):
    """What the absorbed customer's workflow hands to the survivor's. The workflow's own
    result (``workflows.io.Handover``) adds the events it received but did not apply."""

    merge_id: int
    absorbed: str
    into: str
    runs: dict[str, Run] = Field(default_factory=dict)  # as they were before the merge
    experiments: dict[str, str] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    seen: dict[str, datetime] = Field(default_factory=dict)


def merged_cause(into: str) -> str:
    """The cause of the absorbed customer's exits, and the reason its deferred messages
    are dropped with."""
    return f"merged into {shown_id(into)}"


def adopted_cause(absorbed: str) -> str:
    """The history entry of a run the survivor took over."""
    return f"continued from {shown_id(absorbed)}"


def merge_away(
    catalog: Catalog, state: CustomerState, into: str, now: datetime, *, merge_id: int = 0
) -> tuple[Step, Handover]:
    """End every active run of ``state``'s customer, merged into ``into``; the step (its
    exits) and what the survivor takes over. ``catalog`` is not needed to end runs: an exit
    runs no rule; it is taken so that all entry points of the interpreter read alike."""
    del catalog
    new = copy_state(state)
    new.steps += 1
    handover = Handover(
        merge_id=merge_id,
        absorbed=state.customer.id,
        into=into,
        runs={name: run.model_copy(deep=True) for name, run in sorted(state.runs.items())},
        experiments=dict(state.experiments),
        tags=list(state.customer.tags),
        seen=dict(state.seen),
    )
    cause = merged_cause(into)
    transitions = []
    for _, run in sorted(new.runs.items()):
        if run.status != "active":
            continue
        run.status, run.timers = "exited", []
        transitions.append(_log(new, run, run.state, "exited", cause, now, "/merged"))
    return Step(state=new, transitions=transitions), handover


def absorb(catalog: Catalog, state: CustomerState, handover: Handover, now: datetime) -> Step:
    """``state`` after taking over what ``handover`` brings (see the module's docstring).
    Adopted runs may be of versions ``catalog`` lacks: :func:`missing` names them, for the
    workflow to load before it applies anything else."""
    del catalog
    new = copy_state(state)
    if handover.absorbed == new.customer.id:
        return Step(state=state, duplicate=True)  # a customer is never merged into itself
    new.steps += 1
    cause = adopted_cause(handover.absorbed)
    transitions = []
    for name, run in sorted(handover.runs.items()):
        if name in new.runs:
            continue  # the survivor's own run (in any status) wins
        adopted = run.model_copy(deep=True)
        new.runs[name] = adopted
        transitions.append(_log(new, adopted, adopted.state, adopted.state, cause, now, "/adopted"))
    for experiment, arm in sorted(handover.experiments.items()):
        new.experiments.setdefault(experiment, arm)
    tags = sorted(set(new.customer.tags) | set(handover.tags))
    if len(tags) > MAX_TAGS:  # the survivor's own first, then the absorbed's in order
        own = set(new.customer.tags)
        tags = sorted(own | set(sorted(set(tags) - own)[: max(MAX_TAGS - len(own), 0)]))
    new.customer = new.customer.model_copy(update={"tags": tags})
    new.seen = _join_seen(new.seen, handover.seen, now)
    if not transitions and (new.experiments, new.customer.tags, new.seen) == (
        state.experiments,
        state.customer.tags,
        state.seen,
    ):
        return Step(state=state, duplicate=True)  # delivered before: nothing new
    return Step(state=new, transitions=transitions)


def missing(catalog: Catalog, state: CustomerState) -> list[str]:
    """``name@version`` of the runs in ``state`` whose definition ``catalog`` lacks."""
    keys = {Catalog.key(r.journey, r.version) for r in state.runs.values()}
    return sorted(k for k in keys if k not in catalog.versions)


def _log(
    state: CustomerState,
    run: Run,
    source: str | None,
    target: str,
    cause: str,
    now: datetime,
    suffix: str,
) -> TransitionRecord:
    run.history.append(Transition(at=now, from_state=source, to_state=target, cause=cause))
    del run.history[:-MAX_HISTORY]
    return TransitionRecord(
        journey=run.journey,
        version=run.version,
        from_state=source,
        to_state=target,
        cause=cause,
        at=now,
        key=f"{state.customer.id}/{run.journey}/{run.enrollment}/{run.visit}{suffix}",
    )


def _join_seen(
    own: dict[str, datetime], other: dict[str, datetime], now: datetime
) -> dict[str, datetime]:
    """Both dedupe windows in one, bounded as the interpreter bounds it: ids older than
    ``DEDUPE_WINDOW`` are forgotten, and the oldest beyond ``DEDUPE_MAX``."""
    joined = dict(other)
    for event_id, at in own.items():
        joined[event_id] = max(at, joined.get(event_id, at))
    horizon = now - DEDUPE_WINDOW
    kept = sorted(((at, k) for k, at in joined.items() if at >= horizon))[-DEDUPE_MAX:]
    return {k: at for at, k in kept}
