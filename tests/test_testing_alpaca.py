"""The loopback Alpaca server, driven by raw websockets/aiohttp clients and by alpaca-py.

Data: messages derived from the real LEAN SPY 2013-10-10 files (every print of 16:16-16:26
New York, the vendor's minute trade and quote bars; see ``lean_timeline``), the vendor's
AAPL 2014-06-09 minute bars, and Alpaca's own recorded crypto REST answers (ccxt).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import math
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
import msgpack
import orjson
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus

from lean_data.errors import FeedProtocolError
from lean_data.loaders import load_file
from lean_data.models import QuoteBar, Resolution, Tick, TickType, TradeBar, datetime_to_ns
from lean_data.testing import (
    MALFORMED_BINARY_FRAME,
    AlpacaLoopbackServer,
    BinaryFramePlanner,
    RestRequest,
    ServerFaults,
    alpaca_message,
    lean_timeline,
)
from lean_data.wire.alpaca import (
    STOCK_CHANNELS,
    auth_message,
    decode_frame,
    ns_to_rfc3339,
    parse_message,
    subscribe_message,
    unsubscribe_message,
)
from tests.conftest import FIXTURES, eventually

LEAN = FIXTURES / "lean"
USA = LEAN / "equity" / "usa"
CCXT = FIXTURES / "ccxt" / "alpaca_marketdata_subset.json"
START, END = datetime(2013, 10, 10, 20, 16), datetime(2013, 10, 10, 20, 26)
MSGPACK = {"Content-Type": "application/msgpack"}
CONNECTED = [{"T": "success", "msg": "connected"}]
AUTHENTICATED = [{"T": "success", "msg": "authenticated"}]
EMPTY_MAP: dict[str, list[str]] = {channel: [] for channel in STOCK_CHANNELS}


def ns(hour: int, minute: int, second: int = 0) -> int:
    return datetime_to_ns(datetime(2013, 10, 10, hour, minute, second, tzinfo=UTC))


def ack(**channels: list[str]) -> list[dict[str, Any]]:
    return [{"T": "subscription", **EMPTY_MAP, **channels}]


def of_type(messages: Sequence[dict[str, Any]], *types: str) -> list[dict[str, Any]]:
    return [message for message in messages if message["T"] in types]


@pytest.fixture(scope="module")
def spy() -> list[dict[str, Any]]:
    """SPY 16:16-16:26 New York: 194 prints, 10 quotes, 10 bars, 6 updates, 10 daily bars."""
    return lean_timeline(LEAN, "SPY", "20131010", start=START, end=END, daily=True)


@pytest.fixture(scope="module")
def vendor() -> dict[int, TradeBar]:
    bars = load_file(USA / "minute" / "spy" / "20131010_trade.zip")
    return {bar.ts_event: bar for bar in bars if isinstance(bar, TradeBar)}


@pytest.fixture(scope="module")
def prints() -> list[Tick]:
    ticks = load_file(USA / "tick" / "spy" / "20131010_trade.zip")
    return [tick for tick in ticks if isinstance(tick, Tick)]


@pytest.fixture(scope="module")
def aapl() -> list[TradeBar]:
    bars = load_file(USA / "minute" / "aapl" / "20140609_trade.zip")
    return [bar for bar in bars if isinstance(bar, TradeBar)]


@pytest.fixture(scope="module")
def ccxt() -> dict[str, Any]:
    methods: dict[str, Any] = json.loads(CCXT.read_text())["methods"]
    return methods


@asynccontextmanager
async def client(
    server: AlpacaLoopbackServer,
    feed: str = "iex",
    *,
    binary: bool = True,
    headers: dict[str, str] | None = None,
    login: bool = True,
) -> AsyncIterator[ClientConnection]:
    """A raw client; with ``login``, past the handshake (msgpack or JSON)."""
    extra = (MSGPACK if binary else {}) | (headers or {})
    async with ws_connect(server.stream_url(feed), additional_headers=extra, max_queue=None) as ws:
        if login:
            assert await recv(ws) == CONNECTED
            await ws.send(auth_message("key", "secret", "msgpack" if binary else "json"))
            assert await recv(ws) == AUTHENTICATED
        yield ws


async def recv(ws: ClientConnection) -> list[dict[str, Any]]:
    async with asyncio.timeout(5):
        return decode_frame(await ws.recv())


async def recv_messages(ws: ClientConnection, count: int) -> tuple[int, list[dict[str, Any]]]:
    """Receive frames until ``count`` messages came; return (frames, messages)."""
    frames, messages = 0, list[dict[str, Any]]()
    while len(messages) < count:
        messages += await recv(ws)
        frames += 1
    return frames, messages


async def subscribe(ws: ClientConnection, **channels: list[str]) -> list[dict[str, Any]]:
    await ws.send(subscribe_message(channels))
    return await recv(ws)


# --- the derived timeline -----------------------------------------------------------------


def test_timeline_is_derived_from_the_lean_files(
    spy: list[dict[str, Any]], vendor: dict[int, TradeBar], prints: list[Tick]
) -> None:
    assert Counter(m["T"] for m in spy) == {"t": 194, "q": 10, "b": 10, "d": 10, "u": 6}
    window = [tick for tick in prints if ns(20, 16) <= tick.ts_event < ns(20, 26)]
    trades = of_type(spy, "t")
    assert [(m["p"], m["s"], m["t"], m["x"]) for m in trades] == [
        (tick.price, tick.size, tick.ts_event, tick.exchange) for tick in window
    ]
    assert [prints[m["i"] - 1].ts_event for m in trades] == [m["t"] for m in trades]
    assert trades[0] == {
        "T": "t", "S": "SPY", "i": 456355, "x": "Q", "p": 168.99, "s": 100,
        "c": ["20002020"], "t": ns(20, 16) + 532_000_000, "z": "B",
    }  # fmt: skip
    for bar in of_type(spy, "b"):  # a live aggregator's bar of every print in the minute
        minute = [
            tick for tick in window if tick.ts_event // 60_000_000_000 * 60_000_000_000 == bar["t"]
        ]
        assert (bar["o"], bar["h"], bar["l"], bar["c"], bar["v"], bar["n"]) == (
            minute[0].price, max(t.price for t in minute), min(t.price for t in minute),
            minute[-1].price, sum(t.size for t in minute), len(minute),
        )  # fmt: skip
        assert bar["vw"] == math.fsum(t.price * t.size for t in minute) / bar["v"]
    final: dict[int, TradeBar] = {}
    for message in of_type(spy, "b", "u"):
        item = parse_message(message, 0).item
        assert isinstance(item, TradeBar)
        final[item.ts_event] = dataclasses.replace(item, revision=0)
    assert final == {t: bar for t, bar in vendor.items() if ns(20, 16) <= t < ns(20, 26)}
    updates = of_type(spy, "u")
    assert [m["t"] for m in updates] == [ns(20, m) for m in (16, 17, 18, 21, 23, 25)]
    assert updates[4] == {
        "T": "u", "S": "SPY", "o": 169.24, "h": 169.24, "l": 168.98, "c": 169.0,
        "v": 1535047, "t": ns(20, 23), "n": None, "vw": None,
    }  # fmt: skip
    assert of_type(spy, "b")[7]["l"] == 165.59  # the live bar took the block print
    daily = of_type(spy, "d")[-1]
    day = [bar for t, bar in vendor.items() if t <= ns(20, 25)]
    assert (daily["t"], daily["o"], daily["v"]) == (ns(4, 0), 166.43, sum(b.volume for b in day))


def test_quotes_are_the_closing_top_of_book() -> None:
    quotes = load_file(USA / "minute" / "aapl" / "20140609_quote.zip")
    first = quotes[0]
    assert isinstance(first, QuoteBar)
    assert alpaca_message(first, tape="C") == {
        "T": "q", "S": "AAPL", "bp": 92.0, "bs": 1000, "ap": 92.46, "as": 300,
        "t": first.ts_event + 60_000_000_000, "z": "C",
    }  # fmt: skip
    timeline = lean_timeline(LEAN, "AAPL", "20140609", end=first.ts_event + 120_000_000_000)
    assert [(m["T"], m["t"]) for m in timeline] == [
        ("q", first.ts_event + 60_000_000_000),
        ("b", first.ts_event),  # the vendor's bar (no tick file): n and vw unknown
        ("q", first.ts_event + 120_000_000_000),
        ("b", first.ts_event + 60_000_000_000),
    ]
    assert timeline[1]["o"] == 645.57  # the real pre-split open leaking into the 04:00 bar


def test_alpaca_message_round_trips_through_the_parser(
    prints: list[Tick], ccxt: dict[str, Any]
) -> None:
    lean = prints[0]  # a real SPY print: exchange "P", LEAN condition flags
    message = alpaca_message(lean, trade_id=1, tape="B")
    assert parse_message(message, 0).item == Tick(
        "SPY", lean.ts_event, lean.price, lean.size, exchange="P", condition="20002000",
        trade_id="1",
    )  # fmt: skip
    snap = ccxt["fetchTicker"][0]["httpResponse"]["snapshots"]["BTC/USD"]
    for kind, body in (("t", snap["latestTrade"]), ("q", snap["latestQuote"])):
        real = {"T": kind, "S": "BTC/USD", **body, "t": 1_730_512_819_319_731_210}
        tick = parse_message(real, 0).item
        assert isinstance(tick, Tick)
        assert alpaca_message(tick) == real  # the encoder writes what Alpaca wrote
        assert parse_message(alpaca_message(tick), 0).item == tick
    doc_quote = Tick(
        "AMD", 1, 87.67, 0.0, TickType.QUOTE, bid_price=87.66, bid_size=1.0, ask_price=87.68,
        ask_size=4.0, exchange="U/Q", condition="R",
    )  # fmt: skip
    assert alpaca_message(doc_quote, tape="C") == {
        "T": "q", "S": "AMD", "bx": "U", "bp": 87.66, "bs": 1, "ax": "Q", "ap": 87.68, "as": 4,
        "t": 1, "c": ["R"], "z": "C",
    }  # fmt: skip
    with pytest.raises(ValueError, match="expected a minute or daily bar, got a 1h bar"):
        alpaca_message(TradeBar("SPY", 0, 1.0, 1.0, 1.0, 1.0, 1.0, Resolution.HOUR))


# --- handshake and subscriptions ----------------------------------------------------------


async def test_msgpack_handshake_subscribe_and_batched_data(spy: list[dict[str, Any]]) -> None:
    async with (
        AlpacaLoopbackServer(spy) as server,
        ws_connect(server.stream_url(), additional_headers=MSGPACK) as ws,
    ):
        connected = await ws.recv()
        assert isinstance(connected, bytes)
        assert msgpack.unpackb(connected) == CONNECTED
        await ws.send(auth_message("key", "secret"))
        assert await recv(ws) == AUTHENTICATED
        assert await subscribe(ws, bars=["SPY"], trades=["SPY"]) == ack(
            trades=["SPY"], bars=["SPY"], corrections=["SPY"], cancelErrors=["SPY"]
        )
        first = await ws.recv()
        frames, messages = await recv_messages(ws, 204 - 16)
    assert isinstance(first, bytes)
    assert isinstance(msgpack.unpackb(first)[0]["t"], msgpack.Timestamp)
    assert decode_frame(first) + messages == of_type(spy, "t", "b")
    assert frames + 1 == 13  # 204 messages, 16 a frame
    assert server.received == [
        {"action": "auth", "key": "key", "secret": "secret"},
        {"action": "subscribe", "bars": ["SPY"], "trades": ["SPY"]},
    ]
    assert server.connections == 1


async def test_json_clients_get_text_frames_with_rfc3339_times(spy: list[dict[str, Any]]) -> None:
    async with (
        AlpacaLoopbackServer(spy, batch_size=1) as server,
        ws_connect(server.stream_url("test")) as ws,
    ):
        assert await ws.recv() == '[{"T":"success","msg":"connected"}]'
        await ws.send(auth_message("key", "secret", "json"))
        assert await ws.recv() == '[{"T":"success","msg":"authenticated"}]'
        await ws.send(subscribe_message({"dailyBars": ["*"]}, "json"))
        await ws.recv()
        first = await ws.recv()
    daily = of_type(spy, "d")[0]
    assert first == orjson.dumps([{**daily, "t": "2013-10-10T04:00:00Z"}]).decode()
    assert first.startswith('[{"T":"d","S":"SPY","o":166.43,"h":')
    assert first.endswith(',"t":"2013-10-10T04:00:00Z","n":null,"vw":null}]')
    assert server.received[1] == {"action": "subscribe", "dailyBars": ["*"]}


async def test_paced_replay_sends_the_same_frames(spy: list[dict[str, Any]]) -> None:
    server = AlpacaLoopbackServer(spy, frame_interval=0.001, batch_size=4)
    async with server, client(server) as ws:
        await subscribe(ws, updatedBars=["SPY"], bars=["SPY"])
        frames, messages = await recv_messages(ws, 16)
    assert (frames, messages) == (4, of_type(spy, "b", "u"))


async def test_header_auth_authenticates_without_a_message() -> None:
    keys = {"APCA-API-KEY-ID": "key", "APCA-API-SECRET-KEY": "secret"}
    async with AlpacaLoopbackServer() as server, client(server, headers=keys, login=False) as ws:
        assert await recv(ws) == CONNECTED
        assert await recv(ws) == AUTHENTICATED
    wrong = {"APCA-API-KEY-ID": "key", "APCA-API-SECRET-KEY": "nope"}
    async with AlpacaLoopbackServer() as server, client(server, headers=wrong, login=False) as ws:
        assert await recv(ws) == CONNECTED
        assert await recv(ws) == [{"T": "error", "code": 402, "msg": "auth failed"}]
        with pytest.raises(ConnectionClosedOK):
            await recv(ws)
    assert server.received == []


async def test_wrong_keys_get_402_and_the_connection_closes() -> None:
    async with AlpacaLoopbackServer() as server, client(server, login=False) as ws:
        assert await recv(ws) == CONNECTED
        await ws.send(auth_message("key", "wrong"))
        assert await recv(ws) == [{"T": "error", "code": 402, "msg": "auth failed"}]
        with pytest.raises(ConnectionClosedOK):
            await recv(ws)
    assert server.received == [{"action": "auth", "key": "key", "secret": "wrong"}]


async def test_second_connection_gets_406_with_refuse_concurrent(
    spy: list[dict[str, Any]],
) -> None:
    faults = ServerFaults(refuse_concurrent=True)
    async with AlpacaLoopbackServer(spy, faults=faults) as server, client(server) as first:
        async with client(server, login=False) as second:
            assert await recv(second) == CONNECTED
            await second.send(auth_message("key", "secret"))
            assert await recv(second) == [
                {"T": "error", "code": 406, "msg": "connection limit exceeded"}
            ]
            with pytest.raises(ConnectionClosedOK):
                await recv(second)
        assert await subscribe(first, updatedBars=["SPY"]) == ack(updatedBars=["SPY"])
        assert (await recv(first))[0] == of_type(spy, "u")[0]
    assert server.connections == 2


async def test_409_for_feeds_and_channels_outside_the_plan() -> None:
    plan = {"feeds": {"iex"}, "channels": {"bars", "updatedBars"}}
    async with AlpacaLoopbackServer(plan_feeds=plan["feeds"], plan_channels=plan["channels"]) as s:
        async with client(s, "sip", login=False) as sip:
            assert await recv(sip) == CONNECTED
            await sip.send(auth_message("key", "secret"))
            assert await recv(sip) == [
                {"T": "error", "code": 409, "msg": "insufficient subscription"}
            ]
            with pytest.raises(ConnectionClosedOK):
                await recv(sip)
        async with client(s) as iex:
            assert await subscribe(iex, quotes=["SPY"]) == [
                {"T": "error", "code": 409, "msg": "insufficient subscription"}
            ]
            assert await subscribe(iex, bars=["SPY"]) == ack(bars=["SPY"])


async def test_error_replies_for_bad_client_messages() -> None:
    async with AlpacaLoopbackServer(symbol_limit=1) as server, client(server, login=False) as ws:
        assert await recv(ws) == CONNECTED
        assert await subscribe(ws, bars=["SPY"]) == [
            {"T": "error", "code": 401, "msg": "not authenticated"}
        ]
        await ws.send(MALFORMED_BINARY_FRAME)
        assert await recv(ws) == [{"T": "error", "code": 400, "msg": "invalid syntax"}]
        await ws.send(auth_message("key", "secret"))
        assert await recv(ws) == AUTHENTICATED
        await ws.send(auth_message("key", "secret"))
        assert await recv(ws) == [{"T": "error", "code": 403, "msg": "already authenticated"}]
        await ws.send(msgpack.packb({"action": "listen", "bars": ["SPY"]}))
        assert await recv(ws) == [{"T": "error", "code": 400, "msg": "invalid syntax"}]
        await ws.send(msgpack.packb({"action": "subscribe", "klines": ["SPY"]}))
        assert await recv(ws) == [{"T": "error", "code": 400, "msg": "invalid syntax"}]
        assert await subscribe(ws, bars=["SPY", "AAPL"]) == [
            {"T": "error", "code": 405, "msg": "symbol limit exceeded"}
        ]
        assert await subscribe(ws, bars=["*"], trades=["SPY"]) == ack(
            bars=["*"], trades=["SPY"], corrections=["SPY"], cancelErrors=["SPY"]
        )
    assert server.received[1] == MALFORMED_BINARY_FRAME
    assert len(server.received) == 8


async def test_auth_timeout_gets_404_and_close() -> None:
    async with AlpacaLoopbackServer(auth_timeout=0.05) as server, client(server, login=False) as ws:
        assert await recv(ws) == CONNECTED
        assert await recv(ws) == [{"T": "error", "code": 404, "msg": "auth timeout"}]
        with pytest.raises(ConnectionClosedOK):
            await recv(ws)


async def test_unknown_stream_path_is_404() -> None:
    async with AlpacaLoopbackServer() as server:
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(f"{server.ws_url}/v2/nasdaq"):
                pass
        assert refused.value.response.status_code == 404
        assert server.connections == 0
        assert server.stream_url("crypto") == f"{server.ws_url}/v1beta3/crypto/us"


async def test_fragmented_subscribe_is_reassembled(spy: list[dict[str, Any]]) -> None:
    message = subscribe_message({"bars": ["SPY"], "updatedBars": ["SPY"]})
    async with AlpacaLoopbackServer(spy) as server, client(server) as ws:
        await ws.send([message[:7], message[7:20], message[20:]])  # one message, 3 fragments
        assert await recv(ws) == ack(bars=["SPY"], updatedBars=["SPY"])
        _, messages = await recv_messages(ws, 16)
    assert messages == of_type(spy, "b", "u")
    assert server.received[-1] == {"action": "subscribe", "bars": ["SPY"], "updatedBars": ["SPY"]}


async def test_data_follows_subscriptions_and_pushes(
    spy: list[dict[str, Any]], aapl: list[TradeBar]
) -> None:
    error = {"T": "error", "code": 407, "msg": "slow client"}
    async with AlpacaLoopbackServer(spy) as server, client(server) as ws:
        assert await subscribe(ws, bars=["AAPL"]) == ack(bars=["AAPL"])
        server.push(aapl[0], error)  # nothing of SPY came before the AAPL bar
        assert await recv(ws) == [alpaca_message(aapl[0])]
        assert await recv(ws) == [error]  # control messages go to everyone, alone
        assert await subscribe(ws, updatedBars=["*"]) == ack(bars=["AAPL"], updatedBars=["*"])
        server.push(*spy)  # replay the day again: only its "u" bars match
        assert await recv(ws) == of_type(spy, "u")
        await ws.send(unsubscribe_message({"updatedBars": ["*"], "bars": ["AAPL"]}))
        assert await recv(ws) == ack()
        assert await subscribe(ws, quotes=["AAPL"]) == ack(quotes=["AAPL"])
        server.push(aapl[1], error)
        assert await recv(ws) == [error]  # the AAPL bar no longer matches
    assert server.messages[-2:] == [alpaca_message(aapl[1]), error]


# --- faults -------------------------------------------------------------------------------


async def test_injected_frames_sit_at_their_positions(spy: list[dict[str, Any]]) -> None:
    good = [
        msgpack.packb([{**m, "t": msgpack.Timestamp.from_unix_nano(m["t"])}])
        for m in of_type(spy, "u")
    ]
    faults = ServerFaults(
        malformed_at={1}, truncated_at={2}, unknown_at={3}, duplicate_at={4}, reorder_at={0}
    )
    async with (
        AlpacaLoopbackServer(spy, batch_size=1, faults=faults) as server,
        client(server) as ws,
    ):
        await subscribe(ws, updatedBars=["SPY"])
        async with asyncio.timeout(5):
            frames = [await ws.recv() for _ in range(10)]
    unknown = msgpack.packb([{"T": "loopbackUnknown", "S": "SPY"}])
    assert frames == [
        MALFORMED_BINARY_FRAME, good[1], good[0], good[2][: len(good[2]) // 2], good[2],
        unknown, good[3], good[4], good[4], good[5],
    ]  # fmt: skip
    for broken in (frames[0], frames[3]):
        with pytest.raises(ValueError, match=r"^$|incomplete input"):  # FormatError has no text
            msgpack.unpackb(broken)
        with pytest.raises(FeedProtocolError, match="expected a msgpack array"):
            decode_frame(broken)
    assert parse_message(decode_frame(unknown)[0], 0).kind == "unknown"


@pytest.mark.parametrize(("code", "expected"), [(None, 1006), (1011, 1011)])
async def test_drop_after_n_frames(
    spy: list[dict[str, Any]], code: int | None, expected: int
) -> None:
    faults = ServerFaults(drop_after=2, drop_close_code=code)
    async with AlpacaLoopbackServer(spy, faults=faults) as server, client(server) as ws:
        await subscribe(ws, trades=["SPY"])
        _, messages = await recv_messages(ws, 32)
        with pytest.raises(ConnectionClosedError):
            await recv(ws)
    assert messages == of_type(spy, "t")[:32]
    assert ws.close_code == expected


async def test_resume_continues_where_the_last_connection_stopped(
    spy: list[dict[str, Any]],
) -> None:
    faults = ServerFaults(drop_after=1)
    async with AlpacaLoopbackServer(spy, resume=True, batch_size=4, faults=faults) as server:
        async with client(server) as ws:
            await subscribe(ws, bars=["SPY"], updatedBars=["SPY"])
            first = await recv(ws)
            with pytest.raises(ConnectionClosedError):
                await recv(ws)
        server.faults = ServerFaults()
        async with client(server) as ws:
            await subscribe(ws, bars=["SPY"], updatedBars=["SPY"])
            _, second = await recv_messages(ws, 12)
    assert first + second == of_type(spy, "b", "u")
    assert server.connections == 2


async def test_silence_keeps_the_socket_but_sends_nothing(spy: list[dict[str, Any]]) -> None:
    faults = ServerFaults(silent_after=1)
    async with AlpacaLoopbackServer(spy, faults=faults) as server, client(server) as ws:
        await subscribe(ws, trades=["SPY"])
        assert await recv(ws) == of_type(spy, "t")[:16]
        await ws.send(subscribe_message({"quotes": ["SPY"]}))
        await eventually(lambda: len(server.received) == 3)
        pong = await ws.ping()
        async with asyncio.timeout(5):
            await pong
        with pytest.raises(TimeoutError):  # the silence window: no ack, no data
            async with asyncio.timeout(0.2):
                await ws.recv()
        assert server.open_connections == 1


def test_binary_planner_applies_the_faults_to_bytes() -> None:
    planner = BinaryFramePlanner(ServerFaults(malformed_at={0}, truncated_at={1}, drop_after=4))
    assert planner.feed(b"\x91\x80", lambda: b"?") == [MALFORMED_BINARY_FRAME, b"\x91\x80"]
    assert planner.feed(b"\x92\x80\x80", lambda: b"?") == [b"\x92", b"\x92\x80\x80"]
    assert planner.stop == "drop"


# --- REST bars ----------------------------------------------------------------------------


@pytest.fixture
async def rest(
    vendor: dict[int, TradeBar], aapl: list[TradeBar], ccxt: dict[str, Any]
) -> AsyncIterator[AlpacaLoopbackServer]:
    crypto = ccxt["fetchOHLCV"][0]["httpResponse"]["bars"]
    async with AlpacaLoopbackServer(
        bars={"SPY": list(vendor.values()), "AAPL": aapl}, crypto_bars=crypto
    ) as server:
        yield server


async def get(
    server: AlpacaLoopbackServer,
    params: Mapping[str, object],
    path: str = "/v2/stocks/bars",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    keys = {"APCA-API-KEY-ID": "key", "APCA-API-SECRET-KEY": "secret"}
    query = {key: str(value) for key, value in params.items()}
    url = server.rest_url + path
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, params=query, headers=keys if headers is None else headers) as response,
    ):
        body = await response.read()
        decoded = orjson.loads(body) if response.content_type == "application/json" else body
        return response.status, decoded, dict(response.headers)


def rows(bars: Sequence[TradeBar]) -> list[dict[str, Any]]:
    return [
        {"t": ns_to_rfc3339(b.ts_event), "o": b.open, "h": b.high, "l": b.low, "c": b.close,
         "v": int(b.volume), "n": None, "vw": None}
        for b in bars
    ]  # fmt: skip


async def test_bars_paginate_across_symbols_with_opaque_tokens(
    rest: AlpacaLoopbackServer, vendor: dict[int, TradeBar], aapl: list[TradeBar]
) -> None:
    pages, token = [], None
    while True:
        params = {"symbols": "SPY,AAPL", "timeframe": "1Min", "limit": 500}
        status, page, _ = await get(rest, params | ({"page_token": token} if token else {}))
        assert status == 200
        pages.append(page)
        token = page["next_page_token"]
        if token is None:
            break
    assert [{s: len(b) for s, b in page["bars"].items()} for page in pages] == [
        {"AAPL": 500}, {"AAPL": 334, "SPY": 166}, {"SPY": 500}, {"SPY": 217},
    ]  # fmt: skip
    spy = list(vendor.values())
    assert [base64.b64decode(page["next_page_token"] or "").decode() for page in pages] == [
        f"AAPL|{ns_to_rfc3339(aapl[499].ts_event)}", f"SPY|{ns_to_rfc3339(spy[165].ts_event)}",
        f"SPY|{ns_to_rfc3339(spy[665].ts_event)}", "",
    ]  # fmt: skip
    assert ns_to_rfc3339(aapl[499].ts_event) == "2014-06-09T18:05:00Z"
    merged: dict[str, list[Any]] = {}
    for page in pages:
        for symbol, bars in page["bars"].items():
            merged.setdefault(symbol, []).extend(bars)
    assert merged == {"AAPL": rows(aapl), "SPY": rows(list(vendor.values()))}
    assert [r.params.get("page_token") for r in rest.rest_requests] == [
        None, *(page["next_page_token"] for page in pages[:3]),
    ]  # fmt: skip


async def test_bars_window_and_descending_sort(
    rest: AlpacaLoopbackServer, vendor: dict[int, TradeBar]
) -> None:
    params = {"symbols": "SPY", "timeframe": "1Min", "sort": "desc", "limit": 4}
    params |= {"start": "2013-10-10T16:16:00-04:00", "end": "2013-10-10T20:25:00Z"}
    _, first, _ = await get(rest, params)
    _, second, _ = await get(rest, params | {"page_token": first["next_page_token"]})
    _, last, _ = await get(rest, params | {"page_token": second["next_page_token"]})
    window = [bar for t, bar in vendor.items() if ns(20, 16) <= t <= ns(20, 25)]
    assert [len(p["bars"]["SPY"]) for p in (first, second, last)] == [4, 4, 2]
    assert first["bars"]["SPY"] + second["bars"]["SPY"] + last["bars"]["SPY"] == rows(window[::-1])
    assert last["next_page_token"] is None
    _, hours, _ = await get(rest, {"symbols": "SPY", "timeframe": "1Hour"})
    assert hours == {"bars": {}, "next_page_token": None}  # only minute bars were given


MIN = {"symbols": "SPY", "timeframe": "1Min"}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"timeframe": "1Min"}, "missing symbols"),
        ({"symbols": "SPY"}, "missing timeframe"),
        ({"symbols": "SPY", "timeframe": "1Month"}, "invalid timeframe: '1Month'"),
        (MIN | {"limit": 10001}, "invalid limit: '10001', expected 1 to 10000"),
        (MIN | {"limit": 0}, "invalid limit: '0', expected 1 to 10000"),
        (MIN | {"start": "yesterday"}, "invalid start: 'yesterday', expected RFC-3339"),
        (MIN | {"sort": "up"}, "invalid sort: 'up', expected asc or desc"),
        (MIN | {"page_token": "xyz"}, "invalid page token: 'xyz'"),
    ],
)
async def test_bad_parameters_get_422(
    rest: AlpacaLoopbackServer, params: dict[str, Any], message: str
) -> None:
    status, body, _ = await get(rest, params)
    assert (status, body) == (422, {"code": 42210000, "message": message})


async def test_auth_rate_limits_and_crypto_without_keys(
    rest: AlpacaLoopbackServer, ccxt: dict[str, Any]
) -> None:
    params = {"symbols": "SPY", "timeframe": "1Min", "limit": 1}
    missing = await get(rest, params, headers={})
    wrong_keys = {"APCA-API-KEY-ID": "key", "APCA-API-SECRET-KEY": "x"}
    wrong = await get(rest, params, headers=wrong_keys)
    rest.faults.rate_limit_next, rest.faults.retry_after = 2, 7
    limited = [await get(rest, params) for _ in range(3)]
    btc = {"symbols": "BTC/USD", "timeframe": "1Min"}
    crypto = await get(rest, btc, "/v1beta3/crypto/us/bars", headers={})
    unknown = await get(rest, {"symbols": "SPY"}, "/v2/stocks/trades")
    rest.faults.ban_next = 1  # Alpaca has no ban answer: a 429 too
    banned = await get(rest, btc, "/v1beta3/crypto/us/bars")
    assert banned[:2] == (429, {"message": "too many requests."})
    assert banned[2]["Retry-After"] == "7"
    assert missing[:2] == (401, {"message": "unauthorized."})
    assert wrong[:2] == (403, {"message": "forbidden."})
    assert [(s, b) for s, b, _ in limited[:2]] == [(429, {"message": "too many requests."})] * 2
    assert [h["Retry-After"] for _, _, h in limited[:2]] == ["7", "7"]
    assert limited[2][0] == 200
    assert crypto[:2] == (200, ccxt["fetchOHLCV"][0]["httpResponse"])  # Alpaca's recorded answer
    assert unknown[0] == 404
    query = {"symbols": "SPY", "timeframe": "1Min", "limit": "1"}
    assert rest.rest_requests[:5] == [
        RestRequest("GET", "/v2/stocks/bars", query, status) for status in (401, 403, 429, 429, 200)
    ]
    assert rest.rest_requests[-2:] == [
        RestRequest("GET", "/v2/stocks/trades", {"symbols": "SPY"}, 404),
        RestRequest("GET", "/v1beta3/crypto/us/bars", btc, 429),
    ]


# --- the real alpaca-py client ------------------------------------------------------------


def alpaca_live() -> Any:
    """Import alpaca-py's stream module (it imports websockets.legacy, deprecated)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import alpaca.data.live as live
    return live


