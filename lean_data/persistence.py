"""SQLite storage of market data, metrics and errors, with one batched writer task.

Writes never touch SQLite on the caller's path: ``save_*`` turns the item into a row tuple
and puts it on a bounded queue. One writer task, owned by the :class:`DataPersistence`,
takes rows off that queue and commits them with one ``executemany`` per table per
transaction, after ``batch_rows`` rows or ``batch_ms`` milliseconds, whichever comes first.

Consistency: every read first waits until the rows queued before it are committed, so a
caller reads its own writes. :meth:`DataPersistence.flush` gives the same guarantee to other
connections (another process, a ``sqlite3`` shell).

Time windows: ``get_recent_data``, ``quality_summary`` and ``apply_retention`` select
market rows by **receive time** (``ts_recv``), not event time: a replayed or backfilled bar
has an old event time but was stored just now, and should count as recent and survive
retention until it has been kept for ``days``. An item saved with ``ts_recv == 0``
(unknown, e.g. read from a file) is stored with the time it was saved. Metrics and errors
are selected by their own ``ts``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import warnings
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final, NoReturn

import aiosqlite
import orjson

from lean_data import _schema as sch
from lean_data.errors import ConfigError, EngineClosedError, EngineStateError, StorageError
from lean_data.models import (
    NS_PER_DAY,
    NS_PER_HOUR,
    MarketData,
    QuoteBar,
    Resolution,
    Tick,
    TradeBar,
    datetime_to_ns,
)
from lean_data.quality import Verdict

__all__ = ["DataPersistence"]

logger = logging.getLogger(__name__)

_FLUSH: Final = -1
_STOP: Final = -2
_NEW, _OPEN, _CLOSED = "new", "open", "closed"

_Entry = tuple[int, Any]
_FlushMarker = tuple["asyncio.Future[None]", int]


class DataPersistence:
    """Store bars, quotes, ticks, metrics and errors in one SQLite file (WAL mode).

    Use it as an async context manager, or call :meth:`open` and :meth:`close`. A closed
    instance cannot be reopened; create a new one. The writer task it owns is named
    ``lean_data.storage:<path>``; a failed batch is retried once, then its rows are counted
    in ``statistics()["rows_lost"]`` and reported by the next :meth:`flush`.

    Args:
        path: the SQLite file (created with its tables when missing).
        batch_rows: commit after this many rows at most.
        batch_ms: commit at most this many milliseconds after a batch's first row.
        queue_size: capacity of the write queue; ``save_market_data`` waits when it is full.
        busy_timeout_ms: how long SQLite waits for another connection's write lock.
        clock_ns: wall clock in ns since the epoch, for default timestamps and windows.

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
        self._path = str(path)
        self._batch_rows = batch_rows
        self._batch_s = batch_ms / 1000.0
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._clock_ns = clock_ns
        self._queue: asyncio.Queue[_Entry] = asyncio.Queue(queue_size)
        self._write_lock = asyncio.Lock()
        self._db: aiosqlite.Connection | None = None
        self._writer: asyncio.Task[None] | None = None
        self._writer_error: StorageError | None = None
        self._state = _NEW
        self._accepting = False
        self._rows_written = 0
        self._batches = 0
        self._write_failures = 0
        self._rows_lost = 0
        self._last_batch_rows = 0

    # ----------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Connect, set the pragmas, create the schema and start the writer task.

        Calling it again while open does nothing.

        Raises:
            EngineClosedError: the instance was closed.
            StorageError: the file cannot be opened or holds a newer schema.
        """
        if self._state == _OPEN:
            return
        if self._state == _CLOSED:
            raise EngineClosedError("DataPersistence was closed; create a new instance")
        try:
            # Probe first: when aiosqlite.connect() itself fails, its worker thread may
            # report to the event loop after the loop has closed.
            await asyncio.to_thread(_probe, self._path)
            self._db = await aiosqlite.connect(self._path)
            await self._prepare(self._db)
        except (sqlite3.Error, OSError) as exc:
            await self._discard_connection()
            raise StorageError(f"cannot open SQLite database {self._path!r}: {exc}") from exc
        except StorageError:
            await self._discard_connection()
            raise
        self._state = _OPEN
        self._accepting = True
        self._writer = asyncio.create_task(self._run(), name=f"lean_data.storage:{self._path}")
        self._writer.add_done_callback(self._on_writer_done)

    async def _prepare(self, db: aiosqlite.Connection) -> None:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms:d}")
        for statement in sch.DDL:
            await db.execute(statement)
        rows = list(await db.execute_fetchall("SELECT version FROM schema_version"))
        if not rows:
            await db.execute(
                "INSERT INTO schema_version (version) VALUES (?)", (sch.SCHEMA_VERSION,)
            )
        elif rows[0][0] > sch.SCHEMA_VERSION:
            raise StorageError(
                f"{self._path!r} has schema version {rows[0][0]}; this lean_data "
                f"supports up to {sch.SCHEMA_VERSION}"
            )
        await db.commit()

    async def _discard_connection(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    async def close(self) -> None:
        """Commit everything queued, stop the writer and close the connection (idempotent)."""
        if self._state == _CLOSED:
            return
        was_open = self._state == _OPEN
        self._state = _CLOSED
        self._accepting = False
        writer = self._writer
        try:
            if was_open and writer is not None and not writer.done():
                await self._queue.put((_STOP, None))
                await asyncio.wait({writer})
        finally:
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
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
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
        try:
            self._queue.put_nowait(self._entry(item, feed, quality))
        except asyncio.QueueFull:
            return False
        return True

    def _entry(self, item: MarketData, feed: str, quality: Verdict | None) -> _Entry:
        found = sch.ROW_BUILDERS.get(type(item))
        if found is None:
            found = sch.row_builder_for_subclass(item)
        table, build = found
        return (table, build(item, feed, quality, item.ts_recv or self._clock_ns()))

    async def save_metrics(self, metrics: Mapping[str, Any], *, ts_ns: int | None = None) -> None:
        """Queue one metrics snapshot (stored as JSON; NaN becomes null).

        Args:
            metrics: any JSON-like mapping; values orjson cannot encode are stored as text.
            ts_ns: the snapshot time (default: now).
        """
        payload = orjson.dumps(metrics, default=str, option=orjson.OPT_NON_STR_KEYS)
        await self._save(sch.METRICS, (self._now(ts_ns), payload.decode()))

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
        await self._save(sch.ERRORS, (self._now(ts_ns), kind, feed, symbol, message, detail))

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
        """Queue an errors-table row without waiting; return False when the queue is full."""
        if not self._accepting:
            self._reject()
        row = (self._now(ts_ns), kind, feed, symbol, message, detail)
        try:
            self._queue.put_nowait((sch.ERRORS, row))
        except asyncio.QueueFull:
            return False
        return True

    async def _save(self, table: int, row: sch.Row) -> None:
        if not self._accepting:
            self._reject()
        await self._put((table, row))

    async def _put(self, entry: _Entry) -> None:
        await self._queue.put(entry)
        if self._writer_error is not None:
            raise StorageError("the storage writer died; the row was not stored") from (
                self._writer_error
            )

    def _now(self, ts_ns: int | None) -> int:
        return self._clock_ns() if ts_ns is None else ts_ns

    def _reject(self) -> NoReturn:
        if self._state == _CLOSED:
            raise EngineClosedError("DataPersistence is closed; create a new instance")
        if self._writer_error is not None:
            raise StorageError(f"storage is unusable: {self._writer_error}") from (
                self._writer_error
            )
        raise EngineStateError("DataPersistence is not open; call open() or use 'async with'")

    async def flush(self) -> None:
        """Return once every row queued before the call is committed.

        Raises:
            StorageError: rows queued before the call could not be written (after a retry),
                or the writer task died.
            EngineStateError: not opened yet (EngineClosedError once closed).
        """
        if not self._accepting:
            self._reject()
        await self._barrier(strict=True)

    async def _barrier(self, *, strict: bool) -> None:
        """Wait until the writer has handled every row queued so far."""
        writer = self._writer
        if not self._accepting or writer is None:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        marker: _FlushMarker = (done, self._rows_lost)
        try:
            await self._queue.put((_FLUSH, marker))
            await asyncio.wait({done, writer}, return_when=asyncio.FIRST_COMPLETED)
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
            raise StorageError("the storage writer died before flushing") from self._writer_error

    # ----------------------------------------------------------------- the writer task

    async def _run(self) -> None:
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
            if count == 0 and control is None and self._queue.empty():
                return
            if count:
                await self._commit(groups, count)
            if control is not None:
                self._control(control)

    def _take(self, groups: list[list[sch.Row]], count: int) -> tuple[int, _Entry | None]:
        """Move queued rows into ``groups`` without waiting; stop at a control entry."""
        get = self._queue.get_nowait
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

    async def _collect(self, groups: list[list[sch.Row]]) -> tuple[int, _Entry | None]:
        """Wait for a first row, then gather a batch until full, timed out or a control."""
        table, payload = await self._queue.get()
        if table < 0:
            return 0, (table, payload)
        groups[table].append(payload)
        count, control = self._take(groups, 1)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._batch_s
        while control is None and count < self._batch_rows:
            try:
                async with asyncio.timeout_at(deadline):
                    table, payload = await self._queue.get()
            except TimeoutError:
                break
            if table < 0:
                return count, (table, payload)
            groups[table].append(payload)
            count, control = self._take(groups, count + 1)
        return count, control

    def _control(self, entry: _Entry) -> bool:
        """Answer a flush marker; return True for the stop marker."""
        table, payload = entry
        if table == _STOP:
            return True
        done, lost_before = payload
        if not done.done():
            if self._rows_lost > lost_before:
                lost = self._rows_lost - lost_before
                done.set_exception(StorageError(f"{lost} queued rows could not be stored"))
            else:
                done.set_result(None)
        return False

    async def _commit(self, groups: list[list[sch.Row]], count: int) -> None:
        """Write one batch in one transaction; retry once; count the rows lost after that."""
        async with self._write_lock:
            for attempt in (1, 2):
                try:
                    await self._write(groups)
                except sqlite3.Error as exc:
                    self._write_failures += 1
                    await self._rollback()
                    logger.warning(
                        "storage batch of %d rows failed (attempt %d of 2): %s", count, attempt, exc
                    )
                else:
                    self._rows_written += count
                    self._batches += 1
                    self._last_batch_rows = count
                    break
            else:
                self._rows_lost += count
                logger.error("storage batch of %d rows dropped after a retry", count)
        for rows in groups:
            rows.clear()

    async def _write(self, groups: list[list[sch.Row]]) -> None:
        db = self._db
        if db is None:
            raise sqlite3.InterfaceError("the connection was closed under the writer")
        for table, rows in enumerate(groups):
            if rows:
                await db.executemany(sch.WRITE_SQL[table], rows)
        await db.commit()

    async def _rollback(self) -> None:
        if self._db is not None:
            try:
                await self._db.rollback()
            except sqlite3.Error as exc:
                logger.warning("storage rollback failed: %s", exc)

    def _on_writer_done(self, task: asyncio.Task[None]) -> None:
        """Record why the writer ended (unless stopped by close) and fail queued work."""
        if task.cancelled():
            error = StorageError("the storage writer task was cancelled")
        elif (cause := task.exception()) is not None:
            error = StorageError(f"the storage writer task failed: {cause!r}")
            error.__cause__ = cause
        else:
            return
        self._writer_error = error
        self._accepting = False
        logger.error("storage writer of %s stopped: %s", self._path, error, exc_info=error)
        lost = 0
        while not self._queue.empty():  # unblocks producers waiting in put()
            table, payload = self._queue.get_nowait()
            if table == _FLUSH and not payload[0].done():
                payload[0].set_exception(error)
            lost += table >= 0
        self._rows_lost += lost

    # ----------------------------------------------------------------- reads

    def statistics(self) -> dict[str, int]:
        """Return a snapshot of the writer's counters.

        Keys: ``rows_written``, ``batches``, ``queue_depth``, ``write_failures`` (failed
        attempts, including ones that succeeded on retry), ``rows_lost`` (rows dropped
        after a failed retry or a dead writer) and ``last_batch_rows``.
        """
        return {
            "rows_written": self._rows_written,
            "batches": self._batches,
            "queue_depth": self._queue.qsize(),
            "write_failures": self._write_failures,
            "rows_lost": self._rows_lost,
            "last_batch_rows": self._last_batch_rows,
        }

    async def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[sch.Row]:
        """Run a query after the rows queued so far are committed."""
        if self._state != _OPEN or self._db is None:
            self._reject()
        await self._barrier(strict=False)
        db = self._db
        if db is None:
            self._reject()
        try:
            rows: list[Any] = list(await db.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise StorageError(f"query failed: {exc}") from exc
        return rows

    async def pragmas(self) -> dict[str, Any]:
        """Return this connection's ``journal_mode``, ``synchronous`` and ``busy_timeout``.

        ``synchronous`` is SQLite's number (1 is NORMAL); ``busy_timeout`` is in ms.
        """
        found: dict[str, Any] = {}
        for name in ("journal_mode", "synchronous", "busy_timeout"):
            rows = await self._fetch(f"PRAGMA {name}", ())
            found[name] = rows[0][0]
        return found

    async def get_market_data(
        self,
        symbol: str,
        start: int | datetime,
        end: int | datetime,
        *,
        resolution: Resolution | str | None = None,
        feed: str | None = None,
    ) -> list[TradeBar]:
        """Return the stored trade bars of ``symbol`` opening in ``[start, end)``.

        Args:
            symbol: the symbol as saved.
            start, end: ns since the epoch or datetimes (naive means UTC); end excluded.
            resolution: only this bar period (default: every period stored).
            feed: only rows from this feed (default: every feed, ordered by time then feed).

        Returns:
            Bars in ascending open time; stored NULL prices and volumes come back as nan.
        """
        rows = await self._bar_rows("bars", symbol, start, end, resolution, feed)
        return [sch.bar_from_row(r) for r in rows]

    async def get_quote_bars(
        self,
        symbol: str,
        start: int | datetime,
        end: int | datetime,
        *,
        resolution: Resolution | str | None = None,
        feed: str | None = None,
    ) -> list[QuoteBar]:
        """Return the stored quote bars of ``symbol`` opening in ``[start, end)``.

        Arguments and ordering as :meth:`get_market_data`.
        """
        rows = await self._bar_rows("quote_bars", symbol, start, end, resolution, feed)
        return [sch.quote_from_row(r) for r in rows]

    async def _bar_rows(
        self,
        table: str,
        symbol: str,
        start: int | datetime,
        end: int | datetime,
        resolution: Resolution | str | None,
        feed: str | None,
    ) -> list[sch.Row]:
        params: tuple[Any, ...] = (symbol, _ns(start), _ns(end))
        if resolution is None:  # walk the stored resolutions so the key index still serves
            sql = f"{sch.RESOLUTIONS_CTE[table]} {sch.SELECT[table]} {sch.RANGE_ANY_RESOLUTION}"
        else:
            sql = f"{sch.SELECT[table]} {sch.RANGE} AND resolution = ?4"
            params += (Resolution.parse(resolution).name,)
        if feed is not None:
            sql += f" AND feed = ?{len(params) + 1}"
            params += (feed,)
        return await self._fetch(sql + " ORDER BY ts_event, feed, resolution", params)

    async def get_ticks(
        self, symbol: str, start: int | datetime, end: int | datetime, *, feed: str | None = None
    ) -> list[Tick]:
        """Return the stored ticks of ``symbol`` in ``[start, end)``, in time then save order."""
        sql = f"{sch.SELECT['ticks']} {sch.RANGE}"
        params: tuple[Any, ...] = (symbol, _ns(start), _ns(end))
        if feed is not None:
            sql += " AND feed = ?4"
            params += (feed,)
        rows = await self._fetch(sql + " ORDER BY ts_event, id", params)
        return [sch.tick_from_row(r) for r in rows]

    async def get_recent_data(self, symbol: str, hours: float = 24) -> list[TradeBar]:
        """Return the trade bars of ``symbol`` received in the last ``hours``.

        Selected by receive time (``ts_recv``), because replayed and backfilled bars carry
        old event times; returned in ascending open time.
        """
        sql = f"{sch.SELECT['bars']} WHERE symbol = ? AND ts_recv >= ? ORDER BY ts_event, feed"
        rows = await self._fetch(sql, (symbol, self._since(hours)))
        return [sch.bar_from_row(r) for r in rows]

    async def get_metrics_history(self, hours: float = 24) -> list[dict[str, Any]]:
        """Return the metrics snapshots of the last ``hours``, oldest first.

        Returns:
            ``[{"ts_ns": int, "metrics": dict}, ...]``.
        """
        sql = "SELECT ts, payload FROM metrics WHERE ts >= ? ORDER BY ts, id"
        rows = await self._fetch(sql, (self._since(hours),))
        return [{"ts_ns": ts, "metrics": orjson.loads(payload)} for ts, payload in rows]

    async def get_errors(
        self, *, hours: float | None = None, kind: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Return stored errors, newest first.

        Args:
            hours: only errors of the last ``hours`` (default: all).
            kind: only errors of this kind.
            limit: at most this many (the newest).

        Returns:
            Dicts with ``ts_ns``, ``kind``, ``feed``, ``symbol``, ``message``, ``detail``.
        """
        sql = "SELECT ts, kind, feed, symbol, message, detail FROM errors WHERE ts >= ?"
        params: tuple[Any, ...] = (-(2**63) if hours is None else self._since(hours),)
        if kind is not None:
            sql += " AND kind = ?"
            params += (kind,)
        rows = await self._fetch(sql + " ORDER BY ts DESC, id DESC LIMIT ?", (*params, limit))
        return [dict(zip(sch.ERROR_KEYS, row, strict=True)) for row in rows]

    async def count(self, table: str = "bars", *, symbol: str | None = None) -> int:
        """Return the number of rows in ``table`` (optionally of one ``symbol``).

        Args:
            table: one of ``bars``, ``quote_bars``, ``ticks``, ``metrics``, ``errors``.
            symbol: count only this symbol's rows (not for ``metrics``).

        Raises:
            ValueError: unknown table, or a symbol filter on ``metrics``.
        """
        if table not in sch.TABLE_NAMES:
            raise ValueError(f"table must be one of {', '.join(sch.TABLE_NAMES)}, got {table!r}")
        name = sch.TABLE_NAMES[sch.TABLE_NAMES.index(table)]  # the constant, not the argument
        if symbol is None:
            rows = await self._fetch(f"SELECT COUNT(*) FROM {name}", ())
        elif name == "metrics":
            raise ValueError("the metrics table has no symbol column")
        else:
            rows = await self._fetch(f"SELECT COUNT(*) FROM {name} WHERE symbol = ?", (symbol,))
        return int(rows[0][0])

    async def quality_summary(self, symbol: str, *, hours: float = 24) -> dict[str, Any]:
        """Summarise the quality of ``symbol``'s rows received in the last ``hours``.

        Counts bars, quote bars and ticks together, per feed and overall.

        Returns:
            ``{"symbol", "hours", "since_ns", "rows", "average_score", "levels", "feeds"}``
            where ``feeds`` maps each feed to ``{"rows", "average_score", "levels"}``;
            ``levels`` counts rows per :class:`DataQualityLevel` name plus ``"UNSCORED"``
            (saved without a verdict); ``average_score`` covers scored rows (None if none).
        """
        since = self._since(hours)
        rows = await self._fetch(sch.QUALITY_BY_FEED, (symbol, since) * len(sch.MARKET_TABLES))
        summary: dict[str, Any] = {"symbol": symbol, "hours": hours, "since_ns": since}
        return summary | sch.quality_summary(rows)

    async def apply_retention(self, days: float) -> dict[str, int]:
        """Delete rows older than ``days``; return the number deleted per table.

        Market rows are aged by receive time (``ts_recv``: how long they have been kept),
        metrics and errors by ``ts``. Uses full-table scans; meant for start-up or a daily
        job, not for every batch.

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
        async with self._write_lock:
            try:
                return await sch.delete_before(db, cutoff)
            except sqlite3.Error as exc:
                await self._rollback()
                raise StorageError(f"retention failed: {exc}") from exc

    def _since(self, hours: float) -> int:
        return self._clock_ns() - int(hours * NS_PER_HOUR)


def _probe(path: str) -> None:
    """Open and close ``path`` with plain sqlite3 (raises when it cannot be opened)."""
    sqlite3.connect(path).close()


def _ns(value: int | datetime) -> int:
    """Return ``value`` as ns since the epoch (a naive datetime is taken as UTC)."""
    if isinstance(value, datetime):
        return datetime_to_ns(value)
    return int(value)
