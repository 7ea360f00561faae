"""Storage that cannot write is loud: a degraded state, a hook, an error at stop().

A write that cannot succeed at all (disk full, a lost lock, a dead writer) used to bump a
``rows_lost`` counter and nothing else: ``stop()`` returned normally. Now the first lost
batch degrades storage (``get_metrics()["storage"]["failed"]``,
``["engine"]["degraded"]``), calls the ``on_storage_failed`` hook once, writes a
``storage_failed`` errors row when the file still takes one, and ``stop()`` raises
``StorageFailedError`` naming the rows lost once everything is closed. A file that is
not a database, is corrupt or cannot be created is refused at ``start()``.

One unstorable row costing only itself is tested in tests/test_storage_hostile.py.

Not testable here: a read-only file. The tests run as root, for whom neither chmod 0o444
on the file nor on its directory stops a write, and no read-only mount is available; the
classification of SQLite's ``SQLITE_READONLY`` is covered by :func:`failure_kind` below.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lean_data import Config, DataEngine
from lean_data.engine import EngineState
from lean_data.errors import LeanDataError, StorageError, StorageFailedError
from lean_data.loaders import load_file
from lean_data.models import TradeBar
from lean_data.storage.sqlite import DataPersistence, StorageFailure
from lean_data.storage.sqlite_errors import failure_kind
from tests.conftest import FIXTURES, eventually
from tests.helpers import ListFeed

SPY_MINUTES = FIXTURES / "lean/equity/usa/minute/spy/20131007_trade.zip"
REPO = Path(__file__).resolve().parents[1]


@functools.cache
def spy_minutes() -> tuple[TradeBar, ...]:
    bars = tuple(b for b in load_file(SPY_MINUTES) if isinstance(b, TradeBar))
    assert len(bars) == 828
    return bars


def sqlite_rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    other = sqlite3.connect(path)
    try:
        return other.execute(sql).fetchall()
    finally:
        other.close()


# ------------------------------------------------------------------ disk full (child process)


def test_disk_full_makes_stop_raise_naming_the_rows_lost(tmp_path: Path) -> None:
    db = tmp_path / "full.db"
    ticks = 30_000
    done = subprocess.run(
        [sys.executable, "-m", "tests.storage_full_child", str(db), str(2**20), str(ticks)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 3, (done.stdout, done.stderr[-2000:])
    hook = [line.split() for line in lines if line.startswith("hook ")]
    assert len(hook) == 1  # called once, at the first lost batch
    assert hook[0][1] in ("disk_full", "io")  # EFBIG is SQLITE_IOERR_WRITE
    assert int(hook[0][2]) > 0
    assert "degraded True" in lines
    _, kind, lost, state = next(line for line in lines if line.startswith("stop_raised")).split()
    assert (kind, state) == (hook[0][1], "closed")
    message = lines[lines.index(f"stop_raised {kind} {lost} {state}") + 1]
    assert f"{lost} rows were not stored" in message
    assert str(db) in message
    # every tick was stored or counted lost (the lost count also holds errors/metrics rows)
    ((stored,),) = sqlite_rows(db, "SELECT COUNT(*) FROM ticks")
    assert 0 < int(stored) < ticks
    assert int(stored) + int(lost) >= ticks
    assert done.stderr.count("storage FAILED") == 1  # one ERROR line, not one per batch


# ------------------------------------------------------------------ a failure in process


async def test_lost_batch_degrades_metrics_calls_hook_and_stop_raises(tmp_path: Path) -> None:
    db = tmp_path / "locked.db"
    bars = list(spy_minutes())
    feed = ListFeed("lean", {"SPY": bars})
    engine = DataEngine(Config(db_path=db, cache_dir=None, metrics_interval_s=0))
    engine.add_feed(feed)
    seen: list[StorageFailure] = []
    engine.on_storage_failed(seen.append)
    seen_async: list[str] = []

    async def async_hook(failure: StorageFailure) -> None:  # runs as an engine task
        seen_async.append(failure.kind)

    engine.on_storage_failed(async_hook)
    await engine.start()
    assert engine.persistence is not None
    assert engine.get_metrics()["engine"]["degraded"] is False
    assert engine.get_metrics()["storage"]["failed"] is None
    await engine.persistence._db.execute("PRAGMA busy_timeout=0")
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock throughout
    try:
        await engine.subscribe_symbol("SPY")
        await feed.wait_pumped()
        await engine.wait_idle()
        await engine.persistence._barrier(strict=False)
        metrics = engine.get_metrics()
    finally:
        other.execute("COMMIT")
        other.close()
    assert metrics["engine"]["degraded"] is True
    failed = metrics["storage"]["failed"]
    assert failed["kind"] == "locked"
    assert "locked" in failed["message"]
    assert failed["rows_lost"] == metrics["storage"]["rows_lost"] == 828
    assert [(f.kind, f.rows_lost > 0) for f in seen] == [("locked", True)]
    await eventually(lambda: seen_async == ["locked"])
    with pytest.raises(StorageFailedError, match=r"\(locked\): \d+ rows were not stored") as info:
        await engine.stop()
    assert engine.state is EngineState.CLOSED
    assert info.value.kind == "locked"
    assert info.value.rows_lost >= 828
    assert isinstance(info.value, LeanDataError)
    # the lock is gone by close: the report reached the errors table
    reports = sqlite_rows(db, "SELECT message FROM errors WHERE kind = 'storage_failed'")
    assert [str(m).split(" rows")[0] for (m,) in reports] == [str(info.value.rows_lost)]
    assert sqlite_rows(db, "SELECT COUNT(*) FROM bars") == [(0,)]


async def test_clean_run_stops_without_error(tmp_path: Path) -> None:
    db = tmp_path / "ok.db"
    feed = ListFeed("lean", {"SPY": list(spy_minutes())})
    engine = DataEngine(Config(db_path=db, cache_dir=None, metrics_interval_s=0))
    engine.add_feed(feed)
    seen: list[StorageFailure] = []
    engine.on_storage_failed(seen.append)
    await engine.start()
    await engine.subscribe_symbol("SPY")
    await feed.wait_pumped()
    await engine.stop()
    assert sqlite_rows(db, "SELECT COUNT(*) FROM bars") == [(828,)]
    assert sqlite_rows(db, "SELECT COUNT(*) FROM errors WHERE kind = 'storage_failed'") == [(0,)]
    assert engine.get_metrics()["engine"]["degraded"] is False
    assert seen == []


# ------------------------------------------------------------------ refused at start


async def start_refused(path: Path) -> StorageError:
    engine = DataEngine(Config(db_path=path, cache_dir=None, metrics_interval_s=0))
    with pytest.raises(StorageError) as info:
        await engine.start()
    assert not isinstance(info.value, StorageFailedError)
    assert str(path) in str(info.value)
    return info.value


async def test_junk_file_is_refused_as_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    junk = SPY_MINUTES.read_bytes()[:8192]  # a zip file, not a database
    path.write_bytes(junk)
    error = await start_refused(path)
    assert "not a database" in str(error)
    assert path.read_bytes() == junk  # left as it was


async def test_path_under_a_regular_file_is_refused(tmp_path: Path) -> None:
    parent = tmp_path / "plain.txt"
    parent.write_text("not a directory")
    error = await start_refused(parent / "x.db")
    assert "cannot be opened or created" in str(error)


async def test_garbage_over_page_two_is_refused_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "stored.db"
    async with DataPersistence(path) as store:
        for bar in spy_minutes():
            await store.save_market_data(bar, feed="lean")
    ((page_size,),) = sqlite_rows(path, "PRAGMA page_size")
    ((pages,),) = sqlite_rows(path, "PRAGMA page_count")
    assert int(pages) > 2
    with path.open("r+b") as file:
        file.seek(int(page_size))
        file.write(bytes(range(256)) * (int(page_size) // 256))
    error = await start_refused(path)
    assert "corrupt" in str(error)


async def test_a_lost_freelist_is_refused_with_the_quick_check_line(tmp_path: Path) -> None:
    path = tmp_path / "stored.db"
    async with DataPersistence(path) as store:
        for bar in spy_minutes():
            await store.save_market_data(bar, feed="lean")
    other = sqlite3.connect(path)
    other.execute("DELETE FROM bar_rows")  # its pages go to the freelist
    other.commit()
    other.close()
    ((free,),) = sqlite_rows(path, "PRAGMA freelist_count")
    assert int(free) > 1
    with path.open("r+b") as file:  # forget the freelist: its pages belong to nothing
        file.seek(32)
        file.write(bytes(8))
    error = await start_refused(path)
    assert re.search(r": corrupt: Page \d+ is never used \(and 4 more\)$", str(error)), error


async def test_a_good_file_passes_the_check_and_is_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "good.db"
    async with DataPersistence(path) as store:
        await store.save_market_data(spy_minutes()[0], feed="lean")
    async with DataPersistence(path) as store:
        assert await store.count("bars") == 1
    tables = {name for (name,) in sqlite_rows(path, "SELECT name FROM sqlite_master")}
    assert "lean_write_check" not in tables  # the test write was rolled back


@pytest.mark.parametrize(
    ("errorname", "message", "kind"),
    [
        ("SQLITE_FULL", "database or disk is full", "disk_full"),
        ("SQLITE_READONLY", "attempt to write a readonly database", "read_only"),
        ("SQLITE_CORRUPT", "database disk image is malformed", "corrupt"),
        ("SQLITE_NOTADB", "file is not a database", "corrupt"),
        ("SQLITE_BUSY", "database is locked", "locked"),
        ("SQLITE_IOERR_WRITE", "disk I/O error", "io"),
        ("", "database or disk is full", "disk_full"),
        ("", "something else", "error"),
    ],
)
def test_failure_kind(errorname: str, message: str, kind: str) -> None:
    exc = sqlite3.OperationalError(message)
    if errorname:
        exc.sqlite_errorname = errorname
    assert failure_kind(exc) == kind


READ_ONLY_CHILD = r"""
import asyncio, os, sys
import aiosqlite, concurrent.futures.thread, sqlite3  # imported before dropping privileges
from lean_data import Config, DataEngine
from lean_data.errors import StorageError
import lean_data.depth, lean_data.series.calendars, lean_data.storage.sqlite  # loaded on first use

