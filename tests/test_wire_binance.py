"""Binance wire parsers and the cryptofeed capture reader, on real recorded frames."""

from __future__ import annotations

import csv
import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from lean_data.errors import (
    DataFormatError,
    FeedProtocolError,
    RateLimitError,
    SubscriptionError,
)
from lean_data.loaders.capture import Capture, SentFrame, parse_capture, read_capture, seconds_to_ns
from lean_data.models import Resolution, Tick, TickType, TradeBar
from lean_data.wire.binance import (
    ParsedMessage,
    binance_symbol,
    kline_channel,
    parse_message,
    parse_rest_klines,
    stream_name,
    subscribe_frame,
    unsubscribe_frame,
)

CAPTURES = ("BINANCE.ws.1.0", "BINANCE_US.ws.1.0", "BINANCE_FUTURES.ws.1.0")
MINUTE = Resolution.MINUTE
# Every venue symbol in the three captures' stream lists, with its canonical form.
SYMBOLS = {
    "NKNUSDT": "NKN/USDT", "BLZETH": "BLZ/ETH", "LRCBTC": "LRC/BTC", "RUNEEUR": "RUNE/EUR",
    "CRVUSDT": "CRV/USDT", "COMPUSDT": "COMP/USDT", "OMGBUSD": "OMG/BUSD", "ZRXUSDT": "ZRX/USDT",
    "SUSHIUSDT": "SUSHI/USDT", "AKROUSDT": "AKRO/USDT", "KEEPUSDT": "KEEP/USDT",
    "CTKUSDT": "CTK/USDT",
}  # fmt: skip


def load(fixtures: Path, name: str) -> Capture:
    return read_capture(fixtures / "cryptofeed" / name)


def parsed(fixtures: Path, name: str) -> list[ParsedMessage]:
    return [parse_message(raw, ts) for ts, raw in load(fixtures, name).received]


def frame_of(fixtures: Path, name: str, needle: str) -> tuple[int, str]:
    return next((ts, raw) for ts, raw in load(fixtures, name).received if needle in raw)


# --- capture reader -------------------------------------------------------------------


def test_capture_splits_connection_received_and_sent(fixtures: Path) -> None:
    spot = load(fixtures, "BINANCE.ws.1.0")
    assert spot.url.startswith("wss://stream.binance.com:9443/stream?streams=nknusdt@depth@100ms/")
    assert spot.connect_ts_ns == 1_633_998_511_159_679_000
    assert len(spot.received) == 265
    assert spot.sent == []
    assert spot.received[0] == (
        1_633_998_512_063_356_900,
        '{"stream":"nknusdt@depth@100ms","data":{"e":"depthUpdate","E":1633998512068,'
        '"s":"NKNUSDT","U":499869750,"u":499869752,"b":[["0.35130000","6195.00000000"],'
        '["0.34750000","5548.00000000"],["0.34640000","6222.00000000"]],"a":[]}}',
    )
    kraken = load(fixtures, "KRAKEN.ws.48.0")
    assert kraken.sent == [
        SentFrame(
            "wss://ws.kraken.com",
            1_618_678_132_830_970_000,
            '{"event":"subscribe","pair":["WAVES/EUR","XMR/USD","KSM/XBT","GRT/ETH","SC/EUR",'
            '"ETH/CHF","OCEAN/XBT","OMG/USD","XBT/CHF","ADA/XBT"],"subscription":{"name":"trade"}}',
        )
    ]
    assert len(kraken.received) == 49


def test_capture_rejects_unknown_line_with_its_number() -> None:
    lines = ["wss://x <-> 1.5\n", "2.25: {}\n", "\n", "garbage\n"]
    with pytest.raises(DataFormatError, match=r"^cap:4: expected .*found 'garbage'"):
        parse_capture(lines, source="cap")
    assert parse_capture(lines[:3]).received == [(2_250_000_000, "{}")]


def test_seconds_to_ns_is_exact() -> None:
    assert seconds_to_ns("1626992760.8375711") == 1_626_992_760_837_571_100
    assert seconds_to_ns("1633998274") == 1_633_998_274_000_000_000
    with pytest.raises(ValueError, match="decimal seconds"):
        seconds_to_ns("1.0000000001")


