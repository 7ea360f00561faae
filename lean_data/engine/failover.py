"""Failover bookkeeping: which feed delivers a symbol while its home feed is down or stale.

Pure state, no I/O: the engine asks it what to do and does the subscribing, logging and
metrics itself.

- A symbol's **home** feed is the one the user's subscription routed it to.
- When the home feed reports the symbol down (disconnected, stale, failed), the next
  registered feed that serves the symbol and is not failed becomes its **backup**; the
  engine subscribes the backup (unless the user already subscribed it there).
- The first item the home feed delivers again switches the symbol back; the backup's
  subscription made for the failover is dropped, and its items still in flight are
  discarded (counted), so subscribers never see the symbol from two feeds at once.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = ["FailoverState", "Switch"]


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

    @property
    def engaged(self) -> bool:
        """True when any item may need filtering (a route or a retired backup exists)."""
        return bool(self._routes) or bool(self._retired)

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
