"""SQLite storage of market data, metrics and errors, with one batched writer task.

Writes never touch SQLite on the caller's path: ``save_*`` turns the item into a row tuple
and puts it on a bounded queue. One writer task, owned by the :class:`DataPersistence`,
takes rows off that queue and commits them with one ``executemany`` per table per
transaction, after ``batch_rows`` rows or ``batch_ms`` milliseconds, whichever comes first.

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

Task ownership: the writer task is owned by the :class:`DataPersistence` that starts it in
:meth:`~DataPersistence.open` (or by the ``task_group`` passed there) and awaited by
:meth:`~DataPersistence.close`. Its body handles its own end: should it fail or be
cancelled, storage is degraded in the task itself (no done-callback), and it never raises
but for cancellation, so a failing store never tears down the TaskGroup that owns it.

Layout: this module holds the lifecycle and the write API; opening and checking the file
is :mod:`lean_data.storage.connect`; the writer task's batching, commit, retry and failure
accounting live in :mod:`lean_data.storage.writer`, the read queries in
:mod:`lean_data.storage.queries` (the base class of :class:`DataPersistence`), SQL text in
:mod:`lean_data.storage.schema`, row codecs in :mod:`lean_data.storage.rows`.
:class:`DataPersistence` implements :class:`lean_data.storage.base.Storage`.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

import aiosqlite

from lean_data.errors import ConfigError, EngineClosedError, EngineStateError, StorageError
from lean_data.inbox import Inbox
from lean_data.models import NS_PER_DAY, MarketData, Resolution
from lean_data.quality.levels import Verdict
from lean_data.storage import schema as sch
from lean_data.storage.base import Storage
from lean_data.storage.connect import connect
from lean_data.storage.failures import StorageFailure
from lean_data.storage.queries import Queries
from lean_data.storage.retention import delete_before
from lean_data.storage.rows import (
    ROW_BUILDERS,
    error_row,
    metrics_payload,
    row_builder_for_subclass,
)
from lean_data.storage.writer import STOP, BatchWriter, Entry

__all__ = ["DataPersistence", "StorageFailure"]

logger = logging.getLogger(__name__)

_NEW, _OPEN, _CLOSED = "new", "open", "closed"


class DataPersistence(Queries):
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
    ) -> None:
        for name, value in (("batch_rows", batch_rows), ("queue_size", queue_size)):
            if value <= 0:
                raise ConfigError(f"DataPersistence {name} must be > 0, got {value!r}")
        if batch_ms <= 0:
            raise ConfigError(f"DataPersistence batch_ms must be > 0, got {batch_ms!r}")
        if busy_timeout_ms < 0:
            raise ConfigError(
                f"DataPersistence busy_timeout_ms must be >= 0, got {busy_timeout_ms!r}"
            )
        super().__init__(clock_ns)
        self._path = str(path)
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._queue: Inbox[int] = Inbox(queue_size)
        self._batch_writer = BatchWriter(
            self._queue,
            batch_rows=batch_rows,
            batch_s=batch_ms / 1000.0,
            clock_ns=clock_ns,
            on_failure=on_failure,
        )
        self._check = check
        self._db: aiosqlite.Connection | None = None
        self._writer: asyncio.Task[None] | None = None  # runs self._run_writer()
        self._state = _NEW
        self._accepting = False

    # ----------------------------------------------------------------- lifecycle

    async def open(self, *, task_group: asyncio.TaskGroup | None = None) -> None:
        """Connect, set the pragmas, create the schema and start the writer task.

        Calling it again while open does nothing.

        Args:
            task_group: the group that owns the writer task (default: this instance owns
                it). The group must outlive :meth:`close`, which stops the task; a storage
                failure never raises out of the task, so it never cancels the group.

        Raises:
            EngineClosedError: the instance was closed.
            StorageError: the file cannot be opened, holds a newer schema, is not a
                database, is corrupt or cannot be written (the message names the path
                and the problem).
        """
        if self._state == _OPEN:
            return
        if self._state == _CLOSED:
            raise EngineClosedError("DataPersistence was closed; create a new instance")
        self._db = await connect(
            self._path, busy_timeout_ms=self._busy_timeout_ms, check=self._check
        )
        self._state = _OPEN
        self._accepting = True
        self._batch_writer.db = self._db
        name = f"lean_data.storage:{self._path}"
        if task_group is None:
            self._writer = asyncio.get_running_loop().create_task(self._run_writer(), name=name)
        else:
            self._writer = task_group.create_task(self._run_writer(), name=name)

    async def _run_writer(self) -> None:
        """The writer task: commit batches until :meth:`close`; degrade storage if it dies.

        Should the batch writer raise or the task be cancelled, the queued rows are
        counted lost, waiting flushes fail, saves are refused from then on and one ERROR
        line is logged. Nothing but cancellation propagates.
        """
        try:
            await self._batch_writer.run()
        except asyncio.CancelledError:
            self._writer_died(StorageError("the storage writer task was cancelled"))
            raise
        except Exception as cause:
            error = StorageError(f"the storage writer task failed: {cause!r}")
            error.__cause__ = cause
            self._writer_died(error)

    def _writer_died(self, error: StorageError) -> None:
        self._batch_writer.fail(error)
        self._accepting = False
        logger.error("storage writer of %s stopped: %s", self._path, error, exc_info=error)

    def _check_writer(self) -> None:
        """Degrade storage if the writer task ended without its body seeing it end.

        That is a task cancelled before its first step (its body never ran): flush, reads,
        waiting saves and close look here, as the writer cannot tell them.
        """
        writer = self._writer
        if self._accepting and writer is not None and writer.done():
            self._writer_died(StorageError("the storage writer task was cancelled"))

    @property
    def failure(self) -> StorageFailure | None:
        """Why storage is degraded (rows were lost), or None while every write succeeded."""
        return self._batch_writer.failure

    async def _discard_connection(self) -> None:
        db, self._db = self._db, None
        self._batch_writer.db = None
        if db is not None:
            await db.close()

    async def close(self) -> None:
        """Commit everything queued, stop the writer and close the connection (idempotent)."""
        if self._state == _CLOSED:
            return
        self._check_writer()
        was_open = self._state == _OPEN
        self._state, self._accepting, writer = _CLOSED, False, self._writer
        try:
            if was_open and writer is not None and not writer.done():
                await self._queue.put(STOP, None)
                self._queue.wake()
                await asyncio.wait({writer})
            if self._batch_writer.failure is not None:
                await self._batch_writer.report_failure(self._path)
        finally:
            if writer is not None and not writer.done():  # close cancelled: no orphan writer
                writer.cancel()
            await self._discard_connection()

    async def __aenter__(self) -> DataPersistence:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __del__(self) -> None:
        if getattr(self, "_state", None) == _OPEN:  # __init__ may have raised early
            warnings.warn(
                f"DataPersistence({self._path!r}) was not closed; use 'async with' or close()",
                ResourceWarning,
                stacklevel=2,
            )

    # ----------------------------------------------------------------- writes

    async def save_market_data(
        self, item: MarketData, *, feed: str = "", quality: Verdict | None = None
    ) -> None:
        """Queue a bar, quote bar or tick for storage; wait only while the queue is full.

        Bars and quote bars are upserted by (feed, symbol, resolution, open time): a
        higher revision replaces a lower one, and at the same revision a final bar replaces
        an in-progress one, never the reverse.

        Raises:
            TypeError: ``item`` is not a TradeBar, QuoteBar or Tick.
            EngineStateError: not opened yet (EngineClosedError once closed).
            StorageError: the writer task has died.
        """
        if not self._accepting:
            self._reject()
        entry = self._entry(item, feed, quality)
        if not self._queue.offer(*entry):
            await self._put(entry)

    def save_market_data_nowait(
        self, item: MarketData, *, feed: str = "", quality: Verdict | None = None
    ) -> bool:
        """Queue an item like :meth:`save_market_data`; return False when the queue is full.

        Raises:
            TypeError: ``item`` is not a TradeBar, QuoteBar or Tick.
            EngineStateError: not opened yet (EngineClosedError once closed).
            StorageError: the writer task has died.
        """
        if not self._accepting:
            self._reject()
        return self._queue.offer(*self._entry(item, feed, quality))

    def _entry(self, item: MarketData, feed: str, quality: Verdict | None) -> Entry:
        found = ROW_BUILDERS.get(type(item))
        if found is None:
            found = row_builder_for_subclass(item)
        table, build = found
        return (table, build(item, feed, quality, item.ts_recv or self._clock_ns()))

    async def save_metrics(self, metrics: Mapping[str, Any], *, ts_ns: int | None = None) -> None:
        """Queue one metrics snapshot (stored as JSON; NaN becomes null).

        Args:
            metrics: any JSON-like mapping; values orjson cannot encode are stored as text.
            ts_ns: the snapshot time (default: now).
        """
        await self._save(sch.METRICS, (self._now(ts_ns), metrics_payload(metrics)))

    async def save_error(
        self,
        kind: str,
        message: str,
        *,
        feed: str = "",
        symbol: str = "",
        detail: str = "",
        ts_ns: int | None = None,
    ) -> None:
        """Queue one row for the errors table (``kind`` is a short category)."""
        if not self.save_error_nowait(
            kind, message, feed=feed, symbol=symbol, detail=detail, ts_ns=ts_ns
        ):
            row = error_row(self._now(ts_ns), kind, feed, symbol, message, detail)
            await self._save(sch.ERRORS, row)

    def save_error_nowait(
        self,
        kind: str,
        message: str,
        *,
        feed: str = "",
        symbol: str = "",
        detail: str = "",
        ts_ns: int | None = None,
    ) -> bool:
        """Queue an errors-table row without waiting; return False when the queue is full.

        Text that is not valid UTF-8 (a lone surrogate) is stored with backslash escapes.
        """
        if not self._accepting:
            self._reject()
        row = error_row(self._now(ts_ns), kind, feed, symbol, message, detail)
        return self._queue.offer(sch.ERRORS, row)

    async def record_coverage(
        self,
        feed: str,
        symbol: str,
        resolution: Resolution | str,
        start_ns: int,
        end_ns: int,
        *,
        empty: bool = False,
    ) -> None:
        """Queue a record that the bars of a series in ``[start_ns, end_ns)`` are stored.

        Call it after saving the bars it covers (with their saves awaited): it goes
        through the same FIFO queue, so it becomes durable in the same transaction as
        those bars or a later one, never before them. Should a batch with bars of this
        series fail even after its retry, later coverage records skip those bars' open
        times until they are stored again.

        Stored coverage is merged per (feed, symbol, resolution): overlapping and touching
        intervals coalesce, and a covered interval wins over a known-empty one where they
        overlap. An empty ``[t, t)`` interval is ignored.

        Args:
            feed, symbol, resolution: the bar series, as its bars were saved.
            start_ns, end_ns: event-time interval, ns; a bar opening at ``t`` belongs to
                it when ``start_ns <= t < end_ns``.
            empty: the source reported no bars in the interval ("known empty": there is
                nothing to fetch there).

        Raises:
            ValueError: ``end_ns < start_ns``, or an unknown resolution.
            EngineStateError: not opened yet (EngineClosedError once closed).
            StorageError: the writer task has died.
        """
        if end_ns < start_ns:
            raise ValueError(
                f"coverage needs start_ns <= end_ns, got [{start_ns}, {end_ns}) for {feed}/{symbol}"
            )
        name = Resolution.parse(resolution).name
        if start_ns < end_ns:
            row = (feed, symbol, name, int(start_ns), int(end_ns), int(empty))
            await self._save(sch.COVERAGE, row)
        elif not self._accepting:
            self._reject()

    async def _save(self, table: int, row: sch.Row) -> None:
        if not self._accepting:
            self._reject()
        await self._put((table, row))

    async def _put(self, entry: Entry) -> None:
        self._check_writer()
        if not self._accepting:
            self._reject()
        await self._queue.put(*entry)
        if (error := self._batch_writer.error) is not None:
            raise StorageError("the storage writer died; the row was not stored") from error

    def _now(self, ts_ns: int | None) -> int:
        return self._clock_ns() if ts_ns is None else ts_ns

    def _reject(self) -> NoReturn:
        if self._state == _CLOSED:
            raise EngineClosedError("DataPersistence is closed; create a new instance")
        if (error := self._batch_writer.error) is not None:
            raise StorageError(f"storage is unusable: {error}") from error
        raise EngineStateError("DataPersistence is not open; call open() or use 'async with'")

    async def flush(self) -> None:
        """Return once every row queued before the call is committed.

        Raises:
            StorageError: rows queued before the call could not be written (after a retry),
                or the writer task died.
            EngineStateError: not opened yet (EngineClosedError once closed).
        """
        self._check_writer()
        if not self._accepting:
            self._reject()
        await self._barrier(strict=True)

    async def _barrier(self, *, strict: bool) -> None:
        """Wait until the writer has handled every row queued so far."""
        self._check_writer()
        writer = self._writer
        if self._accepting and writer is not None:
            await self._batch_writer.barrier(writer, strict=strict)

    # ----------------------------------------------------------------- reads (more in Queries)

    def statistics(self) -> dict[str, Any]:
        """Return a snapshot of the writer's counters.

        Keys: ``rows_written``, ``batches``, ``queue_depth``, ``write_failures`` (failed
        attempts, including ones that succeeded on retry), ``rows_lost`` (rows dropped
        after a failed retry or a dead writer), ``rows_rejected`` (rows set aside as
        unstorable, each reported as a ``storage_rejected`` errors row), ``rejected``
        (those by reason: ``int_range``, ``text_encoding``, ``null``, ``type``, ``sqlite``)
        and ``last_batch_rows``.
        """
        return self._batch_writer.statistics()

    async def _fetch(
        self, sql: str, params: tuple[Any, ...], *, wait: bool = True
    ) -> list[sch.Row]:
        """Run a query after the rows queued so far are committed (``wait=False``: now)."""
        if self._state != _OPEN or self._db is None:
            self._reject()
        if wait:
            await self._barrier(strict=False)
        db = self._db
        if db is None:
            self._reject()
        try:
            rows: list[Any] = list(await db.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise StorageError(f"query failed: {exc}") from exc
        return rows

    async def apply_retention(self, days: float) -> dict[str, int]:
        """Delete rows older than ``days``; return the number deleted per table.

        Market rows are aged by receive time (``ts_recv``: how long they have been kept),
        metrics and errors by ``ts``. Coverage stays truthful: each trade-bar series that
        lost bars loses its covered (not its known-empty) intervals from its first to past
        its last deleted bar's open time, and :meth:`bar_series_keys` forgets series left
        without bars. Uses full-table scans; meant for start-up or a daily job, not for
        every batch.

        Raises:
            ValueError: ``days`` is not positive.
        """
        if not days > 0:
            raise ValueError(f"days must be > 0, got {days!r}")
        cutoff = self._clock_ns() - int(days * NS_PER_DAY)
        await self._barrier(strict=False)
        db = self._db
        if self._state != _OPEN or db is None:
            self._reject()
        async with self._batch_writer.write_lock:
            try:
                return await delete_before(db, cutoff)
            except sqlite3.Error as exc:
                await self._batch_writer.rollback()
                raise StorageError(f"retention failed: {exc}") from exc
            finally:
                self._batch_writer.forget_series()  # bar_series may have lost rows


if TYPE_CHECKING:  # mypy checks here that DataPersistence implements the interface
    _implements: Storage = cast(DataPersistence, None)
