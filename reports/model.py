"""A report, as plain data: every figure (typed rows of ``store.reports``, re-exported
here for the pages) and the ``Report`` that gathers them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from store.reports.figures import (
    ArmCounts,
    Calibration,
    CallBacks,
    ClvRow,
    Count,
    Decile,
    Edge,
    ExperimentCounts,
    ForecastFigures,
    JourneyFigures,
    ManagerLoad,
    Managers,
    Messages,
    Migration,
    NpsWeek,
    OfferRow,
    Offers,
    Rate,
    Segments,
    Staff,
    StaffRow,
    StateTime,
    Surveys,
    ratio,
)

from .lift import ArmLift, ExperimentLift, Interval, Lift

__all__ = [
    "ArmCounts",
    "ArmLift",
    "Calibration",
    "CallBacks",
    "ClvRow",
    "Count",
    "Decile",
    "Edge",
    "ExperimentCounts",
    "ExperimentLift",
    "ForecastFigures",
    "Interval",
    "JourneyFigures",
    "Lift",
    "ManagerLoad",
    "Managers",
    "Messages",
    "Migration",
    "NpsWeek",
    "OfferRow",
    "Offers",
    "Rate",
    "Report",
    "Segments",
    "Staff",
    "StaffRow",
    "StateTime",
    "Surveys",
    "ratio",
]


@dataclass(frozen=True)
class Report:
    """Every figure of one report; ``since`` bounds the time-based ones."""

    generated_at: datetime
    since: datetime | None
    reactivation_days: int
    segments: Segments
    migration: Migration | None
    journeys: list[JourneyFigures]
    offers: Offers
    reactivation: Rate
    repurchase: Rate
    churn: Rate
    surveys: Surveys
    managers: Managers
    dead_letters: int = 0  # events whose delivery failed for good, waiting for an admin
    messages: Messages | None = None
    staff: Staff | None = None  # response times, overdue tasks, detractor call-backs
    experiments: list[ExperimentLift] = field(default_factory=list)  # by name
    forecast: ForecastFigures | None = None  # None while no customer has a forecast
