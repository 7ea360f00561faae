"""The DataEngine: lifecycle, feed registry, routing, subscriptions and queries.

Every item goes ``feed.emit`` → inbox (bounded) → the pipeline task (``pipeline.py``). The
engine is composed of components, each given the collaborators it needs: the ``Pipeline``
(the data path), ``Backfill`` (continuity answers, warm-up, restart, built bars, the bar
clock), ``Failover``, ``FeedRegistry``, ``StorageLink``, ``ErrorLog`` and ``EngineTasks``
(the task group every background task lives in). Every queue is bounded; a stop delivers
and stores everything ``emit()`` accepted. See docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from lean_data import gil
from lean_data.analytics.frames import Bars, time_ns
from lean_data.config import Config, OverflowPolicy
from lean_data.engine.backfill import Backfill
from lean_data.engine.books import BOOK_TYPES, BookCallback, BookLane
from lean_data.engine.error_log import ErrorLog
from lean_data.engine.failover import Failover, FailoverState
from lean_data.engine.intake import Intake
from lean_data.engine.metrics import DataMetrics, symbol_quality
from lean_data.engine.pipeline import Pipeline
from lean_data.engine.registry import FeedRegistry
from lean_data.engine.runner import loop_mismatch
from lean_data.engine.sinks import ItemSink, Sinks
from lean_data.engine.state import EngineState
from lean_data.engine.steps import STOP, barrier
from lean_data.engine.storage_link import StorageLink
from lean_data.engine.streams import Stream
from lean_data.engine.subscribers import (
    AsyncCallback,
    Callbacks,
    Subscriber,
    SyncCallback,
    parse_kinds,
    parse_symbols,
)
from lean_data.engine.tasks import EngineTasks
from lean_data.errors import (
    ConfigError,
    EngineClosedError,
    EngineStateError,
    StorageFailedError,
    SubscriptionError,
)
from lean_data.feeds.base import DataFeed, Emitted, FeedStatus
from lean_data.inbox import Inbox
from lean_data.models import MarketData, Resolution, datetime_to_ns
from lean_data.quality.levels import DataQualityLevel
from lean_data.quality.screen import bad_text
from lean_data.quality.validator import DataValidator, QualityTracker
from lean_data.series.buffer import buffer_statistics
from lean_data.storage.cache import DataCache
from lean_data.storage.failures import StorageFailure

if TYPE_CHECKING:  # the gateway is imported when serve() runs; the books with the engine
    from lean_data.depth import OrderBook
    from lean_data.gateway import Gateway
    from lean_data.storage.base import Storage

__all__ = ["DataEngine", "EngineState"]

log = logging.getLogger(__name__)

_RUNNING = EngineState.RUNNING
# The inbox's crowded mark (lean_data.inbox): a feed reading a burst hands over about this
# many items before the pipeline takes a turn, so it processes them while they are still in
# the CPU's caches (~0.4 KB an item: ~100 KB), instead of 10,000 items (several MB) later.
INBOX_SOFT = 256
_C = TypeVar("_C", bound=Callable[..., Any])  # a decorated callback, returned as it is


def _floor(min_quality: DataQualityLevel | None) -> float:
    """The lowest quality score a callback takes (-1: every item, INVALID included)."""
    return -1.0 if min_quality is None else DataQualityLevel(min_quality).value


class DataEngine:
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

    offer: Callable[[str, Emitted], bool]
    """``offer(feed, item)``: take one item from ``feed`` without waiting; False when its
    queue (the inbox, or the books' queue for book records) is full, or the inbox holds
    ``INBOX_SOFT`` items or more (:meth:`accept` then lets the pipeline run first). Raises
    EngineStateError when the engine is not running. A compiled bound method
    (:meth:`lean_data.engine.intake.Intake.offer`): every emitted item passes here."""

    offer_many: Callable[[str, Sequence[Emitted]], bool]
    """``offer_many(feed, items)``: take a feed's items (one socket read's worth) into the
    inbox as one batch without waiting; all or nothing: False when they do not fit, the inbox
    holds ``INBOX_SOFT`` items or more (:meth:`accept_many` then lets the pipeline run
    first), or when book records are among them (:meth:`accept_many` sends those to the
    books' queue one by one). Raises EngineStateError when the engine is not running."""

    def __init__(self, config: Config | None = None, *, validator: DataValidator | None = None):
        self.config = config = config or Config()
        self._gil_shared = False  # holding lean_data.gil's short switch interval (running)
        self.validator = validator or DataValidator(config.validation)
        self.quality = QualityTracker()
        self.metrics = metrics = DataMetrics()
        self.cache = DataCache(
            config.cache_max_entries,
            config.cache_dir,
            max_bytes=config.cache_max_bytes,
            disk_max_bytes=config.cache_disk_max_bytes,
            ttl_s=config.cache_ttl_s,
        )
        self.persistence: Storage | None = None
        self._inbox: Inbox[str] = Inbox(config.inbox_size, INBOX_SOFT)
        self._errors = errors = ErrorLog(metrics)
        self._tasks = EngineTasks(errors.record)
        spawn, record, running = self._tasks.spawn, errors.record, self._running
        self.failover = routes = FailoverState()
        self._registry = registry = FeedRegistry(routes, spawn, record, self.feed_down, running)
        self._failover = Failover(routes, registry, metrics, record, spawn, running)
        self._backfill = backfill = Backfill(
            config, registry, self._inbox, self.validator, metrics, record, spawn, running
        )
        self.continuity = backfill.continuity
        self._callbacks = callbacks = Callbacks(errors.callback_failed)
        self._sinks = sinks = Sinks(record, lambda kind: metrics.increment_errors(kind=kind))
        self._books = BookLane(
            config.inbox_size, registry.feeds.get, record, metrics, errors.callback_failed,
            snapshot_interval_s=config.book_snapshot_interval_s,
            snapshot_depth=config.book_snapshot_depth, storage=lambda: self.persistence,
        )  # fmt: skip
        self._intake = intake = Intake(self._inbox, self._books.queue, BOOK_TYPES)
        self.offer = intake.offer
        self.offer_many = intake.offer_many
        self._book_subscriptions: list[tuple[DataFeed, str]] = []  # made before start
        self._pipeline = Pipeline(
            config, self._inbox, self.validator, self.quality, metrics, registry, self._failover,
            backfill, callbacks, errors, sinks,
        )  # fmt: skip
        self._storage = StorageLink(
            config, errors, backfill, spawn, self.get_metrics, running, users=(self._pipeline,)
        )
        self._pipeline_task: asyncio.Task[Any] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> DataEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        exc = exc_info[1]
        if exc is None:
            await self.stop()
            return
        try:  # the body's own exception is the one the caller must see
            await self.stop()
        except StorageFailedError as failed:
            log.error("while leaving after %r: %s", exc, failed)

    @property
    def state(self) -> EngineState:
        """Where the engine is in its life (NEW, RUNNING, STOPPING, CLOSED)."""
        return self._intake.state

    @state.setter
    def state(self, state: EngineState) -> None:
        self._intake.state = state

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop`."""
        return self.state is EngineState.RUNNING

    def _running(self) -> bool:
        return self.state is _RUNNING

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
        mismatch = loop_mismatch(self.config.loop)  # Config(loop="uvloop") under asyncio.run
        if mismatch is not None:
            log.warning("%s", mismatch)
        self._share_gil()
        try:
            await self._tasks.open()
            try:  # the storage writer is one of the engine's tasks
                self.persistence = await self._storage.open(self._tasks.group)
            except BaseException:
                await self._tasks.close(0)
                raise
        except BaseException:
            self._unshare_gil()
            raise
        self.state = EngineState.RUNNING
        spawn = self._tasks.spawn
        self._pipeline_task = spawn("pipeline", self._pipeline.run)
        self._callbacks.start(spawn)
        self._books.start(spawn)
        self._storage.start_saving()
        self._backfill.start_clock()
        await self._sinks.open_all()
        await self._registry.connect_all()
        for feed, symbol in self._book_subscriptions:
            await self._subscribe_book(feed, symbol)

    def _share_gil(self) -> None:
        """Keep the GIL switch interval short while running: the engine's threads (SQLite,
        ``to_thread`` reads) must get the GIL from a busy loop (:mod:`lean_data.gil`)."""
        interval = self.config.switch_interval_s
        if interval is not None and not self._gil_shared:
            gil.share(interval)
            self._gil_shared = True

    def _unshare_gil(self) -> None:
        if self._gil_shared:
            self._gil_shared = False
            gil.unshare()

    def on_storage_failed(self, callback: Callable[[StorageFailure], Any]) -> None:
        """Call ``callback(failure)`` once when storage first loses rows (disk full, ...).

        ``failure`` has ``kind``, ``message`` (the first error) and ``rows_lost`` (so far).
        It is called from the storage writer task: a coroutine it returns runs as an
        engine task. Storage goes on trying; :meth:`stop` raises ``StorageFailedError``.
        """
        self._storage.on_failed(callback)

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
        feeds = self._registry.feeds.values()
        try:  # whatever fails on the way, the engine ends CLOSED
            closed = await asyncio.gather(*(f.close() for f in feeds), return_exceptions=True)
            try:
                await asyncio.wait_for(self._drain(), self.config.stop_timeout_s)
            except TimeoutError:
                self._abandon(self.config.stop_timeout_s)
            await self._sinks.close_all(self.config.stop_timeout_s)
            self._storage.stop_saving()
            await self._tasks.cancel_all()
            self._errors.record_undelivered(self._pipeline.outcomes)
            await self._storage.close()
        finally:
            try:
                await self._tasks.close(self.config.stop_timeout_s)
            finally:
                self._errors.close()
                self._unshare_gil()
                self.state = EngineState.CLOSED
        self._storage.raise_if_failed()
        for failed in closed:  # a feed that failed to close, after everything else closed
            if isinstance(failed, BaseException):
                raise failed

    def _abandon(self, waited_s: float) -> None:
        """Count and record what stop could not deliver in ``waited_s`` seconds."""
        lost = self._callbacks.abandon()
        pending = len(self._inbox)
        self.metrics.increment_drops(lost + pending, source="stop_timeout")
        self._errors.record(
            "stop_timeout",
            f"stop() waited {waited_s}s: {lost} queued callback items and "
            f"{pending} inbox items were not delivered",
        )

    def _set_gauges(self) -> None:
        """Set the buffer, inbox and subscriber gauges."""
        gauge, buffers = self.metrics.set_gauge, self._pipeline.buffers
        if buffers:
            usage = [b.utilization for b in buffers.values()]
            gauge("buffer_utilization_avg", sum(usage) / len(usage))
            gauge("buffer_utilization_max", max(usage))
        gauge("inbox_depth", len(self._inbox))
        subscribers = self._callbacks.subscribers
        gauge("subscriber_queue_depth", sum(len(s) for s in subscribers))
        gauge("subscriber_drops", sum(s.dropped for s in subscribers))

    async def _drain(self) -> None:
        pipeline = self._pipeline_task
        if pipeline is not None and not pipeline.done():
            await self._backfill.release_parked()
            await self._inbox.put("", STOP)  # behind producers already waiting for room
            await asyncio.shield(pipeline)
        await self._callbacks.close()
        await self._books.drain()

    # ------------------------------------------------------------------ feeds
    @property
    def feeds(self) -> dict[str, DataFeed]:
        """The registered feeds by name (a copy)."""
        return dict(self._registry.feeds)

    def add_feed(self, feed: DataFeed) -> None:
        """Register a feed; when the engine runs, it is connected in the background.

        Raises:
            ConfigError: another feed already has this name.
            EngineClosedError: the engine was stopped.
        """
        self._check_open()
        if feed.name in self._registry.feeds:
            raise ConfigError(f"a feed named {feed.name!r} is already registered")
        feed.attach(self)
        self._registry.add(feed)
        if self.running:
            self._registry.connect_later(feed)

    async def remove_feed(self, name: str) -> None:
        """Close and unregister a feed; its subscriptions are dropped."""
        feed = self._registry.remove(name)
        await feed.close()
        feed.attach(None)

    def feed_down(self, feed: str, symbols: Sequence[str], reason: str) -> None:
        """Fail ``symbols`` over from ``feed`` to the next feed serving each (feeds call this).

        Only symbols the engine routed to ``feed`` (or that ``feed`` stands in for) move; a
        symbol with no other feed stays where it is and waits for ``feed`` to recover.
        """
        self._failover.feed_down(feed, symbols, reason)
        source = self._registry.feeds.get(feed)
        disconnected = source is None or source.status is not FeedStatus.CONNECTED
        self._books.feed_down(feed, symbols, reason, everything=disconnected)

    def feed_error(self, feed: str, kind: str, message: str, symbol: str = "") -> None:
        """Count and record a problem a feed survived (called by DataFeed.report_error)."""
        self.metrics.increment_errors(feed=feed, kind=kind)
        self._errors.record(kind, message, feed=feed, symbol=symbol)

    async def accept(self, feed: str, item: Emitted) -> None:
        """Take one item from a feed into the inbox; waits while the inbox is full.

        Raises:
            EngineStateError: the engine is not running.
        """
        if not self.offer(feed, item):
            await self._intake.queue_of(item).put(feed, item)
            self._intake.accepted += 1

    async def accept_many(self, feed: str, items: Sequence[Emitted]) -> None:
        """Take a feed's items as one batch (:meth:`offer_many`); waits while they do not fit.

        Raises:
            EngineStateError: the engine is not running.
        """
        if self.offer_many(feed, items):
            return
        if any(type(item) in BOOK_TYPES for item in items):
            for item in items:  # in order, each to its own queue
                await self.accept(feed, item)
            return
        await self._inbox.put_many(feed, items)
        self._intake.accepted += len(items)

    async def barrier(self, feed: str) -> None:
        """Return once the pipeline processed every item taken into the inbox before this
        call (called back, queued for storage and sinks, or held by continuity for a
        backfill); what ``DataFeed.delivered()`` waits for. ``feed`` is the caller's name.

        Raises:
            EngineStateError: the engine is not running.
        """
        if self.state is not _RUNNING:
            raise EngineStateError(f"the engine is {self.state.value}; it processes no data")
        reached: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inbox.force(feed, barrier(reached))  # never waits for room: feeds await it
        await reached

    # ------------------------------------------------------------------ subscriptions
    def route(self, symbol: str, feed_name: str | None = None) -> DataFeed:
        """Return the feed that serves ``symbol``: the named one, else the first that does.

        Raises:
            ConfigError: ``feed_name`` names no registered feed.
            SubscriptionError: no registered feed serves the symbol.
        """
        return self._registry.route(symbol, feed_name)

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
        data: Iterable[str] = ("bars",),
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

            data: what to receive: ``"bars"`` (the feed's bars, quotes and ticks, the
                default) and/or ``"book"`` (its order book: ``add_book_callback``,
                ``get_book``; docs/depth.md).

        Raises:
            SubscriptionError: no feed serves the symbol, or the feed refused it.
            ValueError: ``warmup`` is negative.
            ConfigError: ``data`` names something else.
        """
        self._check_open()
        bad = bad_text(symbol)
        if bad is not None or not symbol:
            raise SubscriptionError(f"symbol: {bad or 'an empty string'}; expected a symbol name")
        if warmup < 0:
            raise ValueError(f"warmup: expected >= 0 bars, found {warmup}")
        wanted = [data] if isinstance(data, str) else list(data)
        if not wanted or set(wanted) - {"bars", "book"}:
            raise ConfigError(f"data: expected 'bars' and/or 'book', got {wanted!r}")
        feed = self.route(symbol, feed_name)
        if "book" in wanted:
            if self.running:
                await self._subscribe_book(feed, symbol)
            else:
                self._book_subscriptions.append((feed, symbol))
            if "bars" not in wanted:
                return feed.name
        self._backfill.add_series(
            symbol, Resolution.parse(resolution), warmup, derived, bars_from_trades, trade_rules
        )
        if self.running:
            self._backfill.start_clock()
        count = self._registry.acquire(feed.name, symbol)
        if self.config.continuity:
            await self._backfill.load_calendar(symbol)
        if count == 0 and self.running:
            await self._registry.subscribe_first(feed, symbol)
        return feed.name

    async def _subscribe_book(self, feed: DataFeed, symbol: str) -> None:
        if not await feed.subscribe_book(symbol):
            raise SubscriptionError(f"feed {feed.name!r} refused the order book of {symbol}")

    async def unsubscribe_symbol(self, symbol: str, feed_name: str | None = None) -> bool:
        """Drop one subscription to ``symbol``; the feed is told when none is left.

        Returns False when there was no such subscription.
        """
        return await self._registry.unsubscribe(symbol, feed_name)

    def subscriptions(self) -> dict[tuple[str, str], int]:
        """Return the live subscriptions: (feed, symbol) → reference count."""
        return self._registry.subscriptions()

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
        kinds: Iterable[str] | str | None = None,
        symbols: Iterable[str] | str | None = None,
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

        ``symbols`` (a name or several) limits it to those symbols. ``kinds`` chooses what
        it gets: None (the default) is market data, bars, quote bars and ticks; else any
        of :data:`~lean_data.engine.subscribers.KINDS`: ``"bar"``, ``"quote"``,
        ``"tick"`` and the derivatives records ``"funding_rate"``, ``"open_interest"``,
        ``"mark_price"``, ``"liquidation"``, which come only to callbacks that name them,
        as ``GOOD`` (they check their own fields when built; :mod:`lean_data.engine.records`).
        Both filters are checked before an item is queued (an async callback's counters
        count only what it takes).

        Returns:
            the async callback's :class:`Subscriber` (queue depth, drops, ``join()``),
            or None for a sync callback.

        Raises:
            ConfigError: an unknown kind, or ``symbols`` names no symbol.
        """
        self._check_open()
        chosen = OverflowPolicy(policy) if policy is not None else self.config.overflow_policy
        return self._callbacks.add(
            callback, parse_kinds(kinds), parse_symbols(symbols), floor=_floor(min_quality),
            late=late, partial=partial, policy=chosen, name=name,
            size=queue_size or self.config.subscriber_queue_size,
        )  # fmt: skip

    def on_bar(self, *symbols: str, **options: Any) -> Callable[[_C], _C]:
        """Decorate a callback to receive the trade bars of ``symbols`` (none: every one).

        ``@engine.on_bar("AAPL")`` is ``add_data_callback(f, symbols=["AAPL"],
        kinds="bar")``; ``options`` are :meth:`add_data_callback`'s. ``on_quote`` and
        ``on_tick`` are the same for quote bars and ticks.
        """
        return self._on("bar", symbols, options)

    def on_quote(self, *symbols: str, **options: Any) -> Callable[[_C], _C]:
        """Decorate a callback to receive the quote bars of ``symbols``; see :meth:`on_bar`."""
        return self._on("quote", symbols, options)

    def on_tick(self, *symbols: str, **options: Any) -> Callable[[_C], _C]:
        """Decorate a callback to receive the ticks of ``symbols``; see :meth:`on_bar`."""
        return self._on("tick", symbols, options)

    def _on(self, kind: str, symbols: Sequence[str], options: Any) -> Callable[[_C], _C]:
        def register(callback: _C) -> _C:
            self.add_data_callback(callback, symbols=symbols or None, kinds=kind, **options)
            return callback

        return register

    def stream(
        self,
        *symbols: str,
        kinds: Iterable[str] | str | None = None,
        min_quality: DataQualityLevel | None = None,
        late: bool = True,
        policy: OverflowPolicy | str = OverflowPolicy.DROP_OLDEST,
        maxsize: int | None = None,
        name: str = "stream",
    ) -> Stream:
        """Return an async iterator of ``(symbol, item, quality)`` for ``symbols`` (none:
        every symbol), filtered like :meth:`add_data_callback`'s::

            async for symbol, bar, quality in engine.stream("AAPL", kinds="bar"):
                ...

        It is a subscriber with a bounded queue (``maxsize``, default
        ``config.subscriber_queue_size``) and ``policy`` (``drop_oldest`` by default, so a
        stream nobody reads never stalls the engine; drops are counted in
        ``stream.dropped`` and ``get_metrics()["subscribers"]``; ``"block"`` is lossless).
        It ends when the engine stops, after what was queued; leaving the ``async for``
        (``break``) or :meth:`Stream.close` unregisters it. See
        :mod:`lean_data.engine.streams`.

        Raises:
            ConfigError: an unknown kind or a bad symbol.
            EngineClosedError: the engine was stopped.
        """
        self._check_open()
        subscriber = self._callbacks.add_pulled(
            parse_kinds(kinds), parse_symbols(symbols or None), floor=_floor(min_quality),
            late=late, policy=OverflowPolicy(policy), name=name,
            size=maxsize or self.config.subscriber_queue_size,
        )  # fmt: skip
        return Stream(subscriber, self._callbacks)

    def add_sink(self, sink: ItemSink) -> None:
        """Hand every accepted item from now on to ``sink`` (e.g. a bus publisher).

        Accepted: every item but INVALID ones and in-progress bars (live, backfilled and
        late bars, quotes, ticks), each with its feed and quality verdict. The sink is
        opened at :meth:`start` (now, as a task, when the engine runs) and closed on
        :meth:`stop` after everything accepted reached it, within ``config.stop_timeout_s``.
        Its counters are in ``get_metrics()["sinks"]``; :mod:`lean_data.engine.sinks` says
        what a sink must do.

        Raises:
            ConfigError: ``sink`` is not a sink, or one of its name is attached.
        """
        self._check_open()
        self._sinks.add(sink, self._tasks.spawn if self._running() else None)

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        token: str | None = None,
        policy: OverflowPolicy | str = OverflowPolicy.DROP_OLDEST,
        queue_size: int = 1000,
        **options: Any,
    ) -> Gateway:
        """Serve this engine over HTTP: ``/ws``, ``/metrics``, ``/health``, ``/ready``, ``/``.

        Starts a :class:`~lean_data.gateway.Gateway` on this event loop, attached as the sink
        named ``gateway``; :meth:`stop` closes it (clients get close code 1001). ``port=0``
        picks a free port (read ``gateway.port`` / ``gateway.url``). ``options`` go to the
        ``Gateway`` (``max_lag_s``, ``stale_after_s``, ``close_timeout_s``); see
        docs/distribution.md, "The gateway".
        """
        from lean_data.gateway import Gateway

        gateway = Gateway(
            self, host, port, token=token, policy=policy, queue_size=queue_size, **options
        )
        return await gateway.start()

    def add_book_callback(
        self,
        callback: BookCallback,
        *,
        policy: OverflowPolicy | str = OverflowPolicy.CONFLATE,
        queue_size: int | None = None,
        name: str = "",
    ) -> Subscriber | None:
        """Register ``callback(symbol, book, quality)`` for order books.

        ``book`` is the live :class:`~lean_data.depth.OrderBook` after each message was
        applied (read it in the callback; it changes afterwards); ``quality`` is INVALID
        when the book just broke (a gap, a bad checksum, a crossed book: ``book.valid`` is
        False and ``book.invalid_reason`` says why) until a re-sync makes it valid again.
        A plain function runs inline; a coroutine function from its own queue, conflated
        by default (the latest book of each symbol; ``drop_oldest`` also takes; never
        ``block``). Bar callbacks see no book. See docs/depth.md.

        Raises:
            ConfigError: ``policy`` is ``block``.
        """
        self._check_open()
        size = queue_size or self.config.subscriber_queue_size
        chosen = OverflowPolicy(policy)
        return self._books.add_callback(callback, chosen, size, name, self._callbacks.failed)

    def get_book(self, symbol: str, feed_name: str | None = None) -> OrderBook | None:
        """The order book the engine keeps for ``symbol`` (of ``feed_name``), or None."""
        return self._books.book(symbol, feed_name)

    def remove_data_callback(self, callback: Callable[..., Any]) -> bool:
        """Unregister a callback (a book callback too); an async one finishes its queue."""
        return self._callbacks.remove(callback) or self._books.remove(callback)

    async def wait_idle(self) -> None:
        """Return once everything accepted so far reached callbacks and the storage queue.

        Bars held back while a gap is backfilled (or a warm-up fetched) count as accepted:
        this waits for those answers too.
        """
        if self.state is not EngineState.NEW:
            await self._inbox.join()
            while self._backfill.busy:
                await self._backfill.wait_answers()
                await self._inbox.join()
        await asyncio.gather(*(s.join() for s in self._callbacks.every()))
        if self.state is not EngineState.NEW:
            await self._books.join()

    # ------------------------------------------------------------------ queries
    def get_latest(self, symbol: str, n: int = 1) -> list[MarketData]:
        """Return up to ``n`` most recent items of ``symbol``, oldest first."""
        buffer = self._pipeline.buffers.get(symbol)
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
        bars = await self._storage.history(feed, symbol, res, start_ns, end_ns)
        if bars:
            await asyncio.to_thread(self.cache.put, symbol, res, start_ns, end_ns, bars)
        return bars

    async def bars(
        self,
        symbol: str,
        start: datetime | str | int,
        end: datetime | str | int,
        resolution: Resolution | str = Resolution.MINUTE,
        feed_name: str | None = None,
    ) -> Bars:
        """Return :meth:`get_historical_data` as :class:`~lean_data.analytics.frames.Bars`,
        a read-only sequence with ``to_pandas()`` and ``to_polars()``::

            frame = (await engine.bars("SPY", "2013-10-07", "2013-10-08")).to_pandas()

        ``start`` and ``end`` are datetimes (naive is UTC), ISO 8601 strings or ns ints.

        Raises:
            ValueError: ``start`` or ``end`` is none of those.
        """
        start_ns, end_ns = time_ns(start, "start"), time_ns(end, "end")
        res = Resolution.parse(resolution)
        items = await self.get_historical_data(symbol, start_ns, end_ns, res, feed_name)
        return Bars(items, symbol, res)

    def get_metrics(self) -> dict[str, Any]:
        """Return a snapshot: ``metrics["engine"]``, ``["feeds"]``, ``["subscribers"]``, ..."""
        pipeline = self._pipeline
        self.metrics.set_gauge("cache_hit_rate", self.cache.hit_rate)
        self._set_gauges()
        snapshot = self.metrics.to_dict()
        snapshot.setdefault("engine", {}).update(
            state=self.state.value,
            accepted=self._intake.accepted,
            **pipeline.counts(),
            callback_errors=self._errors.callback_errors,
            inbox_depth=len(self._inbox),
            degraded=self.persistence is not None and self.persistence.failure is not None,
        )
        feeds = snapshot.setdefault("feeds", {})
        for name, feed in self._registry.feeds.items():
            feeds.setdefault(name, {})["connection"] = feed.get_connection_status()
        snapshot["subscribers"] = [s.statistics() for s in self._callbacks.every()]
        snapshot["sinks"] = self._sinks.statistics()
        snapshot["books"] = self._books.statistics()
        snapshot["failover"] = self.failover.statistics()
        snapshot["continuity"] = self.continuity.statistics()
        snapshot["cache"] = self.cache.statistics()
        snapshot["buffers"] = buffer_statistics(pipeline.buffers)
        if self.persistence is not None:
            snapshot["storage"] = self.persistence.statistics()
        return snapshot

    async def get_data_quality_report(self, symbol: str, hours: float = 24) -> dict[str, Any]:
        """Return the quality of ``symbol``: overall, per feed, and what storage holds.

        Top level: ``messages`` (items judged, from every feed), ``average_quality_score``
        (the mean score of their levels, INVALID counting 0; None before the first item) and
        ``levels`` (count per level name). ``feeds`` has the per-feed detail (see
        :meth:`~lean_data.quality.validator.QualityTracker.report`); ``stored`` summarises the rows
        received in the last ``hours`` hours.
        """
        report = symbol_quality(self.quality.report(symbol=symbol), symbol, hours)
        if self.persistence is not None and self.state is not EngineState.CLOSED:
            report["stored"] = await self.persistence.quality_summary(symbol, hours=hours)
        return report

    def _check_open(self) -> None:
        if self.state in (EngineState.STOPPING, EngineState.CLOSED):
            raise EngineClosedError("this DataEngine was stopped; create a new one")

    def symbols(self) -> Iterable[str]:
        """Return the symbols that have delivered data (have a ring buffer)."""
        return list(self._pipeline.buffers)
