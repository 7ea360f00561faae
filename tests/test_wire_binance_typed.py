"""The typed (msgspec) path of Binance parse_message gives what the checked dict path gives.

``parse_message`` tries :mod:`lean_data.wire.binance_typed` first and falls back to
``parse_message_checked``; here every real recorded frame, a catalogue of hostile edits of
real frames and Hypothesis-generated payloads go through both, and the outcomes (the
ParsedMessage with its item, or the exception's type and message) must be identical.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lean_data.errors import FeedProtocolError
from lean_data.loaders.capture import read_capture
from lean_data.wire.binance import (
    ParsedMessage,
    parse_message,
    parse_message_checked,
    parse_message_typed,
)

FIXTURE_CAPTURES = ("BINANCE.ws.1.0", "BINANCE_US.ws.1.0", "BINANCE_FUTURES.ws.1.0")
SHARED = (Path(__file__).parents[1] / ".." / "shared" / "data" / "cryptofeed").resolve()
TS = 1_633_998_512_063_356_900
Outcome = tuple[str, str, str]
Parser = Callable[..., ParsedMessage | None]


def outcome(parse: Parser, raw: bytes | str, symbols: Mapping[str, str] | None = None) -> Outcome:
    """("ok", type, repr) of the message or ("error", type, message); repr compares nan too."""
    try:
        message = parse(raw, TS, symbols=symbols)
    except FeedProtocolError as exc:
        return ("error", type(exc).__name__, str(exc))
    return ("ok", type(message).__name__, repr(message))


def assert_same(raw: bytes | str, symbols: Mapping[str, str] | None = None) -> Outcome:
    """parse_message (typed first) and the checked path agree; return the outcome."""
    checked = outcome(parse_message_checked, raw, symbols)
    assert outcome(parse_message, raw, symbols) == checked, raw
    typed = parse_message_typed(raw, TS, symbols=symbols)
    if typed is not None:  # when the typed path answers on its own, it answers the same
        assert ("ok", "ParsedMessage", repr(typed)) == checked, raw
    return checked


def frames(path: Path) -> list[tuple[int, str]]:
    return read_capture(path).received


def real(fixtures: Path, name: str, needle: str) -> dict[str, Any]:
    """The first frame of a fixture capture containing ``needle``, as a dict."""
    raw = next(raw for _, raw in frames(fixtures / "cryptofeed" / name) if needle in raw)
    found: dict[str, Any] = json.loads(raw)
    return found


# --- every real frame ---------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURE_CAPTURES)
def test_every_real_frame_takes_the_typed_path_and_matches_the_checked_one(
    fixtures: Path, name: str
) -> None:
    kinds: Counter[str] = Counter()
    for ts, raw in frames(fixtures / "cryptofeed" / name):
        checked = parse_message_checked(raw, ts)
        typed = parse_message_typed(raw, ts)
        assert typed is not None, raw  # no recorded frame needs the fallback
        assert typed == checked
        assert type(typed.item) is type(checked.item)
        assert parse_message(raw.encode(), ts) == checked  # bytes frames too
        kinds[typed.kind if typed.kind != "unknown" else typed.event] += 1
    assert set(kinds) == {"kline", "agg_trade", "book_ticker", "depthUpdate"}


@pytest.mark.parametrize("name", [*FIXTURE_CAPTURES, "BINANCE_DELIVERY.ws.1.0"])
def test_every_shared_corpus_frame_matches_with_and_without_a_symbol_map(name: str) -> None:
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared corpus is not on this machine)")
    received = frames(path)
    venue = {json.loads(raw)["data"]["s"] for _, raw in received if '"s":"' in raw}
    symbols = {s: f"{s[:3]}/{s[3:]}:X" for s in venue}  # every symbol mapped
    errors: Counter[str] = Counter()
    for _, raw in received:
        found = assert_same(raw)
        if found[0] == "error":
            errors[found[2].partition(", found")[0]] += 1
        assert assert_same(raw, symbols)[0] == "ok"
        assert parse_message_typed(raw, TS, symbols=symbols) is not None  # all typed
    if name.startswith("BINANCE_DELIVERY"):  # ETHUSD_210924: no known quote asset to split
        assert list(errors) == ["expected a Binance symbol ending in a known quote asset"]
    else:
        assert errors == {}


# --- hostile edits of real frames -----------------------------------------------------------


def edit(message: dict[str, Any], path: str, value: object) -> str:
    """Set (or, for DELETE, remove) the key at ``path`` ("data.k.o") and dump the frame."""
    copy = json.loads(json.dumps(message))
    *parents, key = path.split(".")
    target = copy
    for part in parents:
        target = target[part]
    if value is DELETE:
        target.pop(key, None)
    else:
        target[key] = value
    return json.dumps(copy, separators=(",", ":"))


DELETE = object()
BAD_VALUES: list[object] = [
    DELETE, "abc", "", " 1.5 ", "1_000", "NaN", "nan", "-inf", "Infinity", "1e5", "-0",
    "0x10", "\u0661\u0662", 12, 12.5, 1.0, True, None, [], {}, 2**63 - 1, 2**63, 2**64 - 1,
    2**64, 10**30, -(2**63), -(2**63) - 1, "1633998240000", "1m", "1M", "XYZ", "BTCUSD_210924",
]  # fmt: skip

KLINE_PATHS = [f"data.k.{key}" for key in "tohlcvxsi"] + [
    "data.k", "data.k.T", "data.k.n", "data.k.B", "data.e", "data.E", "data.s", "data",
    "stream",
]  # fmt: skip
AGG_TRADE_PATHS = [f"data.{key}" for key in ("a", "T", "p", "q", "m", "s", "e", "E", "M", "l")]
BOOK_PATHS = [f"data.{key}" for key in ("s", "b", "B", "a", "A", "T", "E", "u", "e")]


@pytest.mark.parametrize(
    ("name", "needle", "paths"),
    [
        ("BINANCE_US.ws.1.0", '"x":true', KLINE_PATHS),
        ("BINANCE.ws.1.0", '"e":"kline"', KLINE_PATHS),
        ("BINANCE.ws.1.0", '"e":"aggTrade"', AGG_TRADE_PATHS),
        ("BINANCE_FUTURES.ws.1.0", '"e":"aggTrade"', AGG_TRADE_PATHS),
        ("BINANCE_FUTURES.ws.1.0", '"e":"bookTicker"', BOOK_PATHS),
        ("BINANCE.ws.1.0", "@bookTicker", BOOK_PATHS),
        ("BINANCE.ws.1.0", '"e":"depthUpdate"', ["data.b", "data.a", "data.U", "data.e"]),
    ],
)
def test_hostile_values_and_missing_keys_give_the_checked_result_or_error(
    fixtures: Path, name: str, needle: str, paths: list[str]
) -> None:
    message = real(fixtures, name, needle)
    seen: Counter[str] = Counter()
    for path in paths:
        for value in BAD_VALUES:
            seen[assert_same(edit(message, path, value))[0]] += 1
    assert seen["ok"] > 0
    assert seen["error"] > 0 or "depthUpdate" in needle  # an event we do not decode: no error


def test_every_bad_kline_field_reaches_the_checked_error_message(fixtures: Path) -> None:
    message = real(fixtures, "BINANCE_US.ws.1.0", '"x":true')
    cases = {
        ("data.k.o", "abc"): "kline.k.o: expected a decimal string, found str 'abc'",
        ("data.k.t", 2**64): "kline.k.t: expected an integer of milliseconds, found float",
        ("data.k.t", 1.0): "kline.k.t: expected an integer of milliseconds, found float 1.0",
        ("data.k.x", "true"): "kline.k.x: expected true or false, found str 'true'",
        ("data.k", DELETE): "kline: expected field 'k'",
        ("data.k.i", "1M"): "kline.k.i: expected one of",
        ("data.k.s", "XYZ"): "expected a Binance symbol ending in a known quote asset",
    }
    for (path, value), error in cases.items():
        found = assert_same(edit(message, path, value))
        assert found[0] == "error"
        assert error in found[2]


def test_numbers_where_decimal_strings_belong_are_accepted_by_the_checked_path(
    fixtures: Path,
) -> None:
    """The typed schema says str; a JSON number falls back, and the checked path takes it."""
    message = real(fixtures, "BINANCE_US.ws.1.0", '"x":true')
    raw = edit(message, "data.k.o", 12.5)
    assert parse_message_typed(raw, TS) is None
    bar = parse_message(raw, TS).item
    assert bar is not None
    assert bar.open == 12.5  # type: ignore[union-attr]  # a TradeBar


def test_nan_and_special_decimal_strings_convert_exactly_as_float_does(fixtures: Path) -> None:
    message = real(fixtures, "BINANCE.ws.1.0", '"e":"aggTrade"')
    for text in ("NaN", "-inf", " 1.5 ", "1_000", "-0", "1e5"):
        raw = edit(message, "data.p", text)
        typed = parse_message_typed(raw, TS)
        assert typed is not None
        assert repr(typed.item.price) == repr(float(text))  # type: ignore[union-attr]
        assert_same(raw)


def test_extra_keys_shuffled_keys_and_duplicates(fixtures: Path) -> None:
    message = real(fixtures, "BINANCE_FUTURES.ws.1.0", '"e":"kline"')
    data, k = message["data"], message["data"]["k"]
    shuffled = {"data": {"k": dict(reversed(k.items())), **{key: data[key] for key in "sEe"}}}
    shuffled["stream"] = message["stream"]
    raw = json.dumps(shuffled)
    assert parse_message_typed(raw, TS) == parse_message_checked(raw, TS)  # typed, not fallen
    for path in ("zz", "data.zz", "data.k.zz"):
        for value in (1, "x", None, [1, [2]], {"a": 1}):
            raw = edit(message, path, value)
            assert parse_message_typed(raw, TS) is None  # closed schema: unknown key
            assert assert_same(raw)[0] == "ok"
    text = json.dumps(message, separators=(",", ":"))
    hostile_extras = [
        ('"data":{', '"data":{"zz":1e400,'),  # orjson refuses a number beyond double
        ('"data":{', '"data":{"zz":' + "1" * 400 + ","),
        ('"data":{', '"data":{"zz":' + "[" * 1100 + "]" * 1100 + ","),  # deeper than orjson
        ('"data":{', '"data":{"e":"aggTrade",'),  # duplicate tag: the last one wins
        ('"data":{', '"data":{"k":5,'),  # duplicate k: the last one wins
        ('"stream":', '"stream":5,"stream":'),
        ("}}}", '}},"data":{"e":"kline"}}'),  # duplicate data: the last one wins
    ]
    for old, new in hostile_extras:
        assert_same(text.replace(old, new, 1))
    encoded = text.replace('"data":{', '"data":{"zz":"\xff",', 1).encode("latin-1")
    assert assert_same(encoded)[0] == "error"  # invalid UTF-8 in an ignored key


def test_malformed_json_replies_errors_and_raw_payloads(fixtures: Path) -> None:
    text = json.dumps(real(fixtures, "BINANCE_US.ws.1.0", '"x":true'), separators=(",", ":"))
    for cut in (0, 1, 20, 100, 200, -3, -1):
        assert assert_same(text[:cut])[0] == "error"
    payload = json.dumps(json.loads(text)["data"])
    others = [
        "[1, 2]", "null", "5", '"x"', " ", text + "x", "\ufeff" + text, text + " \n",
        '{"result":null,"id":1}', '{"result":null,"id":"1"}', '{"code":-1121,"msg":"Invalid"}',
        '{"error":{"code":2,"msg":"Invalid request"},"id":3}', payload,
        '{"stream":"x@kline_1m","data":"oops"}', '{"stream":null,"data":{}}',
        '{"stream":"nknusdt@bookTicker","data":{"e":"","s":"NKNUSDT","b":"1","B":"1",'
        '"a":"2","A":"1"}}',
        '{"stream":"","data":{"u":1,"s":"NKNUSDT","b":"1","B":"1","a":"2","A":"1"}}',
        '{"stream":"","data":{"s":"NKNUSDT","b":"1","B":"1","a":"2","A":"1"}}',
        '{"stream":"x@trade","data":{"e":"trade","s":"BTCUSDT","p":"1","T":1}}',
        '{"stream":"x@markPrice","data":{"e":"markPriceUpdate","p":"1"}}',
        '{"stream":"x@kline_1m","data":{"e":"kline","k":{"s":"\ud800"}}}',
    ]  # fmt: skip
    for raw in others:
        assert_same(raw)
    assert_same(text.encode().replace(b"CTK", b"\xed\xa0\x80"))  # an encoded surrogate


# --- generated payloads --------------------------------------------------------------------

decimals = st.decimals(allow_nan=False, allow_infinity=False, places=8).map(str)
anything: st.SearchStrategy[object] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    decimals,
    st.lists(st.integers(), max_size=2),
)
prices = st.one_of(decimals, decimals, st.sampled_from(["NaN", "inf", "abc", "", "1_0"]), anything)
millis = st.one_of(st.integers(min_value=0, max_value=2**45), anything)
flags = st.one_of(st.booleans(), anything)
venue_symbols = st.one_of(st.sampled_from(["BTCUSDT", "ETHBTC", "CTKUSDT", "XYZ"]), anything)
intervals = st.one_of(st.sampled_from(["1m", "1h", "1d", "1w", "1M", "7m"]), anything)

kline_bodies = st.fixed_dictionaries(
    {"t": millis, "o": prices, "h": prices, "l": prices, "c": prices, "v": prices,
     "x": flags, "s": venue_symbols, "i": intervals},
    optional={"T": millis, "n": millis, "q": prices, "B": prices, "zz": anything},
)  # fmt: skip
klines = st.fixed_dictionaries(
    {"e": st.just("kline"), "k": st.one_of(kline_bodies, kline_bodies, anything)},
    optional={"E": millis, "s": venue_symbols, "zz": anything},
)
agg_trades = st.fixed_dictionaries(
    {"e": st.just("aggTrade"), "a": millis, "T": millis, "p": prices, "q": prices,
     "m": flags, "s": venue_symbols},
    optional={"E": millis, "f": millis, "l": millis, "M": flags, "zz": anything},
)  # fmt: skip
book_tickers = st.fixed_dictionaries(
    {"s": venue_symbols, "b": prices, "B": prices, "a": prices, "A": prices},
    optional={"e": st.sampled_from(["bookTicker", "", "trade"]), "u": millis, "T": millis,
              "E": millis},
)  # fmt: skip
streams = st.one_of(
    st.sampled_from(["btcusdt@kline_1m", "btcusdt@aggTrade", "btcusdt@bookTicker", ""]),
    anything,
)


@st.composite
def frames_of(draw: st.DrawFn, payloads: st.SearchStrategy[dict[str, Any]]) -> str:
    """An envelope (sometimes none) around a payload, keys in a drawn order, some deleted."""
    payload = draw(payloads)
    for key in draw(st.lists(st.sampled_from(sorted(payload)), max_size=2, unique=True)):
        del payload[key]
    if draw(st.booleans()):
        payload = dict(draw(st.permutations(list(payload.items()))))
    message: object = payload
    if draw(st.integers(0, 9)):
        message = {"stream": draw(streams), "data": payload}
    return json.dumps(message, separators=(",", ":"))


@settings(max_examples=400, deadline=None)
@given(frames_of(st.one_of(klines, agg_trades, book_tickers)), st.booleans())
def test_generated_payloads_typed_equals_checked(raw: str, mapped: bool) -> None:
    assert_same(raw, {"BTCUSDT": "BTC/USDT:USDT"} if mapped else None)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(FIXTURE_CAPTURES), st.data())
def test_byte_level_mutations_of_real_frames(name: str, data: st.DataObject) -> None:
    received = frames(Path(__file__).parent / "fixtures" / "cryptofeed" / name)
    raw = bytearray(data.draw(st.sampled_from(received))[1].encode())
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw)))
        if data.draw(st.booleans()) and at < len(raw):
            del raw[at]
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=3))
    assert_same(bytes(raw))


def test_the_struct_field_positions_the_typed_path_reads() -> None:
    """_typed_message reads a kline's and an aggTrade's fields by position (astuple)."""
    from lean_data.wire.binance_typed import AggTradeEvent, KlineBody

    assert KlineBody.__struct_fields__[:9] == ("t", "o", "h", "low", "c", "v", "x", "s", "i")
    assert AggTradeEvent.__struct_fields__[:6] == ("a", "T", "p", "q", "m", "s")
