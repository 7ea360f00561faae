"""Continuity: one gap-free, duplicate-free series of closed bars per (symbol, resolution).

Pure state, no I/O: the engine asks :meth:`Continuity.admit` about every closed bar before
delivering it and carries out the answer; fetching history is the engine's job.

Per (symbol, resolution) the tracker knows the next expected open time. A closed bar that

- opens at the expected time is delivered and advances the series;
- opens earlier than expected and was never delivered (a hole its source could not fill in
  time, a bar that overtook another) is *late*: delivered flagged (reason ``late``) to the
  callbacks that take late bars, and stored; it does not move the series head;
- opens earlier and repeats a bar already delivered (same values, a NaN volume matching a
  NaN volume, not a higher revision) is a duplicate: dropped and counted. A bar from the
  same feed with different values, or a higher revision, is a revision: delivered with
  ``revision`` one above the last one delivered. A bar for that open time from another feed
  (failover seams) is a duplicate: the first wins. The last 128 bars delivered per series
  are remembered for this (not the bars themselves: their values); an older one is late;
- opens later than expected, with bars the calendar expects in between, is a gap (for a
  sparse source, whose quiet intervals have no bar, a *possible* gap): the bar is parked and
  the engine is asked to fetch ``[expected, bar open)`` from the feed's history. Bars of the
  series that arrive meanwhile are parked behind it. :meth:`Continuity.resume` then returns
  the fetched bars (marked ``backfilled``) followed by the parked ones, in order;
- is the first of a series of a *live* feed the engine may know from storage (a restart) is
  parked too while the engine looks up the last stored bar (:meth:`Continuity.seed`).
  Replays and backtests are never seeded: each run delivers everything it reads.

Continuity only ever sees bars whose times the validator's screen passed (int ns, after
1970, not beyond the clock skew), so no bogus time becomes a series head; a gap request
asks for at most ``max_backfill_bars`` bars (the newest part of a longer gap).

A series can also be put on hold for a warm-up (:meth:`Continuity.hold`): its first live bar
parks the series until the requested history is delivered, so the seam has neither a
duplicate nor a hole.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Final, Protocol, cast

from lean_data.models import Resolution, TradeBar
from lean_data.native import twin
from lean_data.series.decisions import Action, Decision, Request
from lean_data.slots import (
    BAR,
    BAR_CLOSE,
    BAR_HIGH,
    BAR_LOW,
    BAR_OPEN,
    BAR_RESOLUTION,
    BAR_REVISION,
    BAR_TS_EVENT,
    BAR_VOLUME,
)

__all__ = ["Action", "CalendarLike", "Continuity", "Decision", "EveryInterval", "Request"]

_RECENT: Final = 128  # delivered open times remembered per series (duplicates, revisions)
# What is remembered of a delivered bar: its revision and exact OHLCV, packed. Not the bar
# itself, which would stay alive for as long as it is remembered. Native layout (the slots
# never leave the process): struct packs a native int and double with a copy, where the
# standard "<" sizes go through the portable byte-array conversions (~1,000 instructions).
_SLOT: Final = struct.Struct("@q5d")
_SLOT_SIZE: Final = _SLOT.size
_PACK_INTO: Final = _SLOT.pack_into


def _remember_bar(values: bytearray, opens: array[int], slot: int, f: tuple[Any, ...]) -> None:
    """Pack a bar's revision and OHLCV (``f``: :data:`BAR`'s tuple) as its slot, then set
    its open time; raises (struct.error) before writing anything when a value does not
    fit."""
    _PACK_INTO(  # untyped tuple items: to struct as the objects they are
        values, slot * _SLOT_SIZE,
        f[BAR_REVISION], f[BAR_OPEN], f[BAR_HIGH], f[BAR_LOW], f[BAR_CLOSE], f[BAR_VOLUME],
    )  # fmt: skip
    opens[slot] = f[BAR_TS_EVENT]


_REMEMBER_BAR: Final = twin("lean_data._rows", "remember_bar", _remember_bar)
_BAR: Final = BAR  # a C static, not a module-dict lookup per use (see quality/screen.py)


class CalendarLike(Protocol):
    """What continuity needs from a trading calendar."""

    def count_missing(self, prev_open_ns: int, next_open_ns: int, resolution: Resolution) -> int:
        """Return how many bars are expected strictly between two consecutive bars.

        Its cost must not grow with ``next_open_ns - prev_open_ns``: a bar stamped decades
        ahead (or in the wrong unit) is one call like any other.
        """


class EveryInterval:
    """The calendar of a source that trades every interval (crypto, 24/7)."""

    def count_missing(self, prev_open_ns: int, next_open_ns: int, resolution: Resolution) -> int:
        """Return how many grid points lie strictly between the two (arithmetic, any span).

        Raises:
            ValueError: ``resolution`` has no period (TICK).
        """
        step = resolution.nanos
        if step <= 0:
            raise ValueError(f"expected a bar resolution with a period, got {resolution!s}")
        return max(0, (next_open_ns - prev_open_ns - 1) // step)


_PARKED: Final = Decision(Action.PARKED)
_DUPLICATE: Final = Decision(Action.DUPLICATE)


class ContinuityState:
    """State of one series.

    The last ``_RECENT`` delivered bars (and late ones) are remembered in a ring of slots,
    one per open time: ``opens[i]``, ``feeds[i]`` and ``_SLOT`` at ``values[i * _SLOT_SIZE]``.
    The ring grows to ``_RECENT`` slots, then ``head`` (the slot the next bar takes) wraps.
    """

    __slots__ = (
        "feeds", "head", "hold", "last_open", "next_open", "opens", "parked", "request",
        "run_feed", "run_start", "seeded", "values",
    )  # fmt: skip

    def __init__(self) -> None:
        self.next_open = -1  # unknown until the first bar (or storage) says
        self.last_open = -1
        self.opens = array("q")
        self.feeds: list[str] = []
        self.values = bytearray()
        self.head = 0
        self.parked: list[tuple[str, TradeBar]] | None = None
        self.seeded = False
        self.hold = 0  # warm-up bars wanted before the first live bar
        self.run_feed = ""  # the feed of the current contiguous run of delivered bars
        self.run_start = -1
        self.request: Request | None = None  # what a parked series waits for


def _values(bar: TradeBar) -> tuple[float, ...]:
    return (bar.open, bar.high, bar.low, bar.close, bar.volume)


def _same(values: Sequence[float], seen: Sequence[float]) -> bool:
    """Return whether two bars' values are equal, NaN equal to NaN (an unknown volume)."""
    return all(a == b or (a != a and b != b) for a, b in zip(values, seen, strict=True))