# --- websocket frames from the captures --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kinds"),
    [
        ("BINANCE.ws.1.0", {"unknown": 177, "book_ticker": 84, "agg_trade": 2, "kline": 2}),
        ("BINANCE_US.ws.1.0", {"unknown": 336, "book_ticker": 128, "agg_trade": 11, "kline": 5}),
        (
            "BINANCE_FUTURES.ws.1.0",
            {"unknown": 764, "book_ticker": 613, "agg_trade": 91, "kline": 67},
        ),
    ],
)
def test_every_frame_decodes_to_the_expected_kind(
    fixtures: Path, name: str, kinds: dict[str, int]
) -> None:
    messages = parsed(fixtures, name)
    assert Counter(m.kind for m in messages) == kinds
    assert {m.event for m in messages if m.kind == "unknown"} == {"depthUpdate"}


@pytest.mark.parametrize("name", CAPTURES)
def test_every_kline_frame_matches_its_source_fields(fixtures: Path, name: str) -> None:
    for ts, raw in load(fixtures, name).received:
        source = json.loads(raw)
        if source["data"].get("e") != "kline":
            continue
        k = source["data"]["k"]
        message = parse_message(raw, ts)
        assert message.stream == source["stream"]
        assert message.item == TradeBar(
            symbol=SYMBOLS[k["s"]],
            ts_event=k["t"] * 1_000_000,
            open=float(k["o"]),
            high=float(k["h"]),
            low=float(k["l"]),
            close=float(k["c"]),
            volume=float(k["v"]),
            resolution=MINUTE,
            ts_recv=ts,
            closed=k["x"],
        )


def test_closed_binance_us_kline(fixtures: Path) -> None:
    closed = [m.item for m in parsed(fixtures, "BINANCE_US.ws.1.0") if m.kind == "kline"]
    assert [bar for bar in closed if isinstance(bar, TradeBar) and bar.closed] == [
        TradeBar("OMG/BUSD", 1_633_998_240_000_000_000, 13.7212, 13.8076, 13.7212, 13.7664,
                 536.51, MINUTE, ts_recv=1_633_998_301_680_086_000, closed=True),
    ]  # fmt: skip


def test_closed_futures_klines(fixtures: Path) -> None:
    bars = [m.item for m in parsed(fixtures, "BINANCE_FUTURES.ws.1.0") if m.kind == "kline"]
    t = 1_626_992_700_000_000_000
    assert [bar for bar in bars if isinstance(bar, TradeBar) and bar.closed] == [
        TradeBar("SUSHI/USDT", t, 7.608, 7.618, 7.607, 7.617, 3005.0, MINUTE,
                 ts_recv=1_626_992_760_247_864_000),
        TradeBar("CTK/USDT", t, 1.01, 1.012, 1.01, 1.012, 11074.0, MINUTE,
                 ts_recv=1_626_992_760_837_571_100),
        TradeBar("AKRO/USDT", t, 0.01731, 0.01733, 0.01731, 0.01733, 235736.0, MINUTE,
                 ts_recv=1_626_992_762_049_493_000),
        TradeBar("KEEP/USDT", t, 0.2463, 0.2466, 0.2458, 0.2466, 8464.0, MINUTE,
                 ts_recv=1_626_992_762_049_634_000),
    ]  # fmt: skip


def test_in_progress_spot_kline(fixtures: Path) -> None:
    ts, raw = frame_of(fixtures, "BINANCE.ws.1.0", '"e":"kline"')
    assert parse_message(raw, ts) == ParsedMessage(
        "kline",
        TradeBar("NKN/USDT", 1_633_998_480_000_000_000, 0.3527, 0.3528, 0.3522, 0.3528,
                 25877.0, MINUTE, ts_recv=1_633_998_523_957_297_800, closed=False),
        "nknusdt@kline_1m",
        event="kline",
    )  # fmt: skip


