"""CcxtDataFeed order books, funding rates and open interest, through ccxt's real classes.

Order books: ccxt's own ``OrderBook`` (``ccxt.pro.binance``'s ``order_book`` and
``handle_order_book_message``, the code ``watch_order_book`` runs) built from the real
Binance spot capture (``tests/fixtures/cryptofeed/BINANCE.http.0.0`` REST snapshots plus
the ``depthUpdate`` frames of ``BINANCE.ws.1.0``), converted at every update and compared
with lean_data's own BookKeeper replay of the same frames. End to end: ``watch_order_book``
of ccxt.pro's ``binance`` against the loopback Binance server replaying that capture.

Funding and open interest: ccxt's ``binanceusdm`` against the loopback futures server.
The open-interest readings are *derived* from freqtrade's real XRP/USDT:USDT candles, the
funding history is freqtrade's real funding rates, and the ``premiumIndex`` answers (what
ccxt's ``fetch_funding_rate`` calls) carry the real rate and time of the next real funding
(the mark prices of ``tests/test_binance_derivatives.py``), served by the loopback
futures server's ``/fapi/v1/premiumIndex``.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import ccxt.pro
import orjson
import pytest

from lean_data import Config, DataEngine
from lean_data.book import OrderBookSnapshot
from lean_data.depth import BinanceSpotSequencer, BookKeeper, OrderBook
from lean_data.derivatives import FundingRate, MarkPrice, OpenInterest
from lean_data.errors import ConfigError, FeedProtocolError
from lean_data.feeds.backoff import BackoffPolicy
from lean_data.feeds.ccxt_depth import CcxtBooks
from lean_data.feeds.ccxt_feed import CcxtDataFeed
from lean_data.loaders.capture import read_capture
from lean_data.testing import BinanceLoopbackServer
from lean_data.testing._binance_depth import recorded_depth
from lean_data.testing.binance_futures import BinanceFuturesLoopbackServer
from lean_data.wire.ccxt import (
    funding_history_of,
    funding_rate_of,
    open_interest_of,
    orderbook_to_snapshot,
)

from .conftest import FIXTURES, eventually
from .depth_helpers import binance_session
from .test_binance_derivatives import mark_prices, open_interest, real_funding
from .test_ccxt_feed import market, urls

CRYPTOFEED = FIXTURES / "cryptofeed"
SPOT_WS, SPOT_HTTP = CRYPTOFEED / "BINANCE.ws.1.0", CRYPTOFEED / "BINANCE.http.0.0"
SWAP = "XRP/USDT:USDT"
MS = 1_000_000
FAST = BackoffPolicy(base_s=0.01, cap_s=0.04)


# --- order books: conversion of ccxt's real books ------------------------------------------


def depth_frames() -> list[dict[str, Any]]:
    """The ``depthUpdate`` payloads of the real spot capture, in arrival order."""
    found = []
    for _, body in read_capture(SPOT_WS).received:
        data = orjson.loads(body).get("data", {})
        if data.get("e") == "depthUpdate":
            found.append(data)
    return found


def rest_snapshots() -> dict[str, dict[str, Any]]:
    """The recorded ``/api/v3/depth`` bodies by Binance symbol."""
    return {venue: orjson.loads(body) for venue, body in recorded_depth(SPOT_HTTP).items()}


async def test_ccxt_books_of_the_real_capture_convert_to_the_keepers_top_levels() -> None:
    """At every update lean_data's keeper applies, ccxt's book (built by ccxt's own code
    from the same REST snapshot and frames) converts to the keeper's top 20 levels a side,
    price and size, with the same update id."""
    session = binance_session(SPOT_WS, SPOT_HTTP)
    exchange = ccxt.pro.binance()
    compared: dict[str, int] = {}
    try:
        frames = depth_frames()
        for venue, body in rest_snapshots().items():
            symbol = next(s for s in session.snapshots if s.replace("/", "") == venue)
            snapshot = session.snapshots[symbol]
            keeper = BookKeeper(OrderBook(symbol), BinanceSpotSequencer())
            keeper.on_snapshot(snapshot)
            book = exchange.order_book(exchange.parse_order_book(body, symbol), 1000)
            book["nonce"] = body["lastUpdateId"]
            book["symbol"] = symbol
            deltas = iter(session.deltas(symbol))
            for frame in (f for f in frames if f["s"] == venue):
                delta = next(deltas)
                if keeper.on_delta(delta).action.name != "APPLY":
                    continue
                exchange.handle_order_book_message(None, frame, book)
                found = orderbook_to_snapshot(symbol, book.limit(), 20, 7)
                kept = keeper.book
                assert found == OrderBookSnapshot(
                    symbol,
                    tuple(tuple(level) for level in kept.bids(20)),
                    tuple(tuple(level) for level in kept.asks(20)),
                    kept.sequence,
                    frame["E"] * MS,
                    7,
                )
                compared[symbol] = compared.get(symbol, 0) + 1
    finally:
        await exchange.close()
    # every update applied after each recorded snapshot, of the four symbols
    assert set(compared) == set(session.snapshots)
    assert compared == {"NKN/USDT": 149, "BLZ/ETH": 9, "LRC/BTC": 13, "RUNE/EUR": 1}


def test_conversion_keeps_the_top_levels_and_defaults() -> None:
    book = {
        "symbol": "BTC/USDT",
        "bids": [[100.0, 1.0, 3], [99.5, 2], [99.0, 0.5]],  # a count as third item
        "asks": [[101.0, 1.5]],
        "timestamp": None,
        "nonce": None,
    }
    assert orderbook_to_snapshot("BTC/USDT", book, 2, 9) == OrderBookSnapshot(
        "BTC/USDT", ((100.0, 1.0), (99.5, 2.0)), ((101.0, 1.5),), -1, 9, 9
    )


BAD_BOOKS = [
    ({"bids": [[100.0, 1.0], ["x", 1.0]]},
     r"orderbook\.bids\[1\]: expected \[price, amount\] numbers, found \['x', 1\.0\]"),
    ({"asks": [[math.nan, 1.0]]},
     r"orderbook\.asks\[0\]: expected a finite price > 0 and a finite amount, found \[nan, 1\.0\]"),
    ({"asks": [[0.0, 1.0]]}, r"orderbook\.asks\[0\]: expected a finite price > 0"),
    ({"asks": [[1.0]]},
     r"orderbook\.asks\[0\]: expected \[price, amount\] numbers, found \[1\.0\]"),
    ({"bids": None}, r"orderbook\.bids: expected a list of levels, found NoneType"),
    ({"nonce": -3}, r"orderbook\.nonce: expected an int >= 0 or None, found -3"),
    ({"timestamp": "soon"},
     r"orderbook\.timestamp: expected ms since the epoch or None, found 'soon'"),
    ({"symbol": "ETH/USDT"}, r"orderbook\.symbol: expected 'BTC/USDT', found 'ETH/USDT'"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "message"), BAD_BOOKS)
def test_malformed_books_name_the_field(change: dict[str, Any], message: str) -> None:
    book = {"symbol": "BTC/USDT", "bids": [[100.0, 1.0]], "asks": [[101.0, 1.0]], "nonce": 5}
    with pytest.raises(FeedProtocolError, match=message):
        orderbook_to_snapshot("BTC/USDT", book | change, 20, 0)
    with pytest.raises(
        FeedProtocolError, match=r"orderbook: expected a ccxt order book \(dict\), found list"
    ):
        orderbook_to_snapshot("BTC/USDT", [], 20, 0)  # fmt: skip


async def test_conflation_keeps_the_latest_and_counts_what_it_skipped() -> None:
    """While the engine's queue holds the delivery loop, newer books replace the waiting one."""
    sent: list[OrderBookSnapshot] = []
    gate = asyncio.Event()

    async def emit(item: Any) -> None:
        await gate.wait()
        sent.append(item)

    books = CcxtBooks("binance", 20, None, emit, lambda s, n: None, lambda *a, **k: None)
    states = [
        OrderBookSnapshot("BTC/USDT", ((100.0 - i, 1.0),), ((101.0, 1.0),), i, 1, 1)
        for i in range(6)
    ]
    deliver = asyncio.ensure_future(books._deliver("BTC/USDT"))
    try:
        books.offer(states[0])
        await eventually(lambda: "BTC/USDT" not in books._slot)  # taken, blocked in emit
        for state in states[1:]:
            books.offer(state)
        books.offer(states[5])  # the same levels again: not news
        gate.set()
        await eventually(lambda: len(sent) == 2)
    finally:
        deliver.cancel()
        await asyncio.gather(deliver, return_exceptions=True)
    assert sent == [states[0], states[5]]
    assert (books.sent, books.conflated, books.unchanged) == (2, 4, 1)  # states 1-4 skipped
    with pytest.raises(ConfigError, match="book_depth, book_limit: expected >= 1"):
        CcxtBooks("binance", 0, None, emit, lambda s, n: None, lambda *a, **k: None)


