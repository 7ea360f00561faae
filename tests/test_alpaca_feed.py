"""AlpacaDataFeed against the loopback Alpaca server, through the whole engine.

Stream data: messages derived from the real LEAN SPY 2013-10-10 files (tests/fixtures/lean,
copies of ../shared/data/lean; see ``lean_timeline``): ``b`` bars aggregated from every print
of 16:16-16:26 New York, ``u`` revisions carrying the vendor's final minute bar where it
differs. History: the vendor's SPY minute bars of that day served over REST.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from lean_data import Config, Credentials, DataEngine, DataQualityLevel, ReplayFeed, TradeBar
from lean_data.errors import FeedAuthError, SubscriptionError
from lean_data.feeds.alpaca import AlpacaDataFeed
from lean_data.feeds.backoff import BackoffPolicy
from lean_data.feeds.base import FeedStatus
from lean_data.loaders import load_file
from lean_data.models import NS_PER_MINUTE, MarketData, Tick, TickType, datetime_to_ns
from lean_data.testing import AlpacaLoopbackServer, ServerFaults, lean_timeline

from .conftest import FIXTURES, eventually

LEAN = FIXTURES / "lean"
START, END = datetime(2013, 10, 10, 20, 16, tzinfo=UTC), datetime(2013, 10, 10, 20, 26, tzinfo=UTC)
FAST = BackoffPolicy(base_s=0.01, cap_s=0.04, connection_limit_s=0.05)
SECRET = "sk-very-secret-123"
KEYS = Credentials.of("PKLOOPBACK", SECRET)


def vendor_minutes() -> list[TradeBar]:
    path = LEAN / "equity/usa/minute/spy/20131010_trade.zip"
    return [b for b in load_file(path) if isinstance(b, TradeBar)]


def window(bars: list[TradeBar]) -> list[TradeBar]:
    lo, hi = datetime_to_ns(START), datetime_to_ns(END)
    return [b for b in bars if lo <= b.ts_event < hi]


def ohlcv(bar: MarketData) -> tuple[object, ...]:
    assert isinstance(bar, TradeBar)
    return (bar.ts_event, bar.open, bar.high, bar.low, bar.close, bar.volume)


def spy_stream() -> list[dict[str, object]]:
    return lean_timeline(LEAN, "SPY", "20131010", start=START, end=END, ticks=True, quotes=False)


def feed_for(
    server: AlpacaLoopbackServer, name: str = "alpaca", **kwargs: object
) -> AlpacaDataFeed:
    return AlpacaDataFeed(
        name,
        credentials=kwargs.pop("credentials", KEYS),  # type: ignore[arg-type]
        stream_url=server.ws_url,
        data_url=server.rest_url,
        backoff=kwargs.pop("backoff", FAST),  # type: ignore[arg-type]
        rng=lambda: 1.0,
        **kwargs,  # type: ignore[arg-type]
    )


def server_for(timeline: object = (), **kwargs: object) -> AlpacaLoopbackServer:
    return AlpacaLoopbackServer(timeline, key="PKLOOPBACK", secret=SECRET, **kwargs)  # type: ignore[arg-type]


def actions(server: AlpacaLoopbackServer) -> list[str]:
    return [m.get("action", "") for m in server.received if isinstance(m, dict)]


async def test_bars_and_revisions_reach_callbacks_and_sqlite_keeps_the_final_bar(
    tmp_path: Path,
) -> None:
    timeline = spy_stream()
    sent_b = [m for m in timeline if m["T"] == "b"]
    sent_u = [m for m in timeline if m["T"] == "u"]
    assert (len(sent_b), len(sent_u)) == (10, 6)
    seen: list[TradeBar] = []

    def on_bar(symbol: str, bar: MarketData, quality: DataQualityLevel) -> None:
        assert isinstance(bar, TradeBar)
        seen.append(bar)

    db = tmp_path / "alpaca.db"
    async with server_for(timeline) as server:
        feed = feed_for(server)
        async with DataEngine(Config(db_path=db)) as engine:
            engine.add_feed(feed)
            engine.add_data_callback(on_bar)
            assert await engine.subscribe_symbol("SPY") == "alpaca"
            await eventually(lambda: len(seen) == 16)
            await engine.wait_idle()
    assert [b.revision for b in seen].count(0) == 10
    assert [b.revision for b in seen].count(1) == 6
    assert all(b.closed and b.symbol == "SPY" for b in seen)
    firsts = [b for b in seen if b.revision == 0]
    assert [b.ts_event for b in firsts] == [int(m["t"]) for m in sent_b]  # type: ignore[call-overload]
    assert [(b.open, b.high, b.low, b.close, b.volume) for b in firsts] == [
        (m["o"], m["h"], m["l"], m["c"], m["v"]) for m in sent_b
    ]
    # the last version of each minute is the vendor's bar: SQLite keeps exactly those
    vendor = window(vendor_minutes())
    assert len(vendor) == 10
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "select ts_event, open, high, low, close, volume from bars where symbol = 'SPY' "
            "order by ts_event"
        ).fetchall()
    assert rows == [ohlcv(b) for b in vendor]
    assert actions(server) == ["auth", "subscribe"]
    subscribe = next(m for m in server.received if m.get("action") == "subscribe")
    assert (subscribe["bars"], subscribe["updatedBars"]) == (["SPY"], ["SPY"])


async def test_a_repeated_correction_is_a_duplicate_and_a_second_one_revision_2() -> None:
    """Corrections arrive flagged ``revision`` 1; the engine's continuity numbers them.

    After the real timeline the first ``u`` is sent again as it was (an exact repeat), then
    once more with a close one cent higher (a second correction of that minute, *derived*).
    """
    timeline = spy_stream()
    first_u = next(m for m in timeline if m["T"] == "u")
    higher = float(first_u["c"]) + 0.01  # type: ignore[arg-type]
    second = dict(first_u, c=higher, h=max(float(first_u["h"]), higher))  # type: ignore[arg-type]
    seen: list[TradeBar] = []

    def on_bar(symbol: str, bar: MarketData, quality: DataQualityLevel) -> None:
        assert isinstance(bar, TradeBar)
        seen.append(bar)

    async with server_for([*timeline, dict(first_u), second]) as server:
        feed = feed_for(server)
        async with DataEngine(Config(db_path=None)) as engine:
            engine.add_feed(feed)
            engine.add_data_callback(on_bar)
            await engine.subscribe_symbol("SPY")
            await eventually(lambda: len(seen) == 17)
            await engine.wait_idle()
            outcomes = engine.get_metrics()["engine"]["outcomes"]
    assert [b.revision for b in seen].count(1) == 6
    assert (seen[-1].ts_event, seen[-1].close, seen[-1].revision) == (first_u["t"], higher, 2)
    assert outcomes["duplicate"] == 1
    assert feed.get_connection_status()["revisions"] == 8  # corrections received


async def test_drop_reconnects_reauthenticates_and_resubscribes() -> None:
    timeline = spy_stream()
    seen: list[MarketData] = []
    async with server_for(timeline, resume=True, batch_size=1) as server:
        server.faults.drop_after = 6
        feed = feed_for(server)
        async with DataEngine(Config(db_path=None)) as engine:
            engine.add_feed(feed)
            engine.add_data_callback(lambda s, b, q: seen.append(b))
            await engine.subscribe_symbol("SPY")
            await eventually(lambda: server.connections >= 3 and len(seen) >= 10)
            server.faults = ServerFaults()
            await eventually(lambda: feed.sessions == server.connections)
    assert actions(server)[:6] == ["auth", "subscribe"] * 3
    assert feed.sessions >= 3
    # every session delivered data: the backoff restarted at attempt 0 each time
    assert set(feed.reconnect_delays) == {FAST.ceiling(0)}
    stamps = [(b.ts_event, getattr(b, "revision", 0)) for b in seen]
    assert len(stamps) == len(set(stamps))  # resumed, not replayed from the start


async def test_bad_credentials_fail_once_with_a_clear_error_and_no_secret_anywhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    db = tmp_path / "auth.db"
    wrong = Credentials.of("PKLOOPBACK", "wrong-" + SECRET)
    async with server_for(spy_stream()) as server:
        feed = feed_for(server, credentials=wrong)
        engine = DataEngine(Config(db_path=db))
        engine.add_feed(feed)  # before start: start() waits for the first attempt
        async with engine:
            with pytest.raises(SubscriptionError, match="not connected"):
                await engine.subscribe_symbol("SPY")
            metrics = engine.get_metrics()
            assert feed.status is FeedStatus.FAILED
    assert isinstance(feed.fatal_error, FeedAuthError)
    assert "402" in str(feed.fatal_error)
    assert feed.connect_attempts == 1
    assert server.connections == 1
    assert feed.reconnect_delays == []
    with sqlite3.connect(db) as conn:
        errors = conn.execute("select kind, message from errors").fetchall()
        stored_metrics = conn.execute("select * from metrics").fetchall()
    assert ("feed_connect", str(feed.fatal_error)) in errors
    # every log record of the client side (the loopback server's own DEBUG dumps of what it
    # received are the venue's business, not ours)
    client_logs = "\n".join(
        f"{r.name} {r.getMessage()}"
        for r in caplog.records
        if not r.name.startswith("websockets.server")
    )
    assert "websockets.client" not in client_logs or "BINARY" not in client_logs
    everything = [
        client_logs,
        repr(errors),
        repr(stored_metrics),
        orjson.dumps(metrics, default=str).decode(),
        repr(feed.get_connection_status()),
        repr(feed),
        repr(feed.credentials),
    ]
    tail_hex = " ".join(f"{byte:02x}" for byte in SECRET.encode()[-4:])  # frame dumps
    for text in everything:
        assert SECRET not in text
        assert tail_hex not in text


async def test_connection_limit_waits_at_least_the_floor() -> None:
    async with server_for(spy_stream()) as server:
        server.faults.refuse_concurrent = True
        first, second = feed_for(server, "first"), feed_for(server, "second")
        assert await first.connect()
        assert await second.connect()  # retryable: keeps trying in the background
        await eventually(lambda: len(second.reconnect_delays) >= 2)
        delays = list(second.reconnect_delays[:2])
        await second.close()
        await first.close()
    # rng pinned to 1.0: ceilings 0.01 and 0.02 s, both raised to the 0.05 s 406 floor
    assert delays == [0.05, 0.05]
    assert "406" in second.last_error


async def test_insufficient_subscription_is_fatal() -> None:
    async with server_for(spy_stream(), plan_feeds={"iex"}) as server:
        feed = feed_for(server, source="sip")
        with pytest.raises(SubscriptionError, match="409"):
            await feed.connect()
        await feed.close()
    assert feed.connect_attempts == 1
    assert server.connections == 1


async def test_history_pages_and_fifty_429s() -> None:
    vendor = vendor_minutes()
    start, end = vendor[0].ts_event, vendor[-1].ts_event + NS_PER_MINUTE
    async with server_for(bars={"SPY": vendor}, page_limit=500) as server:
        server.faults.rate_limit_next = 50
        server.faults.retry_after = 0
        feed = feed_for(
            server, backoff=BackoffPolicy(base_s=0.001, cap_s=0.004), request_attempts=51
        )
        history = await feed.get_historical_data("SPY", start, end, vendor[0].resolution)
        await feed.close()
    statuses = [r.status for r in server.rest_requests]
    pages = -(-len(vendor) // 500)
    assert statuses == [429] * 50 + [200] * pages
    assert feed.request_retries == 50
    assert [ohlcv(b) for b in history] == [ohlcv(b) for b in vendor]
    assert all(isinstance(b, TradeBar) and b.closed for b in history)


async def test_malformed_truncated_and_unknown_frames_are_counted(tmp_path: Path) -> None:
    timeline = spy_stream()
    seen: list[MarketData] = []
    db = tmp_path / "frames.db"
    async with server_for(timeline, batch_size=1) as server:
        server.faults.malformed_at = {2}
        server.faults.truncated_at = {5}
        server.faults.unknown_at = {8}
        feed = feed_for(server)
        async with DataEngine(Config(db_path=db)) as engine:
            engine.add_feed(feed)
            engine.add_data_callback(lambda s, b, q: seen.append(b))
            await engine.subscribe_symbol("SPY")
            await eventually(lambda: len(seen) == 16)
            await engine.wait_idle()
    assert (feed.malformed_frames, feed.unknown_messages) == (2, 1)
    with sqlite3.connect(db) as conn:
        kinds = dict(conn.execute("select kind, count(*) from errors group by kind"))
    assert kinds == {"malformed_frame": 2, "unknown_message": 1}


async def test_subscribe_from_a_callback_while_running() -> None:
    timeline = spy_stream()
    seen: list[str] = []
    async with server_for(timeline) as server:
        feed = feed_for(server)
        async with DataEngine(Config(db_path=None, inbox_size=2)) as engine:
            engine.add_feed(feed)

            async def on_bar(symbol: str, bar: MarketData, quality: DataQualityLevel) -> None:
                seen.append(symbol)
                if len(seen) == 2:
                    await engine.subscribe_symbol("AAPL")
                if len(seen) == 4:
                    await engine.unsubscribe_symbol("AAPL")

            engine.add_data_callback(on_bar, policy="block", queue_size=1)
            await engine.subscribe_symbol("SPY")
            await eventually(lambda: len(seen) == 16 and actions(server).count("unsubscribe") == 1)
    assert actions(server) == ["auth", "subscribe", "subscribe", "unsubscribe"]
    unsubscribe = server.received[-1]
    assert unsubscribe["bars"] == ["AAPL"]


async def test_a_feed_refused_at_start_fails_over_to_the_next_feed(tmp_path: Path) -> None:
    minute = LEAN / "equity/usa/minute/spy/20131010_trade.zip"
    expected = [b.ts_event for b in load_file(minute) if isinstance(b, TradeBar)]
    seen: list[int] = []
    db = tmp_path / "start.db"
    async with server_for(spy_stream()) as server:
        alpaca = feed_for(server, credentials=Credentials.of("PKLOOPBACK", "wrong"))
        replay = ReplayFeed("replay", [minute])
        engine = DataEngine(Config(db_path=db))
        engine.add_feed(alpaca)
        engine.add_feed(replay)
        engine.add_data_callback(lambda s, b, q: seen.append(b.ts_event))
        assert await engine.subscribe_symbol("SPY") == "alpaca"  # applied at start
        async with engine:  # alpaca refuses the keys: start goes on, SPY moves to replay
            await eventually(lambda: engine.failover.backup_of("SPY") == "replay")
            await eventually(lambda: len(seen) == len(expected))
            assert alpaca.status is FeedStatus.FAILED
    assert isinstance(alpaca.fatal_error, FeedAuthError)
    assert seen == expected
    assert server.connections == 1
    with sqlite3.connect(db) as conn:
        kinds = [k for (k,) in conn.execute("select kind from errors order by id")]
    assert kinds.count("failover") == 1
    assert {"feed_connect", "subscribe_failed", "fatal"} <= set(kinds)


async def test_crypto_stream_delivers_the_recorded_trade_quote_and_bar() -> None:
    # Alpaca's own crypto answers, recorded in ccxt's tests (tests/fixtures/ccxt, PROVENANCE)
    methods = orjson.loads((FIXTURES / "ccxt/alpaca_marketdata_subset.json").read_bytes())
    snap = methods["methods"]["fetchTicker"][0]["httpResponse"]["snapshots"]["BTC/USD"]
    timeline = [
        {"T": "t", "S": "BTC/USD", **snap["latestTrade"]},
        {"T": "q", "S": "BTC/USD", **snap["latestQuote"]},
        {"T": "b", "S": "BTC/USD", **snap["minuteBar"]},
    ]
    seen: list[MarketData] = []
    async with server_for(timeline) as server:
        feed = feed_for(server, market="crypto", channels=("trades", "quotes", "bars"))
        async with DataEngine(Config(db_path=None)) as engine:
            engine.add_feed(feed)
            engine.add_data_callback(lambda s, b, q: seen.append(b))
            assert await engine.subscribe_symbol("BTC/USD") == "alpaca"
            await eventually(lambda: len(seen) == 3)
    trade, quote, bar = seen
    assert isinstance(trade, Tick)
    assert (trade.price, trade.size, trade.trade_id) == (69526.91, 0.001, "7446469938634049684")
    assert isinstance(quote, Tick)
    assert quote.tick_type is TickType.QUOTE
    assert isinstance(bar, TradeBar)
    assert (bar.open, bar.close, bar.closed) == (69648.07, 69656.91, True)
    subscribe = next(m for m in server.received if m.get("action") == "subscribe")
    assert (subscribe["trades"], subscribe["quotes"], subscribe["bars"]) == (["BTC/USD"],) * 3
    assert feed.stream_url.endswith("/v1beta3/crypto/us")


def test_default_staleness_of_stock_bars_follows_the_regular_session() -> None:
    # SPY's real minute bars of 2013-10-10: the 10:00 New York bar is in the session, the
    # 04:00 pre-market bar is not; Saturday 2013-10-12 has none
    spy = list(load_file(FIXTURES / "lean/equity/usa/minute/spy/20131010_trade.zip"))
    open_ns = next(b.ts_event for b in spy if b.time.hour == 14)  # 10:00 New York (UTC-4)
    premarket_ns = spy[0].ts_event
    saturday_ns = open_ns + 2 * 24 * 60 * NS_PER_MINUTE
    stocks = AlpacaDataFeed("stocks", credentials=KEYS)
    assert stocks.cadence_of("SPY") == 60.0
    assert stocks.stale_after_s("SPY", open_ns) == 3 * 60.0 + 10.0
    assert stocks.stale_after_s("SPY", premarket_ns) is None
    assert stocks.stale_after_s("SPY", saturday_ns) is None
    crypto = AlpacaDataFeed("crypto", credentials=KEYS, market="crypto")
    assert crypto.stale_after_s("BTC/USD", saturday_ns) == 3 * 60.0 + 10.0
    assert AlpacaDataFeed("off", credentials=KEYS, cadence_s=None).cadence_of("SPY") is None
    trades = AlpacaDataFeed("trades", credentials=KEYS, channels=("trades",))
    assert trades.stale_after_s("SPY", open_ns) is None
    explicit = AlpacaDataFeed("explicit", credentials=KEYS, cadence_s=5)
    assert explicit.stale_after_s("SPY", saturday_ns) == 15.0  # explicit: no calendar