WEBSOCKET_PARAMS = {"ping_interval": 10, "ping_timeout": 180, "max_queue": 1024}


class Handlers:
    """alpaca-py handlers that record what they get, per channel."""

    def __init__(self) -> None:
        self.got: dict[str, list[Any]] = {}

    def __call__(self, channel: str) -> Callable[[Any], Any]:
        async def handler(item: Any) -> None:
            self.got.setdefault(channel, []).append(item)

        return handler

    def count(self) -> int:
        return sum(map(len, self.got.values()))


@asynccontextmanager
async def running(stream: Any, server: AlpacaLoopbackServer) -> AsyncIterator[asyncio.Task[None]]:
    """Run an alpaca-py stream on this loop; stop it and end its task on exit."""
    task = asyncio.create_task(stream._run_forever())
    try:
        yield task
    finally:
        await stream.stop_ws()
        await server.disconnect(1001)  # wakes its 5 s recv poll so it sees the stop
        async with asyncio.timeout(5):
            await task


def stock_stream(server: AlpacaLoopbackServer, feed: str = "iex", secret: str = "secret") -> Any:
    return alpaca_live().StockDataStream(
        "key", secret, url_override=server.stream_url(feed), websocket_params=WEBSOCKET_PARAMS
    )


def subscribe_all(stream: Any, handlers: Handlers, *symbols: str) -> None:
    stream.subscribe_trades(handlers("trades"), *symbols)
    stream.subscribe_quotes(handlers("quotes"), *symbols)
    stream.subscribe_bars(handlers("bars"), *symbols)
    stream.subscribe_updated_bars(handlers("updatedBars"), *symbols)
    stream.subscribe_daily_bars(handlers("dailyBars"), *symbols)


