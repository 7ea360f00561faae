"""The bus's pure parts: the message codec and the subject escaping (no NATS needed).

Round trips are properties over every field, NaN, infinities and -0.0 included (compared
bit for bit); malformed input gives one ValueError naming what is wrong.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lean_data.bus.codec import decode, encode
from lean_data.bus.subjects import (
    escape_token,
    filter_for,
    message_id,
    parse_subject,
    stream_name_for,
    subject_for,
    unescape_token,
)
from lean_data.loaders import load_file
from lean_data.models import MarketData, QuoteBar, Resolution, Tick, TickType, TradeBar
from lean_data.quality.levels import DataQualityLevel, Verdict
from tests.conftest import FIXTURES

FTX = FIXTURES / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"

floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [
        -0.0,
        math.inf,
        -math.inf,
        math.nan,
        struct.unpack("<d", b"\x01\x00\x00\x00\x00\x00\xf8\x7f")[0],
    ]
)
ns = st.integers(min_value=0, max_value=2**63 - 1)
text = st.text(min_size=1, max_size=20)
resolutions = st.sampled_from([Resolution.TICK, Resolution.SECOND, Resolution.MINUTE,
                               Resolution.parse("5m"), Resolution.DAILY])  # fmt: skip
verdicts = st.builds(
    Verdict,
    st.sampled_from(list(DataQualityLevel)),
    st.lists(st.text(max_size=12), max_size=3).map(tuple),
    st.text(max_size=40),
)
trade_bars = st.builds(
    TradeBar, text, ns, floats, floats, floats, floats, floats, resolutions, ns,
    st.booleans(), st.integers(0, 1000), st.booleans(),
)  # fmt: skip
quote_bars = st.builds(
    QuoteBar, text, ns, floats, floats, floats, floats, floats, floats, floats, floats,
    floats, floats, resolutions, ns, st.booleans(), st.integers(0, 1000), st.booleans(),
)  # fmt: skip
ticks = st.builds(
    Tick, text, ns, floats, floats, st.sampled_from(list(TickType)), ns, floats, floats,
    floats, floats, st.text(max_size=4), st.text(max_size=4), st.booleans(), st.text(max_size=8),
)  # fmt: skip


def bits(item: MarketData) -> tuple[Any, ...]:
    """The item's fields, floats as their IEEE bits (NaN == NaN, -0.0 != 0.0)."""
    return tuple(
        struct.pack("<d", v) if isinstance(v, float) else v
        for v in (getattr(item, name) for name in item.__dataclass_fields__)
    )


@given(st.sampled_from(["ftx", "binance.us", "a b"]), trade_bars | quote_bars | ticks, verdicts)
def test_every_item_round_trips_bit_for_bit(feed: str, item: MarketData, verdict: Verdict) -> None:
    got_feed, got, got_verdict = decode(encode(feed, item, verdict))
    assert (got_feed, type(got), got_verdict) == (feed, type(item), verdict)
    assert bits(got) == bits(item)


def test_real_bars_round_trip() -> None:
    bars = [b for b in load_file(FTX, symbol="BTC-PERP") if isinstance(b, TradeBar)][:2000]
    verdict = Verdict(DataQualityLevel.FAIR, ("extreme_move",), "close moved 9 sigma")
    for bar in bars:
        assert decode(encode("ftx", bar, verdict)) == ("ftx", bar, verdict)


def good() -> list[Any]:
    bar = TradeBar("BTC-PERP", 1, 1.0, 2.0, 0.5, 1.5, 3.0)
    return list(msgpack.unpackb(encode("ftx", bar, Verdict(DataQualityLevel.GOOD))))


