"""Evaluating a journey's CEL for one run: the environment an expression sees, conditions
(``when:``, ``exit_when``, ``enroll.when``) and ``set:`` assignments.

Pure functions for the stepper (``engine._stepper``): a failure is not raised but returned
as the sentence the stepper records in ``CustomerState.problems``, and the rule does not
match (docs/journeys.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from . import expr
from ._outcome import MAX_CONTEXT_BYTES
from .model import Customer, Event, Run


def environment(
    customer: Customer,
    run: Run,
    event: Event | None,
    now: datetime,
    *,
    experiments: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """What an expression of ``run`` may read: ``event``, ``ctx`` (with ``ctx.arm``, the
    run's arm or ""), ``customer``, ``state``, ``now`` (after a timer, ``event`` is empty and
    its time is ``now``) and ``experiment`` (``experiments``: each known experiment's arm
    of the customer, "" before their split)."""
    return {
        "event": {
            "name": event.name if event else "",
            "id": event.id if event else "",
            "timestamp": event.timestamp if event else now,
            "properties": event.properties if event else {},
        },
        "ctx": {**run.context, "arm": run.arm or ""},
        "customer": {
            "id": customer.id,
            "traits": customer.traits,
            "tier": customer.tier or "",
            "segment": customer.segment or "",
            "rfm": customer.rfm,
            "ltv": customer.ltv,
            "first_order": customer.first_order,
            "p_alive": customer.p_alive,
            "churn_risk": customer.churn_risk,
            "predicted_clv": customer.predicted_clv,
            "tags": customer.tags,
        },
        "state": run.state,
        "now": now,
        "experiment": dict(experiments or {}),
    }


def condition(source: str, env: dict[str, Any]) -> bool | str:
    """Whether ``source`` holds in ``env``, or the problem when it cannot say."""
    try:
        result = expr.evaluate(source, env)
    except expr.ExpressionError as exc:
        return str(exc)
    if not isinstance(result, bool):
        return f"'{source}' gave {result!r}, not true or false"
    return result


def assign(
    context: dict[str, Any],
    declared: dict[str, Any],
    assignments: dict[str, str],
    env: dict[str, Any],
) -> dict[str, Any] | str:
    """The run's ``context`` after ``set:`` ``assignments`` (each computed in ``env``, the
    context as it was before the rule), checked against the ``declared`` context: its
    types, a finite number, the size limit. A string: the problem, and the rule must not
    apply."""
    values: dict[str, Any] = {}
    for name, source in assignments.items():
        try:
            value = expr.evaluate(source, env)
        except expr.ExpressionError as exc:
            return f"set {name}: {exc}"
        if isinstance(value, float) and not math.isfinite(value):
            return (
                f"set {name}: '{source}' gave {value}, which is not a "
                "number a context can hold; the rule was skipped"
            )
        kind = declared.get(name)
        if not expr.fits(kind, value):
            return (
                f"set {name}: '{source}' gave {type(value).__name__}, but "
                f"ctx.{name} holds {type(kind).__name__}"
            )
        if isinstance(kind, float) and isinstance(value, int):
            value = float(value)
        values[name] = value
    merged = {**context, **values}
    try:
        size = len(json.dumps(merged, default=str))
    except (TypeError, ValueError):
        return "set: a value cannot be stored in the context"
    if size > MAX_CONTEXT_BYTES:
        return (
            f"set: the context would grow to {size} bytes, over the "
            f"{MAX_CONTEXT_BYTES} limit; the rule was skipped"
        )
    return merged
