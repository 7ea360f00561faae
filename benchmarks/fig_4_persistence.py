"""Figure 4: figure 1 with SQLite persistence on: msg/s, and rows/s reaching disk.

The workload and the in-memory path of figure 1 (``fig_1_kline.py``: real Binance kline
frames replicated to distinct closed bars, a BinanceDataFeed reading pre-loaded frames, the
engine validating, scoring, buffering and calling three sync callbacks), run twice per
repeat, interleaved: once with ``Config(db_path=None)`` (figure 1 itself, measured again
here so both share the machine's state) and once with ``Config(db_path=<fresh file>)``.

- msg/s with storage: release of the first frame -> last callback (the storage writer runs
  meanwhile; its queue bounds how far delivery may run ahead of the disk).
- rows/s reaching disk: rows counted in the ``bars`` table after ``stop()``, divided by the
  time from the release of the first frame until ``persistence.flush()`` returned (every
  row committed). Nothing may be lost: rows must equal the messages sent.

Baselines in the same run: the same rows (the engine's own row layout, schema, pragmas
and upsert statement) written by ``executemany`` in 1,000-row transactions, through raw
``sqlite3`` and through ``aiosqlite`` (the library the engine uses), each on a fresh file.
The baselines' rows carry their ``bar_series`` ids already (their series are added before
the clock starts); the engine's sink looks the ids up as it writes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import aiosqlite
from _common import Context, Result
from fig_1_kline import (
    FULL_FRAMES,
    QUICK_FRAMES,
    WARMUP_FRAMES,
    EngineRun,
    Workload,
    engine_run,
    kline_workload,
    parsed_items,
)

from lean_data.models import TradeBar
from lean_data.quality.levels import CLEAN
from lean_data.storage import schema as sch
from lean_data.storage.rows import bar_row

NAME = "figure 1 with SQLite persistence: msg/s and rows/s reaching disk"
FIGURE = "4 kline frames -> engine + SQLite"
MAX_COST = 0.30  # persistence may cost at most 30% of figure 1's rate
TRANSACTION_ROWS = 1_000
_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")


def run(ctx: Context) -> list[Result]:
    workload = kline_workload(ctx, ctx.scale(FULL_FRAMES, QUICK_FRAMES))
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        plain, stored = _engine_pairs(workload, ctx.repeats, folder)
        rows = _rows(workload)
        floor_sqlite3 = _floor(lambda path: _sqlite3_rate(rows, path), folder, "sqlite3", ctx)
        floor_aiosqlite = _floor(
            lambda path: asyncio.run(_aiosqlite_rate(rows, path)), folder, "aiosqlite", ctx
        )
    messages = len(workload.frames)
    without = statistics.median(r.rate for r in plain)
    delivered = statistics.median(r.rate for r in stored)
    to_disk = statistics.median(_disk_rate(r) for r in stored)
    lost = [messages - (r.rows or 0) for r in stored]
    nothing_lost = not any(lost)
    floor_ratio = 1.0 - MAX_COST
    kept = f"rows == messages in every run ({messages:,})" if nothing_lost else f"LOST rows: {lost}"
    extra = {
        "frames": messages,
        "rates_without_storage": [round(r.rate) for r in plain],
        "rates_with_storage": [round(r.rate) for r in stored],
        "rows_per_s_to_disk": [round(_disk_rate(r)) for r in stored],
        "rows_after_stop": [r.rows for r in stored],
        "sqlite3_executemany": round(floor_sqlite3),
        "aiosqlite_executemany": round(floor_aiosqlite),
    }
    target = f">= {floor_ratio:.2f}x figure 1, nothing lost"
    baseline = "figure 1 (no storage)"
    # each run with storage right after one without: the ratios are the medians of the pairs
    delivered_row = Result(
        FIGURE, "msg/s", delivered, baseline, without, target=target, extra=extra,
        notes=f"delivered to callbacks; {kept}; {workload.describe()}",
        pairs=[s.rate / p.rate for p, s in zip(plain, stored, strict=True)],
    )  # fmt: skip
    disk_row = Result(
        f"{FIGURE}: rows to disk", "rows/s", to_disk, baseline, without, target=target,
        notes=f"rows counted after stop / time until every row committed; {kept}",
        pairs=[_disk_rate(s) / p.rate for p, s in zip(plain, stored, strict=True)],
    )  # fmt: skip
    for row in (delivered_row, disk_row):
        row.met = nothing_lost and (row.ratio or 0.0) >= floor_ratio
    return [
        delivered_row,
        disk_row,
        Result(f"{FIGURE}: rows to disk", "rows/s", to_disk, "aiosqlite executemany",
               floor_aiosqlite, notes=f"floor: same rows, upsert, {TRANSACTION_ROWS}-row txns"),
        Result(f"{FIGURE}: rows to disk", "rows/s", to_disk, "sqlite3 executemany",
               floor_sqlite3, notes=f"floor: same rows, upsert, {TRANSACTION_ROWS}-row txns"),
    ]  # fmt: skip


def _engine_pairs(
    workload: Workload, repeats: int, folder: Path
) -> tuple[list[EngineRun], list[EngineRun]]:
    """Warm-up (excluded), then per repeat one run without storage and one with."""

    async def runs() -> tuple[list[EngineRun], list[EngineRun]]:
        warm = workload.frames[:WARMUP_FRAMES]
        await engine_run(workload, warm)
        await engine_run(workload, warm, db_path=folder / "engine-warmup.db")
        plain, stored = [], []
        for n in range(repeats):
            plain.append(await engine_run(workload))
            stored.append(await engine_run(workload, db_path=folder / f"engine-{n}.db"))
        return plain, stored

    return asyncio.run(runs())


def _disk_rate(run: EngineRun) -> float:
    assert run.rows is not None
    assert run.stored_seconds is not None
    return run.rows / run.stored_seconds


def _rows(workload: Workload) -> list[sch.Row]:
    """The rows the engine queues for the workload's bars (its own row builder)."""
    rows = []
    for item in parsed_items(workload):
        assert isinstance(item, TradeBar)
        rows.append(bar_row(item, "binance", CLEAN, item.ts_recv))
    return rows


