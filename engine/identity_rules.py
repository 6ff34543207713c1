"""Merging on shared verified traits (``rules/identity.yaml``): when two customers carry the
same verified email (or phone), they are one person.

    merge_on:
      - {name: verified_email, trait: email, verified_by: email_verified}
      - {name: verified_phone, trait: phone, verified_by: phone_verified, enabled: false}

A rule merges when an ``identify`` carries ``trait`` with ``verified_by: true`` (a JSON
boolean) and another customer's stored traits carry the same value, also verified: the
newcomer is merged into the customer first seen earliest (``store.identity``, via
``rule:NAME``). Values are compared normalised (:func:`normalized`): ``kind: email`` is
trimmed and lower-cased, ``kind: phone`` keeps a leading ``+`` and the digits. ``kind``
defaults to the trait's name when that is ``email`` or ``phone``.

Safety: any write key can set any trait, so no trait merges anyone unless ops list a rule
here; the shipped file lists none (``merge_on: []``), and a rule with ``enabled: false`` is
validated but never applied. ``merge_known_customers: true`` lets a write key's identify
and alias merge two customers that both have a userId (``store.identity.merge``'s
``refuse_known``); off by default, so a shared computer or a forged call never joins two
people. The merge itself is ingestion's (``ingest.accept``); here are
only the validated rules and the pure normalisation.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from .actions import Spec
from .loader import load_mapping_file, twice_named

IDENTITY_FILE = "identity.yaml"
Kind = Literal["email", "phone"]
TraitName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
# what a stored value may be to take part: a longer "email" or "phone" is no address
MAX_VALUE_LENGTH = 320
_NOT_DIGITS = re.compile(r"[^0-9]")
BLANKS = " \t\n\r"  # what is trimmed: the same set as the SQL (store.identity_rules)


class MergeRule(Spec):
    name: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$",
        max_length=64,
        description="The rule's name ([a-z][a-z0-9_]*); its merges are via rule:NAME.",
    )
    trait: TraitName = Field(description="The trait that names the person: email, phone, ...")
    verified_by: TraitName = Field(
        description="The trait that is true (a JSON boolean) when the value was verified."
    )
    kind: Kind | None = Field(
        None,
        description="How values compare: email (trimmed, lower case) or phone (the digits, "
        "with a leading +); defaults to the trait's name when that is email or phone.",
    )
    enabled: bool = Field(True, description="false: the rule is checked but merges nobody.")

    @model_validator(mode="after")
    def _kind_known(self) -> MergeRule:
        if self.kind is None and self.trait not in ("email", "phone"):
            raise ValueError(
                f"say how '{self.trait}' values compare: add kind: email or kind: phone"
            )
        if self.verified_by == self.trait:
            raise ValueError(
                "verified_by names the trait that says the value was verified, "
                "not the value's own trait"
            )
        return self

    @property
    def compares_as(self) -> Kind:
        """How this rule's values are normalised."""
        return self.kind or ("email" if self.trait == "email" else "phone")


class IdentityRules(Spec):
    merge_known_customers: bool = Field(
        False,
        description="true: a write key's identify or alias may merge two customers that "
        "both have a userId (by default they stay two: a shared computer, a forged call).",
    )
    merge_on: list[MergeRule] = Field(
        default_factory=list,
        max_length=10,
        description="Rules that merge customers sharing a verified value; none by default.",
    )

    def active(self) -> list[MergeRule]:
        """The rules ingestion applies (``enabled``), in the file's order."""
        return [r for r in self.merge_on if r.enabled]


def normalized(kind: Kind, value: Any) -> str | None:
    """``value`` as a rule compares it, or None when it cannot name anyone (not a string,
    empty, too long, an email without ``@``, a phone of fewer than 7 digits)."""
    if not isinstance(value, str) or len(value) > MAX_VALUE_LENGTH:
        return None
    text = value.strip(BLANKS)
    if kind == "email":
        text = text.lower()
        return text if "@" in text[1:-1] else None
    digits = _NOT_DIGITS.sub("", text)
    if len(digits) < 7:
        return None
    return ("+" if text.startswith("+") else "") + digits


def verified_value(rule: MergeRule, traits: dict[str, Any]) -> str | None:
    """The normalised value ``traits`` carries for ``rule``, when it is verified (the
    ``verified_by`` trait is JSON ``true``); else None."""
    if traits.get(rule.verified_by) is not True:
        return None
    return normalized(rule.compares_as, traits.get(rule.trait))


def load_identity_rules(
    rules_dir: Path | str = "rules", *, display_root: Path | None = None
) -> IdentityRules:
    """``rules_dir/identity.yaml`` validated (no rules when there is none); raises
    :class:`JourneyValidationError` with every problem, at file:line:col."""
    return load_mapping_file(
        Path(rules_dir) / IDENTITY_FILE,
        display_root,
        IdentityRules,
        _allowed_keys,
        shape="a mapping with merge_on: [rules]",
        check=lambda doc, rules: twice_named(doc, "merge_on", [r.name for r in rules.merge_on]),
    )


def _allowed_keys(loc: list[int | str]) -> list[str]:
    model: type[Spec] = MergeRule if "merge_on" in loc[:-1] else IdentityRules
    return [f.alias or n for n, f in model.model_fields.items()]
