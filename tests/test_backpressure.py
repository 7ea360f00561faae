"""A slow async callback never stalls the feed or the other callbacks; drops are exact."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lean_data import Config, DataEngine, DataQualityLevel
from lean_data.engine.core import INBOX_SOFT
from lean_data.errors import EngineStateError
from lean_data.loaders import load_file
from lean_data.models import MarketData

from .conftest import eventually
from .helpers import IdleFeed, ListFeed, received

FTX = Path(__file__).parent / "fixtures/nautilus_trader/btc-perp-20211231-20220201_1m.csv"


def real_bars(n: int) -> list[MarketData]:
    return received(load_file(FTX, symbol="BTC/USD:USD")[:n])


async def test_drop_oldest_counts_exactly_what_the_slow_callback_lost() -> None:
    data = real_bars(5000)
    feed = ListFeed("ftx", {"BTC/USD:USD": data})
    slow_seen: list[MarketData] = []
    fast_seen: list[MarketData] = []
    sync_seen: list[MarketData] = []

    async def slow(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
        await asyncio.sleep(0.010)  # the slow strategy being simulated, not a wait
        slow_seen.append(item)

    async def fast(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
        fast_seen.append(item)

    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        slow_sub = engine.add_data_callback(slow, policy="drop_oldest", queue_size=100)
        fast_sub = engine.add_data_callback(fast, policy="block")
        engine.add_data_callback(lambda s, d, q: sync_seen.append(d))
        assert slow_sub is not None
        assert fast_sub is not None
        await engine.subscribe_symbol("BTC/USD:USD")
        await feed.wait_pumped()  # in the inbox; the pipeline yields between slices:
        await eventually(lambda: len(sync_seen) == len(data))  # every item taken
        await fast_sub.join()
        # The feed and the fast callbacks are done while the slow one is far behind:
        assert fast_seen == data
        assert sync_seen == data
        behind = slow_sub.delivered + slow_sub.in_flight + len(slow_sub)
        assert slow_sub.dropped > 0
        assert behind + slow_sub.dropped == len(data)
    # After the stop drained its queue, what it saw plus what was dropped is everything:
    assert len(slow_seen) + slow_sub.dropped == len(data)
    order = {id(item): i for i, item in enumerate(data)}
    positions = [order[id(item)] for item in slow_seen]
    assert positions == sorted(positions)  # in order, no duplicates
    assert len(set(positions)) == len(positions)
    assert positions[-100:] == list(range(len(data) - 100, len(data)))  # newest kept
    assert engine.get_metrics()["subscribers"][0]["dropped"] == slow_sub.dropped


async def test_block_loses_nothing() -> None:
    data = real_bars(300)
    feed = ListFeed("ftx", {"BTC/USD:USD": data})
    slow_seen: list[MarketData] = []

    async def slow(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
        await asyncio.sleep(0.010)
        slow_seen.append(item)

    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        sub = engine.add_data_callback(slow, policy="block", queue_size=20)
        await engine.subscribe_symbol("BTC/USD:USD")
        await feed.wait_pumped()
    assert slow_seen == data
    assert sub is not None
    assert sub.dropped == 0


async def test_conflate_keeps_latest_per_symbol() -> None:
    a = real_bars(2000)
    feed = ListFeed("ftx", {"BTC/USD:USD": a})
    seen: list[MarketData] = []
    gate = asyncio.Event()

    async def gated(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
        await gate.wait()
        seen.append(item)

    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        sub = engine.add_data_callback(gated, policy="conflate", queue_size=4)
        assert sub is not None
        await engine.subscribe_symbol("BTC/USD:USD")
        await feed.wait_pumped()
        await eventually(lambda: engine.get_metrics()["engine"]["processed"] == len(a))
        gate.set()
    # The worker holds at most one item at the gate; everything else conflated into the
    # latest bar, which is delivered last. Nothing is unaccounted for.
    assert 1 <= len(seen) <= 2
    assert seen[-1] is a[-1]
    assert len(seen) + sub.dropped == len(a)


async def test_stop_delivers_what_a_producer_waiting_for_room_had_handed_over() -> None:
    """stop() queues its marker behind producers already waiting on a full inbox."""
    data = real_bars(8)
    feed = ListFeed("ftx", {})
    seen: list[MarketData] = []
    gate = asyncio.Event()

    async def gated(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
        await gate.wait()
        seen.append(item)

    engine = DataEngine(Config(db_path=None, inbox_size=1))
    engine.add_feed(feed)
    engine.add_data_callback(gated, policy="block", queue_size=1)
    await engine.start()
    accepted: list[MarketData] = []

    async def producer() -> None:  # not a feed task: stop() does not cancel it
        for bar in data:
            await feed.emit(bar)
            accepted.append(bar)

    task = asyncio.create_task(producer())
    # bar 0 in the callback, bar 1 in its queue, the pipeline waiting with bar 2, bar 3 in
    # the inbox, the producer waiting for room with bar 4:
    await eventually(
        lambda: len(accepted) == 4 and engine.get_metrics()["engine"]["inbox_depth"] == 1
    )
    stopping = asyncio.create_task(engine.stop())
    inbox = engine._inbox
    assert inbox is not None
    # stop() queues its marker: it must wait for room behind the producer, not jump ahead
    await eventually(lambda: len(inbox._putters) == 2, message="stop() waiting behind the producer")
    gate.set()
    await stopping
    outcome = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(outcome[0], EngineStateError)  # emitting after stop() is refused
    assert len(accepted) == 5  # the waiting producer's bar was taken in
    assert seen == accepted  # and everything taken in was delivered, in order


async def test_a_burst_never_holds_the_event_loop_until_it_is_all_processed() -> None:
    """5,000 bars queued at once: other tasks (the storage writer's round trips, sockets,
    timers) run between slices of the burst, not after the whole of it."""
    data = real_bars(5000)
    feed = IdleFeed("ftx")
    seen: list[MarketData] = []
    sampled: list[int] = []  # how many bars were delivered each time another task ran
    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(lambda s, d, q: seen.append(d))
        await engine.subscribe_symbol("BTC/USD:USD")

        async def watch() -> None:
            while len(seen) < len(data):
                sampled.append(len(seen))
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        for item in data:  # into the inbox without yielding: one burst
            await feed.emit(item)
        await engine.wait_idle()
        await watcher
    assert seen == data
    assert [n for n in sampled if 0 < n < len(data)], sampled  # it ran mid-burst


async def test_a_burst_is_processed_while_it_is_fresh_not_a_whole_inbox_later() -> None:
    """A feed reading a burst (socket reads that return at once) hands over about
    INBOX_SOFT items, then the pipeline takes its turn: the backlog stays that small, so
    items are processed while still in the CPU's caches, not after the whole capacity."""
    data = real_bars(3000)
    feed = IdleFeed("ftx")
    depths: list[int] = []  # the inbox's backlog at each delivery
    seen: list[MarketData] = []
    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        inbox = engine._inbox

        def on_data(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
            seen.append(item)
            depths.append(len(inbox))

        engine.add_data_callback(on_data)
        await engine.subscribe_symbol("BTC/USD:USD")
        for start in range(0, 1500, 3):  # reads of three items, then one at a time
            await feed.emit_many(data[start : start + 3])
        for item in data[1500:]:
            await feed.emit(item)
        await engine.wait_idle()
    assert seen == data  # all of it, in order
    assert inbox.maxsize == Config().inbox_size > 10 * INBOX_SOFT
    assert max(depths) <= INBOX_SOFT + 3, max(depths)


async def test_a_pipeline_that_cannot_run_still_lets_feeds_fill_the_whole_inbox() -> None:
    """The soft mark only lets the pipeline take a turn: when it awaits a blocked
    subscriber, a feed goes on handing over up to inbox_size, as without the mark."""
    data = real_bars(INBOX_SOFT * 3)
    feed = IdleFeed("ftx")
    release = asyncio.Event()
    seen: list[MarketData] = []

    async def blocked(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
        await release.wait()  # the strategy being simulated is stuck until released
        seen.append(item)

    capacity = INBOX_SOFT * 2
    async with DataEngine(Config(db_path=None, inbox_size=capacity)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(blocked, policy="block", queue_size=1)
        await engine.subscribe_symbol("BTC/USD:USD")
        producer = asyncio.create_task(_emit_all(feed, data))
        await eventually(lambda: len(engine._inbox) == capacity)  # past the mark, to the top
        assert not producer.done()  # full: it waits for room
        release.set()
        await producer
        await engine.wait_idle()
    assert seen == data


async def _emit_all(feed: IdleFeed, items: list[MarketData]) -> None:
    for item in items:
        await feed.emit(item)
