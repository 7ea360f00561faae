"""Bars built from trades inside the engine (issue 4: tick -> bar aggregation, wired).

Real SPY prints of 2013-10-10 (tests/fixtures/lean/equity/usa/tick/spy/20131010_trade.zip)
replayed as trade ticks; the vendor's minute bars of that day
(tests/fixtures/lean/equity/usa/minute/spy/20131010_trade.zip) are the reference.
"""

from __future__ import annotations

from pathlib import Path

from lean_data import Config, DataEngine, Tick, TradeBar
from lean_data.loaders import load_file
from lean_data.models import NS_PER_MINUTE, MarketData

from .conftest import FIXTURES
from .helpers import ListFeed

TICKS = FIXTURES / "lean/equity/usa/tick/spy/20131010_trade.zip"
MINUTES = FIXTURES / "lean/equity/usa/minute/spy/20131010_trade.zip"
START = 1381413600 * 10**9  # 2013-10-10 14:00 UTC, 10:00 New York
SPAN = 20 * NS_PER_MINUTE


async def test_minute_bars_built_from_real_trades_equal_the_vendor_bars(tmp_path: Path) -> None:
    ticks = [t for t in load_file(TICKS) if isinstance(t, Tick)]
    window = [t for t in ticks if START <= t.ts_event < START + SPAN + NS_PER_MINUTE]
    # the trades of 20 minutes, plus the first print of the next minute (it closes the last)
    live = [t for t in window if t.ts_event < START + SPAN] + [
        next(t for t in window if t.ts_event >= START + SPAN)
    ]
    vendor = [
        b for b in load_file(MINUTES)
        if isinstance(b, TradeBar) and START <= b.ts_event < START + SPAN
    ]  # fmt: skip
    assert len(vendor) == 20
    bars: list[TradeBar] = []

    def on_data(symbol: str, item: MarketData, quality: object) -> None:
        if isinstance(item, TradeBar):
            bars.append(item)

    feed = ListFeed("lean", {"SPY": live})
    async with DataEngine(Config(db_path=tmp_path / "agg.db")) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(on_data)
        await engine.subscribe_symbol("SPY", bars_from_trades="1m")
        await feed.wait_pumped()
        await engine.wait_idle()
        stored = await engine.get_historical_data("SPY", START, START + SPAN)
    values = [(b.ts_event, b.open, b.high, b.low, b.close, b.volume) for b in bars]
    assert values == [(b.ts_event, b.open, b.high, b.low, b.close, b.volume) for b in vendor]
    assert all(b.closed for b in bars)
    assert [b.ts_event for b in stored] == [b.ts_event for b in vendor]