# --- funding rates and open interest -------------------------------------------------------


def swap_market() -> dict[str, Any]:
    """ccxt's market structure of Binance's XRPUSDT perpetual (no exchangeInfo request)."""
    return {
        "id": "XRPUSDT", "lowercaseId": "xrpusdt", "symbol": SWAP, "base": "XRP",
        "quote": "USDT", "settle": "USDT", "baseId": "XRP", "quoteId": "USDT",
        "settleId": "USDT", "type": "swap", "spot": False, "margin": False, "swap": True,
        "future": False, "option": False, "contract": True, "linear": True,
        "inverse": False, "contractSize": 1.0, "active": True,
        "precision": {"amount": 0.1, "price": 0.0001},
    }  # fmt: skip


def futures_feed(server: BinanceFuturesLoopbackServer, **options: Any) -> CcxtDataFeed:
    urls = {
        "api": {
            "fapiPublic": f"{server.rest_url}/fapi/v1",
            "ws": {"linear": f"{server.ws_url}/stream"},
        }
    }
    return CcxtDataFeed(
        "ccxt_futures",
        "binanceusdm",
        exchange_config={"urls": urls},
        markets=[swap_market()],
        backoff=FAST,
        rng=lambda: 0.5,
        **options,
    )


def unstamped(records: list[Any]) -> list[tuple[Any, ...]]:
    return [
        tuple(
            None if isinstance(v, float) and math.isnan(v) else v
            for v in (getattr(r.with_ts_recv(0), name) for name in r.__slots__)
        )
        for r in records
    ]


