"""What travels inside the engine besides market data: control messages and waiting steps.

**Control messages** share the inbox with feeds' items, so they keep their order with them:
``STOP`` ends the pipeline behind everything accepted, ``WAKE`` wakes an idle pipeline to
take a backfill's answer, :func:`built` carries a bar the bar clock closed, and
:func:`barrier` tells a feed that everything it handed over before was processed.

**Steps** are what one item still has to do when doing it now would wait (a full
subscriber queue under BLOCK, a full storage queue, a bar built from the item that must
come after those, a replay's backfill answer). The pipeline's non-waiting functions return
them in order as a :data:`Later` list and the pipeline awaits them before the next item.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from lean_data.engine.subscribers import Subscriber
from lean_data.models import MarketData
from lean_data.quality.levels import DataQualityLevel

if TYPE_CHECKING:
    from lean_data.storage.base import Storage

__all__ = [
    "STOP",
    "WAKE",
    "AwaitAnswer",
    "Control",
    "KeepRecord",
    "Later",
    "Offer",
    "Rejoin",
    "Step",
    "Store",
    "barrier",
    "built",
]


class _Step:
    """Plain slotted value classes: ``dataclass`` would cost each ~0.5 ms at import (this
    module is loaded with ``import lean_data``). Fields are set once, in ``__init__``."""

    __slots__ = ()

    def __repr__(self) -> str:
        names: tuple[str, ...] = self.__slots__
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__name__}({fields})"


class Control(_Step):
    """An inbox entry for the pipeline itself (``kind``: stop, wake, built or barrier).

    ``bar``: the bar of a ``built`` message. ``reached``: a ``barrier``'s future, resolved
    when the pipeline takes it: every item the inbox held before it was processed
    (delivered, queued for storage, or held by continuity).
    """

    __slots__ = ("bar", "kind", "reached")

    def __init__(
        self,
        kind: str,
        bar: MarketData | None = None,
        reached: asyncio.Future[None] | None = None,
    ) -> None:
        self.kind = kind
        self.bar = bar
        self.reached = reached


STOP = Control("stop")
WAKE = Control("wake")


def built(bar: MarketData) -> Control:
    """Return the inbox entry for a bar the engine built (the bar clock closed it)."""
    return Control("built", bar)


def barrier(reached: asyncio.Future[None]) -> Control:
    """Return the inbox entry that resolves ``reached`` once the items before it are done."""
    return Control("barrier", None, reached)


class Offer(_Step):
    """Wait for room in a BLOCK subscriber's queue, then queue the item there."""

    __slots__ = ("item", "level", "subscriber", "symbol")

    def __init__(
        self, subscriber: Subscriber, symbol: str, item: MarketData, level: DataQualityLevel
    ) -> None:
        self.subscriber = subscriber
        self.symbol = symbol
        self.item = item
        self.level = level


class Store(_Step):
    """Wait for room in the storage queue, then queue the item there."""

    __slots__ = ("feed", "item", "verdict")

    def __init__(self, feed: str, item: MarketData, verdict: Any) -> None:
        self.feed = feed
        self.item = item
        self.verdict = verdict


class Rejoin(_Step):
    """A bar built (or released by continuity) from the current item, after what waits.

    ``released``: True for a bar continuity already decided (backfilled, parked, late).
    """

    __slots__ = ("bar", "feed", "late", "released")

    def __init__(self, feed: str, bar: MarketData, released: bool, late: bool) -> None:
        self.feed = feed
        self.bar = bar
        self.released = released
        self.late = late


class AwaitAnswer(_Step):
    """A replay's parked series is full: wait for its backfill answer before going on."""

    __slots__ = ("task",)

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task


class KeepRecord(_Step):
    """Save one derivatives record with ``storage.<method>([record], feed=feed)`` (storage's
    queue may be full)."""

    __slots__ = ("feed", "method", "record", "storage")

    def __init__(self, storage: Storage, method: str, feed: str, record: Any) -> None:
        self.storage = storage
        self.method = method
        self.feed = feed
        self.record = record

    async def save(self) -> None:
        await getattr(self.storage, self.method)([self.record], feed=self.feed)


Step = Offer | Store | Rejoin | AwaitAnswer | KeepRecord
Later = list[Step]
"""The steps of one item that must wait, in order."""
