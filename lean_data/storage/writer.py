"""The batched storage writer, shared by every backend (SQLite, PostgreSQL).

The write queue holds ``(table index, row)`` entries (consecutive market rows of one table
share one entry, a run: :meth:`lean_data.inbox.Inbox.offer_row`), coverage records
``(COVERAGE, (feed, symbol, resolution name, start_ns, end_ns, empty))`` and two kinds of
control entries:
a flush marker ``(FLUSH, (future, rows_unstored when queued))``, answered once every row queued
before it has been handled, and the stop marker ``(STOP, None)`` put by ``close()``.
:meth:`BatchWriter.run` is the body of the one writer task; the store that starts it
(:class:`lean_data.storage.store.QueuedStore`) creates and names the task (in its own keeping
or a caller's TaskGroup) and calls :meth:`BatchWriter.fail` when the task ends abnormally.
How a batch reaches the database is the backend's :class:`~lean_data.storage.sink.BatchSink`.

Coverage is never durable before the bars it covers. A batch is a contiguous run of the
FIFO queue committed in one transaction, so a coverage record commits together with, or
after, every bar queued before it; a crash loses a suffix of the queue, never a bar
without also losing the coverage queued after it. A batch dropped after its retry is the
other way to lose bars: the writer remembers the open-time spans of those bars per series
and cuts them out of every coverage record it writes later, until bars with those open
times are stored again (:mod:`lean_data.storage.coverage`).

One bad row never costs the others. A batch is first written as it is (the fast path);
when that fails for any reason but a transient one, the retry converts every row
defensively (:func:`lean_data.storage.sanitize.clean_row`, then the sink's own
:meth:`~lean_data.storage.sink.BatchSink.clean`), sets aside the rows that cannot be stored
(an int beyond 64 bits in an integer column, a lone surrogate in a string, NaN or NULL in a
NOT NULL column, a value of no storable type), writes the rest, bisecting under a savepoint
should the database still refuse some
(:func:`~lean_data.storage.sink.write_rows_bisecting`), and reports each rejected row as a
``storage_rejected`` errors row in the same transaction. A rejected bar's span is cut from
coverage like a lost one. Only an error of the database itself (locked, disk full, closed)
drops the batch, and no exception from one batch ends the writer task.

A transient fault (the sink says so: a connection that died, a deadlock) is retried on a
fresh connection with capped exponential backoff, ``RetryPolicy.retries`` times; after that
the batch is held, tried again every ``backoff_cap_s``, for as long as the queue behind it
has room and the store is not closing. When the queue fills up (or at close) the batch is
counted lost; until a batch is stored again, later batches are held but not retried with
backoff first. A commit whose acknowledgement was lost (:class:`~lean_data.storage.sink.
CommitInDoubt`) is resolved with the sink before the batch is written again, so a batch
that did commit is never appended twice.

A dropped batch is loud: the first one puts the writer in a degraded state,
:attr:`BatchWriter.failure` (what kind of failure, the first error, rows lost since), logs
one ERROR line and calls the ``on_failure`` hook once. ``DataEngine.stop()`` turns it into
a :class:`lean_data.errors.StorageFailedError`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from lean_data.errors import StorageError
from lean_data.inbox import Batch, Inbox
from lean_data.storage import schema as sch
from lean_data.storage.coverage import LostSpans, with_spans, write_coverage
from lean_data.storage.failures import StorageFailure
from lean_data.storage.rows import take_entries
from lean_data.storage.sanitize import ENTRY_NAMES, Unstorable, clean_row, rejection_row
from lean_data.storage.schema import Row
from lean_data.storage.sink import BatchSink, write_rows_bisecting

__all__ = ["FLUSH", "STOP", "BatchWriter", "Entry", "RetryPolicy"]

FLUSH: Final = -1
STOP: Final = -2

Entry = tuple[int, Any]
_FlushMarker = tuple["asyncio.Future[None]", int]  # (answer, rows_unstored when queued)

Rejected = tuple[int, Row, Unstorable]
Outcome = tuple[list[Rejected], LostSpans]
"""What a committed batch changed: rows rejected, series added, lost spans left."""

_POLL_S: Final = 0.02  # how often a held batch looks at the queue and the close flag


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How the writer retries a batch that failed for a transient reason.

    Attributes:
        retries: attempts after the first, with backoff, before the batch is held.
        backoff_s: the first delay; it doubles with each attempt.
        backoff_cap_s: the longest delay, also the interval at which a held batch is tried.
    """

    retries: int = 0
    backoff_s: float = 0.05
    backoff_cap_s: float = 2.0

    def delay(self, attempt: int) -> float:
        """The delay before retry ``attempt`` (1 for the first retry)."""
        return float(min(self.backoff_cap_s, self.backoff_s * 2.0 ** (attempt - 1)))


