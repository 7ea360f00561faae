"""Calendars computed by the ``exchange_calendars`` library: exchanges and CME Globex.

The library (the ``calendars`` extra: ``pip install 'lean-data[calendars]'``) is imported
when such a calendar is *created*, never by importing this module, so pandas stays unloaded
until then. Everything the library is asked goes through :func:`library_schedule`, which
turns its pandas schedule into plain ``int`` ns rows and its many error types into
``ValueError``; a missing library is a :class:`~lean_data.errors.ConfigError` naming the
extra.
"""

from __future__ import annotations

import importlib
import warnings
from datetime import date, time
from typing import Any, Literal
from zoneinfo import ZoneInfo

from lean_data.errors import ConfigError
from lean_data.models import NS_PER_HOUR
from lean_data.series.sessions import NEW_YORK, Session, TabledCalendar, local_ns

__all__ = [
    "CmeGlobexCalendar",
    "ExchangeCalendar",
    "import_exchange_calendars",
    "library_schedule",
]

_CHICAGO = ZoneInfo("America/Chicago")
_US_EQUITY_CODES = frozenset({"XNYS", "NYSE", "XNAS", "NASDAQ", "XASE"})
_EXTRA_HINT = "install the calendars extra: pip install 'lean-data[calendars]'"


def import_exchange_calendars() -> Any:
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


def library_schedule(code: str, first_year: int, last_year: int) -> list[_LibraryRow]:
    """Return exchange_calendars' sessions of ``code`` labelled in the given years.

    Raises:
        ValueError: the library cannot compute those years.
    """
    library = import_exchange_calendars()
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


class ExchangeCalendar(TabledCalendar):
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
        library = import_exchange_calendars()
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
        for label, open_ns, break_ns, resume_ns, close_ns in library_schedule(
            self.code, first_year, last_year
        ):
            if self.extended_hours:
                sessions.append((local_ns(label, time(4), NEW_YORK), close_ns + 4 * NS_PER_HOUR))
            elif break_ns is None or resume_ns is None:
                sessions.append((open_ns, close_ns))
            else:
                sessions += [(open_ns, break_ns), (resume_ns, close_ns)]
        return sessions


def _fx_full_day_holidays(first_year: int, last_year: int) -> set[date]:
    """Monday US holidays on which CME Globex FX trades to its regular 16:00 CT halt."""
    library = import_exchange_calendars()
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


class CmeGlobexCalendar(TabledCalendar):
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
        import_exchange_calendars()
        if group not in ("fx", "equity"):
            raise ConfigError(f"expected a CME product group 'fx' or 'equity', got {group!r}")
        self.group = group
        self.name = f"CME Globex {group}"

    def _compute(self, first_year: int, last_year: int) -> list[Session]:
        rows = library_schedule("CMES", first_year, last_year)
        full_days = _fx_full_day_holidays(first_year, last_year) if self.group == "fx" else set()
        sessions: list[Session] = []
        for label, open_ns, _, _, close_ns in rows:
            halt = local_ns(label, time(16), _CHICAGO)
            sessions.append((open_ns, halt if label in full_days else min(close_ns, halt)))
        return sessions
