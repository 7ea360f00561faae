"""A moving-average crossover bot on real SPY minute bars, using ``async with``.

The strategy runs as an async callback with the ``conflate`` policy: if it ever falls
behind, it sees the latest bar per symbol instead of a growing backlog, and the feed is
never stalled. Bars the validator scores below FAIR are ignored.

Run: python examples/trading_bot.py
"""

from __future__ import annotations

import asyncio
import math

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

    async def on_bar(self, symbol: str, bar: TradeBar, quality: DataQualityLevel) -> None:
        if quality.value < DataQualityLevel.FAIR.value:
            return  # never trade on a bar the validator distrusts
        # The buffer may already hold newer bars than this one: use history up to it.
        recent = self.engine.get_latest(symbol, SLOW + 64)
        history = [b for b in recent if b.ts_event <= bar.ts_event][-(SLOW + 1) :]
        if len(history) <= SLOW:
            return
        ind = DataTransformer.calculate_technical_indicators(
            history, [f"sma_{FAST}", f"sma_{SLOW}"]
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
