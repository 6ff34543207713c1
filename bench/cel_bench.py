"""Why ``common-expression-language``: the same journey conditions, compiled once,
evaluated many times, in each maintained Python CEL implementation.

    python -m bench.cel_bench [--n 20000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

EXPRESSIONS = [
    "ctx.spent + double(event.properties.revenue) >= 5000.0",
    '!has(event.properties.country) || event.properties.country != "test"',
    'event.name == "unsubscribed"',
    "ctx.orders + 1",
]
ENV: dict[str, Any] = {
    "event": {
        "name": "order_completed",
        "id": "e1",
        "timestamp": datetime(2026, 1, 1, tzinfo=UTC),
        "properties": {"revenue": 120.5, "country": "DE"},
    },
    "ctx": {"orders": 3, "spent": 800.0},
    "customer": {"id": "42", "traits": {"plan": "pro"}},
    "state": "active",
    "now": datetime(2026, 1, 2, tzinfo=UTC),
}


def rust_cel() -> tuple[str, Callable[[str], Callable[[], Any]]]:
    import cel

    def prepare(src: str) -> Callable[[], Any]:
        program = cel.compile(src)
        return lambda: program.execute(ENV)

    return "common-expression-language (Rust)", prepare


def python_cel() -> tuple[str, Callable[[str], Callable[[], Any]]]:
    import celpy
    from celpy import celtypes
    from celpy.adapter import json_to_cel

    env = celpy.Environment()
    activation = {
        "event": json_to_cel({**ENV["event"], "timestamp": "2026-01-01T00:00:00Z"}),
        "ctx": json_to_cel(ENV["ctx"]),
        "customer": json_to_cel(ENV["customer"]),
        "state": celtypes.StringType(ENV["state"]),
        "now": celtypes.TimestampType("2026-01-02T00:00:00Z"),
    }

    def prepare(src: str) -> Callable[[], Any]:
        program = env.program(env.compile(src))
        return lambda: program.evaluate(activation)

    return "cel-python (pure Python)", prepare


def measure(prepare: Callable[[str], Callable[[], Any]], n: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    runs = [prepare(src) for src in EXPRESSIONS]
    compile_us = (time.perf_counter() - t0) / len(EXPRESSIONS) * 1e6
    t0 = time.perf_counter()
    for _ in range(n):
        for run in runs:
            run()
    eval_us = (time.perf_counter() - t0) / (n * len(runs)) * 1e6
    return compile_us, eval_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000, help="evaluations per expression")
    args = parser.parse_args()
    rows = []
    for factory in (rust_cel, python_cel):
        try:
            name, prepare = factory()
        except ImportError as exc:
            rows.append((factory.__name__, "not installed", str(exc.name)))
            continue
        n = args.n if factory is rust_cel else max(args.n // 20, 200)
        compile_us, eval_us = measure(prepare, n)
        rows.append((name, f"{compile_us:,.0f}", f"{eval_us:,.1f}"))
    print(f"{'implementation':<36} {'compile µs':>11} {'evaluate µs':>12}")
    for name, c, e in rows:
        print(f"{name:<36} {c:>11} {e:>12}")


if __name__ == "__main__":
    main()
