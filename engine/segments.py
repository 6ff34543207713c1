"""Customer segments (``rules/segments.yaml``): what counts as an order, RFM scoring, value
tiers and named segments as ordered CEL rules.

    orders: {events: [order_completed], revenue: revenue}
    window: 365d                     # orders in (as_of - window, as_of] are scored
    schedule: "0 3 * * *"            # cron of the refresh's Temporal Schedule
    scoring: {method: cume_dist}     # the default; min_population_for_quantiles, fixed_scores
    forecast: {enabled: true, min_repeat_customers: 50}   # the defaults
    tiers: [{name: A, top: 10%}, {name: B, top: 60%}, {name: C, top: 100%}]
    segments:                        # first match wins; the last must be 'true'
      - {name: champions, when: 'r >= 4 && f >= 4 && m >= 4'}
      - {name: lost, when: 'true'}

Semantics (``store.segments.refresh`` computes them in SQL, :func:`segment_of` in Python):

* ``r f m`` are 1-5 among customers with at least one order in the window, by
  ``scoring.method`` (:mod:`engine._segment_scoring`): ``cume_dist`` (the default) is
  ``ceil(5 * up_to / n)`` (``up_to``: customers at most as good, ties included; the worst
  value 1 unless everyone ties), or the ``fixed_scores`` bounds while ``n`` is below
  ``min_population_for_quantiles``; ``quintiles`` is ``1 + floor(5 * below / n)``,
  ``below`` being how many of the ``n`` scored customers have a strictly worse value
  (recency: more days since the last order is worse). Ties share a score, so equal
  customers are never split by chance. Customers without an order in the window have
  ``r = f = m = 0`` and go through the rules too (the default map calls them ``lost``).
* ``recency_days`` is whole days since the last order up to as_of (also for customers whose
  last order is older than the window); ``first_order_days`` since the first order ever.
  Both are null for a customer without any order: comparisons with them do not match.
* tiers: a scored customer's share is ``better / n`` (``better``: scored customers with
  strictly more window revenue); the first tier whose ``top`` exceeds it is theirs (so the
  best customer is always in the first tier, and ties share the better tier). Customers
  without orders in the window are tier ``none``.
* ``"vip" in tags`` (or ``customer.tags``, as journeys write it) holds when the customer
  has the tag in ``customer_tags`` at the refresh (tags are set by journeys' ``tag``).
* the last segment must be the catch-all ``when: 'true'``; a missing one is an error rather
  than an implicit default, so that every customer's segment is named in the file.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationInfo, field_validator

from . import expr
from ._errors import Problem
from ._segment_scoring import FixedScores as FixedScores
from ._segment_scoring import ForecastSettings as ForecastSettings
from ._segment_scoring import Scoring as Scoring
from ._segment_sql import NUMBERS, Unsupported, compile_case, compile_condition
from ._yaml import Document
from .actions import Spec, _seconds
from .checks import _inner_offset
from .loader import load_mapping_file, twice_named
from .names import normalize_event_name

SEGMENTS_FILE = "segments.yaml"
NO_TIER = "none"
_TRIAL = {
    "r": 3, "f": 3, "m": 3, "recency_days": 10, "orders": 2, "revenue": 100.0,
    "first_order_days": 100, "traits": {}, "tags": [],
    "customer": {"tags": [], "traits": {}},
}  # fmt: skip
_MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()  # noqa: SIM905
_DAYS = "sun mon tue wed thu fri sat".split()  # noqa: SIM905
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(_MONTHS)}),
    ("day of week", 0, 7, {d: i for i, d in enumerate(_DAYS)}),
)
_CRON_PART = re.compile(r"^(\*|(\w+)(?:-(\w+))?)(?:/(\d+))?$")
DEFAULT_SEGMENTS = [
    ("champions", "r >= 4 && f >= 4 && m >= 4"),
    ("loyal", "r >= 3 && f >= 3 && m >= 3"),
    ("new_customers", "r >= 4 && f <= 1"),
    ("promising", "r >= 3 && f <= 1"),
    ("potential_loyalist", "r >= 3"),
    ("cant_lose", "r == 1 && f >= 4 && m >= 4"),
    ("at_risk", "r >= 1 && r <= 2 && f >= 3 && m >= 3"),
    ("need_attention", "r == 2 && f >= 2"),
    ("about_to_sleep", "r == 2"),
    ("hibernating", "r == 1 && f >= 2"),
    ("lost", "true"),
]


class Orders(Spec):
    events: list[str] = Field(default_factory=lambda: ["order_completed"], min_length=1)
    revenue: str = Field(default="revenue", min_length=1)

    @field_validator("events")
    @classmethod
    def _normalise(cls, names: list[str]) -> list[str]:
        return [normalize_event_name(n) for n in names]


class Tier(Spec):
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    top: float  # percent of scored customers, (0, 100]

    @field_validator("top", mode="before")
    @classmethod
    def _percent(cls, value: Any, info: ValidationInfo) -> float:
        from_yaml = bool(info.context and info.context.get("from_yaml"))
        text = str(value).strip()
        if isinstance(value, int | float) and not isinstance(value, bool) and not from_yaml:
            number = float(value)  # a stored definition read back
        elif isinstance(value, str) and text.endswith("%"):
            try:
                number = float(text[:-1])
            except ValueError:
                raise ValueError(f"'{value}' is not a share; write it like 10%") from None
        else:
            raise ValueError(f"'{value}' is not a share; write it like 10% (with the %)")
        if not 0 < number <= 100:
            raise ValueError(f"'{value}' must be more than 0% and at most 100%")
        return number


class SegmentRule(Spec):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    when: str


def _default_tiers() -> list[Tier]:
    return [Tier(name="A", top=10), Tier(name="B", top=60), Tier(name="C", top=100)]


def _default_segments() -> list[SegmentRule]:
    return [SegmentRule(name=n, when=w) for n, w in DEFAULT_SEGMENTS]


class Segments(Spec):
    """The validated definitions; :meth:`case_sql` is the compiled segment rules."""

    orders: Orders = Field(default_factory=Orders)
    window: Annotated[int, Field(gt=0)] = 365 * 86400  # seconds
    schedule: str = "0 3 * * *"
    scoring: Scoring = Field(default_factory=Scoring)
    forecast: ForecastSettings = Field(default_factory=ForecastSettings)
    tiers: list[Tier] = Field(default_factory=_default_tiers, min_length=1)
    segments: list[SegmentRule] = Field(default_factory=_default_segments, min_length=1)

    _dur = field_validator("window", mode="before")(_seconds)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        check_cron(value)
        return value

    @field_validator("tiers")
    @classmethod
    def _consistent(cls, tiers: list[Tier]) -> list[Tier]:
        tops = [t.top for t in tiers]
        if tops != sorted(set(tops)):
            raise ValueError("each 'top' must be larger than the one before")
        if tops[-1] != 100:
            raise ValueError("the last tier must have top: 100% (everyone else)")
        names = [t.name for t in tiers]
        if len(set(names)) < len(names) or NO_TIER in names:
            raise ValueError(f"tier names must be distinct and not '{NO_TIER}'")
        return tiers

    def digest(self) -> str:
        """Stable hash of the definitions (recorded with every refresh)."""
        dump = self.model_dump(mode="json")
        if self.scoring.method == "quintiles":  # files from before cume_dist keep their digest
            dump["scoring"] = {"method": "quintiles"}
        if self.forecast == ForecastSettings():  # files from before forecast: keep theirs
            del dump["forecast"]
        raw = json.dumps(dump, sort_keys=True).encode()
        return hashlib.sha256(raw).hexdigest()[:16]

    def names(self) -> list[str]:
        """Segment names, in rule order."""
        return [s.name for s in self.segments]

    def case_sql(self) -> tuple[str, list[Any]]:
        """The segment rules as one SQL ``CASE`` (text with ``%s``, parameters) over the
        columns ``customer_id r f m recency_days orders revenue first_order_days traits``
        (``customer_id`` for tags, kept in ``customer_tags``)."""
        return compile_case([(s.name, s.when) for s in self.segments])


def check_cron(text: str) -> None:
    """Raise ValueError unless ``text`` is a 5-field cron expression."""
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"'{text}' is not a cron schedule: write 5 fields, minute hour day-of-month "
            'month day-of-week, like "0 3 * * *" (daily at 03:00 UTC)'
        )
    for value, (what, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for part in value.split(","):
            m = _CRON_PART.match(part.lower())
            ends = [m.group(2), m.group(3)] if m else []
            numbers = [names.get(e, int(e) if e.isdigit() else -1) for e in ends if e]
            if not m or any(not low <= n <= high for n in numbers) or m.group(4) == "0":
                raise ValueError(
                    f"'{part}' is not a valid {what} in '{text}': use *, a number "
                    f"{low}-{high}, a range a-b, a list a,b or a step */n"
                )


def segment_of(defs: Segments, values: Mapping[str, Any]) -> str:
    """The segment of one customer, by the real CEL library (the reference the SQL is tested
    against). ``values`` holds the rule variables; an error means the rule does not match."""
    env = {k: values.get(k) for k in (*NUMBERS, "traits", "tags")}
    env["traits"] = env["traits"] or {}
    env["tags"] = list(env["tags"] or [])
    env["customer"] = {"tags": env["tags"], "traits": env["traits"]}
    for key in ("revenue",):
        env[key] = float(env[key] or 0)
    for rule in defs.segments:
        try:
            if expr.program(rule.when).execute(env) is True:
                return rule.name
        except Exception:  # an error is "no match", like NULL in the SQL
            continue
    return defs.segments[-1].name


def load_segments(rules_dir: Path | str = "rules", *, display_root: Path | None = None) -> Segments:
    """``rules_dir/segments.yaml`` validated (the defaults when there is none); raises
    :class:`JourneyValidationError` with every problem, at file:line:col."""
    return load_mapping_file(
        Path(rules_dir) / SEGMENTS_FILE,
        display_root,
        Segments,
        _allowed_keys,
        shape="a mapping of orders, window, schedule, scoring, forecast, tiers and segments",
        check=_check_rules,
    )


def _check_rules(doc: Document, defs: Segments) -> list[Problem]:
    problems = twice_named(doc, "segments", [rule.name for rule in defs.segments])
    for i, rule in enumerate(defs.segments):
        loc = ("segments", i, "when")
        for col, message in check_rule(rule.when):
            problems.append(doc.problem(loc, message, col_offset=_inner_offset(doc, loc, col)))
    if defs.segments[-1].when.strip() != "true":
        problems.append(
            doc.problem(
                ("segments", len(defs.segments) - 1, "when"),
                "the last segment must catch everyone else (when: 'true'); add one at the "
                "end, e.g. {name: lost, when: 'true'}",
            )
        )
    return problems


def check_rule(source: str) -> list[tuple[int, str]]:
    """Problems of one segment rule as ``(column_in_source, message)``: CEL syntax (by the
    real CEL library), the SQL subset, and a trial evaluation for type errors."""
    if not source.strip():
        return [(1, "expected a CEL condition in quotes, e.g. 'r >= 4'")]
    try:
        prog = expr.program(source)
    except ValueError as exc:
        m = expr._SYNTAX_POS.search(str(exc))
        if m:
            return [(int(m.group(2)), f"CEL syntax error: {m.group(3).strip()}")]
        return [(1, f"CEL syntax error: {expr._first_sentence(exc)}")]
    try:
        compile_condition(source)
    except Unsupported as exc:
        return [(exc.col, exc.message)]
    try:
        result = prog.execute(dict(_TRIAL))
    except (KeyError, ZeroDivisionError):
        return []  # depends on traits that only exist at refresh time
    except TypeError as exc:
        if "traits" in prog.variables():
            return []
        hint = " (revenue is a double: write 100.0, not 100)" if "revenue" in source else ""
        return [(1, f"type error: {expr._first_sentence(exc)}{hint}")]
    except Exception as exc:  # the library's other errors are sentences too
        return [(1, expr._first_sentence(exc))]
    if not isinstance(result, bool):
        return [(1, f"a condition must be true or false, this gives {expr._json_kind(result)}")]
    return []


def _allowed_keys(loc: list[int | str]) -> list[str]:
    parent = [s for s in loc[:-1] if isinstance(s, str)]
    models: dict[str, type[Spec]] = {
        "orders": Orders,
        "scoring": Scoring,
        "fixed_scores": FixedScores,
        "forecast": ForecastSettings,
        "tiers": Tier,
        "segments": SegmentRule,
    }
    model = models.get(parent[-1] if parent else "", Segments)
    return [f.alias or n for n, f in model.model_fields.items()]
