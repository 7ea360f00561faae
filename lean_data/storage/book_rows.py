"""Order-book snapshots in storage: a snapshot into its row, a stored row back into a record.

The ``book_snapshots`` table and its write statement are :mod:`lean_data.storage.schema`'s
(and :mod:`lean_data.storage.postgres.schema`'s); this module holds the row of a snapshot
(``BOOK_SNAPSHOT_COLUMNS`` order), the read statements and the decoding.

Levels are stored exactly and compactly: each side is one BLOB (PostgreSQL ``BYTEA``) of
little-endian IEEE float64 values, ``price, size, price, size, ...`` best first, 16 bytes a
level. A float64 written and read back this way is the same float bit for bit, on either
backend, and 20 levels a side cost 640 bytes a row.

The queue entries built here travel the one write queue and batch writer every store has
(:mod:`lean_data.storage.writer`): one ``executemany`` (SQLite) or one set-based upsert
(PostgreSQL) per batch, never a round trip per row.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any, Final

from lean_data.book import Levels, OrderBookSnapshot
from lean_data.storage import schema as sch
from lean_data.storage.sanitize import INT64_MAX, INT64_MIN
from lean_data.storage.schema import Row

__all__ = ["RANGE_SQL", "decode_levels", "encode_levels", "entries", "from_rows", "range_params"]

_PAIR: Final = struct.Struct("<2d")


def encode_levels(levels: Levels) -> bytes:
    """Return ``levels`` as little-endian float64 ``price, size`` pairs (exact)."""
    return struct.pack(f"<{2 * len(levels)}d", *(value for level in levels for value in level))


def decode_levels(blob: bytes) -> Levels:
    """Return the ``(price, size)`` levels of :func:`encode_levels`' bytes."""
    return tuple(_PAIR.iter_unpack(bytes(blob)))


def snapshot_row(snapshot: OrderBookSnapshot, feed: str, ts_recv: int, valid: bool) -> Row:
    """Return the ``book_snapshots`` row of ``snapshot`` in ``BOOK_SNAPSHOT_COLUMNS`` order."""
    return (feed, snapshot.symbol, ts_recv, snapshot.ts_event, snapshot.sequence, int(valid),
            encode_levels(snapshot.bids), encode_levels(snapshot.asks))  # fmt: skip


def entries(
    snapshots: Iterable[OrderBookSnapshot], feed: str, valid: bool, now: Callable[[], int]
) -> list[tuple[int, Row]]:
    """Return the queue entries of ``snapshots``.

    A snapshot with ``ts_recv == 0`` (unknown) is stored with the time it was saved.

    Raises:
        TypeError: an item is not an OrderBookSnapshot (nothing is queued then).
    """
    found: list[tuple[int, Row]] = []
    for snapshot in snapshots:
        if not isinstance(snapshot, OrderBookSnapshot):
            raise TypeError(f"expected OrderBookSnapshot records, got {type(snapshot).__name__}")
        row = snapshot_row(snapshot, feed, snapshot.ts_recv or now(), valid)
        found.append((sch.BOOK_SNAPSHOTS, row))
    return found


_SELECT: Final = (
    "SELECT symbol, bids, asks, sequence, ts_event, ts_recv, feed, valid FROM book_snapshots"
)


def _range(*, one_feed: bool, valid: bool | None) -> str:
    feed = " AND feed = ?4" if one_feed else ""
    flag = "" if valid is None else (" AND valid" if valid else " AND NOT valid")
    return (
        f"{_SELECT} WHERE symbol = ?1 AND ts_event >= ?2 AND ts_event < ?3{feed}{flag} "
        "ORDER BY ts_event, ts_recv, feed"
    )


RANGE_SQL: Final = {
    (one_feed, valid): _range(one_feed=one_feed, valid=valid)
    for one_feed in (False, True)
    for valid in (True, False, None)
}
"""The range read by event time, of every feed or one (``?4``), of valid, invalid or all
snapshots (SQLite's ``valid`` is 0/1, PostgreSQL's a BOOLEAN: both read ``AND valid``)."""


def range_params(
    symbol: str, start: int | None, end: int | None, feed: str | None
) -> tuple[Any, ...]:
    """The placeholders of a :data:`RANGE_SQL` statement; a None bound is open."""
    low = INT64_MIN if start is None else start
    high = INT64_MAX if end is None else end
    return (symbol, low, high) if feed is None else (symbol, low, high, feed)


def from_rows(rows: Iterable[Row]) -> list[OrderBookSnapshot]:
    """Return the snapshots of rows read by a :data:`RANGE_SQL` statement."""
    return [
        OrderBookSnapshot(r[0], decode_levels(r[1]), decode_levels(r[2]), r[3], r[4], r[5])
        for r in rows
    ]