def test_agg_trades(fixtures: Path) -> None:
    trades = [m.item for m in parsed(fixtures, "BINANCE_FUTURES.ws.1.0") if m.kind == "agg_trade"]
    assert trades[:2] == [
        Tick("CTK/USDT", 1_626_992_741_421_000_000, 1.011, 10.0, TickType.TRADE,
             ts_recv=1_626_992_742_289_739_000, trade_id="16599292"),
        Tick("AKRO/USDT", 1_626_992_742_134_000_000, 0.01731, 312.0, TickType.TRADE,
             ts_recv=1_626_992_742_334_986_000, condition="buyer_maker", trade_id="14888302"),
    ]  # fmt: skip
    spot = [m.item for m in parsed(fixtures, "BINANCE.ws.1.0") if m.kind == "agg_trade"]
    assert spot == [
        Tick("NKN/USDT", 1_633_998_523_963_000_000, 0.3528, 58.0, TickType.TRADE,
             ts_recv=1_633_998_523_957_215_000, trade_id="15683430"),
        Tick("LRC/BTC", 1_633_998_534_486_000_000, 0.00000638, 177.0, TickType.TRADE,
             ts_recv=1_633_998_534_481_201_000, trade_id="9213679"),
    ]  # fmt: skip


def test_book_tickers_spot_uses_receive_time_futures_uses_transaction_time(
    fixtures: Path,
) -> None:
    ts, raw = frame_of(fixtures, "BINANCE.ws.1.0", "nknusdt@bookTicker")
    assert parse_message(raw, ts).item == Tick(
        "NKN/USDT", ts, (0.3521 + 0.3526) / 2, 0.0, TickType.QUOTE, ts_recv=ts,
        bid_price=0.3521, bid_size=672.0, ask_price=0.3526, ask_size=3199.0,
    )  # fmt: skip
    ts, raw = frame_of(fixtures, "BINANCE_FUTURES.ws.1.0", "sushiusdt@bookTicker")
    assert ts == 1_626_992_741_062_170_000
    assert parse_message(raw, ts).item == Tick(
        "SUSHI/USDT", 1_626_992_741_012_000_000, (7.611 + 7.612) / 2, 0.0, TickType.QUOTE,
        ts_recv=ts, bid_price=7.611, bid_size=2.0, ask_price=7.612, ask_size=297.0,
    )  # fmt: skip


def test_raw_payload_without_envelope_parses_the_same(fixtures: Path) -> None:
    for name, needle in [("BINANCE.ws.1.0", "@bookTicker"), ("BINANCE_US.ws.1.0", '"x":true')]:
        ts, raw = frame_of(fixtures, name, needle)
        inner = orjson.dumps(orjson.loads(raw)["data"])
        assert parse_message(inner, ts).item == parse_message(raw, ts).item
        assert parse_message(inner, ts).stream == ""


def test_symbol_map_overrides_the_default_split(fixtures: Path) -> None:
    ts, raw = frame_of(fixtures, "BINANCE_FUTURES.ws.1.0", '"x":true')
    item = parse_message(raw, ts, symbols={"SUSHIUSDT": "SUSHI/USDT:USDT"}).item
    assert item is not None
    assert item.symbol == "SUSHI/USDT:USDT"


@pytest.mark.parametrize("name", CAPTURES)
def test_decimal_strings_round_trip_exactly(fixtures: Path, name: str) -> None:
    seen = 0
    for _, raw in load(fixtures, name).received:
        data = json.loads(raw)["data"]
        fields = data.get("k", data)
        for key in ("o", "h", "l", "c", "v", "p", "q", "b", "B", "a", "A"):
            value = fields.get(key)
            if isinstance(value, str):
                assert Decimal(repr(float(value))) == Decimal(value), value
                seen += 1
    assert seen > 0
    assert repr(float("0.00002853")) == "2.853e-05"
    assert Decimal(repr(float("0.00002853"))) == Decimal("0.00002853")


# --- acks, errors, malformed and unknown frames -----------------------------------------


