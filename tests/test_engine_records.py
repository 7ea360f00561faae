"""Derivatives records through the engine: only callbacks that ask for a kind see it.

Real data: freqtrade's XRP/USDT:USDT 8-hour funding rates (tests/fixtures/freqtrade/
futures/XRP_USDT_USDT-8h-funding_rate.feather, 91 rows, a copy of ../shared/data's file)
emitted by one feed together with real FTX BTC-PERP minute bars (tests/fixtures/
nautilus_trader/btc-perp-20211231-20220201_1m.csv).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lean_data import Config, DataEngine
from lean_data.derivatives import FundingRate
from lean_data.errors import ConfigError
from lean_data.loaders import load_file
from lean_data.models import MarketData, TradeBar
from lean_data.quality.levels import DataQualityLevel, Verdict
from tests.conftest import FIXTURES
from tests.helpers import IdleFeed, received

FUNDING = FIXTURES / "freqtrade" / "futures" / "XRP_USDT_USDT-8h-funding_rate.feather"
FTX = FIXTURES / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"


def rates() -> list[FundingRate]:
    found = load_file(FUNDING)
    assert all(isinstance(r, FundingRate) for r in found)
    return received(found)  # type: ignore[arg-type]


class Collect:
    name = "collect"

    def __init__(self) -> None:
        self.items: list[Any] = []

    async def open(self) -> None:
        pass

    def offer(self, feed: str, item: MarketData, verdict: Verdict) -> None:
        self.items.append(item)

    async def close(self) -> None:
        pass

    def statistics(self) -> dict[str, Any]:
        return {"received": len(self.items)}


async def test_records_reach_only_the_callbacks_of_their_kind_and_storage(
    tmp_path: Path,
) -> None:
    funding = rates()
    bars = received([b for b in load_file(FTX, symbol="BTC-PERP") if isinstance(b, TradeBar)])
    bars = bars[:200]
    market: list[Any] = []
    only_funding: list[tuple[Any, DataQualityLevel]] = []
    both: list[Any] = []
    queued: list[Any] = []

    async def slow_funding(symbol: str, item: Any, level: DataQualityLevel) -> None:
        queued.append(item)

    feed = IdleFeed("binance")
    sink = Collect()
    engine = DataEngine(Config(db_path=tmp_path / "db.sqlite", metrics_interval_s=0))
    engine.add_feed(feed)
    engine.add_sink(sink)
    engine.add_data_callback(lambda s, item, q: market.append(item))
    engine.add_data_callback(lambda s, item, q: only_funding.append((item, q)),
                             kinds="funding_rate")  # fmt: skip
    engine.add_data_callback(lambda s, item, q: both.append(item),
                             kinds=("bar", "quote", "tick", "funding_rate"))  # fmt: skip
    subscriber = engine.add_data_callback(slow_funding, kinds=["funding_rate"])
    assert subscriber is not None
    async with engine:
        await engine.subscribe_symbol("BTC-PERP")
        for index, bar in enumerate(bars):  # interleaved: a rate after every other bar
            await feed.emit(bar)
            if index % 2 and index // 2 < len(funding):
                await feed.emit(funding[index // 2])
        for rate in funding[len(bars) // 2 :]:
            await feed.emit(rate)
        await engine.wait_idle()
        stored = await engine.persistence.get_funding_rates("XRP/USDT:USDT")  # type: ignore[union-attr]
        metrics = engine.get_metrics()
    assert market == bars  # nothing new for a callback that named no kinds
    assert [item for item, _ in only_funding] == funding  # in order, every one
    assert {q for _, q in only_funding} == {DataQualityLevel.GOOD}
    assert [x for x in both if isinstance(x, TradeBar)] == bars
    assert [x for x in both if isinstance(x, FundingRate)] == funding
    assert queued == funding  # the async one, from its own queue
    assert sink.items == bars  # sinks get market data only
    assert [(r.ts_event, r.rate) for r in stored] == [(r.ts_event, r.rate) for r in funding]
    assert metrics["engine"]["outcomes"]["delivered"] == len(bars) + len(funding)


async def test_remove_data_callback_stops_records_too() -> None:
    funding = rates()
    seen: list[Any] = []

    def on_rate(symbol: str, item: Any, level: DataQualityLevel) -> None:
        seen.append(item)

    feed = IdleFeed("binance")
    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(on_rate, kinds="funding_rate")
        await feed.emit(funding[0])
        await feed.delivered()
        assert engine.remove_data_callback(on_rate)
        await feed.emit(funding[1])
        await feed.delivered()
    assert seen == funding[:1]


@pytest.mark.parametrize(
    ("kinds", "message"),
    [
        ("funding", "expected some of bar, quote, tick, funding_rate"),
        ((), "expected some of"),
    ],
)
def test_bad_kinds_are_one_clear_error(kinds: Any, message: str) -> None:
    engine = DataEngine(Config(db_path=None))
    with pytest.raises(ConfigError, match=message):
        engine.add_data_callback(lambda s, i, q: None, kinds=kinds)
