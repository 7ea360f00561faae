"""What a storage backend gives the shared batch writer: a transaction to write one batch.

The batched writer (:mod:`lean_data.storage.writer`) owns everything that is the same for
every backend: the queue, batching, flush markers, stop, the careful retry that rejects
unstorable rows, lost-span bookkeeping for coverage, the degraded state. What differs is
how one batch reaches the database; a backend provides that as a :class:`BatchSink`:

- :meth:`BatchSink.transaction` opens one transaction (:class:`BatchTx`) that commits when
  the ``async with`` block ends without an exception and rolls back when it raises.
- :meth:`BatchTx.write_rows` writes rows of one table (an upsert for bars and quote bars,
  an append for the others); the savepoint methods let :func:`write_rows_bisecting` find the
  rows the database refuses one by one.
- The coverage methods are the two steps of the read-modify-write that
  :func:`lean_data.storage.coverage.merge_coverage` performs.
- The classifiers say what an exception means: a row's fault (reject the row), a transient
  fault of the connection (retry the batch on a fresh one), or a fault of the database
  (the batch is lost); and whether a commit may have gone through although its
  acknowledgement was lost (:class:`CommitInDoubt`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from lean_data.storage.sanitize import Unstorable
from lean_data.storage.schema import Row, SeriesKey

__all__ = ["BatchSink", "BatchTx", "CommitInDoubt", "CoverageRow", "write_rows_bisecting"]

CoverageRow = tuple[int, int, bool]
"""(start_ns, end_ns, empty) of one stored coverage row."""


class CommitInDoubt(Exception):
    """The connection failed while committing: the batch may or may not be stored.

    The writer keeps the batch's outcome and asks :meth:`BatchSink.resolve_in_doubt`
    before writing it again, so a batch whose commit did go through is not appended twice.
    """


class BatchTx(Protocol):
    """One open transaction of a :class:`BatchSink` (see the module docstring)."""

    async def write_rows(self, table: int, rows: list[Row], offset: int) -> None:
        """Write ``rows`` of table index ``table``; ``offset`` is the first row's index
        within the batch's rows of that table (the bisection writes slices)."""
        ...

    async def savepoint(self) -> None:
        """Set the savepoint :meth:`rollback_to_savepoint` returns to."""
        ...

    async def rollback_to_savepoint(self) -> None:
        """Undo everything since :meth:`savepoint` and release it."""
        ...

    async def release_savepoint(self) -> None:
        """Keep everything since :meth:`savepoint` and release it."""
        ...

    async def insert_series(self, bars: Sequence[Row]) -> None:
        """Add the series of these queued ``bars`` rows to ``bar_series`` (series already
        there are left alone)."""
        ...

    async def lock_series(self, keys: Sequence[SeriesKey]) -> None:
        """Hold the coverage of these series until the transaction ends."""
        ...

    async def coverage_near(self, key: SeriesKey, start: int, end: int) -> list[CoverageRow]:
        """Return the coverage rows of ``key`` that overlap or touch ``[start, end]``."""
        ...

    async def replace_coverage(
        self, key: SeriesKey, starts: Sequence[int], rows: Sequence[CoverageRow]
    ) -> None:
        """Delete the coverage rows of ``key`` starting at ``starts``; insert ``rows``."""
        ...


class BatchSink(Protocol):
    """How one backend writes a batch (see the module docstring)."""

    def transaction(
        self, groups: Sequence[list[Row]] | None, *, immediate: bool
    ) -> AbstractAsyncContextManager[BatchTx]:
        """Open a transaction for a batch of ``groups`` (rows by entry kind, for any
        preparation such as creating partitions; None: no market rows). ``immediate``:
        take the write lock at once (the batch reads and rewrites coverage). Once it has
        committed, a sink may empty the lists of ``groups`` (SQLite does, in its
        connection's thread); a transaction that fails leaves them as they were."""
        ...

    def clean(self, kind: int, row: Row) -> Row:
        """Return a row :func:`~lean_data.storage.sanitize.clean_row` accepted, converted
        as this backend stores it; raise Unstorable for a value it cannot hold."""
        ...

    def is_row_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the fault of the rows written (bisect and reject them)."""
        ...

    def refusal(self, row: Row, exc: BaseException) -> Unstorable:
        """Why the database refused ``row`` alone with ``exc``."""
        ...

    def is_transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a connection fault worth retrying on a fresh connection."""
        ...

    def failure_kind(self, exc: BaseException) -> str:
        """The :class:`~lean_data.storage.failures.StorageFailure` kind of ``exc``."""
        ...

    async def resolve_in_doubt(self) -> bool:
        """Whether the last commit that raised :class:`CommitInDoubt` was in fact stored
        (False when there is none; raises while that cannot be known yet)."""
        ...

    async def write_report(self, row: Row) -> None:
        """Write and commit one errors row (the ``storage_failed`` report at close)."""
        ...

    async def between_batches(self, *, idle: bool) -> None:
        """Work derived from committed batches, done by the writer between two batches
        (``idle``: nothing is queued); it must not raise."""
        ...


async def write_rows_bisecting(
    tx: BatchTx, sink: BatchSink, table: int, rows: list[Row]
) -> tuple[list[Row], list[tuple[Row, Unstorable]]]:
    """Write ``rows`` in the open transaction, bisecting under a savepoint on a row error.

    Returns:
        The rows written, in order, and each row the database refused on its own with why.

    Raises:
        Exception: an error of the database rather than of a row.
    """
    written: list[Row] = []
    refused: list[tuple[Row, Unstorable]] = []
    chunks: list[tuple[int, list[Row]]] = [(0, rows)]
    while chunks:
        offset, chunk = chunks.pop()
        await tx.savepoint()
        try:
            await tx.write_rows(table, chunk, offset)
        except Exception as exc:
            if not sink.is_row_error(exc):
                raise
            await tx.rollback_to_savepoint()
            if len(chunk) == 1:
                refused.append((chunk[0], sink.refusal(chunk[0], exc)))
            else:
                half = len(chunk) // 2  # the first half is written first
                chunks += ((offset + half, chunk[half:]), (offset, chunk[:half]))
            continue
        await tx.release_savepoint()
        written += chunk
    return written, refused
