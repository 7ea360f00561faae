"""Kraken order books through the real feed, the engine and the loopback Kraken server.

Real data (tests/fixtures/PROVENANCE.md): cryptofeed's recorded Kraken WS v1 session
(``KRAKEN.ws.50.0``, ``book-1000`` of 10 pairs, every update with its CRC32 ``c``).
``KrakenBookFeed`` talks to ``KrakenLoopbackServer`` on 127.0.0.1, which replays the
recorded messages and answers a re-subscribe with a snapshot *derived* from an unfaulted
replay where its replay reached. The expected books are an offline replay of the same
messages through a ``BookKeeper`` with Kraken's checksum rule (depth 1000).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from websockets.asyncio.client import connect

from lean_data import Config, DataEngine
from lean_data.book import BookLevel, OrderBookSnapshot
from lean_data.depth import KrakenChecksumSequencer, OrderBook
from lean_data.feeds.backoff import BackoffPolicy
from lean_data.feeds.kraken import KrakenBookFeed
from lean_data.quality.levels import DataQualityLevel
from lean_data.testing import KrakenLoopbackServer
from lean_data.wire.kraken_book import parse_book_message
from tests.conftest import eventually
from tests.depth_helpers import FIXTURES, frozen_state, keeper_for, kraken_messages

CAPTURE = FIXTURES / "cryptofeed" / "KRAKEN.ws.50.0"
FAST = BackoffPolicy(base_s=0.01, cap_s=0.04, multiplier=2.0)
INVALID = DataQualityLevel.INVALID
PAIRS = {"BTC/CHF": "XBT/CHF", "XMR/USD": "XMR/USD"}  # symbol -> Kraken pair
State = tuple[list[BookLevel], list[BookLevel], int, bool]


@dataclass
class Truth:
    """The offline replay of one pair: its state after each of its messages."""

    indices: list[int]  # the message indices (among the capture's book messages)
    states: list[State]
    checksums: list[int | None]
    decimals: tuple[int, int] = (-1, -1)  # price, volume: as on the wire

    @property
    def final(self) -> State:
        return self.states[-1]


def truth(symbol: str) -> Truth:
    _, parsed = kraken_messages()
    found = Truth([], [], [])
    keeper = None
    for index, message in enumerate(parsed):
        if message.record.symbol != symbol:
            continue
        if keeper is None:
            found.decimals = (message.price_decimals, message.size_decimals)
            keeper = keeper_for(KrakenChecksumSequencer(*found.decimals, 1000), symbol, 1000)
        record = message.record
        if isinstance(record, OrderBookSnapshot):
            keeper.on_snapshot(record)
            found.checksums.append(None)
        else:
            assert keeper.on_delta(record).verdict.is_valid
            found.checksums.append(record.checksum)
        found.indices.append(index)
        found.states.append(frozen_state(keeper.book))
    assert keeper is not None
    assert keeper.book.valid
    return found


@dataclass
class Run:
    seen: dict[str, list[tuple[DataQualityLevel, str, State]]]
    metrics: dict[str, Any]
    feed: KrakenBookFeed


async def run(server: KrakenLoopbackServer, expected: dict[str, Truth]) -> Run:
    seen: dict[str, list[tuple[DataQualityLevel, str, State]]] = {s: [] for s in expected}

    def on_book(symbol: str, book: OrderBook, level: DataQualityLevel) -> None:
        seen[symbol].append((level, book.invalid_reason, frozen_state(book)))

    feed = KrakenBookFeed("kraken", ws_url=server.ws_url, backoff=FAST, rng=lambda: 1.0)
    engine = DataEngine(Config(db_path=None))
    engine.add_feed(feed)
    engine.add_book_callback(on_book)
    async with engine:
        for symbol in expected:
            await engine.subscribe_symbol(symbol, data=("book",))

        def done() -> bool:
            books = [engine.get_book(symbol) for symbol in expected]
            return all(
                book is not None and frozen_state(book) == expected[book.symbol].final
                for book in books
            )

        await eventually(done, timeout=30, message="the books never reached the replay's end")
        await engine.wait_idle()
        return Run(seen, engine.get_metrics(), feed)


def valid_runs(seen: list[tuple[DataQualityLevel, str, State]], expected: Truth) -> None:
    """Every valid state a callback saw is the offline replay's, message after message: each
    run of valid states starts at a (recorded or derived) snapshot and follows the replay
    without a hole. Every state whose ``valid`` is False is flagged INVALID with a reason."""
    position = None
    for level, reason, state in seen:
        if not state[3]:
            assert level is INVALID
            assert reason
            position = None
            continue
        assert level is not INVALID
        if position is None:
            position = expected.states.index(state)
        else:
            position += 1
            assert state == expected.states[position]
    assert seen[-1][2] == expected.final


async def test_two_pairs_unfaulted_every_checksum_verifies_and_books_equal_the_replay() -> None:
    expected = {symbol: truth(symbol) for symbol in PAIRS}
    async with KrakenLoopbackServer(CAPTURE) as server:
        result = await run(server, expected)
    for symbol, seen in result.seen.items():
        assert [level for level, _, _ in seen if level is INVALID] == []
        valid_runs(seen, expected[symbol])
    books = result.metrics["books"]
    assert books["invalid"] == 0
    assert result.metrics["engine"]["errors_by_kind"].get("book_checksum", 0) == 0
    assert result.feed.malformed_frames == result.feed.errors == 0
    assert result.feed.decimals == {symbol: expected[symbol].decimals for symbol in PAIRS}
    subscribes = [m for m in server.received if m.get("event") == "subscribe"]
    assert sorted(p for m in subscribes for p in m["pair"]) == sorted(PAIRS.values())
    assert all(m["subscription"] == {"name": "book", "depth": 1000} for m in subscribes)


async def test_a_corrupted_checksum_is_told_invalid_at_that_message_then_resynced() -> None:
    expected = {symbol: truth(symbol) for symbol in PAIRS}
    xmr = expected["XMR/USD"]
    at = len(xmr.indices) // 2  # an update in the middle of XMR/USD's messages
    index, recorded = xmr.indices[at], xmr.checksums[at]
    assert recorded is not None
    async with KrakenLoopbackServer(CAPTURE) as server:
        server.faults.corrupt_checksum = {index}
        result = await run(server, expected)
    seen = result.seen["XMR/USD"]
    invalid = [(number, entry) for number, entry in enumerate(seen) if entry[0] is INVALID]
    assert len(invalid) == 1
    number, (_, reason, state) = invalid[0]
    wrong = (recorded + 1) % 2**32
    assert reason.startswith("book_checksum: ")
    assert f"expected checksum {wrong} from the venue, computed {recorded}" in reason
    # at that message: the book holds exactly the replay's levels after it, flagged invalid
    assert state == (*xmr.states[at][:3], False)
    assert seen[number - 1][2] == xmr.states[at - 1]  # the message before it was fine
    # re-synced from a derived snapshot on the same socket, and equal to the replay at the end
    requests = [(m["event"], m["pair"]) for m in server.received if m.get("pair")]
    assert requests.count(("unsubscribe", ["XMR/USD"])) == 1
    # one derived snapshot of XMR/USD after the fault (one before it, if the subscribe came
    # after the replay passed the recorded snapshot, is not the re-sync)
    assert [pair for pair, cursor in server.derived if cursor > index] == ["XMR/USD"]
    assert server.connections == 1
    assert result.feed.errors == 0  # the unsubscribe and the subscribe were accepted
    assert result.metrics["books"]["resyncs"] == 1
    assert result.metrics["engine"]["errors_by_kind"]["book_checksum"] == 1
    for symbol, pair_seen in result.seen.items():
        valid_runs(pair_seen, expected[symbol])  # no invalid state reached a callback unflagged
    assert [level for level, _, _ in result.seen["BTC/CHF"] if level is INVALID] == []


async def test_after_a_reconnect_books_are_resubscribed_from_derived_snapshots() -> None:
    expected = {symbol: truth(symbol) for symbol in PAIRS}
    async with KrakenLoopbackServer(CAPTURE, resume=True) as server:
        server.faults.drop_after = 300  # each connection is cut after 300 book messages
        result = await run(server, expected)
    assert server.connections >= 2
    subscribes = [m["pair"] for m in server.received if m.get("event") == "subscribe"]
    assert subscribes[-1] == list(PAIRS.values())  # both books at once on a new connection
    assert len(server.derived) >= 2
    for symbol, seen in result.seen.items():
        valid_runs(seen, expected[symbol])
        assert all("feed_down" in reason for level, reason, _ in seen if level is INVALID)


async def test_the_server_derives_a_snapshot_in_krakens_format() -> None:
    """Subscribe, read XMR/USD to the end, re-subscribe: the snapshot sent is the offline
    replay's final book (top 1000), with the pair's decimals as recorded."""
    expected = truth("XMR/USD")
    raws, _ = kraken_messages()
    recorded = orjson.loads(next(r for r in raws if '"XMR/USD"' in r and '"as"' in r))
    request = {"pair": ["XMR/USD"], "subscription": {"name": "book", "depth": 1000}}
    async with KrakenLoopbackServer(CAPTURE) as server, connect(server.ws_url) as ws:
        assert orjson.loads(await ws.recv())["event"] == "systemStatus"
        await ws.send(orjson.dumps({"event": "subscribe", **request}).decode())
        frames = []
        while (frame := orjson.loads(await ws.recv())) != {"event": "heartbeat"}:
            frames.append(frame)
        await ws.send(orjson.dumps({"event": "unsubscribe", **request}).decode())
        await ws.send(orjson.dumps({"event": "subscribe", **request}).decode())
        replies = [orjson.loads(await ws.recv()) for _ in range(3)]
    assert frames[0]["status"] == "subscribed"
    assert frames[0]["channelID"] == recorded[0]
    assert frames[1] == recorded  # the recorded snapshot, as sent
    assert len(frames) - 1 == len(expected.states)
    assert [r.get("status") for r in replies[:2]] == ["unsubscribed", "subscribed"]
    derived = replies[2]
    assert derived[0] == recorded[0]
    assert derived[2:] == ["book-1000", "XMR/USD"]
    parsed = parse_book_message(derived, 0)
    assert parsed is not None
    assert isinstance(parsed.record, OrderBookSnapshot)
    assert (parsed.price_decimals, parsed.size_decimals) == expected.decimals == (8, 8)
    book = OrderBook("XMR/USD")
    book.load(parsed.record)
    assert frozen_state(book) == expected.final
    assert server.derived == [("XMR/USD", len(server.timeline))]


async def test_a_malformed_frame_is_reported_and_skipped() -> None:
    expected = {"XMR/USD": truth("XMR/USD")}
    xmr = expected["XMR/USD"]
    async with KrakenLoopbackServer(CAPTURE) as server:
        server.faults.malformed_before = {xmr.indices[len(xmr.indices) // 2]}
        result = await run(server, expected)
    assert result.feed.malformed_frames == 1
    assert result.feed.last_error.startswith("malformed_frame: expected JSON")
    assert [level for level, _, _ in result.seen["XMR/USD"] if level is INVALID] == []
    valid_runs(result.seen["XMR/USD"], xmr)
