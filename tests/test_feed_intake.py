"""The hand-over: DataFeed's compiled base (emit, emit_many, counters) and the engine's door.

``lean_data.feeds.intake.FeedIntake`` and ``lean_data.engine.intake.Intake`` are compiled
with the hot path; these tests run on both builds (tests/conftest.py marks them compiled).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest

from lean_data import Config, DataEngine, TradeBar
from lean_data.book import OrderBookSnapshot
from lean_data.engine.state import EngineState
from lean_data.errors import EngineStateError
from lean_data.feeds.base import DataFeed, Emitted
from lean_data.models import Resolution, Tick, TickType
from tests.helpers import IdleFeed

_MIN = 60_000_000_000
_T0 = 1_700_000_040_000_000_000  # a whole minute


def _bar(i: int, ts_recv: int = 0) -> TradeBar:
    return TradeBar(
        "BTC/USDT", _T0 + i * _MIN, 100.0, 101.0, 99.0, 100.5, 2.0,
        resolution=Resolution.MINUTE, ts_recv=ts_recv,
    )  # fmt: skip


class Sink:
    """A FeedSink double: refuses offers while ``full``, then takes what is awaited."""

    def __init__(self, full: bool = False) -> None:
        self.full = full
        self.offered: list[Any] = []
        self.accepted: list[Any] = []

    def offer(self, feed: str, item: Emitted) -> bool:
        if self.full:
            return False
        self.offered.append((feed, item))
        return True

    async def accept(self, feed: str, item: Emitted) -> None:
        self.accepted.append((feed, item))

    def offer_many(self, feed: str, items: Sequence[Emitted]) -> bool:
        if self.full:
            return False
        self.offered.append((feed, list(items)))
        return True

    async def accept_many(self, feed: str, items: Sequence[Emitted]) -> None:
        self.accepted.append((feed, list(items)))


def test_a_feed_missing_an_abstract_method_cannot_be_made() -> None:
    class Half(DataFeed):
        async def connect(self) -> bool:
            return True

    with pytest.raises(TypeError, match="abstract class Half with abstract methods disconnect"):
        Half("half")  # type: ignore[abstract]
    with pytest.raises(TypeError, match="abstract class DataFeed"):
        DataFeed("base")  # type: ignore[abstract]


async def test_emit_stamps_a_missing_receive_time_counts_and_offers() -> None:
    feed, sink = IdleFeed("f"), Sink()
    feed.attach(sink)  # type: ignore[arg-type]  # a double of the engine
    bar = _bar(0)
    await feed.emit(bar)
    ((name, handed),) = sink.offered
    assert name == "f"
    assert handed is not bar
    assert handed.ts_recv > 0
    assert bar.ts_recv == 0
    assert handed == bar.with_ts_recv(handed.ts_recv)
    assert feed.messages_emitted == 1
    assert feed.last_seen == {"BTC/USDT": handed.ts_recv}
    assert feed.last_message_ns == handed.ts_recv
    stamped = _bar(1, ts_recv=_T0)
    await feed.emit(stamped)
    assert sink.offered[1][1] is stamped  # a receive time the feed set is kept
    assert feed.messages_emitted == 2


async def test_emit_waits_through_accept_when_the_offer_is_refused() -> None:
    feed, sink = IdleFeed("f"), Sink(full=True)
    feed.attach(sink)  # type: ignore[arg-type]
    tick = Tick("BTC/USDT", _T0, 100.0, 1.0, TickType.TRADE, ts_recv=_T0)
    await feed.emit(tick)
    assert sink.accepted == [("f", tick)]
    assert not sink.offered
    await feed.emit_many([_bar(0, _T0), _bar(1, _T0)])
    assert sink.accepted[1] == ("f", [_bar(0, _T0), _bar(1, _T0)])
    assert feed.messages_emitted == 3


class OneAtATimeSink:
    """A FeedSink double with no batch door (offer and accept only), as some tests use."""

    def __init__(self) -> None:
        self.offered: list[Any] = []

    def offer(self, feed: str, item: Emitted) -> bool:
        self.offered.append((feed, item))
        return True

    async def accept(self, feed: str, item: Emitted) -> None:
        raise AssertionError("the offer is never refused here")


async def test_a_sink_without_offer_many_attaches_and_takes_emits() -> None:
    feed, sink = IdleFeed("f"), OneAtATimeSink()
    feed.attach(sink)  # type: ignore[arg-type]  # no offer_many to bind
    tick = Tick("BTC/USDT", _T0, 100.0, 1.0, TickType.TRADE, ts_recv=_T0)
    await feed.emit(tick)
    assert sink.offered == [("f", tick)]
    with pytest.raises(AttributeError, match="offer_many"):  # asked for by name, as before
        await feed.emit_many([tick])
    feed.attach(None)
    with pytest.raises(EngineStateError, match="not attached"):
        await feed.emit(tick)


async def test_attach_binds_the_sinks_offer_many_and_a_new_sink_replaces_it() -> None:
    feed, first, second = IdleFeed("f"), Sink(), Sink()
    feed.attach(first)  # type: ignore[arg-type]
    await feed.emit_many([_bar(0, _T0), _bar(1, _T0)])
    feed.attach(None)
    feed.attach(second)  # type: ignore[arg-type]
    await feed.emit_many([_bar(2, _T0), _bar(3, _T0)])
    assert first.offered == [("f", [_bar(0, _T0), _bar(1, _T0)])]
    assert second.offered == [("f", [_bar(2, _T0), _bar(3, _T0)])]


async def test_an_engine_sinks_intake_takes_the_hand_over_and_a_double_does_not() -> None:
    from lean_data.feeds.intake import hand_over

    engine, feed = DataEngine(Config(db_path=None)), IdleFeed("f")
    feed.attach(engine)
    assert feed._intake is engine._intake  # its door: hand_over calls it natively
    await engine.start()
    try:
        assert hand_over(feed, [_bar(0, _T0), _bar(1, _T0)], _T0) is None  # taken
        assert engine.get_metrics()["engine"]["accepted"] == 2
    finally:
        await engine.stop()
    with pytest.raises(EngineStateError, match="the engine is closed"):  # the Intake's door
        hand_over(feed, [_bar(2, _T0)], _T0)
    feed.attach(None)
    assert feed._intake is None
    double = Sink()
    feed.attach(double)  # type: ignore[arg-type]
    assert feed._intake is None  # a double's offer_many, by its bound method
    assert hand_over(feed, [_bar(3, _T0)], _T0) is None
    assert double.offered == [("f", [_bar(3, _T0)])]


async def test_emit_many_stamps_only_what_lacks_a_time_and_refuses_non_models_whole() -> None:
    feed, sink = IdleFeed("f"), Sink()
    feed.attach(sink)  # type: ignore[arg-type]
    items = [_bar(0, ts_recv=_T0), _bar(1)]
    await feed.emit_many(items)
    ((_, handed),) = sink.offered
    assert handed[0] is items[0]
    assert handed[1].ts_recv > 0
    assert items[1].ts_recv == 0
    await feed.emit_many([])  # nothing to hand over: no offer
    assert len(sink.offered) == 1
    assert feed.messages_emitted == 2
    with pytest.raises(
        TypeError, match=r"emit_many\(\) takes TradeBars, QuoteBars or Ticks, got dict"
    ):
        await feed.emit_many([_bar(2, _T0), {"close": 1.0}])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"emit\(\) takes a TradeBar, QuoteBar or Tick, got int"):
        await feed.emit(5)  # type: ignore[arg-type]
    assert len(sink.offered) == 1
    assert feed.messages_emitted == 2


async def test_emit_without_an_engine_says_so() -> None:
    feed = IdleFeed("lonely")
    with pytest.raises(EngineStateError, match="feed 'lonely' is not attached"):
        await feed.emit(_bar(0))
    with pytest.raises(EngineStateError, match="feed 'lonely' is not attached"):
        await feed.emit_many([_bar(0)])


async def test_the_engine_state_lives_in_its_intake_and_guards_the_door() -> None:
    engine = DataEngine(Config(db_path=None))
    assert engine.state is EngineState.NEW
    assert not engine.running
    with pytest.raises(EngineStateError, match="the engine is new; it accepts no data"):
        engine.offer("f", _bar(0, _T0))
    await engine.start()
    try:
        assert engine.state is EngineState.RUNNING
        assert engine.running
        assert engine.offer("f", _bar(0, _T0))
        assert engine.offer_many("f", [_bar(1, _T0), _bar(2, _T0)])
        book = OrderBookSnapshot("BTC/USDT", ((100.0, 1.0),), ((101.0, 1.0),), 1, _T0, _T0)
        assert not engine.offer_many("f", [_bar(3, _T0), book])  # books go one by one
        assert engine.offer("f", book)  # to the books' own queue
        assert engine.get_metrics()["engine"]["accepted"] == 4
    finally:
        await engine.stop()
    assert engine.state is EngineState.CLOSED
    with pytest.raises(EngineStateError, match="the engine is closed; it accepts no data"):
        engine.offer_many("f", [_bar(4, _T0)])


def test_hand_over_is_emit_many_short_of_waiting() -> None:
    """The read loop's call (no coroutine a read): taken → None; no room → the stamped items
    for accept_many, counted once; no items → None; no engine → EngineStateError."""
    from lean_data.feeds.intake import hand_over

    feed = IdleFeed("f")
    with pytest.raises(EngineStateError, match="not attached"):
        hand_over(feed, [_bar(0)], 1)
    sink = Sink()
    feed.attach(sink)  # type: ignore[arg-type]
    assert hand_over(feed, [], 1) is None
    kept = _bar(1, ts_recv=5)
    assert hand_over(feed, [kept], 1) is None
    assert sink.offered == [("f", [kept])]
    sink.full = True
    now = time.time_ns()  # the read's receipt time
    waiting = hand_over(feed, [_bar(2), kept], now)
    assert waiting is not None
    assert waiting[0].ts_recv == now  # stamped: the copy the engine gets
    assert waiting[1] is kept
    assert feed.messages_emitted == 3
    assert feed.last_seen["BTC/USDT"] == feed.last_message_ns == waiting[0].ts_recv
    with pytest.raises(TypeError, match="emit_many\\(\\) takes"):
        hand_over(feed, [object()], 1)  # type: ignore[list-item]


def test_hand_over_sees_every_symbol_of_a_mixed_read_whatever_its_order() -> None:
    """The leading plain items go through ``mark_seen`` (C, compiled) and the rest through the
    loop: every symbol is seen at the read's time, only items without a receive time are
    stamped, and the order of the kinds does not matter."""
    from lean_data.models import QuoteBar

    class MyBar(TradeBar):  # a subclass: read by getattr, never by its slots
        pass

    def tick(symbol: str, ts_recv: int) -> Tick:
        return Tick(symbol, _T0, 1.0, 2.0, TickType.TRADE, ts_recv=ts_recv)

    quote = QuoteBar("Q", _T0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 1.0, ts_recv=7)
    mine = MyBar("M", _T0, 1.0, 1.0, 1.0, 1.0, 1.0, ts_recv=9)
    reads = [
        [tick("A", 5), _bar(0, ts_recv=6), tick("B", 0), tick("C", 8)],
        [quote, tick("A", 5), mine, tick("D", 2**70)],
        [tick("E", 3), tick("F", 4)],
    ]
    for items in reads:
        feed, sink = IdleFeed("f"), Sink()
        feed.attach(sink)  # type: ignore[arg-type]
        from lean_data.feeds.intake import hand_over

        now = time.time_ns()  # the read's receipt time
        assert hand_over(feed, items, now) is None
        ((_, handed),) = sink.offered
        assert feed.last_message_ns == now
        assert feed.last_seen == {item.symbol: now for item in items}
        for got, given in zip(handed, items, strict=True):
            if given.ts_recv:
                assert got is given
            else:
                assert got.ts_recv == now
                assert got.symbol == given.symbol


def test_the_c_mark_seen_takes_the_plain_leading_items_only() -> None:
    from lean_data.feeds import intake

    if intake._MARK_SEEN is intake._mark_seen:
        pytest.skip("mark_seen is built with the compiled package")
    mark = intake._MARK_SEEN
    readers = intake._RECEIPTS
    seen: dict[str, int] = {}
    items: list[Any] = [
        _bar(0, ts_recv=6),
        Tick("A", _T0, 1.0, 2.0, ts_recv=1),
        _bar(1),
        _bar(2, 6),
    ]
    assert mark(items, seen, 42, readers) == 2  # stops at the bar to be stamped
    assert seen == {"BTC/USDT": 42, "A": 42}
    assert mark((items[0],), {}, 42, readers) == 0  # not a list: the loop takes them
    assert mark([], seen, 1, readers) == 0
    assert mark([object(), items[0]], seen, 1, readers) == 0
    odd = TradeBar(b"X", _T0, 1.0, 1.0, 1.0, 1.0, 1.0, ts_recv=3)  # type: ignore[arg-type]
    assert mark([items[0], odd], seen, 2, readers) == 1  # a symbol that is no str
    assert mark([items[0]], seen, 3, (intake._BAR_RECEIPT,)) == 1
    with pytest.raises(TypeError, match="readers are Slots of two fields"):
        mark(items, seen, 1, (len,))
    with pytest.raises(TypeError, match="mark_seen"):
        mark(items, [], 1, readers)
