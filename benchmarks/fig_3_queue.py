"""Figure 3: ``emit()`` -> callback through the engine's real queue path: rate and latency.

Workload: the FTX BTC-PERP 1-minute bars of ``nautilus_trader/btc-perp-20211231-20220201_1m.csv``
(45,031 real bars, no gaps), replicated to volume with shifted timestamps so every bar is
valid and in order. A :class:`~lean_data.feeds.base.DataFeed` subclass emits pre-built
:class:`~lean_data.models.TradeBar` objects into ``DataEngine(Config(db_path=None))``:
inbox -> validate -> score -> continuity -> ring buffer -> callbacks, nothing skipped. Two
callbacks are measured, each on its own engine:

- ``async``: a coroutine callback, delivered from its own bounded subscriber queue (the
  queue path: inbox, pipeline task, subscriber queue, worker task);
- ``sync``: a plain function, called inline by the pipeline task after the inbox.

Measured, each a median over ``ctx.repeats`` (a warm-up run excluded):

- bars/s in bursts of 1,000: emit 1,000 bars back to back, wait for the 1,000th callback;
  rate = bars / time from the first ``emit`` to the last callback, over many bursts;
- latency from the ``emit`` call to the callback, p50 / p99 / p99.9 in µs, at one in flight
  (emit, wait for the callback, repeat) and at a steady 10k msg/s (a paced producer that
  yields to the loop between messages, so nothing is batched; at that pace the default
  loop cannot sleep for 100 µs, so the producer spins on ``asyncio.sleep(0)``).

Baselines, same items, same run: a bare ``asyncio.Queue`` producer -> consumer task calling
the same probe, and a direct function call. Peer, when importable: nautilus_trader's
``LiveDataEngine`` fed as its live data clients feed it (``msgbus.send("DataEngine.process",
bar)``: throttled enqueuer -> data queue -> ``_handle_bar`` -> cache -> message bus ->
``Actor.on_bar``), the same FTX bars as nautilus ``Bar`` objects.

Targets (issue 5): async bars/s >= 2x nautilus' ``LiveDataEngine`` queue rate; p99 latency at
one in flight <= nautilus' p99.

Every path (nautilus included: uvloop is its own default) is measured on asyncio's default
loop and, when uvloop is installed, on uvloop (``lean_data.run(..., loop="uvloop")``); the
default loop's rows keep their names, uvloop's rows say ``, uvloop``, and each loop's rows
are compared with the peer on the same loop.

``python benchmarks/fig_3_queue.py --profile [--uvloop]`` prints where the time of one
message goes (each pipeline step timed alone on the real objects, and a cProfile of bursts).
"""

from __future__ import annotations

import asyncio
import cProfile
import csv
import dataclasses
import functools
import gc
import io
import pstats
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script (--profile): make _common and lean_data importable
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import BarFeed, Context, Result

from lean_data import Config, DataEngine, Resolution, TradeBar
from lean_data.engine.metrics import delivery_latency_ns
from lean_data.models import MarketData, datetime_to_ns

NAME = "emit() -> callback through the engine queue"

DATA = "nautilus_trader/btc-perp-20211231-20220201_1m.csv"
SYMBOL = "BTC/USD:USD"
NT_BAR_TYPE = "BTC-PERP.FTX-1-MINUTE-LAST-EXTERNAL"
BURST = 1_000
PACED_RATE = 10_000.0
_MINUTE = 60 * 10**9
_PERCENTILES = (("p50", 0.50), ("p99", 0.99), ("p99.9", 0.999))

Row = tuple[int, str, str, str, str, str]  # open time ns, then the CSV's decimal strings


# ---------------------------------------------------------------------------- data
def load_rows(path: Path) -> list[Row]:
    """Read the FTX bars: (open time ns, open, high, low, close, volume as text)."""
    rows: list[Row] = []
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        if header[:6] != ["timestamp", "open", "high", "low", "close", "volume"]:
            raise ValueError(f"{path}: expected a timestamp,open,high,low,close,volume header")
        for stamp, o, h, lo, c, v in reader:
            rows.append((datetime_to_ns(datetime.fromisoformat(stamp)), o, h, lo, c, v))
    return rows


