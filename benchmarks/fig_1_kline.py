"""Figure 1: Binance kline frames -> BinanceDataFeed parsing -> engine, messages per second.

Workload. The real ``kline`` frames of the cryptofeed captures of Binance spot, Binance.US
and USDT-M futures (``cryptofeed/BINANCE.ws.1.0``, ``BINANCE_US.ws.1.0``,
``BINANCE_FUTURES.ws.1.0``: 74 frames, 7 symbols; the coin-margined ``BINANCE_DELIVERY``
frames are left out, their ``ETHUSD_210924``-style symbols are not BinanceDataFeed's) are
replicated to volume: frames go round-robin over the symbols; the i-th frame of a symbol
is a copy of that symbol's real frames in turn (prices, volumes, counts and the key order
untouched) with its open time moved to the symbol's first recorded open time + i
intervals, its close time and event time to the end of that interval and ``x`` (closed)
set. So every symbol is one gap-free series of distinct, valid, closed 1-minute bars, which
is what the engine delivers (in-progress updates are not).

Paths measured (each repeat on a fresh engine, ``DataEngine(Config(db_path=None))``, three
sync callbacks):

- in memory: a :class:`BinanceDataFeed` whose websocket is replaced by the pre-loaded
  frames (``open_session`` installs an in-memory connection), so the feed's own
  ``run_session`` runs (receive time, ``parse_message`` per frame, one ``emit_many`` per
  read) and the engine does validate, score, buffer and callbacks; no socket. Timed from
  releasing the first frame to the last callback. The main row hands the feed one frame per
  read (what the ``websockets`` client does); the second row 64 per read (``PER_READ``:
  picows hands over every frame a socket read brought, thousands under load, as figure 14's
  notes show), so the engine takes each read into its inbox as one batch.
- loopback socket: the unmodified BinanceDataFeed against a :class:`BinanceLoopbackServer`
  running in a child process (so the server has its own core), the same frames pushed to
  its timeline; timed from the first callback to the last. Its baseline is a bare
  ``websockets`` client reading the same server: what the transport alone carries (the
  server, one ``send`` per frame, is usually the ceiling here).

Baselines in the same run: ``orjson.loads`` of the same frames, bare dispatch of parsed
bars to the same three callbacks and, when importable, the peer: cryptofeed's Binance feed
(``Binance.message_handler``: its JSON decode, its candle parser, one async callback)
driven directly with the same frames, no network. The engine's one-frame-a-read runs and
the peer's alternate (engine, peer, engine, ...), each on its own event loop: on a shared
machine whose speed drifts for seconds at a time (a plain CPU loop there took 48-93 ms from
one pass to the next) both sides of the ratio see the same stretches; the JSON keeps each
pair's ratio. Figure 2 (aggTrade) and figure 4 (persistence) reuse this module.

``python benchmarks/fig_1_kline.py --profile [kline|aggTrade] [N] [PER_READ]`` prints the top
costs of the in-memory path per message (cProfile; its overhead inflates small calls).
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE), str(_HERE.parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _common import Context, Result, best_rate  # noqa: E402

from lean_data import Config, DataEngine  # noqa: E402
from lean_data.feeds.binance import BinanceDataFeed, Channel  # noqa: E402
from lean_data.loaders.capture import read_capture  # noqa: E402
from lean_data.models import MarketData  # noqa: E402
from lean_data.quality.levels import DataQualityLevel  # noqa: E402
from lean_data.wire.binance import KLINE_INTERVALS, binance_symbol, parse_message  # noqa: E402

NAME = "Binance kline frames -> BinanceDataFeed parsing -> engine (msg/s)"

CAPTURES = (
    "cryptofeed/BINANCE.ws.1.0",
    "cryptofeed/BINANCE_US.ws.1.0",
    "cryptofeed/BINANCE_FUTURES.ws.1.0",
)
FULL_FRAMES = 200_000
QUICK_FRAMES = 2_000
WARMUP_FRAMES = 20_000
TRADE_STEP_MS = 100  # replicated aggTrades of one symbol are this far apart
TARGET_RATIO = 1.5
PER_READ = 64  # the batched row: frames per socket read (picows under load hands over more)
_MS = 1_000_000


# --------------------------------------------------------------------------- workload


@dataclass
class Workload:
    """Replicated frames of one event type, ready for every path.

    Attributes:
        event: ``"kline"`` or ``"aggTrade"``.
        channel: the BinanceDataFeed channel that carries it.
        frames: combined-stream texts (``{"stream":...,"data":...}``), as Binance sends.
        streams: the stream of each frame.
        symbols: venue symbol (``"CTKUSDT"``) -> canonical symbol (``"CTK/USDT"``).
        templates: how many real frames were replicated.
        sources: the capture files they come from (relative to the corpus).
    """

    event: str
    channel: Channel
    frames: list[str]
    streams: list[str]
    symbols: dict[str, str]
    templates: int
    sources: tuple[str, ...] = CAPTURES

    def describe(self) -> str:
        """One line for a result's notes: volume, real frames, symbols, files."""
        files = ", ".join(Path(source).name for source in self.sources)
        return (
            f"{len(self.frames):,} frames replicated from {self.templates} real {self.event} "
            f"frames of {len(self.symbols)} symbols ({files})"
        )


