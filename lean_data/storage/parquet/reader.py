"""Read a Parquet catalog: models in event-time order, and import into any Storage.

A series is read one UTC day (one ``date=`` partition) at a time, so memory is one day of
one series; days outside the asked range are not opened. Within a day the rows of every
feed's file are ordered by event time, then feed name, then file order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from lean_data.errors import DataFormatError
from lean_data.models import MarketData, Resolution
from lean_data.storage.base import Storage
from lean_data.storage.parquet import layout
from lean_data.storage.parquet.arrow import pyarrow_modules, rows_from_table
from lean_data.storage.parquet.layout import CatalogSeries

__all__ = ["catalog_series", "import_catalog", "iter_series", "read_catalog"]

Row = tuple[str, MarketData]


def catalog_series(root: str | Path, kinds: Iterable[str] | None = None) -> list[CatalogSeries]:
    """Return the series a catalog holds (kind, symbol, resolution, directory).

    Args:
        root: the catalog directory.
        kinds: only these kinds (``"bar"``, ``"quote"``, ``"tick"``; default: all).

    Raises:
        ConfigError: an unknown kind.
    """
    wanted = layout.KINDS if kinds is None else tuple(layout.parse_kind(k) for k in kinds)
    return layout.list_series(Path(root), wanted)


def read_catalog(
    root: str | Path,
    symbol: str | None = None,
    *,
    kind: str | None = None,
    resolution: Resolution | str | None = None,
    feed: str | None = None,
    start: int | datetime | None = None,
    end: int | datetime | None = None,
) -> Iterator[MarketData]:
    """Stream one series of a catalog in event-time order.

    The series is settled (and pyarrow imported) before this returns; files are read as
    the iterator is consumed.

    Args:
        root: the catalog directory, or one series' directory (``<root>/bars/<symbol>/1m``).
        symbol: the real symbol (``"BTC/USDT"``); default: the only one stored.
        kind: ``"bar"`` (default when the catalog has bars), ``"quote"`` or ``"tick"``.
        resolution: the bar period; default: the only one stored for the symbol.
        feed: only rows this feed stored (default: every feed).
        start, end: event-time range ``[start, end)``, ns or datetimes (naive = UTC).

    Raises:
        ConfigError: pyarrow missing, no such series, or several match and none is named.
        DataFormatError: a file is not a readable catalog file (raised while iterating).
    """
    pyarrow_modules()
    res = None if resolution is None else Resolution.parse(resolution)
    series = layout.locate(Path(root), kind, symbol, res)
    return (item for _, item in iter_series(series, feed=feed, start=start, end=end))


def iter_series(
    series: CatalogSeries,
    *,
    feed: str | None = None,
    start: int | datetime | None = None,
    end: int | datetime | None = None,
) -> Iterator[Row]:
    """Yield ``(feed, item)`` of one series in event-time order (see :func:`read_catalog`)."""
    lo, hi = layout.bounds(start, end)
    first, last = layout.days_between(lo, hi)
    for day, directory in layout.day_partitions(series.path):
        if first <= day <= last:
            yield from read_day(series, directory, feed, lo, hi)


def read_day(
    series: CatalogSeries, directory: Path, feed: str | None, lo: int, hi: int
) -> list[Row]:
    """Return one date partition's rows in ``[lo, hi)`` (of ``feed``), in time order."""
    pa, pq = pyarrow_modules()
    rows: list[Row] = []
    for path in sorted(directory.glob("*.parquet")):
        try:
            table = pq.ParquetFile(path).read()
        except (pa.ArrowException, OSError) as exc:
            raise DataFormatError(f"not a readable Parquet file: {exc}", source=str(path)) from exc
        rows.extend(
            (row_feed, item)
            for row_feed, item in rows_from_table(series.kind, table, str(path))
            if lo <= item.ts_event < hi and (feed is None or row_feed == feed)
        )
    rows.sort(key=lambda row: (row[1].ts_event, row[0]))  # stable: file order within a feed
    return rows


async def import_catalog(
    root: str | Path,
    storage: Storage,
    *,
    symbols: Iterable[str] | None = None,
    kinds: Iterable[str] | None = None,
    resolutions: Iterable[Resolution | str] | None = None,
    feeds: Iterable[str] | None = None,
    start: int | datetime | None = None,
    end: int | datetime | None = None,
) -> dict[str, int]:
    """Save a catalog's rows into ``storage`` (``save_market_data``, then ``flush``).

    Each row is saved under the feed that exported it, so importing twice upserts the same
    bars and quote bars (ticks have no key: importing twice stores them twice). Files are
    read in a worker thread, one day at a time.

    Args:
        root: the catalog directory.
        storage: an open store.
        symbols, kinds, resolutions, feeds: only these (default: everything stored).
        start, end: event-time range ``[start, end)``, ns or datetimes (naive = UTC).

    Returns:
        Rows saved per kind (``"bar"``, ``"quote"``, ``"tick"``).

    Raises:
        ConfigError: pyarrow missing or an unknown kind.
        DataFormatError: a file is not a readable catalog file.
        StorageError: the store did not keep every row (from ``flush``).
    """
    pyarrow_modules()
    chosen = None if symbols is None else set(symbols)
    periods = None if resolutions is None else {Resolution.parse(r) for r in resolutions}
    wanted_feeds = None if feeds is None else set(feeds)
    lo, hi = layout.bounds(start, end)
    first, last = layout.days_between(lo, hi)
    counts = dict.fromkeys(layout.KINDS, 0)
    for series in catalog_series(root, kinds):
        if chosen is not None and series.symbol not in chosen:
            continue
        if periods is not None and series.kind != "tick" and series.resolution not in periods:
            continue
        for day, directory in layout.day_partitions(series.path):
            if not first <= day <= last:
                continue
            rows = await asyncio.to_thread(read_day, series, directory, None, lo, hi)
            for feed, item in rows:
                if wanted_feeds is None or feed in wanted_feeds:
                    await storage.save_market_data(item, feed=feed)
                    counts[series.kind] += 1
    await storage.flush()
    return counts
