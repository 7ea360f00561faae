"""Session arithmetic: the :class:`TradingCalendar` interface and the bar grid over sessions.

A calendar says when a venue trades (:meth:`TradingCalendar.sessions`); this module turns
sessions into the bar open times a venue is expected to produce, and keeps the session table
of a computed calendar (:class:`TabledCalendar`). The calendars themselves live in
:mod:`lean_data.series.calendars` (built in, and the choice per symbol) and
:mod:`lean_data.series.exchanges` (those the ``exchange_calendars`` library computes).

**The expected-bar rule.** Bars lie on a grid ``anchor + k * resolution`` (``anchor`` 0 means
aligned to the epoch, like :meth:`Resolution.floor`). A bar opening at ``t`` is expected when
its interval ``[t, t + resolution)`` overlaps a session ``[open, close)`` by any positive
length. So a partial interval at a session edge counts: with hour bars on the epoch grid the
bar opening at 09:00 New York is expected (it holds 09:30-10:00), the one at 16:00 is not
(the close is exclusive). ``expected_opens(start, end)`` clips each interval at ``end`` first,
which is what makes :meth:`~TradingCalendar.missing` right: the time up to the next bar is
covered by that bar, never by a phantom one before it.

All times are ``int`` nanoseconds since the epoch, UTC. Calendars are pure (no asyncio, no
clock reads); library-backed ones cache their session table in ten-year blocks, so repeated
calls cost a few list bisections.

**Bounds.** Session tables cover only the years :data:`FIRST_YEAR` to :data:`LAST_YEAR`
(pandas' nanosecond range); a span outside them raises ``ValueError`` before anything is
computed. The cached table is one contiguous run of blocks: a span more than a block away
from it replaces it instead of computing every decade in between. :meth:`~TradingCalendar.
count_missing` of a tabled calendar counts at most :data:`COUNT_HORIZON_NS` (ten years) past
the earlier bar, so a bar stamped in 2100, or in microseconds read as nanoseconds, costs at
most one more decade of sessions; :meth:`~TradingCalendar.missing` and
:meth:`~TradingCalendar.expected_opens` refuse spans of more than :data:`MAX_LISTED_BARS`
grid points instead of building a list that size.
"""

from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from lean_data.models import NS_PER_DAY, Resolution, datetime_to_ns, ns_to_datetime

__all__ = [
    "COUNT_HORIZON_NS",
    "FIRST_YEAR",
    "LAST_YEAR",
    "MAX_LISTED_BARS",
    "NEW_YORK",
    "Session",
    "TabledCalendar",
    "TradingCalendar",
    "local_ns",
    "step_of",
]

Session = tuple[int, int]
"""A trading session ``(open_ns, close_ns)``: open inclusive, close exclusive, UTC ns."""

NEW_YORK = ZoneInfo("America/New_York")
_BLOCK_YEARS = 10
_MARGIN_NS = 7 * NS_PER_DAY  # a session overlapping a span is labelled within a week of it

FIRST_YEAR = 1678
"""The first year a session table covers (pandas' nanosecond timestamps start in 1677)."""
LAST_YEAR = 2261
"""The last year a session table covers (pandas' nanosecond timestamps end in April 2262)."""
COUNT_HORIZON_NS = 3653 * NS_PER_DAY
"""How far past the earlier bar a tabled calendar's :meth:`~TradingCalendar.count_missing`
counts (ten years): a longer jump is counted for its first ten years only."""
MAX_LISTED_BARS = 2_000_000
"""The most grid points :meth:`~TradingCalendar.expected_opens` and
:meth:`~TradingCalendar.missing` will walk; use :meth:`~TradingCalendar.count_missing`."""


def step_of(resolution: Resolution | str) -> int:
    """Return the bar period in ns; a tick resolution has none."""
    step = Resolution.parse(resolution).nanos
    if step <= 0:
        raise ValueError(f"expected a bar resolution such as '1m' or '1h', got {resolution!s}")
    return step


