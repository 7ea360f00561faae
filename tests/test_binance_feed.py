"""BinanceDataFeed against the loopback Binance server, through the whole engine.

Kline frames are derived from the real Binance BTC/BUSD minute bars of 2022-12-13 bundled as
demo data (``lean_data/demo_data/lean/crypto/binance/minute/btcbusd/20221213_trade.zip``, a
copy of ../shared/data/lean/crypto/binance/...): per candle one in-progress update (``x``
false) and the final frame (``x`` true) carrying the vendor's values.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from lean_data import Config, DataEngine, DataQualityLevel, TradeBar
from lean_data.errors import SubscriptionError
from lean_data.feeds.backoff import BackoffPolicy
from lean_data.feeds.base import FeedStatus
from lean_data.feeds.binance import BinanceDataFeed
from lean_data.loaders import load_file
from lean_data.loaders.capture import read_capture
from lean_data.models import NS_PER_DAY, NS_PER_MINUTE, MarketData
from lean_data.testing import BinanceLoopbackServer, ServerFaults, kline_event

from .conftest import eventually

DEMO = Path(__file__).parent.parent / "lean_data/demo_data/lean/crypto/binance/minute/btcbusd"
SYMBOL = "BTC/BUSD"
STREAM = "btcbusd@kline_1m"
FAST = BackoffPolicy(base_s=0.01, cap_s=0.04, multiplier=2.0)


def real_bars(n: int) -> list[TradeBar]:
    bars = [b for b in load_file(DEMO / "20221213_trade.zip") if isinstance(b, TradeBar)]
    assert len(bars) >= n
    return [
        TradeBar(SYMBOL, b.ts_event, b.open, b.high, b.low, b.close, b.volume) for b in bars[:n]
    ]


def push_klines(server: BinanceLoopbackServer, bars: list[TradeBar]) -> None:
    for bar in bars:
        half = bar.ts_event // 1_000_000 + 30_000
        server.push(STREAM, kline_event("BTCBUSD", bar, closed=False, event_time_ms=half))
        server.push(STREAM, kline_event("BTCBUSD", bar, closed=True))


def key(bar: MarketData) -> tuple[object, ...]:
    assert isinstance(bar, TradeBar)
    return (bar.symbol, bar.ts_event, bar.open, bar.high, bar.low, bar.close, bar.volume)


def feed_for(
    server: BinanceLoopbackServer, name: str = "binance", **kwargs: object
) -> BinanceDataFeed:
    return BinanceDataFeed(
        name,
        ws_url=server.ws_url,
        rest_url=server.rest_url,
        backoff=kwargs.pop("backoff", FAST),  # type: ignore[arg-type]
        rng=lambda: 1.0,
        **kwargs,  # type: ignore[arg-type]
    )


def subscribes(server: BinanceLoopbackServer) -> list[list[str]]:
    return [
        m["params"] for m in server.received if isinstance(m, dict) and m["method"] == "SUBSCRIBE"
    ]


def collect_bars(seen: list[TradeBar]) -> Callable[[str, MarketData, DataQualityLevel], None]:
    """A sync callback appending every delivered bar to ``seen``."""

    def on_bar(symbol: str, bar: MarketData, quality: DataQualityLevel) -> None:
        assert isinstance(bar, TradeBar)
        seen.append(bar)

    return on_bar


async def test_exact_closed_bars_reach_callbacks_and_sqlite(tmp_path: Path) -> None:
    bars = real_bars(120)
    seen: list[MarketData] = []

    def on_bar(symbol: str, bar: MarketData, quality: DataQualityLevel) -> None:
        seen.append(bar)

    db = tmp_path / "binance.db"
    async with BinanceLoopbackServer() as server:
        push_klines(server, bars)
        feed = feed_for(server)
        async with DataEngine(Config(db_path=db)) as engine:
            engine.add_feed(feed)
            engine.add_data_callback(on_bar)
            assert await engine.subscribe_symbol(SYMBOL) == "binance"
            await eventually(lambda: len(seen) == len(bars))
            await engine.wait_idle()
    assert [key(b) for b in seen] == [key(b) for b in bars]
    assert all(isinstance(b, TradeBar) and b.closed and b.revision == 0 for b in seen)
    assert subscribes(server) == [[STREAM]]
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "select ts_event, open, high, low, close, volume from bars where symbol = ? "
            "order by ts_event",
            (SYMBOL,),
        ).fetchall()
    assert rows == [(b.ts_event, b.open, b.high, b.low, b.close, b.volume) for b in bars]


async def test_drop_mid_stream_reconnects_resubscribes_and_resumes() -> None:
    bars = real_bars(40)  # 80 frames
    seen: list[MarketData] = []
    async with BinanceLoopbackServer(resume=True) as server:
        push_klines(server, bars)
        server.faults.drop_after = 30
        feed = feed_for(server)
        async with DataEngine(Config(db_path=None)) as engine:
            engine.add_feed(feed)
            engine.add_data_callback(lambda s, b, q: seen.append(b))
            await engine.subscribe_symbol(SYMBOL)
            await eventually(lambda: len(seen) == len(bars))
            await engine.wait_idle()
            status = feed.get_connection_status()
    # 80 frames in drops of 30: three connections, each resubscribed to the same stream
    assert server.connections == 3
    assert feed.sessions == 3
    assert subscribes(server) == [[STREAM]] * 3
    assert [key(b) for b in seen] == [key(b) for b in bars]
    # every session delivered data, so the backoff restarted at attempt 0 each time
    assert feed.reconnect_delays == [FAST.ceiling(0)] * 2
    assert status["reconnects"] == 2


async def test_connection_attempts_follow_the_backoff_schedule() -> None:
    policy = BackoffPolicy(base_s=0.01, cap_s=0.08, multiplier=2.0)
    async with BinanceLoopbackServer() as server:
        server.faults.drop_after = 0  # every connection is aborted before any data
        push_klines(server, real_bars(3))
        feed = feed_for(server, backoff=policy)
        async with DataEngine(Config(db_path=None)) as engine:
            engine.add_feed(feed)
            await engine.subscribe_symbol(SYMBOL)
            await eventually(lambda: feed.connect_attempts >= 7)
            server.faults = ServerFaults()  # the venue recovers
            await eventually(lambda: feed.messages_emitted == 3)
            attempts = feed.connect_attempts
            delays = list(feed.reconnect_delays)
    # rng pinned to 1.0: each delay is the ceiling, doubling from 10 ms to the 80 ms cap
    assert delays == [policy.ceiling(i) for i in range(attempts - 1)]
    assert delays[:6] == [0.01, 0.02, 0.04, 0.08, 0.08, 0.08]
    assert server.connections == attempts


async def test_rate_limited_history_counts_requests_and_completes() -> None:
    bars = real_bars(1440)  # a whole day: two pages of 1000
    start, end = bars[0].ts_event, bars[-1].ts_event + NS_PER_MINUTE
    async with BinanceLoopbackServer(klines={"BTCBUSD": bars}) as server:
        server.faults.rate_limit_next = 50
        server.faults.retry_after = 0
        feed = feed_for(
            server, backoff=BackoffPolicy(base_s=0.001, cap_s=0.004), request_attempts=51
        )
        history = await feed.get_historical_data(SYMBOL, start, end, bars[0].resolution)
        statuses = [r.status for r in server.rest_requests]
        assert feed.request_retries == 50
        # the 429 answers said Retry-After: 1 -> every wait honours it
        server.faults.rate_limit_next = 2
        server.faults.retry_after = 1
        again = await feed.get_historical_data(
            SYMBOL, start, start + 10 * NS_PER_MINUTE, bars[0].resolution
        )
        await feed.close()
    assert [key(b) for b in history] == [key(b) for b in bars]
    assert statuses == [429] * 50 + [200, 200]  # 50 refusals, then exactly two pages
    assert [key(b) for b in again] == [key(b) for b in bars[:10]]
    assert list(feed.retry_delays)[-2:] == [1.0, 1.0]


async def test_malformed_truncated_and_unknown_frames_are_counted_and_good_ones_delivered(
    tmp_path: Path,
) -> None:
    bars = real_bars(30)
    seen: list[MarketData] = []
    db = tmp_path / "faults.db"
    async with BinanceLoopbackServer() as server:
        push_klines(server, bars)
        server.faults.malformed_at = {3, 20}
        server.faults.truncated_at = {7}
        server.faults.unknown_at = {11, 12}
        server.faults.duplicate_at = {15}  # a closed candle's frame twice
        feed = feed_for(server)
        async with DataEngine(Config(db_path=db)) as engine:
            engine.add_feed(feed)
            engine.add_data_callback(lambda s, b, q: seen.append(b))
            await engine.subscribe_symbol(SYMBOL)
            await eventually(lambda: len(seen) == len(bars) and feed.unknown_frames == 2)
            await engine.wait_idle()
            outcomes = engine.get_metrics()["engine"]["outcomes"]
    assert [key(b) for b in seen] == [key(b) for b in bars]
    assert (feed.malformed_frames, feed.unknown_frames) == (3, 2)
    assert outcomes["duplicate"] == 1  # the repeated candle: continuity dropped it
    with sqlite3.connect(db) as conn:
        kinds = dict(
            conn.execute("select kind, count(*) from errors where feed = 'binance' group by kind")
        )
    assert kinds == {"malformed_frame": 3, "unknown_frame": 2}


async def test_stale_subscription_recycles_and_fails_over_then_back(tmp_path: Path) -> None:
    bars = real_bars(60)
    got: list[tuple[str, int]] = []
    db = tmp_path / "failover.db"
    async with (
        BinanceLoopbackServer(resume=True) as primary_server,
        BinanceLoopbackServer(resume=True) as backup_server,
    ):
        push_klines(primary_server, bars)
        push_klines(backup_server, bars[10:])  # the backup venue is "live" from bar 10
        primary_server.faults.silent_after = 10  # 5 candles, then an open but silent socket
        primary = feed_for(primary_server, "primary", cadence_s=0.1)
        backup = feed_for(backup_server, "backup")
        async with DataEngine(Config(db_path=db)) as engine:
            engine.add_feed(primary)
            engine.add_feed(backup)

            def on_bar(symbol: str, bar: MarketData, quality: DataQualityLevel) -> None:
                got.append((symbol, bar.ts_event))

            engine.add_data_callback(on_bar)
            assert await engine.subscribe_symbol(SYMBOL) == "primary"
            await eventually(lambda: engine.failover.switches == 1)
            # keep the primary silent after its reconnects until the backup has delivered
            primary_server.faults = ServerFaults(silent_after=0)
            await eventually(lambda: backup.messages_emitted >= 5)
            primary_server.faults = ServerFaults()  # the primary venue recovers
            await eventually(lambda: engine.failover.switch_backs == 1)
            await eventually(lambda: backup.status is FeedStatus.CONNECTED and not backup.desired)
            metrics = engine.get_metrics()
            await engine.wait_idle()
    assert primary.stale_events >= 1
    assert primary_server.connections >= 2  # the stale connection was recycled
    assert metrics["failover"]["switches"] == 1
    assert metrics["failover"]["switch_backs"] == 1
    history = metrics["failover"]["history"]
    assert [(h["from"], h["to"], h["back"]) for h in history] == [
        ("primary", "backup", False),
        ("backup", "primary", True),
    ]
    assert "stale" in history[0]["reason"]
    # the first five candles came from the primary, then the backup carried on from bar 10
    assert got[:5] == [(SYMBOL, b.ts_event) for b in bars[:5]]
    assert (SYMBOL, bars[10].ts_event) in got
    with sqlite3.connect(db) as conn:
        kinds = [
            (kind, feed)
            for kind, feed in conn.execute(
                "select kind, feed from errors where kind in ('stale', 'failover', 'failback') "
                "order by id"
            )
        ]
    assert ("failover", "primary") in kinds
    assert ("failback", "backup") in kinds
    assert kinds[0] == ("stale", "primary")


async def test_subscribe_and_unsubscribe_from_a_callback_and_a_task_do_not_deadlock() -> None:
    bars = real_bars(50)
    eth = "ETH/BUSD"
    seen: list[str] = []
    async with BinanceLoopbackServer() as server:
        push_klines(server, bars)
        feed = feed_for(server)
        async with DataEngine(Config(db_path=None, inbox_size=4)) as engine:
            engine.add_feed(feed)
            done = asyncio.Event()

            async def on_bar(symbol: str, bar: MarketData, quality: DataQualityLevel) -> None:
                seen.append(symbol)
                if len(seen) == 3:
                    await engine.subscribe_symbol(eth)
                if len(seen) == 6:
                    await engine.unsubscribe_symbol(eth)
                if len(seen) == len(bars):
                    done.set()

            engine.add_data_callback(on_bar, policy="block", queue_size=1)
            await engine.subscribe_symbol(SYMBOL)
            churn = asyncio.create_task(engine.subscribe_symbol("SOL/BUSD"))
            await churn
            await engine.unsubscribe_symbol("SOL/BUSD")
            await asyncio.wait_for(done.wait(), 10)
            await eventually(lambda: len(server.received) == 5)
    methods = [(m["method"], m["params"]) for m in server.received]
    assert methods.count(("SUBSCRIBE", ["ethbusd@kline_1m"])) == 1
    assert methods.count(("UNSUBSCRIBE", ["ethbusd@kline_1m"])) == 1
    assert methods.count(("SUBSCRIBE", ["solbusd@kline_1m"])) == 1
    assert methods.count(("UNSUBSCRIBE", ["solbusd@kline_1m"])) == 1
    assert len(seen) == len(bars)


async def test_unknown_symbol_is_fatal_after_one_request() -> None:
    bars = real_bars(5)
    async with BinanceLoopbackServer(klines={"BTCBUSD": bars}) as server:
        feed = feed_for(server)
        with pytest.raises(SubscriptionError, match="Invalid symbol"):
            await feed.get_historical_data(
                "NOPE/BUSD", bars[0].ts_event, bars[-1].ts_event, bars[0].resolution
            )
        await feed.close()
    assert [r.status for r in server.rest_requests] == [400]
    assert feed.request_retries == 0


async def test_seven_minutes_lost_to_a_drop_are_backfilled_into_an_exact_series(
    tmp_path: Path,
) -> None:
    """Issue 4, done-when 1: the stored series equals the uninterrupted one exactly."""
    bars = real_bars(60)
    seen: list[TradeBar] = []
    db = tmp_path / "drop.db"
    async with BinanceLoopbackServer(resume=True, klines={"BTCBUSD": bars}) as server:
        push_klines(server, bars[:30])
        server.faults.drop_after = 60  # the 30 candles' frames, then the connection drops
        feed = feed_for(server)
        async with DataEngine(Config(db_path=db)) as engine:
            engine.add_feed(feed)

            engine.add_data_callback(collect_bars(seen))
            await engine.subscribe_symbol(SYMBOL)
            await eventually(lambda: server.connections == 2 and len(seen) == 30)
            # the venue went on while we were away: minutes 30-36 were never sent to us
            server.faults = ServerFaults()
            push_klines(server, bars[37:])
            await eventually(lambda: len(seen) == 60)
            await engine.wait_idle()
            stats = engine.get_metrics()["continuity"]
    assert [key(b) for b in seen] == [key(b) for b in bars]
    assert [b.backfilled for b in seen] == [False] * 30 + [True] * 7 + [False] * 23
    assert (stats["gaps"], stats["missing_reported"], stats["backfilled"]) == (1, 7, 7)
    assert stats["duplicates"] == 0
    klines = [r for r in server.rest_requests if r.path == "/api/v3/klines"]
    assert len(klines) == 1
    assert klines[0].params["startTime"] == str(bars[30].ts_event // 1_000_000)
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "select ts_event, open, high, low, close, volume from bars where symbol = ? "
            "order by ts_event",
            (SYMBOL,),
        ).fetchall()
        gap_rows = conn.execute("select message from errors where kind = 'gap'").fetchall()
    assert rows == [(b.ts_event, b.open, b.high, b.low, b.close, b.volume) for b in bars]
    assert len(gap_rows) == 1
    assert "expected 7 bars, backfilled 7" in gap_rows[0][0]


async def test_history_asks_the_feed_only_for_what_storage_does_not_cover(
    tmp_path: Path,
) -> None:
    """Issue 4, done-when 5: half the range is covered by live bars already stored."""
    bars = real_bars(60)
    seen: list[MarketData] = []
    async with BinanceLoopbackServer(klines={"BTCBUSD": bars}) as server:
        push_klines(server, bars[:30])
        feed = feed_for(server)
        async with DataEngine(Config(db_path=tmp_path / "cover.db")) as engine:
            engine.add_feed(feed)
            engine.add_data_callback(lambda s, b, q: seen.append(b))
            await engine.subscribe_symbol(SYMBOL)
            await eventually(lambda: len(seen) == 30)
            await engine.wait_idle()
            start, end = bars[0].ts_event, bars[-1].ts_event + NS_PER_MINUTE
            history = await engine.get_historical_data(SYMBOL, start, end)
            first_requests = [r.params for r in server.rest_requests]
            inside = await engine.get_historical_data(SYMBOL, bars[10].ts_event, bars[50].ts_event)
            requests_after = len(server.rest_requests)
    assert [key(b) for b in history] == [key(b) for b in bars]
    # one request, for exactly the uncovered half
    assert len(first_requests) == 1
    assert first_requests[0]["startTime"] == str(bars[30].ts_event // 1_000_000)
    assert first_requests[0]["endTime"] == str((end - 1) // 1_000_000)
    # a range inside what is now covered asks nothing
    assert [key(b) for b in inside] == [key(b) for b in bars[10:50]]
    assert requests_after == 1


async def test_warmup_delivers_history_before_the_first_live_bar_without_seam(
    tmp_path: Path,
) -> None:
    """Issue 4: warm-up of 20 bars, live bars arriving during it are not lost."""
    bars = real_bars(60)
    seen: list[TradeBar] = []
    async with BinanceLoopbackServer(klines={"BTCBUSD": bars}) as server:
        push_klines(server, bars[38:])
        feed = feed_for(server)
        async with DataEngine(Config(db_path=tmp_path / "warm.db")) as engine:
            engine.add_feed(feed)

            engine.add_data_callback(collect_bars(seen))
            await engine.subscribe_symbol(SYMBOL, warmup=20)
            await eventually(lambda: len(seen) == 42)
            await engine.wait_idle()
    assert [key(b) for b in seen] == [key(b) for b in bars[18:]]
    assert [b.backfilled for b in seen] == [True] * 20 + [False] * 22


# --- revisions: a corrected closed candle is a revision, an exact repeat a duplicate -------


def provisional(bar: TradeBar) -> TradeBar:
    """A first closed version of ``bar`` that missed its last trades (derived from the real bar).

    The venue later re-sends the candle with its real values: a correction.
    """
    return replace(bar, high=max(bar.open, bar.close), low=min(bar.open, bar.close), volume=0.5)


async def test_corrected_closed_kline_is_a_revision_and_stored_corrected(tmp_path: Path) -> None:
    bars = real_bars(12)
    first = [provisional(b) if i == 5 else b for i, b in enumerate(bars[:10])]
    seen: list[TradeBar] = []
    db = tmp_path / "revision.db"
    async with BinanceLoopbackServer() as server:
        push_klines(server, first)
        server.push(STREAM, kline_event("BTCBUSD", bars[5], closed=True))  # corrected
        server.push(STREAM, kline_event("BTCBUSD", bars[5], closed=True))  # exact repeat
        server.push(STREAM, kline_event("BTCBUSD", bars[3], closed=True))  # exact repeat
        push_klines(server, bars[10:])
        feed = feed_for(server)
        async with DataEngine(Config(db_path=db)) as engine:
            engine.add_feed(feed)

            engine.add_data_callback(collect_bars(seen))
            await engine.subscribe_symbol(SYMBOL)
            await eventually(lambda: len(seen) == 13)
            await engine.wait_idle()
            stats = engine.get_metrics()["continuity"]
            outcomes = engine.get_metrics()["engine"]["outcomes"]
    assert [(*key(b), b.revision) for b in seen] == [
        *[(*key(b), 0) for b in first],
        (*key(bars[5]), 1),
        *[(*key(b), 0) for b in bars[10:]],
    ]
    assert provisional(bars[5]) != bars[5]
    # the feed passes every closed kline on; the engine's continuity decides (issue 12)
    assert feed.messages_emitted == len(first) + 3 + len(bars[10:])
    assert (stats["revisions"], stats["duplicates"]) == (1, 2)
    assert outcomes["duplicate"] == 2
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "select ts_event, open, high, low, close, volume, revision from bars "
            "where symbol = ? order by ts_event",
            (SYMBOL,),
        ).fetchall()
    assert rows == [
        (b.ts_event, b.open, b.high, b.low, b.close, b.volume, int(i == 5))
        for i, b in enumerate(bars)
    ]


class ListSink:
    """Takes every item a feed emits, as the engine's inbox does when it has room."""

    def __init__(self) -> None:
        self.items: list[MarketData] = []
        self.errors: list[tuple[str, str]] = []
        self.batches: list[int] = []  # the length of each offer_many

    def offer(self, feed: str, item: MarketData) -> bool:
        self.items.append(item)
        return True

    async def accept(self, feed: str, item: MarketData) -> None:
        self.items.append(item)

    def offer_many(self, feed: str, items: Sequence[MarketData]) -> bool:
        self.items.extend(items)
        self.batches.append(len(items))
        return True

    async def accept_many(self, feed: str, items: Sequence[MarketData]) -> None:
        self.items.extend(items)

    def feed_error(self, feed: str, kind: str, message: str, symbol: str = "") -> None:
        self.errors.append((kind, message))

    def feed_down(self, feed: str, symbols: Sequence[str], reason: str) -> None:
        pass


