"""SIGKILL mid-stream, then restart on the same SQLite file (issue 4, done-when 6).

The engine runs in a child process (tests/restart_child.py) against a loopback Binance
server in this process, replaying real BTC/BUSD minute candles derived from the bundled
demo data (see tests/test_binance_feed.py and tests/fixtures/PROVENANCE.md).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

from lean_data.testing import BinanceLoopbackServer

from .conftest import eventually
from .test_binance_feed import push_klines, real_bars

ROOT = Path(__file__).parent.parent


async def start_child(
    db: Path, server: BinanceLoopbackServer, stop_at: int
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.restart_child", str(db), server.ws_url, server.rest_url,
        str(stop_at), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


def committed(db: Path) -> int:
    """Bars another process has committed to ``db`` (0 before the table exists)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return int(conn.execute("select count(*) from bars").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


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
    tmp_path: Path,
) -> None:
    bars = real_bars(60)
    db = tmp_path / "restart.db"
    async with BinanceLoopbackServer(resume=True, klines={"BTCBUSD": bars}) as server:
        push_klines(server, bars[:30])
        child = await start_child(db, server, 0)
        first = await read_bars(child, 20)
        await eventually(lambda: committed(db) >= 10)  # let the writer commit some of them
        os.kill(child.pid, signal.SIGKILL)  # mid-stream: no stop(), no flush
        assert await child.wait() == -signal.SIGKILL
        assert [ts for ts, _ in first] == [b.ts_event for b in bars[:20]]

        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            stored = [ts for (ts,) in conn.execute("select ts_event from bars order by ts_event")]
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
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = conn.execute(
            "select ts_event, open, high, low, close, volume, count(*) over () from bars "
            "order by ts_event"
        ).fetchall()
        duplicates = conn.execute("select count(*) - count(distinct ts_event) from bars").fetchone()
    assert [r[:6] for r in rows] == [
        (b.ts_event, b.open, b.high, b.low, b.close, b.volume) for b in bars
    ]
    assert duplicates == (0,)
