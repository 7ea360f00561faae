"""Figure 14: kline frames over a real loopback websocket -> engine -> callback, msg/s.

Workload: figure 1's (real Binance kline frames of the cryptofeed captures, replicated to
volume as closed, distinct, gap-free 1-minute bars of 7 symbols; see
``benchmarks/fig_1_kline.py``).

Server: one child process running a :class:`BinanceLoopbackServer` (``--serve``) whose
timeline holds the workload. Its websocket sessions speak Binance as usual (URL streams,
``SUBSCRIBE`` answered, then data), except that once a connection has every stream of the
workload the frames go out pre-encoded, 256 KiB per socket write, instead of one
``ws.send`` per frame: the stock server sends ~50k frames/s, below every client measured
here, so it would measure itself. The bare clients below show what the server and the
kernel carry (the ceiling).

Paths, each a fresh connection to the same server, alternating, in one run (timed from the
first callback, or frame, to the last; median of the repeats):

- (a) lean_data, picows: ``BinanceDataFeed(transport="picows")`` in a ``DataEngine``
  (validation, scoring, continuity on), one sync callback.
- (b) lean_data, websockets: the same with ``transport="websockets"``.
- (c) cryptofeed: ``FeedHandler`` with its ``Binance`` feed (its websocket endpoint pointed
  at the server, its symbol table preset as figure 1 does, no REST), one async candle
  callback.
- (d) bare picows and bare websockets clients: frames read and counted, nothing else.

Targets (issue 17, done-when 2): (a) >= 1.5x (c), (a) >= 2x (b).
"""

from __future__ import annotations