if os.geteuid() == 0:  # root writes through any mode: become nobody, who cannot
    os.setgid(65534)
    os.setuid(65534)


async def main() -> int:
    engine = DataEngine(Config(db_path=sys.argv[1], cache_dir=None))
    try:
        await engine.start()
    except StorageError as exc:
        print(exc)
        return 3
    await engine.stop()
    return 0


sys.exit(asyncio.run(main()))
"""


def test_a_read_only_database_file_is_refused_at_start(tmp_path: Path) -> None:
    import os
    import shutil
    import tempfile

    bars = [b for b in load_file(SPY_MINUTES) if isinstance(b, TradeBar)][:50]
    folder = Path(tempfile.mkdtemp(prefix="lean-data-ro-"))  # traversable by nobody
    try:
        folder.chmod(0o755)
        db = folder / "ro.db"
        with sqlite3.connect(db) as conn:  # a real database: the engine's own schema
            conn.execute("create table bars (ts int)")
            conn.executemany("insert into bars values (?)", [(b.ts_event,) for b in bars])
        db.chmod(0o444)
        result = subprocess.run(
            [sys.executable, "-c", READ_ONLY_CHILD, str(db)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).parent.parent,
            check=False,
        )
        assert result.returncode == 3, result.stdout + result.stderr
        assert "read-only" in result.stdout, result.stdout
        assert str(db) in result.stdout
        assert os.stat(db).st_size > 0
    finally:
        shutil.rmtree(folder)
