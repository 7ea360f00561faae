"""Binance order books through the real feeds, the engine and the loopback servers.

Real data (tests/fixtures/PROVENANCE.md): cryptofeed's recorded Binance spot session
(``BINANCE.ws.1.0``, NKNUSDT ``depthUpdate`` frames) with its recorded REST depth snapshot
(``BINANCE.http.0.0``), and the USD-M one (``BINANCE_FUTURES.ws.1.0`` + ``.http.0.0``,
SUSHIUSDT). ``BinanceDataFeed`` / ``BinanceFuturesFeed`` talk to
``BinanceLoopbackServer`` / ``BinanceFuturesLoopbackServer`` on 127.0.0.1, which replay the
frames and serve the recorded snapshot; a re-sync is answered with a snapshot *derived*
from an unfaulted replay at the point the server reached. The expected books are an
unfaulted replay of the same capture through a ``BookKeeper``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest

from lean_data import Config, DataEngine
from lean_data.book import BookLevel, OrderBookDelta, OrderBookSnapshot
from lean_data.depth import BinanceFuturesSequencer, BinanceSpotSequencer, OrderBook, Sequencer
from lean_data.feeds.backoff import BackoffPolicy
from lean_data.feeds.binance import BinanceDataFeed
from lean_data.feeds.binance_futures import BinanceFuturesFeed
from lean_data.models import Tick
from lean_data.quality.levels import DataQualityLevel
from lean_data.testing import BinanceFuturesLoopbackServer, BinanceLoopbackServer
from lean_data.testing._binance_depth import recorded_depth
from lean_data.wire.depth_binance import parse_depth_snapshot
from tests.conftest import eventually
from tests.depth_helpers import FIXTURES, binance_session, frozen_state, keeper_for

SESSION = FIXTURES / "cryptofeed"
FAST = BackoffPolicy(base_s=0.01, cap_s=0.04, multiplier=2.0)
INVALID = DataQualityLevel.INVALID
State = tuple[list[BookLevel], list[BookLevel], int, bool]


@dataclass(frozen=True)
class Venue:
    """One Binance market of the corpus: its capture, symbols and rules."""

    name: str
    capture: str
    symbol: str  # what the user subscribes
    parsed: str  # the symbol the capture parses to
    sequencer: type[Sequencer]
    depth_path: str
    gap_reason: str  # what a missing or late update is told with

    def server(self, **options: Any) -> BinanceLoopbackServer:
        kind = BinanceFuturesLoopbackServer if "FUTURES" in self.capture else BinanceLoopbackServer
        ws, http = SESSION / f"{self.capture}.ws.1.0", SESSION / f"{self.capture}.http.0.0"
        return kind(ws, depth=http, **options)

    def feed(self, server: BinanceLoopbackServer) -> BinanceDataFeed:
        kind = BinanceFuturesFeed if "FUTURES" in self.capture else BinanceDataFeed
        channels = ("kline", "book_ticker")
        return kind(
            self.name, ws_url=server.ws_url, rest_url=server.rest_url, channels=channels,
            backoff=FAST, rng=lambda: 1.0,
        )  # fmt: skip


SPOT = Venue(
    "binance", "BINANCE", "NKN/USDT", "NKN/USDT", BinanceSpotSequencer, "/api/v3/depth",
    "expected U=",
)  # fmt: skip
FUTURES = Venue(
    "binance_futures", "BINANCE_FUTURES", "SUSHI/USDT:USDT", "SUSHI/USDT",
    BinanceFuturesSequencer, "/fapi/v1/depth", "expected pu=",
)  # fmt: skip
VENUES = pytest.mark.parametrize("venue", [SPOT, FUTURES], ids=["spot", "futures"])


@dataclass
class Truth:
    """The unfaulted replay: the book's state at every update id it reached."""

    deltas: list[OrderBookDelta]
    states: dict[int, State]
    final: State
    tops: dict[int, tuple[BookLevel, BookLevel]]  # the capture's bookTicker, by update id

    def applied(self, index_from: int) -> OrderBookDelta:
        """The first delta at or after ``index_from`` that the replay applied."""
        return next(d for d in self.deltas[index_from:] if d.last_sequence in self.states)


