"""Figure 11: the NATS JetStream bus: publish rate through the engine; emit -> callback latency.

Workload: the real FTX BTC-PERP 1-minute bars of ``nautilus_trader/btc-perp-20211231-
20220201_1m.csv`` (45,031 bars; ``--quick``: the first 300), receive times stamped before
the clock starts. NATS at ``LEAN_DATA_BENCH_NATS_URL`` (default ``nats://127.0.0.1:4222``);
every measurement uses its own subject prefix and stream (file storage, the publisher's
defaults), deleted afterwards.

(a) Publish rate, messages/s, median of ``--repeats`` interleaved runs (a small warm-up of
each path excluded):

- engine: ``DataEngine(Config(db_path=None))`` fed by ``_common.BarFeed`` with a
  ``BusPublisher`` sink (``max_pending=1000``): inbox -> validate -> continuity -> buffer ->
  sink -> encode -> publish with a ``Nats-Msg-Id`` (acks matched on one reply inbox).
  Timed from the first ``emit`` until the publisher counted an ack for every bar (polled
  every millisecond); the stream must then hold exactly the bars sent.
- baseline, raw nats-py: the same messages encoded beforehand (subject, msgpack payload and
  message id built before the clock starts), ``js.publish_async`` one after the other with
  the same pending limit (``publish_async_max_pending=1000``), then
  ``publish_async_completed()`` (every ack in). Same server, same stream settings.

Target: engine >= 0.7x raw.

(b) End-to-end latency, collector ``emit`` -> consumer callback, p50 and p99 in ms: a
collector engine (BarFeed + BusPublisher) and a consumer engine (``BusFeed``, one durable
pull consumer, a sync callback) run **in the same process and event loop** (so both share
one core of the loop: a conservative setting; in separate processes each has its own). The
collector emits 3,000 bars (``--quick``: 200) paced at 1,000 bars/s, in bursts of 10 every
10 ms; latency is ``time.time_ns()`` in the consumer's callback minus the receive time the
collector's ``emit`` stamped (carried in the message). Measured once (the pacing makes it
take 3 s); no target, reported for the record.

When NATS cannot be reached (or nats-py is not installed) the figure is skipped with one
line saying so.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

from _common import BarFeed, Context, DataMissing, Result

from lean_data import Config, DataEngine
from lean_data.loaders import load_file
from lean_data.models import MarketData, TradeBar, with_ts_recv
from lean_data.quality.levels import CLEAN, DataQualityLevel

try:  # the nats extra; without it the figure is skipped, the others still run
    import nats
    from nats.js.errors import NotFoundError

    from lean_data.bus import BusFeed, BusPublisher
    from lean_data.bus.codec import encode
    from lean_data.bus.stream import StreamSettings, ensure_stream
    from lean_data.bus.subjects import message_id, subject_for
except ImportError as exc:
    _NO_NATS: ImportError | None = exc
else:
    _NO_NATS = None

NAME = "NATS bus: publish rate through the engine vs raw nats-py; emit -> callback latency"
FIGURE = "11 bars -> engine -> NATS JetStream"

_SOURCE = "nautilus_trader/btc-perp-20211231-20220201_1m.csv"
DEFAULT_URL = "nats://127.0.0.1:4222"
NATS_START = "nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server &"
SYMBOL = "BTC-PERP"
FEED = "ftx"
MAX_PENDING = 1_000
QUICK_BARS, WARMUP_BARS = 300, 2_000
LATENCY_BARS, QUICK_LATENCY_BARS = 3_000, 200
BURST, BURST_EVERY_S = 10, 0.01
MIN_RATIO = 0.7


def nats_url() -> str:
    """The NATS server the figure uses (see the module docstring)."""
    return os.environ.get("LEAN_DATA_BENCH_NATS_URL") or DEFAULT_URL


async def _quiet(exc: Exception) -> None:
    """nats-py's error callback: the failure is raised (and reported) anyway."""