async def test_a_microsecond_stamped_kline_is_passed_on_and_changes_nothing_else() -> None:
    bars, corrupted = real_bars(12), 5
    bogus = replace(bars[corrupted], ts_event=bars[corrupted].ts_event * 1000)  # µs as ms
    sink = ListSink()
    async with BinanceLoopbackServer() as server:
        push_klines(server, [bogus if i == corrupted else b for i, b in enumerate(bars)])
        server.push(STREAM, kline_event("BTCBUSD", bogus, closed=True))  # and re-sent
        push_klines(server, real_bars(14)[12:])
        feed = feed_for(server)
        feed.attach(sink)
        await feed.subscribe(SYMBOL)
        try:
            await feed.connect()
            await eventually(lambda: len(sink.items) >= 15)
        finally:
            await feed.close()
    # the feed passes the re-sent kline on as well: repeats are the engine's to judge
    expected = [*bars[:corrupted], bogus, *bars[corrupted + 1 :], bogus, *real_bars(14)[12:]]
    assert [key(b) for b in sink.items] == [key(b) for b in expected]
    assert all(isinstance(b, TradeBar) and b.closed and b.revision == 0 for b in sink.items)
    assert sink.errors == []


def stored_open_times(db: Path) -> list[int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "select ts_event from bars where symbol = ? order by ts_event", (SYMBOL,)
        ).fetchall()
    return [ts for (ts,) in rows]


