"""The loopback Binance server against real captures (cryptofeed) and real bars."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosedError

from lean_data.loaders import load_file
from lean_data.loaders.capture import read_capture
from lean_data.models import TradeBar
from lean_data.testing import (
    MALFORMED_FRAME,
    BinanceLoopbackServer,
    FramePlanner,
    RestRequest,
    ServerFaults,
    kline_row,
    stream_of,
)
from tests.conftest import FIXTURES, eventually

SPOT = FIXTURES / "cryptofeed" / "BINANCE.ws.1.0"
CAPTURES = ["BINANCE.ws.1.0", "BINANCE_US.ws.1.0", "BINANCE_FUTURES.ws.1.0"]
BTC_PERP = FIXTURES / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"
ADABTC = FIXTURES / "nautilus_trader" / "ADABTC-1m-2021-11-27.csv"
T0 = 1640991660000  # open time (ms) of the first BTC-PERP bar, 2021-12-31 23:01 UTC
NKN_DEPTH = "nknusdt@depth@100ms"


def connect(url: str) -> ws_connect:
    """Open a client that reads ahead without bound (a full read queue delays close)."""
    return ws_connect(url, max_queue=None)


def capture_frames(path: Path, *streams: str) -> list[str]:
    """The capture's received texts whose combined-stream name is one of ``streams``."""
    received = read_capture(path).received
    return [text for _, text in received if orjson.loads(text)["stream"] in streams]


def raw_payloads(frames: list[str]) -> list[Any]:
    return [orjson.loads(frame)["data"] for frame in frames]


async def recv_n(ws: ClientConnection, count: int) -> list[str]:
    async with asyncio.timeout(5):
        return [str(await ws.recv()) for _ in range(count)]


async def request(ws: ClientConnection, message: dict[str, Any]) -> Any:
    await ws.send(orjson.dumps(message).decode())
    async with asyncio.timeout(5):
        return orjson.loads(await ws.recv())


@pytest.fixture
async def spot() -> AsyncIterator[BinanceLoopbackServer]:
    async with BinanceLoopbackServer(SPOT) as server:
        yield server


# --- stream names ------------------------------------------------------------------------


@pytest.mark.parametrize("name", CAPTURES)
def test_stream_of_derives_every_real_stream_name(name: str) -> None:
    for _, text in read_capture(FIXTURES / "cryptofeed" / name).received:
        message = orjson.loads(text)
        assert stream_of(message["data"]) == message["stream"].removesuffix("@100ms")


def test_stream_of_names_kline_interval_and_spot_book_ticker() -> None:
    [kline, book] = raw_payloads(
        capture_frames(SPOT, "lrcbtc@kline_1m") + capture_frames(SPOT, "nknusdt@bookTicker")[:1]
    )
    assert stream_of(kline) == "lrcbtc@kline_1m"
    assert stream_of(book) == "nknusdt@bookTicker"
    with pytest.raises(ValueError, match="known Binance event type, found e='outboundAccount'"):
        stream_of({"e": "outboundAccount", "s": "BTCUSDT"})


def test_server_timeline_is_the_capture(spot: BinanceLoopbackServer) -> None:
    received = read_capture(SPOT).received
    assert spot.frames == [(orjson.loads(text)["stream"], text) for _, text in received]
    assert len(spot.frames) == 265


# --- websocket replay --------------------------------------------------------------------


async def test_combined_url_replays_exactly_the_capture_frames(
    spot: BinanceLoopbackServer,
) -> None:
    streams = ("nknusdt@kline_1m", "nknusdt@aggTrade", "lrcbtc@kline_1m", "lrcbtc@aggTrade")
    expected = capture_frames(SPOT, *streams)
    async with connect(spot.stream_url(*streams)) as ws:
        assert await recv_n(ws, 4) == expected
        # The timeline is exhausted, so the reply is the very next frame.
        reply = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 9})
    assert reply == {"result": list(streams), "id": 9}
    assert [orjson.loads(frame)["data"]["E"] for frame in expected] == [
        1633998523963,
        1633998523963,
        1633998534486,
        1633998534486,
    ]
    assert spot.connections == 1
    assert spot.received == [{"method": "LIST_SUBSCRIPTIONS", "id": 9}]
    assert spot.ws_url.startswith("ws://127.0.0.1:")
    assert spot.rest_url.startswith("http://127.0.0.1:")


