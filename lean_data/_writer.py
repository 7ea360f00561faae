"""The batched storage writer behind :class:`lean_data.persistence.DataPersistence`.

The write queue holds ``(table index, row)`` entries, coverage records
``(COVERAGE, (feed, symbol, resolution name, start_ns, end_ns, empty))`` and two kinds of
control entries:
a flush marker ``(FLUSH, (future, rows_lost when queued))``, answered once every row queued
before it has been handled, and the stop marker ``(STOP, None)`` put by ``close()``.
:meth:`BatchWriter.run` is the body of the one writer task; the ``DataPersistence`` that
owns it creates and names the task, sets :attr:`BatchWriter.db` and calls
:meth:`BatchWriter.fail` when the task ends abnormally.

Coverage is never durable before the bars it covers. A batch is a contiguous run of the
FIFO queue committed in one transaction, so a coverage record commits together with, or
after, every bar queued before it; a crash loses a suffix of the queue, never a bar
without also losing the coverage queued after it. A batch dropped after its retry is the
other way to lose bars: the writer remembers the open-time spans of those bars per series
and cuts them out of every coverage record it writes later, until bars with those open
times are stored again.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterable
from operator import itemgetter
from typing import Any, Final, TypeAlias

import aiosqlite

from lean_data import _schema as sch
from lean_data import intervals as iv
from lean_data._inbox import Inbox
from lean_data.errors import StorageError

__all__ = ["FLUSH", "STOP", "BatchWriter", "Entry"]

logger = logging.getLogger("lean_data.persistence")  # the name users configure for storage

FLUSH: Final = -1
STOP: Final = -2

Entry = tuple[int, Any]
_FlushMarker = tuple["asyncio.Future[None]", int]
LostSpans: TypeAlias = dict[sch.SeriesKey, list[iv.Interval]]
"""Open-time intervals of bars dropped after a retry, per series (normal lists)."""

_series_of = itemgetter(0, 1, 2)  # (feed, symbol, resolution) of a bars row


class BatchWriter:
    """Commit queued rows with one ``executemany`` per table per transaction.

    A batch closes after ``batch_rows`` rows or ``batch_s`` seconds after its first row,
    whichever comes first. A failed batch is rolled back and retried once; after that its
    rows are counted in ``rows_lost`` and reported to the next flush marker.

    Args:
        queue: the write queue shared with the owner's ``save_*`` methods.
        batch_rows: commit after this many rows at most.
        batch_s: commit at most this many seconds after a batch's first row.
    """

    def __init__(self, queue: Inbox[int], *, batch_rows: int, batch_s: float) -> None:
        self.queue = queue
        self.db: aiosqlite.Connection | None = None
        self.write_lock = asyncio.Lock()  # one open transaction at a time (batch or retention)
        self.error: StorageError | None = None  # why the writer task died, once it has
        self._batch_rows = batch_rows
        self._batch_s = batch_s
        self.rows_written = 0
        self.batches = 0
        self.write_failures = 0
        self.rows_lost = 0
        self.last_batch_rows = 0
        self.lost_spans: LostSpans = {}
        self._known_series: set[sch.SeriesKey] = set()  # in bar_series for sure

    def forget_series(self) -> None:
        """Forget which series ``bar_series`` holds (call after deleting from it)."""
        self._known_series.clear()

    def statistics(self) -> dict[str, int]:
        """Return a snapshot of the counters (see ``DataPersistence.statistics``)."""
        return {
            "rows_written": self.rows_written,
            "batches": self.batches,
            "queue_depth": len(self.queue),
            "write_failures": self.write_failures,
            "rows_lost": self.rows_lost,
            "last_batch_rows": self.last_batch_rows,
        }

    async def run(self) -> None:
        """Commit queued rows in batches until a stop marker, then drain what is left."""
        groups: list[list[sch.Row]] = [[] for _ in range(sch.ENTRY_KINDS)]
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

    def _take(self, groups: list[list[sch.Row]], count: int) -> tuple[int, Entry | None]:
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

    async def _collect(self, groups: list[list[sch.Row]]) -> tuple[int, Entry | None]:
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
        done, lost_before = payload
        if not done.done():
            if self.rows_lost > lost_before:
                lost = self.rows_lost - lost_before
                done.set_exception(StorageError(f"{lost} queued rows could not be stored"))
            else:
                done.set_result(None)
        return False

    async def _commit(self, groups: list[list[sch.Row]], count: int) -> None:
        """Write one batch in one transaction; retry once; count the rows lost after that."""
        async with self.write_lock:
            for attempt in (1, 2):
                try:
                    new_series, lost_after = await self._write(groups)
                except sqlite3.Error as exc:
                    self.write_failures += 1
                    await self.rollback()
                    logger.warning(
                        "storage batch of %d rows failed (attempt %d of 2): %s", count, attempt, exc
                    )
                else:
                    self.rows_written += count
                    self.batches += 1
                    self.last_batch_rows = count
                    self._known_series.update(new_series)
                    self.lost_spans = lost_after
                    break
            else:
                self.rows_lost += count
                self.lost_spans = _with_spans(self.lost_spans, groups[sch.BARS], add=True)
                logger.error("storage batch of %d rows dropped after a retry", count)
        for rows in groups:
            rows.clear()

    async def _write(self, groups: list[list[sch.Row]]) -> tuple[set[sch.SeriesKey], LostSpans]:
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
        new_series = set(map(_series_of, bars)) - self._known_series if bars else set()
        if new_series:
            await db.executemany(sch.INSERT_SERIES, new_series)
        lost = self.lost_spans
        if lost and bars:
            lost = _with_spans(lost, bars, add=False)
        if coverage:
            await _write_coverage(db, coverage, lost)
        await db.commit()
        return new_series, lost

    async def rollback(self) -> None:
        """Roll back the open transaction; log (never raise) when that fails too."""
        if self.db is not None:
            try:
                await self.db.rollback()
            except sqlite3.Error as exc:
                logger.warning("storage rollback failed: %s", exc)

    async def barrier(self, task: asyncio.Task[None], *, strict: bool) -> None:
        """Wait until ``task`` (running :meth:`run`) has handled every row queued so far.

        Raises:
            StorageError: only when ``strict``: queued rows were lost, or the task died.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        marker: _FlushMarker = (done, self.rows_lost)
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
        self.rows_lost += lost


