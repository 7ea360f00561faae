"""Defensive row conversion: what the writer's retry does to a batch the database refused.

The fast path writes queued rows as they are. When a batch fails, the writer converts every
row with :func:`clean_row` before trying again: ints outside 64 bits in a REAL column become
floats, an int in a text column becomes its text, and a value that cannot be stored as its
column requires (an int beyond 64 bits in an integer column, a lone surrogate in a string,
NaN or NULL in a NOT NULL column, a value of no storable type) raises :class:`Unstorable`,
which the writer reports as a ``storage_rejected`` errors row (:func:`rejection_row`).
Errors rows themselves are never rejected: :func:`safe_text` makes any text storable.
"""

from __future__ import annotations

import numbers
import operator
from typing import Any, Final

from lean_data.storage.schema import (
    BAR_COLUMNS,
    BARS,
    BOOK_SNAPSHOTS,
    COVERAGE,
    DERIVATIVE_COLUMNS,
    ERRORS,
    ERRORS_COLUMNS,
    FUNDING_RATES,
    LIQUIDATIONS,
    MARK_PRICES,
    METRICS,
    METRICS_COLUMNS,
    OPEN_INTEREST,
    QUOTE_BARS,
    QUOTE_COLUMNS,
    TABLE_NAMES,
    TICK_COLUMNS,
    TICKS,
    Row,
)

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

_T, _TN, _I, _RN, _B = "text", "text or NULL", "integer", "real or NULL", "blob"
_BAR_TAIL_KINDS = (_I, _I, _I, _RN, _TN, _T, _I)  # closed … ts_recv
COLUMN_KINDS: Final[dict[int, tuple[str, ...]]] = {
    BARS: (_T, _T, _T, _I, *(_RN,) * 5, *_BAR_TAIL_KINDS),
    QUOTE_BARS: (_T, _T, _T, _I, *(_RN,) * 10, *_BAR_TAIL_KINDS),
    TICKS: (_T, _T, _I, _T, *(_RN,) * 6, _T, _T, _I, _T, _RN, _TN, _T, _I),
    METRICS: (_I, _T),
    FUNDING_RATES: (_T, _T, _I, _RN, _I, _I, _RN, _I),
    OPEN_INTEREST: (_T, _T, _I, _RN, _RN, _I),
    MARK_PRICES: (_T, _T, _I, _RN, _RN, _RN, _I, _I),
    LIQUIDATIONS: (_T, _T, _I, _T, _RN, _RN, _T, _RN, _RN, _I),
    BOOK_SNAPSHOTS: (_T, _T, _I, _I, _I, _I, _B, _B),
    COVERAGE: (_T, _T, _T, _I, _I, _I),
}
"""What each column of a queued row must hold, by entry kind (errors rows are sanitised)."""
COLUMN_NAMES: Final[dict[int, tuple[str, ...]]] = {
    BARS: BAR_COLUMNS,
    QUOTE_BARS: QUOTE_COLUMNS,
    TICKS: TICK_COLUMNS,
    METRICS: METRICS_COLUMNS,
    ERRORS: ERRORS_COLUMNS,
    **DERIVATIVE_COLUMNS,
    COVERAGE: ("feed", "symbol", "resolution", "start_ns", "end_ns", "empty"),
}
ENTRY_NAMES: Final = (*TABLE_NAMES, "coverage")


class Unstorable(ValueError):
    """One value of a queued row that the database cannot store as its column requires.

    Attributes:
        column: the column's name.
        value: the value found.
        reason: a short category: ``int_range``, ``text_encoding``, ``null``, ``type``,
            or ``sqlite`` / ``postgres`` (the database refused the row on its own, with
            ``detail`` saying why).
    """

    def __init__(self, column: str, value: object, reason: str, detail: str) -> None:
        super().__init__(f"{column} = {clip(ascii(value))}: {detail}")
        self.column, self.value, self.reason = column, value, reason


def clip(text: str, limit: int = 200) -> str:
    """Return ``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def safe_text(value: object) -> str:
    """Return ``value`` as storable text: lone surrogates become ``\\udXXX``."""
    if type(value) is str:
        if value.isascii():
            return value
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return ascii(value)


def _clean_value(kind: str, column: str, value: Any) -> Any:
    """Return ``value`` converted for a column of ``kind``, or raise :class:`Unstorable`."""
    if value is None:
        if kind in (_RN, _TN):
            return None
        raise Unstorable(column, value, "null", "NULL in a NOT NULL column")
    if kind == _B:
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        raise Unstorable(column, value, "type", f"expected bytes, got {type(value).__name__}")
    if kind in (_T, _TN):
        if type(value) is int and kind == _T:
            return str(value)  # a numeric trade id or name, stored as the text it denotes
        if not isinstance(value, str):
            raise Unstorable(column, value, "type", f"expected text, got {type(value).__name__}")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise Unstorable(
                    column, value, "text_encoding", f"not UTF-8: {exc.reason}"
                ) from None
        return str(value)
    if isinstance(value, float):
        if kind == _I and value != value:
            raise Unstorable(column, value, "null", "NaN (stored as NULL) in a NOT NULL column")
        return float(value)  # NaN in a REAL column is stored as NULL, by design
    try:
        number = operator.index(value)  # int, bool, numpy integers
    except TypeError:
        if kind == _RN and isinstance(value, numbers.Real):
            return _as_float(column, value)
        raise Unstorable(
            column, value, "type", f"expected a number, got {type(value).__name__}"
        ) from None
    if INT64_MIN <= number <= INT64_MAX:
        return number
    if kind == _RN:
        return _as_float(column, number)  # a float column: a huge int is just a big float
    raise Unstorable(column, value, "int_range", "outside the 64-bit integer range")


def _as_float(column: str, value: Any) -> float:
    try:
        return float(value)
    except (OverflowError, ValueError, TypeError) as exc:
        raise Unstorable(column, value, "int_range", f"not a float: {exc}") from None


def clean_row(kind: int, row: Row) -> Row:
    """Return a queued row converted to values stored as the columns require.

    Ints outside 64 bits in a REAL column become floats, an int in a text column becomes
    its text; an errors row is sanitised whatever it holds (it reports problems itself).

    Raises:
        Unstorable: the first value that cannot be stored as its column requires.
    """
    if kind == ERRORS:
        return _clean_error_row(row)
    kinds = COLUMN_KINDS[kind]
    names = COLUMN_NAMES[kind]
    if len(row) != len(kinds):
        raise Unstorable("row", row, "type", f"expected {len(kinds)} values, got {len(row)}")
    return tuple(_clean_value(k, n, v) for k, n, v in zip(kinds, names, row, strict=True))


def _clean_error_row(row: Row) -> Row:
    ts, *texts = row
    try:
        ts = _clean_value(_I, "ts", ts)
    except Unstorable:
        ts = 0
    return (ts, *(safe_text(text) for text in texts))


def rejection_row(ts: int, kind: int, row: Row, problem: Unstorable) -> Row:
    """Return the errors-table row (``storage_rejected``) that reports a rejected row."""
    feed, symbol = (row[0], row[1]) if kind not in (METRICS, ERRORS) and len(row) > 1 else ("", "")
    message = f"{ENTRY_NAMES[kind]} row not stored ({problem.reason}): {problem}"
    return (ts, "storage_rejected", clip(safe_text(feed)), clip(safe_text(symbol)),
            safe_text(message), clip(ascii(row), 2000))  # fmt: skip
