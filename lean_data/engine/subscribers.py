"""Async subscribers: each async callback runs from its own bounded queue.

The engine's pipeline offers every item to every subscriber without waiting (except under
the BLOCK policy when the queue is full). A worker task per subscriber awaits the
callback, so a slow callback delays only itself. What happens when its queue is full is
the subscriber's declared :class:`~lean_data.config.OverflowPolicy`; every discarded
item is counted in ``dropped``.

A subscriber may want only some symbols and kinds (``add_data_callback(cb,
symbols=["AAPL"], kinds="bar")``): the filter is two frozensets made once at registration.
A sync callback with a filter is wrapped in a small function that checks them; one without
runs as it is. A *pulled* subscriber has no worker task: its consumer takes items with
:meth:`Subscriber.pull` (what ``DataEngine.stream()`` iterates over).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from lean_data.config import OverflowPolicy
from lean_data.derivatives import FundingRate, Liquidation, MarkPrice, OpenInterest
from lean_data.engine.tasks import Spawn
from lean_data.errors import ConfigError
from lean_data.models import MarketData, QuoteBar, Tick, TradeBar
from lean_data.quality.levels import DataQualityLevel
from lean_data.quality.screen import bad_text

__all__ = [
    "KINDS",
    "AsyncCallback",
    "Callbacks",
    "Subscriber",
    "SyncCallback",
    "parse_kinds",
    "parse_symbols",
]

log = logging.getLogger(__name__)

AsyncCallback = Callable[[str, MarketData, DataQualityLevel], Awaitable[Any]]
SyncCallback = Callable[[str, MarketData, DataQualityLevel], Any]
ErrorHook = Callable[["Subscriber", str, BaseException], None]
_Entry = tuple[str, MarketData, DataQualityLevel]
Types = frozenset[type[Any]]

KINDS: dict[str, type[Any]] = {
    cls.kind: cls
    for cls in (TradeBar, QuoteBar, Tick, FundingRate, OpenInterest, MarkPrice, Liquidation)
}
"""Every kind a callback can name, by name (each class's ``kind``): market data (``bar``,
``quote``, ``tick``) first, then the derivatives records."""
_MARKET: Types = frozenset((TradeBar, QuoteBar, Tick))


def parse_kinds(kinds: Iterable[str] | str | None) -> tuple[Types, Types]:
    """Return the market data classes and the record classes ``kinds`` names.

    None names every market kind (bars, quote bars and ticks: what a callback registered
    without ``kinds`` gets) and no record kind. Any subset of :data:`KINDS` may be named.

    Raises:
        ConfigError: an unknown kind, or no kind at all.
    """
    if kinds is None:
        return _MARKET, frozenset()
    names = [kinds] if isinstance(kinds, str) else list(kinds)
    unknown = [k for k in names if k not in KINDS]
    if unknown or not names:
        raise ConfigError(f"kinds: expected some of {', '.join(KINDS)}; got {names!r}")
    chosen = frozenset(KINDS[k] for k in names)
    return chosen & _MARKET, chosen - _MARKET


def parse_symbols(symbols: Iterable[str] | str | None) -> frozenset[str] | None:
    """Return the symbols a callback wants (None: every symbol); a string is one symbol.

    Raises:
        ConfigError: no symbol, or one that is not a symbol name.
    """
    if symbols is None:
        return None
    names = [symbols] if isinstance(symbols, str) else list(symbols)
    bad = next((s for s in names if not isinstance(s, str) or not s or bad_text(s)), None)
    if bad is not None or not names:
        raise ConfigError(
            f"symbols: expected symbol names, or None for every symbol; got {names!r}"
        )
    return frozenset(names)


def _only(callback: SyncCallback, symbols: frozenset[str] | None, types: Types | None) -> Any:
    """``callback`` called only for items of ``symbols`` and ``types`` (None: any)."""
    names: frozenset[str] = frozenset() if symbols is None else symbols
    classes: Types = frozenset() if types is None else types
    if symbols is None and types is None:
        return callback
    if types is None:

        def call(symbol: str, item: Any, level: DataQualityLevel) -> Any:
            return callback(symbol, item, level) if symbol in names else None

    elif symbols is None:

        def call(symbol: str, item: Any, level: DataQualityLevel) -> Any:
            return callback(symbol, item, level) if type(item) in classes else None

    else:

        def call(symbol: str, item: Any, level: DataQualityLevel) -> Any:
            if symbol in names and type(item) in classes:
                return callback(symbol, item, level)
            return None

    return functools.wraps(callback)(call)  # errors name the user's function


async def _pulled(symbol: str, item: MarketData, level: DataQualityLevel) -> None:
    """The callback of a pulled subscriber: never called (its consumer pulls)."""
    raise AssertionError("a pulled subscriber has no worker")


class Subscriber:
    """One async callback with its bounded queue, overflow policy and worker task.

    Args:
        callback: ``async def cb(symbol, data, quality)``.
        policy: what to do when the queue is full.
        maxsize: queue capacity (for CONFLATE: the number of symbols held).
        on_error: called when the callback raises (the engine counts and logs it).
        name: shown in metrics.
        symbols: the only symbols it takes (None: every one); others are not offered.
        types: the only item classes it takes (None: every one).
        pulled: no worker task: a consumer takes items with :meth:`pull`.
    """

    def __init__(
        self,
        callback: AsyncCallback,
        policy: OverflowPolicy,
        maxsize: int,
        on_error: ErrorHook,
        name: str = "",
        *,
        partial: bool = False,
        floor: float = -1.0,
        late: bool = True,
        symbols: frozenset[str] | None = None,
        types: Types | None = None,
        pulled: bool = False,
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"a subscriber queue needs maxsize >= 1, got {maxsize}")
        self.callback = callback
        self.partial = partial
        """Also receives in-progress bars (``closed=False``); those never block."""
        self.floor = floor
        """The lowest quality score it takes (-1: every item, INVALID included)."""
        self.late = late
        """Whether it takes late bars (flagged ``late``)."""
        self.symbols = symbols
        self.types = types
        self._filtered = symbols is not None or types is not None
        self.pulled = pulled
        """Its consumer pulls (:meth:`pull`); the engine runs no worker for it."""
        self.policy = policy
        self.maxsize = maxsize
        self.name = name or getattr(callback, "__qualname__", repr(callback))
        self._on_error = on_error
        self._queue: deque[_Entry] = deque()
        self._latest: OrderedDict[str, _Entry] = OrderedDict()
        self._conflate = policy is OverflowPolicy.CONFLATE
        self._has_items = asyncio.Event()
        self._has_room = asyncio.Event()
        self._has_room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self.delivered = 0
        self.in_flight = 0
        self.dropped = 0
        self.errors = 0
        self.task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._latest) if self._conflate else len(self._queue)

    def offer(self, symbol: str, item: MarketData, level: DataQualityLevel) -> bool:
        """Queue one item without waiting; False only under BLOCK with a full queue.

        An item its ``symbols`` / ``types`` filter leaves out is not queued (True).
        """
        if self._filtered and not self.wants(symbol, item):
            return True
        if self._conflate:
            self._offer_conflate(symbol, item, level)
        else:
            queue = self._queue
            if len(queue) >= self.maxsize:
                if self.policy is OverflowPolicy.BLOCK:
                    self._has_room.clear()
                    return False
                queue.popleft()
                self.dropped += 1
            queue.append((symbol, item, level))
        if not self._has_items.is_set():
            self._idle.clear()
            self._has_items.set()
        return True

    def wants(self, symbol: str, item: object) -> bool:
        """Whether its filter takes ``item`` of ``symbol``."""
        symbols, types = self.symbols, self.types
        return (symbols is None or symbol in symbols) and (types is None or type(item) in types)

    def _offer_conflate(self, symbol: str, item: MarketData, level: DataQualityLevel) -> None:
        latest = self._latest
        if symbol in latest:
            self.dropped += 1
        elif len(latest) >= self.maxsize:
            latest.popitem(last=False)
            self.dropped += 1
        latest[symbol] = (symbol, item, level)

    def offer_update(self, symbol: str, item: MarketData, level: DataQualityLevel) -> None:
        """Offer an in-progress bar; dropped (counted) when full: the next update supersedes it."""
        if not self.offer(symbol, item, level):
            self.dropped += 1

    async def put(self, symbol: str, item: MarketData, level: DataQualityLevel) -> None:
        """Queue one item, waiting for room under BLOCK."""
        while not self.offer(symbol, item, level):
            await self._has_room.wait()

    def _pop(self) -> _Entry:
        if self._conflate:
            return self._latest.popitem(last=False)[1]
        entry = self._queue.popleft()
        if not self._has_room.is_set() and len(self._queue) < self.maxsize:
            self._has_room.set()
        return entry

    async def run(self) -> None:
        """Deliver queued items to the callback until closed and empty (worker task)."""
        callback = self.callback
        pending = self._latest if self._conflate else self._queue  # what len(self) counts
        pop = self._pop
        while True:
            while pending:
                symbol, item, level = pop()
                self.in_flight = 1
                try:
                    await callback(symbol, item, level)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.errors += 1
                    self._on_error(self, symbol, exc)
                self.in_flight = 0
                self.delivered += 1
            self._has_items.clear()
            self._has_room.set()
            self._idle.set()
            if self._closing:
                return
            await self._has_items.wait()

    async def pull(self) -> _Entry | None:
        """Take the next queued item, waiting for one; None once closed and empty.

        What a pulled subscriber's consumer calls instead of a worker task running the
        callback; an item counts as delivered when it is taken.
        """
        pending = self._latest if self._conflate else self._queue
        while not pending:
            self._has_items.clear()
            self._has_room.set()
            self._idle.set()
            if self._closing:
                return None
            await self._has_items.wait()
        self.delivered += 1
        return self._pop()

    async def join(self) -> None:
        """Return once every queued item has been handed to the callback."""
        await self._idle.wait()

    def close(self) -> None:
        """Ask the worker to finish what is queued and then stop."""
        self._closing = True
        self._has_items.set()

    def abandon(self) -> int:
        """Discard what is still queued (stop timeout); return how many were lost."""
        lost = len(self)
        self._queue.clear()
        self._latest.clear()
        self.dropped += lost
        self._has_room.set()
        return lost

    def statistics(self) -> dict[str, Any]:
        """Return a snapshot of this subscriber's counters."""
        return {
            "name": self.name,
            "policy": self.policy.value,
            "queue_depth": len(self),
            "maxsize": self.maxsize,
            "delivered": self.delivered,
            "in_flight": self.in_flight,
            "dropped": self.dropped,
            "errors": self.errors,
            "symbols": None if self.symbols is None else sorted(self.symbols),
            "kinds": None if self.types is None else sorted(t.kind for t in self.types),
        }