class TradingCalendar(ABC):
    """The sessions of a venue, and the bar open times they imply.

    Subclasses implement :meth:`sessions`; the other methods derive from it (a subclass may
    override :meth:`is_open` for speed).
    """

    name: str = "calendar"

    @abstractmethod
    def sessions(self, start_ns: int, end_ns: int) -> list[Session]:
        """Return the ``[open, close)`` sessions overlapping ``[start_ns, end_ns)``, in order.

        Sessions are whole (not clipped to the span), except for :class:`AlwaysOpen`, whose
        one unbounded session is returned as the span itself.

        Raises:
            ValueError: the span lies outside the years the calendar library can compute.
        """

    def is_open(self, ts_ns: int) -> bool:
        """Return True when the instant ``ts_ns`` lies inside a session."""
        return bool(self.sessions(ts_ns, ts_ns + 1))

    def expected_opens(
        self,
        start_ns: int,
        end_ns: int,
        resolution: Resolution | str,
        *,
        anchor_ns: int = 0,
    ) -> list[int]:
        """Return the open times in ``[start_ns, end_ns)`` of the bars the venue would produce.

        Open times lie on the grid ``anchor_ns + k * resolution``; a bar is expected when the
        part of its interval before ``end_ns`` overlaps a session by any positive length (see
        the module docstring).

        Raises:
            ValueError: ``resolution`` is TICK (no period), the span is outside the
                calendar's years, or it holds more than :data:`MAX_LISTED_BARS` grid points.
        """
        step = step_of(resolution)
        first = start_ns + (anchor_ns - start_ns) % step
        if first >= end_ns:
            return []
        if (end_ns - first) // step >= MAX_LISTED_BARS:
            raise ValueError(
                f"expected a span of at most {MAX_LISTED_BARS} {resolution!s} bars to list, got "
                f"[{start_ns}, {end_ns}); use count_missing/count_expected to count them"
            )
        opens: list[int] = []
        free = first  # the first grid point not yet emitted
        for session_open, session_close in self.sessions(first, end_ns):
            low = max(free, session_open - step + 1)
            bar_open = low + (anchor_ns - low) % step
            high = min(end_ns, session_close)
            if bar_open < high:
                opens.extend(range(bar_open, high, step))
                free = opens[-1] + step
        return opens

    def count_expected(
        self,
        start_ns: int,
        end_ns: int,
        resolution: Resolution | str,
        *,
        anchor_ns: int = 0,
    ) -> int:
        """Return ``len(expected_opens(start_ns, end_ns, resolution, anchor_ns=anchor_ns))``.

        Computed per session, never per bar: the cost is the number of sessions in the span.

        Raises:
            ValueError: ``resolution`` is TICK, or the span is outside the calendar's years.
        """
        step = step_of(resolution)
        first = start_ns + (anchor_ns - start_ns) % step
        if first >= end_ns:
            return 0
        count = 0
        free = first  # the first grid point not yet counted
        for session_open, session_close in self.sessions(first, end_ns):
            low = max(free, session_open - step + 1)
            bar_open = low + (anchor_ns - low) % step
            high = min(end_ns, session_close)
            if bar_open < high:
                bars = (high - bar_open + step - 1) // step
                count += bars
                free = bar_open + bars * step
        return count

    def missing(
        self, prev_open_ns: int, next_open_ns: int, resolution: Resolution | str
    ) -> list[int]:
        """Return the expected bar open times strictly between two consecutive bars.

        The grid goes through ``prev_open_ns`` (the series' own phase, whatever its
        alignment). A weekend, a holiday or a daily halt between the bars yields nothing;
        ``next_open_ns <= prev_open_ns`` (a duplicate or an out-of-order bar) yields nothing.
        To ask only how many, use :meth:`count_missing`, whose cost does not grow with the
        span.

        For daily bars stamped at local midnight, a DST change inside the gap can shift a
        reported open by the DST offset (the grid is in UTC); the count is still right.

        Raises:
            ValueError: ``resolution`` is TICK, the span is outside the calendar's years, or
                it holds more than :data:`MAX_LISTED_BARS` grid points.
        """
        step = step_of(resolution)
        return self.expected_opens(
            prev_open_ns + step, next_open_ns, resolution, anchor_ns=prev_open_ns
        )

    def count_missing(
        self, prev_open_ns: int, next_open_ns: int, resolution: Resolution | str
    ) -> int:
        """Return how many bars are expected strictly between two consecutive bars.

        Equal to ``len(missing(prev_open_ns, next_open_ns, resolution))`` for a span of up to
        :data:`COUNT_HORIZON_NS`; a longer jump (a bar stamped decades ahead, or in the
        wrong unit) is counted for its first :data:`COUNT_HORIZON_NS` only, so the answer
        is a lower bound and the work stays bounded: one pass over the sessions in the
        counted span, at most one new ten-year block of sessions computed.
        :class:`AlwaysOpen` counts any span exactly, by arithmetic.

        Raises:
            ValueError: ``resolution`` is TICK, or ``prev_open_ns`` lies outside the
                calendar's years.
        """
        step = step_of(resolution)
        if next_open_ns - prev_open_ns <= step:
            return 0
        end = min(next_open_ns, prev_open_ns + COUNT_HORIZON_NS)
        return self.count_expected(prev_open_ns + step, end, resolution, anchor_ns=prev_open_ns)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


