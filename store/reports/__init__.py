"""The report's queries: every figure is set-based SQL over what the engine records
(definitions, one line each: docs/reports.md), returned as the typed rows of
``figures``. ``since`` bounds the time-based figures. ``reports`` draws them.

    segments     customers per segment and tier, the last refresh's migration matrix
    journeys     per journey: states now, entries, exits, edges, median time in state
    rates        reactivation, repurchase, churn
    actions      offers, surveys, managers, messages, dead letters
    staff        response time on tasks, overdue tasks, detractor call-backs
    experiments  customers and conversions per experiment and arm
    forecast     calibration of a past forecast by decile, predicted CLV by tier and segment
    snapshot     one consistent read for a whole report
"""

from __future__ import annotations

from .actions import dead_letter_count, manager_load, message_figures, offer_figures, survey_figures
from .experiments import experiment_counts
from .forecast import forecast_figures
from .journeys import journey_figures
from .rates import churn_rate, reactivation_rate, repurchase_rate
from .segments import migration_matrix, segments_now
from .snapshot import consistent
from .staff import staff_figures

__all__ = [
    "churn_rate",
    "consistent",
    "dead_letter_count",
    "experiment_counts",
    "forecast_figures",
    "journey_figures",
    "manager_load",
    "message_figures",
    "migration_matrix",
    "offer_figures",
    "reactivation_rate",
    "repurchase_rate",
    "segments_now",
    "staff_figures",
    "survey_figures",
]
