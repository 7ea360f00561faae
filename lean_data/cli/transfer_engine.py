"""The store and engine side of ``lean-data export`` / ``import``.

:func:`read_series` reads one stored bar series in windows (keyset pages by open time);
:func:`count_rows` counts what a store holds per series; :class:`ExportFileFeed` replays
files ``lean-data export`` wrote into a :class:`~lean_data.engine.DataEngine`, and
:func:`ingest` runs a feed through one, exactly as ``lean-data replay`` does but without
its report.

Bars are read with the quality they were stored with (score, level, reasons) through
:meth:`~lean_data.storage.base.Storage.get_scored_bars`, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Final

from lean_data.cli.export_formats import iso_ns, read_rows
from lean_data.config import Config
from lean_data.engine import DataEngine
from lean_data.feeds.base import DataFeed, FeedStatus
from lean_data.models import MarketData, QuoteBar, Resolution, Tick, TradeBar, datetime_to_ns
from lean_data.quality.levels import DataQualityLevel
from lean_data.storage.base import Storage
from lean_data.storage.factory import create_storage
from lean_data.storage.rows import ScoredBar

__all__ = ["TABLES", "ExportFileFeed", "SeriesKey", "count_rows", "ingest", "read_series"]

SeriesKey = tuple[str, str, str, str]
"""(table, feed, symbol, resolution name or ``-``) of imported rows."""

TABLES: Final[dict[type, str]] = {TradeBar: "bars", QuoteBar: "quote_bars", Tick: "ticks"}

_EXAMPLES: Final = 5


async def read_series(
    storage: Storage, key: tuple[str, str, Resolution], start: int, end: int, window: int
) -> AsyncIterator[list[ScoredBar]]:
    """Yield the series' bars opening in ``[start, end)``, ``window`` rows at a time."""
    feed, symbol, resolution = key
    low = start
    while True:
        rows = await storage.get_scored_bars(
            symbol, low, end, resolution=resolution, feed=feed, limit=window
        )
        if not rows:
            return
        yield rows
        if len(rows) < window:
            return
        low = rows[-1].bar.ts_event + 1


async def count_rows(config: Config, keys: Sequence[SeriesKey]) -> dict[SeriesKey, int]:
    """How many rows the store of ``config`` holds of each series (0 without a store)."""
    storage = create_storage(config)
    if storage is None:  # pragma: no cover - Storing always names a database
        return dict.fromkeys(keys, 0)
    async with storage:
        counts: dict[SeriesKey, int] = {}
        for key in keys:
            table, feed, symbol, resolution = key
            period = None if table == "ticks" else resolution
            counts[key] = await storage.count(table, feed=feed, symbol=symbol, resolution=period)
        return counts


