"""The engine's series work: continuity answers, warm-up, restart, bars from trades, derived bars.

The policy is pure (:mod:`lean_data.series.continuity`, :mod:`lean_data.series.resample`,
:mod:`lean_data.series.aggregation`); :class:`Backfill` does its I/O: history requests,
storage lookups, coverage records, calendars and the bar clock. It produces bars but never
delivers one: answers go to the pipeline through :attr:`Backfill.answers` (the pipeline
takes them before its next item, as their bars are older), bars the clock closed go through
the inbox, and the pipeline lets both in by its one door for built bars.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from lean_data.config import Config
from lean_data.engine.error_log import RecordError
from lean_data.engine.metrics import DataMetrics
from lean_data.engine.registry import FeedRegistry
from lean_data.engine.steps import WAKE, AwaitAnswer, Later, built
from lean_data.engine.tasks import Spawn
from lean_data.errors import LeanDataError
from lean_data.inbox import Inbox
from lean_data.models import (
    AssetClass,
    MarketData,
    Resolution,
    Tick,
    TickType,
    TradeBar,
)
from lean_data.quality.screen import kind_of
from lean_data.quality.validator import DataValidator
from lean_data.series.continuity import Continuity, EveryInterval, Request
from lean_data.storage.factory import storage_configured
from lean_data.symbols import classify_symbol

if TYPE_CHECKING:
    from lean_data.storage.base import Storage

__all__ = ["Backfill", "Released", "Resume"]

log = logging.getLogger("lean_data.engine")

_YEAR_2000_NS = 946_684_800 * 10**9
_WARMUP_WINDOWS = (1, 3, 10, 40)  # history windows tried for a warm-up, in multiples of N bars

Released = list[tuple[str, TradeBar, bool]]
"""Bars continuity let go after an answer: (feed, bar, late), to deliver in order."""


class Resume:
    """A parked series' request was answered (or abandoned at stop)."""

    __slots__ = ("answered", "empty", "fill", "request")

    def __init__(
        self, request: Request, fill: list[TradeBar], empty: bool, answered: bool = True
    ) -> None:
        self.request, self.fill, self.empty, self.answered = request, fill, empty, answered