def expected_funding(marks: list[MarkPrice]) -> list[FundingRate]:
    """What ``fetch_funding_rate`` announces for each funding period, once per change."""
    found: list[FundingRate] = []
    for mark in marks:
        record = FundingRate(SWAP, mark.next_funding_time, mark.funding_rate)
        if not found or (found[-1].ts_event, found[-1].rate) != (record.ts_event, record.rate):
            found.append(record)
    return found


async def test_polled_funding_and_open_interest_reach_callbacks_and_sqlite(
    tmp_path: Path,
) -> None:
    marks, readings = mark_prices()[:20], open_interest(8)
    funding = expected_funding(marks)
    assert len(funding) >= 3  # the 20 hourly marks span several real funding periods
    seen: dict[str, list[Any]] = {"funding_rate": [], "open_interest": [], "market": []}
    db = tmp_path / "ccxt.db"
    async with BinanceFuturesLoopbackServer(marks=marks, open_interest=readings) as server:
        server.faults.rate_limit_next = 1  # the first request: 429, Retry-After
        feed = futures_feed(server, funding_every_s=0.01, open_interest_every_s=0.01)
        async with DataEngine(Config(db_path=db)) as engine:
            engine.add_feed(feed)
            for kind in ("funding_rate", "open_interest"):
                engine.add_data_callback(
                    lambda s, item, q, kind=kind: seen[kind].append(item), kinds=kind
                )
            engine.add_data_callback(lambda s, item, q: seen["market"].append(item))
            assert await engine.subscribe_symbol(SWAP) == "ccxt_futures"
            await eventually(
                lambda: (
                    server.premium_served.get("XRPUSDT", 0) > len(marks)
                    and server.open_interest_served.get("XRPUSDT", 0) > len(readings)
                )
            )
            await engine.wait_idle()
            storage = engine.persistence
            assert storage is not None
            stored_funding = await storage.get_funding_rates(SWAP)
            stored_oi = await storage.get_open_interest(SWAP)
            status = feed.get_connection_status()
    assert feed.request_retries == 1  # the 429 was retried through the feed's budget
    assert seen["market"] == []
    assert unstamped(seen["funding_rate"]) == unstamped(funding)  # in order, exact
    assert unstamped(seen["open_interest"]) == unstamped(readings)
    # storage keeps one row per funding time (the last poll wins) and every reading
    assert unstamped(stored_funding) == unstamped(funding)
    assert unstamped(stored_oi) == unstamped(readings)
    assert (status["funding_rates"], status["open_interest"]) == (len(funding), len(readings))
    with sqlite3.connect(db) as conn:
        kinds = conn.execute("select kind from errors where feed = 'ccxt_futures'").fetchall()
    assert kinds == [("rate_limited",)]  # the retried 429, and nothing else


