"""The C reader of Binance frames (lean_data._binance) is a shortcut, never a judge.

For every frame it takes (a closed kline or an aggTrade in the common spelling) it must give
exactly the item ``parse_message`` gives; every other frame it must leave to
``parse_message`` (None). Checked on the real captured frames, on the hostile edits of
tests/test_wire_binance_typed.py, on every truncation and on single-character mutations of
real frames, and on generated decimal strings. The reader exists in the compiled build only
(lean_data/compiled.py, C_MODULES); without it ``take_items`` decodes every frame with
``parse_message``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lean_data.errors import FeedProtocolError
from lean_data.wire import binance
from lean_data.wire.binance import parse_message, take_items
from tests.test_wire_binance_typed import (
    AGG_TRADE_PATHS,
    BAD_VALUES,
    DELETE,
    FIXTURE_CAPTURES,
    KLINE_PATHS,
    TS,
    edit,
    frames,
    real,
)

FAST: Callable[[bytes | str, int, Mapping[str, str] | None], Any] | None = binance._FAST_ITEM
needs_reader = pytest.mark.skipif(
    FAST is None, reason="the C reader is built with the compiled package"
)


def test_the_reader_is_there_exactly_when_the_package_is_compiled() -> None:
    variant = os.environ.get("LEAN_DATA_VARIANT")
    if variant == "compiled":
        assert FAST is not None
    elif variant == "pure":
        assert FAST is None


def same_or_none(raw: bytes | str, symbols: Mapping[str, str] | None = None) -> bool:
    """The reader's answer is None or parse_message's item (repr: NaN compares too), with
    the frame's stream for an in-progress kline; True when the reader took the frame."""
    assert FAST is not None
    taken = FAST(raw, TS, symbols)
    if taken is None:
        return False
    message = parse_message(raw, TS, symbols=symbols)  # raises: the reader was wrong
    expected = message.item
    if type(taken) is tuple:  # an in-progress kline: (bar, stream)
        assert message.kind == "kline", raw
        assert not expected.closed, raw  # type: ignore[union-attr]  # a TradeBar
        assert taken[1] == message.stream, raw
        taken = taken[0]
    else:
        assert not (message.kind == "kline" and not expected.closed), raw  # type: ignore[union-attr]
    assert type(taken) is type(expected), raw
    assert repr(taken) == repr(expected), raw
    return True


def closed(raw: str) -> str:
    """A kline frame with its bar closed (the captures hold in-progress bars mostly)."""
    return raw.replace('"x":false', '"x":true')


@needs_reader
@pytest.mark.parametrize("name", FIXTURE_CAPTURES)
def test_every_real_closed_kline_and_agg_trade_takes_the_reader(fixtures: Path, name: str) -> None:
    taken = 0
    for _, raw in frames(fixtures / "cryptofeed" / name):
        event = json.loads(raw).get("data", {}).get("e")
        if event not in ("kline", "aggTrade"):
            assert not same_or_none(raw)  # book tickers, depth: the usual path
            continue
        if event == "kline":
            in_progress = raw.replace('"x":true', '"x":false')
            assert same_or_none(in_progress)  # as (bar, stream)
            assert type(FAST(in_progress, TS, None)) is tuple  # type: ignore[misc]
            raw = closed(raw)
        venue = json.loads(raw)["data"]["s"]
        for symbols in (None, {}, {venue: "MAPPED/SYM"}, {venue: None}):
            assert same_or_none(raw, symbols), raw  # type: ignore[arg-type]
            assert same_or_none(raw.encode(), symbols)  # type: ignore[arg-type]
        taken += 1
    assert taken > 0


