"""The DataFeed base class: what every source (venue, file, socket) implements.

A feed is the I/O shell around a source. It connects, subscribes, turns the source's
messages into model objects (with pure parsers) and hands each one to the engine with
``await self.emit(item)`` — the one backpressure point: when the engine's inbox is full,
``emit`` waits. Subclasses implement five coroutines; the base provides ``emit``, owned
background tasks, connection status, error reporting and per-feed counters.

Minimal subclass::

    class MyFeed(DataFeed):
        asset_classes = frozenset({AssetClass.CRYPTO})

        async def connect(self) -> bool: ...
        async def disconnect(self) -> None: ...
        async def subscribe(self, symbol: str) -> bool: ...
        async def unsubscribe(self, symbol: str) -> bool: ...
        async def get_historical_data(self, symbol, start_date, end_date, resolution): ...
"""

from __future__ import annotations

import abc
import asyncio
import enum
import logging
import time
from collections.abc import Coroutine, Iterable, Sequence
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from lean_data.errors import EngineStateError, SubscriptionError
from lean_data.feeds.intake import Emitted, FeedIntake
from lean_data.inbox import Door
from lean_data.models import AssetClass, MarketData, Resolution
from lean_data.symbols import classify_symbol

if TYPE_CHECKING:  # the books' modules load with the first book, not with import lean_data
    from lean_data.depth.sequencers import Sequencer

__all__ = ["DataFeed", "Emitted", "FeedSink", "FeedStatus"]

log = logging.getLogger(__name__)