def _remember(series: ContinuityState, feed: str, bar: TradeBar, slot: int = -1) -> None:
    """Remember a delivered bar in ``slot``, or (-1) in the next one of the ring."""
    packed = _SLOT.pack(bar.revision, *_values(bar))  # first: a bad value changes nothing
    if slot < 0:
        slot = series.head
        series.head = slot + 1 if slot + 1 < _RECENT else 0
        if slot == len(series.feeds):  # the ring is still growing
            series.feeds.append(feed)
            series.opens.append(bar.ts_event)
            series.values += packed
            if slot + 1 == _RECENT:  # full: drop the growth headroom (~7%), for good
                series.values = bytearray(series.values)
            return
    series.feeds[slot] = feed
    series.opens[slot] = bar.ts_event
    start = slot * _SLOT_SIZE
    series.values[start : start + _SLOT_SIZE] = packed


def _find(series: ContinuityState, ts: int, period: int) -> int:
    """Return the slot remembering open time ``ts`` (there is at most one), or -1."""
    opens = series.opens
    if period > 0:  # first guess: one slot per period back from the newest bar
        guess = series.head - 1 - (series.last_open - ts) // period
        if -len(opens) <= guess < len(opens) and opens[guess] == ts:
            return guess % len(opens)
    try:
        return opens.index(ts)
    except ValueError:
        return -1


