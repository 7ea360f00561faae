"""A loopback Binance USDT-M futures server: the spot server plus derivatives data.

``BinanceFuturesLoopbackServer`` is :class:`~lean_data.testing.BinanceLoopbackServer`
(same combined-stream websocket, subscriptions, replay, faults) with what USDT-M futures
add:

- streams ``<pair>@markPrice@1s`` and ``<pair>@forceOrder``, fed by
  :meth:`~BinanceFuturesLoopbackServer.push_mark_price` and
  :meth:`~BinanceFuturesLoopbackServer.push_liquidation` (any fault of ``server.faults``
  applies to them as to every frame);
- ``GET /fapi/v1/openInterest?symbol=``: each request answers the next reading of that
  symbol's given series (the last one again once the series is used up), as successive
  polls of a live venue see the figure move; ``GET /fapi/v1/fundingRate`` (``symbol``,
  ``startTime``, ``endTime``, ``limit``: the first ``limit`` from ``startTime``, else the
  last up to ``endTime``); ``/fapi/v1/klines``, ``/fapi/v1/ping`` and ``/fapi/v1/time`` as
  the spot ones. Injected 429/418 answers (``faults.rate_limit_next``, ``ban_next``) apply
  to every route. With ``depth=`` (a REST depth capture), ``/fapi/v1/depth`` as the spot
  server's ``/api/v3/depth`` (:mod:`lean_data.testing._binance_depth`).

The records to serve are usually derived from real data with
:mod:`lean_data.testing._binance_futures_data` (``derive_mark_prices`` and friends).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from lean_data.derivatives import FundingRate, Liquidation, MarkPrice, OpenInterest
from lean_data.testing._binance_futures_data import (
    derive_liquidations,
    derive_mark_prices,
    derive_open_interest,
    force_order_event,
    funding_rate_row,
    mark_price_event,
    open_interest_answer,
    premium_index_answer,
    venue_symbol,
)
from lean_data.testing._binance_klines import BadRequest, _int_param, _mandatory
from lean_data.testing.binance import BinanceLoopbackServer

__all__ = [
    "BinanceFuturesLoopbackServer",
    "derive_liquidations",
    "derive_mark_prices",
    "derive_open_interest",
    "force_order_event",
    "mark_price_event",
    "open_interest_answer",
]

_FUNDING_DEFAULT_LIMIT, _FUNDING_MAX_LIMIT = 100, 1000


class BinanceFuturesLoopbackServer(BinanceLoopbackServer):
    """A Binance USDT-M futures market-data server on 127.0.0.1; use as ``async with``.

    Args:
        capture: as :class:`BinanceLoopbackServer` (e.g. ``"BINANCE_FUTURES.ws.1.0"``).
        open_interest: readings served by ``/fapi/v1/openInterest``, in the order polls
            get them, per symbol (grouped by each record's symbol).
        funding_rates: settled rates served by ``/fapi/v1/fundingRate``.
        marks: mark prices served by ``/fapi/v1/premiumIndex`` (what ccxt's
            ``fetch_funding_rate`` asks), one per request in order, per symbol, like
            ``open_interest``.
        **options: the other arguments of :class:`BinanceLoopbackServer`.

    Attributes:
        open_interest_served: readings answered so far, per Binance symbol.
    """

    def __init__(
        self,
        capture: Any = None,
        *,
        open_interest: Iterable[OpenInterest] = (),
        funding_rates: Iterable[FundingRate] = (),
        marks: Iterable[MarkPrice] = (),
        **options: Any,
    ) -> None:
        super().__init__(capture, **options)
        self._open_interest: dict[str, list[OpenInterest]] = {}
        for reading in open_interest:
            self._open_interest.setdefault(venue_symbol(reading.symbol), []).append(reading)
        self._funding: dict[str, list[FundingRate]] = {}
        for rate in sorted(funding_rates, key=lambda r: r.ts_event):
            self._funding.setdefault(venue_symbol(rate.symbol), []).append(rate)
        self.open_interest_served: dict[str, int] = {}
        self._marks: dict[str, list[MarkPrice]] = {}
        for mark in marks:
            self._marks.setdefault(venue_symbol(mark.symbol), []).append(mark)
        self.premium_served: dict[str, int] = {}

    def push_mark_price(self, record: MarkPrice, *, settle_price: float | None = None) -> None:
        """Append a ``markPriceUpdate`` of ``record`` to the ``@markPrice@1s`` stream."""
        stream = f"{venue_symbol(record.symbol).lower()}@markPrice@1s"
        self.push(stream, mark_price_event(record, settle_price=settle_price))

    def push_liquidation(self, record: Liquidation) -> None:
        """Append a ``forceOrder`` event of ``record`` to the ``@forceOrder`` stream."""
        self.push(f"{venue_symbol(record.symbol).lower()}@forceOrder", force_order_event(record))

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/fapi/v1/openInterest", self._open_interest_answer)
        app.router.add_get("/fapi/v1/premiumIndex", self._premium_index)
        app.router.add_get("/fapi/v1/fundingRate", self._funding_rates)
        app.router.add_get("/fapi/v1/klines", self._klines)
        app.router.add_get("/fapi/v1/ping", self._ping)
        if self.depth.recorded:
            app.router.add_get("/fapi/v1/depth", self._depth)
        app.router.add_get("/fapi/v1/time", self._time)

    async def _open_interest_answer(self, request: web.Request) -> web.Response:
        return self._next_reading(
            request, self._open_interest, self.open_interest_served, open_interest_answer
        )

    async def _premium_index(self, request: web.Request) -> web.Response:
        return self._next_reading(request, self._marks, self.premium_served, premium_index_answer)

    def _next_reading(
        self,
        request: web.Request,
        series_of: dict[str, list[Any]],
        served_of: dict[str, int],
        answer: Callable[[Any], dict[str, Any]],
    ) -> web.Response:
        """Answer a polled endpoint: each request for a symbol gets its next reading (the
        last again once they are used up), weight 1."""
        if not self._charge(1):
            return self._too_many(self._seconds_to_next_minute())
        try:
            symbol = _mandatory(request.query, "symbol")
        except BadRequest as exc:
            return self._error(400, exc.code, exc.msg, None)
        series = series_of.get(symbol)
        if not series:
            return self._error(400, -1121, "Invalid symbol.", None)
        served = served_of.get(symbol, 0)
        served_of[symbol] = served + 1
        return self._json(answer(series[min(served, len(series) - 1)]))

    async def _funding_rates(self, request: web.Request) -> web.Response:
        if not self._charge(1):
            return self._too_many(self._seconds_to_next_minute())
        query = request.query
        try:
            start, end = _int_param(query, "startTime"), _int_param(query, "endTime")
            limit = _int_param(query, "limit") or _FUNDING_DEFAULT_LIMIT
        except BadRequest as exc:
            return self._error(400, exc.code, exc.msg, None)
        symbol = query.get("symbol")
        if symbol is not None and symbol not in self._funding:
            return self._error(400, -1121, "Invalid symbol.", None)
        rates = sorted(
            (r for key, rs in self._funding.items() if symbol in (None, key) for r in rs),
            key=lambda r: r.ts_event,
        )
        times = [r.ts_event // 1_000_000 for r in rates]
        limit = min(limit, _FUNDING_MAX_LIMIT)
        stop = len(times) if end is None else bisect_right(times, end)
        if start is not None:
            first = bisect_left(times, start)
            chosen = rates[first : min(stop, first + limit)]
        else:
            chosen = rates[max(0, stop - limit) : stop]
        return self._json([funding_rate_row(rate) for rate in chosen])
