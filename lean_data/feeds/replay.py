"""ReplayFeed: replays recorded files through the identical engine path.

Each subscribed symbol is replayed from its files in event-time order, whatever order the
files were given in: the files are merged by time (items with equal times keep file order),
each streamed, a file opened only when the replay reaches its first item. It plays either as
fast as the engine takes it (``speed=None``) or paced by the recorded timestamps
(``speed=60`` plays an hour of data in a minute). ``get_historical_data`` serves the same
files. One series of a Parquet catalog (a directory) replays like a file: pass its
directory, or :meth:`ReplaySource.catalog` for the catalog root and a symbol.

Order-book captures (``lean_data.loaders`` formats of kind ``"book"``) replay too: the feed
answers ``subscribe_book`` (the engine's ``data=("book",)``), declares each book's venue
rules (``book_sequencer``) from its file, and answers ``resync_book`` by re-sending the
last recorded snapshot it replayed for the symbol. A symbol's bar and book files merge by
time; each kind is emitted from when it was subscribed on (like a live feed).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lean_data.book import OrderBookDelta, OrderBookSnapshot
from lean_data.errors import ConfigError
from lean_data.feeds.base import DataFeed, FeedStatus
from lean_data.models import AssetClass, MarketData, Resolution, TradeBar, datetime_to_ns

if TYPE_CHECKING:  # the loaders (and msgspec, the depth formats) load with the first file
    from lean_data.depth.sequencers import Sequencer
    from lean_data.loaders import FileSpec, LoadedItem

__all__ = ["ReplayFeed", "ReplaySource", "merge_by_time", "parse_asset_class"]


def parse_asset_class(value: AssetClass | str | None) -> AssetClass | None:
    """Return ``value`` as an :class:`AssetClass` (``"crypto"``, ``"EQUITY"``...), or None.

    Raises:
        ConfigError: the text names no asset class.
    """
    if value is None or isinstance(value, AssetClass):
        return value
    try:
        return AssetClass(value.strip().lower())
    except ValueError:
        names = ", ".join(kind.value for kind in AssetClass)
        raise ConfigError(f"asset class: expected one of {names}, got {value!r}") from None


@dataclass(frozen=True)
class ReplaySource:
    """One file (or catalog series, :meth:`catalog`) to replay, with what the loader needs.

    Attributes:
        path: the file.
        symbol: canonical symbol (default: inferred from the path).
        format: loader format name (default: detected).
        resolution: bar period (default: inferred).
        options: extra loader options (column mapping, time zone, ...).
        asset_class: what the symbol is (default: what the file's format says, a LEAN
            folder for instance, else the feed's ``asset_class``, else its name).
    """

    path: Path
    symbol: str | None = None
    format: str | None = None
    resolution: Resolution | None = None
    options: dict[str, Any] = field(default_factory=dict)
    asset_class: AssetClass | None = None

    @classmethod
    def catalog(
        cls,
        root: str | Path,
        symbol: str | None = None,
        *,
        kind: str = "bar",
        resolution: Resolution | str | None = None,
        feed: str | None = None,
        start: int | datetime | None = None,
        end: int | datetime | None = None,
        asset_class: AssetClass | str | None = None,
    ) -> ReplaySource:
        """Return the source replaying one series of a Parquet catalog.

        Args:
            root: the catalog directory (see :func:`lean_data.export_catalog`).
            symbol: the real symbol (``"BTC/USDT"``); default: the only one stored.
            kind: ``"bar"``, ``"quote"`` or ``"tick"``.
            resolution: the bar period; default: the only one stored for the symbol.
            feed: only rows this feed stored (default: every feed).
            start, end: event-time range ``[start, end)``, ns or datetimes (naive = UTC).
            asset_class: what the symbol is (default: the feed's, else its name's).

        Raises:
            ConfigError: an unknown ``asset_class``.
            ValueError: an unknown resolution.
        """
        options: dict[str, Any] = {"kind": kind}
        chosen = (("feed", feed), ("start", start), ("end", end))
        options |= {name: value for name, value in chosen if value is not None}
        res = Resolution.parse(resolution) if resolution is not None else None
        kind_of = parse_asset_class(asset_class)
        return cls(Path(root), symbol, "parquet_catalog", res, options, kind_of)

    def items(self) -> Iterator[LoadedItem]:
        """Stream the file's items."""
        from lean_data.loaders import iter_records

        return iter_records(
            self.path,
            format=self.format,
            symbol=self.symbol,
            resolution=self.resolution,
            **self.options,
        )


def merge_by_time(streams: Sequence[Callable[[], Iterator[LoadedItem]]]) -> Iterator[LoadedItem]:
    """Yield the items of several time-ordered streams in event-time order.

    Items with equal ``ts_event`` keep stream order (then their order in the stream). Each
    stream is opened once to read its first item, then again when the merge reaches that
    item, so only the streams that overlap in time are open at once (a year of daily files
    holds one open file, not 365). Memory is one item per open stream.

    Args:
        streams: callables that each open a fresh iterator over one file's items.
    """
    starts: list[tuple[int, int]] = []
    for order, open_stream in enumerate(streams):
        peek = open_stream()
        first = next(peek, None)
        _close(peek)
        if first is not None:
            starts.append((first.ts_event, order))
    starts.sort()
    tie = itertools.count()  # keeps a stream's equal-time items in their own order
    heap: list[tuple[int, int, int, LoadedItem, Iterator[LoadedItem]]] = []
    opened = 0
    try:
        while heap or opened < len(starts):
            while opened < len(starts) and (not heap or starts[opened][0] <= heap[0][0]):
                order = starts[opened][1]
                stream = streams[order]()
                item = next(stream, None)
                if item is not None:
                    heapq.heappush(heap, (item.ts_event, order, next(tie), item, stream))
                opened += 1
            _, order, _, item, stream = heapq.heappop(heap)
            yield item
            following = next(stream, None)
            if following is None:
                _close(stream)
            else:
                heapq.heappush(heap, (following.ts_event, order, next(tie), following, stream))
    finally:
        for *_, stream in heap:
            _close(stream)


def _close(stream: Iterator[LoadedItem]) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        close()


class ReplayFeed(DataFeed):
    """A feed that replays files of real recorded data.

    Args:
        name: the feed's name.
        sources: paths or :class:`ReplaySource` objects; more with :meth:`add_source`.
        speed: ``None`` replays as fast as possible; a factor paces by event time.
        asset_class: what the files' symbols are (an :class:`AssetClass` or its value,
            ``"crypto"``), for routing and trading calendars. It overrides what a file's
            format says (a LEAN folder, a Binance or freqtrade file: crypto); a
            :class:`ReplaySource`'s own ``asset_class`` overrides it. Without any, the
            engine reads the symbol's name (:func:`~lean_data.symbols.classify_symbol`).
        calendar: a :class:`~lean_data.series.calendars.TradingCalendar` for every symbol of the
            feed, instead of the one its asset class gets.

    Raises:
        ConfigError: a bad ``speed`` or an unknown ``asset_class``.
    """

    live = False

    def __init__(
        self,
        name: str = "replay",
        sources: Iterable[str | Path | ReplaySource] = (),
        *,
        speed: float | None = None,
        asset_class: AssetClass | str | None = None,
        calendar: Any = None,
    ) -> None:
        super().__init__(name)
        if speed is not None and speed <= 0:
            raise ConfigError(f"ReplayFeed speed must be > 0 or None, got {speed}")
        self.speed = speed
        self.default_asset_class = parse_asset_class(asset_class)
        self._calendar = calendar
        self._explicit: dict[str, AssetClass] = {}  # from a ReplaySource / add_source
        self._declared: dict[str, AssetClass] = {}  # from the file's format
        self._sources: dict[str, list[ReplaySource]] = {}
        self._replays: dict[str, asyncio.Task[None]] = {}
        self._failures: dict[str, Exception] = {}  # symbol -> what ended its replay early
        self.replayed: dict[str, int] = {}
        self._history_cache: dict[str, tuple[list[MarketData], list[int]]] = {}
        self._book_specs: dict[str, FileSpec] = {}  # symbol -> its book file (venue rules)
        self._bar_symbols: set[str] = set()  # symbols with a bar, quote or tick file
        self._wanted: dict[str, set[str]] = {}  # symbol -> {"bars", "book"} subscribed
        self._last_snapshot: dict[str, OrderBookSnapshot] = {}
        for source in sources:
            self.add_source(source)

    def add_source(
        self,
        source: str | Path | ReplaySource,
        *,
        symbol: str | None = None,
        format: str | None = None,
        resolution: Resolution | str | None = None,
        asset_class: AssetClass | str | None = None,
        **options: Any,
    ) -> str:
        """Add a file to replay; return the symbol it serves.

        An order-book session of several symbols serves each of them (see
        :attr:`symbols`); the first is returned.

        Raises:
            DataFormatError: the file's format or symbol cannot be determined.
            ConfigError: an unknown ``asset_class``.
        """
        if not isinstance(source, ReplaySource):
            res = Resolution.parse(resolution) if resolution is not None else None
            kind = parse_asset_class(asset_class)
            source = ReplaySource(Path(source), symbol, format, res, dict(options), kind)
        from lean_data.loaders import describe_file

        spec = describe_file(
            source.path,
            format=source.format,
            symbol=source.symbol,
            resolution=source.resolution,
            **source.options,
        )
        for symbol in spec.symbols if spec.kind == "book" else (spec.symbol,):
            resolved = ReplaySource(
                source.path, symbol, spec.format, spec.resolution, source.options,
                source.asset_class,
            )  # fmt: skip
            self._sources.setdefault(symbol, []).append(resolved)
            if spec.kind == "book":
                self._book_specs.setdefault(symbol, spec)
            else:
                self._bar_symbols.add(symbol)
            if source.asset_class is not None:
                self._explicit.setdefault(symbol, source.asset_class)
            if spec.asset_class is not None:
                self._declared.setdefault(symbol, spec.asset_class)
            self._history_cache.pop(symbol, None)
        return spec.symbol

    def count(self, symbol: str) -> int:
        """Return how many items replaying ``symbol`` emits (reads its files once)."""
        return sum(1 for source in self._sources.get(symbol, ()) for _ in source.items())

    @property
    def symbols(self) -> list[str]:
        """The symbols this feed can replay."""
        return list(self._sources)

    def data_of(self, symbol: str) -> tuple[str, ...]:
        """What ``symbol``'s files hold, as ``subscribe_symbol(data=...)`` names it:
        ``"bars"`` (bars, quotes, ticks) and/or ``"book"``."""
        bars = ("bars",) if symbol in self._bar_symbols else ()
        return (*bars, "book") if symbol in self._book_specs else bars

    def supports(self, symbol: str) -> bool:
        """True when a file for ``symbol`` was added."""
        return symbol in self._sources

    def asset_class(self, symbol: str) -> AssetClass | None:
        """Return ``symbol``'s class: a file's own, else the feed's, else its format's."""
        return self._explicit.get(symbol) or self.default_asset_class or self._declared.get(symbol)

    def calendar(self, symbol: str) -> Any:
        """Return the calendar given to the feed (None: the engine picks one)."""
        return self._calendar if symbol in self._sources else None

    async def connect(self) -> bool:
        """Nothing to open: files are read on subscribe."""
        self.status = FeedStatus.CONNECTED
        return True

    async def disconnect(self) -> None:
        """Stop every replay in progress."""
        for task in list(self._replays.values()):
            task.cancel()
        await asyncio.gather(*self._replays.values(), return_exceptions=True)
        self._replays.clear()
        if self.status is not FeedStatus.CLOSED:
            self.status = FeedStatus.DISCONNECTED

    async def subscribe(self, symbol: str) -> bool:
        """Start replaying ``symbol``'s bars (ticks, quotes); False when it has no files."""
        return self._start(symbol, "bars")

    async def subscribe_book(self, symbol: str) -> bool:
        """Start replaying ``symbol``'s book records; False when no book file has it."""
        return symbol in self._book_specs and self._start(symbol, "book")

    def book_sequencer(self, symbol: str) -> Sequencer:
        """The integrity rules of the venue that recorded ``symbol``'s book file."""
        spec = self._book_specs.get(symbol)
        if spec is None:
            from lean_data.depth.sequencers import Sequencer

            return Sequencer()
        from lean_data.loaders import sequencer_for

        return sequencer_for(spec, symbol)

    async def resync_book(self, symbol: str) -> None:
        """Re-send the last recorded snapshot of ``symbol`` the replay passed.

        It heals the book only when the deltas buffered since the gap continue from it
        (the recording holds no later snapshot to send).

        Raises:
            NotImplementedError: no snapshot of ``symbol`` was replayed yet.
        """
        snapshot = self._last_snapshot.get(symbol)
        if snapshot is None:
            raise NotImplementedError(
                f"feed {self.name!r} has replayed no snapshot of {symbol} to re-send"
            )
        await self.emit(snapshot)

    def _start(self, symbol: str, kind: str) -> bool:
        if symbol not in self._sources:
            return False
        self._wanted.setdefault(symbol, set()).add(kind)
        if symbol not in self._replays:
            self._replays[symbol] = self.spawn(self._replay(symbol), name=f"replay:{symbol}")
        return True

    async def unsubscribe(self, symbol: str) -> bool:
        """Stop replaying ``symbol``."""
        task = self._replays.pop(symbol, None)
        if task is None:
            return False
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return True

    async def wait_finished(self) -> None:
        """Return when every replay started so far has emitted its last item.

        Raises:
            Exception: what stopped a replay early (it was also reported as ``task_failed``).
        """
        await asyncio.gather(*self._replays.values())
        for symbol in self._replays:
            if symbol in self._failures:
                raise self._failures[symbol]

    @property
    def finished(self) -> bool:
        """True when no replay is in progress."""
        return all(task.done() for task in self._replays.values())

    async def _replay(self, symbol: str) -> None:
        self.replayed[symbol] = 0
        self._failures.pop(symbol, None)
        iterator = self._iterate(symbol)
        try:
            if self.speed is None:
                await self._replay_fast(symbol, iterator)
            else:
                await self._replay_paced(symbol, iterator, self.speed)
        except Exception as exc:
            self._failures[symbol] = exc  # wait_finished raises it; spawn reports it
            raise

    def _iterate(self, symbol: str) -> Iterator[LoadedItem]:
        sources = self._sources[symbol]
        items = (
            sources[0].items()
            if len(sources) == 1
            else merge_by_time([source.items for source in sources])
        )
        return self._wanted_items(symbol, items)

    def _wanted_items(self, symbol: str, items: Iterator[LoadedItem]) -> Iterator[LoadedItem]:
        """The items of the kinds subscribed now; remembers the last snapshot passed."""
        wanted = self._wanted.setdefault(symbol, set())
        for item in items:
            if isinstance(item, OrderBookSnapshot | OrderBookDelta):
                if isinstance(item, OrderBookSnapshot):
                    self._last_snapshot[symbol] = item
                if "book" in wanted:
                    yield item
            elif "bars" in wanted:
                yield item

    async def _replay_fast(self, symbol: str, items: Iterator[LoadedItem]) -> None:
        emit = self.emit
        count = 0
        for count, item in enumerate(items, 1):  # count survives the loop
            await emit(item)
            if count % 1024 == 0:
                self.replayed[symbol] = count
                await asyncio.sleep(0)  # let other replays and the engine run
        self.replayed[symbol] = count

    async def _replay_paced(self, symbol: str, items: Iterator[LoadedItem], speed: float) -> None:
        start_wall = time.monotonic()
        first_ts: int | None = None
        for count, item in enumerate(items, 1):
            if first_ts is None:
                first_ts = item.ts_event
            due = (item.ts_event - first_ts) / 1e9 / speed
            delay = due - (time.monotonic() - start_wall)
            if delay > 0:
                await asyncio.sleep(delay)  # pacing by recorded time, not a race guard
            await self.emit(item)
            self.replayed[symbol] = count

    async def get_historical_data(
        self,
        symbol: str,
        start_date: datetime | int,
        end_date: datetime | int,
        resolution: Resolution,
    ) -> list[MarketData]:
        """Return items of ``symbol`` with event time in [start, end) from the files.

        Bars of a finer resolution that divides ``resolution`` are resampled to it. The
        files are read once, on the first query, and kept in memory sorted by time.
        """
        if symbol not in self._sources:
            return []
        start = start_date if isinstance(start_date, int) else datetime_to_ns(start_date)
        end = end_date if isinstance(end_date, int) else datetime_to_ns(end_date)
        return await asyncio.to_thread(self._history, symbol, start, end, resolution)

    def _loaded(self, symbol: str) -> tuple[list[MarketData], list[int]]:
        """The symbol's items from every source, sorted by event time, read once."""
        loaded = self._history_cache.get(symbol)
        if loaded is None:
            items = sorted(
                (
                    item
                    for source in self._sources[symbol]
                    for item in source.items()
                    if isinstance(item, MarketData)
                ),
                key=lambda item: item.ts_event,
            )
            loaded = self._history_cache[symbol] = (items, [item.ts_event for item in items])
        return loaded

    def _history(
        self, symbol: str, start: int, end: int, resolution: Resolution
    ) -> list[MarketData]:
        items, stamps = self._loaded(symbol)
        found = items[bisect_left(stamps, start) : bisect_left(stamps, end)]
        if resolution.is_tick or not all(isinstance(x, TradeBar) for x in found):
            return found
        bars = [x for x in found if isinstance(x, TradeBar)]
        if all(b.resolution is resolution for b in bars):
            return found
        finer = [b for b in bars if b.resolution < resolution]
        from lean_data.analytics.transform import DataTransformer  # zoneinfo, on first use

        return list(DataTransformer.resample_bars(finer, resolution)) if finer else []
