"""``make bench``: run the benchmarks and print their tables.

    python -m bench          the quick ones, then ingestion end to end (its own stack, ~15 min)
    python -m bench quick    the quick ones only (CEL, the interpreter, the forecast at 1M,
                             one message's PostgreSQL round trips, the worker's CPU per
                             replayed customer history)
    python -m bench all      everything, adding the segment refresh at 1M / 10M (~4 min),
                             the chaos run (~3-5 min) and 1/2/4 dispatchers (~6 min)

Sizes and other options: run one directly, e.g.
``python -m bench.ingest_bench --customers 2000 --events 20000``."""

from __future__ import annotations

import sys

from bench import cel_bench, engine_bench, forecast_bench, message_bench, replay_bench

mode = sys.argv[1] if len(sys.argv) > 1 else "default"
if mode not in ("default", "quick", "all"):
    raise SystemExit(f"unknown benchmark set {mode!r}: use quick, all or nothing\n\n{__doc__}")
benches = [
    ("CEL implementations", cel_bench),
    ("interpreter", engine_bench),
    ("forecast", forecast_bench),
    ("one message through the messaging policy", message_bench),
    ("the worker's CPU per customer history", replay_bench),
]
if mode != "quick":
    from bench import ingest_bench

    benches.append(("ingestion end to end", ingest_bench))
if mode == "all":
    from bench import chaos, dispatch_bench, segments_bench

    benches.append(("segment refresh", segments_bench))
    benches.append(("chaos: kills and restarts under load", chaos))
    benches.append(("delivery scale-out: dispatchers and workers", dispatch_bench))
for name, bench in benches:
    print(f"\n== {name} ==", flush=True)
    sys.argv = [name]
    bench.main()
