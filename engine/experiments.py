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
import re
from collections.abc import Mapping
from typing import Any

HOLDOUT = "holdout"  # the arm that gets no messages from the journey, and the baseline
# An experiment's and an arm's names are kept in every customer's state and in PostgreSQL
# (experiment_assignments, conversions); the report has a row per arm.
MAX_NAME_LENGTH = 64
MAX_ARMS = 20
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
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


def check_arms(arms: Mapping[Any, Any], *, written: bool) -> None:
    """Raise ValueError, saying how to fix it, unless ``arms`` (a split's, as YAML gave it)
    names arms with whole positive weights, two of them at least. ``written``: ops' YAML,
    where the bounds apply too (at most :data:`MAX_ARMS`, names of :data:`MAX_NAME_LENGTH`
    characters); a stored definition loads as it was published."""
    for name, weight in arms.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"arm '{name}' is not a valid name: use lower case letters, digits and _, "
                "starting with a letter"
            )
        if len(name) > MAX_NAME_LENGTH and written:
            raise ValueError(
                f"arm '{name[:20]}...' has {len(name)} characters; an arm's name has at "
                f"most {MAX_NAME_LENGTH}"
            )
        if isinstance(weight, bool) or not isinstance(weight, int) or weight <= 0:
            raise ValueError(f"arm '{name}': a weight is a whole number above 0, e.g. 45")
    if len(arms) < 2:
        raise ValueError("a split needs at least two arms, e.g. {offer: 90, holdout: 10}")
    if len(arms) > MAX_ARMS and written:
        raise ValueError(
            f"a split has at most {MAX_ARMS} arms, this one has {len(arms)}; test fewer "
            "variants at once (each arm needs its own customers to show a lift)"
        )
