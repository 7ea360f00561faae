"""Async subscribers: each async callback runs from its own bounded queue.

The engine's pipeline offers every item to every subscriber without waiting (except under
the BLOCK policy when the queue is full). A worker task per subscriber awaits the
callback, so a slow callback delays only itself. What happens when its queue is full is
the subscriber's declared :class:`~lean_data.config.OverflowPolicy`; every discarded
item is counted in ``dropped``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any

from lean_data.config import OverflowPolicy
from lean_data.engine.tasks import Spawn
from lean_data.models import MarketData
from lean_data.quality.levels import DataQualityLevel

__all__ = ["AsyncCallback", "Callbacks", "Subscriber", "SyncCallback"]

log = logging.getLogger(__name__)

AsyncCallback = Callable[[str, MarketData, DataQualityLevel], Awaitable[Any]]
SyncCallback = Callable[[str, MarketData, DataQualityLevel], Any]
ErrorHook = Callable[["Subscriber", str, BaseException], None]
_Entry = tuple[str, MarketData, DataQualityLevel]


class Subscriber:
    """One async callback with its bounded queue, overflow policy and worker task.

    Args:
        callback: ``async def cb(symbol, data, quality)``.
        policy: what to do when the queue is full.
        maxsize: queue capacity (for CONFLATE: the number of symbols held).
        on_error: called when the callback raises (the engine counts and logs it).
        name: shown in metrics.
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
        """Queue one item without waiting; False only under BLOCK with a full queue."""
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
        }


class Callbacks:
    """Who the pipeline calls back: sync callbacks inline, async ones through subscribers.

    The pipeline reads the three lists per item; only this class changes them.

    Args:
        on_error: called with (callback name, symbol, exception) when a subscriber's
            callback raises.
    """

    __slots__ = (
        "_on_error", "_spawn", "others", "partial", "records_async", "records_sync",
        "subscribers", "sync",
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

    def every(self) -> list[Subscriber]:
        """Every subscriber: market data ones, then those of records only."""
        return [*self.subscribers, *self.others]

    def add_records(
        self, callback: SyncCallback, kinds: set[type[Any]], subscriber: Subscriber | None
    ) -> None:
        """Also hand records of ``kinds`` to ``callback`` (through ``subscriber`` when it
        is async; one made for records only is kept in ``others`` and started here)."""
        for kind in kinds:
            if subscriber is None:
                self.records_sync.setdefault(kind, []).append(callback)
            else:
                self.records_async.setdefault(kind, []).append(subscriber)
        if subscriber is not None and subscriber not in self.every():
            self.others.append(subscriber)
            if self._spawn is not None:
                self._run(subscriber)

    def subscriber(
        self, callback: AsyncCallback, policy: OverflowPolicy, size: int, name: str, floor: float
    ) -> Subscriber:
        """A subscriber for ``callback`` not yet listed anywhere (records only)."""
        return Subscriber(callback, policy, size, self._failed, name, floor=floor)

    def add_sync(self, callback: SyncCallback, floor: float, late: bool, partial: bool) -> None:
        """Call ``callback`` inline for items scoring at least ``floor``."""
        self.sync.append((callback, floor, late))
        if partial:
            self.partial.append(callback)

    def add_async(
        self,
        callback: AsyncCallback,
        policy: OverflowPolicy,
        size: int,
        name: str,
        *,
        partial: bool,
        floor: float,
        late: bool,
    ) -> Subscriber:
        """Add a subscriber that runs ``callback`` from its own bounded queue."""
        subscriber = Subscriber(
            callback, policy, size, self._failed, name, partial=partial, floor=floor, late=late
        )
        self.subscribers.append(subscriber)
        if self._spawn is not None:
            self._run(subscriber)
        return subscriber

    def start(self, spawn: Spawn) -> None:
        """Run each subscriber's worker as an engine task, now and for those added later."""
        self._spawn = spawn
        for subscriber in self.every():
            self._run(subscriber)

    def _run(self, subscriber: Subscriber) -> None:
        assert self._spawn is not None
        subscriber.task = self._spawn(f"subscriber:{subscriber.name}", subscriber.run)

    def _failed(self, subscriber: Subscriber, symbol: str, exc: BaseException) -> None:
        self._on_error(subscriber.name, symbol, exc)

    failed = _failed  # the error hook of subscribers made elsewhere (book callbacks)

    def remove(self, callback: Callable[..., Any]) -> bool:
        """Stop calling ``callback``; an async one finishes what it has queued first."""
        for entry in self.sync:
            if entry[0] != callback:
                continue
            self.sync.remove(entry)
            if callback in self.partial:
                self.partial.remove(callback)
            return True
        found = False
        for called in self.records_sync.values():
            if callback in called:
                called.remove(callback)
                found = True
        for subscribers in self.records_async.values():
            for subscriber in [s for s in subscribers if s.callback == callback]:
                subscribers.remove(subscriber)
        for queued in (self.subscribers, self.others):
            for subscriber in queued:
                if subscriber.callback == callback:
                    queued.remove(subscriber)
                    subscriber.close()
                    return True
        return found

    async def close(self) -> None:
        """Let every subscriber finish its queue, then end (at stop)."""
        for subscriber in self.every():
            subscriber.close()
        await asyncio.gather(*(s.task for s in self.every() if s.task is not None))

    def abandon(self) -> int:
        """Discard what subscribers still queue (stop timeout); return how many were lost."""
        return sum(s.abandon() for s in self.every())
