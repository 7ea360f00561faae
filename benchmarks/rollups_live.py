"""What one live minute costs PostgreSQL's rollups, early and late in the UTC day.

A collector of N symbols stores one 1-minute bar per symbol each minute; the writer is then
idle and refreshes the rollups (5m/15m/1h/1d) of what it wrote before it answers a flush.
This stores ``--minutes`` minutes of N synthetic symbols (untimed), then times three live
minutes (N bars saved, then ``flush()``: stored and rolled up) at two times of the day:
after ``--early`` minutes and after ``--minutes``. The baseline is the early minute, same
run: a refresh that re-read whole days would cost ``late / early`` ~ minutes / early; one
that resamples the touched hour and builds the day from its hours stays near 1x.

    python benchmarks/rollups_live.py [--symbols 200] [--early 60] [--minutes 1380]

Each run uses a fresh PostgreSQL schema (dropped afterwards); the database is
``LEAN_DATA_BENCH_DATABASE_URL`` (else ``LEAN_DATA_TEST_DATABASE_URL``, else the local
test database). Prices are synthetic (the cost does not depend on them).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

from _common import DataMissing
from fig_10_postgres import database_url, fresh_schema, require_postgres

from lean_data.models import NS_PER_DAY, NS_PER_MINUTE, TradeBar
from lean_data.storage.postgres import PostgresStorage

DAY0 = 1_700_000_000 * 10**9 // NS_PER_DAY * NS_PER_DAY  # 2023-11-14 00:00 UTC


def _bars(symbols: list[str], minute: int) -> list[TradeBar]:
    ts = DAY0 + minute * NS_PER_MINUTE
    return [TradeBar(s, ts, 1.0, 1.1, 0.9, 1.05, 10.0, ts_recv=ts + 1) for s in symbols]


async def _store(store: PostgresStorage, bars: list[TradeBar]) -> None:
    for bar in bars:
        await store.save_market_data(bar, feed="live")


async def _live(store: PostgresStorage, symbols: list[str], first: int) -> float:
    """Median seconds of three live minutes from ``first`` (stored and rolled up)."""
    samples = []
    for minute in range(first, first + 3):
        started = time.perf_counter()
        await _store(store, _bars(symbols, minute))
        await store.flush()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def run(symbols: int, early: int, minutes: int) -> tuple[float, float]:
    url = database_url()
    await require_postgres(url)
    names = [f"S{i:05d}" for i in range(symbols)]
    async with fresh_schema(url) as schema:
        store = PostgresStorage(url, schema=schema, batch_rows=5_000)
        await store.open()
        try:
            for minute in range(early):
                await _store(store, _bars(names, minute))
            await store.flush()
            at_early = await _live(store, names, early)
            for minute in range(early + 3, minutes):
                await _store(store, _bars(names, minute))
            await store.flush()
            at_late = await _live(store, names, minutes)
        finally:
            await store.close()
    return at_early, at_late


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--early", type=int, default=60, help="minutes stored before")
    parser.add_argument("--minutes", type=int, default=1_380, help="minutes stored before")
    args = parser.parse_args(argv)
    try:
        early, late = asyncio.run(run(args.symbols, args.early, args.minutes))
    except DataMissing as exc:
        print(f"rollups_live: skipped: {exc}")
        return 1
    print(
        f"one live minute of {args.symbols} symbols, stored and rolled up: "
        f"{early * 1000:,.0f} ms after {args.early} minutes of the day, "
        f"{late * 1000:,.0f} ms after {args.minutes} (late/early {late / early:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
