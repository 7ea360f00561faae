"""ReplayFeed: the real FTX BTC-PERP minute series through the whole engine path."""

from __future__ import annotations

import itertools
import math
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from lean_data import Config, DataEngine, DataQualityLevel, ReplayFeed, Resolution, TradeBar
from lean_data.feeds.replay import merge_by_time
from lean_data.loaders import load_file
from lean_data.models import NS_PER_MINUTE, MarketData

from .conftest import eventually

FIXTURES = Path(__file__).parent / "fixtures"
FTX = FIXTURES / "nautilus_trader/btc-perp-20211231-20220201_1m.csv"
SYMBOL = "BTC-PERP"


async def test_ftx_45031_bars_reach_three_callbacks_once_in_order_and_sqlite(
    tmp_path: Path,
) -> None:
    expected = [b.ts_event for b in load_file(FTX, symbol=SYMBOL)]
    assert len(expected) == 45_031
    seen: dict[str, list[int]] = {"sync": [], "async_a": [], "async_b": []}

    def on_sync(symbol: str, bar: MarketData, quality: DataQualityLevel) -> None:
        seen["sync"].append(bar.ts_event)

    async def on_a(symbol: str, bar: MarketData, quality: DataQualityLevel) -> None:
        seen["async_a"].append(bar.ts_event)

    async def on_b(symbol: str, bar: MarketData, quality: DataQualityLevel) -> None:
        seen["async_b"].append(bar.ts_event)

    db = tmp_path / "ftx.db"
    feed = ReplayFeed("ftx", [FTX])
    async with DataEngine(Config(db_path=db)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(on_sync)
        engine.add_data_callback(on_a)
        engine.add_data_callback(on_b, policy="block", queue_size=128)
        assert await engine.subscribe_symbol(SYMBOL) == "ftx"
        await feed.wait_finished()
    for name, stamps in seen.items():
        assert stamps == expected, name
    with sqlite3.connect(db) as conn:
        count, first, last = conn.execute(
            "select count(*), min(ts_event), max(ts_event) from bars where symbol = ?", (SYMBOL,)
        ).fetchone()
    assert (count, first, last) == (45_031, expected[0], expected[-1])


async def test_replay_history_and_resampling() -> None:
    feed = ReplayFeed("ftx", [FTX])
    assert feed.symbols == [SYMBOL]
    all_bars = [b for b in load_file(FTX, symbol=SYMBOL) if isinstance(b, TradeBar)]
    midnight = 1_640_995_200 * 10**9  # 2022-01-01 00:00 UTC; the file starts 2021-12-31 23:01
    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        minutes = await engine.get_historical_data(SYMBOL, midnight, midnight + 60 * NS_PER_MINUTE)
        hours = await engine.get_historical_data(
            SYMBOL, midnight, midnight + 3 * 60 * NS_PER_MINUTE, Resolution.HOUR
        )
    in_range = [b for b in all_bars if midnight <= b.ts_event < midnight + 60 * NS_PER_MINUTE]
    assert minutes == in_range
    assert len(minutes) == 60
    assert [h.ts_event for h in hours] == [midnight + i * 3600 * 10**9 for i in range(3)]
    first = hours[0]
    assert isinstance(first, TradeBar)
    assert first.resolution is Resolution.HOUR
    assert (first.open, first.high, first.low, first.close) == (
        in_range[0].open,
        max(b.high for b in in_range),
        min(b.low for b in in_range),
        in_range[-1].close,
    )
    assert first.volume == math.fsum(b.volume for b in in_range)


async def test_paced_replay_keeps_order() -> None:
    feed = ReplayFeed("ftx", [FTX], speed=600.0)  # 10 recorded minutes per wall second
    seen: list[int] = []
    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(lambda s, b, q: seen.append(b.ts_event))
        await engine.subscribe_symbol(SYMBOL)
        await eventually(lambda: len(seen) >= 20, timeout=30)
        assert not feed.finished
        await engine.unsubscribe_symbol(SYMBOL)
    assert seen == sorted(seen)
    assert 20 <= len(seen) < 45_031
    assert {b - a for a, b in itertools.pairwise(seen)} == {NS_PER_MINUTE}


DEMO_SPY = Path(__file__).parents[1] / "lean_data/demo_data/lean/equity/usa/minute/spy"


async def test_newest_first_files_deliver_every_bar_in_time_order() -> None:
    newest_first = [DEMO_SPY / "20131008_trade.zip", DEMO_SPY / "20131007_trade.zip"]
    expected = [b.ts_event for path in reversed(newest_first) for b in load_file(path)]
    assert len(expected) == 1_656
    assert expected == sorted(expected)
    feed = ReplayFeed("lean", newest_first)
    seen: list[int] = []
    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(lambda s, b, q: seen.append(b.ts_event))
        await engine.subscribe_symbol("SPY")
        await feed.wait_finished()
        await engine.wait_idle()
        stats = engine.get_metrics()["continuity"]
    assert seen == expected
    assert feed.replayed["SPY"] == 1_656
    assert (stats["gaps"], stats["duplicates"]) == (0, 0)


def test_merge_keeps_file_order_for_equal_times_and_opens_files_only_when_reached() -> None:
    days = sorted(DEMO_SPY.glob("2013100*_trade.zip"), reverse=True)  # 09, 08, 07: newest first
    quote = DEMO_SPY / "20131007_quote.zip"
    open_now = 0
    most_open = 0

    def opener(path: Path) -> Callable[[], Iterator[MarketData]]:
        def stream() -> Iterator[MarketData]:
            nonlocal open_now, most_open
            open_now += 1
            most_open = max(most_open, open_now)
            try:
                yield from load_file(path)
            finally:
                open_now -= 1

        return stream

    merged = list(merge_by_time([opener(p) for p in [quote, *days]]))
    by_file = {p: load_file(p) for p in [quote, *days]}
    assert len(merged) == sum(len(items) for items in by_file.values()) == 908 + 828 * 2 + 813
    assert [x.ts_event for x in merged] == sorted(x.ts_event for x in merged)
    # 2013-10-07: the quote file was given first, so at every shared minute its bar comes first
    shared = {b.ts_event for b in by_file[quote]} & {b.ts_event for b in by_file[days[-1]]}
    assert len(shared) > 800
    for ts in shared:
        kinds = [type(x).__name__ for x in merged if x.ts_event == ts]
        assert kinds == ["QuoteBar", "TradeBar"], ts
    # the two 10-07 files overlap; the 10-08 and 10-09 files open only once reached
    assert most_open == 2
    assert open_now == 0