def real_events(ctx: Context, event: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Return the recorded ``event`` payloads per venue symbol, with their stream, in order.

    Raises:
        DataMissing: a capture is not on this machine.
    """
    by_symbol: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for relative in CAPTURES:
        for _, text in read_capture(ctx.require_data(relative)).received:
            message = orjson.loads(text)
            if not isinstance(message, dict):
                continue
            data = message.get("data")
            if isinstance(data, dict) and data.get("e") == event:
                by_symbol[data["s"]].append((message["stream"], data))
    if not by_symbol:
        raise ValueError(f"no {event} frames found in {CAPTURES}")
    return dict(by_symbol)


def _frame(stream: str, payload: dict[str, Any]) -> str:
    return orjson.dumps({"stream": stream, "data": payload}).decode()


def _round_robin(
    by_symbol: dict[str, list[tuple[str, dict[str, Any]]]], count: int
) -> Iterator[tuple[str, int, str, dict[str, Any]]]:
    """Yield (symbol, index within the symbol, stream, template payload) ``count`` times."""
    symbols = sorted(by_symbol)
    for j in range(count):
        symbol = symbols[j % len(symbols)]
        i = j // len(symbols)
        real = by_symbol[symbol]
        stream, data = real[i % len(real)]
        yield symbol, i, stream, data


def kline_workload(ctx: Context, count: int) -> Workload:
    """Real kline frames replicated to ``count`` closed, distinct, gap-free bars."""
    by_symbol = real_events(ctx, "kline")
    first_open = {s: frames[0][1]["k"]["t"] for s, frames in by_symbol.items()}
    frames, streams = [], []
    for symbol, i, stream, data in _round_robin(by_symbol, count):
        k = data["k"]
        step = KLINE_INTERVALS[k["i"]].nanos // _MS
        t = first_open[symbol] + i * step
        kline = {**k, "t": t, "T": t + step - 1, "x": True}
        frames.append(_frame(stream, {**data, "E": t + step, "k": kline}))
        streams.append(stream)
    return Workload("kline", "kline", frames, streams, _canonical(by_symbol), _total(by_symbol))


def agg_trade_workload(ctx: Context, count: int) -> Workload:
    """Real aggTrade frames replicated to ``count`` trades with rising ids and times."""
    by_symbol = real_events(ctx, "aggTrade")
    first = {s: frames[0][1] for s, frames in by_symbol.items()}
    span = {s: 1 + max(d["l"] - d["f"] for _, d in frames) for s, frames in by_symbol.items()}
    frames, streams = [], []
    for symbol, i, stream, data in _round_robin(by_symbol, count):
        base = first[symbol]
        trade_time = base["T"] + i * TRADE_STEP_MS
        first_id = base["f"] + i * span[symbol]
        payload = {
            **data,
            "E": trade_time + max(0, data["E"] - data["T"]),
            "a": base["a"] + i,
            "f": first_id,
            "l": first_id + data["l"] - data["f"],
            "T": trade_time,
        }
        frames.append(_frame(stream, payload))
        streams.append(stream)
    return Workload(
        "aggTrade", "agg_trade", frames, streams, _canonical(by_symbol), _total(by_symbol)
    )


def _canonical(by_symbol: dict[str, Any]) -> dict[str, str]:
    return {venue: binance_symbol(venue) for venue in sorted(by_symbol)}


def _total(by_symbol: dict[str, list[Any]]) -> int:
    return sum(len(frames) for frames in by_symbol.values())


# --------------------------------------------------------------------------- callbacks


class Sink:
    """The three sync callbacks: count (and time the first and last), keep the latest, tally.

    ``done`` is set when ``target`` items arrived.
    """

    __slots__ = ("count", "done", "first_at", "last_at", "latest", "scores", "target")

    def __init__(self, target: int, done: asyncio.Event | None = None) -> None:
        self.target = target
        self.done = done
        self.count = 0
        self.first_at = self.last_at = 0.0
        self.latest: MarketData | None = None
        self.scores = 0.0

    def on_count(self, symbol: str, data: MarketData, quality: DataQualityLevel) -> None:
        count = self.count = self.count + 1
        if count == 1:
            self.first_at = time.perf_counter()
        if count == self.target:
            self.last_at = time.perf_counter()
            if self.done is not None:
                self.done.set()

    def on_latest(self, symbol: str, data: MarketData, quality: DataQualityLevel) -> None:
        self.latest = data

    def on_quality(self, symbol: str, data: MarketData, quality: DataQualityLevel) -> None:
        self.scores += quality.value

    @property
    def callbacks(self) -> tuple[Callable[[str, MarketData, DataQualityLevel], None], ...]:
        return (self.on_count, self.on_latest, self.on_quality)


# --------------------------------------------------------------------------- baselines


def parsed_items(workload: Workload) -> list[MarketData]:
    """The frames parsed once by the feed's parser (input of the bare-dispatch baseline)."""
    items: list[MarketData] = []
    for frame in workload.frames:
        item = parse_message(frame, time.time_ns(), symbols=workload.symbols).item
        assert item is not None
        items.append(item)
    return items


def orjson_rate(workload: Workload, repeats: int) -> float:
    """``orjson.loads`` of every frame: the physical floor of any JSON feed."""
    loads, frames = orjson.loads, workload.frames

    def run() -> None:
        for frame in frames:
            loads(frame)

    run()
    return best_rate(len(frames), run, repeats)


def dispatch_rate(items: Sequence[MarketData], repeats: int) -> float:
    """Parsed items handed straight to the three callbacks, nothing in between."""
    sink = Sink(len(items) + 1)
    callbacks, level = sink.callbacks, DataQualityLevel.EXCELLENT

    def run() -> None:
        for item in items:
            symbol = item.symbol
            for callback in callbacks:
                callback(symbol, item, level)

    run()
    return best_rate(len(items), run, repeats)


# --------------------------------------------------------------------------- engine, in memory


class _MemoryConnection:
    """Stands in for the websocket: hands out the pre-loaded frames once ``go`` is set,
    ``per_read`` at a time (what one socket read gives the feed's ``recv_batch``), then
    waits (like an open connection with nothing to say) until the session is cancelled.

    Both sides of figures 1 and 2 read through it, the same way (``take_ready()``, then
    ``recv_batch()`` when nothing is ready, as the feed's read loop does with picows), so
    what it costs is in both rates and pulls their ratio towards 1: a read is kept to a
    slice (``go`` is awaited until it is set, then a flag is read, not ``Event.is_set()``
    called on every read)."""

    def __init__(self, frames: Sequence[str], go: asyncio.Event, per_read: int = 1) -> None:
        self._frames = list(frames)
        self._next = 0
        self._per_read = per_read
        self._go = go
        self._open = False  # go was set
        self.sent: list[str] = []

    def take_ready(self) -> list[str] | None:
        """The next read's frames once ``go`` is set (a socket's under load), else None."""
        start = self._next
        if self._open and start < len(self._frames):
            end = self._next = start + self._per_read
            return self._frames[start:end]  # a new list
        return None

    async def recv_batch(self) -> list[str]:
        if not self._open:
            await self._go.wait()
            self._open = True
        frames = self.take_ready()
        if frames is not None:
            return frames
        await asyncio.get_running_loop().create_future()  # open and silent until cancelled
        return []

    async def send(self, text: str) -> None:
        self.sent.append(text)

    async def close(self) -> None:
        return None


class MemoryBinanceFeed(BinanceDataFeed):
    """BinanceDataFeed with its websocket replaced by pre-loaded frames (no socket)."""

    def __init__(
        self, frames: Sequence[str], go: asyncio.Event, per_read: int = 1, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._frames = frames
        self._go = go
        self._per_read = per_read

    async def open_session(self) -> None:
        self._ws = _MemoryConnection(  # type: ignore[assignment]
            self._frames, self._go, self._per_read
        )


@dataclass
class EngineRun:
    """One timed pass of the frames through the engine."""

    messages: int
    seconds: float  # release of the first frame -> last callback
    stored_seconds: float | None = None  # release -> every row committed (with storage)
    rows: int | None = None  # rows in the bars/ticks table after stop (with storage)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


async def engine_run(
    workload: Workload,
    frames: Sequence[str] | None = None,
    *,
    db_path: Path | None = None,
    per_read: int = 1,
    **config: Any,
) -> EngineRun:
    """Run ``frames`` (default: all) through a fresh engine via MemoryBinanceFeed;
    ``config`` adds Config fields (studies only: every figure runs the defaults).

    Raises:
        RuntimeError: not every frame reached the callbacks, or some were judged INVALID.
    """
    frames = workload.frames if frames is None else frames
    go, done = asyncio.Event(), asyncio.Event()
    sink = Sink(len(frames), done)
    feed = MemoryBinanceFeed(frames, go, per_read, channels=(workload.channel,))
    engine = DataEngine(Config(db_path=db_path, **config))
    engine.add_feed(feed)
    for callback in sink.callbacks:
        engine.add_data_callback(callback)
    try:
        await start_subscribed(engine, feed, workload)
        gc.collect()
        started = time.perf_counter()
        go.set()
        await _wait_done(done, sink, len(frames), "in-memory engine run")
        delivered = time.perf_counter()
        stored = None
        if engine.persistence is not None:
            await engine.persistence.flush()
            stored = time.perf_counter() - started
        metrics = engine.get_metrics()
    finally:
        await engine.stop()
    _check(metrics, len(frames))
    rows = None if db_path is None else _count_rows(db_path, workload.event)
    return EngineRun(len(frames), delivered - started, stored, rows, metrics["engine"])


async def start_subscribed(engine: DataEngine, feed: BinanceDataFeed, workload: Workload) -> None:
    """Start the engine with every symbol subscribed in the feed's first SUBSCRIBE.

    The feed learns its symbols before the engine connects it, so its first session sends
    one SUBSCRIBE for all of them (the loopback server, like Binance, sends a stream's
    frames only from its subscription on); the engine's own subscriptions follow.
    """
    for symbol in workload.symbols.values():
        await feed.subscribe(symbol)
    await engine.start()
    for symbol in workload.symbols.values():
        await engine.subscribe_symbol(symbol, feed_name=feed.name)


async def _wait_done(done: asyncio.Event, sink: Sink, expected: int, what: str) -> None:
    timeout = 30.0 + expected / 2_000  # generous: a stall, not a slow run, trips it
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except TimeoutError:
        raise RuntimeError(
            f"{what}: expected {expected} callbacks, found {sink.count} after {timeout:.0f}s"
        ) from None


def _check(metrics: dict[str, Any], expected: int) -> None:
    engine = metrics["engine"]
    if engine["processed"] != expected or engine["invalid"]:
        raise RuntimeError(
            f"expected {expected} valid items processed, found processed="
            f"{engine['processed']} invalid={engine['invalid']}"
        )


def _count_rows(path: Path, event: str) -> int:
    import sqlite3

    table = "bars" if event == "kline" else "ticks"
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        connection.close()


def engine_rates(
    workload: Workload, repeats: int, *, db_dir: Path | None = None, per_read: int = 1
) -> list[EngineRun]:
    """A warm-up run (excluded) then ``repeats`` timed runs, each on a fresh engine."""

    async def runs() -> list[EngineRun]:
        warm = workload.frames[: min(WARMUP_FRAMES, len(workload.frames))]
        await engine_run(workload, warm, db_path=_db(db_dir, "warmup"), per_read=per_read)
        return [
            await engine_run(workload, db_path=_db(db_dir, f"run{n}"), per_read=per_read)
            for n in range(repeats)
        ]

    return asyncio.run(runs())


def _db(db_dir: Path | None, name: str) -> Path | None:
    return None if db_dir is None else db_dir / f"{name}.db"


def median_rate(runs: Sequence[EngineRun]) -> float:
    return statistics.median(run.rate for run in runs)


# --------------------------------------------------------------------------- loopback socket


class LoopbackProcess:
    """A BinanceLoopbackServer in a child process whose timeline holds the workload.

    ``script`` is the module whose ``--serve FILE`` runs the server (figure 14 passes its
    own, a bulk-sending server).
    """

    def __init__(self, workload: Workload, directory: Path, script: str = __file__) -> None:
        path = directory / f"{workload.event}.frames"
        with path.open("w") as out:
            for stream, frame in zip(workload.streams, workload.frames, strict=True):
                prefix = len('{"stream":') + len(stream) + len(',"data":') + 2
                out.write(f"{stream}\t{frame[prefix:-1]}\n")
        self._process = subprocess.Popen(
            [sys.executable, script, "--serve", str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline().split()
        if len(line) != 2:
            self.close()
            raise RuntimeError(f"the loopback server did not start (said {line!r})")
        self.ws_url, self.rest_url = line

    def close(self) -> None:
        process = self._process
        if process.stdin is not None and not process.stdin.closed:
            process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> LoopbackProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def socket_run(workload: Workload, ws_url: str, rest_url: str) -> float:
    """The unmodified feed on a real websocket; msg/s from the first callback to the last."""
    done = asyncio.Event()
    expected = len(workload.frames)
    sink = Sink(expected, done)
    feed = BinanceDataFeed(  # its baseline is a bare websockets client; picows: figure 14
        ws_url=ws_url, rest_url=rest_url, channels=(workload.channel,), transport="websockets"
    )
    engine = DataEngine(Config(db_path=None))
    engine.add_feed(feed)
    for callback in sink.callbacks:
        engine.add_data_callback(callback)
    try:
        await start_subscribed(engine, feed, workload)
        await _wait_done(done, sink, expected, "loopback socket run")
        metrics = engine.get_metrics()
    finally:
        await engine.stop()
    _check(metrics, expected)
    return (expected - 1) / (sink.last_at - sink.first_at)


async def bare_client_run(workload: Workload, ws_url: str) -> float:
    """A bare ``websockets`` client on the same server: what the transport alone carries."""
    from websockets.asyncio.client import connect

    expected = len(workload.frames)
    streams = sorted(set(workload.streams))
    request = orjson.dumps({"method": "SUBSCRIBE", "params": streams, "id": 1}).decode()
    async with connect(f"{ws_url}/stream", max_queue=4096) as ws:
        await ws.send(request)
        await ws.recv()  # the ack
        count, first = 0, 0.0
        async for _ in ws:
            count += 1
            if count == 1:
                first = time.perf_counter()
            if count == expected:
                break
        return (expected - 1) / (time.perf_counter() - first)


def socket_rates(workload: Workload, repeats: int) -> tuple[float, float]:
    """Median msg/s of the socket path and of a bare client on the same server.

    A warm-up connection of each comes first (excluded); then the two alternate.
    """
    with (
        tempfile.TemporaryDirectory() as directory,
        LoopbackProcess(workload, Path(directory)) as server,
    ):

        async def runs() -> tuple[list[float], list[float]]:
            await socket_run(workload, server.ws_url, server.rest_url)
            await bare_client_run(workload, server.ws_url)
            feed, bare = [], []
            for _ in range(repeats):
                feed.append(await socket_run(workload, server.ws_url, server.rest_url))
                bare.append(await bare_client_run(workload, server.ws_url))
            return feed, bare

        feed, bare = asyncio.run(runs())
        return statistics.median(feed), statistics.median(bare)


def _serve(path: str) -> None:
    """Child process: serve the frames in ``path`` until stdin closes."""
    from lean_data.testing.binance import BinanceLoopbackServer

    server = BinanceLoopbackServer(None, ping_interval=None)
    with open(path) as frames:
        for line in frames:
            stream, _, raw = line.rstrip("\n").partition("\t")
            server.push(stream, raw)

    async def main() -> None:
        async with server:
            print(server.ws_url, server.rest_url, flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())


# --------------------------------------------------------------------------- the peer


@dataclass
class PeerRate:
    """cryptofeed's rate on the same frames, or why there is none."""

    rate: float | None
    label: str
    note: str


@dataclass
class PeerDriver:
    """cryptofeed's side of figures 1 and 2, ready to run: ``drive(frames)`` returns its
    rate over ``frames``; None (with the reason in ``note``) when cryptofeed is absent."""

    drive: Callable[[Sequence[str]], Awaitable[float]] | None
    label: str
    note: str


def cryptofeed_driver(workload: Workload) -> PeerDriver:
    """Set cryptofeed's symbol table for ``workload`` and return its driver."""
    try:
        import cryptofeed
        from cryptofeed.defines import BINANCE, CANDLES, TRADES
        from cryptofeed.exchanges import Binance
        from cryptofeed.symbols import Symbols
    except ImportError as exc:
        return PeerDriver(None, "cryptofeed", f"peer absent: cryptofeed not importable ({exc})")
    version = getattr(cryptofeed, "__version__", "") or _dist_version("cryptofeed")
    label = f"cryptofeed {version}".strip()
    # the symbol table cryptofeed would download from /api/v3/exchangeInfo, built from the
    # same symbols by its own parser
    listing = {
        "symbols": [
            {
                "symbol": venue,
                "baseAsset": canonical.split("/")[0],
                "quoteAsset": canonical.split("/")[1],
                "filters": [{"tickSize": "0.00000001"}],
            }
            for venue, canonical in workload.symbols.items()
        ]
    }
    mapping, info = Binance._parse_symbol_data(listing)
    Symbols.set(BINANCE, mapping, info)
    channel = CANDLES if workload.event == "kline" else TRADES

    async def drive(frames: Sequence[str]) -> float:
        delivered = 0

        async def on_item(item: Any, receipt_timestamp: float) -> None:
            nonlocal delivered
            delivered += 1

        feed = Binance(symbols=list(mapping), channels=[channel], callbacks={channel: on_item})
        handler, now = feed.message_handler, time.time
        go = asyncio.Event()
        go.set()
        # the engine's stand-in for the websocket, one frame a read: both sides pay the
        # same read (cryptofeed's own loop adds an async generator over its socket)
        connection = _MemoryConnection(frames, go)
        gc.collect()
        started = time.perf_counter()
        take_ready, recv_batch = connection.take_ready, connection.recv_batch
        for _ in range(len(frames)):
            for frame in take_ready() or await recv_batch():
                await handler(frame, None, now())
        seconds = time.perf_counter() - started
        if delivered != len(frames):
            raise RuntimeError(f"cryptofeed delivered {delivered} of {len(frames)} frames")
        return len(frames) / seconds

    return PeerDriver(
        drive,
        label,
        "peer: Binance.message_handler, one async callback, frames read from the same "
        "in-memory connection as the engine's, one a read",
    )


def paired_rates(
    workload: Workload, repeats: int
) -> tuple[list[EngineRun], list[float], PeerDriver]:
    """The engine's and cryptofeed's timed runs, alternating (engine, peer, engine, ...)
    after a warm-up of each: on a shared machine whose speed drifts for seconds at a time,
    both sides of the ratio see the same stretches. Each run has its own event loop."""
    peer = cryptofeed_driver(workload)
    warm = workload.frames[: min(WARMUP_FRAMES, len(workload.frames))]
    asyncio.run(engine_run(workload, warm))
    if peer.drive is not None:
        asyncio.run(peer.drive(warm))
    runs: list[EngineRun] = []
    peer_rates: list[float] = []
    for _ in range(repeats):
        runs.append(asyncio.run(engine_run(workload)))
        if peer.drive is not None:
            peer_rates.append(asyncio.run(peer.drive(workload.frames)))
    return runs, peer_rates, peer


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return ""


# --------------------------------------------------------------------------- the figure


def ingest_results(figure: str, workload: Workload, ctx: Context, peer_unit: str) -> list[Result]:
    """Measure every path and baseline of figure 1 or 2 on ``workload``."""
    runs, peer_rates, driver = paired_rates(workload, ctx.repeats)
    engine = median_rate(runs)
    peer = PeerRate(
        statistics.median(peer_rates) if peer_rates else None, driver.label, driver.note
    )
    # each engine run's rate over the peer run right after it (none when the peer is absent)
    pairs = [run.rate / rate for run, rate in zip(runs, peer_rates, strict=False)]
    batched = median_rate(engine_rates(workload, ctx.repeats, per_read=PER_READ))
    per_msg = f"{1e6 / engine:.2f} us/msg"
    items = parsed_items(workload)
    floor_json = orjson_rate(workload, ctx.repeats)
    floor_dispatch = dispatch_rate(items, ctx.repeats)
    try:
        socket, bare = socket_rates(workload, ctx.repeats)
        socket_note = (
            f"BinanceLoopbackServer in a child process, 127.0.0.1 websocket; in-memory "
            f"engine path {engine:,.0f} msg/s"
        )
    except Exception as exc:  # the socket row is a second opinion: report, go on
        socket, bare, socket_note = 0.0, 0.0, f"socket path failed: {exc!r}"
    extra = {
        "frames": len(workload.frames),
        "real_templates": workload.templates,
        "symbols": sorted(workload.symbols.values()),
        "engine_rates": [round(run.rate) for run in runs],
        "us_per_msg": round(1e6 / engine, 3),
        "batched_rate": round(batched),
        "batched_per_read": PER_READ,
        "orjson_loads": round(floor_json),
        "bare_dispatch_3_callbacks": round(floor_dispatch),
        "peer": peer.label,
        "peer_rate": None if peer.rate is None else round(peer.rate),
        "peer_rates": [round(rate) for rate in peer_rates],  # each after the engine's run
        "pair_ratios": [round(ratio, 3) for ratio in pairs],
        "socket_rate": round(socket),
        "socket_bare_websockets_client": round(bare),
    }
    data = workload.describe()
    target = f">= {TARGET_RATIO}x cryptofeed's {peer_unit} rate"
    results = []
    if peer.rate is not None:
        paired = Result(
            figure, "msg/s", engine, peer.label, peer.rate, target=target,
            notes=f"{per_msg}; {data}; {peer.note}; ratio: the median of the runs' pairs",
            extra=extra, pairs=pairs,
        )  # fmt: skip
        paired.met = (paired.ratio or 0.0) >= TARGET_RATIO
        results.append(paired)
    else:
        results.append(
            Result(figure, "msg/s", engine, "cryptofeed (absent)", None, target=target,
                   notes=f"{per_msg}; {data}; {peer.note}", extra=extra)
        )  # fmt: skip
    if peer.rate is not None:
        results.append(
            Result(f"{figure}, {PER_READ} frames per read", "msg/s", batched, peer.label,
                   peer.rate, target=target, met=batched >= TARGET_RATIO * peer.rate,
                   notes=f"{1e6 / batched:.2f} us/msg; the feed's recv_batch gives {PER_READ} "
                         "frames at a time and hands them over with one emit_many (picows "
                         "under load; figure 14 reports the real frames per read)")
        )  # fmt: skip
    results += [
        Result(figure, "msg/s", engine, "orjson.loads", floor_json,
               notes="floor: JSON decode of the same frames only"),
        Result(figure, "msg/s", engine, "3 sync callbacks", floor_dispatch,
               notes="floor: parsed items straight to the same three callbacks"),
    ]  # fmt: skip
    results.append(
        Result(f"{figure} via loopback socket", "msg/s", socket,
               "bare websockets client, same server", bare or None, notes=socket_note)
    )  # fmt: skip
    return results


def run(ctx: Context) -> list[Result]:
    workload = kline_workload(ctx, ctx.scale(FULL_FRAMES, QUICK_FRAMES))
    return ingest_results("1 kline frames -> engine", workload, ctx, "kline")


# --------------------------------------------------------------------------- profiling


def profile(
    event: str = "kline", count: int = FULL_FRAMES, top: int = 30, per_read: int = 1
) -> None:
    """Print the in-memory path's top costs per message (cProfile, tottime)."""
    import cProfile
    import pstats

    ctx = Context()
    maker = kline_workload if event == "kline" else agg_trade_workload
    workload = maker(ctx, count)
    asyncio.run(engine_run(workload, workload.frames[:WARMUP_FRAMES], per_read=per_read))
    profiler = cProfile.Profile()
    profiler.enable()
    result = asyncio.run(engine_run(workload, per_read=per_read))
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    total = sum(v[2] for _, v in rows)
    print(f"{event}: {count} frames, {result.rate:,.0f} msg/s under cProfile; "
          f"profiled total {1e6 * total / count:.2f} us/msg")  # fmt: skip
    print(f"{'us/msg tottime':>15} {'us/msg cum':>11} {'calls/msg':>9}  function")
    for (filename, line, name), (_, calls, tottime, cumtime, _) in rows[:top]:
        where = f"{Path(filename).name}:{line}({name})"
        print(f"{1e6 * tottime / count:15.3f} {1e6 * cumtime / count:11.3f} "
              f"{calls / count:9.2f}  {where}")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--serve":
        _serve(sys.argv[2])
    elif len(sys.argv) >= 2 and sys.argv[1] == "--profile":
        profile(
            sys.argv[2] if len(sys.argv) > 2 else "kline",
            int(sys.argv[3]) if len(sys.argv) > 3 else FULL_FRAMES,
            per_read=int(sys.argv[4]) if len(sys.argv) > 4 else 1,
        )
    else:
        print(__doc__)
