"""Quickstart: replay five days of real SPY minute bars through the engine.

Run: python examples/quickstart.py
"""

import asyncio

from lean_data import Config, DataEngine, ReplayFeed
from lean_data.cli import DEMO_DATA


async def main() -> None:
    feed = ReplayFeed(
        "replay", sorted((DEMO_DATA / "lean/equity/usa/minute/spy").glob("*_trade.zip"))
    )

    def on_data(symbol, bar, quality):  # sync: runs inline, keep it fast
        if bar.ts_event % 3_600_000_000_000 == 0:
            print(f"{bar.time:%Y-%m-%d %H:%M} {symbol} close {bar.close} {quality.name}")

    async with DataEngine(Config(db_path="quickstart.db")) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(on_data)
        await engine.subscribe_symbol("SPY")  # routed to the feed that serves it
        await feed.wait_finished()
        await engine.wait_idle()
        for bar in engine.get_latest("SPY", 3):  # the ring buffer: newest bars, oldest first
            print(f"{bar.time:%Y-%m-%d %H:%M} close {bar.close} volume {bar.volume:g}")
        print((await engine.get_data_quality_report("SPY"))["feeds"]["replay"]["levels"])


if __name__ == "__main__":
    asyncio.run(main())