def error_rows(db: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("select kind, feed, symbol, message from errors order by id").fetchall()


def microsecond_stamped(bar: TradeBar) -> TradeBar:
    """``bar`` with its open time in µs where Binance puts ms (read as ms: beyond int64 ns)."""
    return replace(bar, ts_event=bar.ts_event * 1000)


def a_year_ahead(bar: TradeBar) -> TradeBar:
    """``bar`` stamped 400 days after now (a minute boundary): far beyond any clock skew."""
    ahead = time.time_ns() + 400 * NS_PER_DAY
    return replace(bar, ts_event=ahead - ahead % NS_PER_MINUTE)


@pytest.mark.parametrize(
    ("corrupt", "reason"),
    [
        (microsecond_stamped, "is outside int64 nanoseconds"),
        (a_year_ahead, "s after the receive time"),
    ],
    ids=["microseconds", "now_plus_400_days"],
)
async def test_a_corrupt_stamped_kline_is_invalid_once_and_the_real_series_goes_on(
    tmp_path: Path, corrupt: Callable[[TradeBar], TradeBar], reason: str
) -> None:
    """Through the engine: one corrupt kline among real ones is INVALID, nothing else moves.

    The venue sends candles 0-4 (delivered: the series is live), then candle 5's values under
    an impossible open time, then the real candles 5-11: the corrupt one must not become the
    series head (no gap, no backfill, no parked bar) nor make a later real candle a revision.
    """
    bars, at = real_bars(12), 5
    bogus = corrupt(bars[at])
    seen: list[tuple[MarketData, DataQualityLevel]] = []
    db = tmp_path / "x.db"
    async with BinanceLoopbackServer() as server:
        push_klines(server, bars[:at])
        feed = feed_for(server)
        async with DataEngine(Config(db_path=db)) as engine:
            engine.add_feed(feed)
            engine.add_data_callback(lambda s, b, q: seen.append((b, q)))
            await engine.subscribe_symbol(SYMBOL)
            await eventually(lambda: len(seen) == at)
            push_klines(server, [bogus, *bars[at:]])
            await eventually(lambda: len(seen) >= len(bars) + 1)
            await engine.wait_idle()
            outcomes = engine.get_metrics()["engine"]["outcomes"]
        continuity = engine.get_metrics()["continuity"]
    invalid = DataQualityLevel.INVALID
    assert [(key(b), q is invalid) for b, q in seen] == [
        *[(key(b), False) for b in bars[:at]],
        (key(bogus), True),
        *[(key(b), False) for b in bars[at:]],
    ]
    assert all(isinstance(b, TradeBar) and b.closed and b.revision == 0 for b, _ in seen)
    assert not any(isinstance(b, TradeBar) and b.backfilled for b, _ in seen)
    assert (outcomes["invalid"], outcomes["delivered"]) == (1, len(bars))
    assert (continuity["parked"], continuity["gaps"], continuity["revisions"]) == (0, 0, 0)
    assert [r.path for r in server.rest_requests] == []  # nothing was backfilled
    assert stored_open_times(db) == [b.ts_event for b in bars]
    errors = error_rows(db)
    assert [(kind, feed, symbol) for kind, feed, symbol, _ in errors] == [
        ("invalid_data", "binance", SYMBOL)
    ]
    assert str(bogus.ts_event) in errors[0][3]
    assert reason in errors[0][3]


# --- staleness is on by default for kline subscriptions ------------------------------------

SECOND_BARS = (
    Path(__file__).parent / "fixtures/lean/crypto/coinbase/second/btcusd/20161009_trade.zip"
)


async def test_a_silent_kline_stream_is_stale_and_recovered_by_default() -> None:
    bars = [b for b in load_file(SECOND_BARS) if isinstance(b, TradeBar)][:10]
    stream = "btcusd@kline_1s"
    sink = ListSink()
    async with BinanceLoopbackServer(resume=True) as server:
        for bar in bars[:5]:
            server.push(stream, kline_event("BTCUSD", bar, closed=False, interval="1s"))
            server.push(stream, kline_event("BTCUSD", bar, closed=True, interval="1s"))
        server.faults.silent_after = 10  # 5 candles, then an open socket that sends nothing
        feed = feed_for(server, resolution="1s")  # no cadence_s: derived from the 1 s klines
        feed.attach(sink)
        await feed.subscribe("BTC/USD")
        try:
            await feed.connect()
            await eventually(lambda: len(sink.items) == 5)
            # 3 periods + 2 s grace of silence: stale, the connection is recycled
            await eventually(lambda: feed.stale_events == 1, timeout=30.0)
            server.faults = ServerFaults()  # the venue recovers
            for bar in bars[5:]:
                server.push(stream, kline_event("BTCUSD", bar, closed=True, interval="1s"))
            await eventually(lambda: len(sink.items) == 10)
        finally:
            await feed.close()
    assert [key(b) for b in sink.items] == [key(replace(b, symbol="BTC/USD")) for b in bars]
    assert feed.cadence_of("BTC/USD") == 1.0
    assert feed.stale_after_s("BTC/USD", 0) == 3 * 1.0 + 2.0
    assert (feed.sessions, server.connections) == (2, 2)
    assert subscribes(server) == [["btcusd@kline_1s"]] * 2
    kinds = [kind for kind, _ in sink.errors]
    assert kinds[:2] == ["stale", "disconnected"]
    assert "BTC/USD: no data for" in sink.errors[0][1]
    off = BinanceDataFeed(cadence_s=None)
    assert (off.cadence_of("BTC/USD"), off.stale_after_s("BTC/USD", 0)) == (None, None)
    assert BinanceDataFeed(cadence_s=0).stale_after_s("BTC/USD", 0) is None
    assert BinanceDataFeed(channels=("agg_trade",)).stale_after_s("BTC/USD", 0) is None


class _OneRead:
    """Stands in for the websocket: every frame comes in one socket read, then the end."""

    def __init__(self, frames: list[str]) -> None:
        self._reads = [frames]

    async def recv_batch(self) -> list[str]:
        return self._reads.pop(0) if self._reads else []


async def test_one_reads_frames_go_together_around_a_bad_frame_and_before_a_fatal_error() -> None:
    bars = real_bars(3)

    def closed(bar: TradeBar) -> str:
        payload = kline_event("BTCBUSD", bar, closed=True)
        return orjson.dumps({"stream": STREAM, "data": payload}).decode()

    fatal = '{"error": {"code": -1121, "msg": "Invalid symbol."}, "id": 7}'
    sink = ListSink()
    feed = BinanceDataFeed("binance", symbols=[SYMBOL])
    feed.attach(sink)
    feed._venue["BTCBUSD"] = SYMBOL  # what send_subscribe records
    feed._ws = _OneRead(  # type: ignore[assignment]
        [closed(bars[0]), '{"stream": "btcbusd@kline_1m", "data": {', closed(bars[1]), fatal,
         closed(bars[2])]
    )  # fmt: skip
    with pytest.raises(SubscriptionError, match="-1121"):
        await feed.run_session()
    assert [key(b) for b in sink.items] == [key(b) for b in bars[:2]]  # nothing before it lost
    assert sink.batches == [2]  # one hand-over for the read
    assert feed.malformed_frames == 1
    assert [kind for kind, _ in sink.errors] == ["malformed_frame"]


class _FrameByFrame(BinanceDataFeed):
    """The same feed with a parse_frame of its own: run_session takes every frame through
    parse_frame and item_of one by one (the path a subclass gets)."""

    def parse_frame(self, raw: bytes | str, now: int) -> Any:
        return super().parse_frame(raw, now)


@pytest.mark.parametrize("emit_partial", [False, True])
@pytest.mark.parametrize("name", ["BINANCE.ws.1.0", "BINANCE_US.ws.1.0", "BINANCE_FUTURES.ws.1.0"])
async def test_the_compiled_frame_loop_hands_over_what_the_frame_by_frame_path_does(
    fixtures: Path, name: str, emit_partial: bool
) -> None:
    """Real captured frames (in-progress and closed klines, trades, quotes, acks, depth)
    with hostile ones among them, in one read: run_session's compiled loop for the plain
    data frames gives the same items, errors and counts as the frame-by-frame path."""
    frames = [raw for _, raw in read_capture(fixtures / "cryptofeed" / name).received]
    assert len(frames) > 50
    hostile = list(frames)
    hostile.insert(0, '{"stream": "btcusdt@kline_1m", "data": {')  # truncated, first
    hostile.insert(len(hostile) // 3, '{"stream": "x@ticker", "data": {"e": "24hrTicker"}}')
    hostile.insert(len(hostile) // 2, '{"error": {"code": -1003, "msg": "Too much"}, "id": 9}')
    hostile.insert(2 * len(hostile) // 3, orjson.dumps([1, 2]).decode())  # not an object
    hostile.append('{"stream": "btcusdt@aggTrade", "data": {"e": "aggTrade", "p": "x"}}')
    seen = []
    for cls in (BinanceDataFeed, _FrameByFrame):
        sink = ListSink()
        feed = cls(
            "binance", channels=("kline", "agg_trade", "book_ticker"), emit_partial=emit_partial
        )
        feed.attach(sink)  # type: ignore[arg-type]
        feed._ws = _OneRead(hostile)  # type: ignore[assignment]
        await feed.run_session()
        items = [  # stamped per read; a spot quote, which has no event time, at its receipt
            replace(item, ts_recv=0, ts_event=0 if item.ts_event == item.ts_recv else item.ts_event)
            for item in sink.items
        ]
        seen.append((items, sink.batches, sink.errors, feed.malformed_frames, feed.unknown_frames))
    assert seen[0] == seen[1]
    items, batches, errors, malformed, unknown = seen[0]
    assert batches == [len(items)]
    assert len(items) > 10
    assert malformed == 3
    assert unknown >= 1
    assert {kind for kind, _ in errors} >= {"malformed_frame", "unknown_frame", "venue_error"}
    kinds = {type(item).__name__ for item in items}
    assert "TradeBar" in kinds or (name == "BINANCE.ws.1.0" and not emit_partial)  # none closed
    assert any(not getattr(item, "closed", True) for item in items) is emit_partial
