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


# --- the reader's scanning: strings and digits eight bytes at a time ------------------------
#
# The reader finds a string's closing quote and reads a run of digits a word at a time, and
# stops at the NUL after the frame's last byte rather than comparing with its end: the edges
# below are those of that scanning (a character at every place in a word, a frame ending
# anywhere), each checked against parse_message.


def _agg_trade_text(fixtures: Path) -> str:
    return json.dumps(real(fixtures, "BINANCE.ws.1.0", '"e":"aggTrade"'), separators=(",", ":"))


def _kline_text(fixtures: Path) -> str:
    return closed(
        json.dumps(real(fixtures, "BINANCE_US.ws.1.0", '"x":true'), separators=(",", ":"))
    )


def _with_value(raw: str, key: str, text: str) -> str:
    """``raw`` with the value of its one ``"key":`` replaced by the raw JSON ``text``."""
    at = raw.index(f'"{key}":') + len(key) + 3
    end = at
    if raw[at] == '"':
        end = raw.index('"', at + 1) + 1
    else:
        while raw[end] not in ",}":
            end += 1
    return raw[:at] + text + raw[end:]


def _both(raw: str) -> list[bytes | str]:
    return [raw, raw.encode()]


@needs_reader
@pytest.mark.parametrize(("which", "key"), [("kline", "B"), ("kline", "i"), ("aggTrade", "s")])
def test_strings_of_every_length_with_a_character_it_leaves_at_every_place(
    fixtures: Path, which: str, key: str
) -> None:
    """A plain string of any length is read to its closing quote; an escape, a control
    character, DEL or a character past ASCII anywhere in it leaves the frame to the usual
    path (a word-at-a-time scan must find the first of them, wherever it falls)."""
    base = _kline_text(fixtures) if which == "kline" else _agg_trade_text(fixtures)
    specials = ['\\"', "\\\\", "\\u0041", "\\n", "\x00", "\x01", "\x1f", "\x7f", "\u00e9"]
    for length in range(26):
        plain = "".join("ABCDEFGHJKLMNPQRSTUVWXYZ"[i % 24] for i in range(length))
        if key == "s":
            plain = "X" + plain + "USDT"  # a symbol the usual path can map
        raw = _with_value(base, key, f'"{plain}"')
        for frame in _both(raw):
            taken = same_or_none(frame)
            assert taken or key == "i", frame  # an interval: only the known ones
        for at in range(len(plain) + 1):
            for special in specials:
                raw = _with_value(base, key, '"' + plain[:at] + special + plain[at:] + '"')
                for frame in _both(raw):
                    assert FAST is not None
                    assert FAST(frame, TS, None) is None, frame
        for at in range(len(plain) + 1):  # raw bytes past ASCII, in a bytes frame
            for byte in (b"\x80", b"\xc3\xa9", b"\xff"):
                text = plain.encode()
                raw_bytes = _with_value(base, key, "@@").encode()
                frame_bytes = raw_bytes.replace(b"@@", b'"' + text[:at] + byte + text[at:] + b'"')
                assert FAST is not None
                assert FAST(frame_bytes, TS, None) is None, frame_bytes


@needs_reader
@pytest.mark.parametrize("key", ["E", "a", "f", "l", "T"])
def test_integers_of_every_length_and_spelling(fixtures: Path, key: str) -> None:
    """Integers are read eight digits at a time: every length up to the 18 digits the
    reader takes reads the same as parse_message's; more, leading zeros, fractions and
    exponents are left to the usual path."""
    base = _agg_trade_text(fixtures)
    digits = "9876543210123456789012345"
    for length in range(1, len(digits) + 1):
        for sign in ("", "-"):
            text = sign + digits[:length]
            for frame in _both(_with_value(base, key, text)):
                taken = same_or_none(frame)
                fits = key != "T" or abs(int(text)) <= (2**63 - 1) // 10**6  # T: in ns
                assert taken == (length <= 18 and fits), frame
    spellings = [
        "0", "-0", "00", "01", "-01", "0" * 12 + "1", "-", "--1", "+1", "1e5", "1E5", "1.0",
        "1.", "1-", "12345678e1", "123456789.5", "1234567890123456789",
    ]  # fmt: skip
    for text in spellings:
        for frame in _both(_with_value(base, key, text)):
            taken = same_or_none(frame)
            assert taken == (text in ("0", "-0")), frame


