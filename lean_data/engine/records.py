"""The lane of derivatives records: funding rates, open interest, mark prices, liquidations.

Feeds emit these like bars (``await self.emit(record)``) and they share the inbox, so they
keep their order with the feed's other items. The pipeline hands each one here instead of
to the bar path: they have no series continuity, ring buffer or score (each record checks
its own fields when it is built, :mod:`lean_data.derivatives`), so they reach callbacks
as ``GOOD``. Only callbacks that asked for their kind see them
(``add_data_callback(..., kinds=("funding_rate",))``): a callback registered without
``kinds`` gets bars, quotes and ticks as before and nothing new. With storage each record
is saved to its own table (``save_funding_rates`` and the like). Sinks (the bus
publisher, the gateway) get market data only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lean_data.derivatives import FundingRate, Liquidation, MarkPrice, OpenInterest
from lean_data.engine.steps import KeepRecord, Later, Offer
from lean_data.engine.subscribers import Callbacks
from lean_data.quality.levels import DataQualityLevel
from lean_data.storage.base import Storage

__all__ = ["RECORD_KINDS", "KeepRecord", "RecordLane"]

RECORD_KINDS: dict[str, type[Any]] = {
    cls.kind: cls for cls in (FundingRate, OpenInterest, MarkPrice, Liquidation)
}
"""The record kinds by name (each class's ``kind``)."""

_GOOD = DataQualityLevel.GOOD
_SAVE = {
    FundingRate: "save_funding_rates",
    OpenInterest: "save_open_interest",
    MarkPrice: "save_mark_prices",
    Liquidation: "save_liquidations",
}


class RecordLane:
    """Delivers records to the callbacks of their kind and queues them for storage.

    Args:
        callbacks: the engine's callbacks (``records_sync`` and ``records_async`` by class).
        count: counts one delivered record of a feed (the engine's metrics and outcomes).
        failed: records a callback's error (name, symbol, exception).
        storage: returns the engine's storage, or None.
    """

    def __init__(
        self,
        callbacks: Callbacks,
        count: Callable[[str], None],
        failed: Callable[[str, str, BaseException], None],
        storage: Callable[[], Storage | None],
    ) -> None:
        self.types = frozenset(RECORD_KINDS.values())
        self._sync = callbacks.records_sync
        self._async = callbacks.records_async
        self._count = count
        self._failed = failed
        self._storage = storage

    def take(self, feed: str, record: Any) -> Later | None:
        """Call back, queue for async callbacks and storage; return what must wait."""
        self._count(feed)
        kind, symbol = type(record), record.symbol
        for callback in self._sync.get(kind, ()):
            try:
                callback(symbol, record, _GOOD)
            except Exception as exc:
                self._failed(getattr(callback, "__qualname__", "callback"), symbol, exc)
        later: Later = []
        for subscriber in self._async.get(kind, ()):
            if not subscriber.offer(symbol, record, _GOOD):
                later.append(Offer(subscriber, symbol, record, _GOOD))
        storage = self._storage()
        if storage is not None:
            later.append(KeepRecord(storage, _SAVE[kind], feed, record))
        return later or None
