"""The feed registry's symbol index answers what the refcount scan answered."""

from __future__ import annotations

import pytest

from lean_data.engine.failover import FailoverState
from lean_data.engine.registry import FeedRegistry
from lean_data.engine.tasks import EngineTasks
from lean_data.errors import ConfigError
from tests.helpers import ListFeed


class LiveFeed(ListFeed):
    live = True


def _registry() -> FeedRegistry:
    def record(kind: str, message: str, *, feed: str = "", symbol: str = "") -> None:
        raise AssertionError(f"nothing is recorded here: {kind} {message}")

    tasks = EngineTasks(record)  # never opened: these tests start no task
    return FeedRegistry(FailoverState(), tasks.spawn, record, lambda *args: None, lambda: False)


def _scan_live_feed_of(registry: FeedRegistry, symbol: str) -> str | None:
    """The scan the index replaced: every subscription, in subscription order."""
    for feed_name, subscribed in registry.subscriptions():
        if subscribed == symbol and registry.feeds[feed_name].live:
            return feed_name
    return None


def test_the_index_follows_subscriptions_in_order() -> None:
    registry = _registry()
    for feed in (ListFeed("replay"), LiveFeed("live-a"), LiveFeed("live-b")):
        registry.add(feed)
    assert registry.acquire("replay", "BTCUSDT") == 0
    assert registry.acquire("live-b", "BTCUSDT") == 0
    assert registry.acquire("live-a", "BTCUSDT") == 0
    assert registry.acquire("live-a", "BTCUSDT") == 1
    assert registry.acquire("live-a", "ETHUSDT") == 0
    assert registry.feeds_of("BTCUSDT") == ["replay", "live-b", "live-a"]
    assert registry.live_feed_of("BTCUSDT") == "live-b" == _scan_live_feed_of(registry, "BTCUSDT")

    assert registry.release("live-b", "BTCUSDT") == 0
    assert registry.live_feed_of("BTCUSDT") == "live-a" == _scan_live_feed_of(registry, "BTCUSDT")
    assert registry.release("live-a", "BTCUSDT") == 1  # one reference left
    assert registry.live_feed_of("BTCUSDT") == "live-a"

    registry.remove("live-a")
    assert registry.subscriptions() == {("replay", "BTCUSDT"): 1}
    assert registry.live_feed_of("BTCUSDT") is None is _scan_live_feed_of(registry, "BTCUSDT")
    assert registry.feeds_of("ETHUSDT") == []
    assert registry.symbols_of("replay") == ["BTCUSDT"]


def test_removing_an_unknown_feed_names_the_known_ones() -> None:
    registry = _registry()
    registry.add(ListFeed("replay"))
    with pytest.raises(ConfigError, match=r"no feed named 'nope'; feeds: \['replay'\]"):
        registry.remove("nope")