class ExportFileFeed(DataFeed):
    """Replays the rows of export files: those of feed ``source`` (None: every row).

    Scored rows are emitted in file order once every symbol is subscribed; the unscored
    ones (``quality_level`` empty), given as ``unscored``, are served by
    :meth:`get_historical_data` only.
    """

    live = False

    def __init__(
        self,
        name: str,
        files: Sequence[tuple[Path, str]],
        source: str | None,
        symbols: set[str],
        unscored: Sequence[TradeBar] = (),
    ) -> None:
        super().__init__(name, symbols=symbols)
        self._files = list(files)
        self._source = source
        self._expected = set(symbols)
        self._subscribed: set[str] = set()
        self._pump: asyncio.Task[None] | None = None
        self._failure: Exception | None = None
        self._unscored = list(unscored)

    def _rows(self) -> Iterator[ScoredBar]:
        for path, fmt in self._files:
            for row in read_rows(path, fmt):
                if self._source is None or row.feed == self._source:
                    yield row

    async def connect(self) -> bool:
        """Nothing to open: the files are read when every symbol is subscribed."""
        self.status = FeedStatus.CONNECTED
        return True

    async def disconnect(self) -> None:
        """Stop emitting."""
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
        if self.status is not FeedStatus.CLOSED:
            self.status = FeedStatus.DISCONNECTED

    async def subscribe(self, symbol: str) -> bool:
        """Note ``symbol``; the replay starts once every symbol of the files is subscribed."""
        if symbol not in self._expected:
            return False
        self._subscribed.add(symbol)
        if self._pump is None and self._subscribed >= self._expected:
            self._pump = self.spawn(self._emit_all(), name="export-files")
        return True

    async def unsubscribe(self, symbol: str) -> bool:
        """Forget ``symbol`` (rows already emitted stay emitted)."""
        if symbol not in self._subscribed:
            return False
        self._subscribed.discard(symbol)
        return True

    async def _emit_all(self) -> None:
        try:
            count = 0
            for row in self._rows():
                if row.level:
                    await self.emit(row.bar)
                    count += 1
                    if count % 1024 == 0:
                        await asyncio.sleep(0)  # let the engine run
        except Exception as exc:
            self._failure = exc  # wait_finished raises it; spawn reports it
            raise

    async def wait_finished(self) -> None:
        """Return when every row was emitted; raise what stopped the replay early."""
        if self._pump is not None:
            await asyncio.gather(self._pump, return_exceptions=True)
        if self._failure is not None:
            raise self._failure

    async def get_historical_data(
        self,
        symbol: str,
        start_date: datetime | int,
        end_date: datetime | int,
        resolution: Resolution,
    ) -> list[MarketData]:
        """The unscored rows of ``symbol`` at ``resolution`` opening in ``[start, end)``.

        The engine also asks here for the bars of a gap it found: the files have none.
        """
        start = start_date if isinstance(start_date, int) else datetime_to_ns(start_date)
        end = end_date if isinstance(end_date, int) else datetime_to_ns(end_date)
        return [
            bar
            for bar in self._unscored
            if bar.symbol == symbol
            and bar.resolution.nanos == resolution.nanos
            and start <= bar.ts_event < end
        ]


async def ingest(
    engine: DataEngine,
    feed: DataFeed,
    symbols: Sequence[str],
    data_of: Callable[[str], tuple[str, ...]],
    wait_finished: Callable[[], Awaitable[None]],
    history: Sequence[tuple[str, str, int, int]] = (),
) -> tuple[Counter[SeriesKey], list[str]]:
    """Run ``feed``'s ``symbols`` through ``engine`` until every item was processed.

    ``history``: (symbol, resolution, first, last open time) ranges then fetched through
    the engine's history path (stored without a verdict, as a history query stores them);
    ``wait_finished`` returns when the feed emitted its last item. Returns the INVALID
    items per series, and the first few described.
    """
    invalid: Counter[SeriesKey] = Counter()
    examples: list[str] = []

    def on_data(symbol: str, data: MarketData, quality: DataQualityLevel) -> None:
        if quality is DataQualityLevel.INVALID:
            resolution = getattr(data, "resolution", None)
            name = "-" if resolution is None else resolution.name
            invalid[(TABLES[type(data)], feed.name, symbol, name)] += 1
            if len(examples) < _EXAMPLES:
                examples.append(f"{feed.name} {symbol} {name} {_describe(data)}")

    engine.add_feed(feed)
    engine.add_data_callback(on_data)
    for symbol in symbols:
        await engine.subscribe_symbol(symbol, feed_name=feed.name, data=data_of(symbol))
    async with engine:
        await wait_finished()
        await engine.wait_idle()
        for symbol, resolution, first, last in history:
            res = Resolution.parse(resolution)
            await engine.get_historical_data(symbol, first, last + res.nanos, res, feed.name)
    return invalid, examples


def _describe(item: MarketData) -> str:
    when = iso_ns(item.ts_event)
    if isinstance(item, TradeBar):
        b = item
        return f"{when} O {b.open!r} H {b.high!r} L {b.low!r} C {b.close!r} V {b.volume!r}"
    return f"{when} {type(item).__name__}"
