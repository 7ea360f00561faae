"""The engine on PostgreSQL, and three writer processes sharing one schema.

Data: the real FTX BTC-PERP minute bars, all 45,031 of them
(tests/fixtures/nautilus_trader/btc-perp-20211231-20220201_1m.csv, a byte-identical copy
of ../shared/data/nautilus_trader/btc-perp-20211231-20220201_1m.csv; see
tests/fixtures/PROVENANCE.md), so these tests never depend on the shared corpus.
PostgreSQL: a fresh random schema per test (tests/backends.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path

import pytest

from lean_data import Config, DataEngine, ReplayFeed, TradeBar
from lean_data.errors import ConfigError
from lean_data.loaders import load_file
from lean_data.models import NS_PER_MINUTE, MarketData
from lean_data.quality.levels import DataQualityLevel
from lean_data.storage.factory import create_storage
from lean_data.storage.postgres import PostgresStorage
from lean_data.storage.sqlite import DataPersistence
from tests.backends import PG_URL, PostgresBackend
from tests.conftest import FIXTURES
from tests.pg_writer_child import revised

FTX = FIXTURES / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"
SYMBOL = "BTC-PERP"
NOW = 1_700_000_000 * 10**9
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def btc() -> list[TradeBar]:
    bars = [b for b in load_file(FTX, symbol=SYMBOL) if isinstance(b, TradeBar)]
    assert len(bars) == 45_031
    return bars


async def test_ftx_45031_bars_through_the_engine_into_postgres(
    pg: PostgresBackend, btc: list[TradeBar], tmp_path: Path
) -> None:
    seen: list[MarketData] = []

    def on_bar(symbol: str, bar: MarketData, quality: DataQualityLevel) -> None:
        seen.append(bar)

    feed = ReplayFeed("ftx", [FTX])
    async with DataEngine(pg.config(cache_dir=None, metrics_interval_s=0)) as engine:
        assert isinstance(engine.persistence, PostgresStorage)
        engine.add_feed(feed)
        engine.add_data_callback(on_bar)
        assert await engine.subscribe_symbol(SYMBOL) == "ftx"
        await feed.wait_finished()
    assert [b.ts_event for b in seen] == [b.ts_event for b in btc]  # each bar once, in order
    rows = await pg.rows(
        "SELECT ts_event, open, high, low, close, volume, revision, closed, feed FROM bars "
        "WHERE symbol = ? ORDER BY ts_event",
        SYMBOL,
    )
    assert rows == [
        (b.ts_event, b.open, b.high, b.low, b.close, b.volume, 0, True, "ftx") for b in btc
    ]
    # the same delivered bars in SQLite: both stores answer range queries alike
    async with pg.make() as postgres, DataPersistence(tmp_path / "same.db") as sqlite:
        for bar in seen:
            await sqlite.save_market_data(bar, feed="ftx")
        ranges = [(0, 2**62), (btc[100].ts_event, btc[30_000].ts_event), (btc[-1].ts_event, 2**62)]
        for start, end in ranges:
            answer = await postgres.get_market_data(SYMBOL, start, end, feed="ftx")
            assert answer == await sqlite.get_market_data(SYMBOL, start, end, feed="ftx")
        assert len(answer) == 1
        # revisions replace: the highest wins, at the same revision final over in-progress
        part = btc[1_000:1_100]
        versions = ((2, 1.0, True), (1, 2.0, True), (2, 3.0, False), (3, 4.0, False),
                    (3, 5.0, True), (3, 6.0, False))  # fmt: skip
        for store in (postgres, sqlite):
            for revision, bump, closed in versions:
                for bar in part:
                    later = dataclasses.replace(
                        bar, revision=revision, close=bar.close + bump, closed=closed, ts_recv=NOW
                    )
                    await store.save_market_data(later, feed="ftx")
        expected = [
            dataclasses.replace(b, revision=3, close=b.close + 5.0, ts_recv=NOW) for b in part
        ]
        span = (part[0].ts_event, part[-1].ts_event + 1)
        assert await postgres.get_market_data(SYMBOL, *span) == expected
        assert await sqlite.get_market_data(SYMBOL, *span) == expected
        assert await postgres.count("bars") == 45_031


async def test_three_writer_processes_on_overlapping_series_leave_the_union_once(
    pg: PostgresBackend, btc: list[TradeBar], tmp_path: Path
) -> None:
    """Three processes open one new schema at once and upsert overlapping slices of the
    series at revisions 0, 1, 2 (one of them newest first), with coverage for each."""
    slices = ((0, 20_000, 0), (10_000, 30_000, 1), (5_000, 25_000, 2))
    children = []
    for start, stop, revision in slices:
        log = (tmp_path / f"child{revision}.log").open("wb")
        arguments = [PG_URL, pg.schema, str(start), str(stop), str(revision)]
        children.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.pg_writer_child",
                *arguments,
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        )
        log.close()
    try:
        for child in children:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 60)
            assert line == b"ready\n", _logs(tmp_path)
        for child in children:  # all at once
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            await child.stdin.drain()
        done = []
        for child in children:
            assert child.stdout is not None
            done.append((await asyncio.wait_for(child.stdout.readline(), 60)).split())
            assert await asyncio.wait_for(child.wait(), 60) == 0
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
    for words, (start, stop, _) in zip(done, slices, strict=True):
        assert (words[0], int(words[1])) == (b"done", stop - start + 1)  # bars and coverage
    rows = await pg.rows("SELECT ts_event, close, revision FROM bars ORDER BY ts_event")
    winner = [max(r for a, b, r in slices if a <= i < b) for i in range(30_000)]
    expected = [revised([bar], r)[0] for bar, r in zip(btc, winner, strict=False)]
    assert rows == [(b.ts_event, b.close, b.revision) for b in expected]
    assert await pg.rows("SELECT COUNT(*) - COUNT(DISTINCT ts_event) FROM bars") == [(0,)]
    assert await pg.rows("SELECT feed, symbol, resolution FROM bar_series") == [
        ("ftx", SYMBOL, "1m")
    ]
    coverage = await pg.rows("SELECT start_ns, end_ns, empty FROM coverage")
    assert coverage == [(btc[0].ts_event, btc[29_999].ts_event + NS_PER_MINUTE, False)]
    assert await pg.partitions("bars") == ["bars_p202112", "bars_p202201", "bars_p202202"]


def _logs(folder: Path) -> list[str]:
    """What the children wrote to stderr (for a failed assertion)."""
    return [path.read_text() for path in sorted(folder.glob("child*.log"))]


# ------------------------------------------------------------------ choosing the backend


async def test_the_engine_uses_sqlite_without_a_database_url(tmp_path: Path) -> None:
    assert isinstance(create_storage(Config(db_path=tmp_path / "x.db")), DataPersistence)
    assert create_storage(Config(db_path=None)) is None
    config = Config(db_path=tmp_path / "unused.db", database_url=PG_URL, database_schema="s1")
    store = create_storage(config)
    assert isinstance(store, PostgresStorage)
    assert store.schema == "s1"
    assert PG_URL not in repr(config)  # a URL may hold a password: never printed


def test_a_database_url_without_asyncpg_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # what an install without the extra has
    with pytest.raises(ConfigError) as info:
        create_storage(Config(database_url=PG_URL))
    assert str(info.value) == 'Config.database_url needs asyncpg: pip install "lean-data[postgres]"'


def test_the_database_url_and_schema_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEAN_DATA_DATABASE_URL", PG_URL)
    monkeypatch.setenv("LEAN_DATA_DATABASE_SCHEMA", "trading")
    config = Config.from_env()
    assert (config.database_url, config.database_schema) == (PG_URL, "trading")
    monkeypatch.setenv("LEAN_DATA_DATABASE_URL", "none")
    assert Config.from_env().database_url is None
    monkeypatch.setenv("LEAN_DATA_DATABASE_SCHEMA", "no-dashes")
    with pytest.raises(ConfigError, match="database_schema must be a plain identifier"):
        Config.from_env()
