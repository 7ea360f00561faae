"""OHLCV history for a :class:`~lean_data.feeds.ccxt_feed.CcxtDataFeed`, over ccxt's REST API.

:class:`CcxtHistory` owns a REST exchange (``ccxt.async_support.<exchange_id>``), separate
from the streaming sessions so history works whether or not a session is open. It is built
(with the feed's markets) on first use and closed by :meth:`CcxtHistory.close`. Every
``fetch_ohlcv`` page goes through the feed's ``retrying`` (429/418 ``Retry-After``
honoured); parsing a page is :func:`lean_data.wire.ccxt.page_bars`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Protocol, TypeVar

from lean_data.errors import ConfigError
from lean_data.models import MarketData, Resolution, TradeBar
from lean_data.wire.ccxt import page_bars, timeframe_of

__all__ = ["CcxtHistory", "Retrying"]

_MS = 1_000_000
T = TypeVar("T")


class Retrying(Protocol):
    """The feed's retry loop (:meth:`~lean_data.feeds.streaming.StreamingFeed.retrying`)."""

    async def __call__(self, call: Callable[[], Awaitable[T]], *, what: str) -> T:
        """Run ``call`` with retries; return its result."""


class CcxtHistory:
    """Closed candles from a ccxt REST exchange, page by page.

    Args:
        feed: the feed's name (errors).
        exchange_id: the ccxt id.
        page_limit: candles per ``fetch_ohlcv`` page.
        new_exchange: builds an exchange from a ccxt module name.
        set_markets: gives an exchange the feed's markets (loading them once if unknown).
        call: awaits one ccxt call, mapping ccxt's errors to lean_data's.
        retrying: the feed's retry loop.
        report_error: the feed's ``report_error`` (malformed rows are reported, skipped).

    Attributes:
        call, retrying, report: ``call``, ``retrying`` and ``report_error`` (shared with
            the feed's other REST requests: funding rates, open interest).
    """

    def __init__(
        self,
        feed: str,
        exchange_id: str,
        *,
        page_limit: int,
        new_exchange: Callable[[str], Any],
        set_markets: Callable[[Any], Awaitable[None]],
        call: Callable[..., Awaitable[Any]],
        retrying: Retrying,
        report_error: Callable[..., None],
    ) -> None:
        self.feed, self.exchange_id, self.page_limit = feed, exchange_id, page_limit
        self._new_exchange, self._set_markets = new_exchange, set_markets
        self.call, self.retrying, self.report = call, retrying, report_error
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def client(self) -> Any:
        """Return the REST exchange, built (with markets) on first use."""
        async with self._lock:
            if self._client is None:
                client = self._new_exchange("ccxt.async_support")
                try:
                    await self.retrying(
                        partial(self._set_markets, client), what=f"{self.exchange_id} markets"
                    )
                except BaseException:
                    await client.close()
                    raise
                self._client = client
            return self._client

    async def fetch(self, symbol: str, start: int, end: int, res: Resolution) -> list[MarketData]:
        """Return closed bars of ``symbol`` opening in ``[start, end)`` (ns), oldest first.

        Pages ``fetch_ohlcv`` from ``start`` by ``since``/``limit`` (at most ``page_limit``
        candles, never more than the range still needs) until ``end``. Bars repeated
        across pages are kept once.

        Raises:
            ConfigError: ``res`` is TICK or a period the exchange has no candles for.
            FeedError: a page failed fatally or the backoff policy gave up.
        """
        try:
            timeframe = timeframe_of(res)
        except ValueError as exc:
            raise ConfigError(f"{self.feed}: history needs a bar period: {exc}") from exc
        if end <= start:
            return []
        client = await self.client()
        if client.timeframes and timeframe not in client.timeframes:
            raise ConfigError(f"{self.exchange_id} has no {timeframe!r} candles")
        period_ms = res.nanos // _MS
        cursor, end_ms = math.ceil(start / _MS), math.ceil(end / _MS)
        bars: dict[int, TradeBar] = {}
        while cursor < end_ms:
            limit = min(self.page_limit, math.ceil((end_ms - cursor) / period_ms))
            fetch = partial(self.call, client, client.fetch_ohlcv, symbol, timeframe, cursor, limit)
            rows = await self.retrying(
                fetch, what=f"fetch_ohlcv {symbol} {timeframe} since {cursor}"
            )
            newest, problems = page_bars(symbol, rows, res, start, end, bars)
            for problem in problems:
                self.report("bad_row", f"{symbol} history: {problem}", symbol=symbol)
            if newest is None or newest < cursor:
                break  # an empty page, or the exchange ignored `since`: nothing further
            cursor = newest + period_ms
        return [bars[ts] for ts in sorted(bars)]

    async def close(self) -> None:
        """Close the REST exchange, if built; idempotent (it is built again on next use)."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
