"""A small in-memory feed used by the engine tests (a real DataFeed subclass, no mocks)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime

from lean_data import AssetClass, DataFeed, Resolution
from lean_data.feeds.base import FeedStatus
from lean_data.models import MarketData, datetime_to_ns, with_ts_recv


def received(items: Sequence[MarketData]) -> list[MarketData]:
    """Return ``items`` as a live feed builds them: stamped with a receive time (now).

    ``DataFeed.emit`` passes a stamped item on as it is, and hands the engine a stamped
    copy of one left at 0 (models are immutable), so a test that compares (or identifies)
    what the engine delivered with what it sent sends received items.
    """
    now = time.time_ns()
    return [with_ts_recv(x, now) if x.ts_recv == 0 else x for x in items]


class IdleFeed(DataFeed):
    """A feed that connects and subscribes and does nothing else (tests add behaviour)."""

    async def connect(self) -> bool:
        return True

    async def disconnect(self) -> None:
        pass

    async def subscribe(self, symbol: str) -> bool:
        return True

    async def unsubscribe(self, symbol: str) -> bool:
        return True

    async def get_historical_data(
        self,
        symbol: str,
        start_date: datetime | int,
        end_date: datetime | int,
        resolution: Resolution,
    ) -> list[MarketData]:
        return []


class ListFeed(DataFeed):
    """Emits a fixed list of items per symbol on subscribe and records every call."""

    live = False

    def __init__(
        self,
        name: str,
        items: dict[str, Sequence[MarketData]] | None = None,
        *,
        asset_classes: frozenset[AssetClass] | None = None,
        history: Sequence[MarketData] = (),
    ) -> None:
        super().__init__(name, asset_classes=asset_classes)
        self.items = dict(items or {})
        self.history = list(history)
        self.calls: list[tuple[str, str]] = []
        self.history_calls = 0
        self.pumps: dict[str, asyncio.Task[None]] = {}

    async def connect(self) -> bool:
        self.calls.append(("connect", ""))
        self.status = FeedStatus.CONNECTED
        return True

    async def disconnect(self) -> None:
        self.calls.append(("disconnect", ""))

    async def subscribe(self, symbol: str) -> bool:
        self.calls.append(("subscribe", symbol))
        if symbol in self.items:
            self.pumps[symbol] = self.spawn(self._pump(symbol), name=symbol)
        return True

    async def unsubscribe(self, symbol: str) -> bool:
        self.calls.append(("unsubscribe", symbol))
        return True

    async def get_historical_data(
        self,
        symbol: str,
        start_date: datetime | int,
        end_date: datetime | int,
        resolution: Resolution,
    ) -> list[MarketData]:
        self.history_calls += 1
        start = start_date if isinstance(start_date, int) else datetime_to_ns(start_date)
        end = end_date if isinstance(end_date, int) else datetime_to_ns(end_date)
        return [x for x in self.history if x.symbol == symbol and start <= x.ts_event < end]

    async def _pump(self, symbol: str) -> None:
        for item in self.items[symbol]:
            await self.emit(item)

    async def wait_pumped(self) -> None:
        await asyncio.gather(*self.pumps.values())
