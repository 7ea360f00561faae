"""The part of every store that is the same for each backend: lifecycle, queued writes, reads.

:class:`QueuedStore` implements the :class:`~lean_data.storage.base.Storage` interface up to
the backend: ``save_*`` turn an item into a row tuple (:mod:`lean_data.storage.rows`) and put
it on a bounded queue; one writer task, owned by the store (or by the ``task_group`` given
to :meth:`~QueuedStore.open`), commits the rows in batches through the backend's sink
(:mod:`lean_data.storage.writer`); every read first waits until the rows queued before it
are committed (:meth:`~QueuedStore.flush` gives the same guarantee to other connections).

A backend subclass provides :meth:`~QueuedStore._connect` / :meth:`~QueuedStore._disconnect`
(the connection and the schema), :meth:`~QueuedStore._query` (run one read statement),
:meth:`~QueuedStore._retain` (retention) and :meth:`~QueuedStore._where` (what to name in
messages, never a password). :class:`~lean_data.storage.sqlite.DataPersistence` and
:class:`~lean_data.storage.postgres.PostgresStorage` are the two.

Task ownership: the writer task's body handles its own end: should it fail or be
cancelled, storage is degraded in the task itself (no done-callback), and it never raises
but for cancellation, so a failing store never tears down the TaskGroup that owns it.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn, Self

from lean_data.derivatives import DerivativesData, FundingRate, Liquidation, MarkPrice, OpenInterest
from lean_data.errors import ConfigError, EngineClosedError, EngineStateError, StorageError
from lean_data.inbox import Inbox
from lean_data.models import NS_PER_DAY, MarketData, Resolution
from lean_data.quality.levels import Verdict
from lean_data.storage import derivative_rows
from lean_data.storage import schema as sch
from lean_data.storage.book_store import BookSnapshots
from lean_data.storage.failures import StorageFailure
from lean_data.storage.queries import Queries
from lean_data.storage.rows import MarketIntake, error_row, market_entry, metrics_payload
from lean_data.storage.sink import BatchSink
from lean_data.storage.writer import STOP, BatchWriter, Entry, RetryPolicy

__all__ = ["QueuedStore"]

_NEW, _OPEN, _CLOSED = "new", "open", "closed"


class QueuedStore(Queries, BookSnapshots):
    """Lifecycle, queued writes and barrier'd reads of a store (see the module docstring).

    Args:
        sink: the backend's batch sink (connected by :meth:`_connect`).
        sql: the backend's read statements.
        batch_rows: commit after this many rows at most.
        batch_ms: commit at most this many milliseconds after a batch's first row.
        queue_size: capacity of the write queue; ``save_market_data`` waits when it is full.
        clock_ns: wall clock in ns since the epoch, for default timestamps and windows.
        on_failure: called once (from the writer task) when rows are first lost.
        retry: how the writer retries transient faults.
        logger: the backend's storage logger.

    Raises:
        ConfigError: a size or duration is not positive.
    """

    def __init__(
        self,
        sink: BatchSink,
        sql: sch.QuerySql,
        *,
        batch_rows: int,
        batch_ms: float,
        queue_size: int,
        clock_ns: Callable[[], int],
        on_failure: Callable[[StorageFailure], None] | None,
        retry: RetryPolicy,
        logger: logging.Logger,
    ) -> None:
        kind = type(self).__name__
        for name, value in (("batch_rows", batch_rows), ("queue_size", queue_size)):
            if value <= 0:
                raise ConfigError(f"{kind} {name} must be > 0, got {value!r}")
        if batch_ms <= 0:
            raise ConfigError(f"{kind} batch_ms must be > 0, got {batch_ms!r}")
        super().__init__(clock_ns, sql)
        self._queue: Inbox[int] = Inbox(queue_size)
        self.intake = MarketIntake(self._queue, clock_ns, self._reject)
        """Where market data enters the queue (:meth:`save_market_data_nowait` and the
        engine's pipeline, which calls it directly); it holds the accepting flag."""
        self._batch_writer = BatchWriter(
            self._queue,
            sink,
            batch_rows=batch_rows,
            batch_s=batch_ms / 1000.0,
            clock_ns=clock_ns,
            on_failure=on_failure,
            retry=retry,
            logger=logger,
        )
        self._log = logger
        self._writer: asyncio.Task[None] | None = None  # runs self._run_writer()
        self._state = _NEW

    @property
    def _accepting(self) -> bool:
        """Whether saves are taken (open, writer alive): the intake's flag, its one owner."""
        return self.intake.accepting

    @_accepting.setter
    def _accepting(self, accepting: bool) -> None:
        self.intake.accepting = accepting

    # ----------------------------------------------------------------- the backend

    @abstractmethod
    def _where(self) -> str:
        """The store's location for messages and the writer task's name (no password)."""

    @abstractmethod
    async def _connect(self) -> None:
        """Connect, create or migrate the schema and make the sink ready to write."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Release the connection(s); idempotent."""

    @abstractmethod
    async def _query(self, sql: str, params: tuple[Any, ...]) -> list[sch.Row]:
        """Run one read statement now; raise StorageError when it fails."""

    @abstractmethod
    async def _retain(self, cutoff: int) -> dict[str, int]:
        """Delete what retention removes before ``cutoff`` (ns); hold the write lock."""

    # ----------------------------------------------------------------- lifecycle

    async def open(self, *, task_group: asyncio.TaskGroup | None = None) -> None:
        """Connect, create or migrate the schema and start the writer task.

        Calling it again while open does nothing.

        Args:
            task_group: the group that owns the writer task (default: this instance owns
                it). The group must outlive :meth:`close`, which stops the task; a storage
                failure never raises out of the task, so it never cancels the group.

        Raises:
            EngineClosedError: the instance was closed.
            StorageError: the database cannot be opened, holds a newer schema or cannot be
                written (the message names it and the problem).
        """
        if self._state == _OPEN:
            return
        if self._state == _CLOSED:
            raise EngineClosedError(f"{type(self).__name__} was closed; create a new instance")
        await self._connect()
        self._state = _OPEN
        self._accepting = True
        name = f"lean_data.storage:{self._where()}"
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
        self._log.error("storage writer of %s stopped: %s", self._where(), error, exc_info=error)

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

    async def close(self) -> None:
        """Commit everything queued, stop the writer and disconnect (idempotent)."""
        if self._state == _CLOSED:
            return
        self._check_writer()
        was_open = self._state == _OPEN
        self._state, self._accepting, writer = _CLOSED, False, self._writer
        self._batch_writer.closing = True  # a batch held for a lost connection gives way
        try:
            if was_open and writer is not None and not writer.done():
                await self._queue.put(STOP, None)
                self._queue.wake()
                await asyncio.wait({writer})
            if was_open and self._batch_writer.failure is not None:
                await self._batch_writer.report_failure(self._where())
        finally:
            if writer is not None and not writer.done():  # close cancelled: no orphan writer
                writer.cancel()
            await self._disconnect()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __del__(self) -> None:
        if getattr(self, "_state", None) == _OPEN:  # __init__ may have raised early
            warnings.warn(
                f"{type(self).__name__}({self._where()!r}) was not closed; "
                "use 'async with' or close()",
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
        entry = market_entry(item, feed, quality, self._clock_ns)
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
        return self.intake.offer(item, feed, quality)

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
        row = error_row(self._now(ts_ns), kind, feed, symbol, message, detail)
        if not self._accepting:
            self._reject()
        if not self._queue.offer(sch.ERRORS, row):
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

    async def save_funding_rates(self, rates: Iterable[FundingRate], *, feed: str = "") -> None:
        """Queue funding rates, stored by (feed, symbol, ts_event): the last saved wins."""
        await self._save_records(FundingRate, rates, feed)

    async def save_open_interest(self, items: Iterable[OpenInterest], *, feed: str = "") -> None:
        """Queue open-interest records, stored by (feed, symbol, ts_event) (last wins)."""
        await self._save_records(OpenInterest, items, feed)

    async def save_mark_prices(self, prices: Iterable[MarkPrice], *, feed: str = "") -> None:
        """Queue mark prices, stored by (feed, symbol, ts_event) (last wins)."""
        await self._save_records(MarkPrice, prices, feed)

    async def save_liquidations(self, items: Iterable[Liquidation], *, feed: str = "") -> None:
        """Queue liquidations, by (feed, symbol, ts_event, side, price, quantity) (last wins)."""
        await self._save_records(Liquidation, items, feed)

    async def _save_records(
        self, kind: type[DerivativesData], records: Iterable[DerivativesData], feed: str
    ) -> None:
        """Queue derivatives records of one type; wait only while the queue is full.

        Raises:
            TypeError: a record is not a ``kind`` (none of them is queued).
            EngineStateError: not opened yet (EngineClosedError once closed).
            StorageError: the writer task has died.
        """
        if not self._accepting:
            self._reject()
        for entry in derivative_rows.entries(kind, records, feed, self._clock_ns):
            if not self._queue.offer(*entry):
                await self._put(entry)

    def _offer(self, entry: Entry) -> bool:
        if not self._accepting:
            self._reject()
        return self._queue.offer(*entry)

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
        kind = type(self).__name__
        if self._state == _CLOSED:
            raise EngineClosedError(f"{kind} is closed; create a new instance")
        if (error := self._batch_writer.error) is not None:
            raise StorageError(f"storage is unusable: {error}") from error
        raise EngineStateError(f"{kind} is not open; call open() or use 'async with'")

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
        (those by reason: ``int_range``, ``text_encoding``, ``null``, ``type``, and the
        backend's own refusals: ``sqlite``, ``postgres``), ``last_batch_rows`` and
        ``failed`` (:attr:`failure` as a dict, or None).
        """
        return self._batch_writer.statistics()

    async def _fetch(
        self, sql: str, params: tuple[Any, ...], *, wait: bool = True
    ) -> list[sch.Row]:
        """Run a query after the rows queued so far are committed (``wait=False``: now)."""
        await self._ready_to_read(wait=wait)
        return await self._query(sql, params)

    async def _ready_to_read(self, *, wait: bool) -> None:
        """Refuse a read unless open; ``wait``: first let the rows queued so far commit."""
        if self._state != _OPEN:
            self._reject()
        if wait:
            await self._barrier(strict=False)
        if self._state != _OPEN:
            self._reject()

    async def apply_retention(self, days: float) -> dict[str, int]:
        """Delete rows older than ``days``; return the number deleted per table.

        Market rows are aged by receive time (``ts_recv``: how long they have been kept),
        metrics and errors by ``ts``. Coverage stays truthful: each trade-bar series that
        lost bars loses its covered (not its known-empty) intervals from its first to past
        its last deleted bar's open time, and :meth:`bar_series_keys` forgets series left
        without bars. Meant for start-up or a daily job, not for every batch (each backend
        says what it scans).

        Raises:
            ValueError: ``days`` is not positive.
            StorageError: the deletion failed (nothing was deleted).
        """
        if not days > 0:
            raise ValueError(f"days must be > 0, got {days!r}")
        cutoff = self._clock_ns() - int(days * NS_PER_DAY)
        await self._barrier(strict=False)
        if self._state != _OPEN:
            self._reject()
        async with self._batch_writer.write_lock:
            return await self._retain(cutoff)