def as_wire(bar: Any) -> dict[str, Any]:
    """An alpaca-py Bar back in wire terms."""
    return {
        "S": bar.symbol, "o": bar.open, "h": bar.high, "l": bar.low, "c": bar.close,
        "v": bar.volume, "t": datetime_to_ns(bar.timestamp), "n": bar.trade_count, "vw": bar.vwap,
    }  # fmt: skip


def strip(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in m.items() if k != "T"} for m in messages]


async def test_alpaca_py_stream_receives_every_derived_message(
    spy: list[dict[str, Any]], vendor: dict[int, TradeBar]
) -> None:
    handlers = Handlers()
    async with AlpacaLoopbackServer(spy) as server:
        stream = stock_stream(server)
        subscribe_all(stream, handlers, "SPY")
        async with running(stream, server):
            await eventually(lambda: handlers.count() == 230)
    got = handlers.got
    assert {channel: len(items) for channel, items in got.items()} == {
        "trades": 194, "quotes": 10, "bars": 10, "updatedBars": 6, "dailyBars": 10,
    }  # fmt: skip
    for channel, kind in (("bars", "b"), ("updatedBars", "u"), ("dailyBars", "d")):
        assert [as_wire(bar) for bar in got[channel]] == strip(of_type(spy, kind))
    trades = [(t.id, t.exchange, t.price, t.size, t.conditions, t.tape) for t in got["trades"]]
    assert trades == [(m["i"], m["x"], m["p"], m["s"], m["c"], m["z"]) for m in of_type(spy, "t")]
    assert [datetime_to_ns(t.timestamp) for t in got["trades"]] == [
        m["t"] // 1000 * 1000
        for m in of_type(spy, "t")  # datetime keeps microseconds
    ]
    quotes = [(q.bid_price, q.bid_size, q.ask_price, q.ask_size) for q in got["quotes"]]
    assert quotes == [(m["bp"], m["bs"], m["ap"], m["as"]) for m in of_type(spy, "q")]
    last = {datetime_to_ns(b.timestamp): b for b in got["bars"] + got["updatedBars"]}
    assert {t: (b.open, b.high, b.low, b.close, b.volume) for t, b in last.items()} == {
        t: (v.open, v.high, v.low, v.close, v.volume)
        for t, v in vendor.items()
        if ns(20, 16) <= t < ns(20, 26)
    }
    assert server.received == [
        {"action": "auth", "key": "key", "secret": "secret"},
        {"action": "subscribe", "trades": ["SPY"], "quotes": ["SPY"], "bars": ["SPY"],
         "updatedBars": ["SPY"], "dailyBars": ["SPY"]},
    ]  # fmt: skip


