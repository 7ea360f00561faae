"""A writer process for the multi-writer test: one PostgresStorage writing a slice of real bars.

Run as ``python -m tests.pg_writer_child URL SCHEMA START STOP REVISION``: opens the store
(the schema may be new: every child opens it at once), prints ``ready``, waits for a line
on stdin, then saves the FTX BTC-PERP minute bars ``[START, STOP)`` at revision REVISION,
their close raised by REVISION (so the stored value tells which writer won), newest first
when REVISION is odd (so writers meet on shared keys from both ends), records the slice
as covered, flushes and prints ``done <rows written> <write failures>``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path

from lean_data.loaders import load_file
from lean_data.models import NS_PER_MINUTE, TradeBar
from lean_data.storage.postgres import PostgresStorage

CSV = Path(__file__).parent / "fixtures" / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"
TS_RECV = 1_700_000_000 * 10**9


def revised(bars: list[TradeBar], revision: int) -> list[TradeBar]:
    """The bars as writer ``revision`` stores them."""
    return [
        dataclasses.replace(b, revision=revision, close=b.close + revision, ts_recv=TS_RECV)
        for b in bars
    ]


async def main(url: str, schema: str, start: int, stop: int, revision: int) -> None:
    loaded = [b for b in load_file(CSV, symbol="BTC-PERP") if isinstance(b, TradeBar)]
    bars = revised(loaded[start:stop], revision)
    if revision % 2:
        bars.reverse()
    async with PostgresStorage(url, schema=schema, batch_rows=500, batch_ms=50) as store:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        for bar in bars:
            await store.save_market_data(bar, feed="ftx")
        first, last = loaded[start].ts_event, loaded[stop - 1].ts_event + NS_PER_MINUTE
        await store.record_coverage("ftx", "BTC-PERP", "1m", first, last)
        await store.flush()
        stats = store.statistics()
        print(f"done {stats['rows_written']} {stats['write_failures']}", flush=True)


if __name__ == "__main__":
    url, schema, *numbers = sys.argv[1:]
    start, stop, revision = map(int, numbers)
    asyncio.run(main(url, schema, start, stop, revision))
