"""Coverage intervals, restart queries and the schema migration of the stores.

Tests taking ``backend`` run on a SQLite file in tmp_path and on a fresh PostgreSQL schema;
SQLite's own facts (query plans, its lock, a killed writer process, the version-1 file)
stay SQLite-only. Bars are FTX BTC-PERP 1-minute bars
(tests/fixtures/nautilus_trader/btc-perp-20211231-20220201_1m.csv, contiguous minutes).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lean_data.errors import EngineClosedError, StorageError
from lean_data.loaders import load_file
from lean_data.models import NS_PER_DAY, NS_PER_MINUTE, QuoteBar, Resolution, TradeBar
from lean_data.series.intervals import clip, overlay
from lean_data.storage import schema as sch
from lean_data.storage.sqlite import DataPersistence
from lean_data.storage.store import QueuedStore
from tests.backends import NO_DERIVATIVES, Backend
from tests.conftest import FIXTURES, eventually

M = NS_PER_MINUTE
MINUTE = Resolution.MINUTE
NOW = 1_700_000_000 * 1_000_000_000
T0 = 1_640_991_660_000_000_000  # open time of the first BTC-PERP bar, 2021-12-31T23:01Z
CSV = FIXTURES / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def btc() -> list[TradeBar]:
    bars = load_file(CSV, symbol="BTC-PERP")
    assert all(isinstance(b, TradeBar) for b in bars)
    return bars  # type: ignore[return-value]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "lean.db"


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[QueuedStore]:
    # batch_ms of a minute: every read below relies on the read barrier, not on timing
    async with backend.make(batch_ms=60_000, clock_ns=lambda: NOW) as persistence:
        yield persistence


COVERAGE_ROWS = "SELECT start_ns, end_ns, empty FROM coverage WHERE feed = ? ORDER BY start_ns"


def received(bar: TradeBar, ts_recv: int = NOW) -> TradeBar:
    return dataclasses.replace(bar, ts_recv=ts_recv)


def sqlite_rows(path: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Read with a separate, plain sqlite3 connection."""
    with sqlite3.connect(path) as other:
        rows = other.execute(sql, params).fetchall()
    other.close()
    return rows


async def stored_coverage(backend: Backend, feed: str = "ftx") -> list[tuple[Any, ...]]:
    sql = "SELECT start_ns, end_ns, empty FROM coverage WHERE feed = ? ORDER BY start_ns"
    return [(s, e, int(empty)) for s, e, empty in await backend.rows(sql, feed)]


async def cover(store: QueuedStore, start: int, end: int, *, empty: bool = False) -> None:
    await store.record_coverage(
        "ftx", "BTC-PERP", MINUTE, T0 + start * M, T0 + end * M, empty=empty
    )