@needs_reader
@pytest.mark.parametrize(
    ("name", "needle", "paths"),
    [
        ("BINANCE_US.ws.1.0", '"x":true', KLINE_PATHS),
        ("BINANCE.ws.1.0", '"e":"aggTrade"', AGG_TRADE_PATHS),
        ("BINANCE_FUTURES.ws.1.0", '"e":"aggTrade"', AGG_TRADE_PATHS),
    ],
)
def test_hostile_values_are_taken_the_same_or_left_alone(
    fixtures: Path, name: str, needle: str, paths: list[str]
) -> None:
    message = real(fixtures, name, needle)
    taken = 0
    for path in paths:
        for value in BAD_VALUES:
            taken += same_or_none(edit(message, path, value))  # asserts the same item
    assert taken > 0  # e.g. "-0" as a price, a bigger id: still the common spelling


@needs_reader
def test_a_frame_missing_a_required_field_is_left_to_the_usual_path(fixtures: Path) -> None:
    kline = json.loads(closed(json.dumps(real(fixtures, "BINANCE_US.ws.1.0", '"x":true'))))
    for path in [f"data.k.{key}" for key in "tohlcvxsi"] + ["data.k", "data.e", "data", "stream"]:
        assert not same_or_none(edit(kline, path, DELETE))
    trade = real(fixtures, "BINANCE.ws.1.0", '"e":"aggTrade"')
    for path in [f"data.{key}" for key in ("a", "T", "p", "q", "m", "s", "e")]:
        assert not same_or_none(edit(trade, path, DELETE))


@needs_reader
def test_spellings_the_reader_leaves_to_the_usual_path(fixtures: Path) -> None:
    kline = closed(
        json.dumps(real(fixtures, "BINANCE_US.ws.1.0", '"x":true'), separators=(",", ":"))
    )
    message = json.loads(kline)
    assert same_or_none(kline)
    left = [
        kline.replace(",", ", ", 1),  # whitespace between tokens
        kline[:-1] + " }",  # before the end
        kline + " ",  # after it
        kline.replace('"o":"', '"o":"\\u0031', 1),  # an escape in a string
        kline.replace('"c":', '"c":"1.0","c":', 1),  # a key twice
        kline.replace('"n":', '"z":1,"n":', 1),  # a key no schema declares
        kline.replace('"t":', '"t":0', 1),  # a leading zero
        kline.replace('"OMGBUSD"', '"OMGBUSD\u00e9"'),  # not ASCII
        edit(message, "data.k.i", "1M"),  # an interval without a fixed length
        edit(message, "data.k.o", "1e5"),  # a decimal string with an exponent
        edit(message, "data.k.o", 12.5),  # a number where the schema says string
        edit(message, "data.k.t", 10**18),  # 19 digits
        edit(message, "data.k.t", 10**17),  # 18 digits, beyond int64 in nanoseconds
        edit(message, "data.k.x", "true"),  # a string where the schema says bool
    ]
    for raw in left:
        assert not same_or_none(raw), raw
    reordered = {"data": message["data"], "stream": message["stream"]}
    assert same_or_none(json.dumps(reordered, separators=(",", ":")))  # any key order
    assert FAST is not None
    assert FAST(kline, TS, {"a": "b"}.keys()) is None  # type: ignore[arg-type]  # not a dict
    assert FAST(bytearray(kline.encode()), TS, None) is None  # type: ignore[arg-type]


@needs_reader
@pytest.mark.parametrize("needle", ['"e":"kline"', '"e":"aggTrade"'])
def test_every_truncation_and_single_character_change_is_taken_the_same_or_left(
    fixtures: Path, needle: str
) -> None:
    raw = next(
        raw for _, raw in frames(fixtures / "cryptofeed" / "BINANCE.ws.1.0") if needle in raw
    )
    raw = closed(raw)
    assert same_or_none(raw)
    for end in range(len(raw)):
        assert not same_or_none(raw[:end])
    taken = 0
    for i in range(len(raw)):
        for ch in '0 9-."{}\\,:xe':
            mutated = raw[:i] + ch + raw[i + 1 :]
            try:
                taken += same_or_none(mutated)
            except FeedProtocolError:  # parse_message refused what the reader took
                pytest.fail(f"the reader took a frame parse_message refuses: {mutated}")
    assert taken > 0  # digits changed inside numbers are still read, and read the same


