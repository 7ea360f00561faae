"""The engine's series work: continuity answers, warm-up, restart, bars from trades, derived bars.

A mixin of :class:`~lean_data.engine.DataEngine`, kept apart so the engine module stays the
data path. The policy is pure (:mod:`lean_data.series.continuity`, :mod:`lean_data.series.resample`,
:mod:`lean_data.series.aggregation`); this module does its I/O: history requests, storage lookups,
coverage records and the bar clock. Every bar it produces is handed to the pipeline, which
stays the one path to callbacks and storage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from lean_data.config import Config
from lean_data.engine.metrics import DataMetrics
from lean_data.errors import LeanDataError
from lean_data.feeds.base import DataFeed
from lean_data.inbox import Inbox
from lean_data.models import AssetClass, MarketData, Resolution, TradeBar
from lean_data.quality.validator import DataValidator
from lean_data.series.continuity import Continuity, EveryInterval, Request
from lean_data.storage.sqlite import DataPersistence
from lean_data.symbols import classify_symbol

if TYPE_CHECKING:
    from lean_data.engine.state import EngineState

Later = list[tuple[Callable[..., Awaitable[Any]], tuple[Any, ...]]]
"""Steps of one item that must wait, in order: (coroutine function, arguments)."""

__all__ = ["WAKE", "Later", "Resume", "SeriesMixin"]

log = logging.getLogger("lean_data.engine")

_YEAR_2000_NS = 946_684_800 * 10**9
WAKE = object()  # wakes an idle pipeline when a backfill was answered
_WARMUP_WINDOWS = (1, 3, 10, 40)  # history windows tried for a warm-up, in multiples of N bars


class Resume:
    """An inbox entry: a parked series' request was answered (or abandoned at stop)."""

    __slots__ = ("answered", "empty", "fill", "request")

    def __init__(
        self, request: Request, fill: list[TradeBar], empty: bool, answered: bool = True
    ) -> None:
        self.request, self.fill, self.empty, self.answered = request, fill, empty, answered


