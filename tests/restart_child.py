"""A trading process for the restart test: engine + BinanceDataFeed + storage, printing bars.

Run as ``python -m tests.restart_child DB WS_URL REST_URL STOP_AT_NS``: prints
``bar <open ns> <backfilled>`` per delivered bar (flushed), and stops cleanly once the bar
opening at STOP_AT_NS has been delivered (0: run until killed). DB is a SQLite file, or
``postgresql://...#<schema>`` for PostgreSQL.
"""

from __future__ import annotations

import asyncio
import sys

from lean_data import BackoffPolicy, BinanceDataFeed, Config, DataEngine, TradeBar
from lean_data.models import MarketData
from lean_data.quality.levels import DataQualityLevel


async def main(db: str, ws_url: str, rest_url: str, stop_at: int) -> None:
    done = asyncio.Event()

    def on_bar(symbol: str, bar: MarketData, quality: DataQualityLevel) -> None:
        assert isinstance(bar, TradeBar)
        print(f"bar {bar.ts_event} {int(bar.backfilled)}", flush=True)
        if bar.ts_event == stop_at:
            done.set()

    feed = BinanceDataFeed(
        ws_url=ws_url, rest_url=rest_url, backoff=BackoffPolicy(base_s=0.01, cap_s=0.05)
    )
    if db.startswith("postgresql://"):
        url, schema = db.rsplit("#", 1)
        database = {"db_path": None, "database_url": url, "database_schema": schema}
    else:
        database = {"db_path": db}
    config = Config(**database, storage_batch_ms=1.0, metrics_interval_s=0)  # type: ignore[arg-type]  # the Config fields above
    async with DataEngine(config) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(on_bar)
        await engine.subscribe_symbol("BTC/BUSD")
        print("ready", flush=True)
        await done.wait()
        await engine.wait_idle()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
