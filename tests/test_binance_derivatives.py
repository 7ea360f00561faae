"""Binance USDT-M derivatives (mark price, liquidations, open interest) end to end.

Parsers: Binance's documented example frames in, exact records out. Feed: a
``BinanceFuturesFeed`` against ``BinanceFuturesLoopbackServer`` on 127.0.0.1, through the
engine to callbacks and SQLite.

Data (see tests/fixtures/PROVENANCE.md): mark prices are freqtrade's real XRP/USDT:USDT
1-hour mark candles (``XRP_USDT_USDT-1h-mark.feather``), each carrying the real rate and
time of the next real funding (``XRP_USDT_USDT-8h-funding_rate.feather``) and, as index
price, the real traded close of the same hour (``XRP_USDT_USDT-1h-futures.feather``).
Liquidations and open interest are *derived* from those real traded candles' wicks and
volumes (``lean_data.testing._binance_futures_data``): Binance keeps no history of them.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from lean_data import Config, DataEngine, DataQualityLevel
from lean_data.derivatives import FundingRate, Liquidation, MarkPrice, OpenInterest
from lean_data.errors import FeedProtocolError, SubscriptionError
from lean_data.feeds.backoff import BackoffPolicy
from lean_data.feeds.binance_futures import BinanceFuturesFeed
from lean_data.loaders import load_file
from lean_data.models import TradeBar
from lean_data.testing.binance_futures import (
    BinanceFuturesLoopbackServer,
    derive_liquidations,
    derive_mark_prices,
    derive_open_interest,
    mark_price_event,
)
from lean_data.wire.binance_futures import (
    futures_symbol,
    parse_funding_rates,
    parse_futures_message,
    parse_open_interest,
)
from tests.conftest import FIXTURES, eventually

FUTURES = FIXTURES / "freqtrade" / "futures"
SYMBOL = "XRP/USDT:USDT"
MARK_STREAM = "xrpusdt@markPrice@1s"
FAST = BackoffPolicy(base_s=0.01, cap_s=0.04, multiplier=2.0)


def _bars(name: str) -> list[TradeBar]:
    found = [b for b in load_file(FUTURES / name) if isinstance(b, TradeBar)]
    assert found
    return found


def real_funding() -> list[FundingRate]:
    found = list(load_file(FUTURES / "XRP_USDT_USDT-8h-funding_rate.feather"))
    assert all(isinstance(r, FundingRate) for r in found)
    return found  # type: ignore[return-value]


def mark_prices() -> list[MarkPrice]:
    traded = _bars("XRP_USDT_USDT-1h-futures.feather")
    marks = derive_mark_prices(_bars("XRP_USDT_USDT-1h-mark.feather"), real_funding(), traded)
    assert len(marks) == 42
    return marks


def liquidations() -> list[Liquidation]:
    found = derive_liquidations(_bars("XRP_USDT_USDT-1h-futures.feather"))
    assert len(found) == 42
    return found


def open_interest(n: int) -> list[OpenInterest]:
    return derive_open_interest(_bars("XRP_USDT_USDT-1h-futures.feather"))[:n]


def feed_for(server: BinanceFuturesLoopbackServer, **kwargs: Any) -> BinanceFuturesFeed:
    return BinanceFuturesFeed(
        "futures",
        ws_url=server.ws_url,
        rest_url=server.rest_url,
        backoff=kwargs.pop("backoff", FAST),
        rng=lambda: 1.0,
        **kwargs,
    )


def unstamped(records: list[Any]) -> list[Any]:
    """The records as the venue sent them: receive time 0, NaN as None (NaN != NaN)."""
    return [
        tuple(None if isinstance(v, float) and math.isnan(v) else v for v in _fields(r))
        for r in records
    ]


def _fields(record: Any) -> tuple[Any, ...]:
    return tuple(getattr(record.with_ts_recv(0), name) for name in record.__slots__)


class Seen:
    """Sync callbacks collecting what reaches them, by kind."""

    def __init__(self) -> None:
        self.items: dict[str, list[Any]] = {}
        self.levels: set[DataQualityLevel] = set()

    def callback(self, kind: str) -> Any:
        def on_item(symbol: str, item: Any, quality: DataQualityLevel) -> None:
            self.items.setdefault(kind, []).append(item)
            self.levels.add(quality)

        return on_item

    def count(self, kind: str) -> int:
        return len(self.items.get(kind, []))


def register(engine: DataEngine, seen: Seen) -> None:
    engine.add_data_callback(seen.callback("market"))  # no kinds: market data only
    for kind in ("mark_price", "liquidation", "open_interest"):
        engine.add_data_callback(seen.callback(kind), kinds=kind)


# --- parsers -----------------------------------------------------------------------------

DOC_MARK = (
    b'{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000",'
    b'"i":"11784.62659091","P":"11784.25641265","r":"0.00038167","T":1562306400000}'
)
DOC_FORCE = (
    b'{"e":"forceOrder","E":1568014460893,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT",'
    b'"f":"IOC","q":"0.014","p":"9910","ap":"9910","X":"FILLED","l":"0.014","z":"0.014",'
    b'"T":1568014460893}}'
)


def test_documented_frames_parse_to_exact_records() -> None:
    ms = 1_000_000
    wrapped = b'{"stream":"btcusdt@markPrice@1s","data":' + DOC_MARK + b"}"
    assert parse_futures_message(wrapped, 7) == MarkPrice(
        "BTC/USDT:USDT", 1562305380000 * ms, 11794.15, 11784.62659091, 7, 0.00038167,
        1562306400000 * ms,
    )  # fmt: skip
    assert parse_futures_message(DOC_FORCE, 7) == Liquidation(
        "BTC/USDT:USDT", 1568014460893 * ms, "sell", 9910.0, 0.014, 7, "FILLED", 9910.0, 0.014
    )
    body = b'{"openInterest":"10659.509","symbol":"BTCUSDT","time":1589437530011}'
    found = parse_open_interest(body, 7, symbols={"BTCUSDT": "BTC/USDT:USDT"})
    assert (found.symbol, found.ts_event, found.contracts, found.ts_recv) == (
        "BTC/USDT:USDT", 1589437530011 * ms, 10659.509, 7,
    )  # fmt: skip
    rows = b'[{"symbol":"BTCUSDT","fundingRate":"-0.00003","fundingTime":1570608000000}]'
    assert parse_funding_rates(rows, 7) == [
        FundingRate("BTC/USDT:USDT", 1570608000000 * ms, -0.00003, 7)
    ]
    assert futures_symbol("BTCUSDT_240329") == "BTC/USDT:USDT-240329"
    delivery = orjson.loads(DOC_MARK) | {"r": "", "T": 0}
    record = parse_futures_message(orjson.dumps(delivery), 7)
    assert isinstance(record, MarkPrice)
    assert math.isnan(record.funding_rate)
    assert record.next_funding_time == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"p": "abc"}, "markPriceUpdate.p: expected a decimal string, found str .abc."),
        ({"p": "-1"}, "MarkPrice.mark_price must be > 0"),
        ({"E": "1562305380000"}, "markPriceUpdate.E: expected an integer of milliseconds"),
        ({"s": None}, "markPriceUpdate.s: expected a symbol string"),
    ],
)
def test_malformed_mark_price_names_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(FeedProtocolError, match=message):
        parse_futures_message(orjson.dumps(orjson.loads(DOC_MARK) | change), 0)


def test_malformed_force_order_and_rest_errors() -> None:
    order = orjson.loads(DOC_FORCE)
    order["o"]["S"] = "HOLD"
    with pytest.raises(FeedProtocolError, match=r"forceOrder.o.S: expected 'BUY' or 'SELL'"):
        parse_futures_message(orjson.dumps(order), 0)
    del order["o"]["q"]
    order["o"]["S"] = "BUY"
    with pytest.raises(FeedProtocolError, match=r"forceOrder.o: expected field 'q'"):
        parse_futures_message(orjson.dumps(order), 0)
    with pytest.raises(SubscriptionError, match="Invalid symbol"):
        parse_open_interest(b'{"code":-1121,"msg":"Invalid symbol."}', 0)
    with pytest.raises(FeedProtocolError, match=r"openInterest\.openInterest: expected a decimal"):
        parse_open_interest(b'{"openInterest":null,"symbol":"BTCUSDT","time":1}', 0)


# --- through the engine --------------------------------------------------------------------


async def test_streams_and_polls_reach_their_callbacks_and_sqlite(tmp_path: Path) -> None:
    marks, liqs, readings = mark_prices(), liquidations(), open_interest(10)
    seen = Seen()
    db = tmp_path / "futures.db"
    async with BinanceFuturesLoopbackServer(open_interest=readings) as server:
        for record in sorted([*marks, *liqs], key=lambda r: r.ts_event):
            if isinstance(record, MarkPrice):
                server.push_mark_price(record)
            else:
                server.push_liquidation(record)
        feed = feed_for(server, channels=("markPrice", "forceOrder"), open_interest_every_s=0.01)
        async with DataEngine(Config(db_path=db)) as engine:
            engine.add_feed(feed)
            register(engine, seen)
            assert await engine.subscribe_symbol(SYMBOL) == "futures"
            await eventually(
                lambda: (
                    (seen.count("mark_price"), seen.count("liquidation")) == (len(marks), len(liqs))
                    and server.open_interest_served.get("XRPUSDT", 0) > len(readings)
                )
            )
            await engine.wait_idle()
            storage = engine.persistence
            assert storage is not None
            stored_marks = await storage.get_mark_prices(SYMBOL)
            stored_liqs = await storage.get_liquidations(SYMBOL)
            stored_oi = await storage.get_open_interest(SYMBOL)
    subscribed = [m["params"] for m in server.received if m.get("method") == "SUBSCRIBE"]
    assert subscribed == [[MARK_STREAM, "xrpusdt@forceOrder"]]
    assert seen.count("market") == 0  # a callback without kinds sees none of them
    assert seen.levels == {DataQualityLevel.GOOD}
    assert unstamped(seen.items["mark_price"]) == unstamped(marks)  # in order, exact
    assert unstamped(seen.items["liquidation"]) == unstamped(liqs)
    # polled past the end of the series: the repeated last reading is not emitted again
    assert unstamped(seen.items["open_interest"]) == unstamped(readings)
    assert unstamped(stored_marks) == unstamped(marks)
    assert unstamped(stored_liqs) == unstamped(liqs)
    assert unstamped(stored_oi) == unstamped(readings)
    # the funding the mark prices carry is the real next funding's rate and time
    funding = {r.ts_event // 1_000_000 * 1_000_000: r.rate for r in real_funding()}
    assert all(funding[m.next_funding_time] == m.funding_rate for m in stored_marks)
    with sqlite3.connect(db) as conn:
        errors = conn.execute("select kind, message from errors where feed = 'futures'")
        assert errors.fetchall() == []


async def test_hostile_frames_are_counted_and_the_rest_arrive(tmp_path: Path) -> None:
    marks = mark_prices()
    seen = Seen()
    db = tmp_path / "hostile.db"
    async with BinanceFuturesLoopbackServer() as server:
        for index, record in enumerate(marks):
            if index == 20:  # well-formed JSON, a mark price that is not a number
                server.push(MARK_STREAM, mark_price_event(record) | {"p": "NaN-ish"})
            server.push_mark_price(record)
        server.faults.malformed_at = {5}  # "{not json" before the 6th good frame
        server.faults.unknown_at = {30}
        feed = feed_for(server, channels=("markPrice",))
        async with DataEngine(Config(db_path=db)) as engine:
            engine.add_feed(feed)
            register(engine, seen)
            await engine.subscribe_symbol(SYMBOL)
            await eventually(
                lambda: seen.count("mark_price") == len(marks) and feed.unknown_frames == 1
            )
            await engine.wait_idle()
    assert unstamped(seen.items["mark_price"]) == unstamped(marks)
    assert (feed.malformed_frames, feed.unknown_frames) == (2, 1)
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "select kind, message from errors where feed = 'futures' order by id"
        ).fetchall()
    assert [kind for kind, _ in rows] == ["malformed_frame", "malformed_frame", "unknown_frame"]
    assert "expected JSON" in rows[0][1]
    assert "markPriceUpdate.p: expected a decimal string, found str 'NaN-ish'" in rows[1][1]


async def test_dropped_connection_reconnects_and_resumes() -> None:
    marks, liqs, readings = mark_prices(), liquidations(), open_interest(5)
    seen = Seen()
    async with BinanceFuturesLoopbackServer(resume=True, open_interest=readings) as server:
        for mark, liq in zip(marks, liqs, strict=True):
            server.push_mark_price(mark)
            server.push_liquidation(liq)
        server.faults.drop_after = 30  # 84 frames: three connections
        # open interest is polled by a task of its own: a drop cuts no request short
        feed = feed_for(server, channels=("markPrice", "forceOrder"), open_interest_every_s=0.01)
        async with DataEngine(Config(db_path=None)) as engine:
            engine.add_feed(feed)
            register(engine, seen)
            await engine.subscribe_symbol(SYMBOL)
            await eventually(
                lambda: (
                    seen.count("mark_price") + seen.count("liquidation") == 84
                    and seen.count("open_interest") == len(readings)
                )
            )
            await engine.wait_idle()
    assert server.connections == 3
    assert feed.sessions == 3
    subscribed = [m["params"] for m in server.received if m.get("method") == "SUBSCRIBE"]
    assert subscribed == [[MARK_STREAM, "xrpusdt@forceOrder"]] * 3
    assert unstamped(seen.items["mark_price"]) == unstamped(marks)
    assert unstamped(seen.items["liquidation"]) == unstamped(liqs)
    assert feed.reconnect_delays == [FAST.ceiling(0)] * 2
    assert unstamped(seen.items["open_interest"]) == unstamped(readings)


async def test_rate_limited_open_interest_waits_for_retry_after() -> None:
    readings = open_interest(3)
    seen = Seen()
    async with BinanceFuturesLoopbackServer(open_interest=readings) as server:
        server.faults.rate_limit_next = 1
        server.faults.retry_after = 1
        feed = feed_for(server, channels=("markPrice",), open_interest_every_s=0.01)
        async with DataEngine(Config(db_path=None)) as engine:
            engine.add_feed(feed)
            register(engine, seen)
            await engine.subscribe_symbol(SYMBOL)
            await eventually(lambda: seen.count("open_interest") == len(readings))
    statuses = [r.status for r in server.rest_requests]
    assert statuses[:4] == [429, 200, 200, 200]
    assert {r.path for r in server.rest_requests} == {"/fapi/v1/openInterest"}
    assert list(feed.retry_delays) == [1.0]  # the answer's Retry-After, not the backoff
    assert unstamped(seen.items["open_interest"]) == unstamped(readings)


async def test_funding_rate_history_pages_real_rates() -> None:
    rates = real_funding()
    async with BinanceFuturesLoopbackServer(funding_rates=rates) as server:
        server.faults.rate_limit_next = 1
        server.faults.retry_after = 0
        feed = feed_for(server)
        found = await feed.get_funding_rates(SYMBOL, rates[10].ts_event, rates[40].ts_event)
        await feed.close()
    assert [(r.symbol, r.ts_event, r.rate) for r in found] == [
        (r.symbol, r.ts_event, r.rate) for r in rates[10:40]
    ]
    assert [r.status for r in server.rest_requests] == [429, 200]
    assert server.rest_requests[-1].params["symbol"] == "XRPUSDT"