async def test_alpaca_py_survives_broken_frames_and_reconnects_with_resume(
    spy: list[dict[str, Any]],
) -> None:
    # Every connection gets: malformed, 2 bars, truncated, 2 bars, unknown, then the drop
    # (5 frames written). The 2 bars batched for the frame the drop cut off are lost, as
    # on a live venue; with resume=True the next connection continues after them.
    handlers = Handlers()
    faults = ServerFaults(malformed_at={0}, truncated_at={1}, unknown_at={2}, drop_after=5)
    async with AlpacaLoopbackServer(spy, faults=faults, resume=True, batch_size=2) as server:
        stream = stock_stream(server)
        stream.subscribe_bars(handlers("bars"), "SPY")
        stream.subscribe_updated_bars(handlers("updatedBars"), "SPY")
        async with running(stream, server):
            await eventually(lambda: handlers.count() == 12 and server.connections == 3)
    bars = [as_wire(bar) for bar in handlers.got["bars"] + handlers.got["updatedBars"]]
    sent = strip(of_type(spy, "b", "u"))
    assert len(sent) == 16
    expected = sent[0:4] + sent[6:10] + sent[12:16]

    def key(bar: dict[str, Any]) -> tuple[int, bool]:
        return bar["t"], bar["n"] is None

    assert sorted(bars, key=key) == sorted(expected, key=key)
    login = [{"action": "auth", "key": "key", "secret": "secret"},
             {"action": "subscribe", "bars": ["SPY"], "updatedBars": ["SPY"]}]  # fmt: skip
    assert server.received == login * 3  # alpaca-py re-authenticates and resends the full map


