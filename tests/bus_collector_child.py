"""A collector process for the bus tests: engine + real FTX minute bars + BusPublisher.

Run as ``python -m tests.bus_collector_child PREFIX COUNT PAUSE_AT``: replays the first
COUNT bars of the FTX BTC-PERP file through a DataEngine (no storage) whose BusPublisher
publishes them under PREFIX (stream PREFIX upper-cased). With PAUSE_AT > 0 the feed stops
after that many bars and the process waits to be killed; else the engine stops cleanly
(the publisher publishes its backlog) and the publisher's statistics are printed as one
JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime

from lean_data import Config, DataEngine, DataFeed, Resolution
from lean_data.bus import BusPublisher
from lean_data.feeds.backoff import BackoffPolicy
from lean_data.loaders import load_file
from lean_data.models import MarketData, TradeBar
from tests.conftest import FIXTURES

FTX = FIXTURES / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"


class FileFeed(DataFeed):
    """Emits the given bars once subscribed; stops after ``pause_at`` of them (> 0)."""

    live = False

    def __init__(self, items: list[TradeBar], pause_at: int) -> None:
        super().__init__("ftx")
        self.items = items
        self.pause_at = pause_at
        self.done = asyncio.Event()

    async def connect(self) -> bool:
        return True

    async def disconnect(self) -> None:
        pass

    async def subscribe(self, symbol: str) -> bool:
        self.spawn(self._pump(), name=symbol)
        return True

    async def unsubscribe(self, symbol: str) -> bool:
        return True

    async def get_historical_data(
        self, symbol: str, start: datetime | int, end: datetime | int, resolution: Resolution
    ) -> list[MarketData]:
        return []

    async def _pump(self) -> None:
        for i, item in enumerate(self.items):
            if i == self.pause_at > 0:
                print("paused", flush=True)
                await asyncio.Event().wait()  # until killed
            await self.emit(item)
        self.done.set()


async def main(prefix: str, count: int, pause_at: int) -> None:
    bars = [b for b in load_file(FTX, symbol="BTC-PERP") if isinstance(b, TradeBar)][:count]
    feed = FileFeed(bars, pause_at)
    publisher = BusPublisher(prefix=prefix, backoff=BackoffPolicy(base_s=0.02, cap_s=0.2))
    engine = DataEngine(Config(db_path=None))
    engine.add_feed(feed)
    engine.add_sink(publisher)
    async with engine:
        await engine.subscribe_symbol("BTC-PERP")
        await feed.done.wait()
        await engine.wait_idle()
    print(json.dumps(publisher.statistics()), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
