"""Liveness and readiness, judged from the engine's state and its feeds (pure, no I/O).

- **Live** (``/health``): the engine is RUNNING.
- **Ready** (``/ready``): live, and every feed that has a subscription is CONNECTED and
  fresh: each of its subscribed symbols sent data within the feed's staleness limit.

A feed declares its limit with ``stale_after_s(symbol, now_ns) -> float | None``, the
method :class:`~lean_data.feeds.streaming.StreamingFeed` uses for its own watchdog
(``stale_factor`` x cadence, None while the symbol's market is closed); any
:class:`~lean_data.feeds.base.DataFeed` subclass may define it. A live feed without one is
judged against the gateway's ``stale_after_s`` when it is set; replays never go stale.
Silence counts from the later of the symbol's last item and the feed's connection time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lean_data.engine.state import EngineState
from lean_data.feeds.base import DataFeed, FeedStatus
from lean_data.gateway.view import EngineView

__all__ = ["liveness", "readiness", "stale_limit_s"]

_NS = 1_000_000_000


def liveness(engine: EngineView) -> dict[str, Any]:
    """Return ``{"live": bool, "engine": state}``."""
    return {"live": engine.state is EngineState.RUNNING, "engine": engine.state.value}


def stale_limit_s(
    feed: DataFeed, symbol: str, now_ns: int, default_s: float | None
) -> float | None:
    """Return the silence (s) after which ``symbol`` of ``feed`` is stale now, or None."""
    declared: Callable[[str, int], float | None] | None = getattr(feed, "stale_after_s", None)
    if callable(declared):
        return declared(symbol, now_ns)
    return default_s if feed.live else None


def readiness(engine: EngineView, now_ns: int, default_stale_s: float | None) -> dict[str, Any]:
    """Return ``{"ready": bool, "engine": state, "problems": [...], "feeds": {...}}``.

    Each problem names the ``feed``, the ``reason`` (``engine_not_running``,
    ``feed_not_connected``, ``stale``) and the detail: the feed's ``status``, or the
    ``symbol``, ``silent_s`` and ``limit_s`` of a stale subscription.
    """
    problems: list[dict[str, Any]] = []
    if engine.state is not EngineState.RUNNING:
        problems.append({"reason": "engine_not_running", "engine": engine.state.value})
    feeds = engine.feeds
    subscribed: dict[str, list[str]] = {}
    for feed_name, symbol in sorted(engine.subscriptions()):
        subscribed.setdefault(feed_name, []).append(symbol)
    summary: dict[str, Any] = {}
    for name, symbols in subscribed.items():
        feed = feeds.get(name)
        if feed is None:
            continue
        summary[name] = {"status": feed.status.value, "symbols": symbols}
        if feed.status is not FeedStatus.CONNECTED:
            problems.append(
                {"feed": name, "reason": "feed_not_connected", "status": feed.status.value}
            )
            continue
        for symbol in symbols:
            limit = stale_limit_s(feed, symbol, now_ns, default_stale_s)
            if limit is None:
                continue
            since = max(feed.last_seen.get(symbol, 0), feed.connected_since_ns)
            silent_s = (now_ns - since) / _NS
            if silent_s > limit:
                problems.append(
                    {
                        "feed": name,
                        "reason": "stale",
                        "symbol": symbol,
                        "silent_s": round(silent_s, 3),
                        "limit_s": limit,
                    }
                )
    return {
        "ready": not problems,
        "engine": engine.state.value,
        "problems": problems,
        "feeds": summary,
    }
