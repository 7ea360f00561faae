"""Alpaca wire parsers on real frames.

Frames come from three real sources: Alpaca's own REST answers recorded by ccxt
(``ccxt/alpaca_marketdata_subset.json``: BTC/USD and LTC/USD trades, quotes and bars, whose
objects are the crypto stream's message bodies), Alpaca's documented stream examples, and
messages derived from the LEAN SPY/AAPL files (see ``lean_data.testing.lean_timeline``).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import msgpack
import orjson
import pytest

from lean_data.errors import (
    ConnectionLimitError,
    FeedAuthError,
    FeedConnectError,
    FeedError,
    FeedProtocolError,
    RateLimitError,
    SubscriptionError,
)
from lean_data.loaders import load_file
from lean_data.models import Resolution, Tick, TickType, TradeBar, datetime_to_ns
from lean_data.testing import MALFORMED_BINARY_FRAME, MALFORMED_FRAME, alpaca_message
from lean_data.wire.alpaca import (
    ParsedMessage,
    auth_message,
    decode_frame,
    error_for_code,
    error_for_http,
    ns_to_rfc3339,
    parse_bars_page,
    parse_frame,
    parse_message,
    parse_timeframe,
    rfc3339_to_ns,
    subscribe_message,
    timeframe_of,
    unsubscribe_message,
)
from tests.conftest import FIXTURES

CCXT = FIXTURES / "ccxt" / "alpaca_marketdata_subset.json"
SPY_MINUTE = FIXTURES / "lean" / "equity" / "usa" / "minute" / "spy" / "20131010_trade.zip"
MINUTE, DAILY = Resolution.MINUTE, Resolution.DAILY
RECV = 1_700_000_000_123_456_789

# Alpaca's documented stream examples (docs "Real-time Stock Data"), JSON renderings.
DOC_BAR = (
    '[{"T":"b","S":"SPY","o":388.985,"h":389.13,"l":388.975,"c":389.12,"v":49378,'
    '"t":"2021-02-22T19:15:00Z","n":358,"vw":389.0}]'
)
DOC_TRADE = (
    '[{"T":"t","S":"AAPL","i":96921,"x":"D","p":126.55,"s":1,'
    '"t":"2021-02-22T15:51:44.208Z","c":["@","I"],"z":"C"}]'
)
DOC_QUOTE = (
    '[{"T":"q","S":"AMD","bx":"U","bp":87.66,"bs":1,"ax":"Q","ap":87.68,"as":4,'
    '"t":"2021-02-22T15:51:45.335689322Z","c":["R"],"z":"C"}]'
)
DOC_ACK = (
    '[{"T":"subscription","trades":["AAPL"],"quotes":["AMD","CLDR"],"bars":["*"],'
    '"updatedBars":[],"dailyBars":["VOO"],"statuses":["*"],"lulds":[],'
    '"corrections":["AAPL"],"cancelErrors":["AAPL"]}]'
)


def ns(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """ns since the epoch of a UTC wall-clock time (the fraction is added by callers)."""
    return datetime_to_ns(datetime(year, month, day, hour, minute, second, tzinfo=UTC))


@pytest.fixture(scope="module")
def ccxt() -> dict[str, Any]:
    methods: dict[str, Any] = json.loads(CCXT.read_text())["methods"]
    return methods


def snapshot(ccxt: dict[str, Any], symbol: str = "BTC/USD") -> dict[str, Any]:
    body: dict[str, Any] = ccxt["fetchTicker"][0]["httpResponse"]["snapshots"][symbol]
    return body


def as_stream(kind: str, symbol: str, body: dict[str, Any]) -> str:
    """A real REST object as the crypto stream sends it: the same body with T and S."""
    return orjson.dumps([{"T": kind, "S": symbol, **body}]).decode()


# --- times --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-02-22T15:51:45.335689322Z", ns(2021, 2, 22, 15, 51, 45) + 335_689_322),
        ("2021-02-22T15:51:44.208Z", ns(2021, 2, 22, 15, 51, 44) + 208_000_000),
        ("2021-02-22T19:15:00Z", ns(2021, 2, 22, 19, 15)),
        # ccxt's recorded Alpaca clock answer, with a New York offset
        ("2024-07-18T04:10:33.389152169-04:00", ns(2024, 7, 18, 8, 10, 33) + 389_152_169),
        ("2013-10-10T13:30:00+00:00", ns(2013, 10, 10, 13, 30)),  # alpaca-py's isoformat()
        ("2013-10-10", ns(2013, 10, 10)),
    ],
)
def test_rfc3339_to_ns_is_exact(text: str, expected: int) -> None:
    assert rfc3339_to_ns(text) == expected


@pytest.mark.parametrize(
    "text",
    ["2021-02-22T15:51:45", "2021-02-22T15:51:45.1234567891Z", "2021-13-01", "1381392000", ""],
)
def test_rfc3339_to_ns_rejects_what_is_not_rfc3339(text: str) -> None:
    with pytest.raises(ValueError, match="expected an RFC-3339 time"):
        rfc3339_to_ns(text)


def test_ns_to_rfc3339_writes_what_alpaca_writes() -> None:
    for text in (
        "2021-02-22T19:15:00Z",
        "2021-02-22T15:51:44.208Z",
        "2024-11-02T02:00:19.31973121Z",
    ):
        assert ns_to_rfc3339(rfc3339_to_ns(text)) == text


# --- frames -------------------------------------------------------------------------------


def test_json_frames_decode_with_int_ns_times() -> None:
    assert decode_frame(DOC_TRADE) == [
        {"T": "t", "S": "AAPL", "i": 96921, "x": "D", "p": 126.55, "s": 1,
         "t": ns(2021, 2, 22, 15, 51, 44) + 208_000_000, "c": ["@", "I"], "z": "C"},
    ]  # fmt: skip


def test_msgpack_frames_decode_timestamps_to_int_ns() -> None:
    stamp = msgpack.Timestamp.from_unix_nano(ns(2021, 2, 22, 15, 51, 45) + 335_689_322)
    quote = {**decode_frame(DOC_QUOTE)[0], "t": stamp}
    raw = msgpack.packb([quote, {"T": "success", "msg": "authenticated"}])
    assert decode_frame(raw) == [
        {**quote, "t": 1_614_009_105_335_689_322},
        {"T": "success", "msg": "authenticated"},
    ]
    assert decode_frame(bytearray(raw)) == decode_frame(memoryview(raw))


def test_doc_examples_parse_to_exact_models() -> None:
    [bar] = parse_frame(DOC_BAR, RECV)
    [trade] = parse_frame(DOC_TRADE, RECV)
    [quote] = parse_frame(DOC_QUOTE, RECV)
    assert bar == ParsedMessage(
        "bar",
        TradeBar("SPY", ns(2021, 2, 22, 19, 15), 388.985, 389.13, 388.975, 389.12, 49378.0,
                 MINUTE, ts_recv=RECV, closed=True),
        type="b",
    )  # fmt: skip
    assert trade == ParsedMessage(
        "trade",
        Tick("AAPL", ns(2021, 2, 22, 15, 51, 44) + 208_000_000, 126.55, 1.0, TickType.TRADE,
             ts_recv=RECV, exchange="D", condition="@,I", trade_id="96921"),
        type="t",
    )  # fmt: skip
    assert quote == ParsedMessage(
        "quote",
        Tick("AMD", ns(2021, 2, 22, 15, 51, 45) + 335_689_322, (87.66 + 87.68) / 2, 0.0,
             TickType.QUOTE, ts_recv=RECV, bid_price=87.66, bid_size=1.0, ask_price=87.68,
             ask_size=4.0, exchange="U/Q", condition="R"),
        type="q",
    )  # fmt: skip


def test_crypto_messages_from_real_alpaca_objects(ccxt: dict[str, Any]) -> None:
    snap = snapshot(ccxt)
    trade = parse_frame(as_stream("t", "BTC/USD", snap["latestTrade"]), RECV)[0].item
    quote = parse_frame(as_stream("q", "BTC/USD", snap["latestQuote"]), RECV)[0].item
    minute = parse_frame(as_stream("b", "BTC/USD", snap["minuteBar"]), RECV)[0].item
    daily = parse_frame(as_stream("d", "BTC/USD", snap["dailyBar"]), RECV)[0]
    assert trade == Tick(
        "BTC/USD", ns(2024, 11, 2, 1, 21, 49) + 863_844_274, 69526.91, 0.001, TickType.TRADE,
        ts_recv=RECV, trade_id="7446469938634049684",  # above 2**53: kept exact
    )  # fmt: skip
    assert quote == Tick(
        "BTC/USD", ns(2024, 11, 2, 2, 0, 19) + 319_731_210, (69625.1 + 69684.9) / 2, 0.0,
        TickType.QUOTE, ts_recv=RECV, bid_price=69625.1, bid_size=0.675524,
        ask_price=69684.9, ask_size=0.682,
    )  # fmt: skip
    # A real zero-volume crypto bar that still moved (n=0, v=0, vw=0, O != C).
    assert minute == TradeBar(
        "BTC/USD", ns(2024, 11, 2, 1, 59), 69648.07, 69656.91, 69648.07, 69656.91, 0.0, MINUTE,
        ts_recv=RECV,
    )  # fmt: skip
    assert daily == ParsedMessage(
        "daily_bar",
        TradeBar("BTC/USD", ns(2024, 11, 1, 5), 69536.7, 71589.35, 68774.109, 69656.91,
                 3.815852502, DAILY, ts_recv=RECV, closed=False),
        type="d",
    )  # fmt: skip
    seller = {**snap["latestTrade"], "tks": "S"}
    assert parse_frame(as_stream("t", "BTC/USD", seller), RECV)[0].item == Tick(
        "BTC/USD", ns(2024, 11, 2, 1, 21, 49) + 863_844_274, 69526.91, 0.001, TickType.TRADE,
        ts_recv=RECV, condition="buyer_maker", trade_id="7446469938634049684",
    )  # fmt: skip


def test_updated_bar_is_marked_as_a_revision() -> None:
    # The vendor's final 16:23 New York bar, which revises the live bar (that one took a
    # 165.59 block print): what lean_timeline sends as "u".
    [vendor] = [bar for bar in load_file(SPY_MINUTE) if bar.ts_event == ns(2013, 10, 10, 20, 23)]
    assert isinstance(vendor, TradeBar)
    vendor = dataclasses.replace(vendor, revision=1)
    message = {**alpaca_message(vendor), "t": msgpack.Timestamp.from_unix_nano(vendor.ts_event)}
    [parsed] = parse_frame(msgpack.packb([message]), RECV)
    assert parsed == ParsedMessage(
        "updated_bar",
        TradeBar("SPY", ns(2013, 10, 10, 20, 23), 169.24, 169.24, 168.98, 169.0, 1535047.0,
                 MINUTE, ts_recv=RECV, closed=True, revision=1),
        type="u",
    )  # fmt: skip


def test_control_messages() -> None:
    connected = parse_frame('[{"T":"success","msg":"connected"}]', RECV)
    failed = parse_frame('[{"T":"error","code":402,"msg":"auth failed"}]', RECV)
    assert connected == [ParsedMessage("success", type="success", text="connected")]
    assert failed == [ParsedMessage("error", type="error", text="auth failed", code=402)]
    [ack] = parse_frame(DOC_ACK, RECV)
    assert ack.kind == "subscription"
    assert dict(ack.channels) == {
        "trades": ("AAPL",), "quotes": ("AMD", "CLDR"), "bars": ("*",), "updatedBars": (),
        "dailyBars": ("VOO",), "statuses": ("*",), "lulds": (), "corrections": ("AAPL",),
        "cancelErrors": ("AAPL",),
    }  # fmt: skip


def test_types_not_decoded_are_unknown_not_errors(ccxt: dict[str, Any]) -> None:
    book = ccxt["fetchOrderBook"][0]["httpResponse"]["orderbooks"]["BTC/USD"]
    frame = orjson.dumps(
        [
            {"T": "o", "S": "BTC/USD", **book},  # a real order book, as the crypto stream sends
            {"T": "s", "S": "AAPL", "sc": "H", "sm": "Trading Halt", "rc": "T12"},
            {"T": "c", "S": "AAPL", "x": "D", "oi": 1, "ci": 2},
            {"T": "x", "S": "AAPL", "i": 1, "a": "C"},
            {"T": "l", "S": "AAPL", "u": 1.0, "d": 0.9},
            {"T": "n", "headline": "..."},
            {"T": "somethingNew"},
            {},
        ]
    )
    kinds = [(m.kind, m.type) for m in parse_frame(frame.decode(), RECV)]
    assert kinds == [
        ("unknown", "o"), ("unknown", "s"), ("unknown", "c"), ("unknown", "x"),
        ("unknown", "l"), ("unknown", "n"), ("unknown", "somethingNew"), ("unknown", ""),
    ]  # fmt: skip


def real(kind: str) -> dict[str, Any]:
    """A real message to break: a documented stock example or a recorded crypto object."""
    frames = {"b": DOC_BAR, "t": DOC_TRADE, "q": DOC_QUOTE, "ack": DOC_ACK}
    if kind in frames:
        message: dict[str, Any] = orjson.loads(frames[kind])[0]
        return message
    snap = snapshot(json.loads(CCXT.read_text())["methods"])
    body = snap["dailyBar"] if kind == "d" else snap["latestTrade"]
    return {"T": "d" if kind == "d" else "t", "S": "BTC/USD", **body}


@pytest.mark.parametrize(
    ("base", "change", "error"),
    [
        ("b", {"o": None}, r"^bar: expected field 'o', found fields \['S', 'T', 'c', 'h'"),
        ("b", {"o": "388.985"}, r"^bar\.o: expected a number, found str '388.985'"),
        ("b", {"v": True}, r"^bar\.v: expected a number, found bool True"),
        ("b", {"T": "u", "n": "358"}, r"^updatedBar\.n: expected a number, found str"),
        ("d", {"S": 5}, r"^dailyBar\.S: expected a string, found int 5"),
        ("t", {"t": 1.5}, r"^trade\.t: expected a time \(int ns, RFC-3339"),
        ("t", {"t": "22 Feb 2021"}, r"^trade\.t: expected an RFC-3339 time"),
        ("t", {"i": 96921.0}, r"^trade\.i: expected an integer, found float"),
        ("t", {"c": "@"}, r"^trade\.c: expected a list of strings, found str"),
        ("crypto_t", {"tks": "X"}, r"^trade\.tks: expected 'B' or 'S', found str 'X'"),
        ("q", {"as": None}, r"^quote: expected field 'as'"),
        ("q", {"bx": 1}, r"^quote\.bx: expected a string, found int 1"),
        ("ack", {"trades": "AAPL"}, r"^subscription\.trades: expected a list of symbols"),
        ("b", {"T": 1}, r"^message\.T: expected a type string, found int 1"),
    ],
)
def test_bad_fields_raise_protocol_errors(base: str, change: dict[str, Any], error: str) -> None:
    message = {**real(base), **change}
    for key in [key for key, value in change.items() if value is None]:
        del message[key]
    with pytest.raises(FeedProtocolError, match=error):
        parse_message(message, RECV)


def test_bad_control_fields_raise_protocol_errors() -> None:
    with pytest.raises(FeedProtocolError, match=r"^error\.code: expected an integer, found str"):
        parse_frame('[{"T":"error","code":"402","msg":"auth failed"}]', RECV)
    with pytest.raises(FeedProtocolError, match=r"^success: expected field 'msg'"):
        parse_frame('[{"T":"success","message":"connected"}]', RECV)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (MALFORMED_BINARY_FRAME, r"^expected a msgpack array, found b'\\x91\\xc1' \(FormatError"),
        (msgpack.packb([{"T": "success", "msg": "connected"}])[:9], r"^expected a msgpack array"),
        (b"[1]", r"^expected a msgpack array, found b'\[1\]' \(ExtraData"),
        (MALFORMED_FRAME, r"^expected a JSON array, found '\{not json'"),
        ('{"T":"success","msg":"connected"}', r"^frame: expected an array of messages, found dict"),
        (msgpack.packb({"T": "success"}), r"^frame: expected an array of messages, found dict"),
        ("[1]", r"^frame\[0\]: expected an object, found int 1"),
        ('[{"T":"b","t":"yesterday"}]', r"^frame\[0\]\.t: expected an RFC-3339 time"),
    ],
)
def test_undecodable_frames_raise_protocol_errors(raw: bytes | str, error: str) -> None:
    with pytest.raises(FeedProtocolError, match=error):
        decode_frame(raw)


# --- client messages ----------------------------------------------------------------------


def test_auth_message_msgpack_and_json() -> None:
    packed = auth_message("PKTEST", "s3cr3t")
    assert isinstance(packed, bytes)
    assert msgpack.unpackb(packed) == {"action": "auth", "key": "PKTEST", "secret": "s3cr3t"}
    assert auth_message("PKTEST", "s3cr3t", "json") == (
        '{"action":"auth","key":"PKTEST","secret":"s3cr3t"}'
    )
    with pytest.raises(ValueError, match="non-empty API key and secret") as empty:
        auth_message("PKTEST", "")
    assert "PKTEST" not in str(empty.value)


def test_subscribe_and_unsubscribe_messages() -> None:
    channels = {"bars": ["SPY", "AAPL", "SPY"], "updatedBars": ["SPY"], "quotes": []}
    assert msgpack.unpackb(subscribe_message(channels)) == {
        "action": "subscribe", "bars": ["SPY", "AAPL"], "updatedBars": ["SPY"],
    }  # fmt: skip
    assert subscribe_message({"trades": ("BTC/USD",)}, "json") == (
        '{"action":"subscribe","trades":["BTC/USD"]}'
    )
    assert msgpack.unpackb(unsubscribe_message({"bars": ["*"]})) == {
        "action": "unsubscribe",
        "bars": ["*"],
    }
    with pytest.raises(ValueError, match="got 'klines'"):
        subscribe_message({"klines": ["SPY"]})
    with pytest.raises(ValueError, match="unsubscribe needs at least one channel"):
        unsubscribe_message({"bars": []})


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "msg", "kind", "retryable"),
    [
        (400, "invalid syntax", FeedProtocolError, True),
        (401, "not authenticated", FeedAuthError, False),
        (402, "auth failed", FeedAuthError, False),
        (403, "already authenticated", FeedAuthError, False),
        (404, "auth timeout", FeedAuthError, False),
        (405, "symbol limit exceeded", SubscriptionError, False),
        (406, "connection limit exceeded", ConnectionLimitError, True),
        (407, "slow client", FeedConnectError, True),
        (408, "v2 not enabled", SubscriptionError, False),
        (409, "insufficient subscription", SubscriptionError, False),
        (429, "rate limit exceeded", RateLimitError, True),
        (500, "internal error", FeedConnectError, True),
        (None, "", FeedConnectError, True),
    ],
)
def test_error_for_code(code: int | None, msg: str, kind: type[FeedError], retryable: bool) -> None:
    error = error_for_code(code, msg)
    assert type(error) is kind
    assert error.retryable is retryable
    assert str(error) == f"Alpaca error {code}: {msg}"


def test_error_for_http() -> None:
    forbidden = error_for_http(403, b'{"message":"forbidden."}')
    limited = error_for_http(429, '{"message":"too many requests."}', retry_after=3.0)
    bad = error_for_http(422, {"code": 42210000, "message": "invalid timeframe"})
    down = error_for_http(502, b"<html>Bad Gateway</html>")
    assert (type(forbidden), str(forbidden)) == (FeedAuthError, "Alpaca HTTP 403: forbidden.")
    assert isinstance(limited, RateLimitError)
    assert limited.retry_after == 3.0
    assert str(limited) == "Alpaca HTTP 429: too many requests."
    assert str(bad) == "Alpaca HTTP 422: invalid timeframe (code 42210000)"
    assert (type(bad), bad.retryable) == (FeedProtocolError, False)
    assert (type(down), down.retryable, str(down)) == (
        FeedConnectError,
        True,
        "Alpaca HTTP 502: <html>Bad Gateway</html>",
    )


# --- REST bars ----------------------------------------------------------------------------


def test_real_crypto_bars_page(ccxt: dict[str, Any]) -> None:
    body = orjson.dumps(ccxt["fetchOHLCV"][0]["httpResponse"])
    bars, token = parse_bars_page(body)
    assert token is None
    # Alpaca's own quirk: n=1 yet O != L != C (kept: the parser does not judge).
    assert bars == {
        "BTC/USD": [
            TradeBar("BTC/USD", ns(2024, 7, 18, 5, 2), 64625.4, 64625.4, 64598.55, 64616.2175,
                     0.015155213, MINUTE),
        ]
    }  # fmt: skip


def test_stock_bars_page_with_token_closed_flag_and_backfill() -> None:
    # alpaca-py's fixture (tests/data/test_historical_stock_data.py): real AAPL daily bars.
    body: dict[str, Any] = {
        "bars": {"AAPL": [
            {"t": "2022-02-01T05:00:00Z", "o": 174, "h": 174.84, "l": 172.31, "c": 174.61,
             "v": 85998033, "n": 732412, "vw": 173.703516},
            {"t": "2022-02-02T05:00:00Z", "o": 174.64, "h": 175.88, "l": 173.33, "c": 175.84,
             "v": 84817432, "n": 675034, "vw": 174.941288},
        ]},
        "next_page_token": "QUFQTHxEfDIwMjItMDItMDJUMDU6MDA6MDAuMDAwMDAwMDAwWg==",
    }  # fmt: skip
    now = ns(2022, 2, 3, 4, 59)  # a minute before the second bar ends
    bars, token = parse_bars_page(body, DAILY, now_ns=now, backfilled=True)
    assert token == "QUFQTHxEfDIwMjItMDItMDJUMDU6MDA6MDAuMDAwMDAwMDAwWg=="
    assert bars == {
        "AAPL": [
            TradeBar("AAPL", ns(2022, 2, 1, 5), 174.0, 174.84, 172.31, 174.61, 85998033.0, DAILY,
                     ts_recv=now, closed=True, backfilled=True),
            TradeBar("AAPL", ns(2022, 2, 2, 5), 174.64, 175.88, 173.33, 175.84, 84817432.0, DAILY,
                     ts_recv=now, closed=False, backfilled=True),
        ]
    }  # fmt: skip
    single = {"bars": body["bars"]["AAPL"][:1], "symbol": "AAPL", "next_page_token": None}
    assert parse_bars_page(orjson.dumps(single).decode(), DAILY)[0]["AAPL"][0].close == 174.61
    assert parse_bars_page('{"bars":null,"next_page_token":null}') == ({}, None)
    assert parse_bars_page('{"bars":{},"next_page_token":null}') == ({}, None)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"<html>", r"^expected JSON, found '<html>'"),
        ('{"message":"forbidden."}', r'^bars page: expected an object with "bars"'),
        ('{"bars":{"SPY":{}}}', r"^bars\.SPY: expected a list of bars"),
        ('{"bars":{"SPY":[{"t":"2013-10-10T08:00:00Z","o":166.43}]}}',
         r"^bars\.SPY\[0\]: expected field 'h'"),
        ('{"bars":{},"next_page_token":7}', r"^bars page\.next_page_token: expected a string"),
    ],
)  # fmt: skip
def test_bad_bars_pages_raise(body: bytes | str, error: str) -> None:
    with pytest.raises(FeedProtocolError, match=error):
        parse_bars_page(body)


@pytest.mark.parametrize(
    ("resolution", "timeframe"),
    [("1m", "1Min"), ("5m", "5Min"), ("59m", "59Min"), ("1h", "1Hour"), ("4h", "4Hour"),
     ("1d", "1Day"), ("7d", "1Week")],
)  # fmt: skip
def test_timeframes_round_trip(resolution: str, timeframe: str) -> None:
    assert timeframe_of(resolution) == timeframe
    assert parse_timeframe(timeframe) is Resolution.parse(resolution)


def test_timeframe_aliases_and_limits() -> None:
    assert parse_timeframe("15T") is Resolution.parse("15m")
    assert parse_timeframe("1H") is Resolution.HOUR
    assert parse_timeframe("1D") is Resolution.DAILY
    for text in ("60Min", "24Hour", "2Day", "1Month", "1min", "Min"):
        with pytest.raises(ValueError, match=repr(text)):
            parse_timeframe(text)
    for resolution in ("tick", "1s", "90m", "2d"):
        with pytest.raises(ValueError, match="expected a resolution Alpaca serves"):
            timeframe_of(resolution)


# --- derived LEAN frames round trip -------------------------------------------------------


@pytest.mark.parametrize("binary", [True, False])
def test_lean_bars_round_trip_through_both_encodings(binary: bool) -> None:
    bars = [bar for bar in load_file(SPY_MINUTE) if isinstance(bar, TradeBar)]
    messages = [alpaca_message(bar) for bar in bars]
    if binary:
        stamped = [{**m, "t": msgpack.Timestamp.from_unix_nano(m["t"])} for m in messages]
        raw: bytes | str = msgpack.packb(stamped)
    else:
        raw = orjson.dumps([{**m, "t": ns_to_rfc3339(m["t"])} for m in messages]).decode()
    parsed = parse_frame(raw, RECV)
    assert len(parsed) == 883
    received = [dataclasses.replace(bar, ts_recv=RECV) for bar in bars]
    assert [message.item for message in parsed] == received
