"""Who is called back: the registry of sync and async callbacks and their filters.

Every async callback is a :class:`~lean_data.engine.subscriber.Subscriber` (its own
bounded queue, overflow policy and worker task). A subscriber may want only some symbols
and kinds (``add_data_callback(cb, symbols=["AAPL"], kinds="bar")``): the filter is two
frozensets made once at registration. A sync callback with a filter is wrapped in a small
function that checks them; one without runs as it is.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any

from lean_data.config import OverflowPolicy
from lean_data.derivatives import FundingRate, Liquidation, MarkPrice, OpenInterest
from lean_data.engine.subscriber import AsyncCallback, Listeners, Subscriber, Types
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

SyncCallback = Callable[[str, MarketData, DataQualityLevel], Any]

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


class Callbacks:
    """Who the pipeline calls back: sync callbacks inline, async ones through subscribers.

    The pipeline reads the lists per item; only this class changes them, and never in place:
    a change makes a new list, so a callback that adds or removes one while the pipeline
    calls back an item cannot make it skip another callback for that item.

    Args:
        on_error: called with (callback name, symbol, exception) when a subscriber's
            callback raises.
    """

    __slots__ = (
        "_on_error", "_original", "_spawn", "listeners", "others", "records_async",
        "records_sync",
    )  # fmt: skip

    def __init__(self, on_error: Callable[[str, str, BaseException], None]) -> None:
        self._on_error = on_error
        self._spawn: Spawn | None = None
        # the market-data lists (sync, partial, subscribers), in the compiled class the
        # fan-out reads per item
        self.listeners = Listeners()
        # record kinds (funding rates, ...) by class: only callbacks that asked for them
        self.records_sync: dict[type[Any], list[SyncCallback]] = {}
        self.records_async: dict[type[Any], list[Subscriber]] = {}
        self.others: list[Subscriber] = []  # async callbacks of records only
        self._original: dict[SyncCallback, SyncCallback] = {}  # filtering wrapper -> callback

    @property
    def sync(self) -> list[tuple[SyncCallback, float, bool]]:
        """(callback, score floor, takes late bars) of each sync callback."""
        return self.listeners.sync

    @sync.setter
    def sync(self, value: list[tuple[SyncCallback, float, bool]]) -> None:
        self.listeners.sync = value

    @property
    def partial(self) -> list[SyncCallback]:
        """The sync callbacks that see in-progress bars."""
        return self.listeners.partial

    @partial.setter
    def partial(self, value: list[SyncCallback]) -> None:
        self.listeners.partial = value

    @property
    def subscribers(self) -> list[Subscriber]:
        """The async subscribers of market data."""
        return self.listeners.subscribers

    @subscribers.setter
    def subscribers(self, value: list[Subscriber]) -> None:
        self.listeners.subscribers = value

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
            self.sync = [*self.sync, (called, floor, late)]
            if partial:
                self.partial = [*self.partial, called]
        for kind in records:
            self.records_sync[kind] = [*self.records_sync.get(kind, ()), called]
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
            self.records_async[kind] = [*self.records_async.get(kind, ()), subscriber]
        if market:
            self.subscribers = [*self.subscribers, subscriber]
        else:
            self.others = [*self.others, subscriber]
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
        gone = [e[0] for e in self.sync if original(e[0], e[0]) == callback]
        for called in self.records_sync.values():
            gone += [c for c in called if original(c, c) == callback and c not in gone]
        if gone:
            self.sync = [e for e in self.sync if e[0] not in gone]
            self.partial = [c for c in self.partial if c not in gone]
            for kind, called in self.records_sync.items():
                self.records_sync[kind] = [c for c in called if c not in gone]
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
        for kind, subscribers in self.records_async.items():
            if subscriber in subscribers:
                self.records_async[kind] = [s for s in subscribers if s is not subscriber]
        if subscriber in self.subscribers:
            self.subscribers = [s for s in self.subscribers if s is not subscriber]
        elif subscriber in self.others:
            self.others = [s for s in self.others if s is not subscriber]
        else:
            return False
        subscriber.close()
        return True

    async def close(self) -> None:
        """Let every subscriber finish its queue, then end (at stop)."""
        for subscriber in self.every():
            subscriber.close()
        await asyncio.gather(*(s.task for s in self.every() if s.task is not None))

    def abandon(self) -> int:
        """Discard what subscribers still queue (stop timeout); return how many were lost."""
        return sum(s.abandon() for s in self.every())
