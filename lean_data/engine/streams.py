"""``DataEngine.stream()``: the engine's items as an async iterator.

A :class:`Stream` is a pulled :class:`~lean_data.engine.subscribers.Subscriber`: the same
bounded queue, overflow policy, filters and counters as an async callback's (and listed in
``get_metrics()["subscribers"]``), with no worker task: ``async for`` takes the items.

- **Order.** Items come in the order the pipeline delivered them, each once.
- **End.** When the engine stops, the stream yields what was queued, then ends: nothing
  accepted is withheld.
- **Leaving early.** ``break`` (or an exception) out of ``async for`` over
  ``engine.stream(...)`` unregisters it at once: the stream object is gone, and its
  finaliser takes the subscriber off the engine. A stream kept in a variable is
  unregistered by :meth:`Stream.close` or by leaving ``async with engine.stream(...)``.
- **Policy.** ``drop_oldest`` by default, not ``config.overflow_policy``: the engine cannot
  tell a consumer that stopped reading from a slow one, and a ``block`` stream that nobody
  reads stalls every feed and callback once its queue is full. Drops are counted
  (``stream.dropped``, the subscriber's metrics); ``policy="block"`` makes it lossless.
- **Idle.** ``engine.wait_idle()`` waits for a stream to be read, as for an async
  callback to return.
"""

from __future__ import annotations

from typing import Any

from lean_data.engine.subscribers import Callbacks, Subscriber
from lean_data.models import MarketData
from lean_data.quality.levels import DataQualityLevel

__all__ = ["Stream"]


class Stream:
    """An async iterator of ``(symbol, item, quality)``, from ``DataEngine.stream()``.

    Args:
        subscriber: the pulled subscriber it reads (listed in ``callbacks``).
        callbacks: where the subscriber is listed; :meth:`close` unlists it.
    """

    __slots__ = ("_callbacks", "_closed", "subscriber")

    def __init__(self, subscriber: Subscriber, callbacks: Callbacks) -> None:
        self.subscriber = subscriber
        self._callbacks = callbacks
        self._closed = False

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> tuple[str, MarketData, DataQualityLevel]:
        entry = None if self._closed else await self.subscriber.pull()
        if entry is None:
            self.close()
            raise StopAsyncIteration
        return entry

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Unregister the stream; what it still queues is discarded and counted as dropped.

        Idempotent; the iteration ends.
        """
        if self._closed:
            return
        self._closed = True
        self._callbacks.discard(self.subscriber)
        self.subscriber.abandon()

    def __del__(self) -> None:  # `break` out of `async for`: the last reference goes
        if not getattr(self, "_closed", True):
            self.close()

    @property
    def dropped(self) -> int:
        """Items its overflow policy discarded (and those a close discarded)."""
        return self.subscriber.dropped

    @property
    def delivered(self) -> int:
        """Items the iteration took."""
        return self.subscriber.delivered

    def statistics(self) -> dict[str, Any]:
        """Return a snapshot of its counters (as in ``get_metrics()["subscribers"]``)."""
        return self.subscriber.statistics()
