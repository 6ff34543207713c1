"""The refresh's forecast in CEL: ``customer.p_alive``, ``customer.churn_risk`` and
``customer.predicted_clv`` are names journeys may use, patched in like rfm and ltv, with
defaults (alive, no risk) before any forecast, so older states and histories still load."""

from __future__ import annotations

from datetime import UTC, datetime

from engine import expr, machine
from engine._evaluate import environment
from engine.model import Customer, CustomerState, Run

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def check(source: str) -> list[tuple[int, str]]:
    return expr.check(source, context={}, state="s", event_name="e", want="bool")


def test_the_forecast_names_validate():
    assert check("customer.churn_risk > 0.5 && customer.p_alive < 0.5") == []
    assert check("customer.predicted_clv >= 100.0") == []
    assert check("customer.churn_risk > 0.5 || customer.predicted_clv > 10.0") == []


def test_a_customer_before_any_forecast_is_alive_without_risk():
    old = CustomerState.model_validate({"customer": {"id": "c1", "ltv": 5.0}})
    assert (old.customer.p_alive, old.customer.churn_risk, old.customer.predicted_clv) == (
        1.0,
        0.0,
        0.0,
    )


def test_the_patch_carries_the_forecast_and_none_keeps_it():
    customer = machine.patch_customer(
        Customer(id="c1"), p_alive=0.3, churn_risk=0.7, predicted_clv=420.0
    )
    run = Run.model_validate(
        {"journey": "j", "version": 1, "state": "s", "entered_at": NOW, "enrolled_at": NOW}
    )
    env = environment(customer, run, None, NOW)
    assert expr.evaluate("customer.churn_risk > 0.5 && customer.p_alive < 0.5", env) is True
    assert expr.evaluate("customer.predicted_clv", env) == 420.0
    kept = machine.patch_customer(customer, segment="loyal")
    assert (kept.p_alive, kept.churn_risk, kept.predicted_clv) == (0.3, 0.7, 420.0)