async def test_funding_history_pages_the_real_rates() -> None:
    rates = real_funding()
    start, end = rates[2].ts_event, rates[-3].ts_event
    # what the venue's rows carry: time and rate (the files' 8 h interval is not in them)
    wanted = [replace(r, funding_interval=0) for r in rates if start <= r.ts_event < end]
    async with BinanceFuturesLoopbackServer(funding_rates=rates) as server:
        feed = futures_feed(server, history_limit=4)  # several pages
        try:
            found = await feed.get_funding_rates(SWAP, start, end)
        finally:
            await feed.disconnect()
    assert len(wanted) > 8
    assert unstamped(found) == unstamped(wanted)
    assert all(r.ts_recv > 0 for r in found)


def test_derivative_structures_convert_exactly_and_name_bad_fields() -> None:
    structure = {
        "symbol": SWAP, "fundingRate": 0.0001, "fundingTimestamp": 1_700_000_000_000,
        "timestamp": 1_699_990_000_000, "nextFundingTimestamp": None,
        "nextFundingRate": 0.0002, "interval": "8h",
    }  # fmt: skip
    assert funding_rate_of(SWAP, structure, 5) == FundingRate(
        SWAP, 1_700_000_000_000 * MS, 0.0001, 5, 0, 8 * 3600 * 10**9, 0.0002
    )
    with pytest.raises(
        FeedProtocolError, match=r"funding_rate\.fundingRate: expected a finite number, found None"
    ):
        funding_rate_of(SWAP, structure | {"fundingRate": None}, 5)  # fmt: skip
    reading = {"openInterestAmount": 10.5, "openInterestValue": None, "timestamp": 1_000}
    assert unstamped([open_interest_of(SWAP, reading, 5)]) == unstamped(
        [OpenInterest(SWAP, 1_000 * MS, 10.5, math.nan)]
    )
    with pytest.raises(FeedProtocolError, match=r"needs contracts or notional"):
        open_interest_of(SWAP, {"timestamp": 1_000}, 5)
    rows = [{"timestamp": 1, "fundingRate": 0.1}, {"fundingRate": 0.1}]
    with pytest.raises(
        FeedProtocolError,
        match=r"funding_rate_history\[1\]\.timestamp: expected ms since the epoch, found None",
    ):
        funding_history_of(SWAP, rows, 0)


# --- order books end to end: watch_order_book against the loopback Binance server --------


def final_tops(depth: int) -> dict[str, tuple[list[Any], list[Any], int]]:
    """Each symbol's top ``depth`` levels after lean_data's keeper took the whole capture."""
    session = binance_session(SPOT_WS, SPOT_HTTP)
    tops = {}
    for symbol, snapshot in session.snapshots.items():
        keeper = BookKeeper(OrderBook(symbol), BinanceSpotSequencer())
        keeper.on_snapshot(snapshot)
        for delta in session.deltas(symbol):
            keeper.on_delta(delta)
        assert keeper.book.valid
        tops[symbol] = (keeper.book.bids(depth), keeper.book.asks(depth), keeper.book.sequence)
    return tops


def spot_markets() -> list[dict[str, Any]]:
    pairs = [("NKN", "USDT"), ("BLZ", "ETH"), ("LRC", "BTC"), ("RUNE", "EUR")]
    return [market(base, quote) for base, quote in pairs]


