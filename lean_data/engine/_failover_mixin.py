"""The engine's failover: which feed delivers a symbol while its home feed is down.

A mixin of :class:`~lean_data.engine.DataEngine`. The bookkeeping is pure
(:class:`~lean_data.engine.failover.FailoverState`); this module subscribes and releases backups and
records every switch in the log, the errors table and the metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from lean_data.engine.failover import FailoverState, Switch
from lean_data.engine.metrics import DataMetrics
from lean_data.errors import LeanDataError
from lean_data.feeds.base import DataFeed, FeedStatus

if TYPE_CHECKING:
    from lean_data.engine.state import EngineState

__all__ = ["FailoverMixin"]

log = logging.getLogger("lean_data.engine")


class FailoverMixin:
    """Fail symbols over to the next feed serving them, and back."""

    failover: FailoverState
    metrics: DataMetrics
    state: EngineState
    _feeds: dict[str, DataFeed]
    _refcounts: dict[tuple[str, str], int]

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def _own(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        raise NotImplementedError

    def _record_error(self, kind: str, message: str, *, feed: str = "", symbol: str = "") -> None:
        raise NotImplementedError

    async def _feed_subscribe(self, feed: DataFeed, symbol: str) -> None:
        raise NotImplementedError

    def feed_down(self, feed: str, symbols: Sequence[str], reason: str) -> None:
        """Fail ``symbols`` over from ``feed`` to the next feed serving each (feeds call this).

        Only symbols the engine routed to ``feed`` (or that ``feed`` stands in for) move; a
        symbol with no other feed stays where it is and waits for ``feed`` to recover.
        """
        if not self.running:
            return
        for symbol in symbols:
            home = self.failover.home_of(symbol)
            if home is None:
                if (feed, symbol) not in self._refcounts:
                    continue
                home = feed
            elif self.failover.backup_of(symbol) != feed:
                continue  # already served by a backup; the home feed's news changes nothing
            backup = self._backup_for(symbol, exclude={home, feed})
            if backup is None:
                continue
            owned = (backup.name, symbol) not in self._refcounts
            switch = self.failover.fail_over(
                symbol, home, backup.name, owned=owned, reason=f"{feed}: {reason}"
            )
            self._record_switch(switch)
            if owned:
                self._own(self._subscribe_backup(backup, symbol), f"failover:{symbol}")

    def _backup_for(self, symbol: str, exclude: set[str]) -> DataFeed | None:
        for candidate in self._feeds.values():
            if (
                candidate.name not in exclude
                and candidate.status not in (FeedStatus.FAILED, FeedStatus.CLOSED)
                and candidate.supports(symbol)
            ):
                return candidate
        return None

    async def _subscribe_backup(self, feed: DataFeed, symbol: str) -> None:
        try:
            await self._feed_subscribe(feed, symbol)
        except LeanDataError as exc:
            self._record_error("failover_failed", f"{feed.name}: {exc}", symbol=symbol)

    async def _release_backup(self, feed: str, symbol: str) -> None:
        backup = self._feeds.get(feed)
        if backup is not None and (feed, symbol) not in self._refcounts:
            try:
                await backup.unsubscribe(symbol)
            except LeanDataError as exc:
                self._record_error("failover_failed", f"{feed}: {exc}", symbol=symbol)

    def _record_switch(self, switch: Switch) -> None:
        kind = "failback" if switch.back else "failover"
        message = f"{switch.symbol}: {switch.from_feed} -> {switch.to_feed} ({switch.reason})"
        log.warning("%s %s", kind, message)
        self.metrics.increment_errors(feed=switch.from_feed, kind=kind)
        self._record_error(kind, message, feed=switch.from_feed, symbol=switch.symbol)

    def _admit(self, feed: str, symbol: str) -> bool:
        deliver, switch, release = self.failover.admit(feed, symbol)
        if switch is not None:
            self._record_switch(switch)
        if release is not None:
            self._own(self._release_backup(release, symbol), f"failback:{symbol}")
        return deliver
