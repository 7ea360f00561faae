"""Wall-clock to UTC conversion for file loaders, cheap enough for millions of rows.

Files stamp times as local wall clock (LEAN equities in New York, CSVs in any zone).
:class:`LocalClock` caches, per calendar day, the UTC offset when it is constant all day,
so a row costs one addition; only days with a DST transition go through ``zoneinfo``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lean_data.errors import ConfigError
from lean_data.models import NS_PER_DAY, NS_PER_HOUR, NS_PER_MINUTE, NS_PER_SECOND

__all__ = ["LocalClock", "days_from_civil", "parse_datetime_text", "zone"]

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1)
_DATETIME = re.compile(
    r"^\s*(\d{4})[-/]?(\d{2})[-/]?(\d{2})"
    r"(?:[T ]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?\s*$",
    re.IGNORECASE,
)


def zone(name: str | tzinfo | None) -> tzinfo | None:
    """Return the time zone named ``name`` (``None`` or ``"UTC"`` mean UTC).

    Raises:
        ConfigError: no such zone.
    """
    if name is None or isinstance(name, tzinfo):
        return None if name in (None, UTC) else name
    if name.upper() in ("UTC", "Z", "ETC/UTC"):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {name!r} (expected an IANA name)") from exc


def days_from_civil(year: int, month: int, day: int) -> int:
    """Return days since 1970-01-01 for a calendar date.

    Raises:
        ValueError: not a valid date.
    """
    return date(year, month, day).toordinal() - _EPOCH_ORDINAL


class LocalClock:
    """Convert naive wall-clock ns (as if UTC) in one zone to true UTC ns.

    Args:
        tz: the zone of the wall clock; ``None`` means the times already are UTC.
    """

    __slots__ = ("_offsets", "tz")

    def __init__(self, tz: tzinfo | None) -> None:
        self.tz = tz
        self._offsets: dict[int, int | None] = {}

    def day_offset(self, day: int) -> int | None:
        """Return the UTC offset (ns) valid all local day ``day``, or None on DST days."""
        if self.tz is None:
            return 0
        try:
            return self._offsets[day]
        except KeyError:
            pass
        start = _EPOCH + timedelta(days=day)
        first = _offset_ns(start, self.tz)
        last = _offset_ns(start + timedelta(hours=23, minutes=59, seconds=59), self.tz)
        offset = first if first == last else None
        self._offsets[day] = offset
        return offset

    def to_utc(self, naive_ns: int) -> int:
        """Return UTC ns for naive wall-clock ns (ambiguous times take the first)."""
        if self.tz is None:
            return naive_ns
        offset = self.day_offset(naive_ns // NS_PER_DAY)
        if offset is None:
            wall = _EPOCH + timedelta(microseconds=naive_ns // 1000)
            offset = _offset_ns(wall, self.tz)
        return naive_ns - offset


def _offset_ns(wall: datetime, tz: tzinfo) -> int:
    delta = wall.replace(tzinfo=tz).utcoffset()
    return 0 if delta is None else int(delta.total_seconds()) * NS_PER_SECOND


def parse_datetime_text(text: str, clock: LocalClock, days: dict[str, int]) -> int:
    """Return UTC ns for ``YYYY-MM-DD[ HH:MM[:SS[.f]]][Z|+HH:MM]`` (also ``T``, ``/``).

    A time without an offset is wall clock in ``clock``'s zone. ``days`` caches the day
    number of each date text already seen.

    Raises:
        ValueError: the text is not such a date-time.
    """
    match = _DATETIME.match(text)
    if match is None:
        raise ValueError(f"not a date-time: {text!r}")
    year, month, mday, hour, minute, second, frac, offset = match.groups()
    key = year + month + mday
    day = days.get(key)
    if day is None:
        day = days[key] = days_from_civil(int(year), int(month), int(mday))
    naive = day * NS_PER_DAY
    if hour is not None:
        naive += int(hour) * NS_PER_HOUR + int(minute) * NS_PER_MINUTE
        if second is not None:
            naive += int(second) * NS_PER_SECOND
        if frac is not None:
            naive += int(frac.ljust(9, "0"))
    if offset is None:
        return clock.to_utc(naive)
    if offset.upper() == "Z":
        return naive
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    return naive - sign * (int(digits[:2]) * NS_PER_HOUR + int(digits[2:]) * NS_PER_MINUTE)
