"""CcxtDataFeed: the real ccxt.pro client against the loopback Binance server.

Data: real Binance BTC/BUSD minute bars of 2022-12-13 (LEAN demo file
``lean_data/demo_data/lean/crypto/binance/minute/btcbusd/20221213_trade.zip``) and real
Binance ADA/BTC klines (``tests/fixtures/nautilus_trader/ADABTC-1m-2021-11-27.csv``), pushed
as kline frames: per candle an in-progress update (``x=false``) then the final one
(``x=true``). The in-progress update is *derived* from the real bar: what Binance sends
when a minute opens before any trade (open = high = low = close = the bar's open, volume
0). Also a real Binance.US capture (``tests/fixtures/cryptofeed/BINANCE_US.ws.1.0``)
replayed as recorded, through ``ccxt.pro.binanceus``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import ccxt
import orjson
import pytest

from lean_data import Config, DataEngine, DataQualityLevel
from lean_data.errors import (
    ConfigError,
    FeedAuthError,
    FeedConnectError,
    FeedError,
    FeedProtocolError,
    RateLimitError,
    SubscriptionError,
)
from lean_data.feeds.backoff import BackoffPolicy
from lean_data.feeds.base import FeedStatus
from lean_data.feeds.ccxt_feed import CcxtDataFeed
from lean_data.loaders import load_file
from lean_data.loaders.capture import read_capture
from lean_data.models import (
    NS_PER_DAY,
    NS_PER_MINUTE,
    NS_PER_SECOND,
    MarketData,
    Tick,
    TradeBar,
)
from lean_data.storage.sqlite import DataPersistence
from lean_data.testing import BinanceLoopbackServer, kline_event
from lean_data.wire.binance import parse_agg_trade
from lean_data.wire.ccxt import CandleCloser, error_for, ohlcv_to_bars, trade_to_tick

from .conftest import FIXTURES, eventually

ROOT = Path(__file__).parent.parent
BTCBUSD_ZIP = ROOT / "lean_data/demo_data/lean/crypto/binance/minute/btcbusd/20221213_trade.zip"
ADABTC_CSV = FIXTURES / "nautilus_trader" / "ADABTC-1m-2021-11-27.csv"
BINANCE_US = FIXTURES / "cryptofeed" / "BINANCE_US.ws.1.0"

BTC = [b for b in load_file(BTCBUSD_ZIP) if isinstance(b, TradeBar)]
ADA = [b for b in load_file(ADABTC_CSV, symbol="ADA/BTC") if isinstance(b, TradeBar)]
BTC_STREAM, ADA_STREAM = "btcbusd@kline_1m", "adabtc@kline_1m"
FAST = BackoffPolicy(base_s=0.01, cap_s=0.05)


def market(base: str, quote: str) -> dict[str, Any]:
    """A ccxt spot market structure, enough for ``set_markets`` (no exchangeInfo request)."""
    return {
        "id": f"{base}{quote}",
        "lowercaseId": f"{base}{quote}".lower(),
        "symbol": f"{base}/{quote}",
        "base": base,
        "quote": quote,
        "baseId": base,
        "quoteId": quote,
        "type": "spot",
        "spot": True,
        "margin": False,
        "swap": False,
        "future": False,
        "option": False,
        "contract": False,
        "active": True,
        "precision": {"amount": 1e-8, "price": 1e-8},
    }


MARKETS = [market("BTC", "BUSD"), market("ADA", "BTC")]


def urls(server: BinanceLoopbackServer) -> dict[str, Any]:
    """Point ccxt's Binance REST and spot websocket at the loopback server.

    The websocket path contains ``/stream`` as production's host name does, so ccxt's
    ``is_spot_url`` takes the production branch; ccxt appends a stream index (``/stream/0``).
    """
    return {
        "api": {"public": f"{server.rest_url}/api/v3", "ws": {"spot": f"{server.ws_url}/stream"}}
    }


class Clock:
    """A wall clock the test moves (ns); the feed decides by it when a period has ended."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def opening_update(bar: TradeBar) -> TradeBar:
    """The in-progress candle Binance sends as a minute opens (derived from the real bar)."""
    return replace(bar, high=bar.open, low=bar.open, close=bar.open, volume=0.0)


def push_candles(
    server: BinanceLoopbackServer, symbol: str, bars: list[TradeBar], *, then_open: TradeBar
) -> None:
    """Push an in-progress then a final update per bar, then the opening of the next one."""
    stream = f"{symbol.lower()}@kline_1m"
    for bar in bars:
        server.push(stream, kline_event(symbol, opening_update(bar), closed=False))
        server.push(stream, kline_event(symbol, bar, closed=True))
    server.push(stream, kline_event(symbol, opening_update(then_open), closed=False))


def venue_time(bar: TradeBar) -> int:
    """The wall clock 1 s after ``bar`` opened: ``bar`` is the newest candle, none ended late."""
    return bar.ts_event + NS_PER_SECOND


async def play(
    server: BinanceLoopbackServer,
    clock: Clock,
    feed: CcxtDataFeed,
    symbol: str,
    bars: list[TradeBar],
    *,
    then_open: TradeBar,
) -> None:
    """Push candles as the venue sends them live, moving the clock along (``symbol``: unified).

    Per candle the clock moves to 1 s after its open, its in-progress and final updates are
    pushed, and the feed is awaited until it has taken the candle's row: no row is read
    after the clock passed its candle's end, as with a live venue. ``bars`` are contiguous.
    """
    venue = symbol.replace("/", "")
    stream = f"{venue.lower()}@kline_1m"
    for bar, after in zip(bars, [*bars[1:], then_open], strict=True):
        assert after.ts_event - bar.ts_event == NS_PER_MINUTE
    for bar in [*bars, then_open]:
        clock.now = max(clock.now, venue_time(bar))
        server.push(stream, kline_event(venue, opening_update(bar), closed=False))
        if bar is not then_open:
            server.push(stream, kline_event(venue, bar, closed=True))
        await eventually(lambda bar=bar: newest(feed, symbol) >= bar.ts_event)  # type: ignore[misc]


def newest(feed: CcxtDataFeed, symbol: str) -> int:
    """Open time (ns) of the newest candle the feed has taken for ``symbol``; -1 for none."""
    closer = feed.closers.get(symbol)
    latest = None if closer is None else closer.latest
    return -1 if latest is None else latest


