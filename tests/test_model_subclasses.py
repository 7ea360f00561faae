"""A user's subclass of a model (docs/data-model.md) takes its base model's whole path.

Real SPY minute trade bars of 2013-10-07 and real SPY trades of 2013-10-10 (LEAN,
AlgoSeek; tests/fixtures/PROVENANCE.md), rebuilt as subclasses that add a field. The engine
must judge, buffer, store and call them back as it does the models themselves (the
callbacks get the subclass objects), build bars from subclass trades, and judge a hostile
one INVALID.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

from lean_data import Config, DataEngine, DataQualityLevel, Tick, TradeBar
from lean_data.loaders import load_file
from lean_data.models import NS_PER_MINUTE, MarketData, model_kind

from .conftest import FIXTURES
from .helpers import ListFeed, received

USA = FIXTURES / "lean/equity/usa"


@dataclasses.dataclass(frozen=True, slots=True)
class VenueBar(TradeBar):
    venue: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class VenueTick(Tick):
    venue: str = ""


def _as(cls: type, item: MarketData) -> MarketData:
    fields = {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
    made: MarketData = cls(**fields, venue="XNYS")
    return made


SPY = [_as(VenueBar, b) for b in load_file(USA / "minute/spy/20131007_trade.zip")][:120]


def test_model_kind_names_the_base_model() -> None:
    assert model_kind(SPY[0]) is TradeBar
    assert model_kind(VenueTick("IBM", 1, 1.0, 1.0)) is Tick
    assert model_kind(TradeBar("X", 1, 1.0, 1.0, 1.0, 1.0, 1.0)) is TradeBar
    assert model_kind(object()) is None


async def test_subclass_items_are_judged_buffered_stored_and_called_back(
    tmp_path: Path,
) -> None:
    bars = received(SPY)
    hostile = dataclasses.replace(bars[60], high=1e308)  # still a VenueBar
    bars[60] = hostile
    seen: list[tuple[MarketData, DataQualityLevel]] = []
    db = tmp_path / "sub.db"
    async with DataEngine(Config(db_path=db, metrics_interval_s=0)) as engine:
        feed = ListFeed("f", {"SPY": bars})
        engine.add_feed(feed)
        engine.add_data_callback(lambda s, item, q: seen.append((item, q)))
        await engine.subscribe_symbol("SPY", "f")
        await feed.wait_pumped()
        await engine.wait_idle()
        latest = engine.get_latest("SPY", 3)
        outcomes = engine.get_metrics()["engine"]["outcomes"]
    good = [b for b in bars if b is not hostile]
    assert [item for item, q in seen if item is not hostile] == good  # the objects themselves
    assert all(type(item) is VenueBar for item, _ in seen)
    assert [q for item, q in seen if item is hostile] == [DataQualityLevel.INVALID]
    assert all(q is not DataQualityLevel.INVALID for item, q in seen if item is not hostile)
    assert outcomes["delivered"] == len(good)
    assert (outcomes["invalid"], outcomes["error"]) == (1, 0)
    assert [b.ts_event for b in latest] == [b.ts_event for b in good[-3:]]
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from bars").fetchone()[0] == len(good)


async def test_bars_built_from_subclass_trades_equal_the_vendor_bars() -> None:
    """test_engine_aggregation's check, with every trade a VenueTick."""
    start, span = 1381413600 * 10**9, 20 * NS_PER_MINUTE  # 2013-10-10 10:00 New York
    ticks = [t for t in load_file(USA / "tick/spy/20131010_trade.zip")
             if start <= t.ts_event < start + span + NS_PER_MINUTE]  # fmt: skip
    live = [_as(VenueTick, t) for t in ticks if t.ts_event < start + span]
    live.append(_as(VenueTick, next(t for t in ticks if t.ts_event >= start + span)))
    vendor = [b for b in load_file(USA / "minute/spy/20131010_trade.zip")
              if start <= b.ts_event < start + span]  # fmt: skip
    assert len(vendor) == 20
    bars: list[MarketData] = []
    async with DataEngine(Config(db_path=None, metrics_interval_s=0)) as engine:
        feed = ListFeed("lean", {"SPY": live})
        engine.add_feed(feed)
        engine.add_data_callback(lambda s, item, q: bars.append(item), kinds="bar")
        await engine.subscribe_symbol("SPY", bars_from_trades="1m")
        await feed.wait_pumped()
        await engine.wait_idle()
    values = [(b.ts_event, b.open, b.high, b.low, b.close, b.volume) for b in bars]  # type: ignore[union-attr]
    assert values == [(b.ts_event, b.open, b.high, b.low, b.close, b.volume) for b in vendor]  # type: ignore[union-attr]
