"""One async subscriber: an async callback with its bounded queue, policy and worker task.

The engine's pipeline offers every item to every subscriber without waiting (except under
the BLOCK policy when the queue is full). A worker task per subscriber awaits the
callback, so a slow callback delays only itself. What happens when its queue is full is
the subscriber's declared :class:`~lean_data.config.OverflowPolicy`; every discarded
item is counted in ``dropped``.

An idle subscriber (its worker waiting, nothing queued, nothing in flight) has the item's
callback started by the offer itself, up to the callback's first suspension: a callback
that returns without waiting costs no task switch, and one that waits is handed to the
worker, which finishes it before anything queued after it. Either way each item is called
back once, in order, and an error is counted the same way (:meth:`Subscriber._done`).

A *pulled* subscriber has no worker task: its consumer takes items with
:meth:`Subscriber.pull` (what ``DataEngine.stream()`` iterates over). The registry of
every callback, sync and async, is :class:`lean_data.engine.subscribers.Callbacks`.
"""

from __future__ import annotations

import asyncio
import inspect
import types
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from lean_data.config import OverflowPolicy
from lean_data.models import MarketData
from lean_data.quality.levels import DataQualityLevel

__all__ = ["AsyncCallback", "ErrorHook", "Listeners", "Subscriber", "Types"]

AsyncCallback = Callable[[str, MarketData, DataQualityLevel], Awaitable[Any]]
ErrorHook = Callable[["Subscriber", str, BaseException], None]
_Entry = tuple[str, MarketData, DataQualityLevel]
Types = frozenset[type[Any]]

_COROUTINE: type[Any] = types.CoroutineType
_RETURNED = object()  # what next() gives for a callback that returned


class Listeners:
    """The lists of who is called back with market data, read by the fan-out per item.

    :class:`lean_data.engine.subscribers.Callbacks` owns them (its ``sync``, ``partial``
    and ``subscribers`` are these attributes) and replaces a list on every change, never
    edits one in place. They live in this compiled class so that the fan-out's per-item
    reads are native attribute reads; on the pure class Callbacks each was a generic lookup.

    Attributes:
        sync: (callback, score floor, takes late bars) of each sync callback.
        partial: the sync callbacks that see in-progress bars.
        subscribers: the async subscribers of market data.
    """

    def __init__(self) -> None:
        self.sync: list[tuple[Callable[[str, MarketData, DataQualityLevel], Any], float, bool]]
        self.sync = []
        self.partial: list[Callable[[str, MarketData, DataQualityLevel], Any]] = []
        self.subscribers: list[Subscriber] = []


def _stopping(exc: BaseException) -> bool:
    """Whether ``exc`` is the worker task being cancelled (the engine stopping), not a
    CancelledError the callback raised on its own (counted as its error)."""
    task = asyncio.current_task()
    return isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling() > 0


class _Started:
    """A callback's awaitable that :meth:`Subscriber.offer` started and its worker ends.

    For a coroutine that suspended, ``first`` is what it yielded (the future it waits
    for): awaiting this object hands that to the worker's task, then relays what the task
    sends or throws into the coroutine, as if the task had run it from the start.
    """

    __slots__ = ("awaitable", "first", "symbol")

    def __init__(self, symbol: str, awaitable: Awaitable[Any], first: Any) -> None:
        self.symbol = symbol
        self.awaitable = awaitable
        self.first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self.awaitable
        if not inspect.iscoroutine(coro):
            return (yield from coro.__await__())
        value = self.first
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # relayed, cancellation included
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


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
        self._parked = False  # the worker waits for items: the next one may start now
        self._started: _Started | None = None  # a callback started by offer(), suspended
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
        if self._parked and not (
            self.in_flight or self._closing or self._queue or self._latest  # in flight: started
        ):
            self._start(symbol, item, level)  # idle: nothing queued, nothing in flight
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

    def _start(self, symbol: str, item: MarketData, level: DataQualityLevel) -> None:
        """Run the callback now, up to its first suspension; the worker finishes the rest.

        A callback that returns without waiting costs no task switch (the worker is not
        woken); one that waits is handed to the worker, which finishes it before anything
        queued after it, so the order is the queue's.
        """
        self.in_flight = 1
        try:
            awaitable = self.callback(symbol, item, level)
            if type(awaitable) is not _COROUTINE and not inspect.iscoroutine(awaitable):
                self._hand_over(_Started(symbol, awaitable, None))  # the worker awaits it
                return
            # next() with a default: a coroutine that returns raises no StopIteration
            step = next(awaitable.__await__(), _RETURNED)
        except (Exception, asyncio.CancelledError) as exc:  # the pipeline must go on
            self._done(symbol, exc)
            return
        if step is _RETURNED:  # _done(symbol, None), inlined: the common case
            self.in_flight = 0
            self.delivered += 1
        else:  # suspended: ``step`` is what it waits for
            self._hand_over(_Started(symbol, awaitable, step))

    def _hand_over(self, started: _Started) -> None:
        self._started = started
        self._idle.clear()
        self._has_items.set()

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
            started, self._started = self._started, None
            if started is not None:  # started by offer(): finished first, in order
                await self._finish(started.symbol, started)
            while pending:
                symbol, item, level = pop()
                self.in_flight = 1
                await self._finish(symbol, callback(symbol, item, level))
            self._has_items.clear()
            self._has_room.set()
            self._idle.set()
            if self._closing:
                return
            self._parked = True
            try:
                await self._has_items.wait()
            except asyncio.CancelledError:  # stopped before it took what offer() started
                self._close_started()
                raise
            finally:
                self._parked = False

    def _close_started(self) -> None:
        """Close a callback offer() started that the worker will not take: its cleanup
        (``finally``) runs now, not whenever the coroutine is collected."""
        started, self._started = self._started, None
        if started is not None and inspect.iscoroutine(started.awaitable):
            started.awaitable.close()

    async def _finish(self, symbol: str, call: Awaitable[Any]) -> None:
        """Await one call of the callback; count it delivered, and failed if it raised."""
        try:
            await call
        except (Exception, asyncio.CancelledError) as exc:
            if _stopping(exc):
                raise
            self._done(symbol, exc)
        else:
            self._done(symbol, None)

    def _done(self, symbol: str, exc: BaseException | None) -> None:
        """One call of the callback ended (``exc``: what it raised): the one place that
        counts deliveries and errors, on either path."""
        if exc is not None:
            self.errors += 1
            self._on_error(self, symbol, exc)
        self.in_flight = 0
        self.delivered += 1

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
