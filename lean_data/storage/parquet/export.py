"""Export stored series from any :class:`~lean_data.storage.base.Storage` to a Parquet catalog.

Only the interface's own methods are used (``bar_series_keys``, ``get_market_data``,
``get_quote_bars``, ``get_ticks``, ``stored_symbols``, ``stored_feeds``), so SQLite and any
other backend export alike. Each (kind, symbol, resolution, feed, UTC day) becomes one file,
written to a hidden temporary name and renamed into place, so readers never see half a file.

Idempotence: an export replaces the files of the days it writes and touches nothing else.
The time range is widened to whole UTC days (a file always holds everything the store had
for its day), so exporting the same range twice gives the same files, and exporting a
later range adds days without rewriting earlier ones. Days the store no longer holds (after
retention) stay in the catalog: it is an archive, not a mirror.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from lean_data.errors import ConfigError
from lean_data.models import NS_PER_DAY, MarketData, Resolution
from lean_data.storage.base import Storage
from lean_data.storage.parquet import layout
from lean_data.storage.parquet.arrow import pyarrow_modules, table_from_items

__all__ = ["CatalogExport", "export_catalog"]


@dataclass
class CatalogExport:
    """What :func:`export_catalog` wrote.

    Attributes:
        rows: rows written per kind (``"bar"``, ``"quote"``, ``"tick"``).
        files: every file written (or rewritten), in write order.
    """

    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(layout.KINDS, 0))
    files: list[Path] = field(default_factory=list)


async def export_catalog(
    storage: Storage,
    root: str | Path,
    *,
    symbols: Iterable[str] | None = None,
    kinds: Iterable[str] = ("bar",),
    resolutions: Iterable[Resolution | str] | None = None,
    feeds: Iterable[str] | None = None,
    start: int | datetime | None = None,
    end: int | datetime | None = None,
    days_per_query: int = 7,
) -> CatalogExport:
    """Write stored bars, quote bars or ticks to the Parquet catalog at ``root``.

    Args:
        storage: an open store.
        root: the catalog directory (created when missing).
        symbols: the symbols to export. ``None``: every series stored of each kind (the
            trade-bar series ``bar_series_keys`` lists; the symbols with quote bars or ticks,
            ``stored_symbols``).
        kinds: any of ``"bar"``, ``"quote"``, ``"tick"``.
        resolutions: only these bar periods (default: all).
        feeds: only rows these feeds stored (default: every feed; for quote bars and ticks
            the feeds that stored the symbol, ``stored_feeds``).
        start, end: the event-time range ``[start, end)`` in ns or datetimes (naive = UTC);
            ``None`` leaves that side open. Widened to whole UTC days.
        days_per_query: with both bounds given, read the store this many days at a time
            (an open range is read in one query per series).

    Returns:
        The rows and files written.

    Raises:
        ConfigError: pyarrow missing, an unknown kind, or a bad ``days_per_query``.
    """
    pyarrow_modules()  # fail before the first query when the extra is missing
    wanted = tuple(dict.fromkeys(layout.parse_kind(kind) for kind in kinds))
    chosen = None if symbols is None else list(dict.fromkeys(symbols))
    if days_per_query < 1:
        raise ConfigError(f"days_per_query must be >= 1, got {days_per_query}")
    periods = None if resolutions is None else [Resolution.parse(r) for r in resolutions]
    windows = _windows(start, end, days_per_query)
    job = _Export(storage, Path(root), windows, periods, None if feeds is None else list(feeds))
    for kind in wanted:
        if kind == "bar":
            await job.bars(chosen)
        else:
            table = layout.KIND_DIRS[kind]
            await job.quotes_or_ticks(kind, chosen or await storage.stored_symbols(table))
    return job.result


class _Export:
    """One export's selection, windows and result."""

    def __init__(
        self,
        storage: Storage,
        root: Path,
        windows: list[tuple[int, int]],
        resolutions: list[Resolution] | None,
        feeds: list[str] | None,
    ) -> None:
        self.storage = storage
        self.root = root
        self.resolutions = resolutions
        self.feeds = feeds
        self.windows = windows
        self.result = CatalogExport()

    async def bars(self, symbols: list[str] | None) -> None:
        for feed, symbol, resolution in await self.storage.bar_series_keys():
            if (
                (symbols is None or symbol in symbols)
                and (self.feeds is None or feed in self.feeds)
                and (self.resolutions is None or resolution in self.resolutions)
            ):
                for lo, hi in self.windows:
                    items = await self.storage.get_market_data(
                        symbol, lo, hi, resolution=resolution, feed=feed
                    )
                    await self._write("bar", feed, items)

    async def quotes_or_ticks(self, kind: str, symbols: list[str]) -> None:
        for symbol in symbols:
            feeds = self.feeds if self.feeds is not None else await self._stored_feeds(kind, symbol)
            for feed in feeds:
                for lo, hi in self.windows:
                    await self._write(kind, feed, await self._fetch(kind, symbol, feed, lo, hi))

    async def _fetch(
        self, kind: str, symbol: str, feed: str, lo: int, hi: int
    ) -> Sequence[MarketData]:
        if kind == "tick":
            return await self.storage.get_ticks(symbol, lo, hi, feed=feed)
        if self.resolutions is None:
            return await self.storage.get_quote_bars(symbol, lo, hi, feed=feed)
        found: list[MarketData] = []
        for resolution in self.resolutions:
            found += await self.storage.get_quote_bars(
                symbol, lo, hi, resolution=resolution, feed=feed
            )
        return found

    async def _stored_feeds(self, kind: str, symbol: str) -> list[str]:
        """The feeds that stored rows of ``symbol`` of this kind."""
        return await self.storage.stored_feeds(symbol, layout.KIND_DIRS[kind])

    async def _write(self, kind: str, feed: str, items: Sequence[MarketData]) -> None:
        """Write ``items`` (one feed's, in time order) as one file per resolution and day."""
        groups: dict[tuple[Resolution, int], list[MarketData]] = {}
        for item in items:
            resolution = getattr(item, "resolution", Resolution.TICK)
            groups.setdefault((resolution, layout.day_of(item.ts_event)), []).append(item)
        for (resolution, day), group in groups.items():
            symbol = group[0].symbol
            dataset = layout.dataset_dir(self.root, kind, symbol, resolution)
            path = layout.partition_dir(dataset, day) / layout.part_name(feed)
            await asyncio.to_thread(_write_file, path, kind, feed, group)
            self.result.rows[kind] += len(group)
            self.result.files.append(path)


def _write_file(path: Path, kind: str, feed: str, items: Sequence[MarketData]) -> None:
    """Write one partition file atomically (a hidden temporary file renamed into place)."""
    _, pq = pyarrow_modules()
    table = table_from_items(kind, feed, items)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        pq.write_table(table, temporary, compression="zstd")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _windows(
    start: int | datetime | None, end: int | datetime | None, days: int
) -> list[tuple[int, int]]:
    """Return the day-aligned query windows covering ``[start, end)`` widened to whole days."""
    lo, hi = layout.bounds(start, end)
    if start is not None:
        lo = max(layout.day_of(lo) * NS_PER_DAY, layout.MIN_NS)
    if end is not None:
        hi = min(-(-hi // NS_PER_DAY) * NS_PER_DAY, layout.MAX_NS)
    if hi <= lo:
        return []
    if start is None or end is None:
        return [(lo, hi)]
    step = days * NS_PER_DAY
    return [(at, min(at + step, hi)) for at in range(lo, hi, step)]
