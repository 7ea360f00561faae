"""Shared pieces of the order-book parsers: JSON decoding and ``[price, size]`` level lists.

Each venue sends a side of its book as a JSON array of ``["price", "size", ...]`` decimal
strings. :func:`parse_levels` turns one into a tuple of ``(price, size)`` float pairs
(:data:`lean_data.book.Levels`) in one pass when it is well formed, and otherwise walks it
again, field by field, to name the first bad entry (``depth.b[3].size: expected a decimal
string, found ...``).
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from lean_data.book import Level, Levels
from lean_data.errors import FeedProtocolError

__all__ = ["bad_field", "decimal_text", "expect_object", "loads", "parse_levels"]


def loads(raw: bytes | str) -> object:
    """Decode JSON, raising :class:`FeedProtocolError` with a preview when it is not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        preview = raw[:80] if isinstance(raw, str) else raw[:80].decode("utf-8", "replace")
        raise FeedProtocolError(f"expected JSON, found {preview!r} ({exc})") from None


def bad_field(where: str, expected: str, found: object) -> FeedProtocolError:
    """The error for a field that is not what the venue documents."""
    text = repr(found)
    if len(text) > 80:
        text = text[:77] + "..."
    return FeedProtocolError(f"{where}: expected {expected}, found {type(found).__name__} {text}")


def expect_object(value: object, where: str) -> Mapping[str, object]:
    """``value`` when it is a JSON object, else a precise error."""
    if not isinstance(value, dict):
        raise bad_field(where, "a JSON object", value)
    return value


def decimal_text(value: object, where: str) -> float:
    """The float of a decimal string (``"0.35210000"``), else a precise error."""
    if type(value) is str:
        try:
            return float(value)
        except ValueError:
            pass
    raise bad_field(where, "a decimal string", value)


def parse_levels(raw: object, where: str) -> Levels:
    """``[["price", "size"], ...]`` as ``(price, size)`` floats, in the venue's order.

    Args:
        raw: the decoded JSON array.
        where: the field's path, for error messages.

    Raises:
        FeedProtocolError: not an array of arrays of decimal strings.
    """
    try:  # the well-formed side in one go; the checked path below explains a failure
        return tuple([(float(p), float(s)) for p, s in raw])  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        pass
    return _parse_levels_checked(raw, where)


def _parse_levels_checked(raw: object, where: str) -> Levels:
    if not isinstance(raw, list):
        raise bad_field(where, "an array of [price, size] arrays", raw)
    found: list[Level] = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, list) or len(entry) < 2:
            raise bad_field(f"{where}[{index}]", "a [price, size, ...] array", entry)
        price = decimal_text(entry[0], f"{where}[{index}].price")
        size = decimal_text(entry[1], f"{where}[{index}].size")
        found.append((price, size))
    return tuple(found)