def truth(venue: Venue) -> Truth:
    session = binance_session(
        SESSION / f"{venue.capture}.ws.1.0", SESSION / f"{venue.capture}.http.0.0"
    )
    keeper = keeper_for(venue.sequencer(), venue.parsed)
    keeper.on_snapshot(session.snapshots[venue.parsed])
    book = keeper.book
    states = {book.sequence: frozen_state(book)}
    deltas = session.deltas(venue.parsed)
    for delta in deltas:
        keeper.on_delta(delta)
        states[book.sequence] = frozen_state(book)
    assert book.valid
    tops = {t.update_id: (t.bid, t.ask) for t in session.tops() if t.symbol == venue.parsed}
    return Truth(deltas, states, frozen_state(book), tops)


@dataclass
class Run:
    seen: list[tuple[DataQualityLevel, bool, str, State]]
    data: list[Any]
    final: State
    metrics: dict[str, Any]
    feed: BinanceDataFeed

    def invalid(self) -> list[str]:
        return [reason for level, _, reason, _ in self.seen if level is INVALID]


async def run(
    venue: Venue,
    server: BinanceLoopbackServer,
    expected: Truth,
    until: Callable[[], bool] = lambda: True,
    wanted: tuple[str, ...] = ("bars", "book"),
) -> Run:
    seen: list[tuple[DataQualityLevel, bool, str, State]] = []
    data: list[Any] = []

    def on_book(symbol: str, book: OrderBook, level: DataQualityLevel) -> None:
        seen.append((level, book.valid, book.invalid_reason, frozen_state(book)))

    feed = venue.feed(server)
    engine = DataEngine(Config(db_path=None))
    engine.add_feed(feed)
    engine.add_book_callback(on_book)
    engine.add_data_callback(lambda symbol, item, quality: data.append(item))
    async with engine:
        await engine.subscribe_symbol(venue.symbol, data=wanted)

        def done() -> bool:
            book = engine.get_book(venue.symbol)
            return book is not None and frozen_state(book) == expected.final and until()

        await eventually(done, message="the kept book never reached the replay's final state")
        if "bars" in wanted:
            await a_quote_reaches_data_callbacks(server, venue, data)
        await engine.wait_idle()
        book = engine.get_book(venue.symbol)
        assert book is not None
        return Run(seen, data, frozen_state(book), engine.get_metrics(), feed)


async def a_quote_reaches_data_callbacks(
    server: BinanceLoopbackServer, venue: Venue, data: list[Any]
) -> None:
    """Re-send the capture's last bookTicker of the symbol and wait for its quote tick, so
    that "data callbacks see no book record" is not said of an empty list."""
    stream = venue.symbol.partition(":")[0].replace("/", "").lower() + "@bookTicker"
    last = [wrapped for name, wrapped in server.frames if name == stream][-1]
    await eventually(lambda: any(stream in session.streams for session in server._sessions))
    server.push(stream, orjson.loads(last)["data"])
    await eventually(lambda: any(isinstance(item, Tick) for item in data))


def check_every_callback(result: Run, expected: Truth) -> None:
    """No invalid state unflagged; every valid one is the unfaulted replay's at its id."""
    assert result.seen
    for level, valid, reason, state in result.seen:
        if valid:
            assert level is not INVALID
            assert state == expected.states[state[2]]
        else:
            assert level is INVALID
            assert reason
    assert result.seen[-1][3] == expected.final
    assert not [
        item for item in result.data if isinstance(item, OrderBookDelta | OrderBookSnapshot)
    ]


def depth_requests(server: BinanceLoopbackServer, venue: Venue) -> list[int]:
    return [r.status for r in server.rest_requests if r.path == venue.depth_path]