class Replicator:
    """Hands out the real bars in order, again and again, each copy shifted in time.

    Copy ``k`` of the file starts one minute after copy ``k - 1`` ends, so the series stays
    gap-free and strictly increasing however many bars are asked for.
    """

    def __init__(self, rows: Sequence[Row]) -> None:
        self.values = [
            (float(o), float(h), float(lo), float(c), float(v)) for _, o, h, lo, c, v in rows
        ]
        self.start = rows[0][0]
        self.next = 0

    def take(self, n: int) -> Iterator[tuple[int, tuple[float, float, float, float, float]]]:
        """Yield the next ``n`` (open time ns, OHLCV) pairs."""
        values, count = self.values, len(self.values)
        for i in range(self.next, self.next + n):
            yield self.start + i * _MINUTE, values[i % count]
        self.next += n

    def bars(self, n: int, symbol: str = SYMBOL) -> list[TradeBar]:
        """The next ``n`` bars as lean_data TradeBars (``ts_recv`` left for emit to stamp)."""
        minute = Resolution.MINUTE
        return [TradeBar(symbol, ts, *ohlcv, resolution=minute) for ts, ohlcv in self.take(n)]


# ---------------------------------------------------------------------------- probe
class Probe:
    """The callback side: counts hits, stamps them when asked, wakes the waiting producer."""

    __slots__ = ("count", "last", "loop", "stamps", "target", "waiter")

    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.last = 0
        self.stamps: list[int] | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def expect(self, n: int) -> asyncio.Future[None]:
        """Arm the probe: the returned future completes at the ``n``-th next hit."""
        assert self.loop is not None
        self.target = self.count + n
        self.waiter = waiter = self.loop.create_future()
        return waiter

    def hit(self) -> None:
        now = time.perf_counter_ns()
        self.count += 1
        stamps = self.stamps
        if stamps is not None:
            stamps.append(now)
        if self.count >= self.target:
            self.last = now
            waiter = self.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)


class Route:
    """One way of getting an item from a producer to the probe (engine, queue, call, peer).

    ``send`` is a coroutine function when ``is_async``, else a plain function.
    """

    def __init__(self, name: str, probe: Probe, send: Callable[[Any], Any], is_async: bool):
        self.name, self.probe, self.send, self.is_async = name, probe, send, is_async


async def burst_rate(path: Route, batches: Sequence[Sequence[Any]]) -> float:
    """Send each batch back to back, wait for its last hit; return items/s over all batches."""
    probe, send = path.probe, path.send
    total_ns = 0
    items = 0
    for batch in batches:
        done = probe.expect(len(batch))
        start = time.perf_counter_ns()
        if path.is_async:
            for item in batch:
                await send(item)
        else:
            for item in batch:
                send(item)
        await done
        total_ns += probe.last - start
        items += len(batch)
    return items * 1e9 / total_ns


async def one_in_flight(path: Route, items: Sequence[Any]) -> list[float]:
    """Send one item, wait for its hit, repeat; return latencies in µs."""
    probe, send = path.probe, path.send
    out: list[float] = []
    append = out.append
    for item in items:
        done = probe.expect(1)
        start = time.perf_counter_ns()
        if path.is_async:
            await send(item)
        else:
            send(item)
        await done
        append((probe.last - start) / 1000)
    return out