async def test_subscribe_on_raw_stream_acks_then_sends_raw_payloads(
    spot: BinanceLoopbackServer,
) -> None:
    expected = capture_frames(SPOT, "nknusdt@bookTicker")
    async with connect(f"{spot.ws_url}/ws") as ws:
        subscribe = {"method": "SUBSCRIBE", "params": ["nknusdt@bookTicker"], "id": 1}
        assert await request(ws, subscribe) == {"result": None, "id": 1}
        frames = await recv_n(ws, 74)
        unsubscribe = {"method": "UNSUBSCRIBE", "params": ["nknusdt@bookTicker"], "id": 2}
        assert await request(ws, unsubscribe) == {"result": None, "id": 2}
        assert await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 3}) == {
            "result": [],
            "id": 3,
        }
    assert [orjson.loads(frame) for frame in frames] == raw_payloads(expected)
    assert frames[0] == (
        '{"u":499869768,"s":"NKNUSDT","b":"0.35210000","B":"672.00000000",'
        '"a":"0.35260000","A":"3199.00000000"}'
    )
    assert spot.received == [subscribe, unsubscribe, {"method": "LIST_SUBSCRIPTIONS", "id": 3}]


async def test_raw_path_stream_and_combined_property(spot: BinanceLoopbackServer) -> None:
    expected = capture_frames(SPOT, "lrcbtc@bookTicker")
    async with connect(f"{spot.ws_url}/ws/lrcbtc@bookTicker") as ws:
        raw = await recv_n(ws, 9)
    async with connect(f"{spot.ws_url}/ws") as ws:
        get = {"method": "GET_PROPERTY", "params": ["combined"], "id": 4}
        assert await request(ws, get) == {"result": False, "id": 4}
        combine = {"method": "SET_PROPERTY", "params": ["combined", True], "id": 5}
        assert await request(ws, combine) == {"result": None, "id": 5}
        subscribe = {"method": "SUBSCRIBE", "params": ["lrcbtc@bookTicker"], "id": 6}
        assert await request(ws, subscribe) == {"result": None, "id": 6}
        wrapped = await recv_n(ws, 9)
    assert [orjson.loads(frame) for frame in raw] == raw_payloads(expected)
    assert wrapped == expected
    assert spot.connections == 2


async def test_bad_requests_get_binance_error_replies(spot: BinanceLoopbackServer) -> None:
    async with connect(f"{spot.ws_url}/ws") as ws:
        await ws.send("{oops")
        async with asyncio.timeout(5):
            bad_json = orjson.loads(await ws.recv())
        unknown = await request(ws, {"method": "SUBSCRIBE_ALL", "id": 6})
        bad_params = await request(ws, {"method": "SUBSCRIBE", "params": "x", "id": 7})
    assert bad_json["id"] is None
    assert bad_json["error"]["code"] == 3
    assert bad_json["error"]["msg"].startswith("Invalid JSON: ")
    assert unknown == {
        "error": {
            "code": 2,
            "msg": "Invalid request: unknown variant 'SUBSCRIBE_ALL', expected one of "
            "SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY",
        },
        "id": 6,
    }
    assert bad_params == {
        "error": {"code": 2, "msg": "Invalid request: params must be a list of stream names"},
        "id": 7,
    }
    assert spot.received[0] == "{oops"


async def test_pushed_frames_follow_the_timeline() -> None:
    [kline] = raw_payloads(capture_frames(SPOT, "lrcbtc@kline_1m"))
    closed = {**kline, "k": {**kline["k"], "x": True}}
    async with BinanceLoopbackServer() as server:
        server.push("lrcbtc@kline_1m", kline)
        server.push("other@kline_1m", '{"e":"kline"}')
        async with connect(f"{server.ws_url}/ws/lrcbtc@kline_1m") as ws:
            [first] = await recv_n(ws, 1)
            server.push("lrcbtc@kline_1m", closed)
            [second] = await recv_n(ws, 1)
        await server.close()  # idempotent: the context exit closes again
    assert orjson.loads(first) == kline
    assert orjson.loads(second) == closed
    assert orjson.loads(second)["k"]["x"] is True


async def test_paced_replay_sends_the_same_frames() -> None:
    expected = capture_frames(SPOT, "lrcbtc@kline_1m", "lrcbtc@aggTrade")
    async with (
        BinanceLoopbackServer(SPOT, pace=1000.0) as server,
        connect(server.stream_url("lrcbtc@kline_1m", "lrcbtc@aggTrade")) as ws,
    ):
        assert await recv_n(ws, 2) == expected


# --- websocket faults --------------------------------------------------------------------


