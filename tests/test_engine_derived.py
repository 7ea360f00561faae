"""5m/15m/1h bars derived live inside the engine equal resampling the stored 1m series
(issue 4, done-when 4). Real FTX BTC-PERP minute bars (tests/fixtures/nautilus_trader,
see PROVENANCE.md); real SPY minute bars of 2013-10-07/08 for New York days.
"""

from __future__ import annotations

from pathlib import Path

from lean_data import Config, DataEngine, DataTransformer, Resolution, TradeBar
from lean_data.loaders import load_file
from lean_data.models import NS_PER_HOUR, MarketData

from .conftest import FIXTURES
from .helpers import ListFeed

FTX = FIXTURES / "nautilus_trader/btc-perp-20211231-20220201_1m.csv"
SPY = [FIXTURES / f"lean/equity/usa/minute/spy/{d}_trade.zip" for d in ("20131007", "20131008")]


async def derive(
    feed: ListFeed, symbol: str, targets: list[str], db: Path
) -> tuple[dict[Resolution, list[TradeBar]], list[TradeBar]]:
    got: dict[Resolution, list[TradeBar]] = {}

    def on_bar(s: str, bar: MarketData, quality: object) -> None:
        if isinstance(bar, TradeBar) and bar.resolution is not Resolution.MINUTE:
            got.setdefault(bar.resolution, []).append(bar)

    async with DataEngine(Config(db_path=db)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(on_bar)
        await engine.subscribe_symbol(symbol, derived=targets)
        await feed.wait_pumped()
        await engine.wait_idle()
        assert engine.persistence is not None
        stored = [
            b
            for b in await engine.persistence.get_market_data(
                symbol, 0, 2**62, resolution=Resolution.MINUTE, feed=feed.name
            )
            if isinstance(b, TradeBar)
        ]
    return got, stored


def same(a: list[TradeBar], b: list[TradeBar]) -> None:
    key = [(x.ts_event, x.open, x.high, x.low, x.close, x.volume, x.closed) for x in a]
    assert key == [(x.ts_event, x.open, x.high, x.low, x.close, x.volume, x.closed) for x in b]


async def test_crypto_derived_bars_equal_resampling_the_stored_series(tmp_path: Path) -> None:
    bars = [b for b in load_file(FTX, symbol="BTC-PERP") if isinstance(b, TradeBar)]
    # up to a whole hour: every bucket is complete when the data ends
    end = bars[0].ts_event - bars[0].ts_event % NS_PER_HOUR + 48 * NS_PER_HOUR
    bars = [b for b in bars if b.ts_event < end]
    got, stored = await derive(
        ListFeed("ftx", {"BTC-PERP": bars}), "BTC-PERP", ["5m", "15m", "1h"], tmp_path / "d.db"
    )
    assert len(stored) == len(bars)
    for target in ("5m", "15m", "1h"):
        expected = DataTransformer.resample_bars(stored, target)
        same(got[Resolution.parse(target)], expected)
    assert [len(got[Resolution.parse(t)]) for t in ("5m", "15m", "1h")] == [
        len(DataTransformer.resample_bars(stored, t)) for t in ("5m", "15m", "1h")
    ]


async def test_equity_daily_bars_are_new_york_days(tmp_path: Path) -> None:
    bars = [b for path in SPY for b in load_file(path) if isinstance(b, TradeBar)]
    got, stored = await derive(
        ListFeed("lean", {"SPY": bars}), "SPY", ["1h", "1d"], tmp_path / "e.db"
    )
    same(got[Resolution.HOUR], DataTransformer.resample_bars(stored, "1h"))
    days = DataTransformer.resample_bars(stored, "1d", tz="America/New_York")
    assert len(days) == 2
    # the first New York day is complete once the second day's first bar arrives
    same(got[Resolution.DAILY], days[:1])
