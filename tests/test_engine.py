"""DataEngine: lifecycle, routing, ref-counted subscriptions, pipeline, stop semantics."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from lean_data import (
    AssetClass,
    Config,
    ConfigError,
    DataEngine,
    DataQualityLevel,
    EngineClosedError,
    Resolution,
    SubscriptionError,
    TradeBar,
)
from lean_data.models import NS_PER_MINUTE, MarketData

from .conftest import eventually
from .helpers import ListFeed, received

T0 = 1_640_995_200 * 10**9  # 2022-01-01 00:00 UTC


def bars(symbol: str, n: int, start: float = 100.0) -> list[MarketData]:
    """A plain, valid minute series (engine mechanics; real data is used elsewhere)."""
    out: list[MarketData] = []
    price = start
    for i in range(n):
        nxt = price * (1.0005 if i % 2 else 0.9996)
        out.append(
            TradeBar(
                symbol,
                T0 + i * NS_PER_MINUTE,
                price,
                max(price, nxt) * 1.0001,
                min(price, nxt) * 0.9999,
                nxt,
                10.0 + i % 7,
            )
        )
        price = nxt
    return received(out)


def rows(db: Path, sql: str = "select count(*) from bars") -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql).fetchone()[0])


async def test_start_stop_idempotent_and_not_reopenable(tmp_path: Path) -> None:
    engine = DataEngine(Config(db_path=tmp_path / "a.db"))
    await engine.start()
    await engine.start()
    assert engine.running
    await engine.stop()
    await engine.stop()
    with pytest.raises(EngineClosedError):
        await engine.start()
    with pytest.raises(EngineClosedError):
        engine.add_feed(ListFeed("late"))


async def test_routing_by_asset_class_and_explicit_name() -> None:
    crypto = ListFeed("crypto", asset_classes=frozenset({AssetClass.CRYPTO}))
    stocks = ListFeed("stocks", asset_classes=frozenset({AssetClass.EQUITY}))
    forex = ListFeed("forex", asset_classes=frozenset({AssetClass.FOREX}))
    async with DataEngine(Config(db_path=None)) as engine:
        for feed in (crypto, stocks, forex):
            engine.add_feed(feed)
        assert await engine.subscribe_symbol("BTC/USDT") == "crypto"
        assert await engine.subscribe_symbol("AAPL") == "stocks"
        assert await engine.subscribe_symbol("EUR/USD") == "forex"
        assert await engine.subscribe_symbol("BTC/EUR") == "crypto"
        assert await engine.subscribe_symbol("AAPL", feed_name="crypto") == "crypto"
        with pytest.raises(SubscriptionError, match="no registered feed serves"):
            await engine.subscribe_symbol("^GSPC")
        with pytest.raises(ConfigError, match="no feed named 'nope'"):
            await engine.subscribe_symbol("AAPL", feed_name="nope")
    assert ("subscribe", "AAPL") in crypto.calls


async def test_subscriptions_are_ref_counted() -> None:
    feed = ListFeed("f", asset_classes=frozenset({AssetClass.EQUITY}))
    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        await engine.subscribe_symbol("AAPL")
        await engine.subscribe_symbol("AAPL")
        assert engine.subscriptions() == {("f", "AAPL"): 2}
        assert await engine.unsubscribe_symbol("AAPL")
        assert feed.calls.count(("unsubscribe", "AAPL")) == 0
        assert await engine.unsubscribe_symbol("AAPL")
        assert not await engine.unsubscribe_symbol("AAPL")
    assert feed.calls == [
        ("connect", ""),
        ("subscribe", "AAPL"),
        ("unsubscribe", "AAPL"),
        ("disconnect", ""),
    ]


async def test_subscribe_before_start_is_applied_at_start() -> None:
    data = bars("AAPL", 5)
    feed = ListFeed("f", {"AAPL": data}, asset_classes=frozenset({AssetClass.EQUITY}))
    seen: list[MarketData] = []
    engine = DataEngine(Config(db_path=None))
    engine.add_feed(feed)
    engine.add_data_callback(lambda s, d, q: seen.append(d))
    await engine.subscribe_symbol("AAPL")
    async with engine:
        await feed.wait_pumped()
        await engine.wait_idle()
    assert seen == data


async def test_sync_and_async_callbacks_receive_symbol_data_quality(tmp_path: Path) -> None:
    data = bars("BTC/USDT", 50)
    feed = ListFeed("f", {"BTC/USDT": data})
    sync_seen: list[tuple[str, MarketData, DataQualityLevel]] = []
    async_seen: list[tuple[str, MarketData, DataQualityLevel]] = []

    async def on_async(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
        async_seen.append((symbol, item, quality))

    async with DataEngine(Config(db_path=tmp_path / "x.db")) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(lambda s, d, q: sync_seen.append((s, d, q)))
        engine.add_data_callback(on_async)
        await engine.subscribe_symbol("BTC/USDT")
        await feed.wait_pumped()
        await engine.wait_idle()
        assert engine.get_latest("BTC/USDT", 2) == data[-2:]
    assert [x[1] for x in sync_seen] == data
    assert [x[1] for x in async_seen] == data
    assert {x[0] for x in sync_seen} == {"BTC/USDT"}
    assert all(x[2] is DataQualityLevel.EXCELLENT for x in sync_seen)
    assert rows(tmp_path / "x.db") == 50


async def test_invalid_item_is_counted_logged_called_back_flagged_not_stored(
    tmp_path: Path,
) -> None:
    good = bars("ETH/USDT", 3)
    broken, tail = received([
        TradeBar("ETH/USDT", T0 + 3 * NS_PER_MINUTE, 100.0, 99.0, 101.0, 100.0, 1.0),
        TradeBar("ETH/USDT", T0 + 4 * NS_PER_MINUTE, 100.0, 100.2, 99.9, 100.1, 2.0),
    ])  # fmt: skip
    feed = ListFeed("f", {"ETH/USDT": [*good, broken, tail]})
    seen: list[tuple[MarketData, DataQualityLevel]] = []
    fair: list[MarketData] = []
    db = tmp_path / "inv.db"
    async with DataEngine(Config(db_path=db)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(lambda s, d, q: seen.append((d, q)))
        engine.add_data_callback(lambda s, d, q: fair.append(d), min_quality=DataQualityLevel.FAIR)
        await engine.subscribe_symbol("ETH/USDT")
        await feed.wait_pumped()
        await engine.wait_idle()
        assert engine.get_metrics()["engine"]["invalid"] == 1
        assert engine.get_latest("ETH/USDT", 10) == [*good, tail]  # never buffered
    assert [d for d, _ in seen] == [*good, broken, tail]
    assert [q for d, q in seen if d is broken] == [DataQualityLevel.INVALID]
    assert fair == [*good, tail]
    assert rows(db) == 4
    with sqlite3.connect(db) as conn:
        kinds = conn.execute("select kind, symbol, feed from errors").fetchall()
    # judged before continuity, the broken bar leaves a hole in the series: a gap, checked
    # with the feed's history (it has none)
    assert kinds == [("invalid_data", "ETH/USDT", "f"), ("gap", "ETH/USDT", "f")]


async def test_raising_callback_is_counted_logged_and_engine_goes_on(tmp_path: Path) -> None:
    data = bars("SOL/USDT", 20)
    feed = ListFeed("f", {"SOL/USDT": data})
    after: list[MarketData] = []

    def explode(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
        if item is data[5]:
            raise RuntimeError("strategy bug")

    async def explode_async(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
        if item is data[7]:
            raise ValueError("async strategy bug")

    db = tmp_path / "cb.db"
    async with DataEngine(Config(db_path=db)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(explode)
        engine.add_data_callback(explode_async)
        engine.add_data_callback(lambda s, d, q: after.append(d))
        await engine.subscribe_symbol("SOL/USDT")
        await feed.wait_pumped()
        await engine.wait_idle()
        assert engine.get_metrics()["engine"]["callback_errors"] == 2
    assert after == data
    with sqlite3.connect(db) as conn:
        messages = [r[0] for r in conn.execute("select message from errors order by ts")]
    assert len(messages) == 2
    assert any("RuntimeError('strategy bug')" in m for m in messages)
    assert any("ValueError('async strategy bug')" in m for m in messages)


async def test_clean_stop_delivers_and_stores_everything_emit_accepted(tmp_path: Path) -> None:
    data = bars("ADA/USDT", 3000)
    feed = ListFeed("f", {"ADA/USDT": data})
    seen: list[MarketData] = []

    async def slowish(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
        seen.append(item)

    db = tmp_path / "stop.db"
    engine = DataEngine(Config(db_path=db, inbox_size=64, storage_batch_rows=500))
    engine.add_feed(feed)
    engine.add_data_callback(slowish)
    async with engine:
        await engine.subscribe_symbol("ADA/USDT")
        await feed.wait_pumped()  # every item accepted by emit(); no wait_idle before exit
    assert seen == data
    assert rows(db) == 3000


async def test_historical_data_is_served_from_cache_second_time(tmp_path: Path) -> None:
    history = bars("BTC/USDT", 120)
    feed = ListFeed("f", history=history)
    config = Config(db_path=None, cache_dir=tmp_path / "cache")
    async with DataEngine(config) as engine:
        engine.add_feed(feed)
        start, end = T0, T0 + 60 * NS_PER_MINUTE
        first = await engine.get_historical_data("BTC/USDT", start, end, Resolution.MINUTE)
        second = await engine.get_historical_data("BTC/USDT", start, end, Resolution.MINUTE)
        assert feed.history_calls == 1
        assert first == history[:60]
        assert second == first
        assert engine.get_metrics()["cache"]["hits"] == 1
    async with DataEngine(config) as again:  # the disk tier survives a restart
        again.add_feed(ListFeed("f", history=[]))
        third = await again.get_historical_data("BTC/USDT", start, end, Resolution.MINUTE)
    assert third == history[:60]


async def test_metrics_and_quality_report_shape(tmp_path: Path) -> None:
    data = bars("BTC/USDT", 30)
    feed = ListFeed("f", {"BTC/USDT": data})
    async with DataEngine(Config(db_path=tmp_path / "m.db")) as engine:
        engine.add_feed(feed)
        await engine.subscribe_symbol("BTC/USDT")
        await feed.wait_pumped()
        await engine.wait_idle()
        metrics = engine.get_metrics()
        report = await engine.get_data_quality_report("BTC/USDT", hours=1)
    assert metrics["engine"]["messages"] == 30
    assert metrics["engine"]["processed"] == 30
    assert metrics["feeds"]["f"]["connection"]["messages"] == 30
    assert metrics["buffers"]["BTC/USDT"]["size"] == 30
    stats = report["feeds"]["f"]
    assert stats["messages"] == 30
    assert stats["levels"]["EXCELLENT"] == 30
    assert report["stored"]["feeds"]["f"]["rows"] == 30
    assert report["stored"]["rows"] == 30


async def test_feed_added_while_running_connects_once() -> None:
    feed = ListFeed("late", asset_classes=frozenset({AssetClass.EQUITY}))
    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)  # connects in the background ...
        await engine.subscribe_symbol("AAPL")  # ... and subscribe waits for that attempt
    assert feed.calls.count(("connect", "")) == 1
    assert ("subscribe", "AAPL") in feed.calls


async def test_feed_errors_are_counted_and_written_to_the_errors_table(tmp_path: Path) -> None:
    feed = ListFeed("f")
    db = tmp_path / "e.db"
    async with DataEngine(Config(db_path=db)) as engine:
        engine.add_feed(feed)
        feed.report_error("malformed_frame", "expected a JSON object, got '{not json'", symbol="X")
        assert engine.get_metrics()["engine"]["errors_by_kind"] == {"malformed_frame": 1}
    with sqlite3.connect(db) as conn:
        found = conn.execute("select kind, feed, symbol, message from errors").fetchall()
    assert found == [("malformed_frame", "f", "X", "expected a JSON object, got '{not json'")]
    assert feed.get_connection_status()["errors"] == 1


async def test_an_item_the_pipeline_cannot_process_is_logged_and_data_goes_on(
    tmp_path: Path,
) -> None:
    good = bars("DOT/USDT", 4)
    # A feed bug: an object with an item's times and symbol that is not a model (a bar
    # without a resolution is judged INVALID by the screen: test_hostile's bad_field)
    junk = SimpleNamespace(symbol="DOT/USDT", ts_event=T0 + 90 * NS_PER_MINUTE, ts_recv=1)
    feed = ListFeed("f", {"DOT/USDT": [good[0], good[1], junk, good[2], good[3]]})
    seen: list[MarketData] = []
    db = tmp_path / "junk.db"
    async with DataEngine(Config(db_path=db)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(lambda s, d, q: seen.append(d))
        await engine.subscribe_symbol("DOT/USDT")
        await feed.wait_pumped()
        await engine.wait_idle()
        assert engine.get_metrics()["engine"]["errors_by_kind"] == {"pipeline_error": 1}
    assert seen == good
    with sqlite3.connect(db) as conn:
        found = conn.execute("select kind, feed, symbol from errors").fetchall()
    assert found == [("pipeline_error", "f", "DOT/USDT")]


async def test_emit_rejects_a_non_model_object_with_a_clear_error() -> None:
    feed = ListFeed("f")
    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        with pytest.raises(
            TypeError, match="emit\\(\\) takes a TradeBar, QuoteBar or Tick, got dict"
        ):
            await feed.emit({"close": 1.0})  # type: ignore[arg-type]


async def test_metrics_snapshots_are_saved_periodically_and_at_stop(tmp_path: Path) -> None:
    data = bars("BTC/USDT", 40)
    feed = ListFeed("f", {"BTC/USDT": data})
    db = tmp_path / "metrics.db"
    async with DataEngine(Config(db_path=db, metrics_interval_s=0.01)) as engine:
        engine.add_feed(feed)
        await engine.subscribe_symbol("BTC/USDT")
        await feed.wait_pumped()
        await engine.wait_idle()
        # The periodic saver commits snapshots on its own every 10 ms:
        await eventually(lambda: rows(db, "select count(*) from metrics") >= 2)
    with sqlite3.connect(db) as conn:
        payloads = [
            orjson.loads(p) for (p,) in conn.execute("select payload from metrics order by ts")
        ]
    assert len(payloads) >= 3  # at least two periodic snapshots and the one taken at stop
    assert payloads[-1]["engine"]["messages"] == 40
    assert payloads[-1]["engine"]["state"] == "stopping"


class BatchFeed(ListFeed):
    """Hands its items over in batches of ``per_read`` (emit_many), as a socket read would."""

    def __init__(self, name: str, items: dict[str, list[MarketData]], per_read: int) -> None:
        super().__init__(name, items)
        self.per_read = per_read

    async def _pump(self, symbol: str) -> None:
        items = list(self.items[symbol])
        for start in range(0, len(items), self.per_read):
            await self.emit_many(items[start : start + self.per_read])


async def test_batches_deliver_in_order_and_a_hostile_bar_costs_only_itself(
    tmp_path: Path,
) -> None:
    start = 1_700_000_040 * 10**9
    bars = [
        TradeBar("BTC/USDT", start + i * NS_PER_MINUTE, 100.0 + i, 101.0 + i, 99.0 + i,
                 100.5 + i, 3.0)
        for i in range(40)
    ]  # fmt: skip
    hostile = TradeBar("BTC/USDT", bars[17].ts_event, 100.0, 99.0, 101.0, 100.0, 3.0)  # high<low
    items: list[MarketData] = [*bars[:17], hostile, *bars[17:]]
    seen: list[tuple[MarketData, DataQualityLevel]] = []
    db = tmp_path / "batches.db"
    engine = DataEngine(Config(db_path=db, inbox_size=8))  # batches of 6 against room for 8
    engine.add_feed(BatchFeed("batches", {"BTC/USDT": items}, per_read=6))
    engine.add_data_callback(lambda s, item, q: seen.append((item, q)))
    async with engine:
        await engine.subscribe_symbol("BTC/USDT")
        await eventually(lambda: len(seen) == len(items))
        await engine.wait_idle()
        outcomes = engine.get_metrics()["engine"]["outcomes"]
    assert [replace(item, ts_recv=0) for item, _ in seen] == items  # emit stamps ts_recv
    hostile_seen = [q for item, q in seen if isinstance(item, TradeBar) and item.high < item.low]
    assert hostile_seen == [DataQualityLevel.INVALID]
    assert outcomes["delivered"] == len(bars)
    assert outcomes["invalid"] == 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from bars").fetchone() == (len(bars),)
        assert conn.execute(
            "select count(*) from errors where kind = 'invalid_data'"
        ).fetchone() == (1,)
