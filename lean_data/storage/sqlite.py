"""SQLite storage of market data, metrics and errors, with one batched writer task.

Writes never touch SQLite on the caller's path: ``save_*`` turns the item into a row tuple
and puts it on a bounded queue. One writer task, owned by the :class:`DataPersistence`,
takes rows off that queue and commits them with one write per table per transaction
(``executemany``, or statements of up to 2,048 rows each for a larger batch), after
``batch_rows`` rows or ``batch_ms`` milliseconds, whichever comes first.

Consistency: every read first waits until the rows queued before it are committed, so a
caller reads its own writes. :meth:`DataPersistence.flush` gives the same guarantee to other
connections (another process, a ``sqlite3`` shell).

Coverage (:meth:`DataPersistence.record_coverage`) travels through the same FIFO queue as
the bars, so a crash can lose coverage (the interval is fetched again) but never leave
coverage for bars it lost (see :mod:`lean_data.storage.coverage`).

Time windows: ``get_recent_data``, ``quality_summary`` and ``apply_retention`` select
market rows by **receive time** (``ts_recv``), not event time: a replayed or backfilled bar
has an old event time but was stored just now, and should count as recent and survive
retention until it has been kept for ``days``. An item saved with ``ts_recv == 0``
(unknown, e.g. read from a file) is stored with the time it was saved. Metrics and errors
are selected by their own ``ts``.

Layout: the lifecycle, the write API and the read barrier are the backend-neutral
:class:`~lean_data.storage.store.QueuedStore` (shared with PostgreSQL); this module adds the
SQLite file: opening and checking it is :mod:`lean_data.storage.connect`, writing a batch
:mod:`lean_data.storage.sqlite_sink` (driven by the shared :mod:`lean_data.storage.writer`),
SQL text :mod:`lean_data.storage.schema`, retention :mod:`lean_data.storage.retention`.
:class:`DataPersistence` implements :class:`lean_data.storage.base.Storage`.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import aiosqlite

from lean_data import gil
from lean_data.config import check_switch_interval
from lean_data.errors import ConfigError, StorageError
from lean_data.storage import schema as sch
from lean_data.storage.base import Storage
from lean_data.storage.connect import connect
from lean_data.storage.failures import StorageFailure
from lean_data.storage.retention import delete_before
from lean_data.storage.sqlite_sink import SqliteSink
from lean_data.storage.store import QueuedStore
from lean_data.storage.writer import RetryPolicy

__all__ = ["DataPersistence", "StorageFailure"]

logger = logging.getLogger(__name__)


class DataPersistence(QueuedStore):
    """Store bars, quotes, ticks, metrics and errors in one SQLite file (WAL mode).

    Use it as an async context manager, or call :meth:`open` and :meth:`close`. A closed
    instance cannot be reopened; create a new one. The writer task it owns is named
    ``lean_data.storage:<path>``. A failed batch is retried once, converting each row
    defensively: a row that cannot be stored (an int beyond 64 bits in an integer column, a
    lone surrogate in a string, NaN in a NOT NULL column) is rejected alone, counted in
    ``statistics()["rejected"]`` and reported as a ``storage_rejected`` errors row, and the
    rest of the batch is stored. When the retry fails as well (the database is locked or
    full), the batch's rows are counted in ``statistics()["rows_lost"]``. Either way the
    writer goes on, and the next :meth:`flush` reports the rows not stored. The first lost
    batch degrades storage: :attr:`failure` and ``statistics()["failed"]`` say why (kind,
    first error, rows lost so far), one ERROR line is logged, ``on_failure`` is called once,
    and :meth:`close` writes a ``storage_failed`` errors row when the file still takes one.

    The writer task is owned by this instance, or by the ``task_group`` given to
    :meth:`open`; either way :meth:`close` stops it and waits for it.

    :meth:`open` checks the file first (``PRAGMA quick_check`` and a rolled-back test
    write): a file that is not a database, is corrupt or cannot be written is refused.

    Args:
        path: the SQLite file (created with its tables when missing).
        batch_rows: commit after this many rows at most.
        batch_ms: commit at most this many milliseconds after a batch's first row.
        queue_size: capacity of the write queue; ``save_market_data`` waits when it is full.
        busy_timeout_ms: how long SQLite waits for another connection's write lock.
        clock_ns: wall clock in ns since the epoch, for default timestamps and windows.
        on_failure: called once (from the writer task) when rows are first lost.
        check: run the start-up check (``quick_check`` reads the whole file: about
            0.3 s per 100 MB on a warm page cache, measured).
        switch_interval_s: while open, keep the interpreter's GIL switch interval at most
            this long (:mod:`lean_data.gil`: without it, a busy event loop starves
            the SQLite thread); None leaves it alone.

    Raises:
        ConfigError: a size or duration is not positive.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        batch_rows: int = 1000,
        batch_ms: float = 200.0,
        queue_size: int = 100_000,
        busy_timeout_ms: int = 5000,
        clock_ns: Callable[[], int] = time.time_ns,
        on_failure: Callable[[StorageFailure], None] | None = None,
        check: bool = True,
        switch_interval_s: float | None = gil.INTERVAL_S,
    ) -> None:
        check_switch_interval(switch_interval_s, "DataPersistence switch_interval_s")
        if busy_timeout_ms < 0:
            raise ConfigError(
                f"DataPersistence busy_timeout_ms must be >= 0, got {busy_timeout_ms!r}"
            )
        self._path = str(path)
        self._sink = SqliteSink()
        super().__init__(
            self._sink,
            sch.SQLITE_SQL,
            batch_rows=batch_rows,
            batch_ms=batch_ms,
            queue_size=queue_size,
            clock_ns=clock_ns,
            on_failure=on_failure,
            retry=RetryPolicy(),  # SQLite has no transient faults to retry
            logger=logger,
        )
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._check = check
        self._switch_interval_s = switch_interval_s
        self._sharing = False
        self._db: aiosqlite.Connection | None = None

    def _where(self) -> str:
        return self._path

    async def _connect(self) -> None:
        """Connect, set the pragmas and create or migrate the schema.

        Raises:
            StorageError: the file cannot be opened, holds a newer schema, is not a
                database, is corrupt or cannot be written (the message names the path
                and the problem).
        """
        self._db = await connect(
            self._path, busy_timeout_ms=self._busy_timeout_ms, check=self._check
        )
        self._sink.db = self._db
        if self._switch_interval_s is not None and not self._sharing:
            gil.share(self._switch_interval_s)  # the worker thread must get the GIL
            self._sharing = True

    async def _disconnect(self) -> None:
        db, self._db = self._db, None
        self._sink.db = None
        try:
            if db is not None:
                await db.close()
        finally:
            if self._sharing:
                self._sharing = False
                gil.unshare()

    async def _query(self, sql: str, params: tuple[Any, ...]) -> list[sch.Row]:
        db = self._db
        if db is None:
            self._reject()
        try:
            rows: list[Any] = list(await db.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise StorageError(f"query failed: {exc}") from exc
        return rows

    async def pragmas(self) -> dict[str, Any]:
        """Return this connection's ``journal_mode``, ``synchronous``, ``temp_store`` and
        ``busy_timeout``.

        ``synchronous`` and ``temp_store`` are SQLite's numbers (1 is NORMAL, 2 is MEMORY);
        ``busy_timeout`` is in ms.
        """
        found: dict[str, Any] = {}
        for name in ("journal_mode", "synchronous", "temp_store", "busy_timeout"):
            rows = await self._fetch(f"PRAGMA {name}", ())
            found[name] = rows[0][0]
        return found

    async def _retain(self, cutoff: int) -> dict[str, int]:
        """Delete market rows received before ``cutoff``, metrics and errors older.

        Uses full-table scans (see :mod:`lean_data.storage.retention`).
        """
        try:
            async with self._sink.transaction(None, immediate=True) as tx:
                return await delete_before(tx, cutoff)
        except sqlite3.Error as exc:
            raise StorageError(f"retention failed: {exc}") from exc


if TYPE_CHECKING:  # mypy checks here that DataPersistence implements the interface
    _implements: Storage = cast(DataPersistence, None)