async def test_alpaca_py_subscribes_from_another_thread(spy: list[dict[str, Any]]) -> None:
    handlers = Handlers()
    async with AlpacaLoopbackServer(spy) as server:
        stream = stock_stream(server)
        stream.subscribe_updated_bars(handlers("updatedBars"), "SPY")
        async with running(stream, server):
            await eventually(lambda: handlers.count() == 6)
            # From the loop's own thread this would deadlock (run_coroutine_threadsafe().result()).
            await asyncio.to_thread(stream.subscribe_bars, handlers("bars"), "AAPL")
            await eventually(lambda: len(server.received) == 3)
            aapl = load_file(USA / "minute" / "aapl" / "20140609_trade.zip")[:2]
            server.push(*aapl)
            await eventually(lambda: len(handlers.got.get("bars", [])) == 2)
    assert server.received[2] == {"action": "subscribe", "bars": ["AAPL"], "updatedBars": ["SPY"]}
    assert [(b.open, b.close) for b in handlers.got["bars"]] == [
        (bar.open, bar.close) for bar in aapl if isinstance(bar, TradeBar)
    ]
    assert handlers.got["bars"][0].open == 645.57


async def test_alpaca_py_gets_406_and_409_as_alpaca_sends_them(
    spy: list[dict[str, Any]],
) -> None:
    faults = ServerFaults(refuse_concurrent=True)
    async with AlpacaLoopbackServer(spy, faults=faults, plan_feeds={"iex"}) as server:
        sip = stock_stream(server, "sip")
        sip.subscribe_bars(Handlers()("bars"), "SPY")
        async with asyncio.timeout(5):  # 409 is the one error alpaca-py gives up on
            await sip._run_forever()
        first, second = stock_stream(server), stock_stream(server)
        first.subscribe_bars(Handlers()("bars"), "SPY")
        second.subscribe_bars(Handlers()("bars"), "SPY")
        async with running(first, server):
            await eventually(lambda: len(server.received) == 3)
            async with running(second, server):
                await eventually(lambda: server.connections == 3)
                # the connection is counted before its auth message arrives: wait for it
                await eventually(lambda: len(server.received) >= 4)
    assert server.received[:4] == [{"action": "auth", "key": "key", "secret": "secret"}] * 2 + [
        {"action": "subscribe", "bars": ["SPY"]},
        {"action": "auth", "key": "key", "secret": "secret"},
    ]


