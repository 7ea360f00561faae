"""Order-book snapshots of every store: save through the write queue, read by event time.

:class:`BookSnapshots` is a base class of :class:`~lean_data.storage.store.QueuedStore`
(kept apart to hold that module to its size), like :class:`~lean_data.storage.queries.
Queries`: its methods use the store's hooks (``_offer`` / ``_put`` onto the write queue
with the store's state checks, ``_now``, the read-your-writes ``_fetch``). Rows and SQL:
:mod:`lean_data.storage.book_rows`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from lean_data.book import OrderBookSnapshot
from lean_data.models import datetime_to_ns
from lean_data.storage import book_rows
from lean_data.storage.schema import Row

__all__ = ["BookSnapshots"]


class BookSnapshots(ABC):
    """``save_book_snapshots``, ``save_book_snapshot_nowait`` and ``get_book_snapshots``,
    on the store's queue hooks (as :class:`~lean_data.storage.queries.Queries` reads)."""

    @abstractmethod
    def _offer(self, entry: tuple[int, Any]) -> bool:
        """Queue one entry if there is room; raise why when the store takes no rows."""

    @abstractmethod
    async def _put(self, entry: tuple[int, Any]) -> None:
        """Queue one entry, waiting while the queue is full."""

    @abstractmethod
    def _now(self, ts_ns: int | None) -> int:
        """``ts_ns``, or the store's clock when None."""

    @abstractmethod
    async def _fetch(self, sql: str, params: tuple[Any, ...], *, wait: bool = True) -> list[Row]:
        """Run a query after the rows queued so far are committed."""

    async def save_book_snapshots(
        self, snapshots: Iterable[OrderBookSnapshot], *, feed: str = "", valid: bool = True
    ) -> None:
        """Queue order-book snapshots; wait only while the queue is full.

        A snapshot is stored by (feed, symbol, ts_recv): saving it again replaces the
        stored one (the last saved wins); one saved with ``ts_recv`` 0 is stored with the
        time it was saved. Its levels are stored exactly, as given (the engine gives the
        top ``Config.book_snapshot_depth`` of each side).

        Args:
            snapshots: the pictures to store.
            feed: the feed they came from.
            valid: whether the books they picture were valid (a program may keep the
                picture of a book it found invalid, for the record).

        Raises:
            TypeError: an item is not an OrderBookSnapshot (none of them is queued).
            EngineStateError: not opened yet (EngineClosedError once closed).
            StorageError: the writer task has died.
        """
        for entry in book_rows.entries(snapshots, feed, valid, self._clock):
            if not self._offer(entry):
                await self._put(entry)

    def save_book_snapshot_nowait(
        self, snapshot: OrderBookSnapshot, *, feed: str = "", valid: bool = True
    ) -> bool:
        """Queue one snapshot like :meth:`save_book_snapshots`; return False (not queued)
        when the queue is full.

        Raises:
            TypeError: ``snapshot`` is not an OrderBookSnapshot.
            EngineStateError: not opened yet (EngineClosedError once closed).
            StorageError: the writer task has died.
        """
        (entry,) = book_rows.entries((snapshot,), feed, valid, self._clock)
        return self._offer(entry)

    def _clock(self) -> int:
        return self._now(None)

    async def get_book_snapshots(
        self,
        symbol: str,
        start: int | datetime | None = None,
        end: int | datetime | None = None,
        *,
        feed: str | None = None,
        valid: bool | None = True,
    ) -> list[OrderBookSnapshot]:
        """Return the stored snapshots of ``symbol`` with ``start <= ts_event < end``.

        Ordered by event time, then receive time and feed; None leaves a bound open.

        Args:
            feed: one feed's snapshots (None: every feed's).
            valid: True (default) the snapshots stored valid, False those stored invalid,
                None both.
        """
        low = None if start is None else _ns(start)
        high = None if end is None else _ns(end)
        sql = book_rows.RANGE_SQL[(feed is not None, valid)]
        rows = await self._fetch(sql, book_rows.range_params(symbol, low, high, feed))
        return book_rows.from_rows(rows)


def _ns(value: int | datetime) -> int:
    return datetime_to_ns(value) if isinstance(value, datetime) else int(value)
