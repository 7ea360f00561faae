"""The pipeline: the one path from the inbox to callbacks and storage.

::

    inbox ──► screen (INVALID?) → failover → continuity (bars) → judge → ring buffer
          → sync callbacks → async subscriber queues → storage queue → sinks
          → bars built from it

One task runs :meth:`Pipeline.run`. Its per-item functions never wait: what would wait (a
full BLOCK subscriber queue, a full storage queue, and what must come after those) is
returned as typed steps (:mod:`lean_data.engine.steps`) the task awaits before the next
item. Bars the engine builds (from trades, derived, closed by the clock) and bars
continuity releases (backfilled, parked, late) come back in by one door, ``_rejoin``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Final

from lean_data.config import Config
from lean_data.engine.backfill import Backfill, Resume
from lean_data.engine.error_log import ErrorLog
from lean_data.engine.failover import Failover
from lean_data.engine.fanout import FanOut
from lean_data.engine.metrics import DataMetrics, Outcomes, delivery_latency_ns
from lean_data.engine.records import KeepRecord, RecordLane
from lean_data.engine.registry import FeedRegistry
from lean_data.engine.series_record import SeriesRecord, SeriesRecords
from lean_data.engine.sinks import Sinks
from lean_data.engine.steps import STOP, AwaitAnswer, Control, Later, Offer, Rejoin, Store
from lean_data.engine.subscribers import Callbacks
from lean_data.inbox import Batch, Inbox
from lean_data.models import MarketData, Resolution, Tick, TradeBar
from lean_data.native import elapsed_ns
from lean_data.quality.levels import DataQualityLevel, Verdict
from lean_data.quality.screen import bad_text, kind_of
from lean_data.quality.tracker import NO_TS
from lean_data.quality.validator import DataValidator, QualityTracker
from lean_data.series.buffer import DataBuffer
from lean_data.series.continuity import Action
from lean_data.slots import (
    BAR,
    BAR_BACKFILLED,
    BAR_CLOSED,
    BAR_RESOLUTION,
    BAR_SYMBOL,
    TICK,
    TICK_SYMBOL,
    TICK_TS_EVENT,
    TICK_TS_RECV,
)
from lean_data.storage.base import Storage
from lean_data.storage.rows import MarketIntake

__all__ = ["Pipeline"]

log = logging.getLogger("lean_data.engine")

# C statics, read per item: no enum descriptor, no module-dict read (see quality.screen)
_INVALID: Final = DataQualityLevel.INVALID
_TRADE_BAR: Final = TradeBar
_TICK: Final = Tick
_RESOLUTION: Final = Resolution
_BAR: Final = BAR
_TICK_FIELDS: Final = TICK
_NO_TS: Final = NO_TS
_ELAPSED: Final = elapsed_ns
_CONTROL: Final = Control
_STOP: Final = STOP
_TURN: Final = 32  # items taken in a row before the loop may run others (~0.3 ms of a burst)


class Pipeline:
    """Takes items from the inbox and delivers them; owns the ring buffers and counters.

    Args:
        config: the engine's settings (read per item: ``continuity``, ``store_invalid``).
        inbox: where feeds' items and control messages wait.
        validator: screens and judges every item.
        quality: per-feed quality counters.
        metrics: delivery latency, scores and error counts.
        registry: the feeds (whether one is live, for latency).
        failover: decides whether a failed-over symbol's item is delivered.
        backfill: continuity, its answers and the bars built from items.
        callbacks: who is called back.
        errors: the errors table and callback error counts.
        sinks: who else gets every accepted item (the bus publisher).
    """

    def __init__(
        self,
        config: Config,
        inbox: Inbox[str],
        validator: DataValidator,
        quality: QualityTracker,
        metrics: DataMetrics,
        registry: FeedRegistry,
        failover: Failover,
        backfill: Backfill,
        callbacks: Callbacks,
        errors: ErrorLog,
        sinks: Sinks,
    ) -> None:
        self.config = config
        self._inbox = inbox
        # the validator itself, not its bound methods: compiled, a method of a typed attribute
        # is a direct call, a stored bound method a generic one (argument parsing, boxing)
        self._validator = validator
        # per-series state through the series records, unless a validator subclass judges
        # its own way (then it is asked by key, as its judge() expects)
        self._own_judge = type(validator).judge is not DataValidator.judge
        self._routes: Mapping[str, object]
        self._retired: AbstractSet[tuple[str, str]]
        self.records = SeriesRecords(validator, quality)
        """Each series' state in every stage, by :func:`record_key`: one lookup per item."""
        self._quality = quality
        self._record_quality = quality.record
        self._metrics = metrics
        self._liveness = registry.liveness  # the dict itself: whether a feed is live, per item
        # failover's routes and retired backups: while both are empty no item is filtered
        self._routes, self._retired = failover.state.filters()
        self._admit = failover.admit
        self._backfill = backfill
        self._continuity = backfill.continuity
        self._aggregators = backfill.aggregators
        self._derivers = backfill.derivers
        self._built_from = backfill.built_from
        self._errors = errors
        self._record_error = errors.record
        self.persistence: Storage | None = None
        self._intake: MarketIntake | None = None  # the store's, when it is a QueuedStore
        self.buffers: dict[str, DataBuffer[MarketData]] = {}
        self._callbacks = callbacks  # its lists are replaced on a change: read them there
        fan_out = FanOut(callbacks, errors)
        self._fanout = fan_out
        self._sinks = sinks.sinks  # the list itself: read per item
        self._sink_offer = sinks.offer
        self._outcomes = Outcomes()
        self._records = RecordLane(callbacks, self._taken, errors.callback_failed, self._storage)
        self._record_types = self._records.types

    def _taken(self, feed: str) -> None:  # a record: no latency nor score to record
        self._outcomes.delivered += 1
        self._metrics.increment_messages(feed=feed)

    @property
    def outcomes(self) -> dict[str, int]:
        """What became of the items taken, by :data:`~lean_data.engine.metrics.OUTCOMES`."""
        return self._outcomes.as_dict()

    def _storage(self) -> Storage | None:
        return self.persistence

    def use_storage(self, persistence: Storage) -> None:
        """Queue what is delivered for ``persistence`` from now on."""
        self.persistence = persistence
        intake = getattr(persistence, "intake", None)  # else save_market_data_nowait
        self._intake = intake if isinstance(intake, MarketIntake) else None

    def counts(self) -> dict[str, Any]:
        """Return the items processed, invalid, built and the outcome counts (a copy)."""
        return self._outcomes.counts()

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        """Take items until ``STOP``; answered backfills go before the next item."""
        inbox = self._inbox
        answers = self._backfill.answers
        while True:
            while answers:  # answered while the last items were processed
                await self._settle(answers.popleft())
            await inbox.wait()
            turn = 0
            # inbox.take(), not a bound method kept in a local: compiled, that is a direct call
            while (pair := inbox.take()) is not None:
                if (turn := turn + 1) % _TURN == 0:  # a burst: yield to the loop every slice
                    await asyncio.sleep(0)
                while answers:  # answered backfills go first: their bars are older
                    await self._settle(answers.popleft())
                feed, item = pair
                if type(item) is Batch:  # one socket read's items: the same, item by item
                    turn = await self._take_batch(feed, item.items, turn)
                    inbox.done(len(item))
                    continue
                if type(item) is _CONTROL:
                    if item is _STOP:
                        inbox.done()
                        return
                    if item.bar is not None:  # a bar the clock closed
                        await self._guarded(feed, item.bar, False, False)
                    elif item.reached is not None and not item.reached.done():  # a barrier
                        item.reached.set_result(None)
                    inbox.done()
                    continue
                try:  # inline, not _guarded(): one coroutine less per item
                    if (later := self._take(feed, item)) is not None:
                        await self._finish(later)
                except Exception as exc:  # a bad item must not stop the pipeline
                    self.error(feed, item, exc)
                inbox.done()

    async def _take_batch(self, feed: str, batch: Sequence[MarketData], turn: int) -> int:
        """Process a batch's items in order, as :meth:`run` does one; returns the turn count."""
        answers = self._backfill.answers
        for item in batch:
            if (turn := turn + 1) % _TURN == 0:
                await asyncio.sleep(0)
            while answers:  # answered backfills go first: their bars are older
                await self._settle(answers.popleft())
            try:
                if (later := self._take(feed, item)) is not None:
                    await self._finish(later)
            except Exception as exc:  # a bad item must not stop the pipeline
                self.error(feed, item, exc)
        return turn

    def _take(self, feed: str, item: Any) -> Later | None:
        """One item the inbox gave: a record (funding rate, ...) to its lane, market data
        to :meth:`_process`; returns the steps that must wait."""
        kind = type(item)  # a tick or a bar first: identity checks, no set lookup
        if kind is not _TICK and kind is not _TRADE_BAR and kind in self._record_types:
            return self._records.take(feed, item)
        return self._process(feed, item)

    async def _settle(self, resume: Resume) -> None:
        """Deliver the bars a backfill's answer releases, each guarded on its own."""
        try:
            released = await self._backfill.settle(resume)
        except Exception as exc:  # its bars are guarded one by one: this is a bug
            self.error(resume.request.feed, resume, exc)
            return
        # parked bars the answer showed to be repeats: decided by continuity, counted here
        self._outcomes.duplicate += self._continuity.take_resumed_duplicates()
        for feed, bar, late in released:
            await self._guarded(feed, bar, True, late)

    async def _guarded(self, feed: str, bar: MarketData, released: bool, late: bool) -> None:
        """Let one built or released bar in and await what must wait; errors cost it only."""
        try:
            later = self._rejoin(None, feed, bar, released, late)
            if later is not None:
                await self._finish(later)
        except Exception as exc:  # a bad item must not stop the pipeline
            self.error(feed, bar, exc)

    def error(self, feed: str, item: object, exc: Exception) -> None:
        """Count and record an item the pipeline could not process."""
        self._outcomes.error += 1
        self._metrics.increment_errors(feed=feed, kind="pipeline_error")
        log.warning("feed %s emitted an item the pipeline could not process: %r", feed, exc)
        symbol = getattr(item, "symbol", "")
        self._record_error(
            "pipeline_error",
            f"{type(item).__name__} from feed {feed!r} could not be processed: {exc!r}",
            feed=feed,
            symbol=symbol if bad_text(symbol) is None else ascii(symbol),
        )

    async def _finish(self, later: Later) -> None:
        """Await the waiting steps of one item, in order."""
        for step in later:
            if isinstance(step, Offer):
                await step.subscriber.put(step.symbol, step.item, step.level)
            elif isinstance(step, Store):
                await self._store(step.feed, step.item, step.verdict)
            elif isinstance(step, KeepRecord):
                await step.save()
            elif isinstance(step, Rejoin):
                more = (
                    self._deliver(step.feed, step.bar, None, step.late)
                    if step.released
                    else self._process(step.feed, step.bar)
                )
                if more is not None:
                    await self._finish(more)
            else:
                await self._await_answer(step)

    async def _await_answer(self, step: AwaitAnswer) -> None:
        await asyncio.shield(step.task)
        answers = self._backfill.answers
        while answers:
            await self._settle(answers.popleft())

    # ------------------------------------------------------------------ one item
    def _process(self, feed: str, item: MarketData) -> Later | None:
        """Screen one item, route it through continuity to :meth:`_deliver`; never waits.

        The validator's screen comes first: an item with an impossible value (time, revision,
        magnitude, text) is INVALID before continuity, buffers, storage or calendar
        arithmetic see it. Returns the steps that must wait (a full subscriber queue under
        BLOCK, a full storage queue), in order, or None when none must: the caller awaits
        them with :meth:`_finish` before it takes the next item.
        """
        screened = self._validator.screen(item)
        if screened is not None:
            return self._deliver(feed, item, screened)  # no record: its key may be bogus
        # a subclass of a model takes its base model's path; a trade bar's fields in one call
        kind = kind_of(item)
        fields = _BAR(item) if kind is _TRADE_BAR else None
        resolution: object = None if fields is None else fields[BAR_RESOLUTION]
        if fields is not None and type(resolution) is _RESOLUTION:
            bar: TradeBar = item  # type: ignore[assignment]  # its kind
            if not fields[BAR_CLOSED]:
                self._outcomes.partial += 1
                self._fanout.partial(bar)
                return None
            symbol: str = fields[BAR_SYMBOL]
            key = (feed, symbol, _TRADE_BAR, resolution)  # record_key(), inlined
            records = self.records.table
            record = records.get(key)
            if record is None:
                record = records[key] = SeriesRecord()
            if not fields[BAR_BACKFILLED] and self.config.continuity:
                if (self._routes or self._retired) and not self._admit(feed, symbol):
                    self._outcomes.standby += 1
                    return None
                series = record.continuity
                if series is None:
                    series = record.continuity = self._continuity.series_of(symbol, resolution)
                decision = self._continuity.admit_in(series, feed, bar)
                if decision is None:
                    return self._deliver(feed, bar, None, False, record, fields)
                action = decision.action
                if action is Action.DELIVER:
                    assert decision.bar is not None
                    return self._deliver(feed, decision.bar, None, False, record)
                if action is Action.LATE:
                    return self._deliver(feed, bar, None, True, record, fields)
                if action is Action.DUPLICATE:
                    self._outcomes.duplicate += 1
                    return None
                if decision.request is not None:  # parked: delivered when it is answered
                    self._backfill.resolve(decision.request)
                return self._backfill.bound_parked(bar.symbol, resolution, feed)
        elif kind is _TICK:  # its fields in one call (the screen's tuple comes back)
            tick = _TICK_FIELDS(item)
            record = self.records.of_tick(feed, tick)
            if (self._routes or self._retired) and not self._admit(feed, tick[TICK_SYMBOL]):
                self._outcomes.standby += 1
                return None
            return self._deliver(feed, item, None, False, record, None, tick)
        else:
            record = self.records.of(feed, item)
        if (self._routes or self._retired) and not self._admit(feed, item.symbol):
            self._outcomes.standby += 1
            return None
        return self._deliver(feed, item, None, False, record)

    def _deliver(
        self,
        feed: str,
        item: MarketData,
        verdict: Verdict | None = None,
        late: bool = False,
        record: SeriesRecord | None = None,
        fields: tuple[Any, ...] | None = None,
        tick: tuple[Any, ...] | None = None,
    ) -> Later | None:
        """Judge, score, buffer, call back, store, then build bars from it; never waits.

        ``verdict`` is the screen's INVALID verdict when there is one (the item then has no
        ``record``; one the screen passed is looked up when not given); ``fields`` a screened
        TradeBar's (:data:`lean_data.slots.BAR`), ``tick`` a screened Tick's
        (:data:`lean_data.slots.TICK`), when at hand (storage builds its row from them). A
        ``late`` bar is flagged (reason ``late``) and reaches callbacks and storage, not the
        ring buffer nor derived bars (both in time order). Returns what must wait."""
        if verdict is None:
            if record is None:
                record = self.records.of(feed, item)
            if record is None or self._own_judge:
                verdict = self._validator.judge(item, feed=feed)
            else:
                window = record.validation
                if window is None:
                    window = record.validation = self._validator.series_of(item, feed)
                verdict = self._validator.judge_in(window, item)
        if late:
            verdict = verdict.flagged_late(item.ts_event)
        level = verdict.level
        if level is _INVALID:
            self._outcomes.invalid += 1
            # the screen may have found its symbol is not text: named by its ascii() form in
            # the quality report, the errors table and to callbacks (the item is unchanged)
            untyped: Any = item
            shown = untyped.symbol if bad_text(untyped.symbol) is None else ascii(untyped.symbol)
            if record is None:
                self._record_quality(feed, shown, item, verdict)
            else:
                self.records.count(feed, item, verdict, None, record)
            self._metrics.increment_errors(feed=feed, kind="invalid_data")
            self._record_error("invalid_data", verdict.message, feed=feed, symbol=shown)
            later = self._fanout.deliver(shown, item, level, late)
            return self._keep(feed, item, verdict, later) if self.config.store_invalid else later
        if fields is not None:
            symbol: str = fields[BAR_SYMBOL]
        elif tick is not None:
            symbol = tick[TICK_SYMBOL]
        else:
            symbol = item.symbol
        if late:
            self._outcomes.late += 1
        else:
            # by kind, not isinstance (compiled: a generic call for a pure module's class);
            # no getattr default (compiled, a miss raises and clears an AttributeError)
            if fields is not None:
                backfilled = fields[BAR_BACKFILLED] is True
            else:
                backfilled = (
                    tick is None and kind_of(item) is not _TICK and item.backfilled  # type: ignore[union-attr]  # a bar
                )
            if backfilled:
                self._outcomes.backfilled += 1
            else:
                self._outcomes.delivered += 1
            buffer = None if record is None else record.buffer
            if buffer is None:
                buffer = self.buffers.get(symbol)
                if buffer is None:
                    buffer = self.buffers[symbol] = DataBuffer(self.config.buffer_size)
                if record is not None:
                    record.buffer = buffer
            buffer.add(item)
        later = self._fanout.deliver(symbol, item, level, late)
        live = self._liveness.get(feed, False)
        if tick is None:  # the latency boxed once, for the tracker and the metrics
            latency: Any = delivery_latency_ns(live, item, fields)
            ts_event = _NO_TS  # record_in reads it from the fields or the item
        else:  # both times read first: a native int is not spilled around a generic read
            ts_event, received = tick[TICK_TS_EVENT], tick[TICK_TS_RECV]
            latency = _ELAPSED(ts_event if live else received)  # tick_latency_ns, one C call
        if record is not None and (counters := record.counters) is not None:  # at hand
            self._quality.record_in(
                counters, record.clock, item, verdict, latency, fields, ts_event
            )
        else:
            self.records.count(feed, item, verdict, latency, record)
        self._metrics.record_delivery(feed, latency, verdict.score)
        if self.persistence is not None:
            later = self._keep(feed, item, verdict, later, fields, tick)
        if self._sinks:
            self._sink_offer(feed, item, verdict)
        if late or not (self._aggregators or self._derivers):
            return later
        for bar in self._built_from(item):  # bars built from it: trades → bars, derived bars
            later = self._rejoin(later, feed, bar)
        return later

    def _rejoin(
        self,
        later: Later | None,
        feed: str,
        bar: MarketData,
        released: bool = False,
        late: bool = False,
    ) -> Later | None:
        """The one door back in for bars the engine built or continuity released.

        Built bars (from trades, derived, closed by the clock) go through the whole
        pipeline; bars continuity released (backfilled, parked, ``late``) were decided
        already and go straight to delivery. Now, or after ``later`` when steps wait.
        """
        if not released:
            self._outcomes.built += 1
        if later is None:
            return self._deliver(feed, bar, None, late) if released else self._process(feed, bar)
        later.append(Rejoin(feed, bar, released, late))
        return later

    def _keep(
        self,
        feed: str,
        item: MarketData,
        verdict: Any,
        later: Later | None,
        fields: tuple[Any, ...] | None = None,
        tick: tuple[Any, ...] | None = None,
    ) -> Later | None:
        """Queue ``item`` for storage now, or as a waiting step when the queue is full."""
        persistence, intake = self.persistence, self._intake
        assert persistence is not None
        if later is None and (
            intake.offer(item, feed, verdict, fields, tick)  # the library's stores: native
            if intake is not None
            else persistence.save_market_data_nowait(item, feed=feed, quality=verdict)
        ):
            return None
        later = [] if later is None else later
        later.append(Store(feed, item, verdict))
        return later

    async def _store(self, feed: str, item: MarketData, verdict: Any) -> None:
        persistence = self.persistence
        assert persistence is not None
        if not persistence.save_market_data_nowait(item, feed=feed, quality=verdict):
            await persistence.save_market_data(item, feed=feed, quality=verdict)
