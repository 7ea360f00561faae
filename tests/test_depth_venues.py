"""Bybit v5 and Kraken v1 books on real captures.

- Bybit: nautilus' raw ``orderbook.500.XRPUSDT`` messages (1 snapshot + 49 deltas, ``u``
  contiguous) all apply, and the book equals an independent rebuild from the raw JSON with
  ``Decimal`` keys.
- Kraken: every one of the 4,269 update messages of cryptofeed's ``KRAKEN.ws.50.0``
  (book-1000, 10 pairs) carries a CRC32 ``c``, and every one verifies; an independent
  string-only rebuild (no floats at all) computes the same checksums.
"""

from __future__ import annotations

import json
import zlib
from decimal import Decimal

import pytest

from lean_data.book import BookLevel, OrderBookDelta, OrderBookSnapshot
from lean_data.depth import Action, BybitSequencer, KrakenChecksumSequencer
from lean_data.errors import FeedProtocolError
from lean_data.wire.bybit import parse_orderbook_message
from lean_data.wire.kraken_book import parse_book_message
from tests.depth_helpers import bybit_messages, bybit_raw_lines, keeper_for, kraken_messages


def test_bybit_snapshot_and_49_deltas_apply_in_sequence() -> None:
    messages = bybit_messages()
    assert isinstance(messages[0], OrderBookSnapshot)
    assert all(isinstance(m, OrderBookDelta) for m in messages[1:])
    assert [m.last_sequence for m in messages[1:]] == list(range(20254870, 20254919))
    keeper = keeper_for(BybitSequencer(), "XRP/USDT")
    assert keeper.on_snapshot(messages[0]).action is Action.APPLY
    decisions = [keeper.on_delta(m) for m in messages[1:] if isinstance(m, OrderBookDelta)]
    assert [d.action for d in decisions] == [Action.APPLY] * 49
    book = keeper.book
    assert book.valid
    assert book.sequence == 20254918
    assert book.best_bid == BookLevel(1.9537, 10605.0)
    assert book.best_ask == BookLevel(1.9538, 6702.0)

    # independent rebuild: raw JSON, Decimal keys, no lean_data code
    sides: dict[str, dict[Decimal, str]] = {"b": {}, "a": {}}
    for line in bybit_raw_lines():
        data = json.loads(line)["data"]
        if json.loads(line)["type"] == "snapshot":
            sides = {"b": {}, "a": {}}
        for key in "ba":
            for price, size in data[key]:
                if Decimal(size) == 0:
                    sides[key].pop(Decimal(price), None)
                else:
                    sides[key][Decimal(price)] = size
    bids = [BookLevel(float(p), float(sides["b"][p])) for p in sorted(sides["b"], reverse=True)]
    asks = [BookLevel(float(p), float(sides["a"][p])) for p in sorted(sides["a"])]
    assert book.bids() == bids
    assert book.asks() == asks
    assert book.depth == (500, 500)


def test_bybit_u_equal_1_is_a_snapshot_and_a_gap_names_the_ids() -> None:
    lines = bybit_raw_lines()
    restarted = json.loads(lines[5])
    restarted["data"]["u"] = 1
    record = parse_orderbook_message(json.dumps(restarted), 0)
    assert isinstance(record, OrderBookSnapshot)
    assert record.sequence == 1
    messages = bybit_messages()
    keeper = keeper_for(BybitSequencer(), "XRP/USDT")
    keeper.on_snapshot(messages[0])  # type: ignore[arg-type]  # checked above: a snapshot
    skipped = messages[2]
    assert isinstance(skipped, OrderBookDelta)
    decision = keeper.on_delta(skipped)
    assert decision.action is Action.GAP
    assert decision.message == "expected u=20254870, got u=20254871"
    with pytest.raises(FeedProtocolError, match=r"message\.type: expected 'snapshot' or 'delta'"):
        parse_orderbook_message('{"type":"x","data":{}}', 0)


def _string_checksum(
    asks: dict[Decimal, tuple[str, str]], bids: dict[Decimal, tuple[str, str]]
) -> int:
    text = ""
    for side, reverse in ((asks, False), (bids, True)):
        for price in sorted(side, reverse=reverse)[:10]:
            for value in side[price]:
                text += value.replace(".", "").lstrip("0")
    return zlib.crc32(text.encode())


def test_kraken_checksums_verify_on_every_message_of_the_capture() -> None:
    raws, parsed = kraken_messages()
    keepers = {}
    checked = 0
    independent: dict[str, tuple[dict[Decimal, tuple[str, str]], ...]] = {}
    for raw, message in zip(raws, parsed, strict=True):
        frame = json.loads(raw)
        pair = message.pair
        if isinstance(message.record, OrderBookSnapshot):
            sequencer = KrakenChecksumSequencer(message.price_decimals, message.size_decimals)
            keepers[pair] = keeper_for(sequencer, message.record.symbol, max_depth=1000)
            assert keepers[pair].on_snapshot(message.record).action is Action.APPLY
            asks = {Decimal(p): (p, v) for p, v, *_ in frame[1]["as"]}
            bids = {Decimal(p): (p, v) for p, v, *_ in frame[1]["bs"]}
            independent[pair] = (asks, bids)
            continue
        decision = keepers[pair].on_delta(message.record)
        assert decision.action is Action.APPLY, (pair, checked, decision)
        asks, bids = independent[pair]
        for part in frame[1:-2]:
            for key, side in (("a", asks), ("b", bids)):
                for price, volume, *_ in part.get(key, ()):
                    if Decimal(volume) == 0:
                        side.pop(Decimal(price), None)
                    else:
                        side[Decimal(price)] = (price, volume)
            if "c" in part:
                assert _string_checksum(asks, bids) == int(part["c"]), (pair, checked)
        assert message.record.checksum is not None
        checked += 1
    assert checked == 4269
    assert len(keepers) == 10
    print(f"Kraken v1: {checked}/{checked} checksums verified (10 pairs, book-1000)")


def test_kraken_parser_reads_both_sides_and_the_checksum() -> None:
    raw = (
        '[992,{"a":[["354.80000000","1.40000000","1618678133.020508"]]},'
        '{"b":[["354.15000000","5.00000000","1618678133.365913","r"]],"c":"2583817756"},'
        '"book-1000","XMR/USD"]'
    )
    message = parse_book_message(raw, 5)
    assert message is not None
    assert message.record == OrderBookDelta(
        "XMR/USD", (BookLevel(354.15, 5.0),), (BookLevel(354.8, 1.4),), -1, -1, -1,
        2583817756, 1618678133365913000, 5,
    )  # fmt: skip
    assert (message.price_decimals, message.size_decimals) == (8, 8)
    assert parse_book_message('{"event":"heartbeat"}', 0) is None
    with pytest.raises(FeedProtocolError, match=r"book\[2\]\.c: expected an unsigned 32-bit"):
        parse_book_message(raw.replace('"2583817756"', '"-1"'), 0)
