"""Order books through the engine: their own lane, book callbacks, gaps and re-sync.

Real data: cryptofeed's recorded Binance USD-M futures session (tests/fixtures/cryptofeed/
BINANCE_FUTURES.ws.1.0, its SUSHIUSDT ``depthUpdate`` frames) with the matching REST depth
snapshot (BINANCE_FUTURES.http.0.0); see tests/fixtures/PROVENANCE.md. The snapshot a feed
re-sends after a gap is *derived*: the state of an unfaulted replay of the same frames (the
capture holds one snapshot per symbol).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lean_data import Config, DataEngine
from lean_data.book import OrderBookDelta, OrderBookSnapshot
from lean_data.depth import BookKeeper, OrderBook
from lean_data.depth.sequencers import BinanceFuturesSequencer, Sequencer
from lean_data.errors import SubscriptionError
from lean_data.feeds.base import FeedStatus
from lean_data.models import MarketData
from lean_data.quality.levels import DataQualityLevel
from tests.depth_helpers import FIXTURES, binance_session, derived_snapshot, frozen_state
from tests.helpers import IdleFeed

SESSION = FIXTURES / "cryptofeed"
SYMBOL = "SUSHI/USDT"


def capture() -> tuple[OrderBookSnapshot, list[OrderBookDelta]]:
    session = binance_session(
        SESSION / "BINANCE_FUTURES.ws.1.0", SESSION / "BINANCE_FUTURES.http.0.0"
    )
    return session.snapshots[SYMBOL], session.deltas(SYMBOL)


def unfaulted(snapshot: OrderBookSnapshot, deltas: list[OrderBookDelta]) -> OrderBook:
    keeper = BookKeeper(OrderBook(SYMBOL), BinanceFuturesSequencer())
    keeper.on_snapshot(snapshot)
    for delta in deltas:
        keeper.on_delta(delta)
    assert keeper.book.valid
    return keeper.book


class DepthFeed(IdleFeed):
    """Emits the capture's snapshot and deltas (less ``drop``) on subscribe_book; answers
    a re-sync with a snapshot of the unfaulted book (derived)."""

    def __init__(self, snapshot: OrderBookSnapshot, deltas: list[OrderBookDelta],
                 drop: int | None = None) -> None:  # fmt: skip
        super().__init__("binance-futures")
        self.snapshot, self.deltas, self.drop = snapshot, deltas, drop
        self.resyncs = 0
        self.pumped = asyncio.Event()

    def book_sequencer(self, symbol: str) -> Sequencer:
        return BinanceFuturesSequencer()

    async def subscribe_book(self, symbol: str) -> bool:
        self.spawn(self._pump(), name="depth")
        return True

    async def _pump(self) -> None:
        await self.emit(self.snapshot)
        for index, delta in enumerate(self.deltas):
            if index != self.drop:
                await self.emit(delta)
        self.pumped.set()

    async def resync_book(self, symbol: str) -> None:
        self.resyncs += 1
        book = unfaulted(self.snapshot, self.deltas)
        await self.emit(derived_snapshot(book, self.snapshot.ts_recv))


class BatchedDepthFeed(DepthFeed):
    """The same capture, handed over as a socket read's worth at a time (emit_many)."""

    async def _pump(self) -> None:
        records: list[Any] = [self.snapshot, *self.deltas]
        for start in range(0, len(records), 7):
            await self.emit_many(records[start : start + 7])
        self.pumped.set()


async def run(feed: DepthFeed, **engine_calls: Any) -> tuple[DataEngine, list[Any], list[Any]]:
    seen: list[tuple[DataQualityLevel, bool, str, Any]] = []
    bars: list[MarketData] = []

    def on_book(symbol: str, book: OrderBook, level: DataQualityLevel) -> None:
        seen.append((level, book.valid, book.invalid_reason, frozen_state(book)))

    engine = DataEngine(Config(db_path=None))
    engine.add_feed(feed)
    engine.add_book_callback(on_book)
    engine.add_data_callback(lambda s, item, q: bars.append(item))
    async with engine:
        await engine.subscribe_symbol(SYMBOL, data=("book",))
        await feed.pumped.wait()
        await feed.delivered()
        await engine.wait_idle()
        engine_calls["metrics"] = engine.get_metrics()
    return engine, seen, [bars, engine_calls["metrics"]]


