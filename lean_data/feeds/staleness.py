"""The staleness watchdog: which subscription went silent for longer than it may.

A subscription promises a cadence (seconds between messages); it is stale after a window
of silence (``stale_factor`` x cadence, plus a grace when the cadence is derived from bars)
while its market is open. :class:`StalenessWatch` judges that over one session's
subscriptions and sleeps until the next one could turn stale; the feed decides the windows
(:meth:`StreamingFeed.stale_after_s <lean_data.feeds.streaming.StreamingFeed.stale_after_s>`)
and what a stale subscription means (report it, fail over, recycle the session).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from lean_data.errors import FeedConnectError

__all__ = ["Cadence", "Stale", "StaleSubscriptionError", "StalenessWatch"]

Cadence = float | Mapping[str, float] | Literal["auto"] | None
"""What ``cadence_s`` takes: ``"auto"`` (derived from bars), seconds, per symbol, or off."""

_NS = 1_000_000_000


class StaleSubscriptionError(FeedConnectError):
    """A subscription sent nothing for longer than its cadence allows; the session is recycled."""


@dataclass(frozen=True, slots=True)
class Stale:
    """A subscription found stale: ``silent_s`` seconds without data, allowed ``window_s``."""

    symbol: str
    silent_s: float
    window_s: float


class StalenessWatch:
    """Judge subscriptions stale from their last data, for the sessions of one feed.

    Args:
        cadence_of: the seconds between messages a symbol promises, or None (never stale).
        stale_after_s: the silence (s) after which a symbol is stale at a time (ns), or
            None while its market is closed (silence does not count then).
        last_seen: receive time (ns) of the last data per symbol; read, never written.
    """

    def __init__(
        self,
        cadence_of: Callable[[str], float | None],
        stale_after_s: Callable[[str, int], float | None],
        last_seen: Mapping[str, int],
    ) -> None:
        self._cadence_of = cadence_of
        self._stale_after_s = stale_after_s
        self._last_seen = last_seen
        self._closed_seen: dict[str, int] = {}  # symbol -> last ns its market was closed
        self._changed = asyncio.Event()

    def wake(self) -> None:
        """Look again now: the subscriptions changed."""
        self._changed.set()

    def check(self, active: Mapping[str, int], now_ns: int) -> tuple[Stale | None, int | None]:
        """Return the first stale subscription of ``active`` and the ns until the next look.

        Args:
            active: subscribed symbols -> when (ns) they were subscribed on this session.
            now_ns: the current time.

        Returns:
            ``(stale, None)`` when one is stale; else ``(None, wait_ns)``, where ``wait_ns``
            is None when no subscription has a cadence (wait for :meth:`wake`).
        """
        wait_ns: int | None = None
        for symbol, subscribed_ns in active.items():
            cadence = self._cadence_of(symbol)
            if cadence is None:
                continue
            window = self._stale_after_s(symbol, now_ns)
            if window is None:  # its market is closed: look again within a cadence
                self._closed_seen[symbol] = now_ns
                left = int(cadence * _NS)
            else:
                since = max(
                    self._last_seen.get(symbol, 0),
                    subscribed_ns,
                    self._closed_seen.get(symbol, 0),
                )
                left = since + int(window * _NS) - now_ns
                if left < 0:
                    return Stale(symbol, (now_ns - since) / _NS, window), None
            if wait_ns is None or left < wait_ns:
                wait_ns = left
        return None, wait_ns

    async def wait_stale(self, active: Mapping[str, int]) -> Stale:
        """Return the first subscription of ``active`` found stale; looks until then."""
        while True:
            self._changed.clear()
            stale, wait_ns = self.check(active, time.time_ns())
            if stale is not None:
                return stale
            if wait_ns is None:
                await self._changed.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait_ns / _NS + 0.001)
