"""The batched storage writer behind :class:`lean_data.persistence.DataPersistence`.

The write queue holds ``(table index, row)`` entries and two kinds of control entries:
a flush marker ``(FLUSH, (future, rows_lost when queued))``, answered once every row queued
before it has been handled, and the stop marker ``(STOP, None)`` put by ``close()``.
:meth:`BatchWriter.run` is the body of the one writer task; the ``DataPersistence`` that
owns it creates and names the task, sets :attr:`BatchWriter.db` and calls
:meth:`BatchWriter.fail` when the task ends abnormally.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Any, Final

import aiosqlite

from lean_data import _schema as sch
from lean_data.errors import StorageError

__all__ = ["FLUSH", "STOP", "BatchWriter", "Entry"]

logger = logging.getLogger("lean_data.persistence")  # the name users configure for storage

FLUSH: Final = -1
STOP: Final = -2

Entry = tuple[int, Any]
_FlushMarker = tuple["asyncio.Future[None]", int]


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

    def __init__(self, queue: asyncio.Queue[Entry], *, batch_rows: int, batch_s: float) -> None:
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

    def statistics(self) -> dict[str, int]:
        """Return a snapshot of the counters (see ``DataPersistence.statistics``)."""
        return {
            "rows_written": self.rows_written,
            "batches": self.batches,
            "queue_depth": self.queue.qsize(),
            "write_failures": self.write_failures,
            "rows_lost": self.rows_lost,
            "last_batch_rows": self.last_batch_rows,
        }

    async def run(self) -> None:
        """Commit queued rows in batches until a stop marker, then drain what is left."""
        groups: list[list[sch.Row]] = [[] for _ in sch.TABLE_NAMES]
        while True:
            count, control = await self._collect(groups)
            if count:
                await self._commit(groups, count)
            if control is not None and self._control(control):
                break
        while True:  # after the stop marker: rows from producers that were blocked on put
            await asyncio.sleep(0)  # let producers woken by our gets put their rows
            count, control = self._take(groups, 0)
            if count == 0 and control is None and self.queue.empty():
                return
            if count:
                await self._commit(groups, count)
            if control is not None:
                self._control(control)

    def _take(self, groups: list[list[sch.Row]], count: int) -> tuple[int, Entry | None]:
        """Move queued rows into ``groups`` without waiting; stop at a control entry."""
        get = self.queue.get_nowait
        limit = self._batch_rows
        while count < limit:
            try:
                table, payload = get()
            except asyncio.QueueEmpty:
                break
            if table < 0:
                return count, (table, payload)
            groups[table].append(payload)
            count += 1
        return count, None

    async def _collect(self, groups: list[list[sch.Row]]) -> tuple[int, Entry | None]:
        """Wait for a first row, then gather a batch until full, timed out or a control."""
        table, payload = await self.queue.get()
        if table < 0:
            return 0, (table, payload)
        groups[table].append(payload)
        count, control = self._take(groups, 1)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._batch_s
        while control is None and count < self._batch_rows:
            try:
                async with asyncio.timeout_at(deadline):
                    table, payload = await self.queue.get()
            except TimeoutError:
                break
            if table < 0:
                return count, (table, payload)
            groups[table].append(payload)
            count, control = self._take(groups, count + 1)
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
                    await self._write(groups)
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
                    break
            else:
                self.rows_lost += count
                logger.error("storage batch of %d rows dropped after a retry", count)
        for rows in groups:
            rows.clear()

    async def _write(self, groups: list[list[sch.Row]]) -> None:
        db = self.db
        if db is None:
            raise sqlite3.InterfaceError("the connection was closed under the writer")
        for table, rows in enumerate(groups):
            if rows:
                await db.executemany(sch.WRITE_SQL[table], rows)
        await db.commit()

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
            await self.queue.put((FLUSH, marker))
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
        while not self.queue.empty():  # unblocks producers waiting in put()
            table, payload = self.queue.get_nowait()
            if table == FLUSH and not payload[0].done():
                payload[0].set_exception(error)
            lost += table >= 0
        self.rows_lost += lost
