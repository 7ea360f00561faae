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
*created*, never by ``import lean_data.series.calendars``, so pandas stays unloaded until then
(:mod:`lean_data.series.exchanges`).

What a calendar answers, and the expected-bar rule behind it, is
:mod:`lean_data.series.sessions`; this module holds the built-in calendars
(:class:`AlwaysOpen`, :class:`Forex24x5`) and the choice of a calendar for a symbol or name,
and re-exports the public names of both.
"""

from __future__ import annotations

import functools
import logging
from datetime import date, time, timedelta
from typing import Any, Literal

from lean_data.models import AssetClass, Resolution
from lean_data.series.exchanges import CmeGlobexCalendar, ExchangeCalendar
from lean_data.series.sessions import (
    COUNT_HORIZON_NS,
    FIRST_YEAR,
    LAST_YEAR,
    MAX_LISTED_BARS,
    NEW_YORK,
    Session,
    TabledCalendar,
    TradingCalendar,
    local_ns,
    step_of,
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

_FUTURES_VENUES = (".XCME", ".GLBX")  # Nautilus / Databento venue suffixes, e.g. 6EH4.XCME


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
        step = step_of(resolution)
        first = start_ns + (anchor_ns - start_ns) % step
        return max(0, (end_ns - first + step - 1) // step)

    def count_missing(
        self, prev_open_ns: int, next_open_ns: int, resolution: Resolution | str
    ) -> int:
        """Return how many grid points lie strictly between the two (exact for any span)."""
        return max(0, (next_open_ns - prev_open_ns - 1) // step_of(resolution))


class Forex24x5(TabledCalendar):
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
                (local_ns(day, time(17), NEW_YORK), local_ns(friday, time(17), NEW_YORK))
            )
            day += timedelta(days=7)
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