async def coverage(store: QueuedStore, start: int, end: int) -> list[tuple[int, int, bool]]:
    found = await store.get_coverage("ftx", "BTC-PERP", MINUTE, T0 + start * M, T0 + end * M)
    return [((s - T0) // M, (e - T0) // M, empty) for s, e, empty in found]


async def missing(store: QueuedStore, start: int, end: int) -> list[tuple[int, int]]:
    found = await store.missing_intervals("ftx", "BTC-PERP", "1m", T0 + start * M, T0 + end * M)
    return [((s - T0) // M, (e - T0) // M) for s, e in found]


# ------------------------------------------------------------------ merging and precedence


async def test_overlapping_and_touching_intervals_coalesce(
    store: QueuedStore, backend: Backend
) -> None:
    for start, end in ((0, 10), (10, 20), (15, 30), (40, 50), (45, 46)):
        await cover(store, start, end)
    assert await coverage(store, 0, 60) == [(0, 30, False), (40, 50, False)]
    expected = [(T0, T0 + 30 * M, 0), (T0 + 40 * M, T0 + 50 * M, 0)]
    assert await stored_coverage(backend) == expected
    await cover(store, 30, 40)  # fills the hole: one row remains
    await store.flush()  # for the other connection
    assert await stored_coverage(backend) == [(T0, T0 + 50 * M, 0)]


async def test_covered_wins_over_known_empty_in_either_order(
    store: QueuedStore, backend: Backend
) -> None:
    await cover(store, 0, 60, empty=True)
    await cover(store, 10, 20)
    expected = [(0, 10, True), (10, 20, False), (20, 60, True)]
    assert await coverage(store, 0, 60) == expected
    await cover(store, 15, 25, empty=True)  # under a covered interval and an empty one
    assert await coverage(store, 0, 60) == expected
    await cover(store, 55, 70)  # overlaps the empty tail and extends past it
    assert await coverage(store, 0, 80) == [*expected[:2], (20, 55, True), (55, 70, False)]
    assert len(await stored_coverage(backend)) == 4
    # the other order on another feed: empty recorded after the covered part
    for feed_order in (("covered", 10, 20), ("empty", 0, 60)):
        kind, start, end = feed_order
        await store.record_coverage(
            "other", "BTC-PERP", MINUTE, T0 + start * M, T0 + end * M, empty=kind == "empty"
        )
    await store.flush()
    assert await stored_coverage(backend, "other") == [
        (T0, T0 + 10 * M, 1),
        (T0 + 10 * M, T0 + 20 * M, 0),
        (T0 + 20 * M, T0 + 60 * M, 1),
    ]


async def test_coverage_is_clipped_to_the_span(store: QueuedStore) -> None:
    await cover(store, 0, 10)
    await cover(store, 10, 20, empty=True)
    await cover(store, 30, 40)
    assert await coverage(store, 5, 35) == [(5, 10, False), (10, 20, True), (30, 35, False)]
    assert await coverage(store, 12, 13) == [(12, 13, True)]  # inside one row
    assert await coverage(store, 20, 30) == []  # the hole, bounded by rows on both sides
    assert await coverage(store, 40, 50) == []  # starts where the last row ends
    assert await coverage(store, -5, 0) == []  # ends where the first row starts
    assert await coverage(store, 7, 7) == []


async def test_missing_intervals_skip_covered_and_known_empty(store: QueuedStore) -> None:
    assert await missing(store, 0, 60) == [(0, 60)]
    await cover(store, 10, 20)
    await cover(store, 25, 30, empty=True)
    await cover(store, 50, 70)
    assert await missing(store, 0, 60) == [(0, 10), (20, 25), (30, 50)]
    assert await missing(store, 12, 28) == [(20, 25)]
    assert await missing(store, 50, 60) == []
    assert await missing(store, 60, 60) == []


async def test_series_are_independent(store: QueuedStore) -> None:
    await cover(store, 0, 10)
    for feed, symbol, resolution in (
        ("alpaca", "BTC-PERP", MINUTE),
        ("ftx", "ETH-PERP", MINUTE),
        ("ftx", "BTC-PERP", Resolution.parse("5m")),
    ):
        assert await store.get_coverage(feed, symbol, resolution, T0, T0 + 10 * M) == []
    assert await coverage(store, 0, 10) == [(0, 10, False)]


async def test_random_records_match_the_interval_reference(
    store: QueuedStore, backend: Backend
) -> None:
    rng = random.Random(20240117)  # injected randomness: the same sequence every run
    covered: list[tuple[int, int]] = []
    empty: list[tuple[int, int]] = []
    for step in range(300):
        start = T0 + rng.randrange(0, 20_000) * M
        interval = (start, start + rng.randrange(1, 40) * M)
        is_empty = rng.random() < 0.4
        (empty if is_empty else covered).append(interval)
        await store.record_coverage("ftx", "BTC-PERP", MINUTE, *interval, empty=is_empty)
        if step % 37 == 0:  # reads force commits at varied points: many records per batch
            lo, hi = (T0 + rng.randrange(0, 20_100) * M for _ in range(2))
            got = await store.get_coverage("ftx", "BTC-PERP", MINUTE, lo, hi)
            assert got == clipped(overlay(covered, empty), lo, hi)
    reference = overlay(covered, empty)
    assert len(reference) > 100
    assert await store.get_coverage("ftx", "BTC-PERP", MINUTE, T0 - M, T0 + 30_000 * M) == reference
    await store.flush()
    assert [(s, e, bool(f)) for s, e, f in await stored_coverage(backend)] == reference
    assert store.statistics()["rows_written"] == 300


def clipped(layered: list[tuple[int, int, bool]], lo: int, hi: int) -> list[tuple[int, int, bool]]:
    if hi <= lo:
        return []
    return [(s, e, flag) for start, end, flag in layered for s, e in clip([(start, end)], (lo, hi))]


async def test_bad_arguments_and_closed_store(backend: Backend) -> None:
    store = backend.make()
    async with store:
        with pytest.raises(ValueError, match=r"start_ns <= end_ns, got \[5, 4\) for ftx/BTC-PERP"):
            await store.record_coverage("ftx", "BTC-PERP", MINUTE, 5, 4)
        with pytest.raises(ValueError, match="resolution"):
            await store.record_coverage("ftx", "BTC-PERP", "fortnightly", 4, 5)
        await store.record_coverage("ftx", "BTC-PERP", MINUTE, 5, 5)  # empty: ignored
        assert await store.get_coverage("ftx", "BTC-PERP", MINUTE, 0, 10) == []
        assert store.statistics()["rows_written"] == 0
    with pytest.raises(EngineClosedError):
        await store.record_coverage("ftx", "BTC-PERP", MINUTE, 0, 1)
    with pytest.raises(EngineClosedError):
        await store.get_coverage("ftx", "BTC-PERP", MINUTE, 0, 1)


# ------------------------------------------------------------------ ordering with the bars


CHILD = """
import asyncio, sys
from lean_data.loaders import load_file
from lean_data.storage.sqlite import DataPersistence

async def main(db, csv):
    bars = load_file(csv, symbol="BTC-PERP")[:5000]
    # commits only when 64 entries are queued: the tail waits for batch_ms (10 minutes)
    async with DataPersistence(db, batch_rows=64, batch_ms=600_000) as store:
        for k in range(0, 5000, 50):
            chunk = bars[k:k + 50]
            for bar in chunk:
                await store.save_market_data(bar, feed="ftx")
            end = chunk[-1].ts_event + 60_000_000_000
            await store.record_coverage("ftx", "BTC-PERP", "1m", chunk[0].ts_event, end)
        print("queued", flush=True)
        await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_sigkill_never_leaves_coverage_without_its_bars(
    db_path: Path, btc: list[TradeBar]
) -> None:
    """A process queues 100 chunks of 50 bars, each followed by its coverage, and is killed.

    Entries: chunk k's bars, then its coverage at index 51k + 50. 64-entry batches commit
    79 times (5056 entries): 4957 bars and the coverage of chunks 0..98 (index 5048); the
    last 44 entries (43 bars, then chunk 99's coverage) die with the process.
    """
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(db_path), str(CSV),
        cwd=REPO, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        async with asyncio.timeout(60):
            assert await child.stdout.readline() == b"queued\n"
        count = "SELECT COUNT(*) FROM bars"
        await eventually(lambda: sqlite_rows(db_path, count)[0][0] >= 4957, timeout=30)
        child.send_signal(signal.SIGKILL)
        assert await child.wait() == -signal.SIGKILL
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert sqlite_rows(db_path, "PRAGMA integrity_check") == [("ok",)]
    async with DataPersistence(db_path) as store:
        stored = await store.get_market_data("BTC-PERP", T0, T0 + NS_PER_DAY * 30, feed="ftx")
        assert [received(b, 0) for b in stored] == btc[:4957]
        span = (T0, btc[4999].ts_event + M)
        assert await store.get_coverage("ftx", "BTC-PERP", MINUTE, *span) == [
            (T0, btc[4950].ts_event, False)
        ]
        assert await store.missing_intervals("ftx", "BTC-PERP", MINUTE, *span) == [
            (btc[4950].ts_event, span[1])
        ]


def hold_write_lock(path: Path) -> sqlite3.Connection:
    """Take SQLite's write lock from another connection (as another process would)."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


async def test_coverage_skips_bars_lost_after_a_retry(db_path: Path, btc: list[TradeBar]) -> None:
    ts = [b.ts_event for b in btc[:7]]
    async with DataPersistence(db_path, busy_timeout_ms=20, clock_ns=lambda: NOW) as store:
        other = hold_write_lock(db_path)
        for bar in btc[:3]:
            await store.save_market_data(bar, feed="ftx")
        with pytest.raises(StorageError, match="3 queued rows could not be stored"):
            await store.flush()
        other.execute("COMMIT")
        other.close()
        for bar in btc[3:6]:
            await store.save_market_data(bar, feed="ftx")
        await store.record_coverage("ftx", "BTC-PERP", MINUTE, ts[0], ts[6])
        assert await store.get_coverage("ftx", "BTC-PERP", MINUTE, ts[0], ts[6]) == [
            (ts[3], ts[6], False)
        ]
        assert await store.missing_intervals("ftx", "BTC-PERP", MINUTE, ts[0], ts[6]) == [
            (ts[0], ts[3])
        ]
        # bars 1 and 2 are fetched again and stored: coverage may now claim them, not bar 0
        for bar in btc[1:3]:
            await store.save_market_data(bar, feed="ftx")
        await store.record_coverage("ftx", "BTC-PERP", MINUTE, ts[0], ts[6])
        assert await store.missing_intervals("ftx", "BTC-PERP", MINUTE, ts[0], ts[6]) == [
            (ts[0], ts[1])
        ]
        stored = await store.get_market_data("BTC-PERP", ts[0], ts[6])
        assert stored == [received(b) for b in btc[1:6]]


async def test_reads_see_coverage_and_bars_queued_before_them(
    store: QueuedStore, btc: list[TradeBar]
) -> None:
    await store.save_market_data(btc[0], feed="ftx")
    await cover(store, 0, 1)
    # batch_ms is a minute: only the read barrier can have committed these
    assert await store.last_bar("ftx", "BTC-PERP", MINUTE) == received(btc[0])
    assert await coverage(store, 0, 1) == [(0, 1, False)]
    assert store.statistics() == {
        "rows_written": 2,
        "batches": 1,
        "queue_depth": 0,
        "write_failures": 0,
        "rows_lost": 0,
        "rows_rejected": 0,
        "rejected": {},
        "last_batch_rows": 2,
        "failed": None,
    }


# ------------------------------------------------------------------ restart queries


async def test_last_bar_and_series_keys_on_real_bars(backend: Backend, btc: list[TradeBar]) -> None:
    async with backend.make(clock_ns=lambda: NOW) as store:
        assert await store.bar_series_keys() == []
        assert await store.last_bar("ftx", "BTC-PERP", MINUTE) is None
        for bar in btc:
            await store.save_market_data(bar, feed="ftx")
        for bar in btc[:1000]:
            await store.save_market_data(bar, feed="backup")
        quote = QuoteBar("BTC-PERP", T0, *(1.0,) * 10, resolution=Resolution.parse("5m"))
        await store.save_market_data(quote, feed="quotes")  # quote bars are no bar series
        forming = dataclasses.replace(btc[-1], ts_event=btc[-1].ts_event + M, closed=False)
        await store.save_market_data(forming, feed="ftx")
        assert await store.bar_series_keys() == [
            ("backup", "BTC-PERP", MINUTE),
            ("ftx", "BTC-PERP", MINUTE),
        ]
        assert await store.last_bar("ftx", "BTC-PERP", MINUTE) == received(forming)
        assert await store.last_bar("ftx", "BTC-PERP", "1m", closed_only=True) == received(btc[-1])
        assert await store.last_bar("backup", "BTC-PERP", MINUTE) == received(btc[999])
        assert await store.last_bar("ftx", "BTC-PERP", Resolution.parse("5m")) is None
        assert await store.last_bar("ftx", "ETH-PERP", MINUTE) is None
    # after a restart the same answers come from the database
    async with backend.make() as again:
        assert [k[0] for k in await again.bar_series_keys()] == ["backup", "ftx"]
        assert await again.last_bar("backup", "BTC-PERP", MINUTE) == received(btc[999])


def query_plan(path: Path, sql: str, params: tuple[object, ...]) -> list[str]:
    return [str(row[3]) for row in sqlite_rows(path, f"EXPLAIN QUERY PLAN {sql}", *params)]


async def test_restart_and_coverage_queries_walk_primary_keys(db_path: Path) -> None:
    async with DataPersistence(db_path):  # creates the file
        pass
    path = db_path
    series = ("ftx", "BTC-PERP", "1m")
    for sql in (sch.LAST_BAR, sch.LAST_CLOSED_BAR):
        assert query_plan(path, sql, series) == [
            "SEARCH s USING COVERING INDEX bar_series_key (symbol=? AND resolution=? AND feed=?)",
            "SEARCH b USING PRIMARY KEY (series_id=?)",
        ]  # the series' id, then its rows walked backwards: no TEMP B-TREE for the ORDER BY
    for sql in (sch.COVERAGE_OVERLAPPING, sch.COVERAGE_TOUCHING):
        assert query_plan(path, sql, (*series, T0, T0 + M)) == [
            "SEARCH coverage USING PRIMARY KEY "
            "(feed=? AND symbol=? AND resolution=? AND start_ns>? AND start_ns<?)",
            "SCALAR SUBQUERY 1",
            "SEARCH coverage USING PRIMARY KEY "
            "(feed=? AND symbol=? AND resolution=? AND start_ns<?)",
        ]
    assert query_plan(path, sch.SQLITE_SERIES_KEYS, ()) == [
        "SCAN s",  # one row per series, and one key lookup to see it has bars
        "CORRELATED SCALAR SUBQUERY 1",
        "SEARCH bar_rows USING PRIMARY KEY (series_id=?)",
    ]


async def test_coverage_survives_a_restart(backend: Backend) -> None:
    async with backend.make() as first:
        await cover(first, 0, 10)
        await cover(first, 10, 20, empty=True)
    async with backend.make() as second:
        assert await coverage(second, 0, 30) == [(0, 10, False), (10, 20, True)]


async def test_retention_trims_coverage_of_deleted_bars_and_prunes_series(
    backend: Backend, btc: list[TradeBar]
) -> None:
    old = NOW - 3 * NS_PER_DAY
    async with backend.make(clock_ns=lambda: NOW) as store:
        for i, bar in enumerate(btc[:20]):
            await store.save_market_data(received(bar, old if i < 10 else NOW), feed="ftx")
        for bar in btc[:5]:
            await store.save_market_data(received(bar, old), feed="gone")
        await cover(store, 0, 20)
        await cover(store, 20, 30, empty=True)
        await store.record_coverage("gone", "BTC-PERP", MINUTE, T0, T0 + 5 * M)
        deleted = await store.apply_retention(days=2)
        assert deleted == {"bars": 15, "quote_bars": 0, "ticks": 0, "metrics": 0, "errors": 0,
                           **NO_DERIVATIVES}  # fmt: skip
        assert await coverage(store, 0, 40) == [(10, 20, False), (20, 30, True)]
        assert await store.get_coverage("gone", "BTC-PERP", MINUTE, T0, T0 + 5 * M) == []
        assert await store.bar_series_keys() == [("ftx", "BTC-PERP", MINUTE)]
        await store.save_market_data(btc[0], feed="gone")  # the series comes back
        assert [k[0] for k in await store.bar_series_keys()] == ["ftx", "gone"]


# ------------------------------------------------------------------ migration from version 1

V1_DDL = (  # sqlite_master of a file created by the version-1 code (commit 5875f9e)
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE bars (feed TEXT NOT NULL, symbol TEXT NOT NULL, resolution TEXT NOT NULL, "
    "ts_event INT NOT NULL, open REAL, high REAL, low REAL, close REAL, volume REAL, "
    "closed INT NOT NULL, revision INT NOT NULL, backfilled INT NOT NULL, quality_score REAL, "
    "quality_level TEXT, reasons TEXT NOT NULL, ts_recv INT NOT NULL, "
    "PRIMARY KEY (symbol, resolution, ts_event, feed)) WITHOUT ROWID",
    "CREATE TABLE quote_bars (feed TEXT NOT NULL, symbol TEXT NOT NULL, resolution TEXT NOT "
    "NULL, ts_event INT NOT NULL, bid_open REAL, bid_high REAL, bid_low REAL, bid_close REAL, "
    "bid_size REAL, ask_open REAL, ask_high REAL, ask_low REAL, ask_close REAL, ask_size REAL, "
    "closed INT NOT NULL, revision INT NOT NULL, backfilled INT NOT NULL, quality_score REAL, "
    "quality_level TEXT, reasons TEXT NOT NULL, ts_recv INT NOT NULL, "
    "PRIMARY KEY (symbol, resolution, ts_event, feed)) WITHOUT ROWID",
    "CREATE TABLE ticks (id INTEGER PRIMARY KEY, feed TEXT NOT NULL, symbol TEXT NOT NULL, "
    "ts_event INT NOT NULL, tick_type TEXT NOT NULL, price REAL, size REAL, bid_price REAL, "
    "bid_size REAL, ask_price REAL, ask_size REAL, exchange TEXT NOT NULL, condition TEXT NOT "
    "NULL, suspicious INT NOT NULL, trade_id TEXT NOT NULL, quality_score REAL, "
    "quality_level TEXT, reasons TEXT NOT NULL, ts_recv INT NOT NULL)",
    "CREATE INDEX ticks_symbol_ts ON ticks (symbol, ts_event)",
    "CREATE TABLE metrics (id INTEGER PRIMARY KEY, ts INT NOT NULL, payload TEXT NOT NULL)",
    "CREATE INDEX metrics_ts ON metrics (ts)",
    "CREATE TABLE errors (id INTEGER PRIMARY KEY, ts INT NOT NULL, kind TEXT NOT NULL, "
    "feed TEXT NOT NULL, symbol TEXT NOT NULL, message TEXT NOT NULL, detail TEXT NOT NULL)",
    "CREATE INDEX errors_ts ON errors (ts)",
)


def write_version_1_file(path: Path, bars: list[TradeBar]) -> None:
    """Write a file as the version-1 code left it: its tables, WAL, bars of two feeds."""
    rows = [
        (feed, b.symbol, "1m", b.ts_event, b.open, b.high, b.low, b.close, b.volume,
         1, 0, 0, None, None, "", NOW)
        for feed, chunk in (("ftx", bars), ("backup", bars[:10]))
        for b in chunk
    ]  # fmt: skip
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        for statement in V1_DDL:
            db.execute(statement)
        db.execute("INSERT INTO schema_version (version) VALUES (1)")
        db.executemany(f"INSERT INTO bars VALUES ({', '.join('?' * 16)})", rows)
    db.close()


async def test_version_1_file_gains_coverage_and_series_tables(
    db_path: Path, btc: list[TradeBar]
) -> None:
    write_version_1_file(db_path, btc[:100])
    async with DataPersistence(db_path, clock_ns=lambda: NOW) as store:
        assert await store.bar_series_keys() == [
            ("backup", "BTC-PERP", MINUTE),
            ("ftx", "BTC-PERP", MINUTE),
        ]
        assert await store.last_bar("ftx", "BTC-PERP", MINUTE) == received(btc[99])
        assert await store.last_bar("backup", "BTC-PERP", MINUTE) == received(btc[9])
        assert await missing(store, 0, 100) == [(0, 100)]
        await cover(store, 0, 100)
        await store.save_market_data(btc[100], feed="ftx")
    assert sqlite_rows(db_path, "SELECT version FROM schema_version") == [(5,)]
    schema = dict(sqlite_rows(db_path, "SELECT name, sql FROM sqlite_master"))
    derivatives = ["funding_rates", "open_interest", "mark_prices", "liquidations"]  # version 3
    books = ["book_snapshots", "book_snapshots_event"]  # version 4
    by_id = ["bar_rows", "bar_series_key"]  # version 5 (bars is a view of bar_rows)
    added = ["coverage", "bar_series", *derivatives, *books, *by_id]
    assert sorted(schema) == sorted([s.split()[2] for s in V1_DDL] + added)
    old = [s for s in V1_DDL if s.split()[2] != "bars"]  # bars: a view since version 5
    assert [schema[s.split()[2]] for s in old] == old  # the other old tables untouched
    assert schema["bars"] == sch.BARS_VIEW.replace("IF NOT EXISTS ", "")
    assert sqlite_rows(db_path, "SELECT COUNT(*) FROM bars") == [(111,)]
    assert [(s, e, f) for s, e, f in sqlite_rows(db_path, COVERAGE_ROWS, "ftx")] == [
        (T0, T0 + 100 * M, 0)
    ]
    async with DataPersistence(db_path) as again:  # version 5 opens as it is
        assert await again.last_bar("ftx", "BTC-PERP", MINUTE) == received(btc[100])
        assert await coverage(again, 0, 200) == [(0, 100, False)]


async def test_file_without_a_migration_path_is_refused(db_path: Path) -> None:
    write_version_1_file(db_path, [])
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE schema_version SET version = 0")
    db.close()
    with pytest.raises(StorageError, match="schema version 0 has no migration to 5"):
        await DataPersistence(db_path).open()
    assert sqlite_rows(db_path, "SELECT name FROM sqlite_master WHERE name = 'coverage'") == []


async def test_an_up_to_date_file_opens_while_another_writer_holds_the_lock(
    db_path: Path, btc: list[TradeBar]
) -> None:
    async with DataPersistence(db_path) as first:
        await first.save_market_data(btc[0], feed="ftx")
    other = hold_write_lock(db_path)
    try:
        async with DataPersistence(db_path, busy_timeout_ms=0) as second:
            assert await second.bar_series_keys() == [("ftx", "BTC-PERP", MINUTE)]
    finally:
        other.execute("ROLLBACK")
        other.close()
    write_version_1_file(db_path.with_name("v1.db"), btc[:1])
    other = hold_write_lock(db_path.with_name("v1.db"))
    try:  # a migration needs the write lock
        with pytest.raises(StorageError, match="database is locked"):
            await DataPersistence(db_path.with_name("v1.db"), busy_timeout_ms=0).open()
    finally:
        other.execute("ROLLBACK")
        other.close()
