"""Fan-out: who is called back with an item the pipeline delivered.

The pipeline decides what becomes of an item (:mod:`lean_data.engine.pipeline`); this module
only hands it to the callbacks whose filters take it: sync callbacks are called at once (one
that raises is counted and logged, the others still run), async callbacks and streams get it
queued, and a queue that is full under ``BLOCK`` is returned as an :class:`Offer` step the
pipeline awaits before its next item.
"""

from __future__ import annotations

from typing import Final

from lean_data.engine.error_log import ErrorLog
from lean_data.engine.steps import Later, Offer
from lean_data.engine.subscriber import Listeners
from lean_data.engine.subscribers import Callbacks
from lean_data.models import MarketData, TradeBar
from lean_data.quality.levels import DataQualityLevel, level_score

__all__ = ["FanOut"]

_GOOD: Final = DataQualityLevel.GOOD


class FanOut:
    """Calls back and queues one delivered item.

    Args:
        callbacks: who is called back (its lists are read per item, so callbacks added or
            removed later are seen).
        errors: where a failing callback is counted.
    """

    __slots__ = ("_errors", "_listeners")

    def __init__(self, callbacks: Callbacks, errors: ErrorLog) -> None:
        # callbacks' lists, read per item (a change makes new ones): natively, in the
        # compiled Listeners, where an attribute of the pure Callbacks is a generic lookup
        self._listeners: Listeners = callbacks.listeners
        self._errors = errors

    def deliver(
        self, symbol: str, item: MarketData, level: DataQualityLevel, late: bool
    ) -> Later | None:
        """Call the sync callbacks and queue for the async ones whose filters take it;
        return the queues that must be waited for (``BLOCK``, full), else None."""
        score = level_score(level)
        callbacks = self._listeners
        for callback, floor, take_late in callbacks.sync:
            if score < floor or (late and not take_late):
                continue
            try:
                callback(symbol, item, level)
            except Exception as exc:
                self._errors.callback_failed(
                    getattr(callback, "__qualname__", "callback"), symbol, exc
                )
        later: Later | None = None
        for subscriber in callbacks.subscribers:
            if score < subscriber.floor or (late and not subscriber.late):
                continue
            if not subscriber.offer(symbol, item, level):  # BLOCK, queue full: wait for room
                later = [] if later is None else later
                later.append(Offer(subscriber, symbol, item, level))
        return later

    def partial(self, item: TradeBar) -> None:
        """An in-progress bar: only callbacks that asked for updates see it; not stored."""
        callbacks = self._listeners
        for callback in callbacks.partial:
            try:
                callback(item.symbol, item, _GOOD)
            except Exception as exc:
                self._errors.callback_failed(
                    getattr(callback, "__qualname__", "callback"), item.symbol, exc
                )
        for subscriber in callbacks.subscribers:
            if subscriber.partial:
                subscriber.offer_update(item.symbol, item, _GOOD)