class FeedStatus(enum.Enum):
    """Where a feed is in its life."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


class FeedSink(Protocol):
    """What a feed talks to: the engine (or a test double that collects items)."""

    def offer(self, feed: str, item: Emitted) -> bool:
        """Take one item from ``feed`` without waiting; False when the inbox is full or
        crowded (:meth:`accept` then adds it)."""

    async def accept(self, feed: str, item: Emitted) -> None:
        """Take one item from ``feed``; waits while the inbox is full."""

    def offer_many(self, feed: str, items: Sequence[Emitted]) -> bool:
        """Take ``items`` from ``feed`` as one batch without waiting; all or nothing: False
        when they do not fit or the inbox is crowded (:meth:`accept_many` then adds them)."""

    async def accept_many(self, feed: str, items: Sequence[Emitted]) -> None:
        """Take ``items`` from ``feed`` as one batch; waits while they do not fit."""

    def feed_error(self, feed: str, kind: str, message: str, symbol: str = "") -> None:
        """Count and record a problem the feed survived (malformed frame, drop, ...)."""

    async def barrier(self, feed: str) -> None:
        """Return once every item taken before the call was processed (delivered)."""

    def feed_down(self, feed: str, symbols: Sequence[str], reason: str) -> None:
        """Say that ``symbols`` stopped flowing from ``feed`` (disconnect, stale, fatal)."""


class DataFeed(FeedIntake, abc.ABC):
    """Base class of every data source.

    Args:
        name: unique name of this feed in an engine.
        config: source-specific settings (credentials, URLs); kept as ``self.config``.
        symbols: the symbols this feed serves; ``None`` means any symbol of its
            ``asset_classes``.
        asset_classes: overrides the class attribute of the same name.

    Class attributes:
        asset_classes: which kinds of symbol the feed serves (used for routing).
        live: True when event times are real time (latency is measured from them);
            False for replays of recorded data (latency is measured from receive time).
        sparse: True when the source sends no bar for an interval without trades (Alpaca
            minute bars, exchange candles of quiet pairs): a jump in its bars is only a
            possible gap, confirmed by asking its history. Settable per instance.
    """

    asset_classes: ClassVar[frozenset[AssetClass]] = frozenset(AssetClass)
    live: ClassVar[bool] = True
    sparse: bool = False

    def __init__(
        self,
        name: str,
        config: Any = None,
        *,
        symbols: Iterable[str] | None = None,
        asset_classes: Iterable[AssetClass] | None = None,
    ) -> None:
        abstract = type(self).__abstractmethods__
        if abstract:  # object() checks this; a compiled base's constructor does not
            raise TypeError(
                f"Can't instantiate abstract class {type(self).__name__} with abstract "
                f"methods {', '.join(sorted(abstract))}"
            )
        if not name:
            raise ValueError("a feed needs a non-empty name")
        super().__init__(name)  # name, the engine (attach) and the hand-over counters
        self.config = config
        self._symbols = frozenset(symbols) if symbols is not None else None
        self._asset_classes = (
            frozenset(asset_classes) if asset_classes is not None else type(self).asset_classes
        )
        self.status = FeedStatus.DISCONNECTED
        self._group: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.errors = 0
        self.connected_since_ns = 0
        self.last_error = ""

    # ----------------------------------------------------------------- to implement
    @abc.abstractmethod
    async def connect(self) -> bool:
        """Open the connection; return True when the feed is ready to subscribe."""

    @abc.abstractmethod
    async def disconnect(self) -> None:
        """Close the connection. Must be safe to call more than once."""

    @abc.abstractmethod
    async def subscribe(self, symbol: str) -> bool:
        """Start delivering ``symbol``; return False when the source refuses it."""

    @abc.abstractmethod
    async def unsubscribe(self, symbol: str) -> bool:
        """Stop delivering ``symbol``; return False when it was not subscribed."""

    @abc.abstractmethod
    async def get_historical_data(
        self,
        symbol: str,
        start_date: datetime | int,
        end_date: datetime | int,
        resolution: Resolution,
    ) -> list[MarketData]:
        """Return stored bars (or ticks) of ``symbol`` with open time in [start, end)."""

    # ----------------------------------------------------------------- provided
    async def open(self) -> bool:
        """Connect and keep :attr:`status` accurate (the engine calls this, not connect).

        Network feeds (:class:`~lean_data.feeds.streaming.StreamingFeed`) override it and
        manage their status themselves across reconnects.

        Raises:
            LeanDataError: whatever :meth:`connect` raised; the status is then FAILED.
        """
        self.status = FeedStatus.CONNECTING
        try:
            ok = await self.connect()
        except BaseException:
            self.status = FeedStatus.FAILED
            raise
        self.status = FeedStatus.CONNECTED if ok else FeedStatus.FAILED
        if ok:
            self.connected_since_ns = time.time_ns()
        return ok

    @property
    def accepts_subscriptions(self) -> bool:
        """True when :meth:`subscribe` may be called now (for a plain feed: connected)."""
        return self.status is FeedStatus.CONNECTED

    @property
    def asset_classes_served(self) -> frozenset[AssetClass]:
        """The asset classes this feed serves (routing and trading calendars)."""
        return self._asset_classes

    def asset_class(self, symbol: str) -> AssetClass | None:
        """Return what ``symbol`` is on this venue, from its metadata; None when unknown.

        Pure (no I/O): venues answer from metadata they already hold (ccxt markets, a
        replayed file's format, an explicit argument). The engine asks this first and falls
        back to :func:`~lean_data.symbols.classify_symbol` on None. The default is the
        feed's one served asset class (a Binance feed: crypto; an Alpaca stocks feed:
        equity), else None.
        """
        classes = self._asset_classes
        return next(iter(classes)) if len(classes) == 1 else None

    def calendar(self, symbol: str) -> Any:
        """Return the trading calendar this feed declares for ``symbol``, or None.

        None (the default) lets the engine pick one from the asset class
        (:func:`~lean_data.series.calendars.calendar_for`). A
        :class:`~lean_data.series.calendars.TradingCalendar` overrides that choice.
        """
        del symbol
        return None

    def supports(self, symbol: str) -> bool:
        """Return True when this feed serves ``symbol`` (by list, else by asset class)."""
        if self._symbols is not None:
            return symbol in self._symbols
        asset_class = classify_symbol(symbol)
        return asset_class is not None and asset_class in self._asset_classes

    def attach(self, sink: FeedSink | None) -> None:
        """Connect this feed to the engine that receives its items (engine use)."""
        if sink is not None and self._sink is not None and self._sink is not sink:
            raise EngineStateError(f"feed {self.name!r} already belongs to another engine")
        self._sink = sink
        # bound once for hand_over (a test double may lack it: emit() never calls it)
        self._offer_many = offer_many = getattr(sink, "offer_many", None)
        # the engine's door (its Intake), whose offer_many that is: hand_over calls it
        # natively
        owner = getattr(offer_many, "__self__", None)
        self._intake = owner if isinstance(owner, Door) else None

    async def subscribe_book(self, symbol: str) -> bool:
        """Start sending ``symbol``'s order book (a snapshot, then deltas; feeds with depth
        override this). Called by ``engine.subscribe_symbol(symbol, data=("book",))``.

        Raises:
            SubscriptionError: this feed serves no order books (the default).
        """
        raise SubscriptionError(f"feed {self.name!r} serves no order books ({symbol})")

    async def resync_book(self, symbol: str) -> None:
        """Send a new snapshot of ``symbol``'s book; the engine asks after a gap or a bad
        checksum (the deltas that follow are buffered meanwhile).

        Raises:
            NotImplementedError: this feed cannot (the default); the book stays invalid
                until the feed sends a snapshot on its own.
        """
        raise NotImplementedError(f"feed {self.name!r} cannot re-send a book snapshot")

    def book_sequencer(self, symbol: str) -> Sequencer:
        """The integrity rules of this feed's books (:mod:`lean_data.depth.sequencers`);
        the default applies every message in order and checks no ids."""
        del symbol
        from lean_data.depth.sequencers import Sequencer

        return Sequencer()

    async def delivered(self) -> None:
        """Wait until the engine has processed every item this feed emitted so far.

        Processed: called back, queued for storage and sinks, or held by continuity for a
        backfill. A feed that acknowledges its source (a message bus, a queue) does so
        after this, so a crash before it means the source delivers again (continuity
        drops what was delivered twice) instead of losing what sat in the inbox.

        Raises:
            EngineStateError: the feed is not attached to a running engine.
        """
        sink = self._sink
        if sink is None:
            raise EngineStateError(f"feed {self.name!r} is not attached to a running engine")
        await sink.barrier(self.name)

    def report_error(self, kind: str, message: str, *, symbol: str = "") -> None:
        """Count a problem the feed survived and send it to the engine's errors table."""
        self.errors += 1
        self.last_error = f"{kind}: {message}"
        log.warning("feed %s: %s: %s", self.name, kind, message)
        if self._sink is not None:
            self._sink.feed_error(self.name, kind, message, symbol)

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str = "") -> asyncio.Task[Any]:
        """Run ``coro`` as a task of this feed's task group; :meth:`close` cancels it.

        The group (an :class:`asyncio.TaskGroup`) is entered by the first task the feed
        starts and exited by :meth:`close`. A task that fails is reported through
        :meth:`report_error` (kind ``task_failed``), never lost; it then ends quietly, so
        its siblings and the task that started the feed go on.
        """
        group = self._group
        if group is None:
            group = self._group = _entered(asyncio.TaskGroup())
        task = group.create_task(self._guarded(coro), name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(partial(self._task_ended, coro))
        return task

    def _task_ended(self, coro: Coroutine[Any, Any, Any], task: asyncio.Task[Any]) -> None:
        # A task cancelled before its first step never starts ``coro``: close it quietly
        # (a no-op once it ran) instead of leaving a "never awaited" warning to the GC.
        coro.close()
        self._tasks.discard(task)  # live tasks only, without a rescan per spawn

    async def _guarded(self, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            return await coro
        except Exception as exc:
            task = asyncio.current_task()
            label = task.get_name() if task is not None else self.name
            self.report_error("task_failed", f"{label}: {exc!r}")
            return None

    async def close(self) -> None:
        """Cancel every task this feed owns, wait for them, then disconnect; idempotent.

        Always ends :attr:`FeedStatus.CLOSED`, even when disconnecting fails.
        """
        if self.status is FeedStatus.CLOSED:
            return
        group, self._group = self._group, None
        try:
            if group is not None:
                for task in self._tasks:
                    task.cancel()
                await group.__aexit__(None, None, None)
        finally:
            self._tasks = set()
            try:
                await self.disconnect()
            finally:
                self.status = FeedStatus.CLOSED

    def get_connection_status(self) -> dict[str, Any]:
        """Return a snapshot of the feed's state and counters."""
        return {
            "name": self.name,
            "status": self.status.value,
            "connected": self.status is FeedStatus.CONNECTED,
            "connected_since_ns": self.connected_since_ns,
            "messages": self.messages_emitted,
            "errors": self.errors,
            "last_message_ns": self.last_message_ns,
            "last_error": self.last_error,
            "tasks": len(self._tasks),
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.status.value}>"


def _entered(group: asyncio.TaskGroup) -> asyncio.TaskGroup:
    """Enter ``group`` from synchronous code (``spawn`` is not a coroutine).

    ``TaskGroup.__aenter__`` only records the running task as the group's parent and never
    suspends, so one step of it completes it. The parent is never cancelled by the group:
    :meth:`DataFeed._guarded` keeps task failures out of it.
    """
    step = group.__aenter__()
    try:
        step.send(None)
    except StopIteration:
        return group
    step.close()
    raise RuntimeError("asyncio.TaskGroup.__aenter__ suspended; cannot enter it synchronously")