import asyncio
import importlib.util
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE), str(_HERE.parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _common import Context, DataMissing, Result  # noqa: E402
from fig_1_kline import (  # noqa: E402
    FULL_FRAMES,
    QUICK_FRAMES,
    LoopbackProcess,
    Workload,
    _dist_version,
    kline_workload,
    start_subscribed,
)

from lean_data import Config, DataEngine  # noqa: E402
from lean_data.feeds.binance import BinanceDataFeed  # noqa: E402
from lean_data.models import MarketData  # noqa: E402
from lean_data.quality.levels import DataQualityLevel  # noqa: E402

NAME = "kline frames over a loopback websocket -> engine -> callback (msg/s)"
TARGET_PEER, TARGET_TRANSPORT = 1.5, 2.0
CHUNK_BYTES = 256 * 1024
_FIGURE = "14 loopback websocket -> engine -> callback"
FRAMES_PER_READ: list[float] = []  # picows runs: frames handed to the feed per recv_batch


# --------------------------------------------------------------------------- timing


class Clock:
    """Counts arrivals; times the first and the last; sets ``done`` at ``target``."""

    __slots__ = ("count", "done", "first_at", "last_at", "target")

    def __init__(self, target: int) -> None:
        self.target, self.done = target, asyncio.Event()
        self.count = 0
        self.first_at = self.last_at = 0.0

    def tick(self) -> None:
        count = self.count = self.count + 1
        if count == 1:
            self.first_at = time.perf_counter()
        if count == self.target:
            self.last_at = time.perf_counter()
            self.done.set()

    def on_item(self, symbol: str, data: MarketData, quality: DataQualityLevel) -> None:
        self.tick()

    async def wait(self, what: str) -> float:
        timeout = 30.0 + self.target / 2_000
        try:
            await asyncio.wait_for(self.done.wait(), timeout)
        except TimeoutError:
            raise RuntimeError(
                f"{what}: expected {self.target} items, found {self.count} after {timeout:.0f}s"
            ) from None
        return (self.target - 1) / (self.last_at - self.first_at)


# --------------------------------------------------------------------------- the server process


def loopback_process(workload: Workload, directory: Path) -> LoopbackProcess:
    """Figure 1's child-process server, running this module's bulk-sending server."""
    return LoopbackProcess(workload, directory, __file__)


# --------------------------------------------------------------------------- the paths


async def lean_run(workload: Workload, server: LoopbackProcess, transport: str) -> float:
    """(a), (b): BinanceDataFeed on ``transport`` -> engine -> one sync callback."""
    clock = Clock(len(workload.frames))
    feed = BinanceDataFeed(
        ws_url=server.ws_url,
        rest_url=server.rest_url,
        channels=(workload.channel,),
        transport=transport,
    )
    engine = DataEngine(Config(db_path=None))
    engine.add_feed(feed)
    engine.add_data_callback(clock.on_item)
    try:
        await start_subscribed(engine, feed, workload)
        rate = await clock.wait(f"lean_data ({transport})")
        processed = engine.get_metrics()["engine"]
        stats = feed._ws.statistics() if feed._ws is not None else None
        if stats is not None and stats.frames and stats.batches:
            FRAMES_PER_READ.append(stats.frames / stats.batches)
    finally:
        await engine.stop()
    if processed["processed"] != clock.target or processed["invalid"]:
        raise RuntimeError(f"lean_data ({transport}): {processed}")
    return rate


def _stream_url(workload: Workload, ws_url: str) -> str:
    return f"{ws_url}/stream?streams={'/'.join(sorted(set(workload.streams)))}"


async def bare_websockets_run(workload: Workload, server: LoopbackProcess) -> float:
    """(d) A bare websockets client: frames counted, nothing else."""
    from websockets.asyncio.client import connect

    clock = Clock(len(workload.frames))
    async with connect(_stream_url(workload, server.ws_url), max_queue=4096) as ws:
        async for _ in ws:
            clock.tick()
            if clock.count == clock.target:
                break
    return await clock.wait("bare websockets")


async def bare_picows_run(workload: Workload, server: LoopbackProcess) -> float:
    """(d) A bare picows client: frames counted in its callback, nothing else."""
    import picows

    clock = Clock(len(workload.frames))
    text = picows.WSMsgType.TEXT

    class Counter(picows.WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            if frame.msg_type == text:
                frame.get_payload_as_bytes()  # what any consumer must take out of the frame
                clock.tick()

    ws, _ = await picows.ws_connect(Counter, _stream_url(workload, server.ws_url))
    try:
        return await clock.wait("bare picows")
    finally:
        ws.disconnect()
        await ws.wait_disconnected()


async def cryptofeed_run(workload: Workload, server: LoopbackProcess) -> float:
    """(c) cryptofeed's FeedHandler + Binance feed on the same server, one async callback."""
    from cryptofeed import FeedHandler
    from cryptofeed.connection import WebsocketEndpoint
    from cryptofeed.defines import BINANCE, CANDLES
    from cryptofeed.exchanges import Binance
    from cryptofeed.symbols import Symbols

    listing = {
        "symbols": [
            {"symbol": venue, "baseAsset": canonical.split("/")[0],
             "quoteAsset": canonical.split("/")[1], "filters": [{"tickSize": "0.00000001"}]}
            for venue, canonical in workload.symbols.items()
        ]
    }  # fmt: skip
    mapping, info = Binance._parse_symbol_data(listing)
    Symbols.set(BINANCE, mapping, info)  # what it would download from /api/v3/exchangeInfo
    clock = Clock(len(workload.frames))

    async def on_candle(candle: Any, receipt_timestamp: float) -> None:
        clock.tick()

    feed = Binance(symbols=list(mapping), channels=[CANDLES], callbacks={CANDLES: on_candle})
    # the local server: cryptofeed accepts only wss:// endpoints, and lets a feed rewrite the
    # address right before connecting (its authentication hook): wss -> ws, nothing else
    secure = server.ws_url.replace("ws://", "wss://", 1)
    feed.websocket_endpoints = [WebsocketEndpoint(secure, authentication=True)]

    async def plain(address: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return address.replace("wss://", "ws://", 1), options

    feed._ws_authentication = plain
    streams = set(feed._address().partition("?streams=")[2].split("/"))
    if streams != set(workload.streams):
        raise RuntimeError(f"cryptofeed asks for {sorted(streams)}, expected the workload's")
    handler = FeedHandler(config={"uvloop": False, "log": {"disabled": True}})  # no log file
    handler.add_feed(feed)
    handler.run(start_loop=False, install_signal_handlers=False)
    try:
        return await clock.wait("cryptofeed")
    finally:
        feed.stop()
        for connection in feed.connection_handlers:
            await connection.conn.close()
        await feed.shutdown()


# --------------------------------------------------------------------------- the figure

Path_ = Callable[[Workload, LoopbackProcess], Any]


def _paths(peer: bool) -> dict[str, Path_]:
    paths: dict[str, Path_] = {
        "lean_picows": lambda w, s: lean_run(w, s, "picows"),
        "lean_websockets": lambda w, s: lean_run(w, s, "websockets"),
        "bare_picows": bare_picows_run,
        "bare_websockets": bare_websockets_run,
    }
    if peer:
        paths["cryptofeed"] = cryptofeed_run
    return paths


def measure(workload: Workload, repeats: int, peer: bool) -> dict[str, list[float]]:
    """One warm-up (excluded) then ``repeats`` rounds of every path, alternating."""
    FRAMES_PER_READ.clear()
    paths = _paths(peer)
    rates: dict[str, list[float]] = {name: [] for name in paths}
    with (
        tempfile.TemporaryDirectory() as directory,
        loopback_process(workload, Path(directory)) as server,
    ):
        for path in paths.values():
            asyncio.run(path(workload, server))
        for _ in range(repeats):
            for name, path in paths.items():
                rates[name].append(asyncio.run(path(workload, server)))
    return rates


def _peer_version() -> str | None:
    try:
        import cryptofeed
    except ImportError:
        return None
    return getattr(cryptofeed, "__version__", "") or _dist_version("cryptofeed")


def run(ctx: Context) -> list[Result]:
    if importlib.util.find_spec("picows") is None:
        raise DataMissing("picows is absent: pip install 'lean-data[fast]' (figure 14 needs it)")
    workload = kline_workload(ctx, ctx.scale(FULL_FRAMES, QUICK_FRAMES))
    version = _peer_version()
    rates = measure(workload, ctx.repeats, version is not None)
    median = {name: statistics.median(values) for name, values in rates.items()}
    lean, slow = median["lean_picows"], median["lean_websockets"]
    notes = (
        f"{workload.describe()}; BinanceLoopbackServer in a child process, frames pre-encoded "
        f"and written {CHUNK_BYTES // 1024} KiB at a time; one callback; median of "
        f"{ctx.repeats}; ceiling: bare picows {median['bare_picows']:,.0f} msg/s"
    )
    extra: dict[str, Any] = {name: [round(v) for v in values] for name, values in rates.items()}
    extra["frames"] = len(workload.frames)
    extra["frames_per_read"] = [round(v, 1) for v in FRAMES_PER_READ]
    if FRAMES_PER_READ:
        notes += (
            f"; picows frames per read (emit_many batch): {statistics.median(FRAMES_PER_READ):.1f}"
        )
    results = []
    if version is not None:
        peer = median["cryptofeed"]
        results.append(
            Result(f"{_FIGURE}, picows", "msg/s", lean, f"cryptofeed {version} FeedHandler",
                   peer, target=f">= {TARGET_PEER}x cryptofeed's FeedHandler",
                   met=lean >= TARGET_PEER * peer, notes=notes, extra=extra)
        )  # fmt: skip
    else:
        results.append(
            Result(f"{_FIGURE}, picows", "msg/s", lean, "cryptofeed (absent)", None,
                   target=f">= {TARGET_PEER}x cryptofeed's FeedHandler", notes=notes, extra=extra)
        )  # fmt: skip
    results += [
        Result(f"{_FIGURE}, picows", "msg/s", lean, "lean_data, websockets transport", slow,
               target=f">= {TARGET_TRANSPORT}x the websockets transport",
               met=lean >= TARGET_TRANSPORT * slow, notes="same engine, same feed, other client"),
        Result(f"{_FIGURE}, picows", "msg/s", lean, "bare picows client", median["bare_picows"],
               notes="ceiling: what server + kernel + picows carry"),
        Result(f"{_FIGURE}, websockets", "msg/s", slow, "bare websockets client",
               median["bare_websockets"], notes="ceiling of the websockets client"),
    ]  # fmt: skip
    return results


# --------------------------------------------------------------------------- the server


def _serve(path: str) -> None:
    """Child process: a BinanceLoopbackServer sending the frames pre-encoded, in bulk."""
    from lean_data.testing.binance import BinanceLoopbackServer, _Session

    class BulkSession(_Session):
        """Binance's protocol as usual; data frames pre-encoded, 256 KiB per write."""

        async def _send_loop(self) -> None:
            wanted = self.server.all_streams  # type: ignore[attr-defined]
            while not wanted <= self.streams.keys():
                self.wake.clear()
                await self.wake.wait()
            for chunk in self.server.chunks:  # type: ignore[attr-defined]
                self.ws.transport.write(chunk)
                await self.ws.drain()

    class BulkServer(BinanceLoopbackServer):
        async def _handle(self, ws: Any) -> None:
            self.connections += 1
            session = BulkSession(self, ws)
            self._sessions.add(session)
            try:
                await session.run()
            finally:
                self._sessions.discard(session)

    server = BulkServer(None, ping_interval=None)
    with open(path) as frames:
        for line in frames:
            stream, _, raw = line.rstrip("\n").partition("\t")
            server.push(stream, raw)
    server.all_streams = {stream for stream, _ in server.frames}  # type: ignore[attr-defined]
    server.chunks = _chunks([text.encode() for _, text in server.frames])  # type: ignore[attr-defined]

    async def main() -> None:
        async with server:
            print(server.ws_url, server.rest_url, flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())


def _chunks(payloads: list[bytes]) -> list[bytes]:
    """Encode server text frames (unmasked, RFC 6455) and join them into ~256 KiB writes."""
    chunks, current, size = [], [], 0
    for payload in payloads:
        n = len(payload)
        if n < 126:
            header = bytes((0x81, n))
        elif n < 65536:
            header = bytes((0x81, 126)) + n.to_bytes(2, "big")
        else:
            header = bytes((0x81, 127)) + n.to_bytes(8, "big")
        current += (header, payload)
        size += len(header) + n
        if size >= CHUNK_BYTES:
            chunks.append(b"".join(current))
            current, size = [], 0
    if current:
        chunks.append(b"".join(current))
    return chunks


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--serve":
        _serve(sys.argv[2])
    else:
        print(__doc__)