def pack(row: Any) -> bytes:
    return bytes(msgpack.packb(row))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\xc1", "not msgpack"),
        (b"", "not msgpack"),
        (pack({"a": 1}), "expected an array"),
        (pack([2, *good()[1:]]), "format version 2"),
        (pack([True, *good()[1:]]), "format version True"),
        (pack([1, "candle", *good()[2:]]), "kind 'candle'"),
        (pack([1, "bar", "", *good()[3:]]), "feed ''"),
        (pack([*good()[:3], ["SUPERB", [], "", 1.0], *good()[4:]]), "quality level 'SUPERB'"),
        (pack([*good()[:3], ["GOOD", [1], "", 1.0], *good()[4:]]), "reasons"),
        (pack([*good()[:3], "GOOD", *good()[4:]]), "verdict 'GOOD'"),
        (pack(good()[:-1]), "a bar has 12 fields, found 11"),
        (pack([*good(), 1]), "a bar has 12 fields, found 13"),
        (pack([*good()[:5], "1", *good()[6:]]), "bar field ts_event is '1', expected an int"),
        (pack([*good()[:6], "x", *good()[7:]]), "bar field open is 'x', expected a float"),
        (pack([*good()[:11], -60, *good()[12:]]), "bar field resolution is -60"),
        (pack([*good()[:13], 1, *good()[14:]]), "bar field closed is 1, expected a bool"),
    ],
)
def test_malformed_messages_raise_one_clear_value_error(data: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        decode(data)


def test_an_int_price_from_another_producer_is_taken_as_a_float() -> None:
    row = good()
    row[6] = 100
    _, bar, _ = decode(pack(row))
    assert isinstance(bar, TradeBar)
    assert type(bar.open) is float
    assert bar.open == 100.0


# ---------------------------------------------------------------------------- subjects
@given(st.text(min_size=1))
def test_escaping_round_trips_and_makes_a_legal_token(value: str) -> None:
    token = escape_token(value)
    assert unescape_token(token) == value
    assert token.isascii()
    assert token.isprintable()
    assert not any(c in token for c in ".*> \t\r\n")


@given(text, text, st.sampled_from(["bar", "quote", "tick"]))
def test_subject_for_and_parse_subject_are_inverse(feed: str, symbol: str, kind: str) -> None:
    subject = subject_for("lean.prod", kind, feed, symbol)
    assert subject.count(".") == 4
    parsed = parse_subject(subject, "lean.prod")
    assert (parsed.kind, parsed.feed, parsed.symbol) == (kind, feed, symbol)


def test_known_escapes_and_filters() -> None:
    assert subject_for("lean", "bar", "ftx", "BTC/USDT") == "lean.bar.ftx.BTC/USDT"
    assert escape_token("ES.c.0") == "ES%2Ec%2E0"
    assert escape_token("100%") == "100%25"
    assert escape_token("a b*>") == "a%20b%2A%3E"
    assert escape_token("€") == "%E2%82%AC"
    assert filter_for("lean", "BTC/USDT") == "lean.*.*.BTC/USDT"
    assert filter_for("lean", "AAPL", kind="bar", feed="alpaca") == "lean.bar.alpaca.AAPL"
    assert stream_name_for("lean.prod") == "LEAN_PROD"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: escape_token(""), "must not be empty"),
        (lambda: unescape_token("a.b"), "'.'"),
        (lambda: unescape_token("a%2"), "'%'"),
        (lambda: unescape_token("a%2e"), "'%'"),
        (lambda: unescape_token("%FF"), "not UTF-8"),
        (lambda: subject_for("le*an", "bar", "f", "s"), "bus prefix"),
        (lambda: subject_for("lean", "candle", "f", "s"), "bus kind"),
        (lambda: parse_subject("other.bar.f.s", "lean"), "does not start with"),
        (lambda: parse_subject("lean.bar.f", "lean"), "found 2 tokens"),
    ],
)
def test_bad_subjects_raise_one_clear_value_error(call: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_message_ids_name_one_version_of_one_item() -> None:
    bar = TradeBar("BTC/USDT", 60, 1.0, 2.0, 0.5, 1.5, 3.0)
    assert message_id("ftx", bar) == "bar:ftx:BTC/USDT:60:60000000000:0"
    revised = TradeBar("BTC/USDT", 60, 1.0, 2.0, 0.5, 1.6, 3.0, revision=1)
    assert message_id("ftx", revised) != message_id("ftx", bar)
    backfilled = TradeBar("BTC/USDT", 60, 1.0, 2.0, 0.5, 1.5, 3.0, backfilled=True, ts_recv=9)
    assert message_id("ftx", backfilled) == message_id("ftx", bar)  # the same bar
    trade = Tick("BTC/USDT", 5, 1.0, 2.0, trade_id="77")
    assert message_id("ftx", trade) == "tick:ftx:BTC/USDT:5:t77"
    assert message_id("ftx", Tick("X", 5, 1.0, 2.0)) != message_id("ftx", Tick("X", 5, 1.0, 3.0))