@pytest.mark.parametrize(("code", "expected_code"), [(None, 1006), (1011, 1011)])
async def test_drop_after_closes_after_exactly_n_frames(
    spot: BinanceLoopbackServer, code: int | None, expected_code: int
) -> None:
    spot.faults.drop_after, spot.faults.drop_close_code = 3, code
    async with connect(spot.stream_url(NKN_DEPTH)) as ws:
        received = await recv_n(ws, 3)
        with pytest.raises(ConnectionClosedError) as closed:
            await recv_n(ws, 1)
    assert received == capture_frames(SPOT, NKN_DEPTH)[:3]
    rcvd = closed.value.rcvd
    assert (rcvd is None) if code is None else (rcvd is not None and rcvd.code == expected_code)
    assert ws.close_code == expected_code


async def test_resume_continues_where_the_dropped_connection_stopped() -> None:
    expected = capture_frames(SPOT, NKN_DEPTH)
    async with BinanceLoopbackServer(SPOT, resume=True) as server:
        server.faults.drop_after = 2
        async with connect(server.stream_url(NKN_DEPTH)) as ws:
            first = await recv_n(ws, 2)
            with pytest.raises(ConnectionClosedError):
                await recv_n(ws, 1)
        server.faults.drop_after = None
        async with connect(server.stream_url(NKN_DEPTH)) as ws:
            second = await recv_n(ws, 3)
    assert first + second == expected[:5]
    assert server.connections == 2


async def test_silence_sends_nothing_but_answers_pings(spot: BinanceLoopbackServer) -> None:
    spot.faults.silent_after = 2
    async with connect(spot.stream_url(NKN_DEPTH)) as ws:
        assert await recv_n(ws, 2) == capture_frames(SPOT, NKN_DEPTH)[:2]
        await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":1}')
        for _ in range(3):
            pong = await ws.ping()
            async with asyncio.timeout(5):
                await pong
        with pytest.raises(TimeoutError):  # the silence window: nothing at all arrives
            async with asyncio.timeout(0.3):
                await ws.recv()
        assert spot.open_connections == 1
    assert spot.received == [{"method": "LIST_SUBSCRIPTIONS", "id": 1}]


async def test_injected_frames_sit_at_their_positions(spot: BinanceLoopbackServer) -> None:
    good = capture_frames(SPOT, NKN_DEPTH)
    spot.faults = ServerFaults(
        malformed_at={1}, truncated_at={3}, unknown_at={4}, duplicate_at={5}, reorder_at={6}
    )
    unknown = '{"stream":"nknusdt@depth@100ms","data":{"e":"unknownEvent","E":0,"s":"NKNUSDT"}}'
    expected = [
        good[0],
        MALFORMED_FRAME,
        good[1],
        good[2],
        good[3][: len(good[3]) // 2],
        good[3],
        unknown,
        good[4],
        good[5],
        good[5],
        good[7],
        good[6],
        *good[8:],
    ]
    async with connect(spot.stream_url(NKN_DEPTH)) as ws:
        assert await recv_n(ws, len(expected)) == expected
    assert len(expected) == 154


async def test_second_connection_is_refused_with_policy_violation(
    spot: BinanceLoopbackServer,
) -> None:
    spot.faults.refuse_concurrent = True
    async with connect(spot.stream_url(NKN_DEPTH)) as first:
        await eventually(lambda: spot.open_connections == 1)
        async with connect(spot.stream_url(NKN_DEPTH)) as second:
            with pytest.raises(ConnectionClosedError):
                await recv_n(second, 1)
        assert second.close_code == 1008
        assert second.close_reason == "loopback fault: one connection at a time"
        assert await recv_n(first, 2) == capture_frames(SPOT, NKN_DEPTH)[:2]
    assert spot.connections == 2


# --- fault planner (pure) ----------------------------------------------------------------


def test_planner_flushes_a_held_frame_when_nothing_follows() -> None:
    planner = FramePlanner(ServerFaults(reorder_at={1}))
    assert planner.feed("a", lambda: "?") == ["a"]
    assert planner.feed("b", lambda: "?") == []
    assert planner.flush() == ["b"]
    assert planner.flush() == []
    assert planner.feed("c", lambda: "?") == ["c"]
    assert (planner.position, planner.written, planner.stop) == (3, 3, "")


def test_planner_counts_injected_frames_towards_the_limits() -> None:
    planner = FramePlanner(ServerFaults(malformed_at={0}, duplicate_at={1}, drop_after=3))
    assert planner.feed("a", lambda: "?") == [MALFORMED_FRAME, "a"]
    assert planner.feed("b", lambda: "?") == ["b"]
    assert planner.stop == "drop"
    assert planner.feed("c", lambda: "?") == []
    assert FramePlanner(ServerFaults(silent_after=0)).check() == "silence"


# --- REST klines -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def btc_bars() -> list[TradeBar]:
    bars = load_file(BTC_PERP)
    assert all(isinstance(bar, TradeBar) for bar in bars)
    return [bar for bar in bars if isinstance(bar, TradeBar)]


@pytest.fixture
async def rest(btc_bars: list[TradeBar]) -> AsyncIterator[BinanceLoopbackServer]:
    async with BinanceLoopbackServer(klines={"BTCUSDT": btc_bars}) as server:
        yield server


async def get(
    server: BinanceLoopbackServer, path: str = "/api/v3/klines", **params: Any
) -> tuple[int, Any, dict[str, str]]:
    query = {key: str(value) for key, value in params.items()}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.rest_url}{path}", params=query) as response,
    ):
        body = await response.read()
        decoded = orjson.loads(body) if response.content_type == "application/json" else body
        return response.status, decoded, dict(response.headers)


