"""An idle async subscriber starts its callback at once; its worker finishes what waits.

What must hold whichever path an item takes: every item is called back once, in order;
an error before or after the callback's first wait is counted and reported; a callback
still waiting at stop is cancelled, not abandoned.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from lean_data import Config, DataEngine, DataQualityLevel
from lean_data.config import OverflowPolicy
from lean_data.engine.subscriber import Subscriber
from lean_data.loaders import load_file
from lean_data.models import MarketData

from .conftest import eventually
from .helpers import ListFeed, received

FTX = Path(__file__).parent / "fixtures/nautilus_trader/btc-perp-20211231-20220201_1m.csv"
GOOD = DataQualityLevel.GOOD


def real_bars(n: int) -> list[MarketData]:
    return received(load_file(FTX, symbol="BTC/USD:USD")[:n])


class Errors:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, subscriber: Subscriber, symbol: str, exc: BaseException) -> None:
        self.seen.append((symbol, repr(exc)))


async def parked(subscriber: Subscriber) -> asyncio.Task[None]:
    """Start the subscriber's worker and return once it waits for items."""
    task = asyncio.create_task(subscriber.run())
    await eventually(lambda: subscriber._parked)
    return task


async def test_a_callback_that_does_not_wait_runs_inside_offer() -> None:
    bars = real_bars(3)
    seen: list[MarketData] = []

    async def callback(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
        seen.append(item)

    subscriber = Subscriber(callback, OverflowPolicy.BLOCK, 10, Errors())
    task = await parked(subscriber)
    for n, bar in enumerate(bars, 1):
        assert subscriber.offer(bar.symbol, bar, GOOD)
        assert seen == bars[:n]  # called back before offer() returned: no task switch
        assert subscriber.delivered == n
        assert subscriber.in_flight == 0
        assert len(subscriber) == 0
    subscriber.close()
    await task


async def test_a_callback_that_waits_is_finished_by_the_worker_before_what_came_after() -> None:
    bars = real_bars(6)
    seen: list[MarketData] = []
    gate = asyncio.Event()

    async def callback(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
        if item is bars[0]:
            await gate.wait()  # the first item waits; the others queue behind it
        seen.append(item)

    subscriber = Subscriber(callback, OverflowPolicy.BLOCK, 10, Errors())
    task = await parked(subscriber)
    for bar in bars:
        assert subscriber.offer(bar.symbol, bar, GOOD)
    assert seen == []
    assert subscriber.in_flight == 1
    assert len(subscriber) == 5
    await asyncio.sleep(0)  # the worker may run: it still waits for the gate
    assert seen == []
    assert subscriber.in_flight == 1
    gate.set()
    await subscriber.join()
    assert seen == bars
    assert subscriber.delivered == 6
    assert subscriber.in_flight == 0
    # idle again: the next item starts at once
    assert subscriber.offer(bars[0].symbol, bars[1], GOOD)
    assert seen[-1] is bars[1]
    subscriber.close()
    await task


async def test_errors_before_and_after_the_first_wait_are_counted_and_reported() -> None:
    bars = real_bars(4)
    seen: list[MarketData] = []
    errors = Errors()

    async def callback(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
        if item is bars[0]:
            raise ValueError("before any wait")
        if item is bars[1]:
            await asyncio.sleep(0)
            raise KeyError("after a wait")
        if item is bars[2]:
            raise asyncio.CancelledError  # raised by the callback itself: an error
        seen.append(item)

    subscriber = Subscriber(callback, OverflowPolicy.BLOCK, 10, errors)
    task = await parked(subscriber)
    for bar in bars:
        assert subscriber.offer(bar.symbol, bar, GOOD)
    await subscriber.join()
    assert seen == bars[3:]
    assert subscriber.errors == 3
    assert subscriber.delivered == 4
    assert [symbol for symbol, _ in errors.seen] == ["BTC/USD:USD"] * 3
    assert "before any wait" in errors.seen[0][1]
    assert "after a wait" in errors.seen[1][1]
    assert "CancelledError" in errors.seen[2][1]
    assert not task.done()  # the worker goes on
    subscriber.close()
    await task


async def test_an_item_offered_while_its_callback_runs_is_queued_not_nested() -> None:
    bars = real_bars(3)
    seen: list[MarketData] = []

    async def callback(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
        if item is bars[0]:
            assert subscriber.offer(symbol, bars[1], quality)  # e.g. from a nested emit
        seen.append(item)

    subscriber = Subscriber(callback, OverflowPolicy.BLOCK, 10, Errors())
    task = await parked(subscriber)
    assert subscriber.offer(bars[0].symbol, bars[0], GOOD)
    assert seen == [bars[0]]
    assert len(subscriber) == 1
    await subscriber.join()
    assert seen == bars[:2]
    subscriber.close()
    await task


async def _started_forever(cleaned: list[str]) -> tuple[Subscriber, asyncio.Task[None]]:
    """A parked subscriber offered one bar whose callback waits forever; its ``finally``
    appends the symbol to ``cleaned``."""
    bar = real_bars(1)[0]
    forever = asyncio.Event()

    async def stuck(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
        try:
            await forever.wait()
        finally:
            cleaned.append(symbol)

    subscriber = Subscriber(stuck, OverflowPolicy.BLOCK, 10, Errors())
    task = await parked(subscriber)
    assert subscriber.offer(bar.symbol, bar, GOOD)
    return subscriber, task


async def test_a_callback_waiting_at_stop_is_cancelled_and_its_cleanup_runs() -> None:
    cleaned: list[str] = []
    subscriber, task = await _started_forever(cleaned)
    await eventually(lambda: subscriber._started is None)  # the worker awaits it now
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert cleaned == ["BTC/USD:USD"]


async def test_a_callback_started_but_not_yet_taken_at_stop_is_closed_at_once() -> None:
    cleaned: list[str] = []
    _, task = await _started_forever(cleaned)
    task.cancel()  # before the worker ran again: it never took the started callback
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert cleaned == ["BTC/USD:USD"]  # closed by the worker, not left to the collector


async def test_real_bars_reach_async_callbacks_in_order_whether_they_wait_or_not() -> None:
    data = real_bars(3000)
    feed = ListFeed("ftx", {"BTC/USD:USD": data})
    waits: list[MarketData] = []
    never: list[MarketData] = []

    async def sometimes(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
        if len(waits) % 7 == 0:
            await asyncio.sleep(0)  # every seventh item suspends once
        waits.append(item)

    async def at_once(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
        never.append(item)

    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        first = engine.add_data_callback(sometimes, policy="block")
        second = engine.add_data_callback(at_once, policy="block")
        assert first is not None
        assert second is not None
        await engine.subscribe_symbol("BTC/USD:USD")
        await feed.wait_pumped()
        await eventually(lambda: len(never) == len(data))
        await first.join()
        assert waits == data
        assert never == data
        assert first.delivered == second.delivered == len(data)
        assert first.errors == second.errors == 0


async def test_a_callback_removing_itself_mid_item_makes_no_other_callback_miss_it() -> None:
    """Callbacks change the lists the pipeline is calling back from: the one that removed
    itself stops, the others still get every item (none skipped for the item at hand)."""
    data = real_bars(200)
    feed = ListFeed("ftx", {"BTC/USD:USD": data})
    after_sync: list[MarketData] = []
    after_async: list[MarketData] = []
    quitters: list[str] = []

    async with DataEngine(Config(db_path=None)) as engine:

        def sync_quitter(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
            if item is data[50]:
                quitters.append("sync")
                assert engine.remove_data_callback(sync_quitter)

        async def async_quitter(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
            if item is data[100]:  # before any wait: called back from the pipeline itself
                quitters.append("async")
                assert engine.remove_data_callback(async_quitter)

        async def later_async(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
            after_async.append(item)

        engine.add_feed(feed)
        engine.add_data_callback(sync_quitter)
        engine.add_data_callback(lambda s, d, q: after_sync.append(d))
        engine.add_data_callback(async_quitter, policy="block")
        last = engine.add_data_callback(later_async, policy="block")
        assert last is not None
        await engine.subscribe_symbol("BTC/USD:USD")
        await feed.wait_pumped()
        await eventually(lambda: len(after_sync) == len(data))
        await last.join()
    assert quitters == ["sync", "async"]
    assert after_sync == data
    assert after_async == data
