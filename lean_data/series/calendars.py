"""Trading calendars: which bar open times a venue is expected to produce.

A gap in a bar series is an *expected* open time with no bar. What is expected depends on the
symbol's sessions: crypto trades 24/7, US equities trade 09:30-16:00 New York on exchange days,
CME Globex futures trade Sunday 17:00 - Friday 16:00 Chicago with a daily 16:00-17:00 halt.
:func:`calendar_for` picks the calendar for a symbol; :meth:`TradingCalendar.missing` answers
"which bars should lie between these two consecutive bars?", and
:meth:`TradingCalendar.count_missing` answers "how many?" without listing them (what the
engine asks: its cost never grows with the size of a jump).

Which calendar an asset class gets (see ``docs/calendars.md``):

======== ============================================================ ==========
class    calendar                                                     needs
======== ============================================================ ==========
crypto   :class:`AlwaysOpen`                                          nothing
equity   :class:`ExchangeCalendar` ``XNYS`` (``extended_hours``: 04-20) ``calendars``
index    :class:`ExchangeCalendar` ``XNYS`` regular hours              ``calendars``
future   :class:`CmeGlobexCalendar` ``"fx"``                          ``calendars``
forex    :class:`Forex24x5` (Sunday 17:00 - Friday 17:00 New York)    nothing
unknown  :class:`AlwaysOpen` (logged as a warning)                    nothing
======== ============================================================ ==========

Exchange calendars come from the maintained ``exchange_calendars`` library (the ``calendars``
extra: ``pip install 'lean-data[calendars]'``). It is imported when such a calendar is
*created*, never by ``import lean_data.series.calendars``, so pandas stays unloaded until then.

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
import functools
import importlib
import logging
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from lean_data.errors import ConfigError
from lean_data.models import (
    NS_PER_DAY,
    NS_PER_HOUR,
    AssetClass,
    Resolution,
    datetime_to_ns,
    ns_to_datetime,
)
from lean_data.symbols import classify_symbol

__all__ = [
    "COUNT_HORIZON_NS",
    "FIRST_YEAR",
    "LAST_YEAR",
    "MAX_LISTED_BARS",
    "AlwaysOpen",
    "CmeGlobexCalendar",
    "ExchangeCalendar",
    "Forex24x5",
    "Session",
    "TradingCalendar",
    "calendar_for",
    "calendar_named",
]

logger = logging.getLogger(__name__)

Session = tuple[int, int]
"""A trading session ``(open_ns, close_ns)``: open inclusive, close exclusive, UTC ns."""

_NEW_YORK = ZoneInfo("America/New_York")
_CHICAGO = ZoneInfo("America/Chicago")
_BLOCK_YEARS = 10
_MARGIN_NS = 7 * NS_PER_DAY  # a session overlapping a span is labelled within a week of it
_US_EQUITY_CODES = frozenset({"XNYS", "NYSE", "XNAS", "NASDAQ", "XASE"})
_FUTURES_VENUES = (".XCME", ".GLBX")  # Nautilus / Databento venue suffixes, e.g. 6EH4.XCME
_EXTRA_HINT = "install the calendars extra: pip install 'lean-data[calendars]'"

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


def _step(resolution: Resolution | str) -> int:
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
        step = _step(resolution)
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
        step = _step(resolution)
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
        step = _step(resolution)
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
        step = _step(resolution)
        if next_open_ns - prev_open_ns <= step:
            return 0
        end = min(next_open_ns, prev_open_ns + COUNT_HORIZON_NS)
        return self.count_expected(prev_open_ns + step, end, resolution, anchor_ns=prev_open_ns)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class AlwaysOpen(TradingCalendar):
    """A venue that never closes (crypto): every interval is a session, every bar expected."""

    name = "24/7"

    def sessions(self, start_ns: int, end_ns: int) -> list[Session]:
        """Return ``[(start_ns, end_ns)]``: the span itself is one session (empty if empty)."""
        return [(start_ns, end_ns)] if start_ns < end_ns else []

    def is_open(self, ts_ns: int) -> bool:
        """Return True: the market is always open."""
        return True

    def count_expected(
        self,
        start_ns: int,
        end_ns: int,
        resolution: Resolution | str,
        *,
        anchor_ns: int = 0,
    ) -> int:
        """Return how many grid points lie in ``[start_ns, end_ns)``: arithmetic, any span."""
        step = _step(resolution)
        first = start_ns + (anchor_ns - start_ns) % step
        return max(0, (end_ns - first + step - 1) // step)

    def count_missing(
        self, prev_open_ns: int, next_open_ns: int, resolution: Resolution | str
    ) -> int:
        """Return how many grid points lie strictly between the two (exact for any span)."""
        return max(0, (next_open_ns - prev_open_ns - 1) // _step(resolution))


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


def _local_ns(day: date, clock: time, zone: ZoneInfo) -> int:
    return datetime_to_ns(datetime.combine(day, clock, tzinfo=zone))


class _TabledCalendar(TradingCalendar):
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


class Forex24x5(_TabledCalendar):
    """Spot forex: one session a week, Sunday 17:00 to Friday 17:00 New York.

    Built in (no library). Holidays are not modelled: the interbank market trades, thinly,
    through them; a feed that publishes nothing then gets an empty backfill, recorded once.
    """

    name = "FX 24x5"

    def _compute(self, first_year: int, last_year: int) -> list[Session]:
        day = date(first_year, 1, 1)
        day += timedelta(days=(6 - day.weekday()) % 7)  # the first Sunday
        sessions: list[Session] = []
        while day.year <= last_year:
            friday = day + timedelta(days=5)
            sessions.append(
                (_local_ns(day, time(17), _NEW_YORK), _local_ns(friday, time(17), _NEW_YORK))
            )
            day += timedelta(days=7)
        return sessions


def _import_exchange_calendars() -> Any:
    """Return the ``exchange_calendars`` module.

    Raises:
        ConfigError: the library (the ``calendars`` extra) is not installed.
    """
    try:
        return importlib.import_module("exchange_calendars")
    except ImportError as exc:
        raise ConfigError(
            "an exchange trading calendar needs the exchange_calendars library, which is "
            f"not installed; {_EXTRA_HINT}"
        ) from exc


_LibraryRow = tuple[date, int, int | None, int | None, int]  # label, open, break, resume, close


def _ns_or_none(value: Any) -> int | None:
    return None if value is None or value != value else int(value.value)  # NaT != NaT


def _library_schedule(code: str, first_year: int, last_year: int) -> list[_LibraryRow]:
    """Return exchange_calendars' sessions of ``code`` labelled in the given years.

    Raises:
        ValueError: the library cannot compute those years.
    """
    library = _import_exchange_calendars()
    try:
        with warnings.catch_warnings():
            # exchange_calendars 4.x still calls pandas APIs that pandas 3 deprecates; the
            # warnings are the library's to fix and say nothing about our data.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            calendar = library.get_calendar(
                code, start=f"{first_year}-01-01", end=f"{last_year}-12-31"
            )
            schedule = calendar.schedule
            columns = [
                schedule[name].tolist() for name in ("open", "break_start", "break_end", "close")
            ]
            labels = [label.date() for label in schedule.index]
    except Exception as exc:  # the library's many error types all mean "cannot compute"
        raise ValueError(
            f"expected {code} sessions for {first_year}-{last_year}, the calendar library "
            f"failed: {type(exc).__name__}: {exc}"
        ) from exc
    return [
        (label, int(o.value), _ns_or_none(b), _ns_or_none(r), int(c.value))
        for label, o, b, r, c in zip(labels, *columns, strict=True)
    ]


class ExchangeCalendar(_TabledCalendar):
    """An exchange's regular sessions from ``exchange_calendars`` (holidays, early closes).

    Args:
        code: an exchange_calendars code (``"XNYS"``, ``"XNAS"``, ``"XLON"``, ``"XHKG"``...).
            A lunch break (``XHKG``, ``XTKS``) splits a day into two sessions.
        extended_hours: US equity exchanges only: sessions run from 04:00 New York to four
            hours after the regular close (20:00, or 17:00 on a 13:00 early close) on the
            exchange's trading days. Weekends and holidays stay closed.

    Raises:
        ConfigError: the ``calendars`` extra is missing, the code is unknown, or extended
            hours are asked of a non-US-equity exchange.
    """

    def __init__(self, code: str = "XNYS", *, extended_hours: bool = False) -> None:
        super().__init__()
        library = _import_exchange_calendars()
        if code not in library.get_calendar_names(include_aliases=True):
            raise ConfigError(
                f"expected an exchange_calendars code such as 'XNYS' or 'XLON', got {code!r}"
            )
        if extended_hours and code not in _US_EQUITY_CODES:
            raise ConfigError(
                f"extended hours are defined for US equity exchanges "
                f"({', '.join(sorted(_US_EQUITY_CODES))}), got {code!r}"
            )
        self.code = code
        self.extended_hours = extended_hours
        self.name = f"{code} extended" if extended_hours else code

    def _compute(self, first_year: int, last_year: int) -> list[Session]:
        sessions: list[Session] = []
        for label, open_ns, break_ns, resume_ns, close_ns in _library_schedule(
            self.code, first_year, last_year
        ):
            if self.extended_hours:
                sessions.append((_local_ns(label, time(4), _NEW_YORK), close_ns + 4 * NS_PER_HOUR))
            elif break_ns is None or resume_ns is None:
                sessions.append((open_ns, close_ns))
            else:
                sessions += [(open_ns, break_ns), (resume_ns, close_ns)]
        return sessions


def _fx_full_day_holidays(first_year: int, last_year: int) -> set[date]:
    """Monday US holidays on which CME Globex FX trades to its regular 16:00 CT halt."""
    library = _import_exchange_calendars()
    us = importlib.import_module("exchange_calendars.us_holidays")
    pandas_holidays = importlib.import_module("pandas.tseries.holiday")
    rules = [
        us.USMartinLutherKingJrAfter1998,
        pandas_holidays.USPresidentsDay,
        us.USMemorialDay,
        pandas_holidays.USLaborDay,
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        days = library.exchange_calendar.HolidayCalendar(rules).holidays(
            f"{first_year}-01-01", f"{last_year}-12-31"
        )
        return {day.date() for day in days}


class CmeGlobexCalendar(_TabledCalendar):
    """CME Globex futures: Sunday 17:00 - Friday 16:00 Chicago, halted 16:00-17:00 daily.

    Built on exchange_calendars' ``CMES`` calendar, which gives the trading days, the
    17:00 CT opens (the evening before the trade date), the closed holidays (New Year,
    Good Friday, Christmas) and noon-CT early closes on US holidays. ``CMES`` models a
    session as 17:00-17:00 with no halt, so each session here closes at 16:00 CT on its
    trade date (or at the library's earlier close): the hour 16:00-17:00 lies between two
    sessions.

    Args:
        group: ``"fx"`` (default; 6E, 6J...) or ``"equity"`` (ES, NQ; also interest rates).
            They differ on Monday US holidays (Martin Luther King, Presidents, Memorial,
            Labor Day): equity and rates halt at 12:00 CT, FX trades to 16:00 CT (CME's
            holiday schedules; the real 6E bars of 2024-01-15 trade until 16:00 CT). On
            Thanksgiving, Black Friday, Christmas Eve and July 4 both groups close at the
            library's 12:00 CT (CME's Black Friday / Christmas Eve FX close is 12:15 CT, so
            the last quarter hour is treated as closed).

    Raises:
        ConfigError: the ``calendars`` extra is missing, or the group is unknown.
    """

    def __init__(self, group: Literal["fx", "equity"] = "fx") -> None:
        super().__init__()
        _import_exchange_calendars()
        if group not in ("fx", "equity"):
            raise ConfigError(f"expected a CME product group 'fx' or 'equity', got {group!r}")
        self.group = group
        self.name = f"CME Globex {group}"

    def _compute(self, first_year: int, last_year: int) -> list[Session]:
        rows = _library_schedule("CMES", first_year, last_year)
        full_days = _fx_full_day_holidays(first_year, last_year) if self.group == "fx" else set()
        sessions: list[Session] = []
        for label, open_ns, _, _, close_ns in rows:
            halt = _local_ns(label, time(16), _CHICAGO)
            sessions.append((open_ns, halt if label in full_days else min(close_ns, halt)))
        return sessions


_ALWAYS_OPEN = AlwaysOpen()
_FOREX = Forex24x5()


@functools.cache
def _exchange(code: str, extended_hours: bool) -> ExchangeCalendar:
    return ExchangeCalendar(code, extended_hours=extended_hours)


@functools.cache
def _cme(group: Literal["fx", "equity"]) -> CmeGlobexCalendar:
    return CmeGlobexCalendar(group)


def _asset_class(symbol: str) -> AssetClass | None:
    text = symbol.strip().upper()
    if text.endswith(_FUTURES_VENUES):
        return AssetClass.FUTURE
    return classify_symbol(text)


def calendar_for(
    symbol: str,
    asset_class: AssetClass | None = None,
    *,
    extended_hours: bool = False,
) -> TradingCalendar:
    """Return the (shared, cached) trading calendar for a symbol.

    The asset class is ``asset_class`` when given, else :func:`classify_symbol`'s answer;
    a symbol ending in ``.XCME`` / ``.GLBX`` is a future. Pass ``AssetClass.FUTURE`` for
    other futures symbols: ``classify_symbol`` never answers FUTURE (``ESH4`` reads as an
    equity ticker, ``6E/H4`` as a crypto pair).

    crypto → :class:`AlwaysOpen`; equity → ``XNYS`` (04:00-20:00 New York when
    ``extended_hours``); index → ``XNYS`` regular hours; future → :class:`CmeGlobexCalendar`
    ``"fx"`` (use ``CmeGlobexCalendar("equity")`` directly for equity-index futures);
    forex → :class:`Forex24x5`.

    Warning:
        A symbol of no known class gets :class:`AlwaysOpen` (and a logged warning): every
        closed hour then looks like a gap, costing one empty backfill request per gap.

    Raises:
        ConfigError: an exchange calendar is needed and the ``calendars`` extra is missing.
    """
    kind = asset_class if asset_class is not None else _asset_class(symbol)
    if kind is AssetClass.EQUITY:
        return _exchange("XNYS", extended_hours)
    if kind is AssetClass.INDEX:
        return _exchange("XNYS", False)
    if kind is AssetClass.FUTURE:
        return _cme("fx")
    if kind is AssetClass.FOREX:
        return _FOREX
    if kind is None:
        logger.warning("no asset class for symbol %r: judging its gaps as 24/7", symbol)
    return _ALWAYS_OPEN


_NAMED: dict[str, Any] = {
    "24/7": lambda: _ALWAYS_OPEN,
    "forex": lambda: _FOREX,
    "cme": lambda: _cme("fx"),
    "cme-fx": lambda: _cme("fx"),
    "cme-equity": lambda: _cme("equity"),
}


def calendar_named(name: str, *, extended_hours: bool = False) -> TradingCalendar:
    """Return a calendar by name: ``24/7``, ``forex``, ``cme`` (``cme-fx``), ``cme-equity``,
    or an exchange_calendars code (``XNYS``, ``XLON``, ``XHKG``...).

    Raises:
        ConfigError: an unknown code, or an exchange calendar without the ``calendars`` extra.
    """
    key = name.strip().lower()
    if key in _NAMED:
        calendar: TradingCalendar = _NAMED[key]()
        return calendar
    return _exchange(name.strip().upper(), extended_hours)
