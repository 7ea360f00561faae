"""The edge between queued rows and PostgreSQL: value conversion and error classification.

Queued rows are SQLite-shaped tuples (:mod:`lean_data.storage.rows`). :func:`to_record`
converts one for COPY into the types of :mod:`lean_data.storage.postgres.schema`: the
flags become booleans, an integral float in an integer column becomes an int (as SQLite's
INT affinity would store it), NaN in a float column becomes NULL (as SQLite stores it, so
both read it back as the same ``nan``), and a value PostgreSQL cannot hold raises
:class:`~lean_data.storage.sanitize.Unstorable`: a NUL character in text
(``text_encoding``), a fraction in an integer column (``type``). Errors rows are never
refused: a NUL in their text is written as the four characters ``\\x00``.

The classifiers tell the shared writer what an exception means (see
:class:`~lean_data.storage.sink.BatchSink`): a row's fault (class 22 data exceptions,
class 23 constraint violations, the client's own encoding errors), a transient fault (the
connection died or was refused, the server shuts down, a deadlock or serialization
failure, too many connections, a partition that another process dropped), or anything
else: a fault of the database that loses the batch.
"""

from __future__ import annotations

import operator
from typing import Any, Final

import asyncpg

from lean_data.storage import schema as sch
from lean_data.storage.postgres.schema import COLUMNS, FLAGS, column_kinds
from lean_data.storage.sanitize import COLUMN_NAMES, INT64_MAX, INT64_MIN, Unstorable
from lean_data.storage.schema import Row
from lean_data.storage.sink import CommitInDoubt

__all__ = [
    "failure_kind",
    "is_missing_partition",
    "is_row_error",
    "is_transient",
    "refusal",
    "to_record",
]


def _positions(kind: int) -> tuple[tuple[int, ...], ...]:
    names = COLUMN_NAMES[kind]
    kinds = column_kinds(kind)
    ints = tuple(i for i, k in enumerate(kinds) if k == "integer" and names[i] not in FLAGS)
    flags = tuple(i for i, n in enumerate(names) if n in FLAGS)
    floats = tuple(i for i, k in enumerate(kinds) if k == "real or NULL")
    texts = tuple(i for i, k in enumerate(kinds) if k.startswith("text"))
    return ints, flags, floats, texts


_POSITIONS: Final = {kind: _positions(kind) for kind in (*COLUMNS, sch.COVERAGE)}


def _integer(column: str, value: Any) -> int:
    if isinstance(value, float):
        if value != value:
            raise Unstorable(column, value, "null", "NaN (stored as NULL) in a NOT NULL column")
        if value.is_integer() and INT64_MIN <= value <= INT64_MAX:
            return int(value)
        raise Unstorable(column, value, "type", "a fraction in an integer column")
    if value is None:
        raise Unstorable(column, value, "null", "NULL in a NOT NULL column")
    try:
        number = operator.index(value)
    except TypeError:
        raise Unstorable(
            column, value, "type", f"expected an integer, got {type(value).__name__}"
        ) from None
    if not INT64_MIN <= number <= INT64_MAX:
        raise Unstorable(column, value, "int_range", "outside the 64-bit integer range")
    return number


def _flag(column: str, value: Any) -> bool:
    if isinstance(value, float) and value.is_integer():
        return value != 0
    return _integer(column, value) != 0


def to_record(kind: int, row: Row) -> Row:
    """Return ``row`` of entry kind ``kind`` as PostgreSQL stores it (see the docstring).

    Raises:
        Unstorable: a value PostgreSQL cannot hold in its column.
    """
    if kind == sch.BARS and _plain_bar(row):
        return row  # the common bar: already what PostgreSQL stores, checked in one go
    return convert(kind, row)


def convert(kind: int, row: Row) -> Row:
    """:func:`to_record` without its fast path for plain bars: every column checked."""
    ints, flags, floats, texts = _POSITIONS[kind]
    names = COLUMN_NAMES[kind]
    if len(row) != len(names):
        raise Unstorable("row", row, "type", f"expected {len(names)} values, got {len(row)}")
    values = list(row)
    for i in ints:
        if type(values[i]) is not int:
            values[i] = _integer(names[i], values[i])
    for i in flags:
        if type(values[i]) is not bool:
            values[i] = _flag(names[i], values[i])
    for i in floats:
        value = values[i]
        if type(value) is float and value != value:
            values[i] = None
    for i in texts:
        value = values[i]
        if type(value) is str and "\x00" in value:
            if kind == sch.ERRORS:
                values[i] = value.replace("\x00", "\\x00")
            else:
                raise Unstorable(
                    names[i], value, "text_encoding", "NUL, which PostgreSQL text cannot hold"
                )
    return tuple(values)


