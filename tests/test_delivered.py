"""``DataFeed.delivered()``: a feed learns when the engine processed what it handed over.

Real FTX BTC-PERP minute bars (tests/fixtures/nautilus_trader/btc-perp-20211231-
20220201_1m.csv, a copy of ../shared/data's file).
"""

from __future__ import annotations

import asyncio

import pytest

from lean_data import Config, DataEngine
from lean_data.errors import EngineStateError
from lean_data.loaders import load_file
from lean_data.models import MarketData, TradeBar
from lean_data.quality.levels import DataQualityLevel
from tests.conftest import FIXTURES
from tests.helpers import IdleFeed, received

FTX = FIXTURES / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"


async def test_delivered_returns_once_every_emitted_item_was_called_back() -> None:
    sent = received([b for b in load_file(FTX, symbol="BTC-PERP") if isinstance(b, TradeBar)])
    seen: list[MarketData] = []
    release = asyncio.Event()

    async def slow(symbol: str, item: MarketData, level: DataQualityLevel) -> None:
        await release.wait()  # an async subscriber: the pipeline itself is not held

    def fast(symbol: str, item: MarketData, level: DataQualityLevel) -> None:
        seen.append(item)

    feed = IdleFeed("ftx")
    async with DataEngine(Config(db_path=None, inbox_size=100_000)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(fast)
        engine.add_data_callback(slow, policy="drop_oldest", queue_size=10)
        await engine.subscribe_symbol("BTC-PERP")
        for bar in sent[:5_000]:
            await feed.emit(bar)
        assert len(seen) < 5_000  # still in the inbox: emit() only handed them over
        await feed.delivered()
        assert seen == sent[:5_000]  # every one called back, in order
        release.set()


async def test_delivered_needs_a_running_engine() -> None:
    feed = IdleFeed("ftx")
    with pytest.raises(EngineStateError, match="not attached"):
        await feed.delivered()
    engine = DataEngine(Config(db_path=None))
    engine.add_feed(feed)
    with pytest.raises(EngineStateError, match="processes no data"):
        await feed.delivered()
