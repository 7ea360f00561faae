"""The stores against real databases with real Lean market data.

Tests of backend behaviour through the public interface take the ``backend`` fixture and
run twice: on a SQLite file in tmp_path (DataPersistence) and on a fresh PostgreSQL schema
(PostgresStorage); what they read behind the store's back they read with ``backend.rows``.
Facts of SQLite alone (pragmas, its lock, the file path) stay SQLite-only.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import sqlite3
import threading
import zipfile
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from lean_data.errors import ConfigError, EngineClosedError, EngineStateError, StorageError
from lean_data.models import (
    NS_PER_DAY,
    NS_PER_HOUR,
    NS_PER_MINUTE,
    MarketData,
    QuoteBar,
    Resolution,
    Tick,
    TickType,
    TradeBar,
    datetime_to_ns,
)
from lean_data.quality.levels import DataQualityLevel, Verdict
from lean_data.storage import sqlite_sink
from lean_data.storage.base import Storage
from lean_data.storage.postgres import PostgresStorage
from lean_data.storage.sqlite import DataPersistence
from lean_data.storage.store import QueuedStore
from tests.backends import NO_DERIVATIVES, Backend
from tests.conftest import eventually

NOW = 1_700_000_000 * 1_000_000_000  # 2023-11-14T22:13:20Z
T0 = datetime_to_ns(datetime(2013, 10, 7, 13, 30, tzinfo=UTC))
NEW_YORK = ZoneInfo("America/New_York")


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "lean.db"


@pytest.fixture
async def store(backend: Backend, clock: Clock) -> AsyncIterator[QueuedStore]:
    async with backend.make(clock_ns=clock) as persistence:
        yield persistence


def bar(ts: int = T0, close: float = 1.5, **fields: object) -> TradeBar:
    values: dict[str, object] = {"ts_recv": NOW, "symbol": "SPY", "ts_event": ts}
    values |= {"open": 1.0, "high": 2.0, "low": 0.5, "close": close, "volume": 100.0}
    values |= fields
    return TradeBar(**values)  # type: ignore[arg-type]


def _lean_lines(path: Path) -> tuple[int, list[list[str]]]:
    """Return midnight New York of the file's date (ns) and its CSV rows."""
    day = datetime.strptime(path.name[:8], "%Y%m%d").replace(tzinfo=NEW_YORK)
    with zipfile.ZipFile(path) as archive:
        text = archive.read(archive.namelist()[0]).decode()
    return datetime_to_ns(day), [line.split(",") for line in text.splitlines()]


def _px(text: str) -> float:
    return int(text) / 10_000  # Lean equity prices are deci-cents


def lean_trade_bars(path: Path, symbol: str) -> list[TradeBar]:
    midnight, rows = _lean_lines(path)
    return [
        TradeBar(symbol, midnight + int(r[0]) * 1_000_000, _px(r[1]), _px(r[2]), _px(r[3]),
                 _px(r[4]), float(r[5]), ts_recv=NOW)
        for r in rows
    ]  # fmt: skip


def lean_quote_bars(path: Path, symbol: str) -> list[QuoteBar]:
    midnight, rows = _lean_lines(path)
    return [
        QuoteBar(symbol, midnight + int(r[0]) * 1_000_000,
                 _px(r[1]), _px(r[2]), _px(r[3]), _px(r[4]), float(r[5]),
                 _px(r[6]), _px(r[7]), _px(r[8]), _px(r[9]), float(r[10]), ts_recv=NOW)
        for r in rows
    ]  # fmt: skip


def lean_ticks(path: Path, symbol: str) -> list[Tick]:
    midnight, rows = _lean_lines(path)
    return [
        Tick(symbol, midnight + int(r[0]) * 1_000_000, int(r[1]) / 10_000, float(r[2]),
             ts_recv=NOW, exchange=r[3], condition=r[4], suspicious=r[5] == "1")
        for r in rows
    ]  # fmt: skip


