"""The engine's errors table writer: rows queued from hot paths without ever waiting."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Protocol

from lean_data.engine.metrics import DataMetrics

if TYPE_CHECKING:
    from lean_data.storage.base import Storage

__all__ = ["ErrorLog", "RecordError"]

log = logging.getLogger("lean_data.engine")


class RecordError(Protocol):
    """What components are given to write a row of the errors table (:meth:`ErrorLog.record`)."""

    def __call__(self, kind: str, message: str, *, feed: str = "", symbol: str = "") -> None: ...


class ErrorLog:
    """Rows for storage's errors table, and the count of callbacks that raised.

    Args:
        metrics: counts rows dropped when even the overflow list is full, and callback errors.
    """

    __slots__ = ("_closed", "_metrics", "_pending", "_persistence", "callback_errors")

    def __init__(self, metrics: DataMetrics) -> None:
        self._metrics = metrics
        self._persistence: Storage | None = None
        self._pending: deque[tuple[str, str, str, str, int]] = deque(maxlen=10_000)
        self._closed = False
        self.callback_errors = 0

    def use_storage(self, persistence: Storage) -> None:
        """Write rows to ``persistence`` from now on."""
        self._persistence = persistence

    def close(self) -> None:
        """Record nothing more (the engine is closed)."""
        self._closed = True

    def record(self, kind: str, message: str, *, feed: str = "", symbol: str = "") -> None:
        """Queue a row for the errors table; never waits (errors arrive on hot paths).

        When the storage queue is full the row waits in a bounded overflow list that is
        written at the next metrics save and at stop; beyond that it is counted as dropped.
        """
        persistence = self._persistence
        if persistence is None or self._closed:
            return
        if self._pending or not persistence.save_error_nowait(
            kind, message, feed=feed, symbol=symbol
        ):
            if len(self._pending) == self._pending.maxlen:
                self._metrics.increment_drops(source="errors_table")
            self._pending.append((kind, message, feed, symbol, time.time_ns()))

    async def write_pending(self) -> None:
        """Write the rows that waited for room in the storage queue."""
        persistence = self._persistence
        while self._pending and persistence is not None:
            kind, message, feed, symbol, ts = self._pending.popleft()
            await persistence.save_error(kind, message, feed=feed, symbol=symbol, ts_ns=ts)

    def callback_failed(self, name: str, symbol: str, exc: BaseException) -> None:
        """Count, log (the first ten, then every thousandth) and record a callback's error."""
        self.callback_errors += 1
        self._metrics.increment_errors(kind="callback")
        if self.callback_errors <= 10 or self.callback_errors % 1000 == 0:
            log.warning("callback %s raised on %s: %r", name, symbol, exc)
        self.record("callback_error", f"{name}: {exc!r}", symbol=symbol)

    def record_undelivered(self, outcomes: dict[str, int]) -> None:
        """One errors row per run for items not delivered that have no row of their own."""
        quiet = {k: outcomes[k] for k in ("duplicate", "standby") if outcomes.get(k)}
        if quiet:
            counts = ", ".join(f"{kind} {count}" for kind, count in quiet.items())
            self.record(
                "undelivered",
                f"not delivered this run: {counts} (duplicate: a repeat of a delivered bar; "
                "standby: a failover standby feed's bar while the primary delivered)",
            )