@dataclass(frozen=True, slots=True)
class _Table:
    """Sorted, disjoint sessions covering the label years ``[first_year, end_year)``."""

    opens: list[int]
    closes: list[int]
    first_year: int
    end_year: int
    low_ns: int  # Jan 1 of first_year, UTC
    high_ns: int  # Jan 1 of end_year, UTC


def _jan1_ns(year: int) -> int:
    return datetime_to_ns(datetime(year, 1, 1))


_FIRST_NS = _jan1_ns(FIRST_YEAR)
_END_NS = _jan1_ns(LAST_YEAR + 1)


def _year_of(ns: int) -> int:
    return ns_to_datetime(ns).year


def local_ns(day: date, clock: time, zone: ZoneInfo) -> int:
    return datetime_to_ns(datetime.combine(day, clock, tzinfo=zone))


class TabledCalendar(TradingCalendar):
    """A calendar whose sessions are computed per ten-year block and then cached."""

    def __init__(self) -> None:
        self._table = _Table([], [], 0, 0, 0, 0)

    @abstractmethod
    def _compute(self, first_year: int, last_year: int) -> list[Session]:
        """Return the sessions labelled in years ``first_year..last_year`` (inclusive)."""

    def _ensure(self, start_ns: int, end_ns: int) -> _Table:
        """Return a table covering the span, computing the ten-year blocks it lacks.

        The table stays one contiguous run: it grows when the span is at most one block
        away from it, and is replaced otherwise (a far span never computes the decades
        in between).

        Raises:
            ValueError: the span reaches outside FIRST_YEAR..LAST_YEAR.
        """
        table = self._table
        if table.low_ns + _MARGIN_NS <= start_ns and end_ns + _MARGIN_NS <= table.high_ns:
            return table
        if start_ns < _FIRST_NS or end_ns > _END_NS:
            raise ValueError(
                f"expected a span within the years {FIRST_YEAR}-{LAST_YEAR} that {self.name} "
                f"sessions can be computed for, got [{start_ns}, {end_ns}) ns"
            )
        first = (_year_of(start_ns - _MARGIN_NS) - 1) // _BLOCK_YEARS * _BLOCK_YEARS
        end = (_year_of(end_ns + _MARGIN_NS) + 1) // _BLOCK_YEARS * _BLOCK_YEARS + _BLOCK_YEARS
        first, end = max(first, FIRST_YEAR), min(end, LAST_YEAR + 1)
        loaded = table.end_year > table.first_year
        near = first <= table.end_year + _BLOCK_YEARS and end >= table.first_year - _BLOCK_YEARS
        if loaded and near:  # grow the loaded run, keeping it contiguous
            sessions = list(zip(table.opens, table.closes, strict=True))
            first, end = min(first, table.first_year), max(end, table.end_year)
            if first < table.first_year:
                sessions += self._compute(first, table.first_year - 1)
            if end > table.end_year:
                sessions += self._compute(table.end_year, end - 1)
        else:
            sessions = self._compute(first, end - 1)
        sessions.sort()
        table = _Table(
            [s[0] for s in sessions],
            [s[1] for s in sessions],
            first,
            end,
            _jan1_ns(first),
            _jan1_ns(end),
        )
        self._table = table  # one assignment: readers see the old or the new table, whole
        return table

    def sessions(self, start_ns: int, end_ns: int) -> list[Session]:
        """Return the ``[open, close)`` sessions overlapping ``[start_ns, end_ns)``, in order.

        Raises:
            ValueError: the span lies outside the years the calendar library can compute.
        """
        if end_ns <= start_ns:
            return []
        table = self._ensure(start_ns, end_ns)
        low = bisect.bisect_right(table.closes, start_ns)
        high = bisect.bisect_left(table.opens, end_ns, low)
        return list(zip(table.opens[low:high], table.closes[low:high], strict=True))

    def is_open(self, ts_ns: int) -> bool:
        """Return True when the instant ``ts_ns`` lies inside a session."""
        table = self._ensure(ts_ns, ts_ns + 1)
        index = bisect.bisect_right(table.opens, ts_ns) - 1
        return index >= 0 and ts_ns < table.closes[index]
