"""The engine's side of storage: opening it, failure hooks, periodic saves, the last save.

Items reach storage from the pipeline (its storage queue); this component does the rest:
opens the database and applies retention, calls the user's hooks when storage first loses
rows, saves metrics, pending error rows and coverage every ``metrics_interval_s``, writes
them a last time at stop, and answers history queries from what storage covers.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from lean_data.config import Config
from lean_data.engine.backfill import Backfill
from lean_data.engine.error_log import ErrorLog
from lean_data.engine.tasks import Spawn
from lean_data.errors import StorageFailedError
from lean_data.feeds.base import DataFeed
from lean_data.models import MarketData, Resolution
from lean_data.storage.factory import create_storage, storage_location
from lean_data.storage.failures import StorageFailure

if TYPE_CHECKING:
    from lean_data.storage.base import Storage

__all__ = ["StorageLink", "UsesStorage"]

log = logging.getLogger("lean_data.engine")


class UsesStorage(Protocol):
    """A component that writes to storage once it is open."""

    def use_storage(self, persistence: Storage) -> None: ...


class StorageLink:
    """Opens, saves to and closes the engine's storage.

    Args:
        config: the database (``database_url`` or ``db_path``), batching, retention and the
            metrics interval.
        errors: the errors table rows that wait for room.
        backfill: the coverage runs to record, and history from feeds.
        spawn: runs the periodic save and coroutines hooks return as engine tasks.
        snapshot: the engine's metrics snapshot, saved periodically and at stop.
        running: whether the engine runs (the periodic save ends when it does not).
        users: components that write to storage too, told once it is open (the error log
            and backfill always are).
    """

    def __init__(
        self,
        config: Config,
        errors: ErrorLog,
        backfill: Backfill,
        spawn: Spawn,
        snapshot: Callable[[], dict[str, Any]],
        running: Callable[[], bool],
        *,
        users: Sequence[UsesStorage] = (),
    ) -> None:
        self.config = config
        self._errors = errors
        self._backfill = backfill
        self._spawn = spawn
        self._snapshot = snapshot
        self._running = running
        self._users: tuple[UsesStorage, ...] = (errors, backfill, *users)
        self.persistence: Storage | None = None
        self._hooks: list[Callable[[StorageFailure], Any]] = []
        self._wakeup: asyncio.Event | None = None

    async def open(self, task_group: asyncio.TaskGroup | None = None) -> Storage | None:
        """Open the configured storage (None without any) and apply retention.

        PostgreSQL when ``config.database_url`` is set, else SQLite at ``config.db_path``
        (:func:`~lean_data.storage.factory.create_storage` decides).

        ``task_group`` owns the storage writer task (the engine's); it must outlive
        :meth:`close`, which stops the writer.
        """
        cfg = self.config
        persistence = create_storage(cfg, on_failure=self._failed)
        if persistence is None:
            return None
        self.persistence = persistence
        await persistence.open(task_group=task_group)
        for user in self._users:
            user.use_storage(persistence)
        if cfg.retention_days > 0:
            await persistence.apply_retention(cfg.retention_days)
        await self._backfill.read_stored_series()  # after retention: what is left
        return persistence

    def on_failed(self, callback: Callable[[StorageFailure], Any]) -> None:
        """Call ``callback(failure)`` once when storage first loses rows."""
        self._hooks.append(callback)

    def _failed(self, failure: StorageFailure) -> None:
        for hook in self._hooks:
            try:
                result = hook(failure)
                if inspect.isawaitable(result):
                    self._spawn("storage_failed_hook", _awaited, result)
            except Exception as exc:  # a user's hook must not stop storage
                self._errors.callback_failed("storage_failed_hook", "", exc)

    def start_saving(self) -> None:
        """Save metrics, errors and coverage every ``metrics_interval_s`` (with storage)."""
        if self.config.metrics_interval_s > 0 and self.persistence is not None:
            self._wakeup = asyncio.Event()
            self._spawn("metrics", self._save_loop, self.persistence, self._wakeup)

    def stop_saving(self) -> None:
        """End the periodic save (at stop)."""
        if self._wakeup is not None:
            self._wakeup.set()

    async def _save_loop(self, persistence: Storage, wakeup: asyncio.Event) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), self.config.metrics_interval_s)
            if not self._running():
                return
            await self._backfill.record_runs()
            await self._errors.write_pending()
            await persistence.save_metrics(self._snapshot())

    async def close(self) -> None:
        """Write the last coverage, errors and metrics, then close; a failure is logged."""
        persistence = self.persistence
        if persistence is None:
            return
        try:
            await self._backfill.record_runs()
            await self._errors.write_pending()
            await persistence.save_metrics(self._snapshot())
        except Exception as exc:  # stop() must finish: say what was not written, close
            log.error("stop(): the last coverage, errors or metrics were not stored: %r", exc)
        await persistence.close()

    def raise_if_failed(self) -> None:
        """Raise when storage lost rows this run.

        Raises:
            StorageFailedError: how many rows and why.
        """
        failure = self.persistence.failure if self.persistence is not None else None
        if failure is not None:
            where = storage_location(self.config)
            raise StorageFailedError(
                f"storage of {where} failed ({failure.kind}): "
                f"{failure.rows_lost} rows were not stored; first error: {failure.message}",
                kind=failure.kind,
                rows_lost=failure.rows_lost,
                path=where,
            )

    async def history(
        self, feed: DataFeed, symbol: str, res: Resolution, start_ns: int, end_ns: int
    ) -> list[MarketData]:
        """Read bars from storage, asking ``feed`` only for the ranges storage does not cover.

        What the feed returns is stored and recorded as covered (empty when it returned
        nothing), so the next query asks nothing. Without storage (or for ticks, or when
        the engine does not run) the feed answers the whole range.
        """
        persistence = self.persistence
        if persistence is None or res.is_tick or not self._running():
            return await feed.get_historical_data(symbol, start_ns, end_ns, res)
        await self._backfill.record_runs()
        for gap_start, gap_end in await persistence.missing_intervals(
            feed.name, symbol, res, start_ns, end_ns
        ):
            fetched = await self._backfill.history(feed.name, symbol, gap_start, gap_end, res)
            for bar in fetched:
                await persistence.save_market_data(bar, feed=feed.name)
            await persistence.record_coverage(
                feed.name, symbol, res, gap_start, gap_end, empty=not fetched
            )
        return list(
            await persistence.get_market_data(
                symbol, start_ns, end_ns, resolution=res, feed=feed.name
            )
        )


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
