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
from dataclasses import dataclass
from typing import Any

from lean_data.engine.subscribers import Subscriber
from lean_data.models import MarketData
from lean_data.quality.levels import DataQualityLevel
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


@dataclass(frozen=True, slots=True)
class Control:
    """An inbox entry for the pipeline itself (``kind``: stop, wake, built or barrier)."""

    kind: str
    bar: MarketData | None = None
    """The bar of a ``built`` message."""
    reached: asyncio.Future[None] | None = None
    """A ``barrier``'s future, resolved when the pipeline takes it: every item the inbox
    held before it was processed (delivered, queued for storage, or held by continuity)."""


STOP = Control("stop")
WAKE = Control("wake")


def built(bar: MarketData) -> Control:
    """Return the inbox entry for a bar the engine built (the bar clock closed it)."""
    return Control("built", bar)


def barrier(reached: asyncio.Future[None]) -> Control:
    """Return the inbox entry that resolves ``reached`` once the items before it are done."""
    return Control("barrier", None, reached)


@dataclass(frozen=True, slots=True)
class Offer:
    """Wait for room in a BLOCK subscriber's queue, then queue the item there."""

    subscriber: Subscriber
    symbol: str
    item: MarketData
    level: DataQualityLevel


@dataclass(frozen=True, slots=True)
class Store:
    """Wait for room in the storage queue, then queue the item there."""

    feed: str
    item: MarketData
    verdict: Any


@dataclass(frozen=True, slots=True)
class Rejoin:
    """A bar built (or released by continuity) from the current item, after what waits."""

    feed: str
    bar: MarketData
    released: bool
    """True for a bar continuity already decided (backfilled, parked, late)."""
    late: bool


@dataclass(frozen=True, slots=True)
class AwaitAnswer:
    """A replay's parked series is full: wait for its backfill answer before going on."""

    task: asyncio.Task[Any]


@dataclass(frozen=True, slots=True)
class KeepRecord:
    """Save one derivatives record with ``storage.<method>([record], feed=feed)`` (storage's
    queue may be full)."""

    storage: Storage
    method: str
    feed: str
    record: Any

    async def save(self) -> None:
        await getattr(self.storage, self.method)([self.record], feed=self.feed)


Step = Offer | Store | Rejoin | AwaitAnswer | KeepRecord
Later = list[Step]
"""The steps of one item that must wait, in order."""