def test_ack_and_error_frames() -> None:
    assert parse_message(b'{"result":null,"id":1}', 0) == ParsedMessage("ack", request_id=1)
    assert parse_message('{"code": -1121, "msg": "Invalid symbol."}', 0) == ParsedMessage(
        "error", error="Invalid symbol.", error_code=-1121, event="error"
    )
    frame = '{"error":{"code":2,"msg":"Invalid request: unknown variable"},"id":3}'
    assert parse_message(frame, 0) == ParsedMessage(
        "error", request_id=3, error="Invalid request: unknown variable", error_code=2,
        event="error",
    )  # fmt: skip


@pytest.mark.parametrize("cut", [1, 20, 100, 200, -3, -1])
def test_truncated_real_frames_raise_protocol_error(fixtures: Path, cut: int) -> None:
    ts, raw = frame_of(fixtures, "BINANCE_US.ws.1.0", '"x":true')
    with pytest.raises(FeedProtocolError, match="expected JSON, found"):
        parse_message(raw[:cut], ts)


def edited(raw: str, change: str, key: str, value: object = None) -> str:
    message = json.loads(raw)
    target = message["data"]["k"] if change.startswith("k.") else message["data"]
    if value is None:
        del target[key]
    else:
        target[key] = value
    return json.dumps(message)


@pytest.mark.parametrize(
    ("change", "key", "value", "error"),
    [
        ("k.del", "o", None, r"kline\.k: expected field 'o', found fields \['B', 'L', 'Q'"),
        ("del", "k", None, r"kline: expected field 'k'"),
        ("k.set", "t", "1633998240000", r"kline\.k\.t: expected an integer of milliseconds, "
                                         r"found str '1633998240000'"),
        ("k.set", "x", "true", r"kline\.k\.x: expected true or false, found str 'true'"),
        ("k.set", "c", "13,76", r"kline\.k\.c: expected a decimal string, found str '13,76'"),
        ("k.set", "v", True, r"kline\.k\.v: expected a decimal string, found bool True"),
        ("k.set", "i", "1M", r"kline\.k\.i: expected one of \['12h', .*found str '1M'"),
        ("k.set", "s", "XYZ", r"expected a Binance symbol ending in a known quote asset"),
        ("set", "k", [1, 2], r"kline\.k: expected a JSON object, found list \[1, 2\]"),
    ],
)  # fmt: skip
def test_malformed_kline_fields_raise_protocol_error(
    fixtures: Path, change: str, key: str, value: object, error: str
) -> None:
    ts, raw = frame_of(fixtures, "BINANCE_US.ws.1.0", '"x":true')
    with pytest.raises(FeedProtocolError, match=error):
        parse_message(edited(raw, change, key, value), ts)


def test_malformed_trade_and_quote_fields_raise_protocol_error(fixtures: Path) -> None:
    ts, raw = frame_of(fixtures, "BINANCE.ws.1.0", '"e":"aggTrade"')
    with pytest.raises(FeedProtocolError, match=r"aggTrade\.a: expected an integer, found str"):
        parse_message(edited(raw, "set", "a", "15683430"), ts)
    with pytest.raises(FeedProtocolError, match=r"aggTrade: expected field 'm'"):
        parse_message(edited(raw, "del", "m"), ts)
    ts, raw = frame_of(fixtures, "BINANCE.ws.1.0", "@bookTicker")
    with pytest.raises(FeedProtocolError, match=r"bookTicker: expected field 'A'"):
        parse_message(edited(raw, "del", "A"), ts)


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ("[1, 2]", r"frame: expected a JSON object, found list"),
        ('{"stream": "x@kline_1m", "data": "oops"}', r"envelope\.data: expected a JSON object"),
        ('{"stream": 5, "data": {}}', r"envelope\.stream: expected a string, found int 5"),
        ('{"result": null, "id": "1"}', r"reply\.id: expected an integer or null, found str"),
        ("", r"expected JSON, found ''"),
    ],
)
def test_malformed_envelopes_raise_protocol_error(frame: str, error: str) -> None:
    with pytest.raises(FeedProtocolError, match=error):
        parse_message(frame, 0)


