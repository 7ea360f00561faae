"""ReplayFeed replays a Parquet catalog through the engine: real FTX BTC-PERP minute bars
exported from SQLite under a symbol with ``/`` and ``:``, replayed across four UTC dates."""

from __future__ import annotations

from pathlib import Path

import pytest

from lean_data import (
    Config,
    ConfigError,
    DataEngine,
    DataPersistence,
    DataQualityLevel,
    ReplayFeed,
    ReplaySource,
    Resolution,
    TradeBar,
    export_catalog,
)
from lean_data.loaders import describe_file
from lean_data.models import NS_PER_MINUTE, MarketData

from .test_catalog import ftx_bars

SYMBOL = "BTC/USD:USD"
MIDNIGHT = 1_640_995_200 * 10**9  # 2022-01-01 00:00 UTC


@pytest.fixture
async def catalog(tmp_path: Path) -> tuple[Path, list[TradeBar]]:
    """A catalog of the first 3 000 FTX bars (2021-12-31 23:01 → 2022-01-03 01:00 UTC)."""
    async with DataPersistence(tmp_path / "s.db") as db:
        for bar in ftx_bars(3000, symbol=SYMBOL):
            await db.save_market_data(bar, feed="ftx")
        await export_catalog(db, tmp_path / "cat")
        saved = await db.get_market_data(SYMBOL, 0, 2**62)
    return tmp_path / "cat", saved


def ohlcv(bar: MarketData) -> tuple[object, ...]:
    assert isinstance(bar, TradeBar)
    return (bar.symbol, bar.ts_event, bar.open, bar.high, bar.low, bar.close, bar.volume)


async def test_a_catalog_replays_every_bar_once_in_order(
    catalog: tuple[Path, list[TradeBar]],
) -> None:
    root, saved = catalog
    seen: list[tuple[object, ...]] = []

    def on_bar(symbol: str, bar: MarketData, quality: DataQualityLevel) -> None:
        seen.append(ohlcv(bar))

    feed = ReplayFeed("catalog", [ReplaySource.catalog(root, SYMBOL, resolution="1m")])
    assert feed.symbols == [SYMBOL]
    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(on_bar)
        assert await engine.subscribe_symbol(SYMBOL) == "catalog"
        await feed.wait_finished()
        await engine.wait_idle()
        stats = engine.get_metrics()["continuity"]
        history = await engine.get_historical_data(SYMBOL, MIDNIGHT, MIDNIGHT + 60 * NS_PER_MINUTE)
        hours = await engine.get_historical_data(
            SYMBOL, MIDNIGHT, MIDNIGHT + 3 * 60 * NS_PER_MINUTE, Resolution.HOUR
        )
    assert seen == [ohlcv(bar) for bar in saved]
    assert len(seen) == 3000
    assert feed.replayed[SYMBOL] == 3000
    assert (stats["gaps"], stats["duplicates"]) == (0, 0)
    assert [ohlcv(b) for b in history] == [
        ohlcv(b) for b in saved if MIDNIGHT <= b.ts_event < MIDNIGHT + 60 * NS_PER_MINUTE
    ]
    assert [h.ts_event for h in hours] == [MIDNIGHT + i * 60 * NS_PER_MINUTE for i in range(3)]


async def test_a_series_directory_or_the_root_with_options_is_a_replay_source(
    catalog: tuple[Path, list[TradeBar]],
) -> None:
    root, saved = catalog
    directory = root / "bars/BTC%2FUSD%3AUSD/1m"
    spec = describe_file(directory)
    assert (spec.format, spec.symbol, spec.resolution, spec.kind) == (
        "parquet_catalog",
        SYMBOL,
        Resolution.MINUTE,
        "bar",
    )
    feed = ReplayFeed("catalog", [directory])
    assert feed.count(SYMBOL) == 3000
    for day in ("2021-12-31", "2022-01-02"):  # a ranged replay does not open other days
        (directory / f"date={day}/part-ftx.parquet").write_bytes(b"not parquet")
    ranged = ReplayFeed("ranged")
    assert ranged.add_source(root, start=MIDNIGHT, end=MIDNIGHT + 90 * NS_PER_MINUTE) == SYMBOL
    seen: list[tuple[object, ...]] = []
    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(ranged)
        engine.add_data_callback(lambda s, bar, q: seen.append(ohlcv(bar)))
        await engine.subscribe_symbol(SYMBOL)
        await ranged.wait_finished()
        await engine.wait_idle()
    in_range = [b for b in saved if MIDNIGHT <= b.ts_event < MIDNIGHT + 90 * NS_PER_MINUTE]
    assert seen == [ohlcv(b) for b in in_range]
    assert len(seen) == 90
    with pytest.raises(ConfigError, match="no quote series"):
        ReplayFeed("quotes", [ReplaySource.catalog(root, SYMBOL, kind="quote")])
    with pytest.raises(ConfigError, match="not a Parquet catalog"):
        ReplayFeed("nothing", [root.parent])