async def test_alpaca_py_crypto_stream(ccxt: dict[str, Any]) -> None:
    snap = ccxt["fetchTicker"][0]["httpResponse"]["snapshots"]["BTC/USD"]
    timeline = [
        {"T": "t", "S": "BTC/USD", **snap["latestTrade"]},
        {"T": "q", "S": "BTC/USD", **snap["latestQuote"]},
        {"T": "b", "S": "BTC/USD", **snap["minuteBar"]},
    ]
    handlers = Handlers()
    async with AlpacaLoopbackServer(timeline) as server:
        stream = alpaca_live().CryptoDataStream(
            "key",
            "secret",
            url_override=server.stream_url("crypto"),
            websocket_params=WEBSOCKET_PARAMS,
        )
        stream.subscribe_trades(handlers("trades"), "BTC/USD")
        stream.subscribe_quotes(handlers("quotes"), "BTC/USD")
        stream.subscribe_bars(handlers("bars"), "BTC/USD")
        async with running(stream, server):
            await eventually(lambda: handlers.count() == 3)
    [trade], [quote], [bar] = (handlers.got[c] for c in ("trades", "quotes", "bars"))
    assert (trade.id, trade.price, trade.size) == (7446469938634049684, 69526.91, 0.001)
    assert trade.timestamp == datetime(2024, 11, 2, 1, 21, 49, 863844, tzinfo=UTC)
    assert (quote.bid_price, quote.ask_size) == (69625.1, 0.682)
    assert (bar.open, bar.close, bar.volume, bar.trade_count, bar.vwap) == (
        69648.07, 69656.91, 0.0, 0.0, 0.0,
    )  # fmt: skip