def _series_ids(rows: Sequence[sch.Row]) -> dict[sch.SeriesKey, int]:
    """Ids for the rows' series, numbered as a fresh file's ``bar_series`` numbers them."""
    keys = sorted({(row[0], row[1], row[2]) for row in rows})
    return {key: n for n, key in enumerate(keys, start=1)}


def _stored(rows: Sequence[sch.Row], ids: dict[sch.SeriesKey, int]) -> list[sch.Row]:
    """The ``bar_rows`` rows the engine's sink writes for queued ``rows``."""
    return [(ids[row[0], row[1], row[2]], *row[3:]) for row in rows]


_ADD_SERIES = "INSERT INTO bar_series (id, feed, symbol, resolution) VALUES (?, ?, ?, ?)"


def _floor(measure: Callable[[Path], float], folder: Path, name: str, ctx: Context) -> float:
    """Median rows/s of ``measure(path)`` over fresh files, after a warm-up (excluded)."""
    measure(folder / f"{name}-warmup.db")
    return statistics.median(measure(folder / f"{name}-{n}.db") for n in range(ctx.repeats))


def _chunks(rows: Sequence[sch.Row]) -> list[Sequence[sch.Row]]:
    return [rows[i : i + TRANSACTION_ROWS] for i in range(0, len(rows), TRANSACTION_ROWS)]


def _sqlite3_rate(rows: Sequence[sch.Row], path: Path) -> float:
    connection = sqlite3.connect(path)
    try:
        for statement in (*_PRAGMAS, *sch.DDL):
            connection.execute(statement)
        ids = _series_ids(rows)
        connection.executemany(_ADD_SERIES, [(n, *key) for key, n in ids.items()])
        connection.commit()
        sql, chunks = sch.WRITE_SQL[sch.BARS], _chunks(_stored(rows, ids))
        started = time.perf_counter()
        for chunk in chunks:
            connection.executemany(sql, chunk)
            connection.commit()
        seconds = time.perf_counter() - started
        _check_count(connection.execute("SELECT COUNT(*) FROM bars").fetchone()[0], len(rows))
    finally:
        connection.close()
    return len(rows) / seconds


async def _aiosqlite_rate(rows: Sequence[sch.Row], path: Path) -> float:
    async with aiosqlite.connect(path) as db:
        for statement in (*_PRAGMAS, *sch.DDL):
            await db.execute(statement)
        ids = _series_ids(rows)
        await db.executemany(_ADD_SERIES, [(n, *key) for key, n in ids.items()])
        await db.commit()
        sql, chunks = sch.WRITE_SQL[sch.BARS], _chunks(_stored(rows, ids))
        started = time.perf_counter()
        for chunk in chunks:
            await db.executemany(sql, chunk)
            await db.commit()
        seconds = time.perf_counter() - started
        found = await db.execute_fetchall("SELECT COUNT(*) FROM bars")
        _check_count(next(iter(found))[0], len(rows))
    return len(rows) / seconds


def _check_count(found: int, expected: int) -> None:
    if found != expected:
        raise RuntimeError(f"baseline wrote {found} rows, expected {expected}")
