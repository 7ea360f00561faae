"""Failover: which feed delivers a symbol while its home feed is down or stale.

:class:`FailoverState` is the bookkeeping, pure state with no I/O; :class:`Failover` is the
engine's component around it that subscribes and releases backups and records every switch
in the log, the errors table and the metrics.

- A symbol's **home** feed is the one the user's subscription routed it to.
- When the home feed reports the symbol down (disconnected, stale, failed), the next
  registered feed that serves the symbol and is not failed becomes its **backup**; the
  engine subscribes the backup (unless the user already subscribed it there).
- The first item the home feed delivers again switches the symbol back; the backup's
  subscription made for the failover is dropped, and its items still in flight are
  discarded (counted), so subscribers never see the symbol from two feeds at once.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from lean_data.engine.error_log import RecordError
from lean_data.engine.metrics import DataMetrics
from lean_data.engine.registry import FeedRegistry
from lean_data.engine.tasks import Spawn
from lean_data.errors import LeanDataError
from lean_data.feeds.base import DataFeed, FeedStatus

__all__ = ["Failover", "FailoverState", "Switch"]

log = logging.getLogger("lean_data.engine")


@dataclass(frozen=True, slots=True)
class Switch:
    """One change of the feed delivering ``symbol``."""

    symbol: str
    from_feed: str
    to_feed: str
    reason: str
    ts_ns: int
    back: bool
    """True for a switch back to the home feed."""


@dataclass(slots=True)
class _Route:
    home: str
    backup: str
    owned: bool  # the engine subscribed the backup for this failover


class FailoverState:
    """Per-symbol failover routes, the switch history and the standby filter."""

    __slots__ = ("_retired", "_routes", "history", "standby_dropped", "switch_backs", "switches")

    def __init__(self, history: int = 1000) -> None:
        self._routes: dict[str, _Route] = {}
        self._retired: set[tuple[str, str]] = set()
        self.history: deque[Switch] = deque(maxlen=history)
        self.switches = 0
        self.switch_backs = 0
        self.standby_dropped = 0

    def filters(self) -> tuple[Mapping[str, object], AbstractSet[tuple[str, str]]]:
        """The routes and the retired backups themselves (never replaced): while both are
        empty no item needs :meth:`admit`. The pipeline reads them per item."""
        return self._routes, self._retired

    def backup_of(self, symbol: str) -> str | None:
        """Return the feed standing in for ``symbol``'s home feed, if any."""
        route = self._routes.get(symbol)
        return route.backup if route is not None else None

    def home_of(self, symbol: str) -> str | None:
        """Return the home feed of a failed-over symbol, if it is failed over."""
        route = self._routes.get(symbol)
        return route.home if route is not None else None

    def fail_over(self, symbol: str, home: str, backup: str, *, owned: bool, reason: str) -> Switch:
        """Record that ``backup`` now delivers ``symbol`` instead of ``home``."""
        self._routes[symbol] = _Route(home, backup, owned)
        self._retired.discard((backup, symbol))
        self.switches += 1
        switch = Switch(symbol, home, backup, reason, time.time_ns(), back=False)
        self.history.append(switch)
        return switch

    def admit(self, feed: str, symbol: str) -> tuple[bool, Switch | None, str | None]:
        """Decide about one item of ``symbol`` from ``feed``.

        Returns:
            (deliver, switch back made, backup to unsubscribe): an item from the home feed
            of a failed-over symbol switches back (and names the backup to release when
            the engine subscribed it); an item from a retired backup is not delivered.
        """
        route = self._routes.get(symbol)
        if route is not None:
            if feed == route.home:
                del self._routes[symbol]
                self.switch_backs += 1
                switch = Switch(symbol, route.backup, route.home, "home feed recovered",
                                time.time_ns(), back=True)  # fmt: skip
                self.history.append(switch)
                if route.owned:
                    self._retired.add((route.backup, symbol))
                    return True, switch, route.backup
                return True, switch, None
            if feed == route.backup:
                return True, None, None
        if (feed, symbol) in self._retired:
            self.standby_dropped += 1
            return False, None, None
        return True, None, None

    def release(self, symbol: str) -> str | None:
        """Forget ``symbol``'s route (the user unsubscribed); return an owned backup to drop."""
        route = self._routes.pop(symbol, None)
        if route is not None and route.owned:
            self._retired.add((route.backup, symbol))
            return route.backup
        return None

    def revive(self, feed: str, symbol: str) -> None:
        """The user subscribed ``feed`` to ``symbol`` directly: stop discarding its items."""
        self._retired.discard((feed, symbol))

    def statistics(self) -> dict[str, Any]:
        """Return counters, the current routes and the last switches."""
        return {
            "switches": self.switches,
            "switch_backs": self.switch_backs,
            "standby_dropped": self.standby_dropped,
            "active": {s: {"home": r.home, "backup": r.backup} for s, r in self._routes.items()},
            "history": [
                {
                    "symbol": sw.symbol,
                    "from": sw.from_feed,
                    "to": sw.to_feed,
                    "reason": sw.reason,
                    "ts_ns": sw.ts_ns,
                    "back": sw.back,
                }
                for sw in list(self.history)[-20:]
            ],
        }


