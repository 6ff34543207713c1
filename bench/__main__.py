"""``make bench``: run every benchmark and print their tables."""

from __future__ import annotations

import sys

from bench import cel_bench, engine_bench

for name, bench in (("CEL implementations", cel_bench), ("interpreter", engine_bench)):
    print(f"\n== {name} ==")
    sys.argv = [name]
    bench.main()
