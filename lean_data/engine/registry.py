"""The engine's feeds, routing, and who is subscribed where: (feed, symbol) reference counts.

Kept with an index from symbol to the feeds subscribed to it, so what is asked per symbol
(which live feed serves it, which calendar or asset class its feeds declare) costs a dict
lookup, not a scan of every subscription. The index keeps subscription order: the first
feed subscribed answers first. Connecting feeds and (un)subscribing them at the venue is
done here too, one connection attempt shared by concurrent callers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from lean_data.engine.error_log import RecordError
from lean_data.engine.tasks import Spawn
from lean_data.errors import ConfigError, LeanDataError, SubscriptionError
from lean_data.feeds.base import DataFeed
from lean_data.models import AssetClass

__all__ = ["FeedRegistry", "Routes"]


class Routes(Protocol):
    """The failover routes as subscriptions see them (:class:`~.failover.FailoverState`)."""

    def revive(self, feed: str, symbol: str) -> None: ...

    def home_of(self, symbol: str) -> str | None: ...

    def release(self, symbol: str) -> str | None: ...


class FeedRegistry:
    """Registered feeds by name and the reference-counted subscriptions to them.

    Args:
        failover: the failover routes (a user's subscription revives a standby feed; the
            last unsubscription of a failed-over symbol releases its backup).
        spawn: runs connection attempts as engine tasks.
        record_error: records a feed that could not connect.
        feed_down: fails a feed's symbols over when it cannot connect.
        running: whether the engine runs (feeds are told about subscriptions only then).
    """

    def __init__(
        self,
        failover: Routes,
        spawn: Spawn,
        record_error: RecordError,
        feed_down: Callable[[str, Sequence[str], str], None],
        running: Callable[[], bool],
    ) -> None:
        self.feeds: dict[str, DataFeed] = {}
        """The registered feeds by name (change it with :meth:`add` / :meth:`remove`)."""
        self.liveness: dict[str, bool] = {}
        """Each registered feed's ``live`` (a class attribute), read once when it is added:
        the pipeline measures latency by it for every item."""
        self._refcounts: dict[tuple[str, str], int] = {}
        self._by_symbol: dict[str, dict[str, None]] = {}  # symbol -> feed names, in order
        self._failover = failover
        self._spawn = spawn
        self._record_error = record_error
        self._feed_down = feed_down
        self._running = running
        self._connects: dict[str, asyncio.Task[bool | None]] = {}

    def route(self, symbol: str, feed_name: str | None = None) -> DataFeed:
        """Return the feed that serves ``symbol``: the named one, else the first that does.

        Raises:
            ConfigError: ``feed_name`` names no registered feed.
            SubscriptionError: no registered feed serves the symbol.
        """
        feeds = self.feeds
        if feed_name is not None:
            feed = feeds.get(feed_name)
            if feed is None:
                raise ConfigError(f"no feed named {feed_name!r}; feeds: {sorted(feeds)}")
            return feed
        for feed in feeds.values():
            if feed.supports(symbol):
                return feed
        raise SubscriptionError(f"no registered feed serves {symbol!r}; feeds: {sorted(feeds)}")

    async def connect_all(self) -> None:
        """At start: connect every feed, then apply the subscriptions made before.

        A feed that cannot connect or refuses a subscription is recorded (``feed_connect``
        / ``subscribe_failed``) and its symbols fail over when another feed serves them.
        """
        feeds = self.feeds
        await asyncio.gather(*(self.connect(feed) for feed in feeds.values()))
        for feed_name, symbol in self.subscriptions():
            try:
                await self.subscribe_feed(feeds[feed_name], symbol)
            except LeanDataError as exc:  # the engine runs on; the symbol fails over if it can
                self._record_error("subscribe_failed", str(exc), feed=feed_name, symbol=symbol)
                self._feed_down(feed_name, [symbol], str(exc))

    def connect_later(self, feed: DataFeed) -> None:
        """Start connecting ``feed`` in the background."""
        self._connects[feed.name] = self._spawn(f"connect:{feed.name}", self._do_connect, feed)

    async def connect(self, feed: DataFeed) -> bool:
        """Connect ``feed`` once: concurrent callers share the same attempt."""
        if feed.accepts_subscriptions:
            return True
        task = self._connects.get(feed.name)
        if task is None or task.done():
            task = self._spawn(f"connect:{feed.name}", self._do_connect, feed)
            self._connects[feed.name] = task
        return bool(await asyncio.shield(task))

    async def _do_connect(self, feed: DataFeed) -> bool:
        try:
            return await feed.open()
        except LeanDataError as exc:
            self._record_error("feed_connect", str(exc), feed=feed.name)
            self._feed_down(feed.name, self.symbols_of(feed.name), str(exc))
            return False

    async def subscribe_feed(self, feed: DataFeed, symbol: str) -> None:
        """Subscribe ``feed`` to ``symbol`` at the venue, connecting it first when needed.

        Raises:
            SubscriptionError: the feed cannot connect or refused the symbol.
        """
        if not feed.accepts_subscriptions and not await self.connect(feed):
            raise SubscriptionError(f"feed {feed.name!r} is not connected", feed=feed.name)
        if not await feed.subscribe(symbol):
            raise SubscriptionError(f"feed refused {symbol!r}", feed=feed.name)

    async def subscribe_first(self, feed: DataFeed, symbol: str) -> None:
        """Tell a running ``feed`` about its first reference to ``symbol``; undone on failure."""
        try:
            await self.subscribe_feed(feed, symbol)
        except BaseException:
            self.discard(feed.name, symbol)
            raise

    async def unsubscribe(self, symbol: str, feed_name: str | None = None) -> bool:
        """Drop one reference to ``symbol``; a running feed is told when none is left."""
        names = self.feeds_of(symbol)
        if feed_name is not None:
            names = [name for name in names if name == feed_name]
        if not names:
            return False
        name = names[0]
        if self.release(name, symbol) == 0:
            failover = self._failover
            backup = failover.release(symbol) if name == failover.home_of(symbol) else None
            if self._running():
                await self.feeds[name].unsubscribe(symbol)
                if backup is not None and not self.subscribed(backup, symbol):
                    await self.feeds[backup].unsubscribe(symbol)
        return True

    def add(self, feed: DataFeed) -> None:
        """Register ``feed`` under its name (the caller checked the name is free)."""
        self.feeds[feed.name] = feed
        self.liveness[feed.name] = bool(feed.live)

    def remove(self, name: str) -> DataFeed:
        """Unregister the feed ``name`` and drop its subscriptions; return it.

        Raises:
            ConfigError: no feed has this name.
        """
        feed = self.feeds.pop(name, None)
        self.liveness.pop(name, None)
        if feed is None:
            raise ConfigError(f"no feed named {name!r}; feeds: {sorted(self.feeds)}")
        for key in [k for k in self._refcounts if k[0] == name]:
            self._forget(key)
        return feed

    def subscriptions(self) -> dict[tuple[str, str], int]:
        """Return (feed, symbol) → reference count (a copy)."""
        return dict(self._refcounts)

    def subscribed(self, feed: str, symbol: str) -> bool:
        """True when ``feed`` has a subscription to ``symbol``."""
        return (feed, symbol) in self._refcounts

    def symbols_of(self, feed: str) -> list[str]:
        """Return the symbols subscribed on ``feed``."""
        return [s for f, s in self._refcounts if f == feed]

    def feeds_of(self, symbol: str) -> list[str]:
        """Return the feeds subscribed to ``symbol``, first subscribed first."""
        return list(self._by_symbol.get(symbol, ()))

    def acquire(self, feed: str, symbol: str) -> int:
        """Add one reference to (feed, symbol), no standby any more; return the count before."""
        self._failover.revive(feed, symbol)
        key = (feed, symbol)
        count = self._refcounts.get(key, 0)
        self._refcounts[key] = count + 1
        if count == 0:
            self._by_symbol.setdefault(symbol, {})[feed] = None
        return count

    def release(self, feed: str, symbol: str) -> int:
        """Drop one reference to (feed, symbol) (it exists); return the count left."""
        key = (feed, symbol)
        count = self._refcounts[key] - 1
        if count == 0:
            self._forget(key)
        else:
            self._refcounts[key] = count
        return count

    def discard(self, feed: str, symbol: str) -> None:
        """Drop every reference to (feed, symbol)."""
        if (feed, symbol) in self._refcounts:
            self._forget((feed, symbol))

    def _forget(self, key: tuple[str, str]) -> None:
        del self._refcounts[key]
        feeds = self._by_symbol[key[1]]
        del feeds[key[0]]
        if not feeds:
            del self._by_symbol[key[1]]

    def live_feed_of(self, symbol: str) -> str | None:
        """Return the first live feed subscribed to ``symbol``, if any."""
        liveness = self.liveness
        for name in self._by_symbol.get(symbol, ()):
            if liveness[name]:
                return name
        return None

    def live(self, feed: str) -> bool:
        """True unless ``feed`` is a registered feed that is not live (a replay)."""
        return self.liveness.get(feed, True)

    def sparse(self, feed: str) -> bool:
        """True when ``feed`` is registered and sends sparse bars (no bar: no trade)."""
        source = self.feeds.get(feed)
        return source is not None and source.sparse

    def asset_class_of(self, symbol: str) -> AssetClass | None:
        """What a feed serving ``symbol`` says it is (venue metadata), else None."""
        for name in self._by_symbol.get(symbol, ()):
            found = self.feeds[name].asset_class(symbol)
            if found is not None:
                return found
        return None

    def declared_calendar(self, symbol: str) -> Any:
        """The calendar the first feed serving ``symbol`` declares, else None."""
        for name in self._by_symbol.get(symbol, ()):
            calendar = self.feeds[name].calendar(symbol)
            if calendar is not None:
                return calendar
        return None