class Callbacks:
    """Who the pipeline calls back: sync callbacks inline, async ones through subscribers.

    The pipeline reads the three lists per item; only this class changes them.

    Args:
        on_error: called with (callback name, symbol, exception) when a subscriber's
            callback raises.
    """

    __slots__ = (
        "_on_error", "_original", "_spawn", "others", "partial", "records_async",
        "records_sync", "subscribers", "sync",
    )  # fmt: skip

    def __init__(self, on_error: Callable[[str, str, BaseException], None]) -> None:
        self._on_error = on_error
        self._spawn: Spawn | None = None
        self.sync: list[tuple[SyncCallback, float, bool]] = []  # callback, floor, late
        self.partial: list[SyncCallback] = []  # sync callbacks that see in-progress bars
        self.subscribers: list[Subscriber] = []
        # record kinds (funding rates, ...) by class: only callbacks that asked for them
        self.records_sync: dict[type[Any], list[SyncCallback]] = {}
        self.records_async: dict[type[Any], list[Subscriber]] = {}
        self.others: list[Subscriber] = []  # async callbacks of records only
        self._original: dict[SyncCallback, SyncCallback] = {}  # filtering wrapper -> callback

    def every(self) -> list[Subscriber]:
        """Every subscriber: market data ones, then those of records only."""
        return [*self.subscribers, *self.others]

    def add(
        self,
        callback: SyncCallback | AsyncCallback,
        kinds: tuple[Types, Types],
        symbols: frozenset[str] | None,
        *,
        floor: float,
        late: bool,
        partial: bool,
        policy: OverflowPolicy,
        size: int,
        name: str,
    ) -> Subscriber | None:
        """Register ``callback`` for the (market, record) classes of ``kinds`` and
        ``symbols`` (None: every symbol); return its subscriber when it is async.

        A plain function is called inline (wrapped in a filter when it has one); a
        coroutine function from a subscriber's queue.
        """
        market, records = kinds
        types = None if market == _MARKET else market | records
        if inspect.iscoroutinefunction(callback):
            subscriber = Subscriber(
                callback, policy, size, self._failed, name, partial=partial, floor=floor,
                late=late, symbols=symbols, types=types,
            )  # fmt: skip
            self._listen(subscriber, bool(market), records)
            return subscriber
        called = _only(callback, symbols, types)
        if called is not callback:
            self._original[called] = callback
        if market:
            self.sync.append((called, floor, late))
            if partial:
                self.partial.append(called)
        for kind in records:
            self.records_sync.setdefault(kind, []).append(called)
        return None

    def add_pulled(
        self,
        kinds: tuple[Types, Types],
        symbols: frozenset[str] | None,
        *,
        floor: float,
        late: bool,
        policy: OverflowPolicy,
        size: int,
        name: str,
    ) -> Subscriber:
        """Register a subscriber whose consumer pulls its items (a stream; no worker)."""
        market, records = kinds
        types = None if market == _MARKET else market | records
        subscriber = Subscriber(
            _pulled, policy, size, self._failed, name, floor=floor, late=late,
            symbols=symbols, types=types, pulled=True,
        )  # fmt: skip
        self._listen(subscriber, bool(market), records)
        return subscriber

    def _listen(self, subscriber: Subscriber, market: bool, records: Types) -> None:
        """List ``subscriber`` for market data and/or ``records``; start its worker."""
        for kind in records:
            self.records_async.setdefault(kind, []).append(subscriber)
        (self.subscribers if market else self.others).append(subscriber)
        if self._spawn is not None:
            self._run(subscriber)

    def start(self, spawn: Spawn) -> None:
        """Run each subscriber's worker as an engine task, now and for those added later."""
        self._spawn = spawn
        for subscriber in self.every():
            self._run(subscriber)

    def _run(self, subscriber: Subscriber) -> None:
        assert self._spawn is not None
        if not subscriber.pulled:
            subscriber.task = self._spawn(f"subscriber:{subscriber.name}", subscriber.run)

    def _failed(self, subscriber: Subscriber, symbol: str, exc: BaseException) -> None:
        self._on_error(subscriber.name, symbol, exc)

    failed = _failed  # the error hook of subscribers made elsewhere (book callbacks)

    def remove(self, callback: Callable[..., Any]) -> bool:
        """Stop calling ``callback``; an async one finishes what it has queued first."""
        original = self._original.get
        found = False
        for entry in [e for e in self.sync if original(e[0], e[0]) == callback]:
            self.sync.remove(entry)
            if entry[0] in self.partial:
                self.partial.remove(entry[0])
            found = True
        for called in self.records_sync.values():
            for each in [c for c in called if original(c, c) == callback]:
                called.remove(each)
                found = True
        if found:
            self._original = {w: c for w, c in self._original.items() if c != callback}
            return True
        for queued in (self.subscribers, self.others):
            for subscriber in queued:
                if subscriber.callback == callback:
                    return self.discard(subscriber)
        return False

    def discard(self, subscriber: Subscriber) -> bool:
        """Unlist ``subscriber`` (market data and records); it finishes what it queued.

        Returns False when it was not listed.
        """
        for subscribers in self.records_async.values():
            if subscriber in subscribers:
                subscribers.remove(subscriber)
        for queued in (self.subscribers, self.others):
            if subscriber in queued:
                queued.remove(subscriber)
                subscriber.close()
                return True
        return False

    async def close(self) -> None:
        """Let every subscriber finish its queue, then end (at stop)."""
        for subscriber in self.every():
            subscriber.close()
        await asyncio.gather(*(s.task for s in self.every() if s.task is not None))

    def abandon(self) -> int:
        """Discard what subscribers still queue (stop timeout); return how many were lost."""
        return sum(s.abandon() for s in self.every())
