"""The batched storage writer behind :class:`lean_data.storage.sqlite.DataPersistence`.

The write queue holds ``(table index, row)`` entries, coverage records
``(COVERAGE, (feed, symbol, resolution name, start_ns, end_ns, empty))`` and two kinds of
control entries:
a flush marker ``(FLUSH, (future, rows_unstored when queued))``, answered once every row queued
before it has been handled, and the stop marker ``(STOP, None)`` put by ``close()``.
:meth:`BatchWriter.run` is the body of the one writer task; the ``DataPersistence`` that
starts it creates and names the task (in its own keeping or a caller's TaskGroup), sets
:attr:`BatchWriter.db` and calls :meth:`BatchWriter.fail` when the task ends abnormally.

Coverage is never durable before the bars it covers. A batch is a contiguous run of the
FIFO queue committed in one transaction, so a coverage record commits together with, or
after, every bar queued before it; a crash loses a suffix of the queue, never a bar
without also losing the coverage queued after it. A batch dropped after its retry is the
other way to lose bars: the writer remembers the open-time spans of those bars per series
and cuts them out of every coverage record it writes later, until bars with those open
times are stored again (:mod:`lean_data.storage.coverage`).

One bad row never costs the others. A batch is first written as it is (the fast path);
when that fails for any reason, the retry converts every row defensively
(:func:`lean_data.storage.sanitize.clean_row`), sets aside the rows that cannot be stored (an int
beyond 64 bits in an integer column, a lone surrogate in a string, NaN or NULL in a NOT
NULL column, a value of no storable type), writes the rest, bisecting under a savepoint
should SQLite still refuse some, and reports each rejected row as a ``storage_rejected``
errors row in the same transaction. A rejected bar's span is cut from coverage like a lost
one. Only an error of the database itself (locked, disk full, closed) drops the batch, and
no exception from one batch ends the writer task.

A dropped batch is loud: the first one puts the writer in a degraded state,
:attr:`BatchWriter.failure` (what kind of failure, the first error, rows lost since), logs
one ERROR line and calls the ``on_failure`` hook once. ``DataEngine.stop()`` turns it into
a :class:`lean_data.errors.StorageFailedError`.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

import aiosqlite

from lean_data.errors import StorageError
from lean_data.inbox import Inbox
from lean_data.storage import schema as sch
from lean_data.storage.coverage import LostSpans, series_of, with_spans, write_coverage
from lean_data.storage.failures import ROW_ERRORS, StorageFailure, failure_kind
from lean_data.storage.sanitize import ENTRY_NAMES, Unstorable, clean_row, rejection_row
from lean_data.storage.schema import Row

__all__ = ["FLUSH", "STOP", "BatchWriter", "Entry"]

logger = logging.getLogger("lean_data.storage.sqlite")  # the name users configure for storage

FLUSH: Final = -1
STOP: Final = -2

Entry = tuple[int, Any]
_FlushMarker = tuple["asyncio.Future[None]", int]  # (answer, rows_unstored when queued)

Rejected = tuple[int, Row, Unstorable]


class BatchWriter:
    """Commit queued rows with one ``executemany`` per table per transaction.

    A batch closes after ``batch_rows`` rows or ``batch_s`` seconds after its first row,
    whichever comes first. A failed batch is rolled back and retried once, row by row in
    effect: rows that cannot be stored are rejected (counted in ``rows_rejected`` and by
    reason in ``rejected``, reported in the errors table), the others are written. When
    the retry fails too, the batch's rows are counted in ``rows_lost``. Both kinds of
    unstored rows are reported to the next flush marker.

    Args:
        queue: the write queue shared with the owner's ``save_*`` methods.
        batch_rows: commit after this many rows at most.
        batch_s: commit at most this many seconds after a batch's first row.
        clock_ns: wall clock, ns since the epoch, for the time of rejection reports.
        on_failure: called once, with :attr:`failure`, when rows are first lost.
    """

    def __init__(
        self,
        queue: Inbox[int],
        *,
        batch_rows: int,
        batch_s: float,
        clock_ns: Callable[[], int] = time.time_ns,
        on_failure: Callable[[StorageFailure], None] | None = None,
    ) -> None:
        self.queue = queue
        self.on_failure = on_failure
        self.failure: StorageFailure | None = None  # set when rows are first lost
        self.db: aiosqlite.Connection | None = None
        self.write_lock = asyncio.Lock()  # one open transaction at a time (batch or retention)
        self.error: StorageError | None = None  # why the writer task died, once it has
        self._batch_rows = batch_rows
        self._batch_s = batch_s
        self.rows_written = 0
        self.batches = 0
        self.write_failures = 0
        self.rows_lost = 0
        self.rejected: Counter[str] = Counter()  # rows rejected as unstorable, by reason
        self.last_batch_rows = 0
        self._clock_ns = clock_ns
        self.lost_spans: LostSpans = {}
        self._known_series: set[sch.SeriesKey] = set()  # in bar_series for sure

    def forget_series(self) -> None:
        """Forget which series ``bar_series`` holds (call after deleting from it)."""
        self._known_series.clear()

    @property
    def rows_unstored(self) -> int:
        """Rows lost with a failed batch or a dead writer, plus rows rejected."""
        return self.rows_lost + self.rows_rejected

    @property
    def rows_rejected(self) -> int:
        """Rows set aside as unstorable (each reported in the errors table)."""
        return sum(self.rejected.values())

    def statistics(self) -> dict[str, Any]:
        """Return a snapshot of the counters (see ``DataPersistence.statistics``)."""
        return {
            "rows_written": self.rows_written,
            "batches": self.batches,
            "queue_depth": len(self.queue),
            "write_failures": self.write_failures,
            "rows_lost": self.rows_lost,
            "rows_rejected": self.rows_rejected,
            "rejected": dict(sorted(self.rejected.items())),
            "last_batch_rows": self.last_batch_rows,
            "failed": None if self.failure is None else self.failure.to_dict(),
        }

    def _lose(self, count: int, kind: str, exc: BaseException | str) -> None:
        """Count ``count`` rows lost; the first loss degrades storage, loudly, once."""
        self.rows_lost += count
        if self.failure is not None:
            self.failure.rows_lost = self.rows_lost
            return
        self.failure = StorageFailure(kind, str(exc), self._clock_ns(), self.rows_lost)
        logger.error(
            "storage FAILED (%s): %d rows lost, later rows may be lost too: %s", kind, count, exc
        )
        if self.on_failure is not None:
            try:
                self.on_failure(self.failure)
            except Exception:  # a user's hook must not end the writer
                logger.exception("the storage failure hook raised")

    async def run(self) -> None:
        """Commit queued rows in batches until a stop marker, then drain what is left."""
        groups: list[list[Row]] = [[] for _ in range(sch.ENTRY_KINDS)]
        while True:
            count, control = await self._collect(groups)
            if count:
                await self._commit(groups, count)
            if control is not None and self._control(control):
                break
        while True:  # after the stop marker: rows from producers that were blocked on put
            await asyncio.sleep(0)  # let producers woken by our gets put their rows
            count, control = self._take(groups, 0)
            if count == 0 and control is None and not self.queue:
                return
            if count:
                await self._commit(groups, count)
            if control is not None:
                self._control(control)

    def _take(self, groups: list[list[Row]], count: int) -> tuple[int, Entry | None]:
        """Move queued rows into ``groups`` without waiting; stop at a control entry."""
        take = self.queue.take
        limit = self._batch_rows
        while count < limit:
            entry = take()
            if entry is None:
                break
            table, payload = entry
            if table < 0:
                return count, (table, payload)
            groups[table].append(payload)
            count += 1
        return count, None

    async def _collect(self, groups: list[list[Row]]) -> tuple[int, Entry | None]:
        """Wait for a first row, then gather a batch until full, timed out or a control.

        Between the first row and the deadline the writer sleeps until a whole batch is
        queued (or a control entry wakes it), instead of waking for every row.
        """
        queue = self.queue
        await queue.wait()
        count, control = self._take(groups, 0)
        limit = self._batch_rows
        if control is not None or count >= limit:
            return count, control
        deadline = asyncio.get_running_loop().time() + self._batch_s
        while control is None and count < limit:
            try:
                async with asyncio.timeout_at(deadline):
                    await queue.wait(limit - count)
            except TimeoutError:
                return self._take(groups, count)
            count, control = self._take(groups, count)
        return count, control

    def _control(self, entry: Entry) -> bool:
        """Answer a flush marker; return True for the stop marker."""
        table, payload = entry
        if table == STOP:
            return True
        done, unstored_before = payload
        if not done.done():
            if self.rows_unstored > unstored_before:
                lost = self.rows_unstored - unstored_before
                done.set_exception(StorageError(f"{lost} queued rows could not be stored"))
            else:
                done.set_result(None)
        return False

    async def _commit(self, groups: list[list[Row]], count: int) -> None:
        """Write one batch in one transaction; retry it carefully; never raise (but cancel)."""
        try:
            async with self.write_lock:
                try:
                    new_series, lost_after = await self._write(groups)
                except Exception as exc:  # anything one row can cause: the retry sorts it out
                    self.write_failures += 1
                    await self.rollback()
                    logger.warning(
                        "storage batch of %d rows failed (attempt 1 of 2): %r", count, exc
                    )
                    await self._retry(groups, count)
                else:
                    self._written(count, new_series, lost_after)
        except Exception as exc:  # a bug of ours must not end the writer (nor the engine)
            logger.exception("storage batch of %d rows dropped: the writer failed", count)
            self._lose(count, "error", exc)
        finally:
            for rows in groups:
                rows.clear()

    def _written(self, count: int, new_series: set[sch.SeriesKey], lost: LostSpans) -> None:
        self.rows_written += count
        self.batches += 1
        self.last_batch_rows = count
        self._known_series.update(new_series)
        self.lost_spans = lost

    async def _retry(self, groups: list[list[Row]], count: int) -> None:
        """The second attempt: store every row that can be, reject the others."""
        try:
            rejected, new_series, lost_after = await self._write_carefully(groups)
        except Exception as exc:  # the database itself failed: the batch is lost
            self.write_failures += 1
            await self.rollback()
            logger.warning("storage batch of %d rows failed (attempt 2 of 2): %r", count, exc)
            self.lost_spans = with_spans(self.lost_spans, groups[sch.BARS], add=True)
            if self.failure is not None:  # the ERROR line was logged at the first loss
                logger.warning("storage batch of %d rows dropped after a retry", count)
            self._lose(count, failure_kind(exc), exc)
            return
        self._written(count - len(rejected), new_series, lost_after)
        for kind, _, problem in rejected:
            self.rejected[problem.reason] += 1
            logger.error("storage rejected a %s row: %s", ENTRY_NAMES[kind], problem)

    async def _write_carefully(
        self, groups: list[list[Row]]
    ) -> tuple[list[Rejected], set[sch.SeriesKey], LostSpans]:
        """Write and commit what can be stored of one batch, plus a report per rejected row.

        Returns:
            The rejected rows (entry kind, row, problem), and the new series and lost spans
            as :meth:`_write` returns them.
        """
        db = self.db
        if db is None:
            raise sqlite3.InterfaceError("the connection was closed under the writer")
        rejected: list[Rejected] = []
        clean: list[list[Row]] = [[] for _ in groups]
        for kind, rows in enumerate(groups):
            for row in rows:
                try:
                    clean[kind].append(clean_row(kind, row))
                except Unstorable as problem:
                    rejected.append((kind, row, problem))
        if not db.in_transaction:
            await db.execute("BEGIN IMMEDIATE")
        for table, sql in enumerate(sch.WRITE_SQL):
            if clean[table]:
                clean[table], refused = await _write_rows(db, sql, clean[table])
                rejected += [(table, row, problem) for row, problem in refused]
        bars = clean[sch.BARS]
        new_series = set(map(series_of, bars)) - self._known_series
        if new_series:
            await db.executemany(sch.INSERT_SERIES, new_series)
        lost = with_spans(self.lost_spans, bars, add=False) if bars else self.lost_spans
        cut = [row for kind, row, _ in rejected if kind == sch.BARS]
        lost = with_spans(lost, cut, add=True) if cut else lost
        if clean[sch.COVERAGE]:
            await write_coverage(db, clean[sch.COVERAGE], lost)
        if rejected:
            now = self._clock_ns()
            reports = [rejection_row(now, kind, row, problem) for kind, row, problem in rejected]
            await db.executemany(sch.WRITE_SQL[sch.ERRORS], reports)
        await db.commit()
        return rejected, new_series, lost

    async def _write(self, groups: list[list[Row]]) -> tuple[set[sch.SeriesKey], LostSpans]:
        """Write and commit one batch.

        Returns:
            The bar series this batch added to ``bar_series`` and the lost spans that
            remain once it is committed (its bars are stored again); the caller keeps
            both only when the commit succeeded.
        """
        db = self.db
        if db is None:
            raise sqlite3.InterfaceError("the connection was closed under the writer")
        coverage = groups[sch.COVERAGE]
        if coverage and not db.in_transaction:
            await db.execute("BEGIN IMMEDIATE")  # read-modify-write of coverage rows
        for table, sql in enumerate(sch.WRITE_SQL):
            if rows := groups[table]:
                await db.executemany(sql, rows)
        bars = groups[sch.BARS]
        new_series = set(map(series_of, bars)) - self._known_series if bars else set()
        if new_series:
            await db.executemany(sch.INSERT_SERIES, new_series)
        lost = self.lost_spans
        if lost and bars:
            lost = with_spans(lost, bars, add=False)
        if coverage:
            await write_coverage(db, coverage, lost)
        await db.commit()
        return new_series, lost

    async def rollback(self) -> None:
        """Roll back the open transaction; log (never raise) when that fails too."""
        if self.db is not None:
            try:
                await self.db.rollback()
            except (sqlite3.Error, ValueError) as exc:  # ValueError: aiosqlite was closed
                logger.warning("storage rollback failed: %s", exc)

    async def report_failure(self, path: str) -> None:
        """Write one ``storage_failed`` errors row for :attr:`failure`, if the file takes it."""
        db, failure = self.db, self.failure
        if db is None or failure is None:
            return
        message = f"{failure.rows_lost} rows were not stored ({failure.kind}): {failure.message}"
        row = (self._clock_ns(), "storage_failed", "", "", message, "")
        try:
            await db.execute(sch.WRITE_SQL[sch.ERRORS], row)
            await db.commit()
        except (sqlite3.Error, ValueError) as exc:
            await self.rollback()
            logger.error("%s: the storage_failed errors row could not be written: %s", path, exc)

    async def barrier(self, task: asyncio.Task[None], *, strict: bool) -> None:
        """Wait until ``task`` (running :meth:`run`) has handled every row queued so far.

        Raises:
            StorageError: only when ``strict``: queued rows were lost, or the task died.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        marker: _FlushMarker = (done, self.rows_unstored)
        try:
            await self.queue.put(FLUSH, marker)
            self.queue.wake()
            await asyncio.wait({done, task}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            done.cancel()  # tells the writer nobody waits for this marker any more
            raise
        if done.done():
            lost = done.exception()
            if lost is not None and strict:
                raise StorageError(str(lost)) from lost
            return
        done.cancel()
        if strict:
            raise StorageError("the storage writer died before flushing") from self.error

    def fail(self, error: StorageError) -> None:
        """Record why the task died, fail waiting flush markers and count queued rows lost."""
        self.error = error
        lost = 0
        while (entry := self.queue.take()) is not None:  # unblocks producers waiting in put()
            table, payload = entry
            if table == FLUSH and not payload[0].done():
                payload[0].set_exception(error)
            lost += table >= 0
        self._lose(lost, "writer_died", error)


async def _write_rows(
    db: aiosqlite.Connection, sql: str, rows: list[Row]
) -> tuple[list[Row], list[tuple[Row, Unstorable]]]:
    """Write ``rows`` in the open transaction, bisecting under a savepoint on a row error.

    Returns:
        The rows written, in order, and each row SQLite refused on its own with why.

    Raises:
        sqlite3.Error: an error of the database rather than of a row.
    """
    written: list[Row] = []
    refused: list[tuple[Row, Unstorable]] = []
    chunks = [rows]
    while chunks:
        chunk = chunks.pop()
        await db.execute("SAVEPOINT lean_rows")
        try:
            await db.executemany(sql, chunk)
        except ROW_ERRORS as exc:
            await db.execute("ROLLBACK TO lean_rows")
            await db.execute("RELEASE lean_rows")
            if len(chunk) == 1:
                detail = f"{type(exc).__name__}: {exc}"
                refused.append((chunk[0], Unstorable("row", chunk[0], "sqlite", detail)))
            else:
                half = len(chunk) // 2
                chunks += (chunk[half:], chunk[:half])  # the first half is written first
            continue
        await db.execute("RELEASE lean_rows")
        written += chunk
    return written, refused