@pytest.mark.parametrize("feed_type", [DepthFeed, BatchedDepthFeed], ids=["emit", "emit_many"])
async def test_the_engine_keeps_the_book_and_tells_book_callbacks_only(
    feed_type: type[DepthFeed],
) -> None:
    snapshot, deltas = capture()
    expected = unfaulted(snapshot, deltas)
    feed = feed_type(snapshot, deltas)
    engine, seen, (bars, metrics) = await run(feed)
    book = engine.get_book(SYMBOL)
    assert book is not None
    assert frozen_state(book) == frozen_state(expected)
    assert seen[-1][3] == frozen_state(expected)
    assert DataQualityLevel.INVALID not in {level for level, *_ in seen}
    assert bars == []  # bar callbacks see no book
    books = metrics["books"]
    assert books["invalid"] == 0
    assert books["applied"] == len(seen)
    assert feed.resyncs == 0


async def test_a_dropped_delta_is_told_invalid_then_the_feed_resyncs() -> None:
    snapshot, deltas = capture()
    expected = unfaulted(snapshot, deltas)
    drop = len(deltas) // 2
    feed = DepthFeed(snapshot, deltas, drop=drop)
    engine, seen, (_, metrics) = await run(feed)
    invalid = [entry for entry in seen if entry[0] is DataQualityLevel.INVALID]
    assert len(invalid) == 1  # told once, at the gap, with the book marked invalid
    _, valid, reason, _ = invalid[0]
    assert valid is False
    assert "pu" in reason  # the futures rule: pu must equal the last u
    book = engine.get_book(SYMBOL)
    assert book is not None
    assert frozen_state(book) == frozen_state(expected)  # re-synced, valid again
    assert seen[-1][1] is True
    assert feed.resyncs == 1
    assert metrics["books"]["resyncs"] == 1
    assert metrics["engine"]["errors_by_kind"]["book_gap"] == 1


async def test_a_slow_async_book_callback_gets_the_latest_book_conflated() -> None:
    snapshot, deltas = capture()
    expected = unfaulted(snapshot, deltas)
    feed = DepthFeed(snapshot, deltas)
    states: list[Any] = []
    release = asyncio.Event()

    async def slow(symbol: str, book: OrderBook, level: DataQualityLevel) -> None:
        await release.wait()
        states.append(frozen_state(book))

    engine = DataEngine(Config(db_path=None))
    engine.add_feed(feed)
    subscriber = engine.add_book_callback(slow)
    assert subscriber is not None
    async with engine:
        await engine.subscribe_symbol(SYMBOL, data="book")
        await feed.pumped.wait()
        await feed.delivered()
        release.set()
        await engine.wait_idle()
    assert states[-1] == frozen_state(expected)
    assert len(states) < len(deltas)  # intermediate books skipped ...
    assert subscriber.dropped > 0  # ... and counted


async def test_a_feed_without_books_refuses_and_block_is_refused() -> None:
    engine = DataEngine(Config(db_path=None))
    engine.add_feed(IdleFeed("plain"))

    async def cb(symbol: str, book: OrderBook, level: DataQualityLevel) -> None:
        pass

    with pytest.raises(Exception, match="block"):
        engine.add_book_callback(cb, policy="block")
    async with engine:
        with pytest.raises(SubscriptionError, match="serves no order books"):
            await engine.subscribe_symbol("BTC/USDT", data=("book",))


async def test_a_feed_going_down_marks_its_books_invalid_until_its_next_snapshot() -> None:
    """A book that stops updating must not look current: when its feed's connection is
    down the book is INVALID (callbacks told once), and the snapshot the feed sends after
    it recovers makes it valid again."""
    snapshot, deltas = capture()
    expected = unfaulted(snapshot, deltas)
    half = len(deltas) // 2
    seen: list[tuple[DataQualityLevel, bool, str]] = []

    def on_book(symbol: str, book: OrderBook, level: DataQualityLevel) -> None:
        seen.append((level, book.valid, book.invalid_reason))

    feed = DepthFeed(snapshot, deltas[:half])
    engine = DataEngine(Config(db_path=None))
    engine.add_feed(feed)
    engine.add_book_callback(on_book)
    async with engine:
        await engine.subscribe_symbol(SYMBOL, data=("book",))
        await feed.pumped.wait()
        await feed.delivered()
        feed.status = FeedStatus.DISCONNECTED  # what a streaming feed's lost session does
        engine.feed_down(feed.name, [], "connection closed")
        book = engine.get_book(SYMBOL)
        assert book is not None
        assert book.valid is False
        assert "connection closed" in book.invalid_reason
        for delta in deltas[half:]:  # after the reconnect: deltas, then a new snapshot
            await feed.emit(delta)
        await feed.emit(derived_snapshot(expected, snapshot.ts_recv))
        await feed.delivered()
        metrics = engine.get_metrics()
    assert [s for s in seen if s[0] is DataQualityLevel.INVALID] == [
        (DataQualityLevel.INVALID, False, "feed_down: connection closed")
    ]
    assert frozen_state(book) == frozen_state(expected)
    assert seen[-1][:2] == (DataQualityLevel.EXCELLENT, True)
    assert metrics["books"]["feed_down"] == 1
