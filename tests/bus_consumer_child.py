"""A consumer process for the bus tests: engine with SQLite storage (or none) + BusFeed.

Run as ``python -m tests.bus_consumer_child PREFIX DURABLE DB OUT LAST_NS [SLOW_S]``:
consumes BTC-PERP bars under PREFIX with the durable consumer DURABLE, stores them in the
SQLite file DB (``-``: no storage), and appends ``<open ns> <revision> <backfilled>`` to
OUT for every bar its callback sees (flushed per line; late bars are not taken:
``late=False``). Once the bar opening at LAST_NS was seen it stops cleanly and prints one
JSON line: the feed's status and the engine's outcome counters. With SLOW_S its callback
takes that long per bar (a slow strategy: the engine's inbox fills while it works).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import TextIO

from lean_data import Config, DataEngine
from lean_data.bus import BusFeed
from lean_data.models import MarketData, TradeBar
from lean_data.quality.levels import DataQualityLevel


async def main(
    prefix: str, durable: str, db: str, lines: TextIO, last_ns: int, slow_s: float
) -> None:
    done = asyncio.Event()

    def on_bar(symbol: str, bar: MarketData, quality: DataQualityLevel) -> None:
        assert isinstance(bar, TradeBar)
        if slow_s:
            time.sleep(slow_s)
        lines.write(f"{bar.ts_event} {bar.revision} {int(bar.backfilled)}\n")
        lines.flush()
        if bar.ts_event == last_ns:
            done.set()

    feed = BusFeed("bus", prefix=prefix, durable=durable)
    config = Config(db_path=None if db == "-" else db, storage_batch_ms=20.0, metrics_interval_s=0)
    async with DataEngine(config) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(on_bar, late=False)
        await engine.subscribe_symbol("BTC-PERP")
        await done.wait()
        await engine.wait_idle()
        outcomes = engine.get_metrics()["engine"]["outcomes"]
    print(json.dumps({"feed": feed.get_connection_status(), "outcomes": outcomes}), flush=True)


if __name__ == "__main__":
    with open(sys.argv[4], "a", encoding="utf-8") as out:
        slow = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
        asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], out, int(sys.argv[5]), slow))
