"""The libraries weighed against engine.forecast (docs/segments.md): lifetimes and
pymc-marketing fitted on CDNOW and on a simulated population, timed, and compared with
our fit (parameters, P(alive), expected orders). They are not project dependencies: run
this in a scratch venv that has numpy, scipy and the candidates, from the project root::

    python -m venv /tmp/alt && /tmp/alt/bin/pip install lifetimes pymc-marketing
    /tmp/alt/bin/python -m bench.forecast_alternatives [--customers 1000000]

The project's model modules are loaded by path (they need only numpy and scipy), so the
rest of the project's dependencies are not needed there.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from bench._forecast_data import Population, cdnow, simulate

HEADER = (
    "| library | r | alpha (days) | a | b | fit s | score s | max |dP(alive)| vs ours"
    " | max |dE[orders 90d]| |\n|---|---|---|---|---|---|---|---|---|"
)
ENGINE = Path(__file__).resolve().parent.parent / "engine"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_forecast_{name}", ENGINE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def ours(pop: Population) -> dict[str, Any]:
    bgnbd = _load("_bgnbd")
    start = time.perf_counter()
    m = bgnbd.fit(pop.frequency, pop.recency, pop.age)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    alive = bgnbd.p_alive(m, pop.frequency, pop.recency, pop.age)
    orders = bgnbd.expected_purchases(m, 90.0, pop.frequency, pop.recency, pop.age)
    return {
        "params": (m.r, m.alpha, m.a, m.b),
        "fit": fit_s,
        "score": time.perf_counter() - start,
        "alive": alive,
        "orders": orders,
    }


def lifetimes(pop: Population) -> dict[str, Any]:
    from lifetimes import BetaGeoFitter

    start = time.perf_counter()
    m = BetaGeoFitter().fit(pop.frequency, pop.recency, pop.age)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    alive = m.conditional_probability_alive(pop.frequency, pop.recency, pop.age)
    orders = m.conditional_expected_number_of_purchases_up_to_time(
        90.0, pop.frequency, pop.recency, pop.age
    )
    p = m.params_
    return {
        "params": (p["r"], p["alpha"], p["a"], p["b"]),
        "fit": fit_s,
        "score": time.perf_counter() - start,
        "alive": np.asarray(alive),
        "orders": np.asarray(orders),
    }


def pymc_marketing(pop: Population) -> dict[str, Any]:
    import pandas as pd
    from pymc_extras.prior import Prior
    from pymc_marketing.clv import BetaGeoModel

    data = pd.DataFrame(
        {
            "customer_id": np.arange(len(pop.frequency)),
            "frequency": pop.frequency,
            "recency": pop.recency,
            "T": pop.age,
        }
    )
    flat = {k: Prior("HalfFlat") for k in ("r", "alpha", "a", "b")}
    start = time.perf_counter()
    m = BetaGeoModel(data=data, model_config=flat)
    m.fit(fit_method="map")
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    alive = m.expected_probability_alive().values.ravel()
    orders = m.expected_purchases(future_t=90).values.ravel()
    post = m.fit_result
    return {
        "params": tuple(float(post[k].values.ravel()[0]) for k in ("r", "alpha", "a", "b")),
        "fit": fit_s,
        "score": time.perf_counter() - start,
        "alive": alive,
        "orders": orders,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["ours", "lifetimes", "pymc_marketing"], nargs="*")
    args = parser.parse_args()
    runs = {"ours": ours, "lifetimes": lifetimes, "pymc_marketing": pymc_marketing}
    names = args.only or list(runs)
    for label, pop in (("CDNOW", cdnow()), (f"{args.customers:,} simulated", None)):
        pop = pop or simulate(args.customers, seed=1)
        print(f"\n{label}\n{HEADER}")
        base = ours(pop)
        for name in names:
            try:
                got = base if name == "ours" else runs[name](pop)
            except Exception as error:  # a candidate's failure is a figure of the table
                print(f"| {name} | failed: {type(error).__name__}: {str(error)[:80]} |")
                continue
            r, alpha, a, b = got["params"]
            d_alive = float(np.max(np.abs(got["alive"] - base["alive"])))
            d_orders = float(np.max(np.abs(got["orders"] - base["orders"])))
            print(
                f"| {name} | {r:.4f} | {alpha:.3f} | {a:.4f} | {b:.4f} | {got['fit']:.2f}"
                f" | {got['score']:.2f} | {d_alive:.1e} | {d_orders:.1e} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
