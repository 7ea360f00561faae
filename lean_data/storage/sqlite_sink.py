"""How the shared batch writer reaches SQLite: one aiosqlite connection, one transaction.

:class:`SqliteSink` implements :class:`~lean_data.storage.sink.BatchSink` for
:class:`~lean_data.storage.sqlite.DataPersistence`: per table ``executemany``, or for 16 rows
and more statements of up to 2,048 rows each (one GIL release per statement), savepoints
for the bisection, ``BEGIN IMMEDIATE`` when a batch rewrites coverage (SQLite's write
lock serialises writers, so :meth:`SqliteTx.lock_series` has nothing to do). SQLite has no
transient faults: a locked or full database fails the batch, which the writer retries
once carefully and then counts lost.

Trade bars are queued with their (feed, symbol, resolution) texts, as every backend takes
them, and stored in ``bar_rows`` under the series' ``bar_series.id``
(:mod:`lean_data.storage.schema`). The sink keeps the ids it has seen committed, so a
batch of known series costs one dictionary lookup per row; a series new to it is looked
up, or given its row, in the batch's own transaction (:meth:`SqliteTx.write_rows`). The
cache never goes stale: a series keeps its row and id for the life of the file, even when
retention (in any process) deletes its bars.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import aiosqlite

from lean_data.storage import schema as sch
from lean_data.storage.coverage import series_of
from lean_data.storage.rows import STATEMENT_VALUES
from lean_data.storage.sanitize import Unstorable
from lean_data.storage.schema import Row, SeriesKey
from lean_data.storage.sink import CoverageRow
from lean_data.storage.sqlite_errors import ROW_ERRORS, failure_kind

__all__ = ["SqliteSink", "SqliteTx"]

logger = logging.getLogger("lean_data.storage.sqlite")  # the name users configure for storage

_DELETE_COVERAGE: Final = f"DELETE FROM coverage WHERE {sch.SERIES} AND start_ns = ?4"
_INSERT_COVERAGE: Final = (
    "INSERT INTO coverage (feed, symbol, resolution, start_ns, end_ns, empty) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


_MIN_MULTI_ROWS: Final = 16
"""Fewer rows go through ``executemany``: one statement per row costs nothing extra then."""
# SQLite bound at most 999 parameters a statement before 3.32.0, 32,766 since
_MAX_PARAMETERS: Final = 32_766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


_IN_THREAD: Final = hasattr(aiosqlite.Connection, "_execute")  # runs a function in its thread


def _c_write() -> Callable[..., bool] | None:
    """:func:`lean_data._sqlite_rows.write` when it is built and reaches the SQLite library
    sqlite3 uses, and aiosqlite runs functions in its thread as this code expects."""
    try:
        from lean_data._sqlite_rows import usable, write
    except ImportError:  # a pure install, or built without SQLite's headers
        return None
    if not usable() or not _IN_THREAD:
        return None
    return write


_WRITE: Final = _c_write()
_BLOCK_ROWS: Final = 32
"""Rows per statement in C. Its statements are prepared on every call (sqlite3's statement
cache is out of reach): a 1,000-row statement costs ~4 µs a row to prepare, a 32-row one
~0.1 µs; the block runs while 32 rows are left, one-row statements take the rest. 16 to 64
measured alike."""
_BLOCK_SQL: Final = tuple(sch.write_sql(table, _BLOCK_ROWS) for table in range(len(sch.WRITE_SQL)))


def _rows_per_statement(columns: int) -> int:
    # when sqlite3 binds: large statements, as under load each costs the writer a GIL round
    # trip with the event loop (~5 ms); the cap bounds the size of the statements SQLite's
    # statement cache keeps
    return min(2048, _MAX_PARAMETERS // max(columns, 1))


class SqliteTx:
    """The open transaction on the store's connection (see :class:`BatchTx`).

    Args:
        db: the connection.
        ids: the series ids known committed (the sink's cache; read, never written here).
    """

    def __init__(self, db: aiosqlite.Connection, ids: dict[SeriesKey, int] | None = None) -> None:
        self.db = db
        self._ids = {} if ids is None else ids
        self.new_ids: dict[SeriesKey, int] = {}
        """Ids read in this transaction; the sink keeps them once it has committed."""

    async def write_rows(self, table: int, rows: list[Row], offset: int) -> None:
        bars = table == sch.BARS
        columns = (len(rows[0]) if rows else 1) - (2 if bars else 0)  # bars: 3 texts -> 1 id
        per = _rows_per_statement(columns)
        if len(rows) < _MIN_MULTI_ROWS or per < _MIN_MULTI_ROWS:
            await self.db.executemany(
                sch.WRITE_SQL[table], await self._by_series_id(rows) if bars else rows
            )
            return
        ids = self._ids if bars else None
        try:
            if await self._bound_in_c(table, rows, ids):
                return
            values = STATEMENT_VALUES(rows, 0, len(rows), ids)
        except KeyError:  # a series new to this store: look it up (or add it) in the tx
            ids = await self._with_new_series(rows)
            if await self._bound_in_c(table, rows, ids):
                return
            values = STATEMENT_VALUES(rows, 0, len(rows), ids)
        # sqlite3 binds them: many rows per statement, as SQLite runs each statement without
        # the GIL, where executemany takes it back after every row and contends with the loop
        for start in range(0, len(values), per * columns):
            part = values[start : start + per * columns]
            await self.db.execute(sch.write_sql(table, len(part) // columns), part)

    async def _bound_in_c(self, table: int, rows: list[Row], ids: dict[Any, int] | None) -> bool:
        """Insert ``rows`` in aiosqlite's thread with :func:`lean_data._sqlite_rows.write`,
        which reads them there (the parameters :data:`STATEMENT_VALUES` gives, never built
        on the event loop) and binds and steps them without the GIL (sqlite3 holds it while
        binding, ~1.5 µs a bar row that the event loop waits). False, nothing written, when
        that module is not built here or declines the rows (a value it does not bind
        exactly as sqlite3 does).

        Raises:
            KeyError: a bar's series is not in ``ids`` (nothing written).
            TypeError: a bar's series texts are of no hashable type (nothing written).
        """
        if _WRITE is None:
            return False
        db = self.db
        in_thread: Callable[..., Awaitable[bool]] = db._execute  # aiosqlite's own thread
        block, row = _BLOCK_SQL[table], sch.WRITE_SQL[table]
        return await in_thread(_WRITE, db._conn, rows, ids, block, _BLOCK_ROWS, row)

    async def _by_series_id(self, rows: list[Row]) -> list[Row]:
        """Return queued ``bars`` rows as ``bar_rows`` rows: the series id for the texts.

        Raises:
            sqlite3.IntegrityError: a series text is NULL (a row error, as it always was).
            TypeError: a series text is of no hashable type (a row error too).
        """
        ids = self._ids
        try:
            return [(ids[r[0], r[1], r[2]], *r[3:]) for r in rows]
        except KeyError:  # a series new to this store: look it up (or add it) in the tx
            pass
        ids = await self._with_new_series(rows)
        return [(ids[r[0], r[1], r[2]], *r[3:]) for r in rows]

    async def _with_new_series(self, rows: list[Row]) -> dict[SeriesKey, int]:
        """Return the known ids with those of ``rows``' series new to this store, each looked
        up, or given its ``bar_series`` row, in this transaction.

        Raises:
            sqlite3.IntegrityError: a series text is NULL.
            TypeError: a series text is of no hashable type.
        """
        ids = {**self._ids, **self.new_ids}
        for key in {series_of(row) for row in rows}.difference(ids):
            await self.db.execute(sch.INSERT_SERIES, key)
            ((found,),) = await self.db.execute_fetchall(sch.SERIES_ID, key)
            ids[key] = self.new_ids[key] = found
        return ids

    async def savepoint(self) -> None:
        await self.db.execute("SAVEPOINT lean_rows")

    async def rollback_to_savepoint(self) -> None:
        await self.db.execute("ROLLBACK TO lean_rows")
        await self.db.execute("RELEASE lean_rows")
        self.new_ids.clear()  # a series row added since the savepoint is gone: ask again

    async def release_savepoint(self) -> None:
        await self.db.execute("RELEASE lean_rows")

    async def insert_series(self, bars: Sequence[Row]) -> None:
        """Nothing to do: :meth:`write_rows` gave every series of the batch its row."""

    async def lock_series(self, keys: Sequence[SeriesKey]) -> None:
        """Nothing to do: a batch with coverage holds SQLite's write lock."""

    async def coverage_near(self, key: SeriesKey, start: int, end: int) -> list[CoverageRow]:
        rows = await self.db.execute_fetchall(sch.COVERAGE_TOUCHING, (*key, start, end))
        return [(s, e, bool(flag)) for s, e, flag in rows]

    async def replace_coverage(
        self, key: SeriesKey, starts: Sequence[int], rows: Sequence[CoverageRow]
    ) -> None:
        await self.db.executemany(_DELETE_COVERAGE, [(*key, s) for s in starts])
        await self.db.executemany(_INSERT_COVERAGE, [(*key, s, e, int(f)) for s, e, f in rows])


def _commit_and_empty(connection: sqlite3.Connection, groups: Sequence[list[Row]]) -> None:
    """Commit, then empty the committed batch's lists: run in aiosqlite's thread, which
    read the rows last (to bind them), so their memory is freed where it is in cache and
    not on the event loop's core."""
    connection.commit()
    for rows in groups:
        rows.clear()


class SqliteSink:
    """Write batches to the connection in :attr:`db` (set by the store while it is open)."""

    def __init__(self) -> None:
        self.db: aiosqlite.Connection | None = None
        self.series_ids: dict[SeriesKey, int] = {}  # committed; valid for the file's life

    @asynccontextmanager
    async def transaction(
        self, groups: Sequence[list[Row]] | None, *, immediate: bool
    ) -> AsyncIterator[SqliteTx]:
        """Open a transaction (``BEGIN IMMEDIATE`` when ``immediate``, else deferred on
        the first write); commit when the block ends, roll back when it raises. Once the
        commit succeeded, the lists of ``groups`` are emptied in the connection's thread
        (aiosqlite's, when it runs functions there as this module expects)."""
        db = self.db
        if db is None:
            raise sqlite3.InterfaceError("the connection was closed under the writer")
        try:
            if immediate and not db.in_transaction:
                await db.execute("BEGIN IMMEDIATE")
            tx = SqliteTx(db, self.series_ids)
            yield tx
            if groups is not None and _IN_THREAD:
                in_thread: Callable[..., Awaitable[None]] = db._execute  # aiosqlite's thread
                await in_thread(_commit_and_empty, db._conn, groups)
            else:
                await db.commit()
        except BaseException:
            await self.rollback()
            raise
        self.series_ids.update(tx.new_ids)

    async def rollback(self) -> None:
        """Roll back the open transaction; log (never raise) when that fails too."""
        if self.db is not None:
            try:
                await self.db.rollback()
            except (sqlite3.Error, ValueError) as exc:  # ValueError: aiosqlite was closed
                logger.warning("storage rollback failed: %s", exc)

    def clean(self, kind: int, row: Row) -> Row:
        return row  # clean_row's conversion is SQLite's own

    def is_row_error(self, exc: BaseException) -> bool:
        return isinstance(exc, ROW_ERRORS)

    def refusal(self, row: Row, exc: BaseException) -> Unstorable:
        return Unstorable("row", row, "sqlite", f"{type(exc).__name__}: {exc}")

    def is_transient(self, exc: BaseException) -> bool:
        return False  # a locked database is retried once (carefully), then counted lost

    def failure_kind(self, exc: BaseException) -> str:
        return failure_kind(exc)

    async def resolve_in_doubt(self) -> bool:
        return False  # SQLite commits locally: never in doubt

    async def between_batches(self, *, idle: bool) -> None:
        pass  # nothing derived from batches

    async def write_report(self, row: Row) -> None:
        async with self.transaction(None, immediate=False) as tx:
            await tx.write_rows(sch.ERRORS, [row], 0)