def historical(module: str, name: str, server: AlpacaLoopbackServer) -> Any:
    import importlib

    cls = getattr(importlib.import_module(module), name)
    return cls("key", "secret", url_override=server.rest_url)


def fetch_all(client: Any, request: Any, method: str) -> Any:
    try:
        return getattr(client, method)(request)
    finally:
        client._session.close()  # requests.Session: close its pooled sockets


async def test_alpaca_py_historical_client_reads_every_page(
    vendor: dict[int, TradeBar], aapl: list[TradeBar]
) -> None:
    from alpaca.data.requests import StockBarsRequest
    from alpaca.data.timeframe import TimeFrame

    bars = {"SPY": list(vendor.values()), "AAPL": aapl}
    async with AlpacaLoopbackServer(bars=bars, page_limit=500) as server:
        request = StockBarsRequest(
            symbol_or_symbols=["SPY", "AAPL"], timeframe=TimeFrame.Minute,
            start=datetime(2013, 10, 10), end=datetime(2014, 6, 10),
        )  # fmt: skip
        client = historical("alpaca.data.historical", "StockHistoricalDataClient", server)
        barset = await asyncio.to_thread(fetch_all, client, request, "get_stock_bars")
    got = {s: [(datetime_to_ns(b.timestamp), b.open, b.high, b.low, b.close, b.volume)
               for b in items] for s, items in barset.data.items()}  # fmt: skip
    assert got == {
        s: [(b.ts_event, b.open, b.high, b.low, b.close, b.volume) for b in items]
        for s, items in bars.items()
    }
    assert [len(v) for v in got.values()] in ([883, 834], [834, 883])
    params = [r.params for r in server.rest_requests]
    assert [p["limit"] for p in params] == ["10000"] * 4  # alpaca-py's page size; we cap at 500
    spy = bars["SPY"]
    assert [base64.b64decode(p["page_token"]).decode() for p in params[1:]] == [
        f"AAPL|{ns_to_rfc3339(aapl[499].ts_event)}", f"SPY|{ns_to_rfc3339(spy[165].ts_event)}",
        f"SPY|{ns_to_rfc3339(spy[665].ts_event)}",
    ]  # fmt: skip
    assert params[0] == {
        "symbols": "SPY,AAPL", "timeframe": "1Min", "start": "2013-10-10T00:00:00+00:00",
        "end": "2014-06-10T00:00:00+00:00", "limit": "10000",
    }  # fmt: skip


async def test_alpaca_py_crypto_historical_client(ccxt: dict[str, Any]) -> None:
    from alpaca.data.requests import CryptoBarsRequest
    from alpaca.data.timeframe import TimeFrame

    crypto = ccxt["fetchOHLCV"][0]["httpResponse"]["bars"]
    async with AlpacaLoopbackServer(crypto_bars=crypto) as server:
        request = CryptoBarsRequest(symbol_or_symbols="BTC/USD", timeframe=TimeFrame.Minute)
        client = historical("alpaca.data.historical", "CryptoHistoricalDataClient", server)
        barset = await asyncio.to_thread(fetch_all, client, request, "get_crypto_bars")
    [bar] = barset.data["BTC/USD"]
    assert (bar.open, bar.low, bar.close, bar.volume, bar.trade_count, bar.vwap) == (
        64625.4, 64598.55, 64616.2175, 0.015155213, 1.0, 64625.4,
    )  # fmt: skip
    assert server.rest_requests[0].path == "/v1beta3/crypto/us/bars"
