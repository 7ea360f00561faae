"""Times and checked field access shared by Alpaca's stream and REST parsers (pure).

The field readers are cheap on the happy path and say precisely what was expected and what
was found otherwise (a :class:`~lean_data.errors.FeedProtocolError` naming the field).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgpack

from lean_data.errors import FeedProtocolError
from lean_data.models import NS_PER_HOUR, NS_PER_MINUTE, NS_PER_SECOND, datetime_to_ns

__all__ = ["ns_to_rfc3339", "rfc3339_to_ns"]

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2}))?"
)


def rfc3339_to_ns(text: str) -> int:
    """Return ns since the epoch for an RFC-3339 time (up to 9 fraction digits).

    A bare date (``"2013-10-10"``, which Alpaca's REST ``start``/``end`` accept) is
    midnight UTC; a time needs ``Z`` or an offset (``+00:00``, ``-04:00``).

    Raises:
        ValueError: the text is not such a time.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(
            f"expected an RFC-3339 time such as 2021-02-22T15:51:44.208Z, got {text!r}"
        )
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
            tzinfo=UTC,
        )  # fmt: skip
    except ValueError as exc:
        raise ValueError(f"expected an RFC-3339 time, got {text!r} ({exc})") from None
    ns = datetime_to_ns(moment) + (int(fraction.ljust(9, "0")) if fraction else 0)
    if zone and zone not in "Zz":
        sign = -1 if zone[0] == "+" else 1
        ns += sign * (int(zone[1:3]) * NS_PER_HOUR + int(zone[4:6]) * NS_PER_MINUTE)
    return ns


def ns_to_rfc3339(ns: int) -> str:
    """Return the RFC-3339 UTC text Alpaca writes for ``ns`` (``"2021-02-22T19:15:00Z"``).

    The fraction keeps its significant digits only (``".208Z"``, ``".335689322Z"``).
    """
    seconds, fraction = divmod(ns, NS_PER_SECOND)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


def _field(message: Mapping[str, Any], key: str, where: str) -> Any:
    try:
        return message[key]
    except KeyError:
        raise FeedProtocolError(
            f"{where}: expected field {key!r}, found fields {sorted(map(str, message))}"
        ) from None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _num(message: Mapping[str, Any], key: str, where: str) -> float:
    value = _field(message, key, where)
    if not _is_number(value):
        raise _bad(f"{where}.{key}", "a number", value)
    return float(value)


def _str(message: Mapping[str, Any], key: str, where: str) -> str:
    value = _field(message, key, where)
    if type(value) is not str:
        raise _bad(f"{where}.{key}", "a string", value)
    return value


def _opt_str(message: Mapping[str, Any], key: str, where: str) -> str:
    value = message.get(key, "")
    if type(value) is not str:
        raise _bad(f"{where}.{key}", "a string", value)
    return value


def _str_list(message: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = message.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(type(item) is str for item in value):
        raise _bad(f"{where}.{key}", "a list of strings", value)
    return value


def _ts(message: Mapping[str, Any], where: str) -> int:
    value = _field(message, "t", where)
    if type(value) is int:
        return value
    if isinstance(value, str):
        return _time(value, f"{where}.t")
    if isinstance(value, msgpack.Timestamp):
        nanos: int = value.to_unix_nano()
        return nanos
    raise _bad(f"{where}.t", "a time (int ns, RFC-3339 text or msgpack Timestamp)", value)


def _time(text: str, where: str) -> int:
    try:
        return rfc3339_to_ns(text)
    except ValueError:
        raise _bad(where, "an RFC-3339 time", text) from None


def _bad(where: str, expected: str, found: object) -> FeedProtocolError:
    text = repr(found)
    if len(text) > 80:
        text = text[:77] + "..."
    return FeedProtocolError(f"{where}: expected {expected}, found {type(found).__name__} {text}")
