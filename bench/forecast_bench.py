"""The forecast at scale: BG/NBD and Gamma-Gamma fitted on a simulated population and
every customer scored, one table of seconds and peak memory per step.

    python -m bench.forecast_bench [--customers 1000000] [--seed 1]

The population is simulated from CDNOW's published parameters (bench._forecast_data), ages
spread over two years; the table also shows how far the fit lands from them.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from typing import TypeVar

from bench._forecast_data import TRUE_BGNBD, TRUE_GAMMA_GAMMA, simulate
from engine.forecast import Summary, fit, score

T = TypeVar("T")


def measured(step: Callable[[], T]) -> tuple[T, float, float]:
    """What step returns, its seconds and the peak of memory it allocated, in MiB."""
    tracemalloc.start()
    start = time.perf_counter()
    result = step()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak / 2**20


def main() -> None:
    """Simulate, fit, score; print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    pop = simulate(args.customers, seed=args.seed)
    summary = Summary.of(pop.frequency, pop.recency, pop.age, pop.monetary)
    models, fit_s, fit_mb = measured(lambda: fit(summary))
    forecast, score_s, score_mb = measured(lambda: score(models, summary))
    repeat = int((summary.frequency > 0).sum())
    print(f"{len(summary):,} customers, {repeat:,} with repeat purchases")
    print("| step | seconds | peak MiB |\n|---|---|---|")
    print(f"| fit BG/NBD + Gamma-Gamma | {fit_s:.2f} | {fit_mb:.0f} |")
    print(f"| score (p_alive, orders 90d, value, CLV 365d) | {score_s:.2f} | {score_mb:.0f} |")
    print(f"| total | {fit_s + score_s:.2f} | {max(fit_mb, score_mb):.0f} |")
    b, g = models.bgnbd, models.gamma_gamma
    fitted = {"r": b.r, "alpha": b.alpha, "a": b.a, "b": b.b}
    if g is not None:
        fitted |= {"p": g.p, "q": g.q, "v": g.v}
    print("\n| parameter | true | fitted |\n|---|---|---|")
    for name, true in (TRUE_BGNBD | TRUE_GAMMA_GAMMA).items():
        print(f"| {name} | {true:.4g} | {fitted.get(name, float('nan')):.4g} |")
    clv = forecast.predicted_clv_365d.mean()
    print(f"\nmean p_alive {forecast.p_alive.mean():.3f}, mean CLV 365d ${clv:.2f}")


if __name__ == "__main__":
    main()