@VENUES
async def test_the_kept_book_is_the_unfaulted_replay_and_matches_book_ticker(venue: Venue) -> None:
    expected = truth(venue)
    async with venue.server() as server:
        result = await run(venue, server, expected)
        requests = [r for r in server.rest_requests if r.path == venue.depth_path]
    assert result.final == expected.final
    check_every_callback(result, expected)
    assert result.invalid() == []
    assert result.metrics["books"]["invalid"] == 0
    # Binance's procedure: the stream subscribed on the open socket, then one snapshot
    stream = venue.symbol.partition(":")[0].replace("/", "").lower() + "@depth@100ms"
    assert any(stream in m.get("params", ()) for m in server.received if isinstance(m, dict))
    assert [(r.status, r.params.get("limit")) for r in requests] == [(200, "1000")]
    # the venue's own top agrees with the replay at every shared id, and with the kept book
    shared = [i for i in expected.tops if i in expected.states]
    assert len(shared) >= 10
    for update_id in shared:
        bids, asks, _, _ = expected.states[update_id]
        assert (bids[0], asks[0]) == expected.tops[update_id]
    for _, valid, _, (bids, asks, update_id, _) in result.seen:
        if valid and update_id in expected.tops:
            assert (bids[0], asks[0]) == expected.tops[update_id]