def test_unknown_event_types_are_not_errors(fixtures: Path) -> None:
    ts, raw = frame_of(fixtures, "BINANCE_FUTURES.ws.1.0", '"e":"kline"')
    frame = edited(raw, "set", "e", "markPriceUpdate")
    assert parse_message(frame, ts) == ParsedMessage(
        "unknown", stream="ctkusdt@kline_1m", event="markPriceUpdate"
    )
    assert parse_message('{"lastUpdateId": 1, "bids": [], "asks": []}', 0).kind == "unknown"


# --- requests and symbols -------------------------------------------------------------


def test_subscribe_and_unsubscribe_frames_match_the_documented_json() -> None:
    assert subscribe_frame(["btcusdt@kline_1m"], 1) == (
        b'{"method":"SUBSCRIBE","params":["btcusdt@kline_1m"],"id":1}'
    )
    assert unsubscribe_frame(("btcusdt@kline_1m",), 2) == (
        b'{"method":"UNSUBSCRIBE","params":["btcusdt@kline_1m"],"id":2}'
    )
    streams = [stream_name("NKN/USDT", "kline_1m"), stream_name("BLZ/ETH", "aggTrade")]
    assert subscribe_frame(streams, 7) == (
        b'{"method":"SUBSCRIBE","params":["nknusdt@kline_1m","blzeth@aggTrade"],"id":7}'
    )
    with pytest.raises(ValueError, match="at least one stream"):
        subscribe_frame([], 3)


def test_symbols_and_stream_names() -> None:
    assert [binance_symbol(s) for s in ("BTCUSDT", "omgbusd", "RUNEEUR", "LRCBTC", "BNBTUSD")] == [
        "BTC/USDT", "OMG/BUSD", "RUNE/EUR", "LRC/BTC", "BNB/TUSD",
    ]  # fmt: skip
    assert binance_symbol("ABCXYZ", quotes=("XYZ",)) == "ABC/XYZ"
    with pytest.raises(FeedProtocolError, match="found 'USDT'"):
        binance_symbol("USDT")
    assert stream_name("BTC/USDT", "kline_1m") == "btcusdt@kline_1m"
    assert stream_name("SUSHI/USDT:USDT", "bookTicker") == "sushiusdt@bookTicker"
    assert stream_name("BTCUSDT", kline_channel(Resolution.HOUR)) == "btcusdt@kline_1h"
    assert [kline_channel(r) for r in ("1m", "1d", "7d")] == ["kline_1m", "kline_1d", "kline_1w"]
    with pytest.raises(ValueError, match="kline intervals"):
        kline_channel("7m")


# --- REST klines ------------------------------------------------------------------------


def rest_body(fixtures: Path) -> bytes:
    """Turn the real ADABTC 12-column kline CSV back into the REST JSON body it came from."""
    with (fixtures / "nautilus_trader" / "ADABTC-1m-2021-11-27.csv").open() as handle:
        rows = [
            [int(r[0]), *r[1:6], int(r[6]), r[7], int(r[8]), r[9], r[10], r[11]]
            for r in csv.reader(handle)
        ]
    return orjson.dumps(rows)


def test_rest_klines_from_real_adabtc_rows(fixtures: Path) -> None:
    body = rest_body(fixtures)
    assert body.startswith(
        b'[[1637971200000,"0.00002853","0.00002854","0.00002851","0.00002854",'
        b'"36304.20000000",1637971259999,"1.03547608",79,"19523.00000000","0.55694227","0"]'
    )
    now = 1_637_971_799_999_000_000  # the last bar's close time: that bar is still open
    bars = parse_rest_klines(body, "ADA/BTC", MINUTE, now_ns=now)
    assert [bar.ts_event for bar in bars] == [
        1_637_971_200_000_000_000 + i * 60_000_000_000 for i in range(10)
    ]
    assert bars[0] == TradeBar(
        "ADA/BTC",
        1_637_971_200_000_000_000,
        0.00002853,
        0.00002854,
        0.00002851,
        0.00002854,
        36304.2,
        MINUTE,
        ts_recv=now,
    )
    assert bars[-1] == TradeBar("ADA/BTC", 1_637_971_740_000_000_000, 0.00002863, 0.00002865,
                                0.00002863, 0.00002865, 8160.5, MINUTE, ts_recv=now,
                                closed=False)  # fmt: skip
    assert [bar.closed for bar in bars] == [True] * 9 + [False]
    later = parse_rest_klines(body.decode(), "ADA/BTC", MINUTE, now_ns=now + 1, backfilled=True)
    assert all(bar.closed and bar.backfilled for bar in later)


