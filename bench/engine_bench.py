"""What the pure interpreter costs per event, next to Temporal's ~9 ms per event.

python -m bench.engine_bench [--customers 2000] [--events 20]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import channels  # noqa: F401  registers the channels the rules are validated against
from engine import Catalog, CustomerState, Event, fire_timers, handle_event, load_rules
from engine.model import Customer

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--events", type=int, default=20, help="events per customer")
    args = parser.parse_args()
    t0 = time.perf_counter()
    catalog = Catalog.of(load_rules(ROOT / "rules", ROOT / "templates"))
    load_ms = (time.perf_counter() - t0) * 1e3
    start = datetime(2026, 1, 1, tzinfo=UTC)
    names = ["signed_up", "order_completed", "page_viewed", "order_delivered", "lead_created"]
    steps = actions = 0
    t0 = time.perf_counter()
    for c in range(args.customers):
        state = CustomerState(customer=Customer(id=str(c)))
        for i in range(args.events):
            now = start + timedelta(days=3 * i, minutes=c % 60)
            state = fire_timers(catalog, state, now).state
            event = Event(
                name=names[(c + i) % len(names)],
                id=f"{c}-{i}",
                timestamp=now,
                properties={"revenue": 100.0 + i},
            )
            step = handle_event(catalog, state, event, now)
            state, steps, actions = step.state, steps + 1, actions + len(step.actions)
    elapsed = time.perf_counter() - t0
    print(f"{'what':<32} {'value':>12}")
    print(f"{'load + validate rules/ (ms)':<32} {load_ms:>12.1f}")
    print(f"{'events applied':<32} {steps:>12,}")
    print(f"{'actions produced':<32} {actions:>12,}")
    print(f"{'µs per event (timers + event)':<32} {elapsed / steps * 1e6:>12.1f}")
    print(f"{'events/s on one core':<32} {steps / elapsed:>12,.0f}")


if __name__ == "__main__":
    main()
