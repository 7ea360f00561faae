"""SIGKILL mid-stream, then restart on the same database (issue 4, done-when 6).

The engine runs in a child process (tests/restart_child.py) against a loopback Binance
server in this process, replaying real BTC/BUSD minute candles derived from the bundled
demo data (see tests/test_binance_feed.py and tests/fixtures/PROVENANCE.md). The database
is a SQLite file, then a fresh PostgreSQL schema (``backend``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import asyncpg

from lean_data.testing import BinanceLoopbackServer

from .backends import Backend, PostgresBackend, SqliteBackend
from .test_binance_feed import push_klines, real_bars

ROOT = Path(__file__).parent.parent


async def start_child(
    db: str, server: BinanceLoopbackServer, stop_at: int
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.restart_child", db, server.ws_url, server.rest_url,
        str(stop_at), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


def database(backend: Backend) -> str:
    """The child's DB argument for ``backend``."""
    if isinstance(backend, PostgresBackend):
        return f"{backend.url}#{backend.schema}"
    assert isinstance(backend, SqliteBackend)
    return str(backend.path)


async def settled(backend: Backend) -> None:
    """Wait until the server has done with a killed child's connections: a COMMIT it had
    sent may still be applied (SQLite has no server: a killed writer's commit is done)."""
    if isinstance(backend, PostgresBackend):
        name = f"lean_data:{backend.schema}"
        query = "select count(*) from pg_stat_activity where application_name = ?"
        deadline = time.monotonic() + 10
        while (await backend.rows(query, name))[0][0]:
            assert time.monotonic() < deadline, "the killed child's connections linger"
            await asyncio.sleep(0.005)


async def committed(backend: Backend) -> int:
    """Bars another process has committed (0 before the table exists)."""
    try:
        return int((await backend.rows("select count(*) from bars"))[0][0])
    except (sqlite3.OperationalError, asyncpg.UndefinedTableError):
        return 0


async def integrity(backend: Backend) -> None:
    if isinstance(backend, SqliteBackend):
        assert await backend.rows("PRAGMA integrity_check") == [("ok",)]


async def read_bars(child: asyncio.subprocess.Process, until: int) -> list[tuple[int, int]]:
    """Read ``bar`` lines until ``until`` of them arrived (or the child ended)."""
    assert child.stdout is not None
    seen: list[tuple[int, int]] = []
    while len(seen) < until:
        line = await asyncio.wait_for(child.stdout.readline(), 30)
        if not line:
            break
        words = line.decode().split()
        if words[0] == "bar":
            seen.append((int(words[1]), int(words[2])))
    return seen


async def test_sigkill_then_restart_backfills_without_corruption_or_duplicates(
    backend: Backend,
) -> None:
    bars = real_bars(60)
    db = database(backend)
    async with BinanceLoopbackServer(resume=True, klines={"BTCBUSD": bars}) as server:
        push_klines(server, bars[:30])
        child = await start_child(db, server, 0)
        first = await read_bars(child, 20)
        deadline = time.monotonic() + 10
        while await committed(backend) < 10:  # let the writer commit some of them
            assert time.monotonic() < deadline, "the child committed fewer than 10 bars"
            await asyncio.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)  # mid-stream: no stop(), no flush
        assert await child.wait() == -signal.SIGKILL
        assert [ts for ts, _ in first] == [b.ts_event for b in bars[:20]]

        await settled(backend)
        await integrity(backend)
        stored = [ts for (ts,) in await backend.rows("select ts_event from bars order by ts_event")]
        # whatever was committed is a prefix of the series, each bar once
        assert stored == [b.ts_event for b in bars[: len(stored)]]
        assert 10 <= len(stored) <= 30

        # the market went on while we were down: minutes 30-39 are never sent live
        push_klines(server, bars[40:])
        child = await start_child(db, server, bars[-1].ts_event)
        second = await read_bars(child, 60)
        assert await asyncio.wait_for(child.wait(), 30) == 0

    resumed_from = len(stored)
    delivered = [ts for ts, _ in second]
    # the restarted engine picked up right after the last stored bar, backfilled the hole
    # (what the first run had not committed, and the minutes it was down), then went live
    assert delivered == [b.ts_event for b in bars[resumed_from:]]
    backfilled = [ts for ts, flag in second if flag]
    assert backfilled == [b.ts_event for b in bars[resumed_from:40]]
    await integrity(backend)
    rows = await backend.rows(
        "select ts_event, open, high, low, close, volume, count(*) over () from bars "
        "order by ts_event"
    )
    duplicates = await backend.rows("select count(*) - count(distinct ts_event) from bars")
    assert [r[:6] for r in rows] == [
        (b.ts_event, b.open, b.high, b.low, b.close, b.volume) for b in bars
    ]
    assert duplicates == [(0,)]