class Backfill:
    """Continuity and everything it asks for: answers, warm-up, restart seeds, built bars.

    Args:
        config: the engine's settings.
        registry: the feeds (history, calendars, asset classes) and subscriptions.
        inbox: the pipeline's inbox (bars the clock closed; a wake-up for answers).
        validator: screens history bars and restart seeds.
        metrics: counts gaps and failed backfills.
        record_error: writes them to the errors table.
        spawn: runs the answering of requests and the bar clock as engine tasks.
        running: whether the engine runs.
    """

    def __init__(
        self,
        config: Config,
        registry: FeedRegistry,
        inbox: Inbox[str],
        validator: DataValidator,
        metrics: DataMetrics,
        record_error: RecordError,
        spawn: Spawn,
        running: Callable[[], bool],
    ) -> None:
        self.config = config
        self._registry = registry
        self._inbox = inbox
        self._validator = validator
        self._metrics = metrics
        self._record_error = record_error
        self._spawn = spawn
        self._running = running
        self._persistence: Storage | None = None
        self.continuity = Continuity(
            self.calendar_of,
            registry.sparse,
            seed_from_storage=storage_configured(config) and config.resume_from_storage,
            live=registry.live,
            max_backfill_bars=config.backfill_max_bars,
        )
        self.answers: deque[Resume] = deque()
        """Answers for the pipeline to take before its next item (one at most per series)."""
        self.aggregators: dict[str, Any] = {}  # symbol -> TimeBarAggregator (trades to bars)
        self.derivers: dict[tuple[str, Resolution], Any] = {}  # -> BarResampler
        self._resolving: dict[tuple[str, Resolution], tuple[asyncio.Task[Any], Request]] = {}
        self._calendars: dict[str, Any] = {}
        self._clock: asyncio.Task[Any] | None = None

    def use_storage(self, persistence: Storage) -> None:
        """Seed restarts from and record coverage in ``persistence`` from now on."""
        self._persistence = persistence

    async def read_stored_series(self) -> None:
        """Learn which bar series storage holds (once, as it opens, before any feed runs):
        the first bar of a live series it does not hold is delivered at once instead of
        parked while a lookup (queued behind the storage writer's work) finds no stored
        bar."""
        if self._persistence is None or not self.continuity.seed_from_storage:
            return
        try:
            keys = await self._persistence.bar_series_keys()
        except Exception as exc:  # not known: every series is looked up, as before
            self.continuity.stored_series = None
            self._metrics.increment_errors(kind="backfill_failed")
            self._record_error(
                "backfill_failed",
                f"reading which bar series storage holds failed ({exc!r}): every live "
                "series' first bar waits for a lookup of its newest stored bar",
            )
            return
        self.continuity.stored_series = {(feed, symbol, res) for feed, symbol, res in keys}

    @property
    def busy(self) -> bool:
        """True while a request is being answered or an answer waits for the pipeline."""
        return bool(self._resolving or self.answers)

    async def wait_answers(self) -> None:
        """Wait for the requests being answered now."""
        await asyncio.gather(*(task for task, _ in list(self._resolving.values())))

    # ------------------------------------------------------------------ built bars
    def add_series(
        self,
        symbol: str,
        resolution: Resolution,
        warmup: int,
        derived: Iterable[Resolution | str],
        bars_from_trades: Resolution | str | None,
        trade_rules: Any,
    ) -> None:
        """Set up what a subscription asks of ``symbol``'s series (see ``subscribe_symbol``)."""
        if warmup:
            self.continuity.hold(symbol, resolution, warmup)
        targets = [Resolution.parse(t) for t in derived]
        if targets:
            self.add_derived(symbol, resolution, targets)
        if bars_from_trades is not None:
            self.add_trade_bars(symbol, bars_from_trades, trade_rules)

    def add_derived(self, symbol: str, source: Resolution, targets: list[Resolution]) -> None:
        """Maintain ``targets`` bars of ``symbol`` from its closed ``source`` bars."""
        from lean_data.series.resample import BarResampler

        key = (symbol, source)
        known = self.derivers.get(key)
        if known is not None:
            targets = sorted(set(known.targets) | set(targets), key=lambda r: r.nanos)
        equity = (self.asset_class_of(symbol) or classify_symbol(symbol)) is AssetClass.EQUITY
        self.derivers[key] = BarResampler(
            targets, source=source, symbol=symbol, tz="America/New_York" if equity else None
        )

    def add_trade_bars(self, symbol: str, resolution: Resolution | str, rules: Any) -> None:
        """Build ``resolution`` bars of ``symbol`` from its trade ticks (once per symbol)."""
        if symbol not in self.aggregators:
            from lean_data.series.aggregation import TimeBarAggregator

            self.aggregators[symbol] = TimeBarAggregator(symbol, resolution, rules=rules)

    def built_from(self, item: MarketData) -> Sequence[MarketData]:
        """Update what the engine builds from ``item`` (trades → bars, bars → derived
        bars); return the bars it closed, usually none."""
        kind = kind_of(item)  # a subclass of a model is built from as its base model
        if kind is Tick:
            tick: Tick = item  # type: ignore[assignment]  # its kind
            aggregator = self.aggregators.get(tick.symbol)
            if aggregator is not None and tick.tick_type is TickType.TRADE:
                return aggregator.update(tick)  # type: ignore[no-any-return]
        elif kind is TradeBar:
            bar: TradeBar = item  # type: ignore[assignment]  # its kind
            deriver = self.derivers.get((bar.symbol, bar.resolution))
            if deriver is not None:
                return deriver.update(bar)  # type: ignore[no-any-return]
        return ()

    def start_clock(self) -> None:
        """Start the bar clock once there are bars to close (call while running)."""
        if (self.aggregators or self.derivers) and self._clock is None:
            self._clock = self._spawn("bar-clock", self._bar_clock)

    async def _bar_clock(self) -> None:
        """Close trade-built bars whose period ended, for symbols of live feeds."""
        while True:
            await asyncio.sleep(self.config.bar_clock_s)  # the clock that closes bars
            now = time.time_ns() - self.config.bar_close_delay_ns
            closers: list[tuple[str, Any, Resolution | None]] = [
                (symbol, aggregator, None) for symbol, aggregator in self.aggregators.items()
            ] + [(symbol, deriver, source) for (symbol, source), deriver in self.derivers.items()]
            for symbol, closer, source in closers:
                feed = self._registry.live_feed_of(symbol)
                if feed is None or (source is not None and self.continuity.parked(symbol, source)):
                    continue  # replays close by data; a series being backfilled waits
                for bar in closer.on_clock(now):
                    if not self._running():
                        return
                    await self._inbox.put(feed, built(bar))

    # ------------------------------------------------------------------ calendars
    def calendar_of(self, symbol: str) -> Any:
        """The calendar a feed serving ``symbol`` declares, else its asset class's."""
        calendar = self._calendars.get(symbol)
        if calendar is None:
            calendar = self._registry.declared_calendar(symbol)
            if calendar is None:
                from lean_data.series.calendars import calendar_for

                calendar = calendar_for(
                    symbol,
                    self._registry.asset_class_of(symbol),
                    extended_hours=self.config.extended_hours,
                )
            self._calendars[symbol] = calendar
        return calendar

    def asset_class_of(self, symbol: str) -> AssetClass | None:
        """What a feed serving ``symbol`` says it is (venue metadata), else None.

        Callers fall back to the name (:func:`~lean_data.symbols.classify_symbol`).
        """
        return self._registry.asset_class_of(symbol)

    async def load_calendar(self, symbol: str) -> None:
        """Load ``symbol``'s trading calendar now rather than on its first gap (once)."""
        if symbol in self._calendars:
            return
        asset_class = self.asset_class_of(symbol) or classify_symbol(symbol)
        try:
            if asset_class is AssetClass.CRYPTO:  # 24/7: nothing to load
                self.calendar_of(symbol)
            else:  # an exchange calendar takes a while to load: not on the event loop
                await asyncio.to_thread(self._preload_calendar, symbol)
        except LeanDataError as exc:  # the calendars extra is missing: every gap counts
            log.warning("no trading calendar for %s: %s", symbol, exc)
            self._calendars[symbol] = EveryInterval()

    def _preload_calendar(self, symbol: str) -> None:
        calendar = self.calendar_of(symbol)
        # sessions are computed per decade on first use; do it here, off the event loop,
        # for the years replays and live data are likely to need
        calendar.sessions(_YEAR_2000_NS, time.time_ns() + 366 * 86_400 * 10**9)

    # ------------------------------------------------------------------ requests
    def resolve(self, request: Request) -> None:
        """Start answering a parked series' request (history, storage, warm-up)."""
        if not self._running():  # stopping: deliver what is parked as is
            self._answer_ready(Resume(request, [], False, answered=False))
            return
        task = self._spawn(f"resolve:{request.symbol}", self._answer, request)
        self._resolving[(request.symbol, request.resolution)] = (task, request)

    async def release_parked(self) -> None:
        """At stop: give up pending backfills; the bars they held are delivered as they are."""
        pending = list(self._resolving.values())
        self._resolving.clear()
        for task, _ in pending:
            task.cancel()
        await asyncio.gather(*(task for task, _ in pending), return_exceptions=True)
        for _, request in pending:
            self._answer_ready(Resume(request, [], False, answered=False))

    async def _answer(self, request: Request) -> None:
        fill: list[TradeBar] = []
        empty = False
        answered = True
        try:
            async with asyncio.timeout(self.config.backfill_timeout_s):
                if request.reason == "seed":
                    await self._seed(request)
                elif request.reason == "warmup":
                    fill = await self._warmup_bars(request)
                else:
                    fill = await self.history(request.feed, request.symbol, request.start,
                                              request.end, request.resolution)  # fmt: skip
                    empty = not fill
        except Exception as exc:  # a failed backfill must not hold live data back
            answered = False
            timed_out = isinstance(exc, TimeoutError)
            kind = "backfill_timeout" if timed_out else "backfill_failed"
            self._metrics.increment_errors(feed=request.feed, kind=kind)
            self._record_error(
                kind,
                f"{request.reason} {request.symbol} {request.resolution} "
                f"[{request.start}, {request.end}) from {request.feed}: "
                + (f"no answer in {self.config.backfill_timeout_s} s" if timed_out else repr(exc))
                + "; the parked bars go on, the gap stays unresolved",
                feed=request.feed,
                symbol=request.symbol,
            )
        self._resolving.pop((request.symbol, request.resolution), None)
        self._answer_ready(Resume(request, fill, empty, answered))

    async def _seed(self, request: Request) -> None:
        """Seed a restarted live series from its newest stored bar, if that one is sane."""
        last = None
        if self._persistence is not None:
            last = await self._persistence.last_bar(
                request.feed,
                request.symbol,
                request.resolution,
                committed_only=True,
                sane_before=time.time_ns() + self.config.validation.clock_skew_ns,
            )
        if last is not None and self._validator.screen(last) is not None:
            self._record_error(
                "seed_ignored",
                f"the newest stored bar of {request.symbol} {request.resolution} is impossible "
                f"({self._validator.screen(last)}): the series starts from live data",
                feed=request.feed,
                symbol=request.symbol,
            )
            last = None
        self.continuity.seed(
            request.symbol, request.resolution, None if last is None else last.ts_event
        )

    def _answer_ready(self, resume: Resume) -> None:
        """Queue an answer for the pipeline (not in the inbox: that may be full).

        An idle pipeline is woken by a ``WAKE`` in the inbox, so ``wait_idle`` (which joins
        the inbox) also waits for the answer to be taken.
        """
        self.answers.append(resume)
        inbox = self._inbox
        if not inbox:
            inbox.force("", WAKE)

    def bound_parked(self, symbol: str, resolution: Resolution, feed: str) -> Later | None:
        """Bound the bars held behind one series' request.

        At ``config.parked_max`` bars, a live feed's request is abandoned (as at its
        deadline): the parked bars are delivered as they are and the gap stays unresolved;
        other series never wait for it. A replay (not live: no real time to keep up with)
        waits for the answer instead, which its deadline bounds.
        """
        if self.continuity.parked(symbol, resolution) < self.config.parked_max:
            return None
        pending = self._resolving.get((symbol, resolution))
        if pending is None:
            return None
        task, request = pending
        if not self._registry.live(feed):
            return [AwaitAnswer(task)]
        del self._resolving[(symbol, resolution)]
        task.cancel()
        self._metrics.increment_errors(feed=request.feed, kind="backfill_abandoned")
        self._record_error(
            "backfill_abandoned",
            f"{request.reason} {request.symbol} {request.resolution} "
            f"[{request.start}, {request.end}) from {request.feed}: "
            f"{self.config.parked_max} bars waited for it; they go on, the gap stays unresolved",
            feed=request.feed,
            symbol=request.symbol,
        )
        self._answer_ready(Resume(request, [], False, answered=False))
        return None

    async def history(
        self, feed_name: str, symbol: str, start: int, end: int, resolution: Resolution
    ) -> list[TradeBar]:
        """Ask ``feed_name`` for ``symbol``'s ``resolution`` bars with open time in [start, end)."""
        feed = self._registry.feeds.get(feed_name)
        if feed is None:
            return []
        items = await feed.get_historical_data(symbol, start, end, resolution)
        return [
            x for x in items
            if isinstance(x, TradeBar) and x.resolution is resolution and start <= x.ts_event < end
        ]  # fmt: skip

    async def _warmup_bars(self, request: Request) -> list[TradeBar]:
        step = request.resolution.nanos
        found: list[TradeBar] = []
        for factor in _WARMUP_WINDOWS:
            start = request.end - factor * request.warmup * step
            found = await self.history(request.feed, request.symbol, start, request.end,
                                       request.resolution)  # fmt: skip
            if len(found) >= request.warmup:
                break
        found.sort(key=lambda bar: bar.ts_event)
        return found[-request.warmup :]

    async def settle(self, resume: Resume) -> Released:
        """Hand an answer to continuity; return the bars it lets go, to deliver in order.

        History is screened like live data first; the gap is recorded (errors table, and
        coverage when the feed says it is empty); a further request is started.
        """
        request = resume.request
        fill = [bar for bar in resume.fill if self._screened_history(request, bar)]
        out, again = self.continuity.resume(
            request.symbol,
            request.resolution,
            fill,
            empty=resume.empty,
            through=request.end if request.reason == "gap" else None,
            answered=resume.answered,
        )
        filled = sum(1 for _, bar in out if bar.backfilled)
        if request.reason == "gap" and (request.missing or filled):
            self._metrics.increment_errors(feed=request.feed, kind="gap")
            self._record_error(
                "gap",
                f"{request.symbol} {request.resolution}: [{request.start}, {request.end}) "
                f"expected {request.missing} bars, backfilled {filled}"
                + (" (known empty)" if resume.empty else ""),
                feed=request.feed,
                symbol=request.symbol,
            )
        if request.reason == "gap" and self._persistence is not None and resume.empty:
            await self._persistence.record_coverage(
                request.feed, request.symbol, request.resolution, request.start,
                request.end, empty=True,
            )  # fmt: skip
        released: Released = [(feed, bar, False) for feed, bar in out]
        late, self.continuity.late_bars = self.continuity.late_bars, []
        released.extend((feed, bar, True) for feed, bar in late)
        if again is not None:
            self.resolve(again)
        return released

    def _screened_history(self, request: Request, bar: TradeBar) -> bool:
        screened = self._validator.screen(bar)  # history() kept TradeBars only
        if screened is None:
            return True
        # not called back: a replay's history is the file whose bar was just judged
        self._metrics.increment_errors(feed=request.feed, kind="invalid_history")
        self._record_error(
            "invalid_history",
            f"a history bar of {request.symbol} was not used: {screened.message}",
            feed=request.feed,
            symbol=request.symbol,
        )
        return False

    async def record_runs(self) -> None:
        """Record the intervals delivered without a hole as covered in storage."""
        persistence = self._persistence
        if persistence is None:
            return
        for feed, symbol, resolution, start, end in self.continuity.take_runs():
            await persistence.record_coverage(feed, symbol, resolution, start, end)
