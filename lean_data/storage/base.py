"""The storage interface: what the engine and users need from a store of market data.

:class:`Storage` is a :class:`typing.Protocol`: a backend implements it by having these
methods, with no base class to inherit. :class:`~lean_data.storage.sqlite.DataPersistence`
(one SQLite file) and :class:`~lean_data.storage.postgres.PostgresStorage` (a PostgreSQL
schema) implement it, both on the backend-neutral
:class:`~lean_data.storage.store.QueuedStore`. ``mypy --strict`` checks that each satisfies
it (see the end of :mod:`lean_data.storage.sqlite` and
:mod:`lean_data.storage.postgres.store`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol, Self

from lean_data.book import OrderBookSnapshot
from lean_data.derivatives import FundingRate, Liquidation, MarkPrice, OpenInterest
from lean_data.models import MarketData, QuoteBar, Resolution, Tick, TradeBar
from lean_data.quality.levels import Verdict
from lean_data.storage.failures import StorageFailure
from lean_data.storage.rows import ScoredBar

__all__ = ["Storage", "StorageFailure"]


class Storage(Protocol):
    """A store of bars, quote bars, ticks, metrics, errors and bar-series coverage.

    Lifecycle
        :meth:`open` connects and starts the store's background writer (owned by the
        store, or by ``task_group`` when one is given); :meth:`close` commits everything
        queued, stops the writer and is idempotent. A closed store cannot be reopened. A
        store is also an async context manager.

    Writes are queued, never on the caller's path: ``save_*`` and :meth:`record_coverage`
    put a row on a bounded FIFO queue and return; the ``*_nowait`` twins return False
    instead of waiting when it is full. Bars and quote bars are upserted by (feed, symbol,
    resolution, open time): a higher revision replaces a lower one, and at the same
    revision a final bar replaces an in-progress one, never the reverse. Saving before
    :meth:`open` raises :class:`~lean_data.errors.EngineStateError`, after :meth:`close`
    :class:`~lean_data.errors.EngineClosedError`, after the writer died
    :class:`~lean_data.errors.StorageError`.

    Reads see the caller's own writes: every query first waits until the rows queued
    before it are committed (except ``last_bar(committed_only=True)``). :meth:`flush`
    makes them visible to other connections and raises
    :class:`~lean_data.errors.StorageError` when rows queued before it were not stored.
    Range queries take ``[start, end)`` in ns since the epoch or datetimes (naive = UTC).

    Coverage
        :meth:`record_coverage` notes that the bars of a (feed, symbol, resolution) series
        in an event-time interval are stored, or that the source reported none there
        (known empty). It is never durable before the bars queued ahead of it.
        :meth:`get_coverage` and :meth:`missing_intervals` read it back: what to fetch.

    Failure (the degraded state)
        A batch that cannot be written even after a retry loses its rows; the store goes
        on, but the first loss degrades it: :attr:`failure` says why (kind, first error,
        rows lost so far), ``statistics()["failed"]`` holds the same as a dict, and the
        ``on_failure`` hook the store was built with is called once.
        ``DataEngine.stop()`` turns a failure into
        :class:`~lean_data.errors.StorageFailedError`.

    Windows: :meth:`get_recent_data`, :meth:`quality_summary` and :meth:`apply_retention`
    select market rows by receive time (``ts_recv``), metrics and errors by their ``ts``.

    Derivatives records
        Funding rates, open interest, mark prices and liquidations
        (:mod:`lean_data.derivatives`) have tables of their own, written by their own
        ``save_*`` methods through the same queue and batches; :meth:`save_market_data`
        refuses them (``TypeError``). A record is stored by (feed, symbol, ts_event), a
        liquidation also by (side, price, quantity); saving one again replaces the stored
        one (the last saved wins; they have no revisions). ``get_*`` read ``[start, end)``
        by event time, None for an open bound, ordered by time then feed. Retention ages
        them by ``ts_recv``.

    Order-book snapshots
        :meth:`save_book_snapshots` queues :class:`~lean_data.book.OrderBookSnapshot`
        pictures (with a ``valid`` flag) through the same queue; one is stored by (feed,
        symbol, ts_recv), saved again it replaces the stored one; levels round-trip
        exactly. :meth:`get_book_snapshots` reads ``[start, end)`` by event time. Retention
        ages them by ``ts_recv``.
    """

    # ----------------------------------------------------------------- lifecycle

    async def open(self, *, task_group: asyncio.TaskGroup | None = None) -> None:
        """Connect, create or migrate the schema and start the writer task."""
        ...

    async def close(self) -> None:
        """Commit everything queued, stop the writer and disconnect (idempotent)."""
        ...

    async def __aenter__(self) -> Self:
        """Open the store (:meth:`open`) and return it."""
        ...

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the store (:meth:`close`)."""
        ...

    async def flush(self) -> None:
        """Return once every row queued before the call is committed."""
        ...

    @property
    def failure(self) -> StorageFailure | None:
        """Why storage is degraded (rows were lost), or None while every write succeeded."""
        ...

    def statistics(self) -> dict[str, Any]:
        """Return a snapshot of the writer's counters (``failed``: :attr:`failure` as a dict)."""
        ...

    # ----------------------------------------------------------------- writes

    async def save_market_data(
        self, item: MarketData, *, feed: str = "", quality: Verdict | None = None
    ) -> None:
        """Queue a bar, quote bar or tick; wait only while the queue is full."""
        ...

    def save_market_data_nowait(
        self, item: MarketData, *, feed: str = "", quality: Verdict | None = None
    ) -> bool:
        """Queue an item like :meth:`save_market_data`; return False when the queue is full."""
        ...

    async def save_metrics(self, metrics: Mapping[str, Any], *, ts_ns: int | None = None) -> None:
        """Queue one metrics snapshot (default time: now)."""
        ...

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
        """Queue one errors row (``kind`` is a short category)."""
        ...

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
        """Queue an errors row without waiting; return False when the queue is full."""
        ...

    async def save_funding_rates(self, rates: Iterable[FundingRate], *, feed: str = "") -> None:
        """Queue funding rates; wait only while the queue is full."""
        ...

    async def save_open_interest(self, items: Iterable[OpenInterest], *, feed: str = "") -> None:
        """Queue open-interest records; wait only while the queue is full."""
        ...

    async def save_mark_prices(self, prices: Iterable[MarkPrice], *, feed: str = "") -> None:
        """Queue mark prices; wait only while the queue is full."""
        ...

    async def save_liquidations(self, items: Iterable[Liquidation], *, feed: str = "") -> None:
        """Queue liquidations; wait only while the queue is full."""
        ...

    async def save_book_snapshots(
        self, snapshots: Iterable[OrderBookSnapshot], *, feed: str = "", valid: bool = True
    ) -> None:
        """Queue order-book snapshots; wait only while the queue is full."""
        ...

    def save_book_snapshot_nowait(
        self, snapshot: OrderBookSnapshot, *, feed: str = "", valid: bool = True
    ) -> bool:
        """Queue one snapshot without waiting; return False when the queue is full."""
        ...

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
        """Queue a record that a series' bars in ``[start_ns, end_ns)`` are stored (or none
        exist: ``empty``)."""
        ...

    async def apply_retention(self, days: float) -> dict[str, int]:
        """Delete rows older than ``days``; return the number deleted per table."""
        ...

    # ----------------------------------------------------------------- reads

    async def get_market_data(
        self,
        symbol: str,
        start: int | datetime,
        end: int | datetime,
        *,
        resolution: Resolution | str | None = None,
        feed: str | None = None,
    ) -> list[TradeBar]:
        """Return the stored trade bars of ``symbol`` opening in ``[start, end)``."""
        ...

    async def get_quote_bars(
        self,
        symbol: str,
        start: int | datetime,
        end: int | datetime,
        *,
        resolution: Resolution | str | None = None,
        feed: str | None = None,
    ) -> list[QuoteBar]:
        """Return the stored quote bars of ``symbol`` opening in ``[start, end)``."""
        ...

    async def get_scored_bars(
        self,
        symbol: str,
        start: int | datetime,
        end: int | datetime,
        *,
        resolution: Resolution | str | None = None,
        feed: str | None = None,
        limit: int | None = None,
    ) -> list[ScoredBar]:
        """Return the stored trade bars of ``symbol`` opening in ``[start, end)``, each with
        its feed and stored verdict, at most ``limit``."""
        ...

    async def get_ticks(
        self, symbol: str, start: int | datetime, end: int | datetime, *, feed: str | None = None
    ) -> list[Tick]:
        """Return the stored ticks of ``symbol`` in ``[start, end)``."""
        ...

    async def get_funding_rates(
        self,
        symbol: str,
        start: int | datetime | None = None,
        end: int | datetime | None = None,
        *,
        feed: str | None = None,
    ) -> list[FundingRate]:
        """Return the stored funding rates of ``symbol`` in ``[start, end)``."""
        ...

    async def get_open_interest(
        self,
        symbol: str,
        start: int | datetime | None = None,
        end: int | datetime | None = None,
        *,
        feed: str | None = None,
    ) -> list[OpenInterest]:
        """Return the stored open interest of ``symbol`` in ``[start, end)``."""
        ...

    async def get_mark_prices(
        self,
        symbol: str,
        start: int | datetime | None = None,
        end: int | datetime | None = None,
        *,
        feed: str | None = None,
    ) -> list[MarkPrice]:
        """Return the stored mark prices of ``symbol`` in ``[start, end)``."""
        ...

    async def get_liquidations(
        self,
        symbol: str,
        start: int | datetime | None = None,
        end: int | datetime | None = None,
        *,
        feed: str | None = None,
    ) -> list[Liquidation]:
        """Return the stored liquidations of ``symbol`` in ``[start, end)``."""
        ...

    async def get_book_snapshots(
        self,
        symbol: str,
        start: int | datetime | None = None,
        end: int | datetime | None = None,
        *,
        feed: str | None = None,
        valid: bool | None = True,
    ) -> list[OrderBookSnapshot]:
        """Return the stored snapshots of ``symbol`` in ``[start, end)`` by event time."""
        ...

    async def get_recent_data(self, symbol: str, hours: float = 24) -> list[TradeBar]:
        """Return the trade bars of ``symbol`` received in the last ``hours``."""
        ...

    async def last_bar(
        self,
        feed: str,
        symbol: str,
        resolution: Resolution | str,
        *,
        closed_only: bool = False,
        committed_only: bool = False,
        sane_before: int | None = None,
    ) -> TradeBar | None:
        """Return the stored trade bar of a series with the latest open time, or None."""
        ...

    async def bar_series_keys(self) -> list[tuple[str, str, Resolution]]:
        """Return ``(feed, symbol, resolution)`` of every stored trade-bar series."""
        ...

    async def get_coverage(
        self, feed: str, symbol: str, resolution: Resolution | str, start_ns: int, end_ns: int
    ) -> list[tuple[int, int, bool]]:
        """Return the recorded ``(start, end, empty)`` coverage within ``[start_ns, end_ns)``."""
        ...

    async def missing_intervals(
        self, feed: str, symbol: str, resolution: Resolution | str, start_ns: int, end_ns: int
    ) -> list[tuple[int, int]]:
        """Return the parts of ``[start_ns, end_ns)`` neither covered nor known empty."""
        ...

    async def get_metrics_history(self, hours: float = 24) -> list[dict[str, Any]]:
        """Return the metrics snapshots of the last ``hours``, oldest first."""
        ...

    async def get_errors(
        self, *, hours: float | None = None, kind: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Return stored errors, newest first."""
        ...

    async def count(
        self,
        table: str = "bars",
        *,
        symbol: str | None = None,
        feed: str | None = None,
        resolution: Resolution | str | None = None,
    ) -> int:
        """Return the number of rows in ``table``, optionally of one symbol, feed, period."""
        ...

    async def stored_symbols(self, table: str = "bars") -> list[str]:
        """Return the symbols with rows in ``table`` (``bars``, ``quote_bars`` or
        ``ticks``), sorted."""
        ...

    async def stored_feeds(self, symbol: str, table: str = "bars") -> list[str]:
        """Return the feeds that stored rows of ``symbol`` in ``table`` (``bars``,
        ``quote_bars`` or ``ticks``), sorted."""
        ...

    async def quality_summary(self, symbol: str, *, hours: float = 24) -> dict[str, Any]:
        """Summarise the quality of ``symbol``'s rows received in the last ``hours``."""
        ...
