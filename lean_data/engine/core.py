"""The DataEngine: one path from feed to callback to storage.

::

    feed.emit(item) ──► inbox (bounded) ──► pipeline task
        screen (INVALID?) → continuity (bars) → score → ring buffer → sync callbacks
        → async subscriber queues
        → storage writer (batched) ; metrics and quality on the way

Every task is owned by the engine (feeds own theirs); every queue is bounded; a stop
delivers and stores everything ``emit()`` accepted. See docs/architecture.md.

Failover (``_engine_failover.py``) and series work (continuity answers, warm-up, restart,
trade-built and derived bars; ``_engine_series.py``) are mixins kept in their own modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from lean_data.config import Config, OverflowPolicy
from lean_data.engine._failover_mixin import FailoverMixin
from lean_data.engine._series_mixin import WAKE, Later, Resume, SeriesMixin
from lean_data.engine.failover import FailoverState
from lean_data.engine.metrics import DataMetrics
from lean_data.engine.state import EngineState
from lean_data.engine.subscribers import AsyncCallback, Subscriber
from lean_data.errors import (
    ConfigError,
    EngineClosedError,
    EngineStateError,
    LeanDataError,
    StorageFailedError,
    SubscriptionError,
)
from lean_data.feeds.base import DataFeed
from lean_data.inbox import Inbox
from lean_data.models import (
    MarketData,
    Resolution,
    Tick,
    TickType,
    TradeBar,
    datetime_to_ns,
)
from lean_data.quality.levels import DataQualityLevel, Verdict
from lean_data.quality.screen import bad_text
from lean_data.quality.validator import DataValidator, QualityTracker
from lean_data.series.buffer import DataBuffer
from lean_data.series.continuity import Action, Continuity, Request
from lean_data.storage.cache import DataCache
from lean_data.storage.sqlite import DataPersistence, StorageFailure

__all__ = ["DataEngine", "EngineState"]

log = logging.getLogger(__name__)

SyncCallback = Callable[[str, MarketData, DataQualityLevel], Any]
_STOP = object()


# Enum members read through their class cost a descriptor call on CPython 3.11: the hot path
# uses these module constants instead.
_RUNNING = EngineState.RUNNING
_INVALID = DataQualityLevel.INVALID
_TRADE = TickType.TRADE
_POOR = DataQualityLevel.POOR

OUTCOMES = (
    "delivered",
    "backfilled",
    "late",
    "invalid",
    "duplicate",
    "partial",
    "standby",
    "error",
)
"""What became of each item the pipeline took (``get_metrics()["engine"]["outcomes"]``).

``delivered``: live items, buffered, called back, stored; ``backfilled``: history bars that
filled a gap or a warm-up; ``late``: bars older than their series' head, never delivered
before, called back flagged and stored; ``invalid``: judged INVALID, called back (callbacks
with no ``min_quality``), stored only with ``store_invalid``; ``duplicate``: a repeat of a
bar already delivered; ``partial``: in-progress bars (callbacks that asked for them);
``standby``: bars of a failover's standby feed while the primary delivers; ``error``: an
item the pipeline could not process (in the errors table as ``pipeline_error``).
"""


def _flag_late(verdict: Verdict, item: MarketData) -> Verdict:
    """Add reason ``late`` to a bar's verdict; its level is POOR at best."""
    level = verdict.level if verdict.level.value < _POOR.value else _POOR
    message = f"late: open time {item.ts_event} is behind its series' newest bar"
    if verdict.message:
        message = f"{verdict.message}; {message}"
    return Verdict(level, (*verdict.reasons, "late"), message)