def test_kline_row_formats_a_real_bar_like_binance(btc_bars: list[TradeBar]) -> None:
    assert kline_row(btc_bars[0]) == [
        T0,
        "46319.00000000",
        "46385.00000000",
        "46319.00000000",
        "46377.00000000",
        "2300413.72950000",
        T0 + 59_999,
        "0",
        0,
        "0",
        "0",
        "0",
    ]


async def test_klines_paginate_with_start_end_and_limit(
    rest: BinanceLoopbackServer, btc_bars: list[TradeBar]
) -> None:
    end = T0 + 2499 * 60_000  # 2022-01-02 16:40, the 2500th bar (the file has no gaps)
    pages: list[list[Any]] = []
    start, weights = T0, []
    while True:
        status, page, headers = await get(
            rest, symbol="BTCUSDT", interval="1m", startTime=start, endTime=end, limit=1000
        )
        assert status == 200
        pages.append(page)
        weights.append(headers["X-MBX-USED-WEIGHT-1M"])
        if len(page) < 1000:
            break
        start = page[-1][0] + 60_000
    assert [len(page) for page in pages] == [1000, 1000, 500]
    assert [page[0][0] for page in pages] == [T0, T0 + 60_000_000, T0 + 120_000_000]
    assert [row for page in pages for row in page] == [kline_row(bar) for bar in btc_bars[:2500]]
    assert pages[2][-1][:6] == [
        end,
        "47605.00000000",
        "47622.00000000",
        "47598.00000000",
        "47601.00000000",
        "1023544.76940000",
    ]
    assert weights == ["2", "4", "6"]
    assert [request.params["startTime"] for request in rest.rest_requests] == [
        str(T0),
        str(T0 + 60_000_000),
        str(T0 + 120_000_000),
    ]


async def test_klines_without_start_return_the_last_limit(
    rest: BinanceLoopbackServer, btc_bars: list[TradeBar]
) -> None:
    _, latest, _ = await get(rest, symbol="BTCUSDT", interval="1m")
    _, before, _ = await get(rest, symbol="BTCUSDT", interval="1m", endTime=T0 + 600_000, limit=3)
    _, other_interval, _ = await get(rest, symbol="BTCUSDT", interval="5m")
    assert latest == [kline_row(bar) for bar in btc_bars[-500:]]
    assert latest[-1][0] == 1643693460000
    assert before == [kline_row(bar) for bar in btc_bars[8:11]]
    assert other_interval == []


@pytest.mark.parametrize(
    ("params", "code", "msg"),
    [
        ({"limit": 1001}, -1130, "Data sent for parameter 'limit' is not valid."),
        ({"limit": 0}, -1130, "Data sent for parameter 'limit' is not valid."),
        ({"symbol": "ETHUSDT"}, -1121, "Invalid symbol."),
        ({"interval": "7m"}, -1120, "Invalid interval."),
        ({"startTime": T0 + 1, "endTime": T0}, -1023, "Start time is greater than end time."),
        (
            {"symbol": ""},
            -1102,
            "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
        ),
        (
            {"limit": "ten"},
            -1100,
            "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.",
        ),
    ],
)
async def test_klines_bad_parameters_get_binance_400s(
    rest: BinanceLoopbackServer, params: dict[str, Any], code: int, msg: str
) -> None:
    status, body, headers = await get(rest, **({"symbol": "BTCUSDT", "interval": "1m"} | params))
    assert (status, body) == (400, {"code": code, "msg": msg})
    assert headers["X-MBX-USED-WEIGHT-1M"] == "2"