def test_rest_klines_errors(fixtures: Path) -> None:
    body = rest_body(fixtures)
    with pytest.raises(FeedProtocolError, match=r"klines\[0\] close time: expected open time"):
        parse_rest_klines(body, "ADA/BTC", Resolution.HOUR, now_ns=0)
    with pytest.raises(RateLimitError, match="Binance error -1003: Too much request weight"):
        parse_rest_klines(b'{"code":-1003,"msg":"Too much request weight used"}', "A/B",
                          MINUTE, now_ns=0)  # fmt: skip
    with pytest.raises(SubscriptionError, match="-1121: Invalid symbol"):
        parse_rest_klines(b'{"code":-1121,"msg":"Invalid symbol."}', "A/B", MINUTE, now_ns=0)
    with pytest.raises(FeedProtocolError, match=r"klines\[1\]: expected an array of 12"):
        parse_rest_klines(b"[" + body[1:].split(b"],")[0] + b'],"x"]', "A/B", MINUTE, now_ns=0)
    with pytest.raises(FeedProtocolError, match=r"klines: expected a JSON array"):
        parse_rest_klines(b'"nope"', "A/B", MINUTE, now_ns=0)
    with pytest.raises(FeedProtocolError, match="expected JSON"):
        parse_rest_klines(body[:-5], "A/B", MINUTE, now_ns=0)


def test_fast_paths_equal_the_checked_parsers_on_real_and_broken_frames(fixtures: Path) -> None:
    """The one-go fast paths for kline and aggTrade give exactly what the field-by-field
    parsers give on every real captured frame, and on frames with any field broken they
    fall back and raise the checked parser's precise error."""
    import copy

    from lean_data.wire import binance as wire

    payloads = []
    for name in ("BINANCE.ws.1.0", "BINANCE_US.ws.1.0", "BINANCE_FUTURES.ws.1.0"):
        for _, text in load(fixtures, name).received:
            message = orjson.loads(text)
            data = message.get("data", message)
            if isinstance(data, dict) and data.get("e") in ("kline", "aggTrade"):
                payloads.append(data)
    kinds = {p["e"] for p in payloads}
    assert kinds == {"kline", "aggTrade"}

    def pair(data: dict[str, object]) -> tuple[object, object]:
        fast_fn, slow_fn = (
            (wire.parse_kline, wire._parse_kline_checked)
            if data["e"] == "kline"
            else (wire.parse_agg_trade, wire._parse_agg_trade_checked)
        )
        results = []
        for fn in (fast_fn, slow_fn):
            try:
                results.append(
                    fn(data, 7, symbols={"CTKUSDT": "CTK/USDT:USDT"})  # type: ignore[operator]
                    if fn is fast_fn
                    else fn(data, 7, {"CTKUSDT": "CTK/USDT:USDT"})  # type: ignore[operator]
                )
            except FeedProtocolError as exc:
                results.append(("error", str(exc)))
        return results[0], results[1]

    broken = 0
    for data in payloads:
        fast, slow = pair(data)
        assert fast == slow
        target = data["k"] if data["e"] == "kline" else data
        assert isinstance(target, dict)
        for key in list(target):
            for bad in (None, 1.5, "x", True, [], {}):
                mutated = copy.deepcopy(data)
                inner = mutated["k"] if mutated["e"] == "kline" else mutated
                inner[key] = bad  # type: ignore[index]
                fast, slow = pair(mutated)
                assert fast == slow, (key, bad)
                broken += 1
    assert broken > 1000
