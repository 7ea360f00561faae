"""Both websocket transports against real peers on loopback: same frames, same errors.

Every test runs once per transport (``websockets``, ``picows``) and asserts the same outcome:
real Binance frames (the cryptofeed capture ``tests/fixtures/cryptofeed/BINANCE.ws.1.0``)
arrive complete and in order; a dropped connection is reconnected and what the server
re-sends is delivered; malformed frames are counted and skipped; silence is caught by the
staleness watch (feed) and by the ping timeout (transport); close codes and refused
handshakes become the same lean_data errors; a flooding server is held back by TCP once the
byte budget is buffered, and nothing it sent is lost.

The feed test modules themselves (tests/test_binance_feed.py, ...) run under either
transport with ``LEAN_DATA_WS_TRANSPORT=websockets|picows``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from http import HTTPStatus
from socket import SO_RCVBUF, SOL_SOCKET

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from lean_data import Config, DataEngine
from lean_data.errors import ConfigError, FeedConnectError, RateLimitError
from lean_data.feeds.binance import BinanceDataFeed
from lean_data.feeds.kraken import KrakenBookFeed
from lean_data.feeds.translate import translate
from lean_data.feeds.transport import (
    TRANSPORTS,
    WebSocketOptions,
    WebSocketTransport,
    open_websocket,
    resolve_transport,
)
from lean_data.models import MarketData
from lean_data.testing import BinanceLoopbackServer

from .conftest import FIXTURES, eventually
from .test_binance_feed import FAST, SYMBOL, key, push_klines, real_bars

CAPTURE = FIXTURES / "cryptofeed/BINANCE.ws.1.0"
KIB = 1024
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")  # a peer aborted on purpose


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """Each transport in turn (picows skipped when it is not installed)."""
    if request.param == "picows":
        pytest.importorskip("picows")
    name: str = request.param
    return name


def text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


async def read_all(ws: WebSocketTransport, count: int) -> list[str]:
    frames: list[str] = []
    async for raw in ws:
        frames.append(text(raw))
        if len(frames) == count:
            break
    return frames


async def read_to_end(ws: WebSocketTransport) -> tuple[int, BaseException | None]:
    """Read until the connection ends; return the frames read and what it raised."""
    count = 0
    try:
        async with asyncio.timeout(30):  # a hang fails the test; never reached otherwise
            async for _ in ws:
                count += 1
    except TimeoutError:
        raise
    except Exception as exc:
        return count, exc
    return count, None


# ------------------------------------------------------------------ frames in order
async def test_real_frames_arrive_complete_and_in_order(transport: str) -> None:
    async with BinanceLoopbackServer(CAPTURE, ping_interval=None) as server:
        streams = sorted({stream for stream, _ in server.frames})
        expected = [frame for stream, frame in server.frames if stream in streams]
        assert len(expected) > 50
        ws = await open_websocket(server.stream_url(*streams), WebSocketOptions(), transport)
        try:
            got = await read_all(ws, len(expected))
        finally:
            await ws.close()
    assert got == expected
    assert ws.name == transport


async def test_recv_batch_takes_every_frame_already_received_in_order(transport: str) -> None:
    async with BinanceLoopbackServer(CAPTURE, ping_interval=None) as server:
        streams = sorted({stream for stream, _ in server.frames})
        expected = [frame for stream, frame in server.frames if stream in streams]
        ws = await open_websocket(server.stream_url(*streams), WebSocketOptions(), transport)
        batches: list[list[bytes | str]] = []
        try:
            while sum(map(len, batches)) < len(expected):
                batches.append(await ws.recv_batch())
        finally:
            await ws.close()
        stats = ws.statistics()
    assert [text(raw) for batch in batches for raw in batch] == expected
    assert all(batches)
    if transport == "picows":  # a read carries many frames; counters are exposed
        assert len(batches) < len(expected)
        assert (stats.frames, stats.buffered_frames, stats.buffered_bytes) == (len(expected), 0, 0)
        assert stats.batches == len(batches)


async def test_take_ready_gives_the_frames_already_received_without_waiting(
    transport: str,
) -> None:
    """picows hands out what its queue holds with no coroutine (None once it is empty);
    websockets only when awaited (None always). Read the read loop's way, every frame
    arrives once, in order."""
    async with BinanceLoopbackServer(CAPTURE, ping_interval=None) as server:
        streams = sorted({stream for stream, _ in server.frames})
        expected = [frame for stream, frame in server.frames if stream in streams]
        ws = await open_websocket(server.stream_url(*streams), WebSocketOptions(), transport)
        got: list[bytes | str] = []
        ready: list[list[bytes | str]] = []
        try:
            if transport == "picows":  # frames queue while nobody reads
                await eventually(lambda: ws.statistics().buffered_frames > 0)
            while len(got) < len(expected):
                frames = ws.take_ready()
                if frames is not None:
                    ready.append(frames)
                got += frames or await ws.recv_batch()
            assert ws.take_ready() is None  # nothing is left
        finally:
            await ws.close()
    assert [text(raw) for raw in got] == expected
    if transport == "picows":
        assert ready
        assert all(ready)
    else:
        assert not ready


# ------------------------------------------------------------------ through the feed
async def deliver(feed: BinanceDataFeed, expected: int) -> list[MarketData]:
    seen: list[MarketData] = []
    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(lambda s, b, q: seen.append(b))
        await engine.subscribe_symbol(SYMBOL)
        await eventually(lambda: len(seen) >= expected)
        await engine.wait_idle()
    return seen


async def test_a_dropped_connection_reconnects_and_loses_nothing_resent(transport: str) -> None:
    bars = real_bars(40)  # 80 frames; each connection is dropped after 30, the next resumes
    async with BinanceLoopbackServer(resume=True) as server:
        push_klines(server, bars)
        server.faults.drop_after = 30
        feed = BinanceDataFeed(
            ws_url=server.ws_url, rest_url=server.rest_url, backoff=FAST, rng=lambda: 1.0,
            transport=transport,
        )  # fmt: skip
        assert feed.transport == transport
        seen = await deliver(feed, len(bars))
        server.faults.drop_after = None
    assert [key(b) for b in seen] == [key(b) for b in bars]  # repeats were duplicates
    assert feed.sessions >= 3
    assert server.connections == feed.sessions


async def test_malformed_frames_are_counted_and_the_session_goes_on(transport: str) -> None:
    bars = real_bars(20)
    async with BinanceLoopbackServer() as server:
        push_klines(server, bars)
        server.faults.malformed_at = frozenset({3, 10, 25})
        server.faults.truncated_at = frozenset({17})
        feed = BinanceDataFeed(
            ws_url=server.ws_url, rest_url=server.rest_url, backoff=FAST, transport=transport
        )
        seen = await deliver(feed, len(bars))
    assert [key(b) for b in seen] == [key(b) for b in bars]
    assert feed.malformed_frames == 4
    assert feed.sessions == 1


async def test_a_silent_server_is_stale_and_the_feed_reconnects(transport: str) -> None:
    bars = real_bars(20)
    async with BinanceLoopbackServer(resume=True) as server:
        push_klines(server, bars)
        server.faults.silent_after = 10  # socket open, pings answered, no data
        feed = BinanceDataFeed(
            ws_url=server.ws_url, rest_url=server.rest_url, backoff=FAST, rng=lambda: 1.0,
            cadence_s=0.2, transport=transport,
        )  # fmt: skip
        seen = await deliver(feed, len(bars))
    assert [key(b) for b in seen] == [key(b) for b in bars]
    assert feed.stale_events >= 1
    assert feed.sessions >= 2


@pytest.fixture
async def deaf_server() -> AsyncIterator[str]:
    """A websocket server that completes the handshake, then never reads (no pong)."""

    async def handler(ws: ServerConnection) -> None:
        ws.transport.pause_reading()
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_a_peer_that_stops_answering_pings_is_dropped(
    transport: str, deaf_server: str
) -> None:
    options = WebSocketOptions(ping_interval_s=0.1, ping_timeout_s=0.1, close_timeout_s=0.1)
    ws = await open_websocket(deaf_server, options, transport)
    count, error = await read_to_end(ws)
    await ws.close()
    assert count == 0
    assert error is not None
    translated = translate(error, "t")
    assert isinstance(translated, FeedConnectError)
    assert translated.retryable
    assert str(translated).startswith("websocket: ")


# ------------------------------------------------------------------ close codes
@pytest.mark.parametrize(
    ("close_code", "clean"),
    [(None, False), (1011, False), (1008, False), (1000, True), (1001, True)],
    ids=["abort-1006", "1011", "1008", "1000", "1001"],
)
async def test_close_codes_end_or_raise_the_same_way(
    transport: str, close_code: int | None, clean: bool
) -> None:
    async with BinanceLoopbackServer(CAPTURE, ping_interval=None) as server:
        streams = sorted({stream for stream, _ in server.frames})
        server.faults.drop_after = 5
        server.faults.drop_close_code = close_code
        ws = await open_websocket(server.stream_url(*streams), WebSocketOptions(), transport)
        count, error = await read_to_end(ws)
        await ws.close()
    assert count == 5
    if clean:
        assert error is None  # the feed's reader returns: "the server closed the connection"
        return
    assert error is not None
    translated = translate(error, "t")
    assert type(translated) is FeedConnectError
    assert translated.retryable
    assert str(translated).startswith("websocket: ")


async def test_a_refused_handshake_is_the_same_http_error(transport: str) -> None:
    def refuse(connection: ServerConnection, request: Request) -> Response:
        response = connection.respond(HTTPStatus.TOO_MANY_REQUESTS, "slow down\n")
        response.headers["Retry-After"] = "7"
        return response

    async with serve(lambda ws: ws.wait_closed(), "127.0.0.1", 0, process_request=refuse) as s:
        url = f"ws://127.0.0.1:{s.sockets[0].getsockname()[1]}"
        with pytest.raises(Exception, match="429") as caught:  # each client's own error
            await open_websocket(url, WebSocketOptions(), transport)
    translated = translate(caught.value, "t")
    assert isinstance(translated, RateLimitError)
    assert translated.retry_after == 7.0
    assert "HTTP 429: websocket handshake refused: Too Many Requests" in str(translated)


# ------------------------------------------------------------------ byte budget
FLOOD_FRAMES, FLOOD_SIZE = 64, 256 * KIB


@pytest.fixture
async def flood() -> AsyncIterator[tuple[str, list[int]]]:
    """A server sending 64 numbered frames of 256 KiB as fast as TCP lets it."""
    sent = [0]

    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            for n in range(FLOOD_FRAMES):
                await ws.send(f"{n:08d}".encode() + b"x" * (FLOOD_SIZE - 8))
                sent[0] += 1
            await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, max_size=None, ping_interval=None) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", sent


async def test_a_flooding_server_is_paused_at_the_budget_and_nothing_is_lost(
    transport: str, flood: tuple[str, list[int]]
) -> None:
    url, sent = flood
    options = WebSocketOptions(max_message_bytes=FLOOD_SIZE + KIB, max_queue=4)
    ws = await open_websocket(url, options, transport)
    try:
        await eventually(lambda: not ws.transport.is_reading(), message="reading never paused")
        stats = ws.statistics()
        assert sent[0] < FLOOD_FRAMES  # held back by TCP, not buffered here
        if transport == "picows":
            assert stats.read_pauses == 1
            assert stats.buffered_bytes is not None
            assert options.buffer_bytes <= stats.buffered_bytes
            # past the budget by at most the socket read that crossed it (picows reads all
            # the kernel has queued, at most its receive buffer) and the rest of the frame
            # that read completed: its first bytes came in earlier reads and wait in picows'
            # read buffer uncounted until the frame is whole (seen: 10 frames counted at once
            # under load, 42 KB beyond budget + receive buffer)
            rcvbuf = ws.transport.get_extra_info("socket").getsockopt(SOL_SOCKET, SO_RCVBUF)
            assert stats.buffered_bytes <= options.buffer_bytes + rcvbuf + FLOOD_SIZE
        frames = await read_all(ws, FLOOD_FRAMES)
    finally:
        await ws.close()
    assert [int(frame[:8]) for frame in frames] == list(range(FLOOD_FRAMES))
    assert all(len(frame) == FLOOD_SIZE for frame in frames)


# ------------------------------------------------------------------ choosing one
def test_transport_names_resolve_and_unknown_ones_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LEAN_DATA_WS_TRANSPORT", raising=False)
    assert resolve_transport("websockets") == "websockets"
    assert resolve_transport("auto") in TRANSPORTS
    monkeypatch.setenv("LEAN_DATA_WS_TRANSPORT", "websockets")
    assert resolve_transport("auto") == "websockets"
    assert BinanceDataFeed().transport == "websockets"
    assert KrakenBookFeed(transport="websockets").transport == "websockets"
    with pytest.raises(ConfigError, match="transport: expected 'auto', 'websockets' or 'picows'"):
        BinanceDataFeed(transport="aiohttp")
    monkeypatch.setenv("LEAN_DATA_WS_TRANSPORT", "nope")
    with pytest.raises(ConfigError, match="found 'nope'"):
        resolve_transport("auto")


def test_auto_prefers_picows_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("picows")
    monkeypatch.delenv("LEAN_DATA_WS_TRANSPORT", raising=False)
    assert resolve_transport("auto") == "picows"
    assert BinanceDataFeed().transport == "picows"


def test_without_picows_auto_falls_back_and_picows_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LEAN_DATA_WS_TRANSPORT", raising=False)
    monkeypatch.setitem(sys.modules, "picows", None)  # how Python spells "not installed"
    assert resolve_transport("auto") == "websockets"
    with pytest.raises(ConfigError) as caught:
        BinanceDataFeed(transport="picows")
    assert str(caught.value) == "transport 'picows': not installed; pip install 'lean-data[fast]'"
