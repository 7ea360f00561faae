"""Shared pieces of the gateway tests: the real FTX bars, a controllable live feed, a
websocket reader, and an engine serving on a free loopback port."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import msgpack
import orjson

from lean_data import Config, DataEngine
from lean_data.gateway import Gateway
from lean_data.loaders import load_file
from lean_data.models import TradeBar
from tests.conftest import FIXTURES
from tests.helpers import IdleFeed

FTX = FIXTURES / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"
SYMBOL = "BTC-PERP"
TIMEOUT_S = 20.0
_BARS: list[TradeBar] = []


def bars(n: int, start: int = 0) -> list[TradeBar]:
    """The real FTX BTC-PERP minute bars ``start`` .. ``start + n`` (loaded once)."""
    if not _BARS:
        _BARS.extend(b for b in load_file(FTX, symbol=SYMBOL) if isinstance(b, TradeBar))
    return _BARS[start : start + n]


def renamed(items: Sequence[TradeBar], symbol: str) -> list[TradeBar]:
    """The same bars under another symbol name (a second instrument for filtering tests)."""
    return [
        TradeBar(symbol, b.ts_event, b.open, b.high, b.low, b.close, b.volume, b.resolution)
        for b in items
    ]


def ohlcv(item: TradeBar) -> tuple[Any, ...]:
    """What a client must receive of a bar, as sent."""
    return (item.symbol, item.ts_event, item.open, item.high, item.low, item.close, item.volume)


def frame_ohlcv(frame: dict[str, Any]) -> tuple[Any, ...]:
    """The same fields read from a received frame."""
    keys = ("symbol", "ts_event", "open", "high", "low", "close", "volume")
    return tuple(frame[k] for k in keys)


class LiveFeed(IdleFeed):
    """A live feed the test drives with ``await feed.emit(bar)``; declares a staleness limit
    the way StreamingFeed does (``stale_after_s``), when ``stale_after`` is given."""

    def __init__(self, name: str, *, stale_after: float | None = None) -> None:
        super().__init__(name, symbols=None)
        self._stale_after = stale_after

    def stale_after_s(self, symbol: str, now_ns: int) -> float | None:
        return self._stale_after


async def receive_message(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next message, JSON text or msgpack binary, as a dict."""
    message = await ws.receive(timeout=TIMEOUT_S)
    if message.type is aiohttp.WSMsgType.TEXT:
        decoded: dict[str, Any] = orjson.loads(message.data)
        return decoded
    if message.type is aiohttp.WSMsgType.BINARY:
        unpacked: dict[str, Any] = msgpack.unpackb(message.data)
        return unpacked
    raise AssertionError(f"expected a data frame, got {message.type!r} {message.data!r}")


async def read_items(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[dict[str, Any]]:
    """Read ``n`` item frames (bar, quote, tick); fail on anything else."""
    out = []
    while len(out) < n:
        message = await receive_message(ws)
        assert message["type"] in ("bar", "quote", "tick"), message
        out.append(message)
    return out


async def hello_and_subscribe(
    ws: aiohttp.ClientWebSocketResponse, symbols: list[str], **extra: Any
) -> dict[str, Any]:
    """Read the hello, subscribe to ``symbols`` and return the acknowledgement."""
    hello = await receive_message(ws)
    assert hello["type"] == "hello", hello
    await ws.send_str(orjson.dumps({"op": "subscribe", "symbols": symbols, **extra}).decode())
    ack = await receive_message(ws)
    assert ack["type"] == "subscribed", ack
    return ack


@contextlib.asynccontextmanager
async def serving(
    engine: DataEngine | None = None, **options: Any
) -> AsyncIterator[tuple[DataEngine, Gateway]]:
    """A started engine (no storage unless given) serving on a free port; stopped after."""
    engine = engine or DataEngine(Config(db_path=None))
    await engine.start()
    try:
        gateway = await engine.serve(port=0, **options)
        yield engine, gateway
    finally:
        await engine.stop()