@VENUES
@pytest.mark.parametrize("fault", ["depth_drop", "depth_swap"])
async def test_a_lost_or_late_delta_is_told_invalid_once_then_resynced(
    venue: Venue, fault: str
) -> None:
    expected = truth(venue)
    target = expected.applied(len(expected.deltas) // 2)
    async with venue.server() as server:
        setattr(server.faults, fault, {target.last_sequence})
        result = await run(venue, server, expected)
        statuses = depth_requests(server, venue)
    invalid = result.invalid()
    assert len(invalid) == 1
    assert venue.gap_reason in invalid[0]
    assert result.final == expected.final
    check_every_callback(result, expected)
    assert statuses == [200, 200]  # the recorded snapshot, then a derived one
    assert result.metrics["books"]["resyncs"] == 1
    assert result.metrics["engine"]["errors_by_kind"]["book_gap"] == 1


@VENUES
async def test_a_crossed_update_is_told_invalid_once_then_resynced(venue: Venue) -> None:
    """The server adds a bid above every ask to one update: the book is crossed, INVALID
    once (``book_crossed``), re-synced from a snapshot the server derives, and ends equal
    to the unfaulted replay."""
    expected = truth(venue)
    target = expected.applied(len(expected.deltas) // 2)
    async with venue.server() as server:
        server.faults.depth_cross = {target.last_sequence}
        result = await run(venue, server, expected)
        statuses = depth_requests(server, venue)
    invalid = result.invalid()
    assert len(invalid) == 1
    assert "cross" in invalid[0]
    assert result.final == expected.final
    check_every_callback(result, expected)
    assert statuses == [200, 200]
    assert result.metrics["books"]["resyncs"] == 1
    assert result.metrics["engine"]["errors_by_kind"]["book_crossed"] == 1


@VENUES
async def test_a_stale_resync_snapshot_is_caught_and_asked_again(venue: Venue) -> None:
    expected = truth(venue)
    target = expected.applied(len(expected.deltas) // 2)
    async with venue.server() as server:
        server.faults.depth_drop = {target.last_sequence}
        server.faults.depth_stale_next = 1  # the re-sync gets the old recorded snapshot
        result = await run(venue, server, expected)
        statuses = depth_requests(server, venue)
    invalid = result.invalid()
    assert len(invalid) == 2  # the dropped delta, then the stale snapshot
    assert venue.gap_reason in invalid[0]
    assert "first update after the snapshot" in invalid[1]
    assert result.final == expected.final
    check_every_callback(result, expected)
    assert statuses == [200, 200, 200]
    assert result.metrics["books"]["resyncs"] == 2


@VENUES
async def test_a_rate_limited_snapshot_is_retried_after_retry_after(venue: Venue) -> None:
    expected = truth(venue)
    async with venue.server() as server:
        server.faults.depth_rate_limit_next = 1
        server.faults.retry_after = 1
        result = await run(venue, server, expected)
        statuses = depth_requests(server, venue)
    assert statuses == [429, 200]
    assert result.feed.request_retries == 1
    assert list(result.feed.retry_delays) == [1.0]  # the venue's Retry-After, not the backoff
    assert result.final == expected.final
    assert result.invalid() == []
    check_every_callback(result, expected)


async def test_a_malformed_depth_frame_is_reported_and_skipped() -> None:
    expected = truth(SPOT)
    async with SPOT.server() as server:
        bad = '{"e":"depthUpdate","E":1,"s":"NKNUSDT","U":"x","u":2,"b":[],"a":[]}'
        server.push("nknusdt@depth@100ms", bad)
        result = await run(SPOT, server, expected)
        await eventually(lambda: result.feed.malformed_frames == 1)
    assert "depthUpdate.U" in result.feed.last_error
    assert result.final == expected.final
    assert result.invalid() == []


@VENUES
async def test_after_a_reconnect_books_are_resubscribed_and_resynced(venue: Venue) -> None:
    expected = truth(venue)
    async with venue.server(resume=True) as server:
        server.faults.drop_after = 60  # each connection is cut after 60 data frames

        def reconnected() -> bool:  # and the feed sent a snapshot after a reconnect
            return server.connections >= 2 and len(depth_requests(server, venue)) >= 2

        result = await run(venue, server, expected, until=reconnected)
        statuses = depth_requests(server, venue)
        subscribes = [
            m for m in server.received
            if isinstance(m, dict) and any("@depth@100ms" in p for p in m.get("params", ()))
        ]  # fmt: skip
    assert server.connections >= 2
    assert len(subscribes) >= 2  # the depth stream again on every new connection
    assert len(statuses) >= 2  # a new snapshot after each reconnect ...
    assert set(statuses) == {200}
    assert result.final == expected.final
    check_every_callback(result, expected)


async def test_the_server_answers_the_recorded_snapshot_then_derived_ones() -> None:
    recorded = recorded_depth(SESSION / "BINANCE.http.0.0")
    async with SPOT.server() as server, aiohttp.ClientSession() as http:
        url = f"{server.rest_url}/api/v3/depth"
        answers = []
        for params in ({"symbol": "NKNUSDT", "limit": "1000"}, {"symbol": "NKNUSDT"}, {},
                       {"symbol": "NOPE"}):  # fmt: skip
            async with http.get(url, params=params) as response:
                answers.append((response.status, await response.text()))
    assert answers[0] == (200, recorded["NKNUSDT"])  # the recorded body, byte for byte
    first = parse_depth_snapshot(answers[0][1], "NKN/USDT", 0)
    derived = parse_depth_snapshot(answers[1][1], "NKN/USDT", 0)  # nothing replayed yet
    assert (derived.sequence, derived.bids, derived.asks) == (
        first.sequence,
        first.bids,
        first.asks,
    )
    assert answers[2][0] == 400
    assert orjson.loads(answers[2][1])["code"] == -1102
    assert orjson.loads(answers[3][1]) == {"code": -1121, "msg": "Invalid symbol."}
    assert server.depth.served == {"NKNUSDT": 2}


async def test_a_book_only_subscription_subscribes_only_the_depth_stream() -> None:
    expected = truth(SPOT)
    async with SPOT.server() as server:
        result = await run(SPOT, server, expected, wanted=("book",))
    subscribed = [m["params"] for m in server.received if m.get("method") == "SUBSCRIBE"]
    assert subscribed == [["nknusdt@depth@100ms"]]
    assert result.final == expected.final
    assert result.data == []
    check_every_callback(result, expected)
