"""What kind of failure an SQLite error is.

:func:`failure_kind` and :data:`ROW_ERRORS` classify SQLite's errors: those of one row
(the writer rejects the row and stores the rest) against those of the database (locked,
full, read-only, corrupt: the batch is lost). The kind goes into
:class:`~lean_data.storage.failures.StorageFailure`.
"""

from __future__ import annotations

import sqlite3

__all__ = ["ROW_ERRORS", "failure_kind"]

ROW_ERRORS = (
    sqlite3.IntegrityError,  # NOT NULL, CHECK
    sqlite3.DataError,  # string or blob too big
    sqlite3.ProgrammingError,  # cannot bind a parameter of this type
    sqlite3.InterfaceError,
    OverflowError,  # an int beyond 64 bits
    UnicodeError,  # a lone surrogate in a string
    TypeError,
)
"""Errors that one row causes, as opposed to the database (locked, full, closed)."""

_ERROR_NAMES = (
    ("SQLITE_FULL", "disk_full"),
    ("SQLITE_READONLY", "read_only"),
    ("SQLITE_CORRUPT", "corrupt"),
    ("SQLITE_NOTADB", "corrupt"),
    ("SQLITE_BUSY", "locked"),
    ("SQLITE_LOCKED", "locked"),
    ("SQLITE_IOERR", "io"),  # a write past RLIMIT_FSIZE (EFBIG) is SQLITE_IOERR_WRITE
)
_KINDS = (  # (kind, words of SQLite's message), first match wins
    ("disk_full", ("disk is full", "disk full", "no space")),
    ("read_only", ("readonly", "read-only", "read only")),
    ("corrupt", ("malformed", "not a database", "corrupt")),
    ("locked", ("locked", "busy")),
    ("io", ("disk i/o", "i/o error")),
)


def failure_kind(exc: BaseException) -> str:
    """Classify a database error: ``disk_full``, ``read_only``, ``corrupt``, ``locked``,
    ``io`` or ``error``."""
    name = str(getattr(exc, "sqlite_errorname", ""))  # e.g. SQLITE_IOERR_WRITE
    for prefix, kind in _ERROR_NAMES:
        if name.startswith(prefix):
            return kind
    text = str(exc).lower()
    for kind, words in _KINDS:
        if any(word in text for word in words):
            return kind
    return "error"