class DataEngine(FailoverMixin, SeriesMixin):
    """Coordinates feeds, the validation pipeline, callbacks, cache and storage.

    Use it as an async context manager (or call :meth:`start` / :meth:`stop`)::

        async with DataEngine(Config(db_path="data.db")) as engine:
            engine.add_feed(feed)
            engine.add_data_callback(on_data)
            await engine.subscribe_symbol("AAPL")

    Args:
        config: settings; defaults are usable as they are.
        validator: a custom validator (default: ``DataValidator(config.validation)``).
    """

    def __init__(self, config: Config | None = None, *, validator: DataValidator | None = None):
        self.config = config or Config()
        self.validator = validator or DataValidator(self.config.validation)
        self.quality = QualityTracker()
        self.metrics = DataMetrics()
        self.cache = DataCache(
            self.config.cache_max_entries,
            self.config.cache_dir,
            max_bytes=self.config.cache_max_bytes,
            disk_max_bytes=self.config.cache_disk_max_bytes,
            ttl_s=self.config.cache_ttl_s,
        )
        self.persistence: DataPersistence | None = None
        self.state = EngineState.NEW
        self._feeds: dict[str, DataFeed] = {}
        self._buffers: dict[str, DataBuffer[MarketData]] = {}
        self._sync_callbacks: list[tuple[SyncCallback, float, bool]] = []  # cb, floor, late
        self._subscribers: list[Subscriber] = []
        self._refcounts: dict[tuple[str, str], int] = {}
        self._inbox: Inbox[str] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pipeline_task: asyncio.Task[None] | None = None
        self._connects: dict[str, asyncio.Task[bool]] = {}
        self.failover = FailoverState()
        self.continuity = Continuity(
            self._calendar_of,
            self._sparse,
            seed_from_storage=self.config.db_path is not None and self.config.resume_from_storage,
            live=self._live,
            max_backfill_bars=self.config.backfill_max_bars,
        )
        self._resolving: dict[tuple[str, Resolution], tuple[asyncio.Task[None], Request]] = {}
        self._answers: deque[Resume] = deque()  # one at most per parked series
        self._partial_callbacks: list[SyncCallback] = []
        self._calendars: dict[str, Any] = {}
        self._aggregators: dict[str, Any] = {}  # symbol -> TimeBarAggregator (trades to bars)
        self._derivers: dict[tuple[str, Resolution], Any] = {}  # -> BarResampler
        self._clock_task: asyncio.Task[None] | None = None
        self._metrics_wakeup: asyncio.Event | None = None
        self._accepted = 0
        self._processed = 0
        self._invalid = 0
        self._built = 0  # bars built from trades or derived: processed, never accepted
        self._outcomes = dict.fromkeys(OUTCOMES, 0)
        self._callback_errors = 0
        self._pending_errors: deque[tuple[str, str, str, str, int]] = deque(maxlen=10_000)
        self._storage_hooks: list[Callable[[StorageFailure], Any]] = []

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> DataEngine:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.stop()
            return
        try:  # the body's own exception is the one the caller must see
            await self.stop()
        except StorageFailedError as failed:
            log.error("while leaving after %r: %s", exc, failed)

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop`."""
        return self.state is EngineState.RUNNING

    async def start(self) -> None:
        """Open storage, start the pipeline, connect feeds and apply subscriptions.

        Idempotent while running. A feed that cannot connect or refuses a subscription made
        before start does not stop the engine: the failure is logged and recorded
        (``feed_connect`` / ``subscribe_failed``) and its symbols fail over to another feed
        that serves them, when there is one.

        Raises:
            EngineClosedError: the engine was stopped before; create a new one.
            StorageError: the database cannot be opened, is not a database, is corrupt or
                cannot be written (the engine stays NEW).
        """
        if self.state is EngineState.RUNNING:
            return
        if self.state is not EngineState.NEW:
            raise EngineClosedError("this DataEngine was stopped; create a new one")
        self._inbox = Inbox(self.config.inbox_size)
        if self.config.db_path is not None:
            await self._open_storage(self.config.db_path)
        self.state = EngineState.RUNNING
        self._pipeline_task = self._own(self._pipeline(), "pipeline")
        for subscriber in self._subscribers:
            subscriber.task = self._own(subscriber.run(), f"subscriber:{subscriber.name}")
        if self.config.metrics_interval_s > 0 and self.persistence is not None:
            self._metrics_wakeup = asyncio.Event()
            self._own(self._metrics_loop(), "metrics")
        if self._aggregators or self._derivers:
            self._clock_task = self._own(self._bar_clock(), "bar-clock")
        await asyncio.gather(*(self._connect(feed) for feed in self._feeds.values()))
        for feed_name, symbol in list(self._refcounts):
            try:
                await self._feed_subscribe(self._feeds[feed_name], symbol)
            except LeanDataError as exc:  # the engine runs on; the symbol fails over if it can
                self._record_error("subscribe_failed", str(exc), feed=feed_name, symbol=symbol)
                self.feed_down(feed_name, [symbol], str(exc))

    async def _open_storage(self, path: str | Path) -> None:
        cfg = self.config
        self.persistence = DataPersistence(
            path,
            batch_rows=cfg.storage_batch_rows,
            batch_ms=cfg.storage_batch_ms,
            queue_size=cfg.storage_queue_size,
            on_failure=self._storage_failed,
        )
        await self.persistence.open()
        if cfg.retention_days > 0:
            await self.persistence.apply_retention(cfg.retention_days)

    def on_storage_failed(self, callback: Callable[[StorageFailure], Any]) -> None:
        """Call ``callback(failure)`` once when storage first loses rows (disk full, ...).

        ``failure`` has ``kind``, ``message`` (the first error) and ``rows_lost`` (so far).
        It is called from the storage writer task: a coroutine it returns runs as an
        engine task. Storage goes on trying; :meth:`stop` raises ``StorageFailedError``.
        """
        self._storage_hooks.append(callback)

    def _storage_failed(self, failure: StorageFailure) -> None:
        for hook in self._storage_hooks:
            try:
                result = hook(failure)
                if inspect.isawaitable(result):
                    self._own(result, "storage_failed_hook")
            except Exception as exc:  # a user's hook must not stop storage
                self._callback_failed("storage_failed_hook", "", exc)

    async def stop(self) -> None:
        """Stop feeds, deliver and store everything accepted, then close; idempotent.

        Waits at most ``config.stop_timeout_s`` for slow subscribers; what they could not
        take by then is counted as dropped and logged.

        Raises:
            StorageFailedError: storage lost rows this run (after closing everything; the
                state is CLOSED). The message says how many and why.
        """
        if self.state is not EngineState.RUNNING:
            if self.state is EngineState.NEW:
                self.state = EngineState.CLOSED
            return
        self.state = EngineState.STOPPING
        await asyncio.gather(*(feed.close() for feed in self._feeds.values()))
        try:
            await asyncio.wait_for(self._drain(), self.config.stop_timeout_s)
        except TimeoutError:
            self._abandon_on_timeout()
        await self._close_tasks()
        self._record_undelivered()
        try:
            if self.persistence is not None:
                await self._close_storage(self.persistence)
        finally:
            self.state = EngineState.CLOSED
        failure = self.persistence.failure if self.persistence is not None else None
        if failure is not None:
            raise StorageFailedError(
                f"storage of {self.config.db_path!s} failed ({failure.kind}): "
                f"{failure.rows_lost} rows were not stored; first error: {failure.message}",
                kind=failure.kind,
                rows_lost=failure.rows_lost,
                path=str(self.config.db_path),
            )

    def _record_undelivered(self) -> None:
        """One errors row per run for items not delivered that have no row of their own."""
        quiet = {k: self._outcomes[k] for k in ("duplicate", "standby") if self._outcomes[k]}
        if quiet:
            counts = ", ".join(f"{kind} {count}" for kind, count in quiet.items())
            self._record_error(
                "undelivered",
                f"not delivered this run: {counts} (duplicate: a repeat of a delivered bar; "
                "standby: a failover standby feed's bar while the primary delivered)",
            )

    async def _close_storage(self, persistence: DataPersistence) -> None:
        """Write the last coverage, errors and metrics, then close; a failure is logged."""
        try:
            await self._record_runs()
            await self._write_pending_errors()
            await persistence.save_metrics(self.get_metrics())
        except Exception as exc:  # stop() must finish: say what was not written, close
            log.error("stop(): the last coverage, errors or metrics were not stored: %r", exc)
        await persistence.close()

    async def _drain(self) -> None:
        assert self._inbox is not None
        pipeline = self._pipeline_task
        if pipeline is not None and not pipeline.done():
            await self._release_parked()
            await self._inbox.put("", _STOP)  # behind producers already waiting for room
            await asyncio.shield(pipeline)
        for subscriber in self._subscribers:
            subscriber.close()
        await asyncio.gather(*(s.task for s in self._subscribers if s.task is not None))

    def _abandon_on_timeout(self) -> None:
        lost = sum(s.abandon() for s in self._subscribers)
        pending = len(self._inbox) if self._inbox is not None else 0
        self.metrics.increment_drops(lost + pending, source="stop_timeout")
        self._record_error(
            "stop_timeout",
            f"stop() waited {self.config.stop_timeout_s}s: {lost} queued callback items and "
            f"{pending} inbox items were not delivered",
        )

    async def _close_tasks(self) -> None:
        if self._metrics_wakeup is not None:
            self._metrics_wakeup.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _own(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        log.error("engine task %s failed: %r", task.get_name(), exc, exc_info=exc)
        self._record_error("task_failed", f"{task.get_name()}: {exc!r}")

    # ------------------------------------------------------------------ feeds
    @property
    def feeds(self) -> dict[str, DataFeed]:
        """The registered feeds by name (a copy)."""
        return dict(self._feeds)

    def add_feed(self, feed: DataFeed) -> None:
        """Register a feed; when the engine runs, it is connected in the background.

        Raises:
            ConfigError: another feed already has this name.
            EngineClosedError: the engine was stopped.
        """
        self._check_open()
        if feed.name in self._feeds:
            raise ConfigError(f"a feed named {feed.name!r} is already registered")
        feed.attach(self)
        self._feeds[feed.name] = feed
        if self.running:
            self._connects[feed.name] = self._own(self._do_connect(feed), f"connect:{feed.name}")

    async def remove_feed(self, name: str) -> None:
        """Close and unregister a feed; its subscriptions are dropped."""
        feed = self._feeds.pop(name, None)
        if feed is None:
            raise ConfigError(f"no feed named {name!r}; feeds: {sorted(self._feeds)}")
        for key in [k for k in self._refcounts if k[0] == name]:
            del self._refcounts[key]
        await feed.close()
        feed.attach(None)

    async def _connect(self, feed: DataFeed) -> bool:
        """Connect ``feed`` once: concurrent callers share the same attempt."""
        if feed.accepts_subscriptions:
            return True
        task = self._connects.get(feed.name)
        if task is None or task.done():
            task = self._own(self._do_connect(feed), f"connect:{feed.name}")
            self._connects[feed.name] = task
        return bool(await asyncio.shield(task))

    async def _do_connect(self, feed: DataFeed) -> bool:
        try:
            return await feed.open()
        except LeanDataError as exc:
            self._record_error("feed_connect", str(exc), feed=feed.name)
            self.feed_down(feed.name, [s for f, s in self._refcounts if f == feed.name], str(exc))
            return False

    # ------------------------------------------------------------------ subscriptions
    def route(self, symbol: str, feed_name: str | None = None) -> DataFeed:
        """Return the feed that serves ``symbol``: the named one, else the first that does.

        Raises:
            ConfigError: ``feed_name`` names no registered feed.
            SubscriptionError: no registered feed serves the symbol.
        """
        if feed_name is not None:
            feed = self._feeds.get(feed_name)
            if feed is None:
                raise ConfigError(f"no feed named {feed_name!r}; feeds: {sorted(self._feeds)}")
            return feed
        for feed in self._feeds.values():
            if feed.supports(symbol):
                return feed
        raise SubscriptionError(
            f"no registered feed serves {symbol!r}; feeds: {sorted(self._feeds)}"
        )

    async def subscribe_symbol(
        self,
        symbol: str,
        feed_name: str | None = None,
        *,
        warmup: int = 0,
        resolution: Resolution | str = Resolution.MINUTE,
        bars_from_trades: Resolution | str | None = None,
        trade_rules: Any = None,
        derived: Iterable[Resolution | str] = (),
    ) -> str:
        """Subscribe to ``symbol`` (ref-counted); return the name of the feed serving it.

        Only the first subscription of a (feed, symbol) reaches the feed. Works before
        start (applied at start) and while running.

        Args:
            symbol: the symbol.
            feed_name: a feed to use instead of routing.
            warmup: deliver this many historical bars of ``resolution`` before the first
                live bar, with no duplicate at the seam and no live bar lost meanwhile (the
                history is fetched when the first live bar arrives, ending at its open time).
            resolution: the bar resolution the warm-up is for.
            bars_from_trades: also build time bars of this resolution from the symbol's
                trade ticks (:class:`~lean_data.series.aggregation.TimeBarAggregator`), closed by
                the next trade or, for a live feed, by the clock; they pass continuity,
                callbacks and storage like a feed's bars.
            trade_rules: which prints set prices and volume (default
                :class:`~lean_data.series.aggregation.TradeRules`).
            derived: coarser resolutions (``"5m"``, ``"1h"``, ``"1d"``) maintained live from
                the symbol's closed ``resolution`` bars (:class:`~lean_data.series.resample.
                BarResampler`): identical to resampling the stored series afterwards;
                equity days are New York days.

        Raises:
            SubscriptionError: no feed serves the symbol, or the feed refused it.
            ValueError: ``warmup`` is negative.
        """
        self._check_open()
        bad = bad_text(symbol)
        if bad is not None or not symbol:
            raise SubscriptionError(f"symbol: {bad or 'an empty string'}; expected a symbol name")
        if warmup < 0:
            raise ValueError(f"warmup: expected >= 0 bars, found {warmup}")
        feed = self.route(symbol, feed_name)
        if warmup:
            self.continuity.hold(symbol, Resolution.parse(resolution), warmup)
        targets = [Resolution.parse(t) for t in derived]
        if targets:
            self._add_derived(symbol, Resolution.parse(resolution), targets, feed)
        if bars_from_trades is not None and symbol not in self._aggregators:
            from lean_data.series.aggregation import TimeBarAggregator

            self._aggregators[symbol] = TimeBarAggregator(
                symbol, bars_from_trades, rules=trade_rules
            )
        if (self._aggregators or self._derivers) and self.running and self._clock_task is None:
            self._clock_task = self._own(self._bar_clock(), "bar-clock")
        key = (feed.name, symbol)
        count = self._refcounts.get(key, 0)
        self._refcounts[key] = count + 1
        self.failover.revive(feed.name, symbol)
        if self.config.continuity and symbol not in self._calendars:
            await self._load_calendar(symbol)
        if count == 0 and self.running:
            try:
                await self._feed_subscribe(feed, symbol)
            except BaseException:
                del self._refcounts[key]
                raise
        return feed.name

    async def _feed_subscribe(self, feed: DataFeed, symbol: str) -> None:
        if not feed.accepts_subscriptions and not await self._connect(feed):
            raise SubscriptionError(f"feed {feed.name!r} is not connected", feed=feed.name)
        if not await feed.subscribe(symbol):
            raise SubscriptionError(f"feed refused {symbol!r}", feed=feed.name)

    async def unsubscribe_symbol(self, symbol: str, feed_name: str | None = None) -> bool:
        """Drop one subscription to ``symbol``; the feed is told when none is left.

        Returns False when there was no such subscription.
        """
        keys = [k for k in self._refcounts if k[1] == symbol]
        if feed_name is not None:
            keys = [k for k in keys if k[0] == feed_name]
        if not keys:
            return False
        key = keys[0]
        self._refcounts[key] -= 1
        if self._refcounts[key] == 0:
            del self._refcounts[key]
            backup = (
                self.failover.release(symbol) if key[0] == self.failover.home_of(symbol) else None
            )
            if self.running:
                await self._feeds[key[0]].unsubscribe(symbol)
                if backup is not None and (backup, symbol) not in self._refcounts:
                    await self._feeds[backup].unsubscribe(symbol)
        return True

    def subscriptions(self) -> dict[tuple[str, str], int]:
        """Return the live subscriptions: (feed, symbol) → reference count."""
        return dict(self._refcounts)

    # ------------------------------------------------------------------ callbacks
    def add_data_callback(
        self,
        callback: SyncCallback | AsyncCallback,
        *,
        policy: OverflowPolicy | str | None = None,
        queue_size: int | None = None,
        name: str = "",
        partial: bool = False,
        min_quality: DataQualityLevel | None = None,
        late: bool = True,
    ) -> Subscriber | None:
        """Register ``callback(symbol, data, quality)`` for every item, with its level.

        Every item a feed hands over reaches the callback with its quality level, INVALID
        included (INVALID items are never buffered and are stored only with
        ``Config.store_invalid``), unless ``min_quality`` filters them: with
        ``min_quality=DataQualityLevel.FAIR`` the callback sees FAIR, GOOD and EXCELLENT
        items only. Late bars (older than their series' newest, never delivered before;
        reason ``late``, level POOR at best) reach it unless ``late=False``.

        A plain function runs inline in the pipeline (keep it fast). A coroutine
        function runs from its own bounded queue with the given overflow policy
        (default ``config.overflow_policy``), so it never stalls the feed or other
        callbacks (except under BLOCK, which is lossless by waiting).

        Bars arrive closed and final (or as numbered revisions). With ``partial=True`` the
        callback also sees in-progress bars (``closed=False``) as they update; those are not
        stored and never make the engine wait.

        Returns:
            the async callback's :class:`Subscriber` (queue depth, drops, ``join()``),
            or None for a sync callback.
        """
        self._check_open()
        floor = -1.0 if min_quality is None else DataQualityLevel(min_quality).value
        if not inspect.iscoroutinefunction(callback):
            self._sync_callbacks.append((callback, floor, late))
            if partial:
                self._partial_callbacks.append(callback)
            return None
        chosen = OverflowPolicy(policy) if policy is not None else self.config.overflow_policy
        subscriber = Subscriber(
            callback,
            chosen,
            queue_size or self.config.subscriber_queue_size,
            self._subscriber_error,
            name,
            partial=partial,
            floor=floor,
            late=late,
        )
        self._subscribers.append(subscriber)
        if self.running:
            subscriber.task = self._own(subscriber.run(), f"subscriber:{subscriber.name}")
        return subscriber

    def remove_data_callback(self, callback: Callable[..., Any]) -> bool:
        """Unregister a callback; an async one finishes what it has queued first."""
        for entry in self._sync_callbacks:
            if entry[0] != callback:
                continue
            self._sync_callbacks.remove(entry)
            if callback in self._partial_callbacks:
                self._partial_callbacks.remove(callback)
            return True
        for subscriber in self._subscribers:
            if subscriber.callback == callback:
                self._subscribers.remove(subscriber)
                subscriber.close()
                return True
        return False

    def _subscriber_error(self, subscriber: Subscriber, symbol: str, exc: BaseException) -> None:
        self._callback_failed(subscriber.name, symbol, exc)

    def _callback_failed(self, name: str, symbol: str, exc: BaseException) -> None:
        self._callback_errors += 1
        self.metrics.increment_errors(kind="callback")
        if self._callback_errors <= 10 or self._callback_errors % 1000 == 0:
            log.warning("callback %s raised on %s: %r", name, symbol, exc)
        self._record_error("callback_error", f"{name}: {exc!r}", symbol=symbol)

    # ------------------------------------------------------------------ the pipeline
    async def accept(self, feed: str, item: MarketData) -> None:
        """Take one item from a feed into the inbox; waits while the inbox is full.

        Raises:
            EngineStateError: the engine is not running.
        """
        if not self.offer(feed, item):
            assert self._inbox is not None
            await self._inbox.put(feed, item)
            self._accepted += 1

    def offer(self, feed: str, item: MarketData) -> bool:
        """Take one item into the inbox without waiting; False when it is full.

        Raises:
            EngineStateError: the engine is not running.
        """
        inbox = self._inbox
        if inbox is None or self.state is not _RUNNING:
            raise EngineStateError(f"the engine is {self.state.value}; it accepts no data")
        if inbox.offer(feed, item):
            self._accepted += 1
            return True
        return False

    def feed_error(self, feed: str, kind: str, message: str, symbol: str = "") -> None:
        """Count and record a problem a feed survived (called by DataFeed.report_error)."""
        self.metrics.increment_errors(feed=feed, kind=kind)
        self._record_error(kind, message, feed=feed, symbol=symbol)

    async def _pipeline(self) -> None:
        inbox = self._inbox
        assert inbox is not None
        answers = self._answers
        take = inbox.take
        while True:
            while answers:  # answered while the last items were processed
                await self._resumed_guarded(answers.popleft())
            await inbox.wait()
            while (pair := take()) is not None:
                while answers:  # answered backfills go first: their bars are older
                    await self._resumed_guarded(answers.popleft())
                feed, item = pair
                if item is _STOP:
                    inbox.done()
                    return
                if item is not WAKE:  # inline, not _guarded(): one coroutine less per item
                    try:
                        later = self._process(feed, item)
                        if later is not None:
                            await self._finish(later)
                    except Exception as exc:  # a bad item must not stop the pipeline
                        self._pipeline_error(feed, item, exc)
                inbox.done()

    async def _guarded(
        self, feed: str, item: object, step: Callable[..., Later | None], *args: Any
    ) -> None:
        """Run one item's step and await what must wait; an exception costs that item only."""
        try:
            later = step(*args)
            if later is not None:
                await self._finish(later)
        except Exception as exc:  # a bad item must not stop the pipeline
            self._pipeline_error(feed, item, exc)

    def _pipeline_error(self, feed: str, item: object, exc: Exception) -> None:
        self._outcomes["error"] += 1
        self.metrics.increment_errors(feed=feed, kind="pipeline_error")
        log.warning("feed %s emitted an item the pipeline could not process: %r", feed, exc)
        symbol = getattr(item, "symbol", "")
        self._record_error(
            "pipeline_error",
            f"{type(item).__name__} from feed {feed!r} could not be processed: {exc!r}",
            feed=feed,
            symbol=symbol if bad_text(symbol) is None else ascii(symbol),
        )

    def _process(self, feed: str, item: MarketData) -> Later | None:
        """Screen one item, route it through continuity to :meth:`_deliver`; never waits.

        The validator's screen comes first: an item with an impossible value (time, revision,
        magnitude, text) is INVALID before continuity, buffers, storage or calendar
        arithmetic see it. Returns the steps that must wait (a full subscriber queue under
        BLOCK, a full storage queue), in order, or None when none must: the caller awaits
        them with :meth:`_finish` before it takes the next item.
        """
        screened = self.validator.screen(item)
        if screened is not None:
            return self._deliver(feed, item, screened)
        if type(item) is TradeBar and type(item.resolution) is Resolution:
            if not item.closed:
                self._outcomes["partial"] += 1
                self._deliver_partial(feed, item)
                return None
            if not item.backfilled and self.config.continuity:
                if self.failover.engaged and not self._admit(feed, item.symbol):
                    self._outcomes["standby"] += 1
                    return None
                decision = self.continuity.admit_fast(feed, item)
                if decision is None:
                    return self._deliver(feed, item)
                action = decision.action
                if action is Action.DELIVER:
                    assert decision.bar is not None
                    return self._deliver(feed, decision.bar)
                if action is Action.LATE:
                    return self._deliver(feed, item, late=True)
                if action is Action.DUPLICATE:
                    self._outcomes["duplicate"] += 1
                    return None
                if decision.request is not None:  # parked: delivered when it is answered
                    self._resolve(decision.request)
                return self._bound_parked(item.symbol, item.resolution, feed)
        if self.failover.engaged and not self._admit(feed, item.symbol):
            self._outcomes["standby"] += 1
            return None
        return self._deliver(feed, item)

    def _deliver(
        self, feed: str, item: MarketData, verdict: Verdict | None = None, late: bool = False
    ) -> Later | None:
        """Judge, score, buffer, call back, store, then derive bars; never waits.

        ``verdict`` is the screen's INVALID verdict when there is one. A ``late`` bar is
        flagged (reason ``late``) and reaches callbacks and storage, not the ring buffer nor
        derived bars (both are in time order). Returns the steps that must wait, like
        :meth:`_process`.
        """
        symbol = item.symbol
        if verdict is None:
            verdict = self.validator.judge(item, feed=feed)
        if late:
            verdict = _flag_late(verdict, item)
        level = verdict.level
        self._processed += 1
        if level is _INVALID:
            self._invalid += 1
            self._outcomes["invalid"] += 1
            self.quality.record(feed, symbol, item, verdict, None)
            self.metrics.increment_errors(feed=feed, kind="invalid_data")
            shown = symbol if bad_text(symbol) is None else ascii(symbol)
            self._record_error("invalid_data", verdict.message, feed=feed, symbol=shown)
            later = self._fan_out(symbol, item, level, late)
            return self._keep(feed, item, verdict, later) if self.config.store_invalid else later
        if late:
            self._outcomes["late"] += 1
        else:
            self._outcomes["backfilled" if getattr(item, "backfilled", False) else "delivered"] += 1
            buffer = self._buffers.get(symbol)
            if buffer is None:
                buffer = self._buffers[symbol] = DataBuffer(self.config.buffer_size)
            buffer.add(item)
        later = self._fan_out(symbol, item, level, late)
        latency = self._latency_ns(feed, item)
        self.quality.record(feed, symbol, item, verdict, latency)
        self.metrics.record_delivery(feed, latency, verdict.score)
        if self.persistence is not None:
            later = self._keep(feed, item, verdict, later)
        if late:
            return later
        if self._aggregators and type(item) is Tick:
            aggregator = self._aggregators.get(symbol)
            if aggregator is not None and item.tick_type is _TRADE:
                for bar in aggregator.update(item):
                    later = self._then(later, feed, bar)
        elif self._derivers and type(item) is TradeBar:
            deriver = self._derivers.get((symbol, item.resolution))
            if deriver is not None:
                for bar in deriver.update(item):
                    later = self._then(later, feed, bar)
        return later

    def _fan_out(
        self, symbol: str, item: MarketData, level: DataQualityLevel, late: bool
    ) -> Later | None:
        """Call the sync callbacks and queue for the async ones whose filters take it."""
        score = level._value_
        for callback, floor, take_late in self._sync_callbacks:
            if score < floor or (late and not take_late):
                continue
            try:
                callback(symbol, item, level)
            except Exception as exc:
                self._callback_failed(getattr(callback, "__qualname__", "callback"), symbol, exc)
        later: Later | None = None
        for subscriber in self._subscribers:
            if score < subscriber.floor or (late and not subscriber.late):
                continue
            if not subscriber.offer(symbol, item, level):  # BLOCK, queue full: wait for room
                later = [] if later is None else later
                later.append((subscriber.put, (symbol, item, level)))
        return later

    def _then(self, later: Later | None, feed: str, bar: MarketData) -> Later | None:
        """Process a bar built from the current item: now, or after what already waits."""
        self._built += 1
        if later is None:
            return self._process(feed, bar)
        later.append((self._process_later, (feed, bar)))
        return later

    async def _process_later(self, feed: str, item: MarketData) -> None:
        later = self._process(feed, item)
        if later is not None:
            await self._finish(later)

    @staticmethod
    async def _finish(later: Later) -> None:
        """Await the waiting steps of one item, in order."""
        for step, args in later:
            await step(*args)

    def _keep(self, feed: str, item: MarketData, verdict: Any, later: Later | None) -> Later | None:
        """Queue ``item`` for storage now, or as a waiting step when the queue is full."""
        persistence = self.persistence
        assert persistence is not None
        if later is None and persistence.save_market_data_nowait(item, feed=feed, quality=verdict):
            return None
        later = [] if later is None else later
        later.append((self._store, (feed, item, verdict)))
        return later

    def _deliver_partial(self, feed: str, item: TradeBar) -> None:
        """An in-progress bar: only callbacks that asked for updates see it; not stored."""
        for callback in self._partial_callbacks:
            try:
                callback(item.symbol, item, DataQualityLevel.GOOD)
            except Exception as exc:
                self._callback_failed(
                    getattr(callback, "__qualname__", "callback"), item.symbol, exc
                )
        for subscriber in self._subscribers:
            if subscriber.partial and not subscriber.offer(
                item.symbol, item, DataQualityLevel.GOOD
            ):
                subscriber.dropped += 1  # an update is superseded by the next one: never wait

    def _latency_ns(self, feed: str, item: MarketData) -> int:
        source = self._feeds.get(feed)
        now = time.time_ns()
        if source is None or not source.live:
            return now - item.ts_recv
        ts = item.ts_event
        if not isinstance(item, TradeBar) or item.closed:
            ts += getattr(item, "resolution", Resolution.TICK).nanos
        return now - ts

    async def _store(self, feed: str, item: MarketData, verdict: Any) -> None:
        persistence = self.persistence
        assert persistence is not None
        if not persistence.save_market_data_nowait(item, feed=feed, quality=verdict):
            await persistence.save_market_data(item, feed=feed, quality=verdict)

    def _record_error(self, kind: str, message: str, *, feed: str = "", symbol: str = "") -> None:
        """Queue a row for the errors table; never waits (errors arrive on hot paths).

        When the storage queue is full the row waits in a bounded overflow list that is
        written at the next metrics save and at stop; beyond that it is counted as dropped.
        """
        persistence = self.persistence
        if persistence is None or self.state is EngineState.CLOSED:
            return
        if self._pending_errors or not persistence.save_error_nowait(
            kind, message, feed=feed, symbol=symbol
        ):
            if len(self._pending_errors) == self._pending_errors.maxlen:
                self.metrics.increment_drops(source="errors_table")
            self._pending_errors.append((kind, message, feed, symbol, time.time_ns()))

    async def _write_pending_errors(self) -> None:
        persistence = self.persistence
        while self._pending_errors and persistence is not None:
            kind, message, feed, symbol, ts = self._pending_errors.popleft()
            await persistence.save_error(kind, message, feed=feed, symbol=symbol, ts_ns=ts)

    async def wait_idle(self) -> None:
        """Return once everything accepted so far reached callbacks and the storage queue.

        Bars held back while a gap is backfilled (or a warm-up fetched) count as accepted:
        this waits for those answers too.
        """
        if self._inbox is not None:
            await self._inbox.join()
            while self._resolving or self._answers:
                await asyncio.gather(*(t for t, _ in list(self._resolving.values())))
                await self._inbox.join()
        await asyncio.gather(*(s.join() for s in self._subscribers))

    # ------------------------------------------------------------------ queries
    def get_latest(self, symbol: str, n: int = 1) -> list[MarketData]:
        """Return up to ``n`` most recent items of ``symbol``, oldest first."""
        buffer = self._buffers.get(symbol)
        return buffer.get_latest(n) if buffer is not None else []

    async def get_historical_data(
        self,
        symbol: str,
        start: datetime | int,
        end: datetime | int,
        resolution: Resolution | str = Resolution.MINUTE,
        feed_name: str | None = None,
    ) -> list[MarketData]:
        """Return bars of ``symbol`` with open time in [start, end), without duplicates.

        The memory and disk cache answer first. With storage, the parts of the range that
        storage covers (bars delivered or fetched before, or known to be empty) are read
        from it and the feed is asked only for the missing parts; what it returns is stored
        and recorded as covered, so the next query asks nothing. Without storage the feed
        answers the whole range. Results are cached.
        """
        res = Resolution.parse(resolution)
        start_ns = start if isinstance(start, int) else datetime_to_ns(start)
        end_ns = end if isinstance(end, int) else datetime_to_ns(end)
        cached = await asyncio.to_thread(self.cache.get, symbol, res, start_ns, end_ns)
        self.metrics.set_gauge("cache_hit_rate", self.cache.hit_rate)
        if cached is not None:
            return cached
        feed = self.route(symbol, feed_name)
        persistence = self.persistence
        if persistence is None or res.is_tick or self.state is not EngineState.RUNNING:
            bars = await feed.get_historical_data(symbol, start_ns, end_ns, res)
        else:
            await self._record_runs()
            for gap_start, gap_end in await persistence.missing_intervals(
                feed.name, symbol, res, start_ns, end_ns
            ):
                fetched = await self._history(feed.name, symbol, gap_start, gap_end, res)
                for bar in fetched:
                    await persistence.save_market_data(bar, feed=feed.name)
                await persistence.record_coverage(
                    feed.name, symbol, res, gap_start, gap_end, empty=not fetched
                )
            bars = list(
                await persistence.get_market_data(
                    symbol, start_ns, end_ns, resolution=res, feed=feed.name
                )
            )
        if bars:
            await asyncio.to_thread(self.cache.put, symbol, res, start_ns, end_ns, bars)
        return bars

    def get_metrics(self) -> dict[str, Any]:
        """Return a snapshot: ``metrics["engine"]``, ``["feeds"]``, ``["subscribers"]``, ..."""
        self._update_gauges()
        snapshot = self.metrics.to_dict()
        engine = snapshot.setdefault("engine", {})
        engine.update(
            state=self.state.value,
            accepted=self._accepted,
            processed=self._processed,
            invalid=self._invalid,
            built=self._built,
            outcomes=dict(self._outcomes),
            callback_errors=self._callback_errors,
            inbox_depth=len(self._inbox) if self._inbox is not None else 0,
            degraded=self.persistence is not None and self.persistence.failure is not None,
        )
        feeds = snapshot.setdefault("feeds", {})
        for name, feed in self._feeds.items():
            feeds.setdefault(name, {})["connection"] = feed.get_connection_status()
        snapshot["subscribers"] = [s.statistics() for s in self._subscribers]
        snapshot["failover"] = self.failover.statistics()
        snapshot["continuity"] = self.continuity.statistics()
        snapshot["cache"] = self.cache.statistics()
        snapshot["buffers"] = {
            sym: {"size": len(buf), "utilization": buf.utilization}
            for sym, buf in self._buffers.items()
        }
        if self.persistence is not None:
            snapshot["storage"] = self.persistence.statistics()
        return snapshot

    def _update_gauges(self) -> None:
        gauge = self.metrics.set_gauge
        gauge("cache_hit_rate", self.cache.hit_rate)
        if self._buffers:
            usage = [b.utilization for b in self._buffers.values()]
            gauge("buffer_utilization_avg", sum(usage) / len(usage))
            gauge("buffer_utilization_max", max(usage))
        gauge("inbox_depth", len(self._inbox) if self._inbox is not None else 0)
        gauge("subscriber_queue_depth", sum(len(s) for s in self._subscribers))
        gauge("subscriber_drops", sum(s.dropped for s in self._subscribers))

    async def get_data_quality_report(self, symbol: str, hours: float = 24) -> dict[str, Any]:
        """Return the quality of ``symbol``: overall, per feed, and what storage holds.

        Top level: ``messages`` (items judged, from every feed), ``average_quality_score``
        (the mean score of their levels, INVALID counting 0; None before the first item) and
        ``levels`` (count per level name). ``feeds`` has the per-feed detail (see
        :meth:`~lean_data.quality.validator.QualityTracker.report`); ``stored`` summarises the rows
        received in the last ``hours`` hours.
        """
        feeds = {
            feed: per_symbol[symbol]
            for feed, per_symbol in self.quality.report(symbol=symbol).items()
            if symbol in per_symbol
        }
        messages = sum(stats["messages"] for stats in feeds.values())
        levels = {
            level.name: sum(stats["levels"][level.name] for stats in feeds.values())
            for level in DataQualityLevel
        }
        scored = sum(stats["average_score"] * stats["messages"] for stats in feeds.values())
        report: dict[str, Any] = {
            "symbol": symbol,
            "hours": hours,
            "messages": messages,
            "average_quality_score": scored / messages if messages else None,
            "levels": levels,
            "feeds": feeds,
        }
        if self.persistence is not None and self.state is not EngineState.CLOSED:
            report["stored"] = await self.persistence.quality_summary(symbol, hours=hours)
        return report

    async def _metrics_loop(self) -> None:
        assert self._metrics_wakeup is not None
        assert self.persistence is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._metrics_wakeup.wait(), self.config.metrics_interval_s)
            if self.state is not EngineState.RUNNING:
                return
            await self._record_runs()
            await self._write_pending_errors()
            await self.persistence.save_metrics(self.get_metrics())

    def _check_open(self) -> None:
        if self.state in (EngineState.STOPPING, EngineState.CLOSED):
            raise EngineClosedError("this DataEngine was stopped; create a new one")

    def symbols(self) -> Iterable[str]:
        """Return the symbols that have delivered data (have a ring buffer)."""
        return list(self._buffers)
