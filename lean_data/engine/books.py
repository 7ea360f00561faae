"""Order books in the engine: their own bounded queue, one keeper per book, book callbacks.

Feeds emit :class:`~lean_data.book.OrderBookSnapshot` and
:class:`~lean_data.book.OrderBookDelta` like any item (``await self.emit(record)``); the
engine routes them here, not into the inbox of bars, so depth never makes bars wait: a
flood of deltas fills this lane's queue (``Config.inbox_size``, the same bound) and slows
only the feed's depth. One task takes them in order and keeps one
:class:`~lean_data.depth.BookKeeper` per (feed, symbol), with the rules the feed declares
(``DataFeed.book_sequencer``: Binance ids, Bybit ``u``, Kraken checksums).

Book callbacks (``engine.add_book_callback``) get ``(symbol, book, level)``: the live
:class:`~lean_data.depth.OrderBook` after each applied message, and the verdict's level.
A gap, a checksum failure or an impossible book (crossed, a negative size) is INVALID:
the callbacks are told at once with ``book.valid`` False and ``book.invalid_reason``
saying why, the errors table gets a row (kind ``book_gap``, ``book_checksum``, ...), the
keeper buffers later deltas, and the engine asks the feed to re-synchronise
(``DataFeed.resync_book``: a new snapshot, the socket stays up); the snapshot and the
buffered deltas make the book valid again and the callbacks see it. Async book callbacks
run from their own queue, conflated by default (the latest book of each symbol: a slow
strategy skips intermediate states, counted as ``dropped``, never falls behind).

Snapshots to storage (``Config.book_snapshot_interval_s``, ``book_snapshot_depth``): the
first message of a book whose event time reaches the next multiple of the interval (and
its first message) stores the top levels of the book as it is after that message, with the
message's receive time, through the store's queue without waiting
(``save_book_snapshot_nowait``). Event times, not the clock: a replay stores the same
snapshots as the live run did, no clock is read per message, and a quiet book (no
messages) has nothing new to store. A book that is invalid at such a point is not stored
(``snapshots_skipped``); a full storage queue drops the snapshot (``snapshots_dropped``:
depth never waits for storage; the next interval stores a newer one). The hot path costs
one dict lookup and one comparison per message.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from lean_data.book import OrderBookDelta, OrderBookSnapshot
from lean_data.config import OverflowPolicy
from lean_data.engine.metrics import DataMetrics
from lean_data.engine.steps import STOP
from lean_data.engine.subscribers import Subscriber
from lean_data.engine.tasks import Spawn
from lean_data.errors import ConfigError, EngineStateError, StorageError
from lean_data.feeds.base import DataFeed
from lean_data.inbox import Inbox
from lean_data.quality.levels import DataQualityLevel

if TYPE_CHECKING:  # the books' modules load with the first engine, not with import lean_data
    from lean_data.depth import BookKeeper, OrderBook
    from lean_data.storage.base import Storage

__all__ = ["BOOK_TYPES", "BookCallback", "BookLane"]

log = logging.getLogger("lean_data.engine")

BOOK_TYPES = frozenset({OrderBookSnapshot, OrderBookDelta})
BookCallback = Callable[[str, "OrderBook", DataQualityLevel], Any]
_TURN = 64  # messages taken in a row before the loop may run others
_NEVER = 2**63  # beyond every int64 event time: no snapshot is ever due


class BookLane:
    """The engine's order books (see the module docstring).

    Args:
        size: the bound of the lane's queue.
        feed_of: the registered feed of a name (None when it is gone).
        record: the errors table's ``record(kind, message, feed=..., symbol=...)``.
        metrics: the engine's counters (errors by kind).
        failed: records a sync callback's error (name, symbol, exception).
        snapshot_interval_s: store a snapshot of each valid book this often, by event time
            (0 or None: never).
        snapshot_depth: the most levels of each side a stored snapshot keeps.
        storage: the engine's store, once open (None: no snapshots are stored).
    """

    def __init__(
        self,
        size: int,
        feed_of: Callable[[str], DataFeed | None],
        record: Callable[..., None],
        metrics: DataMetrics,
        failed: Callable[[str, str, BaseException], None],
        *,
        snapshot_interval_s: float | None = None,
        snapshot_depth: int = 20,
        storage: Callable[[], Storage | None] = lambda: None,
    ) -> None:
        from lean_data.depth.sequencers import Action

        self._apply = Action.APPLY
        self.queue: Inbox[str] = Inbox(size)
        self.keepers: dict[tuple[str, str], BookKeeper] = {}
        self.sync: list[BookCallback] = []
        self.subscribers: list[Subscriber] = []
        self._feed_of = feed_of
        self._record = record
        self._metrics = metrics
        self._failed = failed
        self._spawn: Spawn | None = None
        self._resyncing: set[tuple[str, str]] = set()
        self.task: asyncio.Task[Any] | None = None
        self.counts = dict.fromkeys(
            ("messages", "applied", "invalid", "resyncs", "resync_failed", "feed_down", "snapshots",
             "snapshots_skipped", "snapshots_dropped"), 0
        )  # fmt: skip
        self._interval_ns = round((snapshot_interval_s or 0) * 1e9)
        self._depth = snapshot_depth
        self._storage = storage
        self._due: dict[tuple[str, str], int] = {}  # next snapshot's event time, per book
        self._first_due = 0 if self._interval_ns > 0 else _NEVER

    # ------------------------------------------------------------------ registration
    def add_callback(
        self,
        callback: BookCallback,
        policy: OverflowPolicy,
        size: int,
        name: str,
        on_error: Callable[[Subscriber, str, BaseException], None],
    ) -> Subscriber | None:
        """Register a book callback (inline when sync, from its own queue when async).

        Raises:
            ConfigError: BLOCK (a book callback must never make the feed wait).
        """
        if not inspect.iscoroutinefunction(callback):
            self.sync = [*self.sync, callback]  # never in place: see Callbacks
            return None
        if policy is OverflowPolicy.BLOCK:
            raise ConfigError(
                "add_book_callback: policy 'block' would make depth wait for a callback; "
                "use 'conflate' (the latest book per symbol) or 'drop_oldest'"
            )
        subscriber = Subscriber(cast(Any, callback), policy, size, on_error, name)
        self.subscribers = [*self.subscribers, subscriber]
        if self._spawn is not None:
            subscriber.task = self._spawn(f"book-subscriber:{subscriber.name}", subscriber.run)
        return subscriber

    def remove(self, callback: Callable[..., Any]) -> bool:
        """Stop calling ``callback``; an async one finishes what it has queued first."""
        if callback in self.sync:
            self.sync = [c for c in self.sync if c != callback]
            return True
        for subscriber in self.subscribers:
            if subscriber.callback == callback:
                self.subscribers = [s for s in self.subscribers if s is not subscriber]
                subscriber.close()
                return True
        return False

    # ------------------------------------------------------------------ lifecycle
    def start(self, spawn: Spawn) -> None:
        """Run the lane's task and its subscribers' workers as engine tasks."""
        self._spawn = spawn
        self.task = spawn("books", self.run)
        for subscriber in self.subscribers:
            subscriber.task = spawn(f"book-subscriber:{subscriber.name}", subscriber.run)

    async def drain(self) -> None:
        """Take everything queued, then end the task and let subscribers finish (stop)."""
        task = self.task
        if task is not None and not task.done():
            await self.queue.put("", STOP)
            await asyncio.shield(task)
        for subscriber in self.subscribers:
            subscriber.close()
        await asyncio.gather(*(s.task for s in self.subscribers if s.task is not None))

    async def join(self) -> None:
        """Return once every message queued so far was taken, and subscribers are idle."""
        await self.queue.join()
        await asyncio.gather(*(s.join() for s in self.subscribers))

    def book(self, symbol: str, feed: str | None = None) -> OrderBook | None:
        """The book of ``symbol`` (of ``feed``; else the first feed keeping one)."""
        for (name, sym), keeper in self.keepers.items():
            if sym == symbol and (feed is None or feed == name):
                return keeper.book
        return None

    def statistics(self) -> dict[str, Any]:
        """Lane counters, queue depth and each book's keeper counters."""
        return {
            **self.counts,
            "queue_depth": len(self.queue),
            "subscriber_drops": sum(s.dropped for s in self.subscribers),
            "books": {
                f"{feed}:{symbol}": {
                    "valid": keeper.book.valid,
                    "buffered": keeper.buffered,
                    **vars_of(keeper),
                }
                for (feed, symbol), keeper in self.keepers.items()
            },
        }

    def feed_down(
        self, feed: str, symbols: Sequence[str], reason: str, *, everything: bool
    ) -> None:
        """Mark ``feed``'s books of ``symbols`` (all of its books when ``everything``: its
        connection is down) invalid, and tell the callbacks: a book that stops updating
        must not look current. The feed's snapshot after it recovers makes each valid."""
        wanted = set(symbols)
        for (name, symbol), keeper in self.keepers.items():
            book = keeper.book
            if name != feed or not book.valid or not (everything or symbol in wanted):
                continue
            book.invalidate(f"feed_down: {reason}")
            self.counts["feed_down"] += 1
            self._tell(symbol, book, DataQualityLevel.INVALID)

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        queue, take = self.queue, self.queue.take
        while True:
            await queue.wait()
            turn = 0
            while (pair := take()) is not None:
                if (turn := turn + 1) % _TURN == 0:
                    await asyncio.sleep(0)
                feed, item = pair
                if item is STOP:
                    queue.done()
                    return
                try:
                    self._take(feed, item)
                except Exception as exc:  # one bad message costs itself only
                    self._record("book_error", f"{type(item).__name__}: {exc!r}", feed=feed)
                    log.warning("book message from %s could not be processed: %r", feed, exc)
                queue.done()

    def _take(self, feed: str, item: OrderBookSnapshot | OrderBookDelta) -> None:
        self.counts["messages"] += 1
        symbol = item.symbol
        key = (feed, symbol)
        keeper = self.keepers.get(key)
        if keeper is None:
            keeper = self.keepers[key] = self._keeper(feed, symbol)
        if isinstance(item, OrderBookSnapshot):
            decision = keeper.on_snapshot(item)
            self._resyncing.discard((feed, symbol))
        else:
            decision = keeper.on_delta(item)
        if decision.action is self._apply:
            self.counts["applied"] += 1
            self._tell(symbol, keeper.book, decision.verdict.level)
        elif decision.invalidates:
            self.counts["invalid"] += 1
            self._metrics.increment_errors(feed=feed, kind=decision.reason or "book_invalid")
            self._record(decision.reason or "book_invalid", decision.message, feed=feed,
                         symbol=symbol)  # fmt: skip
            self._tell(symbol, keeper.book, DataQualityLevel.INVALID)
            self._resync(feed, symbol)
        if item.ts_event >= self._due.get(key, self._first_due):
            self._snapshot(key, keeper.book, item)

    def _snapshot(
        self, key: tuple[str, str], book: OrderBook, item: OrderBookSnapshot | OrderBookDelta
    ) -> None:
        """Store the top of ``book`` (a snapshot is due), unless it is invalid."""
        interval = self._interval_ns
        self._due[key] = (item.ts_event // interval + 1) * interval
        if not book.valid:
            self.counts["snapshots_skipped"] += 1
            return
        store = self._storage()
        if store is None:  # no storage: stop looking at this book
            self._due[key] = _NEVER
            return
        depth = self._depth
        snapshot = OrderBookSnapshot(book.symbol, tuple(book.bids(depth)),
                                     tuple(book.asks(depth)), book.sequence, book.ts_event,
                                     item.ts_recv)  # fmt: skip
        try:
            stored = store.save_book_snapshot_nowait(snapshot, feed=key[0])
        except (StorageError, EngineStateError):  # storage died or closed: counted, not raised
            stored = False
        self.counts["snapshots" if stored else "snapshots_dropped"] += 1

    def _keeper(self, feed: str, symbol: str) -> BookKeeper:
        from lean_data.depth import BookKeeper, OrderBook, Sequencer

        source = self._feed_of(feed)
        if source is None:
            return BookKeeper(OrderBook(symbol), Sequencer())
        sequencer = source.book_sequencer(symbol)
        return BookKeeper(OrderBook(symbol, max_depth=sequencer.max_depth), sequencer)

    def _tell(self, symbol: str, book: OrderBook, level: DataQualityLevel) -> None:
        for callback in self.sync:
            try:
                callback(symbol, book, level)
            except Exception as exc:
                self._failed(getattr(callback, "__qualname__", "callback"), symbol, exc)
        for subscriber in self.subscribers:
            subscriber.offer(symbol, cast(Any, book), level)  # never BLOCK: never False

    def _resync(self, feed: str, symbol: str) -> None:
        """Ask ``feed`` for a new snapshot of ``symbol`` (once until one arrives)."""
        key = (feed, symbol)
        if key in self._resyncing or self._spawn is None:
            return
        self._resyncing.add(key)
        self.counts["resyncs"] += 1
        self._spawn(f"book-resync:{feed}:{symbol}", self._ask, feed, symbol)

    async def _ask(self, feed: str, symbol: str) -> None:
        source = self._feed_of(feed)
        try:
            if source is None:
                raise LookupError(f"feed {feed!r} is no longer registered")
            await source.resync_book(symbol)
        except Exception as exc:  # the book stays invalid; the next invalid message retries
            self._resyncing.discard((feed, symbol))
            self.counts["resync_failed"] += 1
            self._record("book_resync_failed", f"{symbol}: {exc!r}", feed=feed, symbol=symbol)


def vars_of(keeper: BookKeeper) -> dict[str, int]:
    """The keeper's counters as a plain dict."""
    stats = keeper.statistics()
    return {name: getattr(stats, name) for name in stats.__dataclass_fields__}
