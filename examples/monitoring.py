"""Monitor data quality: log every INVALID item, then print the quality report.

The callback and the report are the seed design's monitoring example, as it was written:
every item reaches callbacks with its quality level, INVALID included, and the report has
``average_quality_score`` at its top level.

Run: python examples/monitoring.py [FILE]   (default: a bundled day of real SPY minute bars)
"""

import asyncio
import logging
import sys
from pathlib import Path

from lean_data import Config, DataEngine, DataQualityLevel, ReplayFeed
from lean_data.cli import DEMO_DATA

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
logger = logging.getLogger("monitoring")

DEFAULT = DEMO_DATA / "lean/equity/usa/minute/spy/20131007_trade.zip"


async def main(path: Path) -> None:
    feed = ReplayFeed("replay", [path])
    symbol = feed.symbols[0]

    async def on_data(symbol, data, quality):
        if quality == DataQualityLevel.INVALID:
            logger.error(f"Invalid data received for {symbol}: {data}")

    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(on_data)
        await engine.subscribe_symbol(symbol)
        await feed.wait_finished()
        await engine.wait_idle()
        report = await engine.get_data_quality_report(symbol, hours=24)
        print(report["average_quality_score"])
        print(report["levels"])


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT))