def _plain_bar(row: Row) -> bool:
    """Whether a ``bars`` row needs no conversion: ints, booleans, no NaN, no NUL.

    Any doubt (another shape, a value of another type) answers False: the full walk of
    :func:`to_record` then converts or refuses it.
    """
    try:
        feed, symbol, res, ts, o, h, lo, c, v, closed, rev, back, score, level, why, recv = row
        return (
            type(ts) is int
            and type(rev) is int
            and type(recv) is int
            and type(closed) is bool
            and type(back) is bool
            and o == o
            and h == h
            and lo == lo
            and c == c
            and v == v
            and score == score  # None too
            and "\x00" not in feed
            and "\x00" not in symbol
            and "\x00" not in res
            and "\x00" not in why
            and (level is None or "\x00" not in level)
        )
    except (TypeError, ValueError):  # not 16 values, or a text that is not a str
        return False


_TRANSIENT: Final = (
    asyncpg.PostgresConnectionError,  # class 08, and the connection that does not exist
    asyncpg.InterfaceError,  # the client's: connection closed, released, lost
    asyncpg.exceptions.AdminShutdownError,  # 57P01: pg_terminate_backend, a shutdown
    asyncpg.exceptions.CrashShutdownError,  # 57P02
    asyncpg.exceptions.CannotConnectNowError,  # 57P03: starting up, recovering
    asyncpg.exceptions.TransactionRollbackError,  # 40001 serialization, 40P01 deadlock
    asyncpg.exceptions.TooManyConnectionsError,  # 53300
    OSError,  # refused, reset, unreachable
    TimeoutError,
    CommitInDoubt,
)


def is_missing_partition(exc: BaseException) -> bool:
    """A row found no partition (another process's retention dropped it)."""
    return isinstance(exc, asyncpg.CheckViolationError) and "no partition" in str(exc)


def is_transient(exc: BaseException) -> bool:
    """Whether a fresh connection may well succeed where ``exc`` failed."""
    return isinstance(exc, _TRANSIENT) or is_missing_partition(exc)


def is_row_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the fault of the rows written (the bisection finds which)."""
    if is_transient(exc):
        return False
    return isinstance(
        exc,
        asyncpg.DataError  # class 22: NUL in text, out of range, bad text representation
        | asyncpg.IntegrityConstraintViolationError  # class 23: NOT NULL, CHECK
        | ValueError  # the client cannot encode a value (Unstorable, UnicodeError)
        | TypeError
        | OverflowError,
    )


def refusal(row: Row, exc: BaseException) -> Unstorable:
    """Why PostgreSQL (or its client) refused ``row`` alone with ``exc``."""
    if isinstance(exc, Unstorable):
        return exc
    if isinstance(exc, UnicodeError | asyncpg.CharacterNotInRepertoireError):
        reason = "text_encoding"
    elif isinstance(exc, OverflowError | asyncpg.NumericValueOutOfRangeError):
        reason = "int_range"
    elif isinstance(exc, asyncpg.NotNullViolationError):
        reason = "null"
    elif isinstance(exc, TypeError):
        reason = "type"
    else:
        reason = "postgres"
    detail = str(exc).splitlines()[0] if str(exc) else ""
    return Unstorable("row", row, reason, f"{type(exc).__name__}: {detail}")


def failure_kind(exc: BaseException) -> str:
    """Classify an error that lost a batch: ``connection``, ``locked``, ``disk_full``,
    ``read_only``, ``corrupt`` or ``error``."""
    if isinstance(exc, asyncpg.exceptions.TransactionRollbackError):
        return "locked"
    if is_transient(exc):
        return "connection"
    if isinstance(exc, asyncpg.exceptions.DiskFullError):
        return "disk_full"
    if isinstance(
        exc,
        asyncpg.exceptions.ReadOnlySQLTransactionError | asyncpg.InsufficientPrivilegeError,
    ):
        return "read_only"
    if isinstance(
        exc, asyncpg.exceptions.DataCorruptedError | asyncpg.exceptions.IndexCorruptedError
    ):
        return "corrupt"
    return "error"
