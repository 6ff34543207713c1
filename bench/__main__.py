"""``make bench``: run every benchmark and print their tables.

The quick ones always run; ``python -m bench all`` adds the end-to-end ingestion benchmark
(its own stack, ~10 min) and the segment refresh at 1M customers / 10M orders (~4 min)."""

from __future__ import annotations

import sys

from bench import cel_bench, engine_bench

benches = [("CEL implementations", cel_bench), ("interpreter", engine_bench)]
if sys.argv[1:] == ["all"]:
    from bench import ingest_bench, segments_bench

    benches += [("ingestion end to end", ingest_bench), ("segment refresh", segments_bench)]
for name, bench in benches:
    print(f"\n== {name} ==", flush=True)
    sys.argv = [name]
    bench.main()
