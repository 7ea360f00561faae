"""SQLite schema version 5: trade bars keyed by series id, and the migration from version 4.

``fixtures/storage/schema_v4.db`` was written by the version-4 code (commit d2b314a, with
``fixtures/storage/make_schema_v4.py``): real FTX BTC-PERP minute bars under several
series, a revision, an in-progress bar with a NaN volume, a verdict, a sub-second
resolution, coverage, and a row of each other table. Each test opens a copy.
"""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from lean_data.models import Resolution, TradeBar
from lean_data.storage import schema as sch
from lean_data.storage.rows import bar_from_row, resolution_from_text
from lean_data.storage.sqlite import DataPersistence
from tests.conftest import FIXTURES

V4_FILE = FIXTURES / "storage" / "schema_v4.db"
NOW = 1_700_000_000_000_000_000  # the fixture's receive and save time
MINUTE = Resolution.MINUTE
BAR_ORDER = "ORDER BY feed, symbol, resolution, ts_event"
UNTOUCHED = ("quote_bars", "ticks", "metrics", "errors", "coverage", "funding_rates")


def rows(path: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


@pytest.fixture
def v4(tmp_path: Path) -> Path:
    path = tmp_path / "lean.db"
    shutil.copyfile(V4_FILE, path)
    return path


def test_the_fixture_is_a_version_4_file() -> None:
    assert rows(V4_FILE, "SELECT version FROM schema_version") == [(4,)]
    assert rows(V4_FILE, "SELECT type FROM sqlite_master WHERE name = 'bars'") == [("table",)]
    assert rows(V4_FILE, "SELECT COUNT(*) FROM bars") == [(49,)]


async def test_version_4_file_is_migrated_keeping_every_row(v4: Path) -> None:
    bars_before = rows(v4, f"SELECT * FROM bars {BAR_ORDER}")
    series_before = rows(v4, "SELECT feed, symbol, resolution FROM bar_series")
    others = {table: rows(v4, f"SELECT * FROM {table}") for table in UNTOUCHED}
    async with DataPersistence(v4, clock_ns=lambda: NOW) as store:
        assert await store.bar_series_keys() == sorted(
            ((f, s, resolution_from_text(r)) for f, s, r in series_before),
            key=lambda k: (k[0], k[1], k[2].nanos),
        )
        for feed, symbol, res in series_before:
            old = [r for r in bars_before if r[:3] == (feed, symbol, res)]
            expected = [bar_from_row(sch_select_row(r)) for r in old]
            resolution = resolution_from_text(res)
            got = await store.get_market_data(symbol, 0, 2**62, resolution=resolution, feed=feed)
            assert got == expected
            assert await store.last_bar(feed, symbol, resolution) == expected[-1]
        assert await store.missing_intervals("ftx", "BTC-PERP", MINUTE, 0, 60 * 10**9) == []
    assert rows(v4, "SELECT version FROM schema_version") == [(5,)]
    assert rows(v4, f"SELECT * FROM bars {BAR_ORDER}") == bars_before  # the view, as before
    kinds = dict(rows(v4, "SELECT name, type FROM sqlite_master"))
    assert (kinds["bars"], kinds["bar_rows"], kinds["bar_series_key"]) == ("view", "table", "index")
    assert "bar_series_v5" not in kinds
    assert rows(v4, "SELECT COUNT(*) FROM bar_rows") == [(len(bars_before),)]
    assert rows(v4, "SELECT COUNT(*) FROM bar_rows WHERE series_id NOT IN "
                    "(SELECT id FROM bar_series)") == [(0,)]  # fmt: skip
    assert {table: rows(v4, f"SELECT * FROM {table}") for table in UNTOUCHED} == others
    assert rows(v4, "PRAGMA quick_check") == [("ok",)]
    assert rows(v4, "PRAGMA foreign_key_check") == []


def sch_select_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A ``SELECT * FROM bars`` row (BAR_COLUMNS order) in ``SELECT["bars"]`` order."""
    named = dict(zip(sch.BAR_COLUMNS, row, strict=True))
    columns = sch.SELECT["bars"].removeprefix("SELECT ").split(" FROM ")[0].split(", ")
    return tuple(named[c] for c in columns)


async def test_a_migrated_file_takes_revisions_and_new_series(v4: Path) -> None:
    async with DataPersistence(v4, clock_ns=lambda: NOW) as store:
        stored = await store.get_market_data("BTC-PERP", 0, 2**62, resolution="1m", feed="backup")
        last = stored[-1]
        revised = dataclasses.replace(last, close=last.close + 5.0, revision=last.revision + 1)
        await store.save_market_data(revised, feed="backup")
        stale = dataclasses.replace(last, close=0.0, revision=0)
        await store.save_market_data(stale, feed="backup")  # a lower revision never wins
        fresh = TradeBar("ETH-PERP", last.ts_event, 1.0, 2.0, 0.5, 1.5, 3.0, ts_recv=NOW)
        await store.save_market_data(fresh, feed="ftx")
        assert await store.last_bar("backup", "BTC-PERP", MINUTE) == revised
        assert await store.get_market_data("ETH-PERP", 0, 2**62) == [fresh]
    ids = dict(rows(v4, "SELECT symbol || '/' || feed || '/' || resolution, id FROM bar_series"))
    assert ids["ETH-PERP/ftx/1m"] == max(ids.values())  # a new id after the migrated ones
    async with DataPersistence(v4) as again:
        assert await again.last_bar("backup", "BTC-PERP", MINUTE) == revised
        assert ("ftx", "ETH-PERP", MINUTE) in await again.bar_series_keys()


async def test_retention_keeps_the_id_of_an_emptied_series(v4: Path) -> None:
    async with DataPersistence(v4):  # migrates
        pass
    ids_before = rows(v4, "SELECT id, feed, symbol, resolution FROM bar_series ORDER BY id")
    async with DataPersistence(v4, clock_ns=lambda: NOW + 3 * 86_400 * 10**9) as store:
        assert (await store.apply_retention(days=1))["bars"] == 49
        assert await store.bar_series_keys() == []  # no series has bars
        bar = TradeBar("BTC-PERP", 60 * 10**9, 1.0, 2.0, 0.5, 1.5, 3.0, ts_recv=NOW)
        await store.save_market_data(bar, feed="ftx")
        assert await store.bar_series_keys() == [("ftx", "BTC-PERP", MINUTE)]
    ids_after = rows(v4, "SELECT id, feed, symbol, resolution FROM bar_series ORDER BY id")
    assert ids_after == ids_before  # the same series, the same ids: none added or renumbered


async def test_a_series_first_seen_in_a_bisected_batch_gets_a_committed_id(
    tmp_path: Path,
) -> None:
    path = tmp_path / "lean.db"
    good = [TradeBar("NEW", 60 * 10**9 * i, 1.0, 2.0, 0.5, 1.5, 3.0, ts_recv=NOW) for i in range(8)]
    hostile = dataclasses.replace(good[3], revision=2**70)  # no 64-bit int: refused alone
    async with DataPersistence(path, batch_rows=100, batch_ms=10_000) as store:
        for bar in (*good[:3], hostile, *good[4:]):
            store.save_market_data_nowait(bar, feed="f")
        with pytest.raises(Exception, match="could not be stored"):
            await store.flush()
        assert await store.get_market_data("NEW", 0, 2**62) == [*good[:3], *good[4:]]
        assert store.statistics()["rejected"] == {"int_range": 1}
    assert rows(path, "SELECT COUNT(*) FROM bar_rows WHERE series_id NOT IN "
                      "(SELECT id FROM bar_series)") == [(0,)]  # fmt: skip
    assert rows(path, "SELECT id, feed, symbol, resolution FROM bar_series") == [
        (1, "f", "NEW", "1m")
    ]


async def test_a_read_without_resolution_names_the_only_series(tmp_path: Path) -> None:
    quarter = Resolution(250_000_000)  # stored as "250000000ns", which parse() does not read
    fast = [
        TradeBar("ONE", 250_000_000 * i, 1.0, 2.0, 0.5, 1.5, 3.0, quarter, ts_recv=NOW)
        for i in range(5)
    ]
    two = [TradeBar("TWO", 60 * 10**9 * i, 1.0, 2.0, 0.5, 1.5, 3.0, ts_recv=NOW) for i in range(3)]
    async with DataPersistence(tmp_path / "lean.db") as store:
        for bar in fast:
            await store.save_market_data(bar, feed="a")
        for feed in ("b", "a"):
            for bar in two:
                await store.save_market_data(bar, feed=feed)
        assert await store.get_market_data("ONE", 0, 2**62) == fast
        assert await store.get_market_data("ONE", 0, 2**62, feed="b") == []
        both = await store.get_scored_bars("TWO", 0, 2**62)  # time, then feed
        assert [(s.bar.ts_event, s.feed) for s in both] == [
            (bar.ts_event, feed) for bar in two for feed in ("a", "b")
        ]
        assert await store.get_market_data("TWO", 0, 2**62, feed="b") == two
