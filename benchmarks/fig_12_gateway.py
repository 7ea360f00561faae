"""Figure 12: gateway fan-out, frames/s to 100 websocket clients vs a bare aiohttp server.

Workload: the real FTX BTC-PERP 1-minute bars of ``nautilus_trader/btc-perp-20211231-
20220201_1m.csv`` (the first 3,000; ``--quick``: 40 bars to 5 clients), pre-built as
:class:`~lean_data.models.TradeBar` objects.

Measured (median of ``ctx.repeats``, each on a fresh server and client process):

- gateway: ``DataEngine(Config(db_path=None))`` with ``engine.serve(port=0,
  queue_size=<bars>)`` (queues large enough that nothing is dropped), a feed
  (``_common.BarFeed``) that emits the bars; every bar goes emit -> inbox -> validate ->
  score -> continuity -> the gateway sink -> encoded once (``item_fields`` + orjson, or
  msgpack) -> each client's queue -> its sender task -> ``send_frame``.
- baseline, same run, same clients: a bare ``aiohttp`` websocket server speaking the same
  hello / subscribe handshake that sends the same frames, encoded before the clock starts,
  in a loop ``for frame: for client: await ws.send_frame(data, opcode)`` (no engine, no
  queues, no encoding): what aiohttp alone costs for the same bytes.

The clock runs from the first emit (or the baseline's first send) until the client
process reports that every client has received every frame. The 100 clients live in one
separate process (``python fig_12_gateway.py --clients URL N FRAMES``: aiohttp clients
that subscribe to ``*`` and count frames without decoding them), so the server's event loop
does only the server's work; on a 2-core machine the two processes share the cores.
Result: frames/s = bars x clients / seconds, for JSON and for msgpack.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # the client process: make _common and lean_data importable
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from _common import BarFeed, Context, Result
from aiohttp import web

from lean_data import Config, DataEngine
from lean_data.gateway.encode import Frame, encode, item_fields
from lean_data.loaders import load_file
from lean_data.models import TradeBar
from lean_data.quality.levels import CLEAN

NAME = "gateway fan-out to 100 websocket clients (frames/s)"
FIGURE = "12 bars -> gateway -> 100 websocket clients"
DATA = "nautilus_trader/btc-perp-20211231-20220201_1m.csv"
SYMBOL = "BTC-PERP"


# ---------------------------------------------------------------------------- clients
async def _client_main(url: str, clients: int, frames: int) -> None:
    """Connect ``clients`` websockets, subscribe, say "ready", count ``frames`` each, "done"."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        sockets = await asyncio.gather(*(session.ws_connect(url) for _ in range(clients)))
        for ws in sockets:
            await ws.receive()  # hello
            await ws.send_str('{"op": "subscribe", "symbols": ["*"]}')
            await ws.receive()  # subscribed

        async def count(ws: aiohttp.ClientWebSocketResponse) -> None:
            for _ in range(frames):
                message = await ws.receive()
                if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    raise RuntimeError(f"client lost its connection: {message!r}")

        print("ready", flush=True)
        await asyncio.gather(*(count(ws) for ws in sockets))
        print("done", flush=True)
        await asyncio.gather(*(ws.close() for ws in sockets))


class ClientProcess:
    """The client side, in its own interpreter: start, wait until subscribed, wait done."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, url: str, clients: int, frames: int) -> ClientProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--clients", url, str(clients), str(frames),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        started = cls(process)
        await started.expect("ready")
        return started

    async def expect(self, word: str) -> None:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 300)
        if line.decode().strip() != word:
            raise RuntimeError(f"client process said {line!r}, expected {word!r}")

    async def finish(self) -> None:
        if await self.process.wait() != 0:
            raise RuntimeError(f"client process exited {self.process.returncode}")


# ---------------------------------------------------------------------------- servers
async def gateway_run(bars: Sequence[Any], clients: int, fmt: str) -> float:
    """Seconds from the first emit until every client got every bar, through the gateway."""
    engine = DataEngine(Config(db_path=None))
    feed = BarFeed("ftx")
    engine.add_feed(feed)
    await engine.start()
    try:
        gateway = await engine.serve(port=0, queue_size=len(bars) + 1, max_lag_s=None)
        await engine.subscribe_symbol(SYMBOL)
        url = f"{gateway.url}/ws?format={fmt}"
        client = await ClientProcess.start(url, clients, len(bars))
        started = time.perf_counter()
        for bar in bars:
            await feed.emit(bar)
        await client.expect("done")
        elapsed = time.perf_counter() - started
        await client.finish()
        dropped = gateway.statistics()["dropped"]
        if dropped:
            raise RuntimeError(f"the gateway dropped {dropped} frames; the figure needs none")
    finally:
        await engine.stop()
    return elapsed


async def baseline_run(frames: Sequence[Frame], clients: int) -> float:
    """Seconds for a bare aiohttp server to send ``frames`` to every client."""
    sockets: list[web.WebSocketResponse] = []
    all_in = asyncio.Event()
    finished = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str('{"type": "hello"}')
        await ws.receive()  # the subscribe message
        await ws.send_str('{"type": "subscribed", "symbols": ["*"]}')
        sockets.append(ws)
        if len(sockets) == clients:
            all_in.set()
        await finished.wait()
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        client = await ClientProcess.start(f"http://127.0.0.1:{port}/ws", clients, len(frames))
        await all_in.wait()
        started = time.perf_counter()
        for opcode, data in frames:
            for ws in sockets:
                await ws.send_frame(data, opcode)
        await client.expect("done")
        elapsed = time.perf_counter() - started
        finished.set()
        await client.finish()
    finally:
        finished.set()
        await runner.cleanup()
    return elapsed


# ---------------------------------------------------------------------------- figure
def load_bars(path: Path, n: int) -> list[TradeBar]:
    return [b for b in load_file(path, symbol=SYMBOL) if isinstance(b, TradeBar)][:n]


def encoded(bars: Sequence[Any], fmt: str) -> list[Frame]:
    """The frames the gateway sends for ``bars`` (a clean verdict), encoded up front."""
    return [encode(item_fields("ftx", bar, CLEAN), fmt) for bar in bars]


def _median(run: Callable[[], Awaitable[float]], repeats: int) -> float:
    return statistics.median(asyncio.run(run()) for _ in range(repeats))  # type: ignore[arg-type]


def run(ctx: Context) -> list[Result]:
    """Measure figure 12 and return its result rows."""
    bars = load_bars(ctx.require_data(DATA), ctx.scale(3_000, 40))
    clients = ctx.scale(100, 5)
    frames = len(bars) * clients
    out: list[Result] = []
    for fmt in ("json", "msgpack"):
        payload = encoded(bars, fmt)
        gateway_s = _median(lambda fmt=fmt: gateway_run(bars, clients, fmt), ctx.repeats)
        bare_s = _median(lambda payload=payload: baseline_run(payload, clients), ctx.repeats)
        size = sum(len(p) for p in payload) / len(payload)
        out.append(
            Result(
                FIGURE + f" ({fmt})",
                "frames/s",
                frames / gateway_s,
                f"bare aiohttp server, same pre-encoded {fmt} frames",
                frames / bare_s,
                notes=(
                    f"{len(bars):,} real FTX bars x {clients} clients, {size:.0f} B/frame; "
                    f"first emit -> every client received every bar; nothing dropped"
                ),
                extra={"gateway_s": gateway_s, "baseline_s": bare_s, "frame_bytes": size},
            )
        )
    return out


if __name__ == "__main__" and sys.argv[1:2] == ["--clients"]:
    asyncio.run(_client_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