def top_of(engine: DataEngine, symbol: str, depth: int) -> tuple[list[Any], list[Any], int]:
    book = engine.get_book(symbol)
    if book is None or not book.valid:
        return [], [], -2
    return book.bids(depth), book.asks(depth), book.sequence


async def test_watch_order_book_feeds_the_engine_the_books_of_the_real_capture() -> None:
    """ccxt.pro's binance subscribes ``<pair>@depth@100ms``, fetches ``/api/v3/depth`` and
    keeps the books; the engine's books end equal to lean_data's own replay (top 10), and a
    re-sync re-creates the watch: ccxt unsubscribes, subscribes again and fetches anew."""
    expected = final_tops(10)
    seen: list[tuple[str, Any]] = []
    async with BinanceLoopbackServer(SPOT_WS, depth=SPOT_HTTP) as server:
        feed = CcxtDataFeed(
            "ccxt",
            "binance",
            exchange_config={"urls": urls(server)},
            markets=spot_markets(),
            book_depth=10,
            backoff=FAST,
            rng=lambda: 0.5,
        )
        async with DataEngine(Config(db_path=None)) as engine:
            engine.add_feed(feed)
            engine.add_book_callback(lambda symbol, book, level: seen.append((symbol, level)))
            for symbol in expected:
                await engine.subscribe_symbol(symbol, data="book")
            await eventually(lambda: all(top_of(engine, s, 10) == expected[s] for s in expected))
            sent = feed.get_connection_status()["book_snapshots"]
            await feed.resync_book("NKN/USDT")
            await eventually(lambda: server.depth.served.get("NKNUSDT") == 2)
            await eventually(lambda: feed.get_connection_status()["book_snapshots"] > sent)
            await engine.wait_idle()
            assert top_of(engine, "NKN/USDT", 10) == expected["NKN/USDT"]
            status = feed.get_connection_status()
    subscribed = [p for m in server.received if m.get("method") == "SUBSCRIBE" for p in m["params"]]
    assert sorted(subscribed) == sorted(
        [f"{s.replace('/', '').lower()}@depth@100ms" for s in expected] + ["nknusdt@depth@100ms"]
    )
    unsubscribed = [m["params"] for m in server.received if m.get("method") == "UNSUBSCRIBE"]
    assert unsubscribed == [["nknusdt@depth@100ms"]]
    assert status["book_resyncs"] == 1
    assert {symbol for symbol, _ in seen} == set(expected)
    assert feed.errors == 0


async def test_a_gap_ccxt_detects_is_reported_and_the_book_recovers() -> None:
    """One recorded NKNUSDT update never sent: ccxt's own sequence check fails the watch
    (ChecksumError), drops the book; the feed reports it and watches again, ccxt
    re-subscribes and fetches a fresh snapshot, and the engine's book ends as the replay."""
    expected = final_tops(10)
    session = binance_session(SPOT_WS, SPOT_HTTP)
    dropped = session.deltas("NKN/USDT")[100].last_sequence
    # paced (20x the recorded gaps: 1.5 s) so that the gap arrives after ccxt's snapshot:
    # ccxt checks live deltas, not the ones it buffered before the snapshot came
    async with BinanceLoopbackServer(SPOT_WS, depth=SPOT_HTTP, pace=20) as server:
        server.faults.depth_drop = {dropped}
        feed = CcxtDataFeed(
            "ccxt",
            "binance",
            exchange_config={"urls": urls(server)},
            markets=spot_markets(),
            book_depth=10,
            backoff=FAST,
            rng=lambda: 0.5,
        )
        async with DataEngine(Config(db_path=None)) as engine:
            engine.add_feed(feed)
            await engine.subscribe_symbol("NKN/USDT", data="book")
            await eventually(lambda: top_of(engine, "NKN/USDT", 10) == expected["NKN/USDT"])
            status = feed.get_connection_status()
    assert status["book_ccxt_resyncs"] == 1
    assert status["sessions"] == 1  # the socket stayed up
    assert server.depth.served["NKNUSDT"] == 2
    assert feed.last_error.startswith("book_resync: NKN/USDT: binance ")
