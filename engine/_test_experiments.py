"""Journey-test expectations of experiments and goals (``arm:``, ``conversions:``), for
``engine.journey_tests.CHECKS``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from .durations import format_duration
from .model import ActionCommand, Run
from .test_files import ConversionExpect

Failure = tuple[tuple[int | str, ...], str]  # as engine.journey_tests.Failure


class Observed(Protocol):
    """What these checks read of ``engine.journey_tests.Observed``."""

    @property
    def run(self) -> Run | None: ...

    @property
    def conversions(self) -> list[ActionCommand]: ...


def arm(expected: str, seen: Observed) -> list[Failure]:
    """The run's arm ("" when it is in no experiment)."""
    if seen.run is None:
        return [((), f"expected arm '{expected}', got not enrolled")]
    actual = seen.run.arm or ""
    if actual == expected:
        return []
    return [((), f"expected arm '{expected}', got " + (f"'{actual}'" if actual else "none"))]


def _shown(args: dict[str, Any]) -> str:
    started = datetime.fromisoformat(args["started_at"])
    after = datetime.fromisoformat(args["converted_at"]) - started
    arm = f" arm {args['arm']}" if args.get("arm") else ""
    return (
        f"{args['goal_event']}{arm} revenue {args['revenue']:g} after "
        f"{format_duration(int(after.total_seconds())) if after.total_seconds() else '0s'}"
    )


def conversions(expected: int | list[ConversionExpect], seen: Observed) -> list[Failure]:
    """The journey's conversions since the test began: how many, or each in order."""
    actual = [c.args for c in seen.conversions]
    done = "; ".join(_shown(a) for a in actual) or "none"
    n = expected if isinstance(expected, int) else len(expected)
    if n != len(actual):
        return [((), f"expected {n} conversion{'s' * (n != 1)}, got {len(actual)}: {done}")]
    out: list[Failure] = []
    for i, (want, got) in enumerate(
        zip(expected if isinstance(expected, list) else [], actual, strict=False)
    ):
        after = datetime.fromisoformat(got["converted_at"]) - datetime.fromisoformat(
            got["started_at"]
        )
        wrong = [
            key
            for key, ok in (
                ("arm", want.arm is None or want.arm == (got.get("arm") or "")),
                ("revenue", want.revenue is None or abs(want.revenue - got["revenue"]) < 0.005),
                ("event", want.event is None or want.event == got["goal_event"]),
                # to the minute: on the real workflow (journeys test --temporal) the split is
                # as late as the workflow took to get there
                ("after", want.after is None or abs(want.after - after.total_seconds()) < 60),
            )
            if not ok
        ]
        if wrong:
            out.append(((i, wrong[0]), f"expected {_want(want)}, got {_shown(got)}"))
    return out


def _want(want: ConversionExpect) -> str:
    parts = [
        f"{k} {v}"
        for k, v in (
            ("event", want.event),
            ("arm", want.arm),
            ("revenue", None if want.revenue is None else f"{want.revenue:g}"),
            ("after", None if want.after is None else format_duration(want.after)),
        )
        if v is not None
    ]
    return "a conversion with " + ", ".join(parts)