@needs_reader
@settings(max_examples=400, deadline=None)
@given(
    sign=st.sampled_from(["", "-"]),
    whole=st.text("0123456789", min_size=1, max_size=25),
    fraction=st.one_of(st.none(), st.text("0123456789", min_size=1, max_size=30)),
)
def test_decimal_strings_read_exactly_as_float_does(
    sign: str, whole: str, fraction: str | None
) -> None:
    text = sign + whole + ("" if fraction is None else "." + fraction)
    raw = (
        '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":5,'
        f'"p":"{text}","q":"1","f":1,"l":1,"T":1633998523963,"m":true}}}}'
    )
    assert FAST is not None
    tick = FAST(raw, TS, None)
    if len(text) > 63:
        assert tick is None
        return
    assert tick is not None
    assert repr(tick.price) == repr(float(text))
    assert same_or_none(raw)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_take_items_gives_the_same_items_with_and_without_the_reader(data: st.DataObject) -> None:
    base = [
        '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":5,'
        '"p":"1.5","q":"2","f":1,"l":1,"T":1633998523963,"m":false,"M":true}}',
        '{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1,"s":"BTCUSDT","k":{"t":'
        '1633998480000,"s":"BTCUSDT","i":"1m","o":"1","c":"2","h":"3","l":"0.5","v":"9",'
        '"x":true}}}',
        '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","s":"BTCUSDT","a":5,"p":"1.5",'
        '"q":"2","T":1,"m":false,"extra":1}}',
    ]
    base.append(base[1].replace('"x":true', '"x":false'))  # in progress: the feed's to handle
    chosen = data.draw(st.lists(st.sampled_from(base), min_size=1, max_size=6))
    with_reader: list[Any] = []
    index, message = take_items(chosen, 0, TS, None, with_reader)
    without: list[Any] = []
    for raw in chosen[:index]:
        item = parse_message(raw, TS).item
        without.append(item)
    assert [repr(i) for i in with_reader] == [repr(i) for i in without]
    if index < len(chosen):
        assert message is None or message == parse_message(chosen[index], TS)
        if '"x":false' in chosen[index]:
            assert message is not None  # the in-progress bar, for the feed's item_of


@needs_reader
def test_trade_ids_of_every_size_and_sign_are_their_decimal_text(fixtures: Path) -> None:
    """The reader writes an aggTrade's id as text itself (no format call): the same text as
    parse_message's for zero, signs, every length up to the 18 digits it reads."""
    trade = real(fixtures, "BINANCE.ws.1.0", '"e":"aggTrade"')
    ids = [0, 7, -7, 10, 99, 100, -(10**17), 10**17 - 1, 999_999_999_999_999_999]
    ids += [-999_999_999_999_999_999, 2**40, 123_456_789_012_345]
    for value in ids:
        raw = edit(trade, "data.a", value)
        assert same_or_none(raw), raw
        taken = FAST(raw, TS, None)  # type: ignore[misc]
        assert taken.trade_id == str(value)
    assert not same_or_none(edit(trade, "data.a", 10**18))  # 19 digits: the usual path


@needs_reader
def test_symbols_past_the_readers_text_table_read_the_same(fixtures: Path) -> None:
    """The reader remembers the str it made for a venue symbol or interval (a table of 256);
    more symbols than that, and texts too long for it, are made afresh: the same items."""
    trade = real(fixtures, "BINANCE.ws.1.0", '"e":"aggTrade"')
    venues = [f"S{i:03d}USDT" for i in range(400)] + ["A" * 23 + "USDT", "B" * 40 + "USDT"]
    for _ in range(2):  # the second pass finds them remembered (or not, past the table)
        for venue in venues:
            raw = edit(trade, "data.s", venue)
            assert same_or_none(raw), raw
            assert same_or_none(raw, {venue: "MAPPED/SYM"}), raw
