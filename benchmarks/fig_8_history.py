"""Figure 8: ``engine.get_historical_data`` for one year of 1-minute bars, memory and disk.

Workload: the real FTX BTC-PERP 1-minute bars of ``nautilus_trader/btc-perp-20211231-
20220201_1m.csv`` (45,031 bars, read with :mod:`lean_data.loaders`) replicated to one year:
bar ``i`` opens at 2022-01-01 00:00 UTC + ``i`` minutes and carries the prices and volume of
file bar ``i mod 45,031``, 525,600 bars in all. A small feed serves them from memory as the
engine's history source.

- Memory tier: an engine (``Config(db_path=None, cache_dir=tmp)``) answers the year once
  from the feed, which fills the memory LRU and writes the disk tier; the figure is the
  median time of the next queries of the same range, all memory hits.
- Disk tier: each sample is a new engine on the same ``cache_dir`` (a fresh cache reading
  what the first wrote; the OS page cache is warm); the figure is the median time of its
  first query, a disk hit (checked in the cache's counters).

Baselines, same run: finding the range in the same list in memory with ``bisect`` and
slicing it (what the memory tier must at least do); reading the same 525,600 rows from a
sqlite3 table with a primary key on (symbol, ts) with ``fetchall`` (a fresh connection per
sample, OS cache warm), and in ``extra`` the same plus building the TradeBar objects.
"""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import statistics
import tempfile
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

from _common import Context, Result

from lean_data import Config, DataEngine, DataFeed
from lean_data.loaders import load_file
from lean_data.models import MarketData, Resolution, TradeBar, datetime_to_ns

NAME = "get_historical_data: one year of 1-minute bars"

_SOURCE = "nautilus_trader/btc-perp-20211231-20220201_1m.csv"
SYMBOL = "BTC/USD:USD"
_YEAR_START_NS = 1_640_995_200 * 10**9  # 2022-01-01 00:00 UTC
_MINUTE_NS = 60 * 10**9
_YEAR_BARS = 365 * 24 * 60
_QUICK_BARS = 5_000
_TARGET_MEMORY_MS = 50.0
_TARGET_DISK_MS = 500.0


class YearFeed(DataFeed):
    """A history-only feed answering from a list of bars sorted by open time."""

    live = False

    def __init__(self, name: str, bars: list[TradeBar]) -> None:
        super().__init__(name, symbols=[SYMBOL])
        self._bars = bars
        self._stamps = [bar.ts_event for bar in bars]

    async def connect(self) -> bool:
        return True

    async def disconnect(self) -> None:
        return None

    async def subscribe(self, symbol: str) -> bool:
        return False

    async def unsubscribe(self, symbol: str) -> bool:
        return False

    async def get_historical_data(
        self,
        symbol: str,
        start_date: datetime | int,
        end_date: datetime | int,
        resolution: Resolution,
    ) -> list[MarketData]:
        start = start_date if isinstance(start_date, int) else datetime_to_ns(start_date)
        end = end_date if isinstance(end_date, int) else datetime_to_ns(end_date)
        return list(self.slice(start, end))

    def slice(self, start: int, end: int) -> list[TradeBar]:
        """The bars with open time in [start, end): the in-memory baseline."""
        stamps = self._stamps
        return self._bars[bisect_left(stamps, start) : bisect_left(stamps, end)]


def year_of_bars(source: Path, count: int) -> list[TradeBar]:
    """Replicate the file's bars to ``count`` consecutive minutes from 2022-01-01."""
    real = [bar for bar in load_file(source, symbol=SYMBOL) if isinstance(bar, TradeBar)]
    if not real:
        raise ValueError(f"{source} holds no bars")
    n = len(real)
    return [
        TradeBar(
            SYMBOL,
            _YEAR_START_NS + i * _MINUTE_NS,
            (b := real[i % n]).open,
            b.high,
            b.low,
            b.close,
            b.volume,
            Resolution.MINUTE,
        )
        for i in range(count)
    ]


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def _timed(call: Callable[[], Awaitable[object]]) -> float:
    gc.collect()
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def engine_memory(bars: list[TradeBar], cache_dir: Path, repeats: int) -> list[float]:
    """Fill the cache through the feed, then time memory hits of the same range."""
    start, end = bars[0].ts_event, bars[-1].ts_event + _MINUTE_NS
    engine = DataEngine(Config(db_path=None, cache_dir=cache_dir))
    engine.add_feed(YearFeed("year", bars))
    samples = []
    async with engine:
        first = await engine.get_historical_data(SYMBOL, start, end, Resolution.MINUTE)
        if len(first) != len(bars):
            raise AssertionError(f"expected {len(bars)} bars from the feed, got {len(first)}")
        del first
        await engine.get_historical_data(SYMBOL, start, end, Resolution.MINUTE)  # warm-up
        for _ in range(repeats):
            samples.append(
                await _timed(lambda: engine.get_historical_data(SYMBOL, start, end, "1m"))
            )
        stats = engine.cache.statistics()
    if stats["memory_hits"] != repeats + 1 or stats["disk_entries"] != 1:
        raise AssertionError(f"expected {repeats + 1} memory hits and a disk file, got {stats}")
    return samples