def sqlite_rows(path: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Read with a separate, plain sqlite3 connection."""
    with sqlite3.connect(path) as other:
        rows = other.execute(sql, params).fetchall()
    other.close()
    return rows


# ------------------------------------------------------------------ opening and pragmas


async def test_open_sets_wal_normal_sync_memory_temp_store_and_busy_timeout(
    db_path: Path,
) -> None:
    async with DataPersistence(db_path, busy_timeout_ms=1234) as store:
        assert await store.pragmas() == {
            "journal_mode": "wal",
            "synchronous": 1,
            "temp_store": 2,  # statement journals in memory (connect.py says why)
            "busy_timeout": 1234,
        }
    assert sqlite_rows(db_path, "PRAGMA journal_mode") == [("wal",)]
    assert sqlite_rows(db_path, "SELECT version FROM schema_version") == [(5,)]


async def test_reopen_keeps_data_and_schema_version(backend: Backend, clock: Clock) -> None:
    async with backend.make(clock_ns=clock) as first:
        await first.save_market_data(bar(), feed="lean")
    async with backend.make(clock_ns=clock) as second:
        assert await second.get_market_data("SPY", T0, T0 + 1) == [bar()]
    assert await backend.rows("SELECT version FROM schema_version") == [(backend.version,)]


async def test_newer_schema_version_is_refused(backend: Backend) -> None:
    async with backend.make():
        pass
    await backend.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StorageError, match="schema version 99"):
        await backend.make().open()


@pytest.mark.parametrize(
    ("setting", "value"),
    [("batch_rows", 0), ("queue_size", -1), ("batch_ms", 0.0), ("busy_timeout_ms", -5)],
)
def test_invalid_settings_raise_config_error(db_path: Path, setting: str, value: float) -> None:
    with pytest.raises(ConfigError, match=setting):
        DataPersistence(db_path, **{setting: value})  # type: ignore[arg-type]


async def test_unopenable_path_raises_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot open SQLite database"):
        await DataPersistence(tmp_path / "missing" / "dir" / "x.db").open()


# ------------------------------------------------------------------ upsert semantics


async def test_same_bar_saved_three_times_is_one_row(store: QueuedStore) -> None:
    for _ in range(3):
        await store.save_market_data(bar(), feed="lean")
    assert await store.count("bars") == 1
    assert await store.get_market_data("SPY", T0, T0 + NS_PER_MINUTE) == [bar()]


async def test_lower_revision_never_overwrites_higher(store: QueuedStore) -> None:
    await store.save_market_data(bar(close=2.0, revision=1), feed="lean")
    await store.save_market_data(bar(close=1.0, revision=0), feed="lean")
    assert await store.get_market_data("SPY", T0, T0 + 1) == [bar(close=2.0, revision=1)]


async def test_closed_replaces_in_progress_at_same_revision_not_reverse(
    store: QueuedStore,
) -> None:
    await store.save_market_data(bar(close=1.2, closed=False), feed="lean")
    await store.save_market_data(bar(close=1.4, closed=True), feed="lean")
    await store.save_market_data(bar(close=1.3, closed=False), feed="lean")  # late snapshot
    assert await store.get_market_data("SPY", T0, T0 + 1) == [bar(close=1.4, closed=True)]


@pytest.mark.parametrize("per_statement", [None, 64])
async def test_a_large_batch_keeps_the_revision_rules_row_by_row(
    store: QueuedStore, fixtures: Path, per_statement: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hundreds of rows go as multi-row statements on SQLite; repeats of one key in the same
    statement are decided in order, as row by row: the highest revision, then closed. With
    64 rows a statement, a key's three rows also straddle statements."""
    if per_statement is not None:
        monkeypatch.setattr(sqlite_sink, "_rows_per_statement", lambda columns: per_statement)
    real = lean_trade_bars(fixtures / "lean/equity/usa/minute/spy/20131007_trade.zip", "SPY")
    real = real[:300]
    for b in real:
        revised = replace(b, close=b.close + 1, revision=1)
        snapshot = replace(b, close=b.close + 2, revision=1, closed=False)  # arrives late
        for item in (revised, b, snapshot):
            await store.save_market_data(item, feed="lean")
    got = await store.get_market_data("SPY", real[0].ts_event, real[-1].ts_event + 1)
    assert got == [replace(b, close=b.close + 1, revision=1) for b in real]


async def test_a_series_first_seen_in_a_later_statement_of_a_batch_is_stored(
    store: QueuedStore, fixtures: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 64 rows a statement, a batch whose second series starts in its third statement:
    that statement finds the series new, gives it its row, and every bar is stored."""
    monkeypatch.setattr(sqlite_sink, "_rows_per_statement", lambda columns: 64)
    real = lean_trade_bars(fixtures / "lean/equity/usa/minute/spy/20131007_trade.zip", "SPY")
    spy = real[:150]
    other = [replace(b, symbol="SPY2") for b in real[150:300]]
    for item in [*spy, *other]:
        await store.save_market_data(item, feed="lean")
    assert await store.get_market_data("SPY", 0, 2**62) == spy
    assert await store.get_market_data("SPY2", 0, 2**62) == other


async def test_same_key_on_two_feeds_is_two_rows(store: QueuedStore) -> None:
    await store.save_market_data(bar(close=1.1), feed="alpaca")
    await store.save_market_data(bar(close=1.2), feed="replay")
    assert await store.get_market_data("SPY", T0, T0 + 1, feed="replay") == [bar(close=1.2)]
    assert await store.get_market_data("SPY", T0, T0 + 1) == [bar(close=1.1), bar(close=1.2)]


# ------------------------------------------------------------------ values and ranges


async def test_nan_volume_and_prices_round_trip_as_nan(
    store: QueuedStore, backend: Backend
) -> None:
    await store.save_market_data(bar(volume=math.nan))
    quote = QuoteBar("SPY", T0, *(math.nan,) * 5, 1.0, 1.0, 1.0, 1.0, 5.0, ts_recv=NOW)
    await store.save_market_data(quote)
    await store.save_market_data(Tick("SPY", T0, 167.5, math.nan, ts_recv=NOW))
    await store.flush()
    assert await backend.rows("SELECT volume FROM bars") == [(None,)]  # NaN -> NULL
    (got,) = await store.get_market_data("SPY", T0, T0 + 1)
    assert math.isnan(got.volume)
    assert (got.open, got.high, got.low, got.close) == (1.0, 2.0, 0.5, 1.5)
    (got_quote,) = await store.get_quote_bars("SPY", T0, T0 + 1)
    assert [math.isnan(v) for v in (got_quote.bid_open, got_quote.bid_size)] == [True, True]
    assert (got_quote.ask_close, got_quote.ask_size) == (1.0, 5.0)
    (got_tick,) = await store.get_ticks("SPY", T0, T0 + 1)
    assert (got_tick.price, math.isnan(got_tick.size)) == (167.5, True)


async def test_range_is_start_inclusive_end_exclusive(store: QueuedStore) -> None:
    bars = [bar(T0 + i * NS_PER_MINUTE, close=1.0 + i) for i in range(3)]
    for item in bars:
        await store.save_market_data(item)
    middle = await store.get_market_data("SPY", T0 + NS_PER_MINUTE, T0 + 2 * NS_PER_MINUTE)
    assert middle == [bars[1]]
    start = datetime(2013, 10, 7, 13, 30, tzinfo=UTC)
    end = datetime(2013, 10, 7, 13, 32)  # naive means UTC
    assert await store.get_market_data("SPY", start, end) == bars[:2]
    assert await store.get_market_data("SPY", T0 - 1, T0) == []


async def test_resolution_filter_and_sub_second_resolution(store: QueuedStore) -> None:
    minute = bar()
    hour = bar(resolution=Resolution.HOUR, close=9.0)
    odd = bar(resolution=Resolution(1_500_000_000), close=7.0)  # stored as "1500000000ns"
    for item in (minute, hour, odd):
        await store.save_market_data(item)
    assert await store.get_market_data("SPY", T0, T0 + 1, resolution="1h") == [hour]
    assert await store.get_market_data("SPY", T0, T0 + 1, resolution=Resolution.MINUTE) == [minute]
    assert await store.get_market_data("SPY", T0, T0 + 1, resolution=odd.resolution) == [odd]
    # without a resolution: every period, same open time ordered by feed then resolution text
    assert await store.get_market_data("SPY", T0, T0 + 1) == [odd, hour, minute]
    assert await store.get_market_data("SPY", T0 + 1, T0 + 2) == []
    assert await store.get_market_data("QQQ", T0, T0 + 1) == []


async def test_real_lean_minute_bars_quotes_and_ticks_round_trip(
    store: QueuedStore, fixtures: Path
) -> None:
    minute = fixtures / "lean/equity/usa/minute/spy"
    bars = lean_trade_bars(minute / "20131007_trade.zip", "SPY")
    quotes = lean_quote_bars(minute / "20131007_quote.zip", "SPY")
    ticks = lean_ticks(fixtures / "lean/equity/usa/tick/ibm/20131011_trade.zip", "IBM")
    items: list[MarketData] = [*bars, *quotes, *ticks]
    for item in items:
        await store.save_market_data(item, feed="lean")
    day = datetime_to_ns(datetime(2013, 10, 7, tzinfo=NEW_YORK))
    assert await store.get_market_data("SPY", day, day + NS_PER_DAY) == bars
    assert await store.get_quote_bars("SPY", day, day + NS_PER_DAY, feed="lean") == quotes
    ibm_day = datetime_to_ns(datetime(2013, 10, 11, tzinfo=NEW_YORK))
    stored_ticks = await store.get_ticks("IBM", ibm_day, ibm_day + NS_PER_DAY)
    assert stored_ticks == sorted(ticks, key=lambda t: t.ts_event)  # same-ms trades all kept
    assert (len(bars), len(quotes), len(stored_ticks)) == (828, 908, 19264)
    assert bars[0] == TradeBar("SPY", day + 4 * NS_PER_HOUR, 167.41, 167.41, 167.25, 167.27,
                               3197.0, ts_recv=NOW)  # fmt: skip


async def test_tick_quote_fields_round_trip(store: QueuedStore) -> None:
    quote = Tick("BTC/USD", T0, 100.5, 0.0, TickType.QUOTE, NOW, 100.0, 2.0, 101.0, 3.0)
    trade = Tick("BTC/USD", T0, 100.7, 0.25, trade_id="t-1", exchange="CB", suspicious=True)
    await store.save_market_data(quote, feed="coinbase")
    await store.save_market_data(trade, feed="coinbase")
    stored = await store.get_ticks("BTC/USD", T0, T0 + 1, feed="coinbase")
    assert stored == [quote, Tick("BTC/USD", T0, 100.7, 0.25, ts_recv=NOW, exchange="CB",
                                  suspicious=True, trade_id="t-1")]  # fmt: skip


async def test_zero_receive_time_is_stored_as_save_time(store: QueuedStore, clock: Clock) -> None:
    clock.now = NOW + 5
    await store.save_market_data(bar(ts_recv=0))
    assert await store.get_market_data("SPY", T0, T0 + 1) == [bar(ts_recv=NOW + 5)]


async def test_sql_injection_in_symbol_is_stored_literally(
    store: QueuedStore, backend: Backend
) -> None:
    evil = "x'); DROP TABLE bars;--"
    await store.save_market_data(bar(symbol=evil))
    await store.save_error("feed", evil, symbol=evil, ts_ns=NOW)
    assert await store.get_market_data(evil, T0, T0 + 1) == [bar(symbol=evil)]
    assert await store.count("bars", symbol=evil) == 1
    assert await store.count("errors", symbol=evil) == 1
    await store.flush()
    assert await backend.rows("SELECT symbol FROM bars") == [(evil,)]
    assert await backend.rows("SELECT symbol FROM errors") == [(evil,)]


async def test_count_accepts_only_known_tables(store: QueuedStore) -> None:
    with pytest.raises(ValueError, match="table must be one of"):
        await store.count("bars; DROP TABLE bars")
    with pytest.raises(ValueError, match="no symbol column"):
        await store.count("metrics", symbol="SPY")
    assert await store.count("ticks") == 0


# ------------------------------------------------------------------ batching and flushing


async def test_thousand_rows_with_batch_rows_100_are_ten_batches(backend: Backend) -> None:
    async with backend.make(batch_rows=100) as store:
        for i in range(1000):
            store.save_market_data_nowait(bar(T0 + i * NS_PER_MINUTE))
        await store.flush()
        assert store.statistics() == {
            "rows_written": 1000,
            "batches": 10,
            "queue_depth": 0,
            "write_failures": 0,
            "rows_lost": 0,
            "rows_rejected": 0,
            "rejected": {},
            "last_batch_rows": 100,
            "failed": None,
        }


async def test_a_lone_row_is_committed_after_batch_ms(backend: Backend) -> None:
    async with backend.make(batch_ms=20) as store:
        await store.save_market_data(bar(), feed="lean")
        await eventually(lambda: store.statistics()["batches"] == 1)
        assert await backend.rows("SELECT feed, symbol, ts_event FROM bars") == [
            ("lean", "SPY", T0)
        ]


async def test_flush_makes_rows_visible_to_another_connection(backend: Backend) -> None:
    async with backend.make(batch_ms=60_000) as store:
        for i in range(3):
            await store.save_market_data(bar(T0 + i * NS_PER_MINUTE, close=1.0 + i), feed="a")
        assert await backend.rows("SELECT COUNT(*) FROM bars") == [(0,)]
        await store.flush()
        assert await backend.rows("SELECT ts_event, close FROM bars ORDER BY ts_event") == [
            (T0, 1.0),
            (T0 + NS_PER_MINUTE, 2.0),
            (T0 + 2 * NS_PER_MINUTE, 3.0),
        ]


async def test_close_commits_everything_queued(backend: Backend) -> None:
    store = backend.make(batch_ms=60_000)
    await store.open()
    for i in range(5):
        await store.save_market_data(bar(T0 + i * NS_PER_MINUTE))
    await store.close()
    await store.close()  # idempotent
    assert await backend.rows("SELECT COUNT(*), MIN(ts_event), MAX(ts_event) FROM bars") == [
        (5, T0, T0 + 4 * NS_PER_MINUTE)
    ]


async def test_close_keeps_every_row_whose_save_returned(backend: Backend) -> None:
    store = backend.make(queue_size=5, batch_rows=3)
    await store.open()
    saved: list[int] = []

    async def produce() -> None:
        for i in range(10_000):
            await store.save_market_data(bar(T0 + i))  # blocks whenever the queue is full
            saved.append(i)

    producer = asyncio.create_task(produce())
    await eventually(lambda: len(saved) >= 20)
    await store.close()
    with pytest.raises(EngineClosedError):
        await producer
    stored = await backend.rows("SELECT ts_event - ? FROM bars ORDER BY ts_event", T0)
    assert [offset for (offset,) in stored] == saved


async def test_full_queue_nowait_refuses_and_await_waits(backend: Backend) -> None:
    async with backend.make(queue_size=2) as store:
        results = [store.save_market_data_nowait(bar(T0 + i)) for i in range(3)]
        assert results == [True, True, False]
        for i in range(3, 50):  # waits for room each time the queue is full
            await store.save_market_data(bar(T0 + i))
        stored = await store.get_market_data("SPY", T0, T0 + 50)
        assert [b.ts_event - T0 for b in stored] == [0, 1, *range(3, 50)]  # 2 was refused


async def test_save_error_nowait_refuses_when_full_and_stores_otherwise(
    backend: Backend,
) -> None:
    async with backend.make(queue_size=2) as store:
        results = [
            store.save_error_nowait("malformed_frame", f"frame {i}", feed="f", ts_ns=T0 + i)
            for i in range(3)
        ]
        assert results == [True, True, False]
        errors = await store.get_errors()
    assert sorted(e["message"] for e in errors) == ["frame 0", "frame 1"]


async def test_save_rejects_unknown_item_type(store: QueuedStore) -> None:
    with pytest.raises(TypeError, match="expected a TradeBar, QuoteBar or Tick, got dict"):
        await store.save_market_data({"close": 1.0})  # type: ignore[arg-type]


# ------------------------------------------------------------------ lifecycle errors


async def test_use_before_open_and_after_close_raises(backend: Backend) -> None:
    store = backend.make()
    with pytest.raises(EngineStateError, match="not open"):
        await store.save_market_data(bar())
    await store.open()
    await store.close()
    with pytest.raises(EngineClosedError):
        await store.save_market_data(bar())
    with pytest.raises(EngineClosedError):
        store.save_market_data_nowait(bar())
    with pytest.raises(EngineClosedError):
        await store.flush()
    with pytest.raises(EngineClosedError):
        await store.get_market_data("SPY", T0, T0 + 1)
    with pytest.raises(EngineClosedError, match="create a new instance"):
        await store.open()


# ------------------------------------------------------------------ write failures


def hold_write_lock(path: Path) -> sqlite3.Connection:
    """Take SQLite's write lock from another connection (as another process would)."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


async def test_locked_database_fails_twice_then_writer_recovers(db_path: Path) -> None:
    async with DataPersistence(db_path, busy_timeout_ms=20) as store:
        other = hold_write_lock(db_path)
        await store.save_market_data(bar())
        with pytest.raises(StorageError, match="1 queued rows could not be stored"):
            await store.flush()
        other.execute("COMMIT")
        other.close()
        await store.save_market_data(bar(T0 + NS_PER_MINUTE))
        await store.flush()
        stats = store.statistics()
        failed = stats.pop("failed")  # the lost row degraded storage for good
        assert (failed["kind"], failed["rows_lost"]) == ("locked", 1)
        assert "locked" in failed["message"]
        assert stats == {
            "rows_written": 1,
            "batches": 1,
            "queue_depth": 0,
            "write_failures": 2,
            "rows_lost": 1,
            "rows_rejected": 0,
            "rejected": {},
            "last_batch_rows": 1,
        }
        assert await store.get_market_data("SPY", T0, T0 + NS_PER_DAY) == [bar(T0 + NS_PER_MINUTE)]


async def test_retry_succeeds_once_the_lock_is_released(db_path: Path) -> None:
    async with DataPersistence(db_path, busy_timeout_ms=500) as store:
        other = hold_write_lock(db_path)
        await store.save_market_data(bar())
        flushing = asyncio.create_task(store.flush())
        # the first attempt waits out the busy timeout; commit during the retry's wait
        await eventually(lambda: store.statistics()["write_failures"] == 1, timeout=10)
        other.execute("COMMIT")
        other.close()
        await flushing
        assert store.statistics()["rows_written"] == 1
        assert store.statistics()["rows_lost"] == 0


async def test_dead_writer_makes_flush_and_save_raise(store: QueuedStore) -> None:
    (writer,) = [t for t in asyncio.all_tasks() if t.get_name().startswith("lean_data.storage:")]
    writer.cancel()
    await asyncio.wait({writer})
    with pytest.raises(StorageError, match="writer task was cancelled"):
        await store.flush()
    with pytest.raises(StorageError, match="writer task was cancelled"):
        await store.save_market_data(bar())
    assert await store.count("bars") == 0  # reads still work


def _writer_task() -> asyncio.Task[object]:
    (task,) = [t for t in asyncio.all_tasks() if t.get_name().startswith("lean_data.storage:")]
    return task


async def test_a_task_group_owns_the_writer_when_given_one(backend: Backend) -> None:
    async with asyncio.TaskGroup() as group:
        store = backend.make()
        await store.open(task_group=group)
        writer = _writer_task()
        await store.save_market_data(bar())
        await store.flush()
        await store.close()  # stops the writer, so the group can end
    assert writer.done()
    assert writer.exception() is None
    assert await backend.rows("SELECT COUNT(*) FROM bars") == [(1,)]


async def test_a_dead_writer_degrades_storage_without_cancelling_its_group(
    backend: Backend,
) -> None:
    async with asyncio.TaskGroup() as group:
        store = backend.make()
        await store.open(task_group=group)
        await store.save_market_data(bar())
        await store.flush()  # the writer runs
        writer = _writer_task()
        writer.cancel()
        await asyncio.wait({writer})
        with pytest.raises(StorageError, match="writer task was cancelled"):
            await store.flush()
        with pytest.raises(StorageError, match="writer task was cancelled"):
            await store.save_market_data(bar(T0 + NS_PER_MINUTE))
        assert store.statistics()["failed"]["kind"] == "writer_died"
        assert await store.count("bars") == 1  # reads still work
        await store.close()
    assert writer.cancelled()  # and the group ended normally


@pytest.mark.parametrize("owner", ["store", "task group"])
async def test_a_writer_cancelled_before_it_ran_degrades_storage(
    backend: Backend, owner: str
) -> None:
    async with asyncio.TaskGroup() as group:
        store = backend.make()
        await store.open(task_group=group if owner == "task group" else None)
        writer = _writer_task()
        writer.cancel()  # before its first step: its body never runs
        await asyncio.wait({writer})
        for minute in range(3):  # queued as one run of three rows: each one counts
            assert store.save_market_data_nowait(bar(T0 + minute * NS_PER_MINUTE))
        with pytest.raises(StorageError, match="writer task was cancelled"):
            await store.flush()
        with pytest.raises(StorageError, match="writer task was cancelled"):
            await store.save_error("kind", "message")
        failure = store.failure
        assert failure is not None
        assert (failure.kind, failure.rows_lost) == ("writer_died", 3)
        await store.close()


@pytest.mark.parametrize("kind", [DataPersistence, PostgresStorage])
def test_each_store_has_every_method_of_the_storage_interface(kind: type[QueuedStore]) -> None:
    store: Storage = kind("unused")  # mypy checks the same at the end of each store's module
    names = [name for name in vars(Storage) if not name.startswith("_")]
    assert {"open", "close", "failure", "save_market_data", "last_bar"} <= set(names)
    for name in names:
        member = inspect.getattr_static(Storage, name)
        found = inspect.getattr_static(type(store), name)
        if isinstance(member, property):
            assert isinstance(found, property), name
        else:
            assert inspect.signature(found) == inspect.signature(member), name


# ------------------------------------------------------------------ metrics and errors


async def test_metrics_round_trip_with_nan_and_window(store: QueuedStore) -> None:
    await store.save_metrics({"engine": {"messages": 3}}, ts_ns=NOW - 2 * NS_PER_HOUR)
    snapshot = {"engine": {"messages": 5, "latency": math.nan}, 7: "seven"}
    await store.save_metrics(snapshot)  # type: ignore[arg-type]  # int keys are stringified
    assert await store.get_metrics_history(hours=1) == [
        {"ts_ns": NOW, "metrics": {"engine": {"messages": 5, "latency": None}, "7": "seven"}}
    ]
    assert [m["ts_ns"] for m in await store.get_metrics_history(hours=3)] == [
        NOW - 2 * NS_PER_HOUR,
        NOW,
    ]


async def test_errors_round_trip_newest_first_with_filters(store: QueuedStore) -> None:
    await store.save_error("callback", "boom", feed="a", symbol="SPY", detail="tb", ts_ns=NOW - 3)
    await store.save_error("feed", "lost", feed="b", ts_ns=NOW - 2)
    await store.save_error("callback", "again", ts_ns=NOW - 2 * NS_PER_HOUR)
    newest = {"ts_ns": NOW - 2, "kind": "feed", "feed": "b", "symbol": "", "message": "lost"}
    assert await store.get_errors(limit=1) == [newest | {"detail": ""}]
    assert await store.get_errors(kind="callback", hours=1) == [
        {"ts_ns": NOW - 3, "kind": "callback", "feed": "a", "symbol": "SPY", "message": "boom",
         "detail": "tb"}
    ]  # fmt: skip
    assert [e["message"] for e in await store.get_errors()] == ["lost", "boom", "again"]


# ------------------------------------------------------------------ windows and retention


async def test_recent_data_is_selected_by_receive_time(store: QueuedStore) -> None:
    replayed = bar(T0, ts_recv=NOW - NS_PER_HOUR)  # 2013 event time, received an hour ago
    old = bar(T0 + NS_PER_MINUTE, ts_recv=NOW - 2 * NS_PER_DAY)
    await store.save_market_data(replayed)
    await store.save_market_data(old)
    assert await store.get_recent_data("SPY", hours=24) == [replayed]
    assert await store.get_recent_data("SPY", hours=49) == [replayed, old]


async def test_scored_bars_carry_feed_and_verdict_and_page(store: QueuedStore) -> None:
    good = Verdict(DataQualityLevel.GOOD)
    poor = Verdict(DataQualityLevel.POOR, ("extreme_move", "stale"))
    bars = [bar(T0 + i * NS_PER_MINUTE) for i in range(5)]
    for i, item in enumerate(bars):
        await store.save_market_data(item, feed="a", quality=poor if i == 2 else good)
    await store.save_market_data(bars[0], feed="b")  # saved without a verdict
    rows = await store.get_scored_bars("SPY", T0, T0 + NS_PER_DAY, feed="a")
    assert [r.bar for r in rows] == bars
    assert [(r.feed, r.level, r.reasons) for r in rows[1:3]] == [
        ("a", "GOOD", ""),
        ("a", "POOR", "extreme_move,stale"),
    ]
    assert rows[2].score == DataQualityLevel.POOR.value
    unscored = await store.get_scored_bars("SPY", T0, T0 + 1, feed="b")
    assert [(r.feed, r.score, r.level, r.reasons) for r in unscored] == [("b", None, None, "")]
    page = await store.get_scored_bars(
        "SPY", T0 + NS_PER_MINUTE, T0 + NS_PER_DAY, resolution="1m", feed="a", limit=2
    )
    assert [r.bar for r in page] == bars[1:3]
    assert await store.count("bars", symbol="SPY", feed="a", resolution="1m") == 5
    assert await store.count("bars", feed="b") == 1
    assert await store.count("bars", symbol="SPY", resolution="1h") == 0
    with pytest.raises(ValueError, match="no resolution column"):
        await store.count("ticks", resolution="1m")


async def test_quality_summary_per_feed(store: QueuedStore, backend: Backend) -> None:
    good = Verdict(DataQualityLevel.GOOD)
    poor = Verdict(DataQualityLevel.POOR, ("extreme_move", "stale"))
    await store.save_market_data(bar(T0), feed="a", quality=good)
    await store.save_market_data(bar(T0 + NS_PER_MINUTE), feed="a", quality=poor)
    await store.save_market_data(Tick("SPY", T0, 1.0, 1.0, ts_recv=NOW), feed="b")
    await store.save_market_data(bar(T0, ts_recv=NOW - 2 * NS_PER_DAY), feed="c", quality=good)
    levels = dict.fromkeys(("EXCELLENT", "GOOD", "FAIR", "POOR", "INVALID", "UNSCORED"), 0)
    summary = await store.quality_summary("SPY", hours=24)
    assert summary == {
        "symbol": "SPY",
        "hours": 24,
        "since_ns": NOW - 24 * NS_PER_HOUR,
        "rows": 3,
        "average_score": pytest.approx(0.55),
        "levels": levels | {"GOOD": 1, "POOR": 1, "UNSCORED": 1},
        "feeds": {
            "a": {"rows": 2, "average_score": pytest.approx(0.55),
                  "levels": levels | {"GOOD": 1, "POOR": 1}},
            "b": {"rows": 1, "average_score": None, "levels": levels | {"UNSCORED": 1}},
        },
    }  # fmt: skip
    await store.flush()
    assert await backend.rows("SELECT reasons FROM bars WHERE feed = 'a' ORDER BY ts_event") == [
        ("",),
        ("extreme_move,stale",),
    ]


async def test_retention_deletes_exactly_the_old_rows(store: QueuedStore) -> None:
    old, fresh = NOW - 3 * NS_PER_DAY, NOW - 1 * NS_PER_DAY
    for i, ts in enumerate((old, fresh)):
        await store.save_market_data(bar(T0 + i, ts_recv=ts))
        await store.save_market_data(QuoteBar("SPY", T0 + i, *(1.0,) * 10, ts_recv=ts))
        await store.save_market_data(Tick("SPY", T0 + i, 1.0, 1.0, ts_recv=ts))
        await store.save_metrics({"i": i}, ts_ns=ts)
        await store.save_error("feed", f"e{i}", ts_ns=ts)
    deleted = await store.apply_retention(days=2)
    assert deleted == {"bars": 1, "quote_bars": 1, "ticks": 1, "metrics": 1, "errors": 1,
                       **NO_DERIVATIVES}  # fmt: skip
    assert await store.get_market_data("SPY", T0, T0 + 2) == [bar(T0 + 1, ts_recv=fresh)]
    assert [t.ts_event for t in await store.get_ticks("SPY", T0, T0 + 2)] == [T0 + 1]
    assert await store.get_metrics_history(hours=72) == [{"ts_ns": fresh, "metrics": {"i": 1}}]
    assert [e["message"] for e in await store.get_errors()] == ["e1"]
    with pytest.raises(ValueError, match="days must be > 0"):
        await store.apply_retention(0)


async def test_a_series_another_process_retained_away_is_listed_again_with_its_next_bars(
    backend: Backend, store: QueuedStore, clock: Clock
) -> None:
    await store.save_market_data(bar(T0, ts_recv=NOW - 3 * NS_PER_DAY))
    await store.flush()
    async with backend.make(clock_ns=clock) as other:  # another process, same database
        assert await other.apply_retention(days=2) == {
            "bars": 1, "quote_bars": 0, "ticks": 0, "metrics": 0, "errors": 0, **NO_DERIVATIVES,
        }  # fmt: skip
        assert await other.bar_series_keys() == []  # the series had no bar left
    await store.save_market_data(bar(T0 + NS_PER_MINUTE))  # the first store, which wrote it before
    await store.flush()
    assert await store.bar_series_keys() == [("", "SPY", Resolution.MINUTE)]


async def test_stored_feeds_lists_each_tables_feeds_of_a_symbol(store: QueuedStore) -> None:
    await store.save_market_data(bar(), feed="b")
    await store.save_market_data(bar(), feed="a")
    await store.save_market_data(Tick("SPY", T0, 1.0, 1.0), feed="t")
    assert await store.stored_feeds("SPY") == ["a", "b"]
    assert await store.stored_feeds("SPY", "ticks") == ["t"]
    assert await store.stored_feeds("SPY", "quote_bars") == []
    assert await store.stored_feeds("QQQ") == []
    with pytest.raises(ValueError, match="table must be one of"):
        await store.stored_feeds("SPY", "errors")


async def test_stored_symbols_lists_each_tables_symbols(store: QueuedStore) -> None:
    await store.save_market_data(bar(symbol="QQQ"), feed="b")
    await store.save_market_data(bar(), feed="a")
    await store.save_market_data(bar(), feed="b")
    await store.save_market_data(Tick("IBM", T0, 1.0, 1.0), feed="t")
    assert await store.stored_symbols() == ["QQQ", "SPY"]
    assert await store.stored_symbols("ticks") == ["IBM"]
    assert await store.stored_symbols("quote_bars") == []
    with pytest.raises(ValueError, match="table must be one of"):
        await store.stored_symbols("bars; DROP TABLE bars")


def test_statement_values_bind_flags_as_ints_and_leave_other_values_alone() -> None:
    """sqlite3 binds a bool through its adapter lookup (~0.35 µs, GIL held): flags go as 1
    and 0, which is what SQLite stores for them; every other value, hostile ones included
    (a kept INVALID bar's flag may be anything), is passed on as it is."""
    from lean_data.storage.rows import statement_values

    nan = float("nan")
    rows = [
        ("binance", "BTC/USDT", "1m", 60, 1.0, 2.0, 0.5, 1.5, nan, True, 0, False, None),
        ("binance", "ETH/USDT", "1m", 60, 1.0, 2.0, 0.5, 1.5, 3.0, False, 1, True, "x"),
        ("kraken", "BTC/USD", "1m", 120, 1, 2, 0, 1, 3, "yes", 2, 1.0, ""),
    ]
    ids = {("binance", "BTC/USDT", "1m"): 7, ("binance", "ETH/USDT", "1m"): 8}
    ids[("kraken", "BTC/USD", "1m")] = 9
    flat = statement_values(rows, 0, 3, ids)
    expected = [7, 60, 1.0, 2.0, 0.5, 1.5, nan, 1, 0, 0, None]
    expected += [8, 60, 1.0, 2.0, 0.5, 1.5, 3.0, 0, 1, 1, "x"]
    expected += [9, 120, 1, 2, 0, 1, 3, "yes", 2, 1.0, ""]
    assert len(flat) == len(expected)
    for got, want in zip(flat, expected, strict=True):
        assert type(got) is type(want)
        assert got is want or got == want  # NaN: the same object
    assert statement_values(rows, 1, 2) == [
        "binance", "ETH/USDT", "1m", 60, 1.0, 2.0, 0.5, 1.5, 3.0, 0, 1, 1, "x"
    ]  # fmt: skip


class _ClearedList(list[Any]):
    """A batch list that remembers which thread emptied it."""

    cleared_by: int | None = None

    def clear(self) -> None:
        self.cleared_by = threading.get_ident()
        super().clear()


async def test_a_committed_batch_is_emptied_in_the_connections_thread(tmp_path: Path) -> None:
    """Once the commit succeeded, the batch's lists are emptied by aiosqlite's thread, which
    read the rows last (not on the event loop's core); a transaction that fails keeps
    them for the retry."""
    import aiosqlite

    sink = sqlite_sink.SqliteSink()
    sink.db = await aiosqlite.connect(tmp_path / "t.db")
    try:
        await sink.db.execute("CREATE TABLE t (x INTEGER)")
        await sink.db.commit()
        groups = [_ClearedList([(1,), (2,)]), _ClearedList()]
        async with sink.transaction(groups, immediate=False) as tx:
            await tx.db.executemany("INSERT INTO t VALUES (?)", groups[0])
        assert groups == [[], []]
        assert groups[0].cleared_by not in (None, threading.get_ident())
        kept = [_ClearedList([(3,)])]

        async def failing() -> None:
            async with sink.transaction(kept, immediate=False) as tx:
                await tx.db.executemany("INSERT INTO t VALUES (?)", kept[0])
                raise RuntimeError("a row's fault")

        with pytest.raises(RuntimeError, match="a row's fault"):
            await failing()
        assert kept == [[(3,)]]
        assert kept[0].cleared_by is None
        async with sink.db.execute("SELECT x FROM t ORDER BY x") as cursor:
            assert await cursor.fetchall() == [(1,), (2,)]
    finally:
        await sink.db.close()