async def paced(path: Route, items: Sequence[Any], rate: float) -> tuple[list[float], float]:
    """Send items at ``rate`` per second; return (latencies in µs, achieved rate)."""
    probe, send = path.probe, path.send
    interval = 1e9 / rate
    sent: list[int] = []
    stamps: list[int] = []
    probe.stamps = stamps
    done = probe.expect(len(items))
    clock = time.perf_counter_ns
    begin = clock() + 1_000_000
    for i, item in enumerate(items):
        due = begin + int(i * interval)
        # the default loop cannot sleep 100 µs (epoll waits whole ms): spin, yielding to it
        while clock() < due:  # noqa: ASYNC110  # pacing, not waiting for a condition
            await asyncio.sleep(0)
        sent.append(clock())
        if path.is_async:
            await send(item)
        else:
            send(item)
    await done
    probe.stamps = None
    achieved = (len(items) - 1) * 1e9 / (sent[-1] - sent[0]) if len(items) > 1 else rate
    return [(hit - at) / 1000 for at, hit in zip(sent, stamps, strict=True)], achieved


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50, p99 and p99.9 (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    last = len(ordered) - 1
    return {name: ordered[min(last, round(q * last))] for name, q in _PERCENTILES}


# ---------------------------------------------------------------------------- lean_data
async def lean_path(kind: str, probe: Probe) -> tuple[Route, DataEngine]:
    """A started engine whose ``kind`` ("async" or "sync") callback hits ``probe``."""
    engine = DataEngine(Config(db_path=None))
    feed = BarFeed("ftx")
    engine.add_feed(feed)
    hit = probe.hit
    if kind == "async":

        async def on_data_async(symbol: str, data: MarketData, quality: Any) -> None:
            hit()

        engine.add_data_callback(on_data_async)
    else:

        def on_data(symbol: str, data: MarketData, quality: Any) -> None:
            hit()

        engine.add_data_callback(on_data)
    await engine.start()
    await engine.subscribe_symbol(SYMBOL)
    return Route(f"lean_data {kind}", probe, feed.emit, True), engine


async def queue_path(probe: Probe) -> tuple[Route, asyncio.Task[None]]:
    """The floor: a bounded asyncio.Queue and one consumer task calling the probe."""
    queue: asyncio.Queue[Any] = asyncio.Queue(10_000)
    hit = probe.hit

    async def consume() -> None:
        while True:
            await queue.get()
            hit()

    return Route("asyncio.Queue", probe, queue.put, True), asyncio.create_task(consume())


def call_path(probe: Probe) -> Route:
    """The floor of the floor: the producer calls the callback itself."""
    hit = probe.hit

    def on_data(item: Any) -> None:
        hit()

    return Route("direct call", probe, on_data, False)


# ---------------------------------------------------------------------------- nautilus
def nautilus_version() -> str | None:
    """nautilus_trader's version when it is importable, else None."""
    try:
        import nautilus_trader
    except ImportError:
        return None
    return str(getattr(nautilus_trader, "__version__", "?"))


class NautilusBars:
    """The same replicated FTX bars as nautilus ``Bar`` objects (prices kept exactly)."""

    def __init__(self, rows: Sequence[Row]) -> None:
        from nautilus_trader.model.data import BarType
        from nautilus_trader.model.objects import Price, Quantity

        self.bar_type = BarType.from_str(NT_BAR_TYPE)
        self.values = [
            (Price.from_str(o), Price.from_str(h), Price.from_str(lo), Price.from_str(c),
             Quantity.from_str(v))
            for _, o, h, lo, c, v in rows
        ]  # fmt: skip
        self.start = rows[0][0]
        self.next = 0

    def bars(self, n: int) -> list[Any]:
        from nautilus_trader.model.data import Bar

        values, count, bar_type = self.values, len(self.values), self.bar_type
        out = []
        for i in range(self.next, self.next + n):
            ts = self.start + i * _MINUTE
            out.append(Bar(bar_type, *values[i % count], ts, ts))
        self.next += n
        return out


def nautilus_path(probe: Probe, bar_type: Any) -> tuple[Route, Callable[[], None]]:
    """A started LiveDataEngine and an Actor whose ``on_bar`` hits ``probe``.

    Wired as a TradingNode wires them (message bus, cache, clock, portfolio); the actor
    subscribes to the bar topic the data engine publishes on, and items enter as a live
    data client sends them.
    """
    from nautilus_trader.cache.cache import Cache
    from nautilus_trader.common.actor import Actor
    from nautilus_trader.common.component import LiveClock, MessageBus
    from nautilus_trader.live.data_engine import LiveDataEngine
    from nautilus_trader.model.identifiers import TraderId
    from nautilus_trader.portfolio.portfolio import Portfolio

    hit = probe.hit

    class ProbeActor(Actor):  # type: ignore[misc]  # nautilus_trader ships no stubs here
        def on_bar(self, bar: Any) -> None:
            hit()

    clock = LiveClock()
    msgbus = MessageBus(TraderId("BENCH-001"), clock)
    cache = Cache()
    portfolio = Portfolio(msgbus, cache, clock)
    engine = LiveDataEngine(asyncio.get_running_loop(), msgbus, cache, clock)
    actor = ProbeActor()
    actor.register_base(portfolio, msgbus, cache, clock)
    engine.start()
    actor.start()
    msgbus.subscribe(topic=f"data.bars.{bar_type.standard()}", handler=actor.handle_bar)

    def send(bar: Any) -> None:
        msgbus.send("DataEngine.process", bar)

    def stop() -> None:
        actor.stop()
        engine.stop()

    return Route("nautilus LiveDataEngine", probe, send, False), stop


# ---------------------------------------------------------------------------- measuring
class Sizes:
    """How much work each measurement does."""

    def __init__(self, ctx: Context) -> None:
        self.bursts = ctx.scale(100, 3)
        self.in_flight = ctx.scale(20_000, 200)
        self.paced = ctx.scale(30_000, 200)
        self.warmup = ctx.scale(5_000, 100)


async def measure(
    path: Route, make: Callable[[int], list[Any]], sizes: Sizes, repeats: int, paced_too: bool
) -> dict[str, Any]:
    """Rate and latencies of one path; each figure the median over ``repeats``."""
    path.probe.loop = asyncio.get_running_loop()
    await burst_rate(path, [make(BURST) for _ in range(max(1, sizes.warmup // BURST))])
    await one_in_flight(path, make(sizes.warmup))
    rates: list[float] = []
    flight: list[dict[str, float]] = []
    steady: list[dict[str, float]] = []
    achieved: list[float] = []
    for _ in range(repeats):
        batches = [make(BURST) for _ in range(sizes.bursts)]
        gc.collect()
        rates.append(await burst_rate(path, batches))
        del batches
        items = make(sizes.in_flight)
        gc.collect()
        flight.append(percentiles(await one_in_flight(path, items)))
        del items
        if paced_too:
            items = make(sizes.paced)
            gc.collect()
            samples, rate = await paced(path, items, PACED_RATE)
            steady.append(percentiles(samples))
            achieved.append(rate)
            del items
    out: dict[str, Any] = {
        "rate": statistics.median(rates),
        "in_flight": _median_dicts(flight),
    }
    if paced_too:
        out["paced"] = _median_dicts(steady)
        out["paced_rate"] = statistics.median(achieved)
    return out


def _median_dicts(dicts: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(d[key] for d in dicts) for key in dicts[0]}


async def _measure_lean(kind: str, rows: Sequence[Row], sizes: Sizes, repeats: int) -> Any:
    probe = Probe()
    path, engine = await lean_path(kind, probe)
    source = Replicator(rows)
    try:
        result = await measure(path, source.bars, sizes, repeats, paced_too=True)
        metrics = engine.get_metrics()["engine"]
        result["invalid"] = metrics["invalid"]
        result["processed"] = metrics["processed"]
    finally:
        await engine.stop()
    result["delivered"] = probe.count
    return result


async def _measure_queue(rows: Sequence[Row], sizes: Sizes, repeats: int) -> Any:
    probe = Probe()
    path, task = await queue_path(probe)
    try:
        return await measure(path, Replicator(rows).bars, sizes, repeats, paced_too=True)
    finally:
        task.cancel()


async def _measure_call(rows: Sequence[Row], sizes: Sizes, repeats: int) -> Any:
    probe = Probe()
    return await measure(call_path(probe), Replicator(rows).bars, sizes, repeats, False)


async def _measure_nautilus(rows: Sequence[Row], sizes: Sizes, repeats: int) -> Any:
    source = NautilusBars(rows)
    probe = Probe()
    path, stop = nautilus_path(probe, source.bar_type)
    try:
        return await measure(path, source.bars, sizes, repeats, paced_too=True)
    finally:
        stop()
        await asyncio.sleep(0)  # let its queue tasks see their sentinels


def loops() -> list[str]:
    """The loops figure 3 runs on: asyncio's default, then uvloop when it is installed."""
    from lean_data.engine.runner import uvloop_version

    return ["asyncio"] if uvloop_version() is None else ["asyncio", "uvloop"]


def _run(coro: Awaitable[Any], loop: str = "asyncio") -> Any:
    from lean_data.engine.runner import run as run_on

    return run_on(coro, loop=loop)  # type: ignore[arg-type]  # a coroutine object


def run(ctx: Context) -> list[Result]:
    """Measure figure 3 on each loop (asyncio's default, uvloop) and return its result rows.

    Each repeat measures every path (nautilus, queue, call, lean_data async and sync) on
    every loop in turn, each on a fresh loop with its own warm-up; a figure is the median
    over the repeats. So a noisy spell of the shared machine falls on every path and loop
    alike instead of on whichever was measured during it.
    """
    rows = load_rows(ctx.require_data(DATA))
    sizes = Sizes(ctx)
    names = loops()
    version = nautilus_version()
    measures: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
    if version is not None:
        measures.append(("nautilus", functools.partial(_measure_nautilus, rows, sizes, 1)))
    measures.append(("queue", functools.partial(_measure_queue, rows, sizes, 1)))
    measures.append(("call", functools.partial(_measure_call, rows, sizes, 1)))
    for kind in ("async", "sync"):
        measures.append((kind, functools.partial(_measure_lean, kind, rows, sizes, 1)))
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        loop: {key: [] for key, _ in measures} for loop in names
    }
    for _ in range(ctx.repeats):
        for key, make in measures:
            for loop in names:
                runs[loop][key].append(_run(make(), loop))
    out: list[Result] = []
    for loop in names:
        found = {key: _median_runs(got) for key, got in runs[loop].items()}
        out.extend(results(found, version, len(rows), judge=not ctx.quick, loop=loop))
    return out


_TOTALS = frozenset({"delivered", "processed", "invalid"})


def _median_runs(got: list[dict[str, Any]]) -> dict[str, Any]:
    """One path's measurements over repeats: medians, per percentile; counts summed."""
    out: dict[str, Any] = {}
    for key, value in got[0].items():
        if isinstance(value, dict):
            out[key] = _median_dicts([g[key] for g in got])
        elif key in _TOTALS:
            out[key] = sum(g[key] for g in got)
        else:
            out[key] = statistics.median(g[key] for g in got)
    return out


def results(
    found: dict[str, Any],
    version: str | None,
    nrows: int,
    *,
    judge: bool = True,
    loop: str = "asyncio",
) -> list[Result]:
    """Turn the measurements of one loop into result rows.

    The issue's targets are judged (unless ``judge`` is False: quick runs) on the async
    callback, the queue path, against nautilus on the same loop; without nautilus the rows
    compare with the bare asyncio.Queue and are not judged. The sync callback's rows are for
    information. The default loop's rows keep their names (``3 emit->async callback``);
    uvloop's say so (``3 emit->async callback, uvloop``), as do their baselines.
    """
    on = "" if loop == "asyncio" else f", {loop}"
    peer = found.get("nautilus")
    queue, call = found["queue"], found["call"]
    if peer is not None:
        base, base_name = peer, f"nautilus {version} LiveDataEngine{on}"
    else:
        base, base_name = queue, f"bare asyncio.Queue{on}"
    data = f"FTX BTC-PERP 1m bars ({nrows:,} real, replicated with shifted times)"
    absent = "" if peer is not None else "; nautilus_trader absent: peer not measured"
    extra = {
        "asyncio.Queue": queue, "direct call": call, "nautilus": peer, "version": version,
        "loop": loop,
    }  # fmt: skip
    out: list[Result] = []
    for kind in ("async", "sync"):
        mine = found[kind]
        figure = f"3 emit->{kind} callback{on}"
        judged = judge and kind == "async" and peer is not None
        rate_target = ">= 2x nautilus LiveDataEngine queue rate" if kind == "async" else ""
        out.append(
            Result(
                figure, "bars/s (bursts of 1k)", mine["rate"], base_name, base["rate"],
                target=rate_target, met=mine["rate"] >= 2 * base["rate"] if judged else None,
                notes=f"{data}; {mine['delivered']:,} delivered, {mine['invalid']} invalid"
                f"{absent}",
                extra={"lean_data": mine, **extra},
            )
        )  # fmt: skip
        floor, floor_name = (
            (queue, f"bare asyncio.Queue{on}") if kind == "async" else (call, "direct call")
        )
        if peer is not None or kind == "sync":
            out.append(
                Result(figure, "bars/s (bursts of 1k)", mine["rate"], floor_name, floor["rate"])
            )
        for mode, label in (("in_flight", "1 in flight"), ("paced", "10k msg/s")):
            for name, _ in _PERCENTILES:
                p99_target = name == "p99" and mode == "in_flight" and kind == "async"
                floors = f"asyncio.Queue {queue[mode][name]:.1f}"
                if mode == "in_flight":
                    floors += f", direct call {call[mode][name]:.2f}"
                if mode == "paced" and name == "p50":
                    floors += f"; achieved {mine['paced_rate']:,.0f} msg/s"
                out.append(
                    Result(
                        figure, f"latency {name} us, {label}", mine[mode][name],
                        base_name, base[mode][name], higher_is_better=False,
                        target="p99 <= nautilus p99" if p99_target else "",
                        met=mine[mode][name] <= base[mode][name] if p99_target and judged else None,
                        notes=f"floor: {floors}",
                    )
                )  # fmt: skip
    return out


# ---------------------------------------------------------------------------- profile
def _per_item_us(fn: Callable[[Any], Any], items: Sequence[Any]) -> float:
    """µs per call of ``fn`` over ``items``, net of the loop and call overhead.

    The first tenth of ``items`` warms the step up (first-use allocations) and is not timed.
    """

    def empty(item: Any) -> None:
        return None

    warm, timed = items[: len(items) // 10], items[len(items) // 10 :]
    for item in warm:
        fn(item)
    per = []
    for f in (fn, empty):
        gc.collect()
        start = time.perf_counter_ns()
        for item in timed:
            f(item)
        per.append((time.perf_counter_ns() - start) / len(timed) / 1000)
    return max(0.0, per[0] - per[1])


def step_costs(rows: Sequence[Row], n: int) -> list[tuple[str, float]]:
    """Each step of the pipeline timed alone on the engine's own objects, µs per bar.

    Every step gets a fresh engine and fresh in-order bars, so its state is the steady
    state of a running series (clean bars, the continuity fast path, a full-ish buffer).
    """
    from lean_data.engine.subscribers import Subscriber
    from lean_data.quality.levels import CLEAN, DataQualityLevel

    def fresh() -> tuple[DataEngine, list[TradeBar]]:
        now = time.time_ns()
        bars = [dataclasses.replace(bar, ts_recv=now) for bar in Replicator(rows).bars(n)]
        return DataEngine(Config(db_path=None)), bars

    out: list[tuple[str, float]] = []
    engine, bars = fresh()
    out.append(
        ("validator.check", _per_item_us(lambda b: engine.validator.check(b, feed="ftx"), bars))
    )
    engine, bars = fresh()
    admit = getattr(engine.continuity, "admit_fast", engine.continuity.admit)
    out.append(("continuity.admit_fast", _per_item_us(lambda b: admit("ftx", b), bars)))
    engine, bars = fresh()
    from lean_data.series.buffer import DataBuffer

    buffer: DataBuffer[TradeBar] = DataBuffer(engine.config.buffer_size)
    out.append(("DataBuffer.add", _per_item_us(buffer.add, bars)))
    record = engine.quality.record
    out.append(
        (
            "QualityTracker.record",
            _per_item_us(lambda b: record("ftx", b.symbol, b, CLEAN, 1000), bars),
        )
    )
    metrics = engine.metrics
    out.append(
        (
            "metrics.increment_messages",
            _per_item_us(lambda b: metrics.increment_messages(feed="ftx"), bars),
        )
    )
    out.append(
        (
            "metrics.record_latency_ns",
            _per_item_us(lambda b: metrics.record_latency_ns(1000, feed="ftx"), bars),
        )
    )
    out.append(
        (
            "metrics.record_quality",
            _per_item_us(lambda b: metrics.record_quality(1.0, feed="ftx"), bars),
        )
    )
    out.append(
        (
            "delivery_latency_ns (a replay)",
            _per_item_us(lambda b: delivery_latency_ns(False, b), bars),
        )
    )
    out.append(
        (
            "delivery_latency_ns (a live feed)",
            _per_item_us(lambda b: delivery_latency_ns(True, b), bars),
        )
    )

    async def offers() -> float:
        async def cb(symbol: str, data: MarketData, quality: Any) -> None:
            return None

        sub = Subscriber(cb, engine.config.overflow_policy, len(bars) + 1, lambda *a: None)
        level = DataQualityLevel.EXCELLENT
        return _per_item_us(lambda b: sub.offer(b.symbol, b, level), bars)

    out.append(("Subscriber.offer (no wake-up)", asyncio.run(offers())))
    stamp: dict[str, int] = {}
    out.append(
        (
            "emit bookkeeping (time_ns, dict, counters)",
            _per_item_us(lambda b: stamp.__setitem__(b.symbol, time.time_ns()), bars),
        )
    )
    return out  # fmt: skip


async def _profiled_bursts(kind: str, rows: Sequence[Row], bursts: int) -> list[str]:
    probe = Probe()
    probe.loop = asyncio.get_running_loop()
    path, engine = await lean_path(kind, probe)
    source = Replicator(rows)
    await burst_rate(path, [source.bars(BURST) for _ in range(5)])  # warm-up
    batches = [source.bars(BURST) for _ in range(bursts)]
    profiler = cProfile.Profile()
    profiler.enable()
    await burst_rate(path, batches)
    profiler.disable()
    await engine.stop()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(20)
    total = bursts * BURST
    lines = [f"cProfile, {kind} callback, {total:,} bars: own time per bar (cProfile inflates)"]
    for line in text.getvalue().splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1].replace(".", "", 1).isdigit():
            per = float(parts[1]) * 1e6 / total
            lines.append(f"  {per:7.3f} us/bar  {parts[0]:>12} calls  {' '.join(parts[5:])}")
    return lines


def profile_report(ctx: Context, loop: str = "asyncio") -> str:
    """Where one message's time goes on the engine's queue path (text), on ``loop``."""
    rows = load_rows(ctx.require_data(DATA))
    n = ctx.scale(100_000, 2_000)
    lines = ["steps timed alone (us per bar, net of loop overhead):"]
    for name, us in step_costs(rows, n):
        lines.append(f"  {us:7.3f}  {name}")
    sizes = Sizes(ctx)
    for kind in ("async", "sync"):
        got = _run(_measure_lean(kind, rows, sizes, 1), loop)
        lines.append(
            f"end to end, {kind} callback: {1e6 / got['rate']:.3f} us per bar in bursts of 1k;"
            f" one in flight p50 {got['in_flight']['p50']:.1f} us,"
            f" p99 {got['in_flight']['p99']:.1f} us"
        )
    queue = _run(_measure_queue(rows, sizes, 1), loop)
    lines.append(f"bare asyncio.Queue: {1e6 / queue['rate']:.3f} us per item")
    for kind in ("async", "sync"):
        lines.extend(_run(_profiled_bursts(kind, rows, ctx.scale(200, 5)), loop))
    return "\n".join(lines)


if __name__ == "__main__":
    if "--profile" in sys.argv:
        loop = "uvloop" if "--uvloop" in sys.argv else "asyncio"
        print(profile_report(Context(quick="--quick" in sys.argv), loop))