class Failover:
    """Fail symbols over to the next feed serving them, and back.

    Args:
        state: the routes (the registry shares them).
        registry: the engine's feeds and subscriptions; subscribes backups.
        metrics: counts each switch.
        record_error: writes each switch to the errors table.
        spawn: runs the (un)subscribing of backups as engine tasks.
        running: whether the engine runs (a stopping engine fails nothing over).
    """

    def __init__(
        self,
        state: FailoverState,
        registry: FeedRegistry,
        metrics: DataMetrics,
        record_error: RecordError,
        spawn: Spawn,
        running: Callable[[], bool],
    ) -> None:
        self.state = state
        self._registry = registry
        self._metrics = metrics
        self._record_error = record_error
        self._spawn = spawn
        self._running = running

    def feed_down(self, feed: str, symbols: Sequence[str], reason: str) -> None:
        """Fail ``symbols`` over from ``feed`` to the next feed serving each.

        Only symbols the engine routed to ``feed`` (or that ``feed`` stands in for) move; a
        symbol with no other feed stays where it is and waits for ``feed`` to recover.
        """
        if not self._running():
            return
        state, registry = self.state, self._registry
        for symbol in symbols:
            home = state.home_of(symbol)
            if home is None:
                if not registry.subscribed(feed, symbol):
                    continue
                home = feed
            elif state.backup_of(symbol) != feed:
                continue  # already served by a backup; the home feed's news changes nothing
            backup = self._backup_for(symbol, exclude={home, feed})
            if backup is None:
                continue
            owned = not registry.subscribed(backup.name, symbol)
            switch = state.fail_over(
                symbol, home, backup.name, owned=owned, reason=f"{feed}: {reason}"
            )
            self._record_switch(switch)
            if owned:
                self._spawn(f"failover:{symbol}", self._subscribe_backup, backup, symbol)

    def admit(self, feed: str, symbol: str) -> bool:
        """Whether an item of ``symbol`` from ``feed`` is delivered (switching back on the way)."""
        deliver, switch, release = self.state.admit(feed, symbol)
        if switch is not None:
            self._record_switch(switch)
        if release is not None:
            self._spawn(f"failback:{symbol}", self._release_backup, release, symbol)
        return deliver

    def _backup_for(self, symbol: str, exclude: set[str]) -> DataFeed | None:
        for candidate in self._registry.feeds.values():
            if (
                candidate.name not in exclude
                and candidate.status not in (FeedStatus.FAILED, FeedStatus.CLOSED)
                and candidate.supports(symbol)
            ):
                return candidate
        return None

    async def _subscribe_backup(self, feed: DataFeed, symbol: str) -> None:
        try:
            await self._registry.subscribe_feed(feed, symbol)
        except LeanDataError as exc:
            self._record_error("failover_failed", f"{feed.name}: {exc}", symbol=symbol)

    async def _release_backup(self, feed: str, symbol: str) -> None:
        backup = self._registry.feeds.get(feed)
        if backup is not None and not self._registry.subscribed(feed, symbol):
            try:
                await backup.unsubscribe(symbol)
            except LeanDataError as exc:
                self._record_error("failover_failed", f"{feed}: {exc}", symbol=symbol)

    def _record_switch(self, switch: Switch) -> None:
        kind = "failback" if switch.back else "failover"
        message = f"{switch.symbol}: {switch.from_feed} -> {switch.to_feed} ({switch.reason})"
        log.warning("%s %s", kind, message)
        self._metrics.increment_errors(feed=switch.from_feed, kind=kind)
        self._record_error(kind, message, feed=switch.from_feed, symbol=switch.symbol)