def requests(server: BinanceLoopbackServer, method: str) -> list[dict[str, Any]]:
    return [m for m in server.received if isinstance(m, dict) and m.get("method") == method]


def values(bars: list[MarketData]) -> list[tuple[Any, ...]]:
    return [
        (b.symbol, b.ts_event, b.open, b.high, b.low, b.close, b.volume, b.closed, b.revision)
        for b in bars
        if isinstance(b, TradeBar)
    ]


def feed_for(server: BinanceLoopbackServer, clock: Clock, **kwargs: Any) -> CcxtDataFeed:
    options: dict[str, Any] = {
        "exchange_config": {"urls": urls(server)},
        "markets": MARKETS,
        "clock": clock,
        "backoff": FAST,
        "rng": lambda: 0.5,
        "close_check_s": 0.01,
    }
    return CcxtDataFeed("ccxt", "binance", **(options | kwargs))


@pytest.fixture
async def server() -> Any:
    async with BinanceLoopbackServer() as srv:
        yield srv


# --- (a) closed bars through the engine into SQLite --------------------------------------


async def test_closed_bars_reach_callback_once_in_order_and_sqlite(
    server: BinanceLoopbackServer, tmp_path: Path
) -> None:
    bars, last = BTC[:6], BTC[6]
    clock = Clock(bars[0].ts_event)
    feed = feed_for(server, clock)
    seen: list[MarketData] = []

    def on_data(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
        seen.append(item)

    db = tmp_path / "x.db"
    async with DataEngine(Config(db_path=db)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(on_data)
        assert await engine.subscribe_symbol("BTC/BUSD") == "ccxt"
        await play(server, clock, feed, "BTC/BUSD", bars, then_open=last)
        await eventually(lambda: len(seen) >= 6)
        # candles 0..5 closed because a newer candle appeared; none by the clock yet
        assert values(seen) == values(bars)
        # the venue goes quiet: the clock passes candle 6's end + grace, it closes as seen
        clock.now = last.ts_event + NS_PER_MINUTE + 2 * NS_PER_SECOND
        await eventually(lambda: len(seen) >= 7)
        # then the venue's final update for candle 6 arrives late: a revision
        server.push(BTC_STREAM, kline_event("BTCBUSD", last, closed=True))
        await eventually(lambda: len(seen) >= 8)
        await engine.wait_idle()
    flat = opening_update(last)
    revised = replace(last, revision=1)
    assert values(seen) == values([*bars, flat, revised])
    assert all(isinstance(b, TradeBar) and b.closed and b.ts_recv > 0 for b in seen)
    assert requests(server, "SUBSCRIBE") == [
        {"method": "SUBSCRIBE", "params": [BTC_STREAM], "id": 1}
    ]
    assert (feed.sessions, server.connections, feed.status) == (1, 1, FeedStatus.CLOSED)
    status = feed.get_connection_status()
    assert (status["candle_revisions"], status["errors"], status["timeframe"]) == (1, 0, "1m")
    async with DataPersistence(db) as store:
        stored = await store.get_market_data(
            "BTC/BUSD", bars[0].ts_event, last.ts_event + NS_PER_MINUTE, feed="ccxt"
        )
    assert values(list(stored)) == values([*bars, revised])


# --- (b) history, pages, 429/418 with Retry-After ----------------------------------------


async def test_history_pages_exactly_and_retries_rate_limits() -> None:
    async with BinanceLoopbackServer(klines={"BTCBUSD": BTC}) as server:
        feed = feed_for(server, Clock(0), history_limit=100)
        start, end = BTC[100].ts_event, BTC[350].ts_event  # 250 bars: pages of 100, 100, 50
        server.faults.retry_after = 0
        server.faults.ban_next, server.faults.rate_limit_next = 1, 2
        try:
            got = await feed.get_historical_data("BTC/BUSD", start, end, "1m")
        finally:
            await feed.close()
    assert values(got) == values(BTC[100:350])
    assert [r.status for r in server.rest_requests] == [418, 429, 429, 200, 200, 200]
    assert len(server.rest_requests) == 3 + 3  # N faults + pages
    assert feed.request_retries == 3
    starts = [int(r.params["startTime"]) * 1_000_000 for r in server.rest_requests]
    assert starts == [start, start, start, start, BTC[200].ts_event, BTC[300].ts_event]
    assert [r.params["limit"] for r in server.rest_requests] == ["100"] * 5 + ["50"]
    assert {r.path for r in server.rest_requests} == {"/api/v3/klines"}


async def test_history_honours_retry_after_and_reads_within_a_page() -> None:
    async with BinanceLoopbackServer(klines={"BTCBUSD": BTC}) as server:
        feed = feed_for(server, Clock(0))
        server.faults.retry_after, server.faults.rate_limit_next = 1, 1
        # [start, end) cut inside minutes: bars opening at 10:00:30 .. 10:04:30 -> 10:01..10:04
        start, end = BTC[600].ts_event + 30 * NS_PER_SECOND, BTC[604].ts_event + 30 * NS_PER_SECOND
        try:
            got = await feed.get_historical_data("BTC/BUSD", start, end, "1m")
            empty = await feed.get_historical_data("BTC/BUSD", end, start, "1m")
        finally:
            await feed.close()
    assert values(got) == values(BTC[601:605])
    assert empty == []
    assert [r.status for r in server.rest_requests] == [429, 200]
    # the jitter of attempt 0 is 0.5 * 0.01 s; the venue's Retry-After (1 s) wins
    assert feed.last_error.endswith("retry 1 in 1.000s")
    assert "DDoSProtection: binance 429 Too Many Requests" in feed.last_error


# --- (c) exception mapping ----------------------------------------------------------------


def _caused_by_transport() -> ccxt.ExchangeError:
    try:
        try:
            raise aiohttp.ClientPayloadError("Response payload is not completed")
        except aiohttp.ClientPayloadError as cause:
            raise ccxt.ExchangeError("binance GET https://api.binance.com/api/v3/klines") from cause
    except ccxt.ExchangeError as exc:
        return exc


MAPPING = [
    (ccxt.NetworkError("binance connection reset"), FeedConnectError, True),
    (ccxt.RequestTimeout("binance GET ... timed out"), FeedConnectError, True),
    (ccxt.ExchangeNotAvailable("binance GET ... 503"), FeedConnectError, True),
    (ccxt.OnMaintenance("binance system maintenance"), FeedConnectError, True),
    (ccxt.DDoSProtection("binance 418 I'm a teapot"), RateLimitError, True),
    (ccxt.RateLimitExceeded('binance {"code":-1003}'), RateLimitError, True),
    (ccxt.InvalidNonce("binance nonce"), FeedProtocolError, True),
    (ccxt.ChecksumError("binance order book checksum"), FeedProtocolError, True),
    (ccxt.BadResponse("binance garbled"), FeedProtocolError, True),
    (ccxt.NullResponse("binance empty"), FeedProtocolError, True),
    (ccxt.ExchangeClosedByUser("Connection closed by the user"), FeedConnectError, True),
    (ccxt.CancelPending("binance cancel pending"), FeedError, True),
    (ccxt.AuthenticationError('binance {"code":-2014}'), FeedAuthError, False),
    (ccxt.PermissionDenied('binance {"code":-2015}'), FeedAuthError, False),
    (ccxt.AccountSuspended("binance account suspended"), FeedAuthError, False),
    (ccxt.AccountNotEnabled("binance not enabled"), FeedAuthError, False),
    (ccxt.BadSymbol("binance does not have market symbol XYZ/BUSD"), SubscriptionError, False),
    (ccxt.BadRequest('binance {"code":-1120,"msg":"Invalid interval."}'), FeedError, False),
    (ccxt.NotSupported("binance fetchFoo() is not supported"), FeedError, False),
    (ccxt.ArgumentsRequired("binance requires a symbol"), FeedError, False),
    (ccxt.MarketClosed("binance market closed"), FeedError, False),
    (ccxt.ExchangeError('binance {"code":-9999,"msg":"unknown"}'), FeedError, False),
    (_caused_by_transport(), FeedConnectError, True),
]


@pytest.mark.parametrize(
    ("exc", "kind", "retryable"), MAPPING, ids=[type(exc).__name__ for exc, _, _ in MAPPING]
)
def test_ccxt_exceptions_map_to_lean_data_errors(
    exc: BaseException, kind: type[FeedError], retryable: bool
) -> None:
    error = error_for(exc, feed="ccxt")
    assert type(error) is kind
    assert error.retryable is retryable
    assert str(error) == f"[ccxt] {type(exc).__name__}: {exc}"


def test_error_mapping_keeps_retry_after_and_masks_secrets() -> None:
    key, secret = "vmPUZE6mv9SD5VNHk4HlWFsOr", "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XA"
    feed = CcxtDataFeed("ccxt", "binance", exchange_config={"apiKey": key, "secret": secret})
    leaked = ccxt.AuthenticationError(
        f'binance {{"code":-2014,"msg":"API-key format invalid."}} key={key} secret={secret} '
        f"GET /api/v3/account?timestamp=1&signature=9f2c7d"
    )
    error = feed.translate_error(leaked)
    assert isinstance(error, FeedAuthError)
    assert not error.retryable
    assert key not in str(error)
    assert secret not in str(error)
    assert "signature=***" in str(error)
    assert str(error).startswith('[ccxt] AuthenticationError: binance {"code":-2014')
    limited = error_for(ccxt.RateLimitExceeded("binance -1003"), retry_after=1.0)
    assert isinstance(limited, RateLimitError)
    assert limited.retry_after == 1.0
    assert isinstance(feed.translate_error(ConnectionResetError("reset")), FeedConnectError)
    with pytest.raises(TypeError, match="expected a ccxt exception"):
        error_for(ValueError("not ccxt"))


def test_wire_module_and_feed_import_without_loading_ccxt() -> None:
    code = (
        "import sys\n"
        "import lean_data.feeds.ccxt_feed, lean_data.wire.ccxt as w\n"
        "assert 'ccxt' not in sys.modules, 'ccxt imported'\n"
        "sys.modules['ccxt'] = None\n"
        "print(w.error_for.__name__, w.timeframe_of('4h'), repr(w.resolution_of('1w')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout == "error_for 4h Resolution('7d')\n"


# --- (d) drop, reconnect, resubscribe, resume ---------------------------------------------


async def test_dropped_connection_reconnects_resubscribes_and_resumes() -> None:
    bars, nxt = BTC[:5], BTC[5]
    async with BinanceLoopbackServer(resume=True) as server:
        # 11 frames; each connection is closed by the server after 4 of them (close 1011,
        # the frames before it are delivered), and the next one resumes where it stopped
        server.faults.drop_after, server.faults.drop_close_code = 4, 1011
        clock = Clock(bars[0].ts_event)
        feed = feed_for(server, clock)
        seen: list[MarketData] = []
        async with DataEngine(Config(db_path=None)) as engine:
            engine.add_feed(feed)
            engine.add_data_callback(lambda symbol, item, quality: seen.append(item))
            await engine.subscribe_symbol("BTC/BUSD")
            await play(server, clock, feed, "BTC/BUSD", bars, then_open=nxt)
            await eventually(lambda: len(seen) >= 5 and feed.sessions >= 3)
            await engine.wait_idle()
            assert server.open_connections == 1
    assert values(seen) == values(bars)
    assert (feed.sessions, server.connections, len(feed.reconnect_delays)) == (3, 3, 2)
    assert feed.connect_attempts == 3
    assert (
        requests(server, "SUBSCRIBE")
        == [{"method": "SUBSCRIBE", "params": [BTC_STREAM], "id": 1}] * 3
    )


# --- ccxt resolves a watch on the *next* message: nothing may wait for it ------------------


class GatedSink:
    """Takes items like the engine's inbox does, but only while ``gate`` is open."""

    def __init__(self) -> None:
        self.items: list[MarketData] = []
        self.gate = asyncio.Event()
        self.waiting = 0
        self.errors: list[tuple[str, str]] = []

    def offer(self, feed: str, item: MarketData) -> bool:
        if not self.gate.is_set():
            return False
        self.items.append(item)
        return True

    async def accept(self, feed: str, item: MarketData) -> None:
        self.waiting += 1
        await self.gate.wait()
        self.waiting -= 1
        self.items.append(item)

    def feed_error(self, feed: str, kind: str, message: str, symbol: str = "") -> None:
        self.errors.append((kind, message))

    def feed_down(self, feed: str, symbols: Sequence[str], reason: str) -> None:
        pass


def cached_open_times(feed: CcxtDataFeed) -> list[int]:
    """Open times (ms) in ccxt's OHLCV cache of the feed's current session."""
    exchange = feed.exchange
    if exchange is None:
        return []
    return [row[0] for row in exchange.ohlcvs.get("BTC/BUSD", {}).get("1m", [])]


async def test_updates_cached_while_emitting_are_not_held_back(
    server: BinanceLoopbackServer,
) -> None:
    push_candles(server, "BTCBUSD", BTC[:1], then_open=BTC[1])
    clock = Clock(venue_time(BTC[1]))  # candle 1 just opened
    feed = feed_for(server, clock)
    sink = GatedSink()
    feed.attach(sink)
    await feed.subscribe("BTC/BUSD")
    try:
        await feed.connect()
        await eventually(lambda: sink.waiting == 1)  # emitting bar 0, held by the sink
        clock.now = venue_time(BTC[2])
        server.push(BTC_STREAM, kline_event("BTCBUSD", BTC[1], closed=True))
        server.push(BTC_STREAM, kline_event("BTCBUSD", opening_update(BTC[2]), closed=False))
        # ccxt took both frames while no watch was pending: no watch call will return them
        # before another frame arrives, and none will
        await eventually(lambda: BTC[2].ts_event // 1_000_000 in cached_open_times(feed))
        sink.gate.set()
        await eventually(lambda: len(sink.items) >= 2)
    finally:
        await feed.close()
    assert values(sink.items) == values(BTC[:2])
    assert feed.sessions == 1


async def test_trades_cached_while_emitting_are_not_held_back() -> None:
    trades = _capture_payloads("omgbusd@aggTrade")[:3]  # real Binance.US aggTrade events
    async with BinanceLoopbackServer() as server:
        for trade in trades[:2]:
            server.push("omgbusd@aggTrade", trade)
        feed = CcxtDataFeed(
            "us",
            "binanceus",
            channels=("trades",),
            exchange_config={
                "urls": urls(server),
                "options": {"watchTrades": {"name": "aggTrade"}},
            },
            markets=[market("OMG", "BUSD")],
        )
        sink = GatedSink()
        feed.attach(sink)
        await feed.subscribe("OMG/BUSD")
        try:
            await feed.connect()
            await eventually(lambda: sink.waiting == 1)
            server.push("omgbusd@aggTrade", trades[2])
            await eventually(
                lambda: (
                    feed.exchange is not None and len(feed.exchange.trades.get("OMG/BUSD", [])) == 3
                )
            )
            sink.gate.set()
            await eventually(lambda: len(sink.items) >= 3)
        finally:
            await feed.close()
    assert [t.trade_id for t in sink.items if isinstance(t, Tick)] == [str(t["a"]) for t in trades]


async def test_rows_cached_when_a_session_ends_are_emitted_by_the_next() -> None:
    async with BinanceLoopbackServer(resume=True) as server:
        push_candles(server, "BTCBUSD", BTC[:1], then_open=BTC[1])
        # a stale recycle (0.5 s without a delivered item) ends the session while the
        # feed is held emitting bar 0; resume=True: the next connection sends nothing again
        clock = Clock(venue_time(BTC[1]))  # candle 1 just opened
        feed = feed_for(server, clock, cadence_s=0.25, stale_factor=2.0)
        sink = GatedSink()
        feed.attach(sink)
        await feed.subscribe("BTC/BUSD")
        try:
            await feed.connect()
            await eventually(lambda: sink.waiting == 1)
            clock.now = venue_time(BTC[2])
            server.push(BTC_STREAM, kline_event("BTCBUSD", BTC[1], closed=True))
            server.push(BTC_STREAM, kline_event("BTCBUSD", opening_update(BTC[2]), closed=False))
            await eventually(lambda: BTC[2].ts_event // 1_000_000 in cached_open_times(feed))
            await eventually(lambda: feed.sessions >= 2)
            sink.gate.set()
            await eventually(lambda: len(sink.items) >= 2)
        finally:
            await feed.close()
    assert values(sink.items) == values(BTC[:2])
    assert feed.stale_events >= 1
    assert [kind for kind, _ in sink.errors][:2] == ["stale", "disconnected"]


async def test_a_close_ccxt_would_silently_redial_ends_the_session() -> None:
    async with BinanceLoopbackServer(resume=True) as server:
        server.faults.drop_after, server.faults.drop_close_code = 3, 1011
        push_candles(server, "BTCBUSD", BTC[:1], then_open=BTC[1])  # 3 frames, then closed
        clock = Clock(venue_time(BTC[1]))  # candle 1 just opened
        feed = feed_for(server, clock)
        sink = GatedSink()
        feed.attach(sink)
        await feed.subscribe("BTC/BUSD")
        try:
            await feed.connect()
            await eventually(lambda: sink.waiting == 1)
            # the close arrived while no watch was pending: ccxt only forgot the client, and
            # its next watch_ohlcv call would dial again inside this session
            await eventually(lambda: feed.exchange is not None and not feed.exchange.clients)
            clock.now = venue_time(BTC[2])
            server.push(BTC_STREAM, kline_event("BTCBUSD", BTC[1], closed=True))
            server.push(BTC_STREAM, kline_event("BTCBUSD", opening_update(BTC[2]), closed=False))
            sink.gate.set()
            await eventually(lambda: len(sink.items) >= 2)
        finally:
            await feed.close()
    assert values(sink.items) == values(BTC[:2])
    assert (feed.sessions, server.connections, len(feed.reconnect_delays)) == (2, 2, 1)
    assert (
        "disconnected",
        "[ccxt] the websocket connection was closed; reconnect 1 in 0.005s",
    ) in (sink.errors)


# --- (e) subscribe / unsubscribe from inside an async callback ----------------------------


async def test_subscribe_and_unsubscribe_from_an_async_callback(
    server: BinanceLoopbackServer,
) -> None:
    clock = Clock(BTC[0].ts_event)
    feed = feed_for(server, clock)
    btc: list[MarketData] = []
    ada: list[MarketData] = []
    done: list[str] = []

    async with DataEngine(Config(db_path=None)) as engine:

        async def on_data(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
            (ada if symbol == "ADA/BTC" else btc).append(item)
            if symbol == "BTC/BUSD" and len(btc) == 1:
                done.append(await engine.subscribe_symbol("ADA/BTC"))
            if symbol == "ADA/BTC" and len(ada) == 1:
                done.append(str(await engine.unsubscribe_symbol("ADA/BTC")))

        engine.add_feed(feed)
        engine.add_data_callback(on_data)
        await engine.subscribe_symbol("BTC/BUSD")
        await play(server, clock, feed, "BTC/BUSD", BTC[:3], then_open=BTC[3])
        await eventually(lambda: len(requests(server, "SUBSCRIBE")) == 2)
        # the server applies a SUBSCRIBE as it records it (no await in between)
        push_candles(server, "ADABTC", ADA[:1], then_open=ADA[1])
        await eventually(lambda: len(requests(server, "UNSUBSCRIBE")) == 1)
        push_candles(server, "ADABTC", ADA[2:4], then_open=ADA[4])  # not for us any more
        await play(server, clock, feed, "BTC/BUSD", BTC[3:5], then_open=BTC[5])
        await eventually(lambda: len(btc) >= 5)
        await engine.wait_idle()
        assert engine.subscriptions() == {("ccxt", "BTC/BUSD"): 1}
    assert done == ["ccxt", "True"]
    assert values(btc) == values(BTC[:5])
    assert values(ada) == values(ADA[:1])
    # ccxt numbers requests per connection and call, so only the order of ids is fixed
    assert [(m["method"], m["params"]) for m in server.received] == [
        ("SUBSCRIBE", [BTC_STREAM]),
        ("SUBSCRIBE", [ADA_STREAM]),
        ("UNSUBSCRIBE", [ADA_STREAM]),
    ]
    ids = [m["id"] for m in server.received]
    assert ids == sorted(set(ids))
    assert feed.sessions == 1


async def test_resubscribe_while_the_unsubscribe_is_in_flight_keeps_the_session(
    server: BinanceLoopbackServer,
) -> None:
    push_candles(server, "BTCBUSD", BTC[:1], then_open=BTC[1])
    clock = Clock(venue_time(BTC[1]))  # candle 1 just opened
    feed = feed_for(server, clock)
    seen: list[MarketData] = []
    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(lambda symbol, item, quality: seen.append(item))
        await engine.subscribe_symbol("BTC/BUSD")
        await eventually(lambda: len(seen) >= 1)
        # back to back: the UNSUBSCRIBE is not even sent when the new watch starts
        assert await engine.unsubscribe_symbol("BTC/BUSD")
        await engine.subscribe_symbol("BTC/BUSD")
        await eventually(lambda: len(requests(server, "SUBSCRIBE")) == 2)
        clock.now = venue_time(BTC[2])
        server.push(BTC_STREAM, kline_event("BTCBUSD", BTC[1], closed=True))
        server.push(BTC_STREAM, kline_event("BTCBUSD", opening_update(BTC[2]), closed=False))
        await eventually(lambda: len(seen) >= 2)
        await engine.wait_idle()
    assert values(seen) == values(BTC[:2])
    assert [(m["method"], m["params"]) for m in server.received] == [
        ("SUBSCRIBE", [BTC_STREAM]),
        ("UNSUBSCRIBE", [BTC_STREAM]),
        ("SUBSCRIBE", [BTC_STREAM]),
    ]
    assert (feed.sessions, server.connections, feed.errors) == (1, 1, 0)


# --- (f) unknown symbol: fatal, one attempt ----------------------------------------------


async def test_bad_symbol_stops_the_feed_without_retrying(server: BinanceLoopbackServer) -> None:
    feed = feed_for(server, Clock(0))
    assert await feed.subscribe("XYZ/BUSD")  # desired; applied by the first session
    try:
        with pytest.raises(SubscriptionError, match="BadSymbol: binance does not have market"):
            await feed.connect()
        assert feed.status is FeedStatus.FAILED
        assert isinstance(feed.fatal_error, SubscriptionError)
        assert (feed.connect_attempts, feed.sessions, feed.reconnect_delays) == (1, 1, [])
        assert not feed.accepts_subscriptions
        assert not await feed.subscribe("BTC/BUSD")
        with pytest.raises(SubscriptionError):
            await feed.connect()  # the same fatal error, no new attempt
        assert feed.connect_attempts == 1
    finally:
        await feed.close()
    assert server.connections == 0
    assert server.received == []


async def test_bad_symbol_while_running_is_refused_and_the_feed_goes_on(
    server: BinanceLoopbackServer,
) -> None:
    clock = Clock(BTC[0].ts_event)
    feed = feed_for(server, clock)
    seen: list[MarketData] = []
    engine = DataEngine(Config(db_path=None))
    engine.add_feed(feed)  # before start: the session is open once start() returns
    async with engine:
        engine.add_data_callback(lambda symbol, item, quality: seen.append(item))
        await engine.subscribe_symbol("BTC/BUSD")
        with pytest.raises(SubscriptionError, match="XYZ/BUSD"):
            await engine.subscribe_symbol("XYZ/BUSD")
        await play(server, clock, feed, "BTC/BUSD", BTC[:2], then_open=BTC[2])
        await eventually(lambda: len(seen) >= 2)
        assert feed.status is FeedStatus.CONNECTED
        assert list(feed.desired) == ["BTC/BUSD"]
    assert values(seen) == values(BTC[:2])


# --- corrections and timestamps that cannot be true -----------------------------------------


def provisional(bar: TradeBar) -> TradeBar:
    """A first final version of ``bar`` that missed its last trades (derived from the real bar)."""
    return replace(bar, high=max(bar.open, bar.close), low=min(bar.open, bar.close), volume=0.5)


async def test_corrected_closed_candle_is_a_revision_and_stored_corrected(
    server: BinanceLoopbackServer, tmp_path: Path
) -> None:
    bars = BTC[:8]
    clock = Clock(bars[0].ts_event)
    feed = feed_for(server, clock)
    seen: list[MarketData] = []
    db = tmp_path / "revision.db"
    first = [provisional(b) if i == 3 else b for i, b in enumerate(bars[:6])]
    async with DataEngine(Config(db_path=db)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(lambda symbol, item, quality: seen.append(item))
        await engine.subscribe_symbol("BTC/BUSD")
        await play(server, clock, feed, "BTC/BUSD", first, then_open=bars[6])
        await eventually(lambda: len(seen) >= 6)
        # the venue re-sends candle 3 corrected, then exactly as corrected
        server.push(BTC_STREAM, kline_event("BTCBUSD", bars[3], closed=True))
        await eventually(lambda: len(seen) >= 7)
        server.push(BTC_STREAM, kline_event("BTCBUSD", bars[3], closed=True))
        await play(server, clock, feed, "BTC/BUSD", bars[6:7], then_open=bars[7])
        await eventually(lambda: len(seen) >= 8)
        await engine.wait_idle()
        stats = engine.get_metrics()["continuity"]
    assert values(seen) == values([*first, replace(bars[3], revision=1), bars[6]])
    assert provisional(bars[3]) != bars[3]
    assert (stats["revisions"], stats["duplicates"]) == (1, 0)
    assert feed.get_connection_status()["candle_revisions"] == 1
    async with DataPersistence(db) as store:
        stored = await store.get_market_data(
            "BTC/BUSD", bars[0].ts_event, bars[7].ts_event, feed="ccxt"
        )
    assert values(list(stored)) == values([*bars[:3], replace(bars[3], revision=1), *bars[4:7]])


def microseconds(bar: TradeBar) -> TradeBar:
    """``bar`` with its open time in µs where Binance puts ms (read as ms: year ~54 900)."""
    return replace(bar, ts_event=bar.ts_event * 1000)


async def test_a_microsecond_stamped_candle_changes_nothing_for_the_real_ones(
    server: BinanceLoopbackServer,
) -> None:
    bars, corrupted = BTC[:12], 5
    clock = Clock(bars[0].ts_event)
    feed = feed_for(server, clock)
    sink = GatedSink()
    sink.gate.set()
    feed.attach(sink)
    await feed.subscribe("BTC/BUSD")
    try:
        await feed.connect()
        for i, bar in enumerate(bars):
            clock.now = venue_time(bar)  # the venue's clock: candle i just opened
            sent = microseconds(bar) if i == corrupted else bar
            server.push(BTC_STREAM, kline_event("BTCBUSD", opening_update(sent), closed=False))
            server.push(BTC_STREAM, kline_event("BTCBUSD", sent, closed=True))
            if i == corrupted:
                await eventually(lambda: feed.closers["BTC/BUSD"].implausible >= 1)
            else:
                await eventually(lambda bar=bar: newest(feed, "BTC/BUSD") == bar.ts_event)  # type: ignore[misc]
        await eventually(lambda: len(sink.items) >= 11)
    finally:
        await feed.close()
    real = [b for b in sink.items if b.ts_event < 2**62]
    bogus = [b for b in sink.items if b.ts_event >= 2**62]
    # every real candle closed once, with its final values; the last one is still forming
    assert values(real) == values([*bars[:corrupted], *bars[corrupted + 1 : -1]])
    # the corrupted candle is passed on once, as received, for the validator to judge
    assert [(b.ts_event, b.closed) for b in bogus] == [
        (microseconds(bars[corrupted]).ts_event, True)
    ]
    status = feed.get_connection_status()
    assert (status["candle_revisions"], status["errors"]) == (0, 0)
    assert status["implausible_rows"] >= 1
    assert newest(feed, "BTC/BUSD") == bars[-1].ts_event


def a_year_ahead(bar: TradeBar) -> TradeBar:
    """``bar`` stamped 400 days after now (a minute boundary): far beyond any clock skew."""
    ahead = time.time_ns() + 400 * NS_PER_DAY
    return replace(bar, ts_event=ahead - ahead % NS_PER_MINUTE)


CORRUPTIONS = [
    (microseconds, "is outside int64 nanoseconds"),
    (a_year_ahead, "s after the receive time"),
]


@pytest.mark.parametrize(
    ("corrupt", "reason", "final_first"),
    [
        *[
            pytest.param(c, r, True, id=f"{c.__name__}-after_the_final_update")
            for c, r in CORRUPTIONS
        ],
        *[pytest.param(c, r, False, id=f"{c.__name__}-while_forming") for c, r in CORRUPTIONS],
    ],
)
async def test_a_corrupt_stamped_candle_is_invalid_once_and_the_real_series_goes_on(
    server: BinanceLoopbackServer,
    tmp_path: Path,
    corrupt: Callable[[TradeBar], TradeBar],
    reason: str,
    final_first: bool,
) -> None:
    """Through the engine: one corrupt candle among real ones is INVALID, nothing else moves.

    Candles 0-4 are delivered (the series is live) and candle 5 is forming. The venue sends
    candle 5's final values under an impossible open time, either after candle 5's real
    final update or before it, then candles 6-11. The corrupt candle must not become the
    series head (no gap, no backfill, no parked bar) nor make a real candle a revision.
    """
    bars, at = BTC[:12], 5
    bogus = corrupt(bars[at])
    clock = Clock(bars[0].ts_event)
    feed = feed_for(server, clock)
    seen: list[tuple[MarketData, DataQualityLevel]] = []
    db = tmp_path / "x.db"
    async with DataEngine(Config(db_path=db)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(lambda symbol, item, quality: seen.append((item, quality)))
        assert await engine.subscribe_symbol("BTC/BUSD") == "ccxt"
        await play(server, clock, feed, "BTC/BUSD", bars[:at], then_open=bars[at])
        await eventually(lambda: len(seen) == at)
        if final_first:
            server.push(BTC_STREAM, kline_event("BTCBUSD", bars[at], closed=True))
        server.push(BTC_STREAM, kline_event("BTCBUSD", bogus, closed=True))
        await eventually(lambda: len(seen) == at + 1)
        if not final_first:
            server.push(BTC_STREAM, kline_event("BTCBUSD", bars[at], closed=True))
        await play(server, clock, feed, "BTC/BUSD", bars[at + 1 : -1], then_open=bars[-1])
        await eventually(lambda: len(seen) >= len(bars))  # 11 real closed + the corrupt one
        await engine.wait_idle()
        outcomes = engine.get_metrics()["engine"]["outcomes"]
    continuity = engine.get_metrics()["continuity"]
    real = bars[:-1]  # the last candle is still forming
    invalid = DataQualityLevel.INVALID
    assert values([b for b, _ in seen]) == values([*real[:at], bogus, *real[at:]])
    assert [q is invalid for _, q in seen] == [i == at for i in range(len(seen))]
    assert not any(isinstance(b, TradeBar) and b.backfilled for b, _ in seen)
    assert (outcomes["invalid"], outcomes["delivered"]) == (1, len(real))
    assert (continuity["parked"], continuity["gaps"], continuity["revisions"]) == (0, 0, 0)
    assert feed.get_connection_status()["candle_revisions"] == 0
    assert server.rest_requests == []  # nothing was backfilled
    with sqlite3.connect(db) as conn:
        stored = conn.execute(
            "select ts_event, open, high, low, close, volume, revision from bars order by ts_event"
        ).fetchall()
        errors = conn.execute("select kind, feed, symbol, message from errors").fetchall()
    assert stored == [(b.ts_event, b.open, b.high, b.low, b.close, b.volume, 0) for b in real]
    assert [(kind, feed, symbol) for kind, feed, symbol, _ in errors] == [
        ("invalid_data", "ccxt", "BTC/BUSD")
    ]
    assert str(bogus.ts_event) in errors[0][3]
    assert reason in errors[0][3]


def test_candle_closer_passes_implausible_rows_once_and_keeps_its_state() -> None:
    bars = BTC[:3]
    closer = CandleCloser("BTC/BUSD", "1m")
    rows = list(_rows(bars))
    now = venue_time(bars[1])
    assert closer.update(rows[0], now) == []
    assert closer.update(rows[1], now)[0].ts_event == bars[0].ts_event  # a newer candle
    ms = rows[1][0]
    for ts in (ms * 1000, ms * 1_000_000, ms // 1000, ms + 7_000):  # µs, ns, s, 6 s ahead
        out = closer.update([ts, *rows[1][1:]], now)
        assert [(b.ts_event, b.closed, b.revision) for b in out] == [(ts * 1_000_000, True, 0)]
        assert closer.update([ts, *rows[0][1:]], now) == []  # once per open time
    assert closer.implausible == 8
    assert (closer.open_time, closer.latest) == (bars[1].ts_event, bars[1].ts_event)
    # the real series goes on as if nothing happened
    closed = closer.update(rows[2], venue_time(bars[2]))
    assert values(closed) == values([bars[1]])
    assert closer.revisions == 0


# --- a frame ccxt cannot handle must not kill the stream --------------------------------------


def error_kinds(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select kind, count(*) from errors where feed = 'ccxt' group by kind")
        return dict(rows)


async def test_a_truncated_frame_is_reported_and_every_later_candle_arrives(
    server: BinanceLoopbackServer, tmp_path: Path
) -> None:
    # default settings; frame 5 (candle 2's opening update) is preceded by its first half,
    # which ccxt cannot decode: its receive loop would stop there for good
    server.faults.truncated_at = {5}
    bars = BTC[:10]
    clock = Clock(bars[0].ts_event)
    feed = CcxtDataFeed(
        "ccxt", "binance", exchange_config={"urls": urls(server)}, markets=MARKETS, clock=clock
    )
    seen: list[MarketData] = []
    db = tmp_path / "truncated.db"
    async with DataEngine(Config(db_path=db)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(lambda symbol, item, quality: seen.append(item))
        await engine.subscribe_symbol("BTC/BUSD")
        await play(server, clock, feed, "BTC/BUSD", bars[:-1], then_open=bars[-1])
        await eventually(lambda: len(seen) >= 9)
        await engine.wait_idle()
    assert values(seen) == values(bars[:-1])
    assert feed.malformed_frames == 1
    assert feed.get_connection_status()["malformed_frames"] == 1
    assert error_kinds(db) == {"malformed_frame": 1}
    assert "unexpected end of data" in feed.last_error


async def test_a_frame_that_breaks_ccxt_s_handler_ends_the_session_which_resumes(
    tmp_path: Path,
) -> None:
    bars = BTC[:8]
    clock = Clock(bars[0].ts_event)
    seen: list[MarketData] = []
    db = tmp_path / "handler.db"
    async with BinanceLoopbackServer(resume=True) as server:
        feed = feed_for(server, clock)
        async with DataEngine(Config(db_path=db)) as engine:
            engine.add_feed(feed)
            engine.add_data_callback(lambda symbol, item, quality: seen.append(item))
            await engine.subscribe_symbol("BTC/BUSD")
            await play(server, clock, feed, "BTC/BUSD", bars[:3], then_open=bars[3])
            # well-formed JSON with an interval ccxt has no timeframe for: its kline handler
            # raises (TypeError) inside the receive loop
            broken = kline_event("BTCBUSD", bars[3], closed=False, interval="7x")
            server.push(BTC_STREAM, broken)
            await eventually(lambda: feed.sessions >= 2)
            server.push(BTC_STREAM, kline_event("BTCBUSD", bars[3], closed=True))
            await play(server, clock, feed, "BTC/BUSD", bars[4:7], then_open=bars[7])
            await eventually(lambda: len(seen) >= 7)
            await engine.wait_idle()
    assert values(seen) == values(bars[:7])
    assert (feed.sessions, server.connections, feed.malformed_frames) == (2, 2, 0)
    assert (
        requests(server, "SUBSCRIBE")
        == [{"method": "SUBSCRIBE", "params": [BTC_STREAM], "id": 1}] * 2
    )
    kinds = error_kinds(db)
    assert (kinds["handler_error"], kinds["disconnected"]) == (1, 1)


# --- another exchange id, trades and candles from a real capture --------------------------


def _capture_payloads(stream: str) -> list[dict[str, Any]]:
    received = read_capture(BINANCE_US).received
    messages = (orjson.loads(text) for _, text in received)
    return [m["data"] for m in messages if m.get("stream") == stream]


async def test_binanceus_trades_and_candles_from_a_real_capture() -> None:
    trades = _capture_payloads("omgbusd@aggTrade")
    klines = [k["k"] for k in _capture_payloads("omgbusd@kline_1m")]
    final = next(k for k in klines if k["x"])
    assert (len(trades), len(klines)) == (11, 5)
    # the wall clock 1 s after the capture's last candle opened: its first candle is not yet
    # due by the clock (the capture is replayed at full speed), only by the newer candle
    newest_open = klines[-1]["t"] * 1_000_000
    assert newest_open > final["t"] * 1_000_000
    async with BinanceLoopbackServer(BINANCE_US) as server:
        feed = CcxtDataFeed(
            "us",
            "binanceus",
            channels=("ohlcv", "trades"),
            exchange_config={
                "urls": urls(server),
                "options": {"watchTrades": {"name": "aggTrade"}},
            },
            markets=[market("OMG", "BUSD")],
            clock=Clock(newest_open + NS_PER_SECOND),
            backoff=FAST,
        )
        seen: list[MarketData] = []
        async with DataEngine(Config(db_path=None)) as engine:
            engine.add_feed(feed)
            engine.add_data_callback(lambda symbol, item, quality: seen.append(item))
            await engine.subscribe_symbol("OMG/BUSD")
            await eventually(lambda: len(seen) >= 12)
            await engine.wait_idle()
    ticks = [t for t in seen if isinstance(t, Tick)]
    expected = [
        replace(parse_agg_trade(t, 0), symbol="OMG/BUSD", exchange="binanceus") for t in trades
    ]
    assert [replace(t, ts_recv=0) for t in ticks] == expected
    prices = [float(final[key]) for key in ("o", "h", "l", "c", "v")]
    assert values(seen) == [("OMG/BUSD", final["t"] * 1_000_000, *prices, True, 0)]
    assert sorted(m["params"][0] for m in requests(server, "SUBSCRIBE")) == [
        "omgbusd@aggTrade",
        "omgbusd@kline_1m",
    ]
    assert server.connections == 2  # ccxt puts each channel on its own stream connection


# --- the pure closer and converters -------------------------------------------------------


def _rows(bars: list[TradeBar]) -> Iterator[list[Any]]:
    for b in bars:
        yield [b.ts_event // 1_000_000, b.open, b.high, b.low, b.close, b.volume]


def test_candle_closer_closes_once_revises_and_ignores_replays() -> None:
    bars = BTC[:3]
    closer = CandleCloser("BTC/BUSD", "1m", emit_partial=True)
    out: list[TradeBar] = []
    opening = [[b.ts_event // 1_000_000, b.open, b.open, b.open, b.open, 0.0] for b in bars]
    final = list(_rows(bars))
    for bar, first, last in zip(bars, opening, final, strict=True):
        out += closer.update(first, venue_time(bar))
        out += closer.update(last, venue_time(bar))
    t0 = venue_time(bars[2])
    # partial, partial, then each newer candle closes the one before
    assert values(out) == values(
        [
            replace(opening_update(bars[0]), closed=False),
            replace(bars[0], closed=False),
            bars[0],
            replace(opening_update(bars[1]), closed=False),
            replace(bars[1], closed=False),
            bars[1],
            replace(opening_update(bars[2]), closed=False),
            replace(bars[2], closed=False),
        ]
    )
    assert closer.deadline() == bars[2].ts_event + NS_PER_MINUTE + 2 * NS_PER_SECOND
    assert closer.due(bars[2].ts_event + NS_PER_MINUTE + NS_PER_SECOND) == []
    assert values(closer.due(bars[2].ts_event + NS_PER_MINUTE + 2 * NS_PER_SECOND)) == values(
        [bars[2]]
    )
    # the final rows again (as after a reconnect): nothing new
    assert [bar for row in final for bar in closer.update(row, t0)] == []
    # a correction of a closed candle: revision 1, then 2; the same values again: nothing
    fixed = [final[1][0], *final[1][1:5], final[1][5] + 1.0]
    assert values(closer.update(fixed, t0)) == values(
        [replace(bars[1], volume=bars[1].volume + 1.0, revision=1)]
    )
    assert closer.update(fixed, t0) == []
    assert closer.update(final[1], t0)[0].revision == 2
    assert closer.revisions == 2
    # a candle older than the newest and never seen is final at once
    late = [final[0][0] - 60_000, *final[0][1:]]
    assert [(b.ts_event, b.closed, b.revision) for b in closer.update(late, t0)] == [
        (bars[0].ts_event - NS_PER_MINUTE, True, 0)
    ]


def test_candle_closer_clock_close_keeps_memory_bounded_and_rejects_bad_rows() -> None:
    closer = CandleCloser("ADA/BTC", "1m", grace_ns=0, keep=2)
    rows = list(_rows(ADA[:4]))
    after = ADA[3].ts_event + 10 * NS_PER_MINUTE
    # rows arriving after their period ended are final on arrival
    closed = [bar for row in rows for bar in closer.update(row, after)]
    assert values(closed) == values(ADA[:4])
    assert closer.open_time is None
    # only the last 2 are remembered; a row for a forgotten candle is ignored, not re-emitted
    assert closer.update(rows[0], after) == []
    assert closer.ignored == 1
    assert closer.update(rows[3], after) == []
    with pytest.raises(FeedProtocolError, match="expected a number, found NoneType"):
        closer.update([rows[0][0] + 600_000, None, 1, 1, 1, 1], after)
    with pytest.raises(FeedProtocolError, match="expected an OHLCV row"):
        closer.update([1, 2, 3], after)
    nan_volume = closer.update(
        [ADA[3].ts_event // 1_000_000 + 60_000, 1.0, 1.0, 1.0, 1.0, None], after
    )
    assert nan_volume[0].volume != nan_volume[0].volume  # NaN
    assert (
        closer.update([ADA[3].ts_event // 1_000_000 + 60_000, 1.0, 1.0, 1.0, 1.0, None], after)
        == []
    )


def test_ohlcv_to_bars_converts_rows_and_names_a_bad_one() -> None:
    rows = list(_rows(ADA))
    assert values(ohlcv_to_bars("ADA/BTC", rows, "1m")) == values(ADA)
    assert [b.closed for b in ohlcv_to_bars("ADA/BTC", rows[:2], "1m", closed=False)] == [False] * 2
    with pytest.raises(FeedProtocolError, match=r"^row 2: ohlcv timestamp: expected a timestamp"):
        ohlcv_to_bars("ADA/BTC", [*rows[:2], ["x", 1, 1, 1, 1, 1]], "1m")


def test_trade_to_tick_from_a_ccxt_trade_structure() -> None:
    trade = {
        "id": "425093",
        "timestamp": 1633998292142,
        "price": 13.7664,
        "amount": 30.28,
        "side": "sell",
    }
    tick = trade_to_tick("OMG/BUSD", trade, exchange="binanceus")
    assert tick == Tick(
        "OMG/BUSD",
        1633998292142_000_000,
        13.7664,
        30.28,
        exchange="binanceus",
        condition="buyer_maker",
        trade_id="425093",
    )
    with pytest.raises(FeedProtocolError, match="trade price"):
        trade_to_tick("OMG/BUSD", {**trade, "price": None})


def test_constructor_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match=r"ccxt\.pro has no exchange 'nosuchexchange'"):
        CcxtDataFeed("x", "nosuchexchange")
    with pytest.raises(ConfigError, match="channels"):
        CcxtDataFeed("x", "binance", channels=("orderbook",))
    with pytest.raises(ConfigError, match="resolution"):
        CcxtDataFeed("x", "binance", resolution="tick")
    with pytest.raises(ConfigError, match="history_limit"):
        CcxtDataFeed("x", "binance", history_limit=0)