async def require_nats(url: str) -> str:
    """Return the server's version, or raise DataMissing in one line when it is absent."""
    if _NO_NATS is not None:
        raise DataMissing(f"nats-py is absent ({_NO_NATS}): pip install 'lean-data[nats]'")
    try:
        nc = await nats.connect(
            url, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=1,
            reconnect_time_wait=0, error_cb=_quiet,
        )  # fmt: skip
    except Exception as exc:
        raise DataMissing(
            f"NATS at {url} is absent ({type(exc).__name__}: {exc}); start it ({NATS_START}) "
            "or set LEAN_DATA_BENCH_NATS_URL"
        ) from None
    try:
        return str(nc.connected_server_version)
    finally:
        await nc.close()


@asynccontextmanager
async def fresh_prefix(url: str) -> AsyncIterator[str]:
    """A new subject prefix; its stream (the prefix upper-cased) is deleted afterwards."""
    prefix = f"bench{secrets.token_hex(4)}"
    try:
        yield prefix
    finally:
        nc = await nats.connect(url, allow_reconnect=False)
        with suppress(NotFoundError):
            await nc.jetstream().delete_stream(prefix.upper())
        await nc.close()


async def stream_count(url: str, stream: str) -> int:
    nc = await nats.connect(url, allow_reconnect=False)
    try:
        return int((await nc.jetstream().stream_info(stream)).state.messages)
    finally:
        await nc.close()


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` every millisecond (counters, not events, say when work is done)."""
    while not condition():  # noqa: ASYNC110  # the publisher's counters have no event
        await asyncio.sleep(0.001)


# ---------------------------------------------------------------------------- (a) rate
async def engine_publish(url: str, bars: list[MarketData]) -> float:
    """Messages/s through engine + BusPublisher, first emit -> last ack (checked whole)."""
    async with fresh_prefix(url) as prefix:
        publisher = BusPublisher(url, prefix=prefix, max_pending=MAX_PENDING)
        feed = BarFeed(FEED)
        engine = DataEngine(Config(db_path=None))
        engine.add_feed(feed)
        engine.add_sink(publisher)
        async with engine:
            await engine.subscribe_symbol(SYMBOL, feed_name=FEED)
            await wait_until(lambda: publisher.statistics()["connected"])
            start = time.perf_counter()
            for bar in bars:
                await feed.emit(bar)
            await wait_until(lambda: publisher.acked >= len(bars))
            elapsed = time.perf_counter() - start
        stored = await stream_count(url, prefix.upper())
        if stored != len(bars) or publisher.statistics()["dropped"]:
            raise RuntimeError(f"the stream holds {stored} of {len(bars)} bars published")
    return len(bars) / elapsed


async def raw_publish(url: str, bars: list[MarketData]) -> float:
    """Messages/s of nats-py publish_async alone on pre-encoded messages, all acks in."""
    async with fresh_prefix(url) as prefix:
        subject = subject_for(prefix, "bar", FEED, SYMBOL)
        messages = [(encode(FEED, b, CLEAN), {"Nats-Msg-Id": message_id(FEED, b)}) for b in bars]
        nc = await nats.connect(url, allow_reconnect=False)
        try:
            js = nc.jetstream(publish_async_max_pending=MAX_PENDING)
            await ensure_stream(js, StreamSettings(prefix.upper(), prefix))
            futures = []
            start = time.perf_counter()
            for payload, headers in messages:
                futures.append(await js.publish_async(subject, payload, headers=headers))
            await js.publish_async_completed()
            elapsed = time.perf_counter() - start
            if not all(f.done() and not f.exception() for f in futures):
                raise RuntimeError("raw publish: some acks failed")
        finally:
            await nc.close()
    return len(bars) / elapsed


# ---------------------------------------------------------------------------- (b) latency
async def latency(url: str, bars: list[TradeBar]) -> list[float]:
    """Milliseconds from the collector's emit to the consumer's callback, per bar."""
    async with fresh_prefix(url) as prefix:
        samples: list[float] = []

        def on_bar(symbol: str, item: MarketData, level: DataQualityLevel) -> None:
            samples.append((time.time_ns() - item.ts_recv) / 1e6)

        publisher = BusPublisher(url, prefix=prefix, max_pending=MAX_PENDING)
        feed = BarFeed(FEED)
        collector = DataEngine(Config(db_path=None))
        collector.add_feed(feed)
        collector.add_sink(publisher)
        consumer = DataEngine(Config(db_path=None))
        consumer.add_feed(BusFeed("bus", url, prefix=prefix, fetch_timeout_s=5.0))
        consumer.add_data_callback(on_bar)
        async with collector, consumer:
            await collector.subscribe_symbol(SYMBOL, feed_name=FEED)
            await feed.emit(bars[0])  # the publisher creates the stream
            await consumer.subscribe_symbol(SYMBOL)
            await wait_until(lambda: len(samples) >= 1)
            samples.clear()
            for i in range(1, len(bars), BURST):
                for bar in bars[i : i + BURST]:
                    await feed.emit(bar)  # ts_recv 0: emit stamps the time now
                await asyncio.sleep(BURST_EVERY_S)  # the pacing of a live source
            await wait_until(lambda: len(samples) >= len(bars) - 1)
    return samples


# ---------------------------------------------------------------------------- the figure
async def _measure(url: str, bars: list[MarketData], warmup: list[MarketData], repeats: int) -> Any:
    await engine_publish(url, warmup)
    await raw_publish(url, warmup)
    engine, raw = [], []
    for _ in range(repeats):
        engine.append(await engine_publish(url, bars))
        raw.append(await raw_publish(url, bars))
    return engine, raw


def _stamped(bars: list[TradeBar]) -> list[MarketData]:
    now = time.time_ns()
    return [with_ts_recv(b, now + i) for i, b in enumerate(bars)]


def run(ctx: Context) -> list[Result]:
    """Measure figure 11 (see the module docstring).

    Raises:
        DataMissing: the FTX minute bars are absent, nats-py is not installed, or NATS
            cannot be reached.
        RuntimeError: a publish lost messages.
    """
    source = ctx.require_data(_SOURCE)
    url = nats_url()
    server = asyncio.run(require_nats(url))
    real = [b for b in load_file(source, symbol=SYMBOL) if isinstance(b, TradeBar)]
    bars = _stamped(real[: ctx.scale(len(real), QUICK_BARS)])
    warmup = _stamped(real[: ctx.scale(WARMUP_BARS, 100)])
    engine, raw = asyncio.run(_measure(url, bars, warmup, ctx.repeats))
    paced = real[: ctx.scale(LATENCY_BARS, QUICK_LATENCY_BARS)]
    lat = sorted(asyncio.run(latency(url, paced)))
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    rate_engine, rate_raw = statistics.median(engine), statistics.median(raw)
    extra = {
        "nats_server": server,
        "bars": len(bars),
        "max_pending": MAX_PENDING,
        "engine_msgs_per_s": [round(r) for r in engine],
        "raw_msgs_per_s": [round(r) for r in raw],
        "us_per_msg": {"engine": round(1e6 / rate_engine, 2), "raw": round(1e6 / rate_raw, 2)},
        "latency_ms": {"p50": round(p50, 3), "p99": round(p99, 3), "max": round(lat[-1], 3),
                       "samples": len(lat)},
    }  # fmt: skip
    judge = not ctx.quick
    return [
        Result(FIGURE, "msg/s", rate_engine, "raw nats-py publish_async, pre-encoded", rate_raw,
               target=f">= {MIN_RATIO:.1f}x raw publish_async",
               met=rate_engine >= MIN_RATIO * rate_raw if judge else None,
               notes=f"{len(bars):,} FTX BTC-PERP 1m bars, first emit -> every ack, stream "
               f"checked whole; median of {ctx.repeats}", extra=extra),
        Result("11 bus latency emit -> consumer callback, p50", "ms", p50,
               higher_is_better=False, notes=f"{len(lat):,} bars paced 1,000/s; collector "
               "and consumer engines in one process and event loop"),
        Result("11 bus latency emit -> consumer callback, p99", "ms", p99,
               higher_is_better=False, notes="same run as p50"),
    ]  # fmt: skip


if __name__ == "__main__":
    from _common import table

    print(table(run(Context(repeats=3))))
