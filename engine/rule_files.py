"""Everything in ``rules/`` parsed at once: the journeys, the messaging policy, the
segment definitions and the identity rules. A process (the worker, ``make run``) loads
them once at start and passes each part down to what needs it, so no rules file is parsed
twice in one process."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .identity_rules import IdentityRules, load_identity_rules
from .loader import load_rules
from .model import Journey
from .policy import Policy, load_policy
from .segments import Segments, load_segments

__all__ = ["RuleFiles", "load_rule_files"]


@dataclass(frozen=True)
class RuleFiles:
    """The validated contents of a rules directory."""

    journeys: list[Journey]
    policy: Policy
    segments: Segments
    identity: IdentityRules = field(default_factory=IdentityRules)


def load_rule_files(rules_dir: Path | str, templates_dir: Path | str | None) -> RuleFiles:
    """The journeys (checked against ``templates_dir``), ``policy.yaml``,
    ``segments.yaml`` and ``identity.yaml`` of ``rules_dir``; raises
    :class:`JourneyValidationError` with the journeys' problems first, then the policy's,
    then the segments', then the identity rules'."""
    journeys = load_rules(rules_dir, templates_dir)
    return RuleFiles(
        journeys, load_policy(rules_dir), load_segments(rules_dir), load_identity_rules(rules_dir)
    )
