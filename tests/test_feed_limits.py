"""Bounded and loud: feeds against hostile loopback servers.

A venue that asks for a 10^9 s ``Retry-After``, answers 500 forever, accepts a request and
never answers, or floods 1 MiB frames at a consumer that never reads must not hold a feed
(or the process's memory) beyond the configured limits. Each test sets small limits and
asserts the operation ended, and that it ended within the limit plus a generous margin.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from http import HTTPStatus
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from lean_data.errors import ConfigError, FeedError, RetriesExhaustedError
from lean_data.feeds.alpaca import AlpacaDataFeed
from lean_data.feeds.backoff import BackoffPolicy
from lean_data.feeds.binance import BinanceDataFeed
from lean_data.feeds.streaming import MIB, StreamingFeed
from lean_data.models import NS_PER_MINUTE, MarketData, Resolution
from lean_data.secrets import Credentials
from lean_data.testing import BinanceLoopbackServer, kline_event

from .conftest import eventually
from .test_alpaca_feed import feed_for as alpaca_feed
from .test_alpaca_feed import server_for as alpaca_server
from .test_alpaca_feed import vendor_minutes
from .test_binance_feed import STREAM, SYMBOL, real_bars

MARGIN_S = 5.0  # generous: a loaded CI machine must not turn a bound into a flaky failure
FAST = BackoffPolicy(base_s=0.001, cap_s=0.004)
KEYS = Credentials.of("key", "secret")
START = 1_700_000_000_000_000_000


def binance(
    ws_url: str = "ws://127.0.0.1:9", rest_url: str = "", **kwargs: object
) -> BinanceDataFeed:
    return BinanceDataFeed(ws_url=ws_url, rest_url=rest_url, rng=lambda: 1.0, **kwargs)  # type: ignore[arg-type]


def alpaca(
    ws_url: str = "ws://127.0.0.1:9", rest_url: str = "", **kwargs: object
) -> AlpacaDataFeed:
    return AlpacaDataFeed(
        credentials=KEYS,
        stream_url=ws_url,
        data_url=rest_url or "http://127.0.0.1:9",
        rng=lambda: 1.0,
        **kwargs,  # type: ignore[arg-type]
    )


async def history(feed: StreamingFeed, symbol: str) -> list[MarketData]:
    return await feed.get_historical_data(
        symbol, START, START + 10 * NS_PER_MINUTE, Resolution.MINUTE
    )


def warnings_of(caplog: pytest.LogCaptureFixture, kind: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if f": {kind}: " in r.getMessage()]


# ------------------------------------------------------------------ hostile HTTP servers
class HttpServer:
    """An aiohttp app on 127.0.0.1 answering every path with ``handler``; records hit times."""

    def __init__(self, handler: Callable[[web.Request], object]) -> None:
        self.handler = handler
        self.hits: list[float] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _any(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(time.monotonic())
        result = self.handler(request)
        if asyncio.iscoroutine(result):
            result = await result
        assert isinstance(result, web.StreamResponse)
        return result

    async def __aenter__(self) -> HttpServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def server_error(request: web.Request) -> web.Response:
    return web.Response(status=500, text="internal error")


class Silent:
    """A TCP server that accepts connections and never answers (nor closes them)."""

    def __init__(self) -> None:
        self.accepted = 0
        self.url = ""
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)

    async def __aenter__(self) -> Silent:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()


# ------------------------------------------------------------------ Retry-After cap
async def test_rest_retry_after_of_a_billion_seconds_waits_only_the_cap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bars = real_bars(10)
    cap = 0.5
    async with BinanceLoopbackServer(klines={"BTCBUSD": bars}) as server:
        server.faults.rate_limit_next = 1
        server.faults.retry_after = 10**9
        feed = binance(
            rest_url=server.rest_url,
            backoff=BackoffPolicy(base_s=0.001, cap_s=0.004, retry_after_cap_s=cap),
        )
        start, end = bars[0].ts_event, bars[-1].ts_event + NS_PER_MINUTE
        began = time.monotonic()
        got = await feed.get_historical_data(SYMBOL, start, end, Resolution.MINUTE)
        elapsed = time.monotonic() - began
        await feed.close()
    assert [r.status for r in server.rest_requests] == [429, 200]
    assert len(got) == len(bars)
    assert list(feed.retry_delays) == [cap]
    assert cap <= elapsed < cap + MARGIN_S
    (warning,) = warnings_of(caplog, "rate_limited")[:1]
    assert "asked to wait 1e+09s; waiting 0.5s" in warning


async def test_alpaca_rest_retry_after_of_a_billion_seconds_waits_only_the_cap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bars = vendor_minutes()[:10]
    cap = 0.5
    async with alpaca_server(bars={"SPY": bars}) as server:
        server.faults.rate_limit_next = 1
        server.faults.retry_after = 10**9
        feed = alpaca_feed(
            server, backoff=BackoffPolicy(base_s=0.001, cap_s=0.004, retry_after_cap_s=cap)
        )
        start, end = bars[0].ts_event, bars[-1].ts_event + NS_PER_MINUTE
        began = time.monotonic()
        got = await feed.get_historical_data("SPY", start, end, Resolution.MINUTE)
        elapsed = time.monotonic() - began
        await feed.close()
    assert [r.status for r in server.rest_requests] == [429, 200]
    assert len(got) == len(bars)
    assert list(feed.retry_delays) == [cap]
    assert cap <= elapsed < cap + MARGIN_S
    assert any(
        "asked to wait 1e+09s; waiting 0.5s" in w for w in warnings_of(caplog, "rate_limited")
    )


@pytest.mark.parametrize("make", [binance, alpaca], ids=["binance", "alpaca"])
async def test_handshake_retry_after_of_a_billion_seconds_reconnects_within_the_cap(
    make: Callable[..., StreamingFeed], caplog: pytest.LogCaptureFixture
) -> None:
    cap = 0.5
    handshakes: list[float] = []

    def refuse(connection: ServerConnection, request: Request) -> Response:
        handshakes.append(time.monotonic())
        response = connection.respond(HTTPStatus.TOO_MANY_REQUESTS, "slow down\n")
        response.headers["Retry-After"] = "1000000000"
        return response

    async def never(ws: ServerConnection) -> None:  # pragma: no cover - never accepted
        await ws.wait_closed()

    async with serve(never, "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        feed = make(
            ws_url=f"ws://127.0.0.1:{port}",
            backoff=BackoffPolicy(base_s=0.001, cap_s=0.004, retry_after_cap_s=cap),
        )
        assert await feed.connect()  # the refusal is retryable: the feed goes on trying
        await eventually(lambda: len(handshakes) >= 2, timeout=cap + MARGIN_S)
        await feed.disconnect()
    assert feed.reconnect_delays[0] == cap
    assert cap * 0.9 <= handshakes[1] - handshakes[0] < cap + MARGIN_S
    assert any(
        "asked to wait 1e+09s; waiting 0.5s" in w for w in warnings_of(caplog, "rate_limited")
    )


# ------------------------------------------------------------------ retry budgets
@pytest.mark.parametrize(
    ("make", "symbol"), [(binance, "BTC/USDT"), (alpaca, "SPY")], ids=["binance", "alpaca"]
)
async def test_server_error_forever_ends_with_the_typed_error_within_the_time_budget(
    make: Callable[..., StreamingFeed], symbol: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The pinned rng makes the waits 0.05, 0.1, 0.2, 0.2, ... s: the budget falls mid-wait,
    # so the usual end is "the next wait ends late". A slow machine may instead reach the
    # budget inside an attempt; the error still names the venue's last answer either way.
    budget = 0.85
    async with HttpServer(server_error) as server:
        feed = make(
            rest_url=server.url,
            backoff=BackoffPolicy(base_s=0.05, cap_s=0.2),
            request_attempts=10_000,
            request_budget_s=budget,
        )
        began = time.monotonic()
        with pytest.raises(RetriesExhaustedError, match="HTTP 500") as caught:
            await history(feed, symbol)
        elapsed = time.monotonic() - began
        await feed.close()
    error = caught.value
    assert not error.retryable
    assert error.attempts >= 2
    assert elapsed < budget + MARGIN_S
    assert error.elapsed_s < budget + MARGIN_S
    # one wait (and its warning) between attempts, none after the last
    assert len(warnings_of(caplog, "request_failed")) == error.attempts - 1
    if "ran out during attempt" in str(error):  # the cut attempt may not have reached it
        assert error.attempts - 1 <= len(server.hits) <= error.attempts
    else:
        assert "ends late" in str(error)
        assert error.attempts == len(server.hits)
    assert warnings_of(caplog, "retries_exhausted")


async def test_the_budget_running_out_inside_an_attempt_still_names_the_last_failure() -> None:
    async def error_then_hang(request: web.Request) -> web.Response:
        if len(server.hits) == 1:
            return server_error(request)
        await asyncio.Event().wait()  # the second attempt never gets an answer
        raise AssertionError("unreachable")

    async with HttpServer(error_then_hang) as server:
        feed = binance(
            rest_url=server.url, backoff=FAST, http_timeout_s=300.0, request_budget_s=1.0
        )
        with pytest.raises(RetriesExhaustedError) as caught:
            await history(feed, "BTC/USDT")
        await feed.close()
    last = "last: HTTP 500: .*internal error.*; then the time budget ran out during attempt 2$"
    assert re.search(last, str(caught.value))
    assert caught.value.attempts == len(server.hits) == 2
    assert isinstance(caught.value.__cause__, FeedError)


async def test_server_error_forever_ends_after_the_attempt_budget() -> None:
    async with HttpServer(server_error) as server:
        feed = binance(rest_url=server.url, backoff=FAST, request_attempts=3)
        with pytest.raises(RetriesExhaustedError, match="gave up after 3 attempts") as caught:
            await history(feed, "BTC/USDT")
        await feed.close()
    assert len(server.hits) == 3
    assert caught.value.attempts == 3
    assert feed.request_retries == 2


# ------------------------------------------------------------------ timeouts
@pytest.mark.parametrize(
    ("make", "symbol"), [(binance, "BTC/USDT"), (alpaca, "SPY")], ids=["binance", "alpaca"]
)
async def test_a_server_that_never_answers_is_bounded_by_the_http_timeout(
    make: Callable[..., StreamingFeed], symbol: str
) -> None:
    timeout = 0.5
    async with Silent() as server:
        feed = make(rest_url=server.url, backoff=FAST, request_attempts=2, http_timeout_s=timeout)
        began = time.monotonic()
        with pytest.raises(RetriesExhaustedError, match="gave up after 2 attempts"):
            await history(feed, symbol)
        elapsed = time.monotonic() - began
        await feed.close()
    assert server.accepted == 2  # both attempts reached the server and timed out there
    assert 2 * timeout * 0.9 <= elapsed < 2 * timeout + MARGIN_S


async def test_a_server_that_never_answers_is_bounded_by_the_request_budget() -> None:
    budget = 0.5
    async with Silent() as server:
        feed = binance(
            rest_url=server.url, backoff=FAST, http_timeout_s=300.0, request_budget_s=budget
        )
        began = time.monotonic()
        with pytest.raises(RetriesExhaustedError, match="time budget ran out"):
            await history(feed, "BTC/USDT")
        elapsed = time.monotonic() - began
        await feed.close()
    assert server.accepted == 1
    assert budget * 0.9 <= elapsed < budget + MARGIN_S


# ------------------------------------------------------------------ memory budget
def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


class StuckFeed(BinanceDataFeed):
    """A Binance feed whose consumer never takes an item: ``emit`` blocks forever."""

    blocked = False

    async def emit(self, item: MarketData) -> None:
        self.blocked = True
        await asyncio.Event().wait()

    async def emit_many(self, items: Sequence[MarketData]) -> None:
        if items:
            await self.emit(items[0])


@pytest.fixture
async def flood() -> AsyncIterator[tuple[str, list[int]]]:
    """A websocket server that sends one kline, then 64 frames of 1 MiB, as fast as allowed."""
    bar = real_bars(1)[0]
    first = orjson.dumps({"stream": STREAM, "data": kline_event("BTCBUSD", bar, closed=True)})
    big = b"x" * MIB
    sent = [0]

    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):  # the client leaves mid-flood
            await ws.send(first.decode())
            for _ in range(64):
                await ws.send(big)
                sent[0] += 1
            await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", sent


async def test_frames_a_stuck_consumer_never_reads_stay_within_the_buffer_budget(
    flood: tuple[str, list[int]],
) -> None:
    url, sent = flood
    budget = 8 * MIB
    feed = StuckFeed(
        ws_url=url,
        backoff=FAST,
        cadence_s=None,
        ws_max_message_bytes=MIB + 1024,
        ws_buffer_bytes=budget,
        rng=lambda: 1.0,
    )
    assert feed.max_queue == 7  # 8 MiB // (1 MiB + 1 KiB)
    await feed.subscribe(SYMBOL)
    before = rss_bytes()
    await feed.connect()

    def settled() -> bool:  # the client stopped reading, or (unbounded) took everything
        ws = feed._ws
        paused = ws is not None and feed.blocked and not ws.transport.is_reading()
        return paused or sent[0] == 64

    await eventually(settled, timeout=30.0, message="the client neither paused nor read all")
    growth = rss_bytes() - before
    await feed.disconnect()
    assert feed.blocked
    assert sent[0] < 64  # the venue was held back by TCP, not buffered in this process
    # the buffered frames, the frame being parsed, the server's frame, and slack for the
    # interpreter; an unbounded queue would hold all 64 MiB
    assert growth < budget + 2 * MIB + 16 * MIB, f"RSS grew by {growth / MIB:.1f} MiB"


# ------------------------------------------------------------------ settings
def test_defaults_bound_the_websocket_buffer_to_16_mib() -> None:
    feed = binance()
    assert (feed.ws_max_message_bytes, feed.ws_buffer_bytes, feed.max_queue) == (MIB, 16 * MIB, 16)
    assert feed.max_queue * feed.ws_max_message_bytes <= feed.ws_buffer_bytes
    assert (feed.request_attempts, feed.request_budget_s, feed.http_timeout_s) == (8, 180.0, 30.0)
    assert feed.backoff_policy.retry_after_cap_s == 60.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_queue": 4096}, "max_queue: expected 1 to 16"),
        ({"ws_buffer_bytes": MIB - 1}, "ws_buffer_bytes: expected >= ws_max_message_bytes"),
        ({"request_attempts": 0}, "request_attempts: expected >= 1"),
        ({"request_budget_s": 0.0}, "request_budget_s: expected > 0"),
        ({"http_timeout_s": float("nan")}, "http_timeout_s: expected > 0"),
    ],
)
def test_limits_out_of_range_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        binance(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ half a handshake
@pytest.mark.parametrize("make", [binance, alpaca], ids=["binance", "alpaca"])
async def test_a_handshake_never_answered_is_bounded_by_the_open_timeout(
    make: Callable[..., StreamingFeed],
) -> None:
    """The server accepts the TCP connection, reads the upgrade request, never answers."""
    timeout = 0.5
    accepted: list[float] = []
    held: list[asyncio.StreamWriter] = []

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(time.monotonic())
        held.append(writer)
        await reader.read(65536)  # the HTTP upgrade request, left unanswered

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    feed = make(ws_url=f"ws://127.0.0.1:{port}", backoff=FAST, open_timeout_s=timeout)
    try:
        started = time.monotonic()
        await feed.connect()
        await eventually(lambda: len(accepted) >= 2, timeout=timeout + MARGIN_S)
        await feed.disconnect()
        assert accepted[1] - accepted[0] >= timeout * 0.9  # the first one was waited for
        assert accepted[1] - started < timeout + MARGIN_S  # ... no longer than the timeout
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