async def test_raw_binance_rows_are_served_verbatim() -> None:
    with ADABTC.open(newline="") as handle:
        rows = list(csv.reader(handle))
    bars = [bar for bar in load_file(ADABTC) if isinstance(bar, TradeBar)]
    async with BinanceLoopbackServer(klines={"ADABTC": rows}) as server:
        status, body, _ = await get(server, symbol="ADABTC", interval="1m", limit=2)
    assert status == 200
    assert body[-1] == [
        1637971740000,
        "0.00002863",
        "0.00002865",
        "0.00002863",
        "0.00002865",
        "8160.50000000",
        1637971799999,
        "0.23366480",
        38,
        "4978.00000000",
        "0.14254743",
        "0",
    ]
    assert body == [kline_row(row) for row in rows[-2:]]
    assert [kline_row(bar)[:7] for bar in bars] == [kline_row(row)[:7] for row in rows]


async def test_rate_limit_then_success_counts_requests(rest: BinanceLoopbackServer) -> None:
    rest.faults.rate_limit_next, rest.faults.retry_after = 2, 7
    answers = [await get(rest, symbol="BTCUSDT", interval="1m", limit=1) for _ in range(3)]
    too_many = {
        "code": -1003,
        "msg": "Too much request weight used; current limit is 6000 request weight per "
        "1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
    }
    assert [(status, body) for status, body, _ in answers[:2]] == [(429, too_many)] * 2
    assert [headers["Retry-After"] for _, _, headers in answers[:2]] == ["7", "7"]
    last = [1643693460000, "38525.00000000", "38546.00000000", "38525.00000000"]
    last += ["38544.00000000", "685906.97350000", 1643693519999, "0", 0, "0", "0", "0"]
    assert answers[2][:2] == (200, [last])
    assert "Retry-After" not in answers[2][2]
    assert [headers["X-MBX-USED-WEIGHT-1M"] for _, _, headers in answers] == ["0", "0", "2"]
    params = {"symbol": "BTCUSDT", "interval": "1m", "limit": "1"}
    assert rest.rest_requests == [
        RestRequest("GET", "/api/v3/klines", params, 429),
        RestRequest("GET", "/api/v3/klines", params, 429),
        RestRequest("GET", "/api/v3/klines", params, 200),
    ]
    assert rest.faults.rate_limit_next == 0


async def test_ban_answers_418_then_serves() -> None:
    now = 1_700_000_000.25
    async with BinanceLoopbackServer(klines={}, clock=lambda: now) as server:
        server.faults.ban_next, server.faults.retry_after = 1, 120
        banned = await get(server, "/api/v3/time")
        served = await get(server, "/api/v3/time")
    assert banned[:2] == (
        418,
        {
            "code": -1003,
            "msg": "Way too much request weight used; IP banned until 1700000120250. "
            "Please use WebSocket Streams for live updates to avoid bans.",
        },
    )
    assert banned[2]["Retry-After"] == "120"
    assert served[:2] == (200, {"serverTime": 1700000000250})
    assert [(r.path, r.status) for r in server.rest_requests] == [
        ("/api/v3/time", 418),
        ("/api/v3/time", 200),
    ]


async def test_weight_limit_answers_429_until_the_next_minute(
    btc_bars: list[TradeBar],
) -> None:
    clock = [1_700_000_010.0]  # 30 s before a minute boundary
    async with BinanceLoopbackServer(
        klines={"BTCUSDT": btc_bars[:5]}, weight_limit=5, clock=lambda: clock[0]
    ) as server:
        answers = [await get(server, symbol="BTCUSDT", interval="1m") for _ in range(3)]
        ping = await get(server, "/api/v3/ping")
        clock[0] += 30.0
        after = await get(server, symbol="BTCUSDT", interval="1m", limit=1)
        missing = await get(server, "/api/v3/depth")
    assert [status for status, _, _ in answers] == [200, 200, 429]
    assert answers[2][2]["Retry-After"] == "30"
    assert [headers["X-MBX-USED-WEIGHT-1M"] for _, _, headers in answers] == ["2", "4", "4"]
    assert ping[:2] == (200, {})
    assert ping[2]["X-MBX-USED-WEIGHT-1M"] == "5"
    assert after[:2] == (200, [kline_row(btc_bars[4])])
    assert after[2]["X-MBX-USED-WEIGHT-1M"] == "2"
    assert missing[0] == 404
    assert server.rest_requests[-1] == RestRequest("GET", "/api/v3/depth", {}, 404)