class BatchWriter:
    """Commit queued rows in one transaction per batch, through a backend's sink.

    A batch closes after ``batch_rows`` rows or ``batch_s`` seconds after its first row,
    whichever comes first. A failed batch is rolled back and retried once, row by row in
    effect: rows that cannot be stored are rejected (counted in ``rows_rejected`` and by
    reason in ``rejected``, reported in the errors table), the others are written. When
    the retry fails too, the batch's rows are counted in ``rows_lost``. A transient fault
    is retried as ``retry`` says (see the module docstring). Both kinds of unstored rows
    are reported to the next flush marker.

    Args:
        queue: the write queue shared with the owner's ``save_*`` methods.
        sink: how batches reach the database.
        batch_rows: commit after this many rows at most.
        batch_s: commit at most this many seconds after a batch's first row.
        clock_ns: wall clock, ns since the epoch, for the time of rejection reports.
        on_failure: called once, with :attr:`failure`, when rows are first lost.
        retry: the retry policy for transient faults (SQLite has none).
        logger: where the writer logs (the backend's storage logger).
    """

    def __init__(
        self,
        queue: Inbox[int],
        sink: BatchSink,
        *,
        batch_rows: int,
        batch_s: float,
        clock_ns: Callable[[], int] = time.time_ns,
        on_failure: Callable[[StorageFailure], None] | None = None,
        retry: RetryPolicy = RetryPolicy(),  # frozen, never mutated
        logger: logging.Logger = logging.getLogger("lean_data.storage"),  # noqa: B008
    ) -> None:
        self.queue = queue
        self.sink = sink
        self.on_failure = on_failure
        self.failure: StorageFailure | None = None  # set when rows are first lost
        self.write_lock = asyncio.Lock()  # one open transaction at a time (batch or retention)
        self.error: StorageError | None = None  # why the writer task died, once it has
        self.closing = False  # set by close(): a held batch is not held any longer
        self._batch_rows = batch_rows
        self._batch_s = batch_s
        self._retry = retry
        self._log = logger
        self.rows_written = 0
        self.batches = 0
        self.write_failures = 0
        self.rows_lost = 0
        self.rejected: Counter[str] = Counter()  # rows rejected as unstorable, by reason
        self.last_batch_rows = 0
        self._clock_ns = clock_ns
        self.lost_spans: LostSpans = {}
        self._outage = False  # a batch was lost to a transient fault and none stored since

    @property
    def rows_unstored(self) -> int:
        """Rows lost with a failed batch or a dead writer, plus rows rejected."""
        return self.rows_lost + self.rows_rejected

    @property
    def rows_rejected(self) -> int:
        """Rows set aside as unstorable (each reported in the errors table)."""
        return sum(self.rejected.values())

    def statistics(self) -> dict[str, Any]:
        """Return a snapshot of the counters (see ``QueuedStore.statistics``)."""
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
        self._log.error(
            "storage FAILED (%s): %d rows lost, later rows may be lost too: %s", kind, count, exc
        )
        if self.on_failure is not None:
            try:
                self.on_failure(self.failure)
            except Exception:  # a user's hook must not end the writer
                self._log.exception("the storage failure hook raised")

    async def run(self) -> None:
        """Commit queued rows in batches until a stop marker, then drain what is left."""
        groups: list[list[Row]] = [[] for _ in range(sch.ENTRY_KINDS)]
        while True:
            count, control = await self._collect(groups)
            if count:
                await self._commit(groups, count)
            if count or control is not None:  # derived work before a flush is answered
                async with self.write_lock:
                    await self.sink.between_batches(idle=not self.queue)
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
        return take_entries(self.queue, groups, count, self._batch_rows)

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
        """Write one batch in one transaction; retry as needed; never raise (but cancel)."""
        try:
            await self._attempts(groups, count)
        except Exception as exc:  # a bug of ours must not end the writer (nor the engine)
            self._log.exception("storage batch of %d rows dropped: the writer failed", count)
            self._lose(count, "error", exc)
        finally:
            for rows in groups:
                rows.clear()

    async def _attempts(self, groups: list[list[Row]], count: int) -> None:
        """Try a batch until it is stored or lost: fast, then carefully; transient faults
        are retried (and held) before either counts."""
        careful = False
        transient = 0
        pending: Outcome | None = None  # of an attempt whose commit is in doubt
        while True:
            box: list[Outcome] = []  # the attempt's outcome, set just before its commit
            try:
                async with self.write_lock:
                    if pending is not None and await self.sink.resolve_in_doubt():
                        box.append(pending)  # it was stored; only the answer was lost
                    else:
                        pending = None
                        await (self._write_carefully if careful else self._write)(groups, box)
            except Exception as exc:  # anything one row can cause: the retry sorts it out
                self.write_failures += 1
                if box:
                    pending = box[0]
                if self.sink.is_transient(exc):
                    transient += 1
                    if await self._wait_to_retry(transient, count, exc):
                        continue
                elif not careful:
                    self._log.warning(
                        "storage batch of %d rows failed (attempt 1 of 2): %r", count, exc
                    )
                    careful = True
                    continue
                else:
                    self._log.warning(
                        "storage batch of %d rows failed (attempt 2 of 2): %r", count, exc
                    )
                self._drop(groups, count, exc)
                return
            self._stored(count, *box[0])
            return

    async def _wait_to_retry(self, attempt: int, count: int, exc: BaseException) -> bool:
        """Sleep before retrying a transient failure; False when the batch must be dropped.

        The first ``retries`` retries back off exponentially; then the batch is held and
        tried every ``backoff_cap_s`` while the queue has room and the store is not closing.
        """
        retry = self._retry
        backoff = not self._outage and attempt <= retry.retries
        if not backoff and self._must_drop():
            return False
        delay = retry.delay(attempt) if backoff else retry.backoff_cap_s
        if attempt == 1 or backoff:
            self._log.warning(
                "storage batch of %d rows failed (%s), retrying in %.2fs: %r",
                *(count, self.sink.failure_kind(exc), delay, exc),
            )
        deadline = asyncio.get_running_loop().time() + delay
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            if not backoff and self._must_drop():
                return False
            await asyncio.sleep(min(left, _POLL_S))
        return True

    def _must_drop(self) -> bool:
        """A held batch gives way when the queue behind it is full or the store closes."""
        return self.closing or len(self.queue) >= self.queue.maxsize

    def _drop(self, groups: list[list[Row]], count: int, exc: BaseException) -> None:
        self.lost_spans = with_spans(self.lost_spans, groups[sch.BARS], add=True)
        if self.sink.is_transient(exc):
            self._outage = True
        if self.failure is not None:  # the ERROR line was logged at the first loss
            self._log.warning("storage batch of %d rows dropped after a retry", count)
        self._lose(count, self.sink.failure_kind(exc), exc)

    def _stored(self, count: int, rejected: list[Rejected], lost: LostSpans) -> None:
        self._outage = False
        self.rows_written += count - len(rejected)
        self.batches += 1
        self.last_batch_rows = count - len(rejected)
        self.lost_spans = lost
        for kind, _, problem in rejected:
            self.rejected[problem.reason] += 1
            self._log.error("storage rejected a %s row: %s", ENTRY_NAMES[kind], problem)

    async def _write_carefully(self, groups: list[list[Row]], box: list[Outcome]) -> None:
        """Write and commit what can be stored of one batch, plus a report per rejected row.

        ``box`` receives the outcome (the rejected rows and the lost spans as
        :meth:`_write` sets them) just before the commit.
        """
        sink = self.sink
        rejected: list[Rejected] = []
        clean: list[list[Row]] = [[] for _ in groups]
        for kind, rows in enumerate(groups):
            for row in rows:
                try:
                    clean[kind].append(sink.clean(kind, clean_row(kind, row)))
                except Unstorable as problem:
                    rejected.append((kind, row, problem))
        async with sink.transaction(clean, immediate=True) as tx:
            for table in range(len(sch.WRITE_SQL)):
                if clean[table]:
                    clean[table], refused = await write_rows_bisecting(
                        tx, sink, table, clean[table]
                    )
                    rejected += [(table, row, problem) for row, problem in refused]
            bars = clean[sch.BARS]
            if bars:  # every batch: another process's retention may have removed one
                await tx.insert_series(bars)
            lost = with_spans(self.lost_spans, bars, add=False) if bars else self.lost_spans
            cut = [row for kind, row, _ in rejected if kind == sch.BARS]
            lost = with_spans(lost, cut, add=True) if cut else lost
            if clean[sch.COVERAGE]:
                await write_coverage(tx, clean[sch.COVERAGE], lost)
            if rejected:
                now = self._clock_ns()
                reports = [rejection_row(now, k, row, problem) for k, row, problem in rejected]
                await tx.write_rows(sch.ERRORS, reports, 0)
            box.append((rejected, lost))

    async def _write(self, groups: list[list[Row]], box: list[Outcome]) -> None:
        """Write and commit one batch.

        ``box`` receives the outcome just before the commit: no rejected rows and the lost
        spans that remain once it is committed (its bars are stored again); the writer
        keeps them only when the commit succeeded. The batch's bar series go into
        ``bar_series`` every time (no row when there already is one): a series another
        process's retention removed from it comes back with its next bars.
        """
        coverage = groups[sch.COVERAGE]
        # immediate with coverage: a read-modify-write of coverage rows
        async with self.sink.transaction(groups, immediate=bool(coverage)) as tx:
            for table in range(len(sch.WRITE_SQL)):
                if rows := groups[table]:
                    await tx.write_rows(table, rows, 0)
            bars = groups[sch.BARS]
            if bars:  # every batch: another process's retention may have removed one
                await tx.insert_series(bars)
            lost = self.lost_spans
            if lost and bars:
                lost = with_spans(lost, bars, add=False)
            if coverage:
                await write_coverage(tx, coverage, lost)
            box.append(([], lost))

    async def report_failure(self, where: str) -> None:
        """Write one ``storage_failed`` errors row for :attr:`failure`, if the store takes it."""
        failure = self.failure
        if failure is None:
            return
        message = f"{failure.rows_lost} rows were not stored ({failure.kind}): {failure.message}"
        row = (self._clock_ns(), "storage_failed", "", "", message, "")
        try:
            await self.sink.write_report(row)
        except Exception as exc:
            self._log.error(
                "%s: the storage_failed errors row could not be written: %s", where, exc
            )

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
            if table >= 0:  # a row, or a run of rows (Inbox.offer_row)
                lost += len(payload) if type(payload) is Batch else 1
        self._lose(lost, "writer_died", error)