async def engine_disk(bars: list[TradeBar], cache_dir: Path, repeats: int) -> list[float]:
    """Time the first query of fresh engines on ``cache_dir`` (disk hits)."""
    start, end = bars[0].ts_event, bars[-1].ts_event + _MINUTE_NS
    samples = []
    for index in range(repeats + 1):  # the first is a warm-up
        engine = DataEngine(Config(db_path=None, cache_dir=cache_dir))
        found: list[MarketData] = []

        async def query(engine: DataEngine = engine, found: list[MarketData] = found) -> None:
            found.extend(await engine.get_historical_data(SYMBOL, start, end, "1m"))

        async with engine:
            elapsed = await _timed(query)
            stats = engine.cache.statistics()
        if stats["disk_hits"] != 1 or len(found) != len(bars) or found[-1] != bars[-1]:
            raise AssertionError(
                f"expected one disk hit of {len(bars)} bars, got {len(found)} and {stats}"
            )
        del found[:]
        if index:
            samples.append(elapsed)
    return samples


def sqlite_table(bars: list[TradeBar], path: Path) -> None:
    """Write the bars to a sqlite3 table keyed by (symbol, ts)."""
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE bars (symbol TEXT, ts INTEGER, open REAL, high REAL, low REAL, "
            "close REAL, volume REAL, PRIMARY KEY (symbol, ts)) WITHOUT ROWID"
        )
        db.executemany(
            "INSERT INTO bars VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((b.symbol, b.ts_event, b.open, b.high, b.low, b.close, b.volume) for b in bars),
        )
    db.close()


_SELECT = (
    "SELECT ts, open, high, low, close, volume FROM bars "
    "WHERE symbol = ? AND ts >= ? AND ts < ? ORDER BY ts"
)


def sqlite_read(path: Path, start: int, end: int, build: bool, repeats: int) -> list[float]:
    """Time reading the rows (and building TradeBars when ``build``) per fresh connection."""
    samples = []
    for index in range(repeats + 1):  # the first is a warm-up
        db = sqlite3.connect(path)
        try:
            gc.collect()
            started = time.perf_counter()
            rows = db.execute(_SELECT, (SYMBOL, start, end)).fetchall()
            if build:
                minute = Resolution.MINUTE
                rows = [TradeBar(SYMBOL, t, o, h, lo, c, v, minute) for t, o, h, lo, c, v in rows]
            elapsed = time.perf_counter() - started
        finally:
            db.close()
        if index:
            samples.append(elapsed)
        del rows
    return samples


def run(ctx: Context) -> list[Result]:
    """Measure figure 8 (see the module docstring).

    Raises:
        DataMissing: the FTX minute bars of ../shared/data are absent.
        AssertionError: a query was not answered by the tier it measures, or lost bars.
    """
    source = ctx.require_data(_SOURCE)
    bars = year_of_bars(source, ctx.scale(_YEAR_BARS, _QUICK_BARS))
    start, end = bars[0].ts_event, bars[-1].ts_event + _MINUTE_NS
    repeats = ctx.repeats if ctx.quick else max(ctx.repeats, 5)
    feed = YearFeed("baseline", bars)
    feed.slice(start, end)  # warm-up
    slice_s = []
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        feed.slice(start, end)
        slice_s.append(time.perf_counter() - started)
    with tempfile.TemporaryDirectory(prefix="lean_data_fig8_") as tmp:
        cache_dir = Path(tmp) / "cache"
        memory_s = asyncio.run(engine_memory(bars, cache_dir, repeats))
        disk_s = asyncio.run(engine_disk(bars, cache_dir, repeats))
        cache_file_mib = sum(p.stat().st_size for p in cache_dir.iterdir()) / 2**20
        db_path = Path(tmp) / "bars.db"
        sqlite_table(bars, db_path)
        raw_s = sqlite_read(db_path, start, end, build=False, repeats=repeats)
        built_s = sqlite_read(db_path, start, end, build=True, repeats=repeats)
    memory_ms, disk_ms = _median_ms(memory_s), _median_ms(disk_s)
    notes = (
        f"{len(bars):,} bars (FTX BTC-PERP 1m replicated), median of {repeats}; "
        f"disk: fresh engine per sample, OS cache warm, cache file {cache_file_mib:.1f} MiB"
    )
    extra = {
        "bars": len(bars),
        "repeats": repeats,
        "cache_file_mib": round(cache_file_mib, 2),
        "engine_memory_ms": [round(s * 1000, 2) for s in memory_s],
        "engine_disk_ms": [round(s * 1000, 2) for s in disk_s],
        "list_slice_ms": _median_ms(slice_s),
        "sqlite3_fetchall_ms": _median_ms(raw_s),
        "sqlite3_fetchall_and_tradebars_ms": _median_ms(built_s),
    }
    return [
        Result(
            figure="8 history, one year of 1m bars, memory cache",
            metric="ms",
            value=memory_ms,
            baseline="bisect + list slice",
            baseline_value=_median_ms(slice_s),
            higher_is_better=False,
            target="<= 50 ms",
            met=None if ctx.quick else memory_ms <= _TARGET_MEMORY_MS,
            notes=notes,
            extra=extra,
        ),
        Result(
            figure="8 history, one year of 1m bars, disk cache",
            metric="ms",
            value=disk_ms,
            baseline="sqlite3 fetchall",
            baseline_value=_median_ms(raw_s),
            higher_is_better=False,
            target="<= 500 ms",
            met=None if ctx.quick else disk_ms <= _TARGET_DISK_MS,
            notes=notes,
            extra=extra,
        ),
    ]
