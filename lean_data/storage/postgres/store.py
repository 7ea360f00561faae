"""PostgreSQL storage of market data, metrics and errors: :class:`PostgresStorage`.

The same store as :class:`~lean_data.storage.sqlite.DataPersistence`, on PostgreSQL: the
lifecycle, the queued writes and the read barrier are the shared
:class:`~lean_data.storage.store.QueuedStore`; batches go through
:class:`~lean_data.storage.postgres.sink.PgSink` (binary COPY into staging, one upsert per
table, monthly partitions created ahead); reads are the shared
:class:`~lean_data.storage.queries.Queries` in PostgreSQL's words
(:data:`~lean_data.storage.postgres.schema.SQL`). This module owns the connection pool,
opening (schema creation or migration) and the glue.

The pool (asyncpg) holds up to ``pool_size`` connections (opened when needed, closed
after 5 idle minutes; no floor, whose restoring during an outage asyncpg would log as a
traceback every few seconds: the writer's own retries say it in one line), each with
``search_path`` set to the store's schema and the two temporary staging tables; the
writer takes one per batch, reads take one each.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import asyncpg

from lean_data.errors import ConfigError, StorageError
from lean_data.models import Resolution, TradeBar, datetime_to_ns
from lean_data.storage import schema as sch
from lean_data.storage.base import Storage
from lean_data.storage.failures import StorageFailure
from lean_data.storage.location import describe_url
from lean_data.storage.postgres import records, timescale
from lean_data.storage.postgres.bulk_read import BAR_COLUMNS as BULK_BAR_COLUMNS
from lean_data.storage.postgres.bulk_read import BinaryCopyError, copy_bars
from lean_data.storage.postgres.retention import retain
from lean_data.storage.postgres.rollup_worker import RollupWorker
from lean_data.storage.postgres.rollups import DEFAULT_ROLLUPS, SELECT_ROLLUPS, rollup_targets
from lean_data.storage.postgres.schema import (
    SCHEMA_VERSION,
    SQL,
    STAGING_DDL,
    create_or_migrate,
    pg_sql,
)
from lean_data.storage.postgres.sink import PgSink
from lean_data.storage.queries import RangeQuery
from lean_data.storage.rows import bar_from_row, resolution_from_text
from lean_data.storage.schema import Row
from lean_data.storage.store import QueuedStore
from lean_data.storage.writer import RetryPolicy

__all__ = ["PostgresStorage"]

logger = logging.getLogger("lean_data.storage.postgres")

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_CLOSE_S = 10.0  # how long close() waits for the pool's connections to be returned


class PostgresStorage(QueuedStore):
    """Store bars, quotes, ticks, metrics and errors in one PostgreSQL schema.

    Behaves as :class:`~lean_data.storage.sqlite.DataPersistence` does (see
    :class:`~lean_data.storage.base.Storage`): queued writes with ``*_nowait`` twins, a
    bounded queue, read-your-writes, upserts keeping the highest revision (and, at equal
    revision, final over in-progress), coverage never durable before its bars, unstorable
    rows rejected alone as ``storage_rejected`` errors rows, the degraded ``failure``
    state. Several stores (processes) may write the same schema at once.

    A batch that fails because the connection died (``pg_terminate_backend``, a server
    restart, a network cut) or a deadlock is retried on a fresh connection, ``retries``
    times with backoff from ``retry_backoff_s`` doubling up to ``retry_backoff_cap_s``;
    then it is held, tried every ``retry_backoff_cap_s``, as long as the write queue has
    room (and the store is not closing); after that its rows are counted lost, as SQLite
    counts a batch it cannot write. No retry stores a row twice.

    Args:
        url: ``postgresql://user[:password]@host[:port]/database`` (asyncpg's DSN).
        schema: the PostgreSQL schema of this store's tables (created when missing).
        batch_rows, batch_ms, queue_size, clock_ns, on_failure: as for
            :class:`~lean_data.storage.sqlite.DataPersistence`.
        pool_size: the most connections the store opens.
        retries, retry_backoff_s, retry_backoff_cap_s: the transient-fault retry policy.
        connect_timeout_s: how long opening one connection may take.
        rollups: the resolutions kept in ``bar_rollups`` from the stored 1-minute bars
            (:meth:`get_rollups`); each coarser than a minute and dividing a day; ``()``:
            none (each batch of minute bars then costs no read-back).
        rollup_process: refresh large rollup batches (at least
            :data:`~lean_data.storage.postgres.rollup_worker.WORKER_HOURS` pending hours, a
            bulk load's) in a child process of their own (:mod:`~lean_data.storage.postgres.
            rollup_worker`), so their Python does not share the writer's event loop; False:
            always in this process.
        timescaledb: make a new schema's market tables TimescaleDB hypertables when the
            server has the extension (False: native partitions regardless); see
            :attr:`timescaledb_version`.

    Raises:
        ConfigError: a setting is out of range, or ``schema`` is not a plain identifier.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str = "lean_data",
        batch_rows: int = 1000,
        batch_ms: float = 200.0,
        queue_size: int = 100_000,
        pool_size: int = 4,
        clock_ns: Callable[[], int] = time.time_ns,
        on_failure: Callable[[StorageFailure], None] | None = None,
        retries: int = 5,
        retry_backoff_s: float = 0.05,
        retry_backoff_cap_s: float = 2.0,
        connect_timeout_s: float = 10.0,
        rollups: Sequence[Resolution | str] = DEFAULT_ROLLUPS,
        rollup_process: bool = True,
        timescaledb: bool = True,
    ) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise ConfigError(
                f"PostgresStorage schema must be a plain identifier (letters, digits, _; "
                f"at most 63), got {schema!r}"
            )
        if pool_size < 1 or retries < 0:
            raise ConfigError(
                f"PostgresStorage needs pool_size >= 1 and retries >= 0, got "
                f"{pool_size!r} and {retries!r}"
            )
        if not (retry_backoff_s > 0 and retry_backoff_cap_s > 0 and connect_timeout_s > 0):
            raise ConfigError("PostgresStorage backoffs and connect_timeout_s must be > 0")
        self._url = url
        self._schema = schema
        self._description = f"{describe_url(url)}#{schema}"
        try:
            targets = rollup_targets(rollups)
        except ValueError as exc:
            raise ConfigError(f"PostgresStorage rollups: {exc}") from None
        self._sink = PgSink(schema, clock_ns, targets)
        super().__init__(
            self._sink,
            SQL,
            batch_rows=batch_rows,
            batch_ms=batch_ms,
            queue_size=queue_size,
            clock_ns=clock_ns,
            on_failure=on_failure,
            retry=RetryPolicy(retries, retry_backoff_s, retry_backoff_cap_s),
            logger=logger,
        )
        self._use_ts = timescaledb
        self._rollup_process = rollup_process and bool(targets)
        self._timescaledb: str | None = None
        self._pool_size = pool_size
        self._connect_timeout_s = connect_timeout_s
        self._pool: asyncpg.Pool | None = None

    @property
    def schema(self) -> str:
        """The PostgreSQL schema holding this store's tables."""
        return self._schema

    @property
    def timescaledb_version(self) -> str | None:
        """The TimescaleDB version whose hypertables hold the market tables, or None
        (native monthly partitions); known once the store is open."""
        return self._timescaledb

    @property
    def rollup_status(self) -> dict[str, Any]:
        """The resolutions kept in ``bar_rollups``, the series with hours waiting for a
        refresh, the series whose refresh failed (each logged and an errors row
        ``rollup_failed``; their previous rollups stay), the refreshes the worker process
        ran, and those it did not answer (each logged; run in this process instead)."""
        return {
            "resolutions": [r.name for r in self._sink.rollups],
            "pending_series": len(self._sink.pending_rollups),
            "failures": self._sink.rollup_failures,
            "worker_refreshes": self._sink.worker_refreshes,
            "worker_failures": self._sink.worker_failures,
        }

    @property
    def copy_status(self) -> dict[str, dict[str, int]]:
        """Per keyed table (``bars``, ``quote_bars``): the writes of this store that went
        straight into the table by COPY (``copied``: every key new) and those whose COPY
        met a key already stored or repeated in the batch (``conflicts``: rolled back and
        upserted). The other writes were staged and upserted at once, after a conflict."""
        return {sch.TABLE_NAMES[t]: d.counts() for t, d in self._sink.direct.items()}

    @property
    def rollups(self) -> tuple[Resolution, ...]:
        """The resolutions kept in ``bar_rollups`` from the stored minute bars."""
        return self._sink.rollups

    async def get_rollups(
        self,
        symbol: str,
        resolution: Resolution | str,
        start: int | datetime,
        end: int | datetime,
        *,
        feed: str | None = None,
    ) -> list[TradeBar]:
        """Return the rollup bars of ``symbol`` at ``resolution`` opening in ``[start, end)``.

        They equal :meth:`~lean_data.analytics.transform.DataTransformer.resample_bars`
        of the stored minute bars of each feed: the rollups of every row queued before the
        call are refreshed first (see :mod:`lean_data.storage.postgres.rollups`). Ordered
        by open time, then feed.
        """
        params: tuple[Any, ...] = (
            symbol,
            datetime_to_ns(start) if isinstance(start, datetime) else start,
            datetime_to_ns(end) if isinstance(end, datetime) else end,
            Resolution.parse(resolution).name,
        )
        sql = SELECT_ROLLUPS
        if feed is not None:
            sql += " AND feed = ?5"
            params += (feed,)
        await self._barrier(strict=False)
        if self._sink.pending_rollups or self._sink.refreshing:  # the rows queued before
            async with self._batch_writer.write_lock:  # are committed: roll them up
                await self._sink.refresh_rollups()  # after a running one, what is left
        rows = await self._fetch(sql + " ORDER BY ts_event, feed", params, wait=False)
        return [bar_from_row(r) for r in rows]

    def _where(self) -> str:
        return self._description

    async def _connect(self) -> None:
        """Open the pool, create or migrate the schema, learn its partitions.

        Raises:
            StorageError: the server cannot be reached, refuses us, or the schema is newer
                than this lean_data (the message names the URL, never its password).
        """
        try:
            settings = {
                "search_path": f'"{self._schema}"',
                "application_name": f"lean_data:{self._schema}",
                "client_min_messages": "warning",
                "standard_conforming_strings": "on",  # bulk_read's literals rely on it
            }
            self._pool = await asyncpg.create_pool(
                self._url,
                min_size=0,  # no floor kept: asyncpg logs a traceback per failed restore
                max_size=self._pool_size,
                timeout=self._connect_timeout_s,
                init=_init_connection,
                server_settings=settings,
            )
            async with self._pool.acquire() as conn:
                found = await create_or_migrate(conn, self._schema, timescaledb=self._use_ts)
                self._timescaledb = await timescale.in_use(conn, self._schema)
                self._sink.partitions.hypertables = self._timescaledb is not None
                await self._sink.partitions.load(conn)
                offered = await timescale.available(conn)
        except ValueError as exc:  # a newer schema, or no migration path
            await self._disconnect()
            raise StorageError(f"PostgreSQL schema {self._description} has {exc}") from None
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            await self._disconnect()
            raise StorageError(
                f"cannot open PostgreSQL database {self._description}: {_problem(exc)} "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        if self._timescaledb is not None:
            layout = f"TimescaleDB {self._timescaledb} hypertables"
        elif offered is None:
            layout = "native monthly partitions (the server has no TimescaleDB)"
        else:
            layout = f"native monthly partitions (TimescaleDB {offered} not used by this schema)"
        logger.info("storage %s: %s", self._description, layout)
        if found != SCHEMA_VERSION:
            logger.info(
                "upgraded %s from schema version %d to %d",
                *(self._description, found, SCHEMA_VERSION),
            )
        self._sink.pool = self._pool
        if self._rollup_process:
            settings["application_name"] = f"lean_data:{self._schema}:rollups"
            self._sink.worker = RollupWorker(
                self._url, self._schema, settings, self._connect_timeout_s
            )

    async def _disconnect(self) -> None:
        if self._pool is not None:  # close: a running refresh ends, the rest is rolled up
            await self._sink.refresh_rollups()
            if self._sink.pending_rollups:  # the connection failed: say what stays stale
                self._sink.rollup_failures += len(self._sink.pending_rollups)
                logger.error(
                    "closing %s with the rollups of %d series not refreshed (connection lost)",
                    self._where(),
                    len(self._sink.pending_rollups),
                )
        worker, self._sink.worker = self._sink.worker, None
        if worker is not None:
            await worker.close()
        pool, self._pool = self._pool, None
        self._sink.pool = None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), _CLOSE_S)
            except (TimeoutError, asyncpg.InterfaceError, OSError) as exc:
                logger.warning("closing the pool of %s: %r; terminating it", self._where(), exc)
                pool.terminate()

    async def _query(self, sql: str, params: tuple[Any, ...]) -> list[Row]:
        pool = self._pool
        if pool is None:
            self._reject()
        try:
            async with pool.acquire() as conn:
                found = await conn.fetch(pg_sql(sql), *params)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            raise StorageError(f"query failed: {type(exc).__name__}: {exc}") from exc
        return found  # type: ignore[no-any-return]  # Records index and unpack like tuples

    async def _read_bars(self, query: RangeQuery) -> list[TradeBar]:
        """Bars of one resolution come by binary COPY, decoded as they arrive
        (:mod:`~lean_data.storage.postgres.bulk_read`); several resolutions as any read."""
        if query.resolution is None:
            return await super()._read_bars(query)
        await self._ready_to_read(wait=query.wait)
        pool = self._pool
        if pool is None:
            self._reject()
        sql = pg_sql(query.sql(f"SELECT {BULK_BAR_COLUMNS} FROM bars"))
        resolution = resolution_from_text(query.resolution)
        try:
            async with pool.acquire() as conn:
                return await copy_bars(conn, sql, query.params, resolution)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            raise StorageError(f"query failed: {type(exc).__name__}: {exc}") from exc
        except BinaryCopyError as exc:
            raise StorageError(f"reading bars: {exc}") from exc

    async def _retain(self, cutoff: int) -> dict[str, int]:
        """Drop old partitions, delete old rows (see :mod:`~lean_data.storage.postgres.
        retention`)."""
        pool = self._pool
        if pool is None:
            self._reject()
        try:
            async with pool.acquire() as conn:
                return await retain(conn, self._schema, self._sink.partitions, cutoff)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            raise StorageError(f"retention failed: {type(exc).__name__}: {exc}") from exc


async def _init_connection(conn: asyncpg.Connection) -> None:
    """Give each new pooled connection its staging tables."""
    await conn.execute(STAGING_DDL)


def _problem(exc: BaseException) -> str:
    """A short name for why the database was refused at open."""
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return "no such database"
    if isinstance(
        exc, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError
    ):
        return "access denied"
    if records.is_transient(exc):
        return "cannot connect"
    return "refused"


if TYPE_CHECKING:  # mypy checks here that PostgresStorage implements the interface
    _implements: Storage = cast(PostgresStorage, None)
