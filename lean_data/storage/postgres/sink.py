"""How the shared batch writer reaches PostgreSQL: one transaction per batch, bulk COPY.

:class:`PgSink` implements :class:`~lean_data.storage.sink.BatchSink`. One batch is one
transaction on one pooled connection:

1. the partitions the batch's rows need are created first, in their own transaction
   (:meth:`~lean_data.storage.postgres.partitions.Partitions.ensure`);
2. ``BEGIN`` travels with an upsert of this store's row in ``lean_writers`` (the attempt
   number, see below);
3. bars and quote bars, sorted by key (so concurrent writers lock shared keys in the same
   order), by one of two ways that store the same thing (:class:`DirectCopy` chooses):

   - *new keys*, the common case of a live stream: one binary COPY
     (``copy_records_to_table``) straight into the table under a savepoint. Where a key
     is already stored (a revision, a replayed or backfilled bar, another process's row)
     or appears twice in the batch, the unique index refuses the COPY, the savepoint is
     rolled back (nothing of it stays) and the rows take the other way;
   - *the upsert*: binary COPY into the connection's temporary staging table, then ONE
     ``INSERT ... SELECT DISTINCT ON (key) ... ON CONFLICT DO UPDATE ... WHERE <incoming
     wins>`` per table (:data:`~lean_data.storage.postgres.schema.UPSERT`): duplicates
     within the batch collapse to the version applying them one by one would keep.

   Ticks, metrics and errors have no natural key: binary COPY straight into the table
   (an append);
4. new bar series, coverage (each series held by an advisory lock, in sorted order, for
   its read-modify-write), still in the transaction;
5. ``COMMIT``; then the series and UTC hours of the minute bars the batch wrote become
   pending rollups, which :meth:`PgSink.refresh_rollups` recomputes.

No per-row round trips. The careful retry writes slices of the batch under savepoints
(the upsert's ``seq`` ranges of the same staging table).

Retry safety. A transaction that fails before its commit leaves nothing behind (staging
rows are rolled back with it), so the writer may simply write the batch again on a fresh
connection: upserts are idempotent, and appends happen once because the failed attempt's
are gone. A commit whose answer was lost may have gone through: :class:`CommitInDoubt` is
raised, and before the batch is written again :meth:`PgSink.resolve_in_doubt` reads this
store's ``lean_writers`` row: the attempt number it holds is the last one committed.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import asyncpg

from lean_data.models import Resolution
from lean_data.storage import schema as sch
from lean_data.storage.coverage import series_of
from lean_data.storage.postgres import records, rollups
from lean_data.storage.postgres.partitions import Partitions
from lean_data.storage.postgres.rollup_worker import WORKER_HOURS, RollupWorker, WorkerGone
from lean_data.storage.postgres.schema import (
    ATTEMPT_OF,
    COLUMNS,
    DELETE_COVERAGE,
    INSERT_COVERAGE,
    INSERT_SERIES,
    MARK_ATTEMPT,
    REPLACE,
    SERIES_LOCK,
    STAGE,
    UPSERT,
    pg_sql,
)
from lean_data.storage.rows import error_row
from lean_data.storage.sanitize import Unstorable
from lean_data.storage.schema import Row, SeriesKey
from lean_data.storage.sink import CommitInDoubt, CoverageRow

__all__ = ["REFRESH_EVERY", "DirectCopy", "PgSink", "PgTx"]

REFRESH_EVERY = 16
"""Under a steady load, refresh the rollups at least every this many batches."""

logger = logging.getLogger("lean_data.storage.postgres")

_STAGE_COLUMNS = {table: (*COLUMNS[table], "seq") for table in STAGE}
_KEY_ORDER = operator.itemgetter(1, 2, 3, 0)  # (symbol, resolution, ts_event, feed) of a row


class DirectCopy:
    """Writes a batch's keyed rows of one table straight into it when every key is new.

    Straight in costs the server about half of staging and upserting, and it is right
    whenever every key is new. A batch with a stored or repeated key fails it (rolled back
    to a savepoint: nothing of it stays) and pays both. After such a conflict the next
    batch is staged at once, and after a further conflict twice as many (up to
    :attr:`MAX_SKIP`), so a series that keeps revising its bars wastes one COPY in
    ``MAX_SKIP`` batches at most; a success starts again at one.

    Args:
        table: the entry kind (bars or quote bars).
    """

    MAX_SKIP = 64

    __slots__ = ("_penalty", "_skip", "conflicts", "copied", "table")

    def __init__(self, table: int) -> None:
        self.table = table
        self._skip = 0  # batches still to stage before trying again
        self._penalty = 1  # how many to skip after the next conflict
        self.copied = 0  # writes that went straight in
        self.conflicts = 0  # writes whose COPY found a stored or repeated key

    def counts(self) -> dict[str, int]:
        """Writes that went straight in (``copied``), and those whose COPY met a stored
        or repeated key (``conflicts``; they were upserted)."""
        return {"copied": self.copied, "conflicts": self.conflicts}

    async def write(self, conn: asyncpg.Connection, schema: str, converted: list[Row]) -> bool:
        """COPY ``converted`` into the table; False when they were not written (skipped
        after a recent conflict, or a key was already there): the caller upserts them."""
        if self._skip:
            self._skip -= 1
            return False
        await conn.execute("SAVEPOINT lean_direct")
        try:
            await conn.copy_records_to_table(
                sch.TABLE_NAMES[self.table],
                records=converted,
                columns=COLUMNS[self.table],
                schema_name=schema,
            )
        except asyncpg.UniqueViolationError:
            await conn.execute("ROLLBACK TO SAVEPOINT lean_direct; RELEASE SAVEPOINT lean_direct")
            self.conflicts += 1
            self._skip = self._penalty
            self._penalty = min(self._penalty * 2, self.MAX_SKIP)
            return False
        await conn.execute("RELEASE SAVEPOINT lean_direct")
        self.copied += 1
        self._penalty = 1
        return True


class PgTx:
    """One open batch transaction on a pooled connection (see :class:`BatchTx`).

    Args:
        conn: the connection, inside ``BEGIN``.
        schema: the store's schema (the advisory lock keys of its series).
        targets: the rollup resolutions (none: no hours are noted).
        direct: per upserted table, whether to COPY straight in first (the sink's).
    """

    def __init__(
        self,
        conn: asyncpg.Connection,
        schema: str,
        targets: Sequence[Resolution] = (),
        direct: dict[int, DirectCopy] | None = None,
    ) -> None:
        self.conn = conn
        self._schema = schema
        self._rollups = targets
        self._direct = direct or {}
        self.touched: rollups.Pending = {}  # series and hours of the minutes it wrote

    async def write_rows(self, table: int, rows: list[Row], offset: int) -> None:
        convert = records.to_record
        converted = [convert(table, row) for row in rows]
        if table in REPLACE:  # derivatives: keyed, the last saved wins
            columns = [list(column) for column in zip(*converted, strict=True)]
            await self.conn.execute(REPLACE[table], *columns)
            return
        if table not in STAGE:
            await self.conn.copy_records_to_table(
                sch.TABLE_NAMES[table],
                records=converted,
                columns=COLUMNS[table],
                schema_name=self._schema,
            )
            return
        converted.sort(key=_KEY_ORDER)
        direct = self._direct.get(table)
        if direct is None or not await direct.write(self.conn, self._schema, converted):
            staged = [(*record, offset + i) for i, record in enumerate(converted)]
            await self.conn.copy_records_to_table(
                STAGE[table], records=staged, columns=_STAGE_COLUMNS[table]
            )
            await self.conn.execute(UPSERT[table], offset, offset + len(rows))
        if table == sch.BARS and self._rollups:  # a row later refused costs a recompute
            rollups.touched(self.touched, converted)

    async def savepoint(self) -> None:
        await self.conn.execute("SAVEPOINT lean_rows")

    async def rollback_to_savepoint(self) -> None:
        await self.conn.execute("ROLLBACK TO SAVEPOINT lean_rows; RELEASE SAVEPOINT lean_rows")

    async def release_savepoint(self) -> None:
        await self.conn.execute("RELEASE SAVEPOINT lean_rows")

    async def insert_series(self, bars: Sequence[Row]) -> None:
        ordered = sorted(set(map(series_of, bars)))
        columns = [list(column) for column in zip(*ordered, strict=True)]
        await self.conn.execute(INSERT_SERIES, *columns)

    async def lock_series(self, keys: Sequence[SeriesKey]) -> None:
        """Hold each series' coverage (advisory locks, sorted, so never a deadlock)."""
        names = sorted({"\x1f".join((self._schema, *key)) for key in keys})
        if names:
            await self.conn.execute(SERIES_LOCK, names)

    async def coverage_near(self, key: SeriesKey, start: int, end: int) -> list[CoverageRow]:
        rows = await self.conn.fetch(pg_sql(sch.COVERAGE_TOUCHING), *key, start, end)
        return [(int(s), int(e), bool(flag)) for s, e, flag in rows]

    async def replace_coverage(
        self, key: SeriesKey, starts: Sequence[int], rows: Sequence[CoverageRow]
    ) -> None:
        if starts:
            await self.conn.execute(DELETE_COVERAGE, *key, list(starts))
        if rows:
            begins, ends, flags = (list(column) for column in zip(*rows, strict=True))
            await self.conn.execute(INSERT_COVERAGE, *key, begins, ends, flags)


class PgSink:
    """Write batches through the pool in :attr:`pool` (set by the store while it is open).

    Args:
        schema: the store's schema.
        clock_ns: wall clock, for the ``lean_writers`` row.
    """

    def __init__(
        self,
        schema: str,
        clock_ns: Callable[[], int] = time.time_ns,
        targets: Sequence[Resolution] = (),
    ) -> None:
        self.pool: asyncpg.Pool | None = None
        self.rollups = tuple(targets)
        self.pending_rollups: rollups.Pending = {}  # committed, not yet rolled up
        self.rollup_failures = 0
        self._batches = 0  # since the last rollup refresh
        self.direct = {table: DirectCopy(table) for table in STAGE}  # straight in, or staged
        self.worker: RollupWorker | None = None  # large refreshes, when the store has one
        self.worker_refreshes = 0  # refreshes the worker ran
        self.worker_failures = 0  # refreshes the worker did not answer (done here instead)
        self.partitions = Partitions(schema)
        self._schema = schema
        self._clock_ns = clock_ns
        self._writer_id = uuid.uuid4().hex  # this store's row in lean_writers
        self._attempt = 0
        self._in_doubt: int | None = None  # the attempt whose commit was not answered
        self._refreshing = asyncio.Lock()  # one refresh at a time, in the background or not
        self._behind: asyncio.Task[None] | None = None  # a refresh under a steady load (held:
        # the loop keeps only a weak reference to a task)

    def _pool(self) -> asyncpg.Pool:
        if self.pool is None:
            raise asyncpg.InterfaceError("the connection pool was closed under the writer")
        return self.pool

    @asynccontextmanager
    async def transaction(
        self, groups: Sequence[list[Row]] | None, *, immediate: bool
    ) -> AsyncIterator[PgTx]:
        """Open a batch transaction (see the module docstring); ``immediate`` has no
        meaning here: row locks and the series' advisory locks serialise writers."""
        async with self._transaction(groups, marked=True) as tx:
            yield tx

    @asynccontextmanager
    async def _transaction(
        self, groups: Sequence[list[Row]] | None, *, marked: bool
    ) -> AsyncIterator[PgTx]:
        """A transaction; ``marked``: it records its attempt in ``lean_writers`` (the
        writer's batches, whose lost commit answers :meth:`resolve_in_doubt` settles)."""
        async with self._pool().acquire() as conn:
            if groups is not None:
                await self.partitions.ensure(conn, groups)
            attempt = 0
            if marked:
                self._attempt += 1
                attempt = self._attempt
                mark = MARK_ATTEMPT.format(
                    writer=f"'{self._writer_id}'", attempt=attempt, ts=self._clock_ns()
                )
                await conn.execute(f"BEGIN; {mark}")
            else:
                await conn.execute("BEGIN")
            tx = PgTx(conn, self._schema, self.rollups, self.direct)
            try:
                yield tx
            except BaseException as exc:
                if not isinstance(exc, asyncio.CancelledError):  # else the pool resets it
                    await _rollback(conn)
                if records.is_missing_partition(exc):
                    self.partitions.clear()
                raise
            try:
                await conn.execute("COMMIT")
            except Exception as exc:
                if records.is_transient(exc) and marked:
                    self._in_doubt = attempt
                    self._add_pending(tx.touched)  # maybe stored: a refresh costs nothing
                    raise CommitInDoubt(f"the commit was not answered: {exc!r}") from exc
                raise
            self._add_pending(tx.touched)

    def _add_pending(self, touched: rollups.Pending) -> None:
        for key, hours in touched.items():
            self.pending_rollups.setdefault(key, set()).update(hours)

    async def between_batches(self, *, idle: bool) -> None:
        """Refresh the pending rollups: now when the writer is idle (a flush is answered
        after them), in the background every few batches under a steady load."""
        self._batches += 1
        if not self.pending_rollups:
            return
        if idle:
            await self.refresh_rollups()
        elif self._batches >= REFRESH_EVERY and (self._behind is None or self._behind.done()):
            self._behind = asyncio.get_running_loop().create_task(
                self.refresh_rollups(), name=f"lean_data.rollups:{self._schema}"
            )

    @property
    def refreshing(self) -> bool:
        """Whether a refresh is running (in the background, say)."""
        return self._refreshing.locked()

    async def refresh_rollups(self) -> None:
        """Recompute the rollups of the pending hours in one transaction; never raises.

        One refresh at a time: a call waits for a refresh running in the background, then
        refreshes what is pending still. A connection fault keeps the hours pending (the next
        refresh tries again). A series that cannot be rolled up (its stored minutes refused
        by ``resample_bars``, or another database error) keeps its old rollups and is counted
        (:attr:`rollup_failures`), logged and written to the errors table as
        ``rollup_failed``: rollups are derived data and never stop the writer.
        """
        async with self._refreshing:
            await self._refresh()

    async def _refresh(self) -> None:
        self._batches = 0
        pending, self.pending_rollups = self.pending_rollups, {}
        if not pending or not self.rollups:
            return
        try:
            failures = await self._refreshed(pending)
        except asyncio.CancelledError:  # the transaction rolled back: the hours stay
            self._add_pending(pending)  # pending (close refreshes or counts them)
            raise
        if failures is None:  # a connection fault: the next refresh tries again
            self._add_pending(pending)
            return
        for feed, symbol, why in failures:  # counted, logged and in the errors table
            self.rollup_failures += 1
            message = f"the rollups of {feed}/{symbol} were not refreshed: {why}"
            logger.error("%s", message)
            try:
                await self.write_report(
                    error_row(self._clock_ns(), "rollup_failed", feed, symbol, message, "")
                )
            except Exception as exc:  # the database is failing: the log line stays
                logger.warning("could not record a rollup failure: %r", exc)

    async def _refreshed(self, pending: rollups.Pending) -> list[rollups.Failure] | None:
        """Refresh ``pending``: in the worker process when it is large (and the worker
        answers), else on a pooled connection; the same function in one transaction.
        Returns the series not refreshed with why, or None (logged) after a connection
        fault, here or in the worker."""
        worker = self.worker
        if worker is not None and sum(map(len, pending.values())) >= WORKER_HOURS:
            try:
                outcome, detail = await worker.refresh(self.rollups, pending)
            except WorkerGone as exc:  # not started again: this store refreshes here now
                self.worker_failures += 1
                self.worker = None
                logger.warning("%s; refreshing the rollups in this process from now on", exc)
            else:
                self.worker_refreshes += 1
                if outcome == "ok":
                    return list(detail)
                if outcome == "transient":
                    logger.warning("rollup refresh postponed: in the worker, %s", detail)
                    return None
                return _failed(pending, str(detail))
        try:
            async with self._pool().acquire() as conn, conn.transaction():
                return await rollups.refresh(conn, self._schema, self.rollups, pending)
        except Exception as exc:
            if records.is_transient(exc):
                logger.warning("rollup refresh postponed: %r", exc)
                return None
            return _failed(pending, repr(exc))

    async def resolve_in_doubt(self) -> bool:
        attempt = self._in_doubt
        if attempt is None:
            return False
        async with self._pool().acquire() as conn:
            stored = await conn.fetchval(ATTEMPT_OF, self._writer_id)
        self._in_doubt = None
        return bool(stored == attempt)

    def clean(self, kind: int, row: Row) -> Row:
        return records.to_record(kind, row)

    def is_row_error(self, exc: BaseException) -> bool:
        return records.is_row_error(exc)

    def refusal(self, row: Row, exc: BaseException) -> Unstorable:
        return records.refusal(row, exc)

    def is_transient(self, exc: BaseException) -> bool:
        return records.is_transient(exc)

    def failure_kind(self, exc: BaseException) -> str:
        return records.failure_kind(exc)

    async def write_report(self, row: Row) -> None:
        # unmarked: a report (from a background refresh too) never stands for a batch
        async with self._transaction(None, marked=False) as tx:
            await tx.write_rows(sch.ERRORS, [row], 0)


def _failed(pending: rollups.Pending, why: str) -> list[rollups.Failure]:
    """Every pending series, not refreshed because of ``why``."""
    return [(feed, symbol, why) for feed, symbol in sorted(pending)]


async def _rollback(conn: asyncpg.Connection) -> None:
    """Roll back; a connection that died has nothing left to roll back (and asyncpg has
    already detached it from its pool proxy: any call on it raises InterfaceError)."""
    try:
        if not conn.is_closed():
            await conn.execute("ROLLBACK")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        logger.debug("storage rollback skipped: %r", exc)
