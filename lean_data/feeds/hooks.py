"""The five hooks a network feed implements, and the optional ones it may override.

:class:`SessionHooks` is the contract of a
:class:`~lean_data.feeds.streaming.StreamingFeed` subclass, apart from the machinery that
calls it: required — open a session, close it, send a subscribe, send an unsubscribe, read
the session until it ends; optional — the bar period and market hours that derive a
subscription's staleness window. It holds no state.

Hooks must not wait for a reply that :meth:`~SessionHooks.run_session` reads (send a
subscribe and return): ``run_session`` may be blocked in ``emit`` while the engine's inbox
is full, and the caller of ``subscribe`` may be the very callback the engine is waiting for.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

__all__ = ["SessionHooks"]


class SessionHooks(abc.ABC):
    """What a network feed says about its venue; the streaming base does the rest."""

    # ----------------------------------------------------------------- required
    @abc.abstractmethod
    async def open_session(self) -> None:
        """Dial and authenticate; raise (a FeedError, OSError, ...) when that fails."""

    @abc.abstractmethod
    async def close_session(self) -> None:
        """Close the session's connection; safe to call when nothing is open."""

    @abc.abstractmethod
    async def send_subscribe(self, symbols: Sequence[str]) -> None:
        """Ask the source for ``symbols`` on the open session; do not wait for its reply."""

    @abc.abstractmethod
    async def send_unsubscribe(self, symbols: Sequence[str]) -> None:
        """Stop ``symbols`` on the open session; do not wait for its reply."""

    @abc.abstractmethod
    async def run_session(self) -> None:
        """Read the open session until it ends: parse, ``await self.emit(item)`` per item.

        Report a bad frame with ``report_error`` and go on; raise when the connection
        is lost (returning means the server closed it).
        """

    # ----------------------------------------------------------------- optional
    stale_grace_s: float = 0.0
    """Seconds added to a derived staleness window (a bar's final update may come late)."""

    def bar_period_s(self, symbol: str) -> float | None:
        """Return the bar period (s) of ``symbol``'s bar subscription, or None (no bars).

        The default cadence of ``cadence_s="auto"``; the base has none.
        """
        return None

    def expects_data(self, symbol: str, now_ns: int) -> bool:
        """Return True when ``symbol``'s market is open at ``now_ns`` (silence counts then).

        Applies to derived cadences only; the base expects data always (24/7 markets).
        """
        return True