class Continuity:
    """The continuity tracker of one engine.

    Args:
        calendar_of: returns the trading calendar of a symbol (gaps are judged against it).
        sparse: returns True when a feed's source leaves intervals without trades empty.
        seed_from_storage: ask for a storage lookup before the first bar of every series of
            a live feed (of every one in :attr:`stored_series`, when that is known).
        live: returns True when a feed is live (default: every feed is); only live series
            are seeded from storage.
        max_backfill_bars: the most bars one gap request asks for.
    """

    def __init__(
        self,
        calendar_of: Callable[[str], CalendarLike] | None = None,
        sparse: Callable[[str], bool] | None = None,
        *,
        seed_from_storage: bool = False,
        live: Callable[[str], bool] | None = None,
        max_backfill_bars: int = 10_000,
    ) -> None:
        self._calendar_of = calendar_of or (lambda symbol: EveryInterval())
        self._sparse = sparse or (lambda feed: False)
        self._live = live or (lambda feed: True)
        self.max_backfill_bars = max_backfill_bars
        self.seed_from_storage = seed_from_storage
        self.stored_series: set[tuple[str, str, Resolution]] | None = None
        """(feed, symbol, resolution) of the series storage held when the engine started,
        when known: a live series not among them has no stored bar to be seeded from, so
        its first bar is not parked for a lookup (None: every one is looked up)."""
        self._series: dict[tuple[str, Resolution], ContinuityState] = {}
        self.delivered = 0
        self.duplicates = 0
        self.revisions = 0
        self.gaps = 0
        self.gap_checks = 0
        self.missing_reported = 0
        self.backfilled = 0
        self.known_empty = 0
        self.late = 0
        self._runs: list[tuple[str, str, Resolution, int, int]] = []
        self.late_bars: list[tuple[str, TradeBar]] = []
        """Late bars met while resuming a series; the engine stores and clears them."""
        self._resumed_duplicates = 0

    # ----------------------------------------------------------------- the hot path
    def admit_fast(self, feed: str, bar: TradeBar) -> Decision | None:
        """Like :meth:`admit`, but None when the bar is delivered as it is (the common case)."""
        return self.admit_in(self.series_of(bar.symbol, bar.resolution), feed, bar)

    def series_of(self, symbol: str, resolution: Resolution) -> ContinuityState:
        """Return the state of a series (made on first use), for :meth:`admit_in`."""
        series = self._series.get((symbol, resolution))
        if series is None:
            series = self._series[(symbol, resolution)] = ContinuityState()
        return series

    def admit_in(self, series: ContinuityState, feed: str, bar: TradeBar) -> Decision | None:
        """:meth:`admit_fast` with the bar's series (:meth:`series_of`) at hand.

        The next bar of a running series from the feed already delivering it costs a few
        attribute reads and one slot write; everything else goes through :meth:`_decide`.
        A hand-inlined copy of :meth:`_advance` / :func:`_remember` for that case, held to
        them (answers and state) by tests/test_continuity_paths.py.
        """
        f = _BAR(bar)  # every field in one call (lean_data.slots)
        ts: int = f[BAR_TS_EVENT]
        if ts == series.next_open and series.parked is None and feed == series.run_feed:
            feeds = series.feeds
            i = series.head
            if i < len(feeds):  # the ring is full: the oldest slot takes the bar
                _REMEMBER_BAR(series.values, series.opens, i, f)
                feeds[i] = feed
                series.head = i + 1 if i + 1 < _RECENT else 0
            else:
                _remember(series, feed, bar)
            series.last_open = ts
            resolution: Resolution = f[BAR_RESOLUTION]
            series.next_open = ts + resolution.nanos
            self.delivered += 1
            return None
        return self._decide(series, feed, bar)

    def admit(self, feed: str, bar: TradeBar) -> Decision:
        """Decide about one closed bar (not backfilled) from ``feed``."""
        return self._decide(self.series_of(bar.symbol, bar.resolution), feed, bar)

    def _decide(self, series: ContinuityState, feed: str, bar: TradeBar) -> Decision:
        if series.parked is not None:
            series.parked.append((feed, bar))
            return _PARKED
        ts = bar.ts_event
        if ts == series.next_open:
            self._advance(series, feed, bar)
            return Decision(Action.DELIVER, bar)
        if series.next_open < 0:  # first bar of the series
            if series.hold:
                return self._park(series, feed, bar, "warmup", ts, ts, 0)
            if self.seed_from_storage and not series.seeded and self._live(feed):
                stored = self.stored_series
                if stored is None or (feed, bar.symbol, bar.resolution) in stored:
                    return self._park(series, feed, bar, "seed", ts, ts, 0)
                series.seeded = True  # nothing stored to seed from: live data starts it
            self._advance(series, feed, bar)
            return Decision(Action.DELIVER, bar)
        if ts < series.next_open:
            return self._earlier(series, feed, bar)
        expected = self._calendar_of(bar.symbol).count_missing(series.last_open, ts, bar.resolution)
        if not expected:  # a weekend, a night, a session break: not a gap
            self._advance(series, feed, bar)
            return Decision(Action.DELIVER, bar)
        sparse = self._sparse(feed)
        return self._park(series, feed, bar, "gap", series.next_open, ts, 0 if sparse else expected)

    def _advance(self, series: ContinuityState, feed: str, bar: TradeBar) -> None:
        ts = bar.ts_event
        if ts != series.next_open or feed != series.run_feed:
            self._close_run(series, bar.symbol, bar.resolution)
            series.run_feed, series.run_start = feed, ts
        _remember(series, feed, bar)
        series.last_open = ts
        series.next_open = ts + bar.resolution.nanos
        self.delivered += 1

    def _earlier(self, series: ContinuityState, feed: str, bar: TradeBar) -> Decision:
        slot = _find(series, bar.ts_event, bar.resolution.nanos)
        if slot < 0:
            # a bar for a hole behind the head (a gap its source could not fill then):
            # subscribers have moved on, so it goes to storage only
            _remember(series, feed, bar)
            self.late += 1
            return Decision(Action.LATE, bar)
        if series.feeds[slot] != feed:
            self.duplicates += 1
            return _DUPLICATE
        seen_revision, *seen = _SLOT.unpack_from(series.values, slot * _SLOT_SIZE)
        if bar.revision <= seen_revision and _same(_values(bar), seen):
            self.duplicates += 1
            return _DUPLICATE
        revised = bar if bar.revision > seen_revision else replace(bar, revision=seen_revision + 1)
        _remember(series, feed, revised, slot)
        self.revisions += 1
        return Decision(Action.DELIVER, revised)

    def _park(
        self, series: ContinuityState, feed: str, bar: TradeBar, reason: str, start: int, end: int,
        missing: int,
    ) -> Decision:  # fmt: skip
        series.parked = [(feed, bar)]
        if reason == "gap":  # ask for the newest part of a long gap only
            start = max(start, end - self.max_backfill_bars * bar.resolution.nanos)
        request = Request(bar.symbol, bar.resolution, feed, start, end, missing, reason,
                          series.hold)  # fmt: skip
        series.request = request
        if reason == "gap":
            self.gap_checks += 1
        return Decision(Action.FETCH, request=request)

    def _close_run(self, series: ContinuityState, symbol: str, resolution: Resolution) -> None:
        if series.run_start >= 0 and series.next_open > series.run_start:
            self._runs.append(
                (series.run_feed, symbol, resolution, series.run_start, series.next_open)
            )
        series.run_start = -1

    def take_runs(self) -> list[tuple[str, str, Resolution, int, int]]:
        """Return the intervals delivered without a hole since the last call, and restart.

        Each is (feed, symbol, resolution, start, end): every bar the series expected in
        [start, end) was delivered from that feed (or the source had none). The engine
        records them as covered, so history queries need not ask the feed for them.
        """
        for (symbol, resolution), series in self._series.items():
            if series.parked is None and series.run_start >= 0:
                self._close_run(series, symbol, resolution)
                series.run_start = series.next_open
        runs, self._runs = self._runs, []
        return runs

    # ----------------------------------------------------------------- resolution
    def seed(self, symbol: str, resolution: Resolution, last_open: int | None) -> None:
        """Tell the series the open time of its newest stored bar (before :meth:`resume`)."""
        series = self._series.setdefault((symbol, resolution), ContinuityState())
        series.seeded = True
        if last_open is not None and last_open > series.last_open:
            series.last_open = last_open
            series.next_open = last_open + resolution.nanos

    def hold(self, symbol: str, resolution: Resolution, bars: int) -> None:
        """Deliver ``bars`` historical bars before the first live bar of the series."""
        series = self._series.setdefault((symbol, resolution), ContinuityState())
        if series.next_open < 0:
            series.hold = bars

    def resume(
        self,
        symbol: str,
        resolution: Resolution,
        fill: list[TradeBar],
        *,
        empty: bool = False,
        through: int | None = None,
        answered: bool = True,
    ) -> tuple[list[tuple[str, TradeBar]], Request | None]:
        """Release a parked series after its request was answered.

        Args:
            symbol, resolution: the series.
            fill: bars fetched for the request (any order; duplicates and bars outside the
                open interval are dropped), delivered marked ``backfilled``.
            empty: the source had nothing for the interval (known empty).
            through: the end of the requested interval: whatever the answer, the series
                goes on from there (a hole the source cannot fill is not asked for again
                by the bars parked behind it).
            answered: False when the request failed: the hole is skipped but not counted
                as covered.

        Returns:
            (feed, bar) pairs to deliver in order, and a new request when a parked bar
            revealed another gap (the bars after it stay parked).
        """
        series = self._series[(symbol, resolution)]
        parked = series.parked or []
        request, series.request = series.request, None
        series.parked = None
        series.hold = 0
        series.seeded = True  # asked once, answered or not: never again
        out: list[tuple[str, TradeBar]] = []
        feed = parked[0][0] if parked else ""
        stop = parked[0][1].ts_event if parked else None
        for bar in sorted(fill, key=lambda b: b.ts_event):
            if stop is not None and bar.ts_event >= stop:
                continue
            if series.next_open >= 0 and bar.ts_event < series.next_open:
                continue
            if not bar.backfilled or not bar.closed:
                bar = replace(bar, backfilled=True, closed=True)
            self._advance(series, feed, bar)
            self.backfilled += 1
            out.append((feed, bar))
        filled = len(out)
        if request is not None and request.reason == "gap" and (request.missing or filled):
            self.gaps += 1
            self.missing_reported += request.missing or filled
        if empty:
            self.known_empty += 1
        if through is not None and through > series.next_open >= 0:
            if not answered:
                self._close_run(series, symbol, resolution)
            series.last_open = through - resolution.nanos
            series.next_open = through
            if not answered:
                series.run_feed, series.run_start = feed, through
        for index, (source, bar) in enumerate(parked):
            decision = self.admit(source, bar)
            if decision.action is Action.DELIVER and decision.bar is not None:
                out.append((source, decision.bar))
            elif decision.action is Action.LATE and decision.bar is not None:
                self.late_bars.append((source, decision.bar))
            elif decision.action is Action.DUPLICATE:
                self._resumed_duplicates += 1
            elif decision.action is Action.FETCH:
                # admit() parked this bar; not series.parked: mypy (so mypyc) takes it for None
                again = self._series[(symbol, resolution)].parked
                cast(list[tuple[str, TradeBar]], again).extend(parked[index + 1 :])
                return out, decision.request
        return out, None

    def take_resumed_duplicates(self) -> int:
        """Return how many parked bars :meth:`resume` dropped as duplicates since the last call.

        The engine counts them in its outcomes, as it counts the duplicates :meth:`admit` finds.
        """
        count, self._resumed_duplicates = self._resumed_duplicates, 0
        return count

    def parked(self, symbol: str, resolution: Resolution) -> int:
        """Return how many bars of a series wait for a request to be answered."""
        series = self._series.get((symbol, resolution))
        return len(series.parked) if series is not None and series.parked else 0

    def next_open(self, symbol: str, resolution: Resolution) -> int | None:
        """Return the next expected open time of a series (None before its first bar)."""
        series = self._series.get((symbol, resolution))
        return series.next_open if series is not None and series.next_open >= 0 else None

    def statistics(self) -> dict[str, int]:
        """Return the counters: delivered, duplicates, revisions, gaps, backfilled, ..."""
        return {
            "series": len(self._series),
            "delivered": self.delivered,
            "duplicates": self.duplicates,
            "revisions": self.revisions,
            "gaps": self.gaps,
            "gap_checks": self.gap_checks,
            "missing_reported": self.missing_reported,
            "backfilled": self.backfilled,
            "known_empty": self.known_empty,
            "late": self.late,
            "parked": sum(len(s.parked or ()) for s in self._series.values()),
        }
