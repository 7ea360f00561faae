"""A moving-average crossover bot on real SPY minute bars, using ``async with``.

The strategy runs as an async callback with the ``block`` policy: it sees every bar, in
order (a crossover needs each one), and while it is behind, its bounded queue holds the
bars waiting for it. It keeps its own window of the bars it has seen, so its decisions do
not depend on how far the engine's ring buffer has moved on meanwhile. Bars the validator
scores below FAIR are ignored.

Run: python examples/trading_bot.py
"""

from __future__ import annotations

import asyncio
import math
from collections import deque

from lean_data import Config, DataEngine, DataQualityLevel, ReplayFeed, TradeBar
from lean_data.analytics.transform import DataTransformer
from lean_data.cli import DEMO_DATA

FAST, SLOW = 10, 30


class CrossoverBot:
    """Go long when the fast SMA crosses above the slow one; flat when it crosses below."""

    def __init__(self, engine: DataEngine) -> None:
        self.engine = engine
        self.position: dict[str, int] = {}
        self.trades: list[tuple[str, str, float]] = []
        # The bot's own window: the engine's buffer may already hold bars newer than the
        # one being handled (the pipeline runs ahead of a callback that is behind).
        self.windows: dict[str, deque[TradeBar]] = {}

    async def on_bar(self, symbol: str, bar: TradeBar, quality: DataQualityLevel) -> None:
        if quality.value < DataQualityLevel.FAIR.value:
            return  # never trade on a bar the validator distrusts
        window = self.windows.setdefault(symbol, deque(maxlen=SLOW + 1))
        window.append(bar)
        if len(window) <= SLOW:
            return
        ind = DataTransformer.calculate_technical_indicators(
            list(window), [f"sma_{FAST}", f"sma_{SLOW}"]
        )
        fast, slow = ind[f"sma_{FAST}"][-1], ind[f"sma_{SLOW}"][-1]
        if math.isnan(fast) or math.isnan(slow):
            return
        want = 1 if fast > slow else 0
        if want != self.position.get(symbol, 0):
            self.position[symbol] = want
            side = "BUY" if want else "SELL"
            self.trades.append((symbol, side, bar.close))
            print(f"{bar.time:%Y-%m-%d %H:%M} {side:<4} {symbol} @ {bar.close:.2f}")


async def main() -> None:
    files = sorted((DEMO_DATA / "lean/equity/usa/minute/spy").glob("*_trade.zip"))
    feed = ReplayFeed("spy", files)
    async with DataEngine(Config(db_path="trading_bot.db")) as engine:
        bot = CrossoverBot(engine)
        engine.add_feed(feed)
        engine.add_data_callback(bot.on_bar, policy="block", queue_size=256)
        await engine.subscribe_symbol("SPY")
        await feed.wait_finished()
        await engine.wait_idle()
    print(f"{len(bot.trades)} trades; final position {bot.position}")


if __name__ == "__main__":
    asyncio.run(main())