def _with_spans(lost: LostSpans, bars: Iterable[sch.Row], *, add: bool) -> LostSpans:
    """Return a copy of ``lost`` with the open-time spans of ``bars`` rows added or removed."""
    spans: dict[sch.SeriesKey, list[iv.Interval]] = {}
    for row in bars:
        nanos = sch.resolution_from_text(row[2]).nanos
        spans.setdefault(_series_of(row), []).append((row[3], row[3] + max(nanos, 1)))
    result = dict(lost)
    for key, found in spans.items():
        if add:
            result[key] = iv.union(result.get(key, ()), found)
        elif key in result:
            remaining = iv.difference(result[key], found)
            if remaining:
                result[key] = remaining
            else:
                del result[key]
    return result


async def _write_coverage(
    db: aiosqlite.Connection, records: list[sch.Row], lost: LostSpans
) -> None:
    """Merge a batch's coverage records into the table, minus the spans of lost bars."""
    by_series: dict[sch.SeriesKey, tuple[list[iv.Interval], list[iv.Interval]]] = {}
    for feed, symbol, resolution, start, end, empty in records:
        covered, empties = by_series.setdefault((feed, symbol, resolution), ([], []))
        (empties if empty else covered).append((start, end))
    for key, (covered, empties) in by_series.items():
        if cut := lost.get(key):
            covered, empties = iv.difference(covered, cut), iv.difference(empties, cut)
        await sch.merge_coverage(db, key, covered, empties)
