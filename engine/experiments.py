"""Experiment assignment: which arm of a ``split`` a customer is in.

Sticky and deterministic: the arm is a function of the experiment's name, the customer id
and the weights, never of ``random`` or the clock, so a replayed workflow, a continued-as-
new run, an upgraded journey and the offline simulator all give the same customer the same
arm, and ``journeys demo`` can know it in advance. Arms are laid out on [0, 1) in name
order (not in the file's order), so reordering ``arms:`` in YAML moves nobody; changing a
weight moves only the customers whose point falls in the part that changed hands.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

HOLDOUT = "holdout"  # the arm that gets no messages from the journey, and the baseline
_SCALE = 16**15  # 60 bits of the digest: far finer than any weight


def point(experiment: str, customer_id: str) -> float:
    """Where the customer falls on [0, 1) for ``experiment``: uniform over customers."""
    digest = hashlib.sha256(f"{experiment}\x00{customer_id}".encode()).hexdigest()
    return int(digest[:15], 16) / _SCALE


def assign(experiment: str, arms: Mapping[str, int], customer_id: str) -> str:
    """The arm of ``customer_id`` in ``experiment``, with ``arms`` mapping names to positive
    integer weights (at least one)."""
    if not arms:
        raise ValueError("an experiment needs at least one arm")
    if any(w <= 0 for w in arms.values()):
        raise ValueError("arm weights must be positive")
    names = sorted(arms)
    total = sum(arms.values())
    mark = point(experiment, customer_id) * total
    upto = 0
    for name in names:
        upto += arms[name]
        if mark < upto:
            return name
    return names[-1]  # unreachable: mark < total