@needs_reader
def test_a_negative_zero_trade_id_is_zero(fixtures: Path) -> None:
    raw = _with_value(_agg_trade_text(fixtures), "a", "-0")
    assert same_or_none(raw)
    assert FAST is not None
    assert FAST(raw, TS, None).trade_id == "0"


@needs_reader
@pytest.mark.parametrize("key", ["p", "q"])
def test_decimal_spellings_at_the_edges_of_the_exact_reading(fixtures: Path, key: str) -> None:
    """Prices are read as digits and a point's place while scanning; where those are exact
    (at most 2^53, at most 22 after the point) the float is their quotient, else CPython's
    parser's: both exactly float(text). Other spellings are left to the usual path."""
    base = _agg_trade_text(fixtures)
    taken_texts = [
        "9007199254740992", "9007199254740993", "9007199254740991", "900719925474099.3",
        "0.9007199254740993", "18014398509481985", "1234567890123456789",
        "12345678901234567890", "0." + "0" * 21 + "1", "0." + "0" * 22 + "1",
        "1." + "0" * 22, "1." + "0" * 23, "0" * 30 + "1.5", "-0", "-0.0", "0.1", "0.3",
        "123456789012345678901234567890.123456789012345678901234567890",  # 61 characters
        "9" * 63, "-" + "9" * 62, "4.35", "1" * 8, "1" * 8 + "." + "1" * 8, "1" * 7 + ".1",
    ]  # fmt: skip
    for text in taken_texts:
        for frame in _both(_with_value(base, key, f'"{text}"')):
            assert same_or_none(frame), frame
            assert FAST is not None
            tick = FAST(frame, TS, None)
            assert repr(tick.price if key == "p" else tick.size) == repr(float(text)), text
    left = [
        "9" * 64, "-" + "9" * 63, "1e5", "1E5", "1.5e-3", "+1", ".5", "5.", "1..5", "1.2.3",
        "--1", "1-", "1_000", " 1", "1 ", "", "-", "-.5", "0x10", "inf", "nan", "1.5a",
        "12345678a", "1234567.a", "\\u0031",
    ]  # fmt: skip
    for text in left:
        for frame in _both(_with_value(base, key, f'"{text}"')):
            assert FAST is not None
            assert FAST(frame, TS, None) is None, frame


@needs_reader
@pytest.mark.parametrize("name", FIXTURE_CAPTURES)
def test_every_cut_of_real_frames_as_text_and_bytes_is_left(fixtures: Path, name: str) -> None:
    """A frame ending anywhere (so the scans meet its end at every place in a word) is
    left to the usual path, as str and as bytes; so is one with bytes after its end."""
    chosen = [
        closed(raw)
        for _, raw in frames(fixtures / "cryptofeed" / name)
        if '"e":"kline"' in raw or '"e":"aggTrade"' in raw
    ][:4]
    assert chosen
    assert FAST is not None
    for raw in chosen:
        assert same_or_none(raw)
        encoded = raw.encode()
        for end in range(len(raw)):
            assert FAST(raw[:end], TS, None) is None
            assert FAST(encoded[:end], TS, None) is None
        for tail in (b"\x00", b" ", b"\x00}", b"}"):
            assert FAST(encoded + tail, TS, None) is None
        assert FAST(raw + "\x00", TS, None) is None


@needs_reader
@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FIXTURE_CAPTURES), st.data())
def test_byte_level_mutations_of_real_klines_and_trades_are_taken_the_same_or_left(
    name: str, data: st.DataObject
) -> None:
    received = [
        closed(raw) if data.draw(st.booleans()) else raw
        for _, raw in frames(Path(__file__).parent / "fixtures" / "cryptofeed" / name)
        if '"e":"kline"' in raw or '"e":"aggTrade"' in raw
    ]
    raw = bytearray(data.draw(st.sampled_from(received)).encode())
    alphabet = st.sampled_from(list(b'0123456789-."{}\\,:etfaxk \x00\x7f\x80'))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw)))
        how = data.draw(st.integers(0, 2))
        if how == 0 and at < len(raw):
            del raw[at]
        elif how == 1 and at < len(raw):
            raw[at] = data.draw(alphabet)
        else:
            raw[at:at] = bytes(data.draw(st.lists(alphabet, min_size=1, max_size=3)))
    frame = bytes(raw)
    try:
        same_or_none(frame)
        if frame.isascii():
            same_or_none(frame.decode())
    except FeedProtocolError:  # parse_message refused what the reader took
        pytest.fail(f"the reader took a frame parse_message refuses: {frame!r}")