class SeriesMixin:
    """Continuity answers, warm-up, restart lookups, trade-built and derived bars."""

    config: Config
    continuity: Continuity
    metrics: DataMetrics
    validator: DataValidator
    persistence: DataPersistence | None
    state: EngineState
    _feeds: dict[str, DataFeed]
    _refcounts: dict[tuple[str, str], int]
    _inbox: Inbox[str] | None
    _resolving: dict[tuple[str, Resolution], tuple[asyncio.Task[None], Request]]
    _answers: deque[Resume]
    _calendars: dict[str, Any]
    _aggregators: dict[str, Any]
    _derivers: dict[tuple[str, Resolution], Any]
    _outcomes: dict[str, int]

    def _own(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        raise NotImplementedError

    def _record_error(self, kind: str, message: str, *, feed: str = "", symbol: str = "") -> None:
        raise NotImplementedError

    def _deliver(
        self, feed: str, item: MarketData, verdict: Any = None, late: bool = False
    ) -> Later | None:
        raise NotImplementedError

    async def _guarded(
        self, feed: str, item: object, step: Callable[..., Later | None], *args: Any
    ) -> None:
        raise NotImplementedError

    async def accept(self, feed: str, item: MarketData) -> None:
        raise NotImplementedError

    def _pipeline_error(self, feed: str, item: object, exc: Exception) -> None:
        raise NotImplementedError

    async def _release_parked(self) -> None:
        """At stop: give up pending backfills; the bars they held are delivered as they are."""
        pending = list(self._resolving.values())
        self._resolving.clear()
        for task, _ in pending:
            task.cancel()
        await asyncio.gather(*(task for task, _ in pending), return_exceptions=True)
        for _, request in pending:
            self._answer_ready(Resume(request, [], False, answered=False))

    def _add_derived(
        self, symbol: str, source: Resolution, targets: list[Resolution], feed: DataFeed
    ) -> None:
        from lean_data.series.resample import BarResampler

        key = (symbol, source)
        known = self._derivers.get(key)
        if known is not None:
            targets = sorted(set(known.targets) | set(targets), key=lambda r: r.nanos)
        equity = (self._asset_class_of(symbol) or classify_symbol(symbol)) is AssetClass.EQUITY
        self._derivers[key] = BarResampler(
            targets, source=source, symbol=symbol, tz="America/New_York" if equity else None
        )

    async def _bar_clock(self) -> None:
        """Close trade-built bars whose period ended, for symbols of live feeds."""
        while True:
            await asyncio.sleep(self.config.bar_clock_s)  # the clock that closes bars
            now = time.time_ns() - self.config.bar_close_delay_ns
            closers: list[tuple[str, Any, Resolution | None]] = [
                (symbol, aggregator, None) for symbol, aggregator in self._aggregators.items()
            ] + [(symbol, deriver, source) for (symbol, source), deriver in self._derivers.items()]
            for symbol, closer, source in closers:
                feed = self._live_feed_of(symbol)
                if feed is None or (source is not None and self.continuity.parked(symbol, source)):
                    continue  # replays close by data; a series being backfilled waits
                for bar in closer.on_clock(now):
                    if self.state is not _running_state():
                        return
                    await self.accept(feed, bar)

    def _live_feed_of(self, symbol: str) -> str | None:
        for feed_name, subscribed in self._refcounts:
            if subscribed == symbol and self._feeds[feed_name].live:
                return feed_name
        return None

    def _calendar_of(self, symbol: str) -> Any:
        """The calendar a feed serving ``symbol`` declares, else its asset class's."""
        calendar = self._calendars.get(symbol)
        if calendar is None:
            from lean_data.series.calendars import calendar_for

            for feed_name, subscribed in self._refcounts:
                if subscribed == symbol and calendar is None:
                    calendar = self._feeds[feed_name].calendar(symbol)
            if calendar is None:
                calendar = calendar_for(
                    symbol,
                    self._asset_class_of(symbol),
                    extended_hours=self.config.extended_hours,
                )
            self._calendars[symbol] = calendar
        return calendar

    async def _load_calendar(self, symbol: str) -> None:
        """Load ``symbol``'s trading calendar now rather than on its first gap."""
        asset_class = self._asset_class_of(symbol) or classify_symbol(symbol)
        try:
            if asset_class is AssetClass.CRYPTO:  # 24/7: nothing to load
                self._calendar_of(symbol)
            else:  # an exchange calendar takes a while to load: not on the event loop
                await asyncio.to_thread(self._preload_calendar, symbol)
        except LeanDataError as exc:  # the calendars extra is missing: every gap counts
            log.warning("no trading calendar for %s: %s", symbol, exc)
            self._calendars[symbol] = EveryInterval()

    def _preload_calendar(self, symbol: str) -> None:
        calendar = self._calendar_of(symbol)
        # sessions are computed per decade on first use; do it here, off the event loop,
        # for the years replays and live data are likely to need
        calendar.sessions(_YEAR_2000_NS, time.time_ns() + 366 * 86_400 * 10**9)

    def _asset_class_of(self, symbol: str) -> AssetClass | None:
        """What a feed serving ``symbol`` says it is (venue metadata), else None.

        Callers fall back to the name (:func:`~lean_data.symbols.classify_symbol`).
        """
        for feed_name, subscribed in self._refcounts:
            if subscribed == symbol:
                found = self._feeds[feed_name].asset_class(symbol)
                if found is not None:
                    return found
        return None

    def _live(self, feed: str) -> bool:
        source = self._feeds.get(feed)
        return source is None or source.live

    def _sparse(self, feed: str) -> bool:
        source = self._feeds.get(feed)
        return source is not None and source.sparse

    def _resolve(self, request: Request) -> None:
        """Start answering a parked series' request (history, storage, warm-up)."""
        key = (request.symbol, request.resolution)
        if self.state is not _running_state():  # stopping: deliver what is parked as is
            self._answer_ready(Resume(request, [], False, answered=False))
            return
        task = self._own(self._answer(request), f"resolve:{request.symbol}")
        self._resolving[key] = (task, request)

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
                    fill = await self._history(request.feed, request.symbol, request.start,
                                               request.end, request.resolution)  # fmt: skip
                    empty = not fill
        except Exception as exc:  # a failed backfill must not hold live data back
            answered = False
            timed_out = isinstance(exc, TimeoutError)
            self.metrics.increment_errors(
                feed=request.feed, kind="backfill_timeout" if timed_out else "backfill_failed"
            )
            self._record_error(
                "backfill_timeout" if timed_out else "backfill_failed",
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
        if self.persistence is not None:
            last = await self.persistence.last_bar(
                request.feed,
                request.symbol,
                request.resolution,
                committed_only=True,
                sane_before=time.time_ns() + self.config.validation.clock_skew_ns,
            )
        if last is not None and self.validator.screen(last) is not None:
            self._record_error(
                "seed_ignored",
                f"the newest stored bar of {request.symbol} {request.resolution} is impossible "
                f"({self.validator.screen(last)}): the series starts from live data",
                feed=request.feed,
                symbol=request.symbol,
            )
            last = None
        self.continuity.seed(
            request.symbol, request.resolution, None if last is None else last.ts_event
        )

    def _answer_ready(self, resume: Resume) -> None:
        """Queue an answer for the pipeline (not through the inbox: that may be full)."""
        self._answers.append(resume)
        inbox = self._inbox
        if inbox is not None and not inbox:
            inbox.force("", WAKE)

    def _bound_parked(self, symbol: str, resolution: Resolution, feed: str) -> Later | None:
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
        if not self._live(feed):
            return [(self._await_answer, (task,))]
        del self._resolving[(symbol, resolution)]
        task.cancel()
        self.metrics.increment_errors(feed=request.feed, kind="backfill_abandoned")
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

    async def _await_answer(self, task: asyncio.Task[None]) -> None:
        await asyncio.shield(task)
        while self._answers:
            await self._resumed_guarded(self._answers.popleft())

    async def _resumed_guarded(self, resume: Resume) -> None:
        try:
            await self._resumed(resume)
        except Exception as exc:  # its bars are guarded one by one: this is a bug
            self._pipeline_error(resume.request.feed, resume, exc)

    async def _history(
        self, feed_name: str, symbol: str, start: int, end: int, resolution: Resolution
    ) -> list[TradeBar]:
        feed = self._feeds.get(feed_name)
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
            found = await self._history(request.feed, request.symbol, start, request.end,
                                        request.resolution)  # fmt: skip
            if len(found) >= request.warmup:
                break
        found.sort(key=lambda bar: bar.ts_event)
        return found[-request.warmup :]

    async def _resumed(self, resume: Resume) -> None:
        request = resume.request
        fill = []
        for bar in resume.fill:  # history is judged like live data before continuity sees it
            screened = self.validator.screen(bar)  # _history kept TradeBars only
            if screened is None:
                fill.append(bar)
                continue
            # not called back: a replay's history is the file whose bar was just judged
            self.metrics.increment_errors(feed=request.feed, kind="invalid_history")
            self._record_error(
                "invalid_history",
                f"a history bar of {request.symbol} was not used: {screened.message}",
                feed=request.feed,
                symbol=request.symbol,
            )
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
            self.metrics.increment_errors(feed=request.feed, kind="gap")
            self._record_error(
                "gap",
                f"{request.symbol} {request.resolution}: [{request.start}, {request.end}) "
                f"expected {request.missing} bars, backfilled {filled}"
                + (" (known empty)" if resume.empty else ""),
                feed=request.feed,
                symbol=request.symbol,
            )
        if request.reason == "gap" and self.persistence is not None and resume.empty:
            await self.persistence.record_coverage(
                request.feed, request.symbol, request.resolution, request.start,
                request.end, empty=True,
            )  # fmt: skip
        for feed, bar in out:
            await self._guarded(feed, bar, self._deliver, feed, bar)
        self._outcomes["duplicate"] += self.continuity.take_resumed_duplicates()
        late, self.continuity.late_bars = self.continuity.late_bars, []
        for feed, bar in late:
            await self._guarded(feed, bar, self._deliver, feed, bar, None, True)
        if again is not None:
            self._resolve(again)

    async def _record_runs(self) -> None:
        """Record the intervals delivered without a hole as covered in storage."""
        persistence = self.persistence
        if persistence is None:
            return
        for feed, symbol, resolution, start, end in self.continuity.take_runs():
            await persistence.record_coverage(feed, symbol, resolution, start, end)


def _running_state() -> EngineState:
    from lean_data.engine.state import EngineState

    return EngineState.RUNNING
