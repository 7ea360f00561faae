"""BinanceFuturesFeed: Binance USDT-M futures, with mark prices, liquidations and open interest.

A small subclass of :class:`~lean_data.feeds.binance.BinanceDataFeed`: the futures websocket
speaks the same combined-stream protocol (same subscribe frames, klines, aggTrade,
bookTicker), so only what differs lives here: the endpoints (``fstream`` / ``fapi``,
``/fapi/v1/klines``), two more stream channels and one polled REST endpoint.

- ``"markPrice"``: ``<pair>@markPrice@1s``; each update is a
  :class:`~lean_data.derivatives.MarkPrice` carrying the current funding rate and the next
  funding time.
- ``"forceOrder"``: ``<pair>@forceOrder``; each is a
  :class:`~lean_data.derivatives.Liquidation`.
- Order books: as the spot feed, from ``/fapi/v1/depth`` snapshots, checked with the
  ``pu`` rule (:class:`~lean_data.depth.BinanceFuturesSequencer`).
- ``open_interest_every_s``: from :meth:`connect` to :meth:`disconnect`, ``GET
  /fapi/v1/openInterest`` for every subscribed symbol at that interval (Binance has no
  open-interest stream). The poller is a task of its own, not of the websocket session,
  so a reconnect neither interrupts a request nor loses its answer. An answer whose
  ``time`` equals the last one emitted for that symbol is not news and is not emitted
  again. Each request goes through :meth:`retrying` (429/418 wait for ``Retry-After``);
  one that still fails is reported (kind ``open_interest``) and the polling goes on; it
  stops when the feed fails fatally.

Parsing is :mod:`lean_data.wire.binance_futures`. The records reach only callbacks
registered with their kind (``add_data_callback(cb, kinds="mark_price")``) and storage's
derivatives tables (:mod:`lean_data.engine.records`). Staleness: ``cadence_s="auto"``
derives a window from klines only; pass ``cadence_s=3`` to watch a mark-price stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

from lean_data.depth.sequencers import BinanceFuturesSequencer
from lean_data.derivatives import FundingRate, OpenInterest
from lean_data.errors import ConfigError, FeedError
from lean_data.feeds.base import Emitted
from lean_data.feeds.binance import _CHANNEL_NAMES, BinanceDataFeed, _preview
from lean_data.feeds.streaming import http_error
from lean_data.wire.binance import ParsedMessage
from lean_data.wire.binance_futures import (
    parse_funding_rates,
    parse_futures_message,
    parse_open_interest,
    rest_error,
)

__all__ = ["BINANCE_FUTURES_REST_URL", "BINANCE_FUTURES_WS_URL", "BinanceFuturesFeed"]

BINANCE_FUTURES_WS_URL = "wss://fstream.binance.com"
BINANCE_FUTURES_REST_URL = "https://fapi.binance.com"
OPEN_INTEREST_PATH = "/fapi/v1/openInterest"
FUNDING_RATE_PATH = "/fapi/v1/fundingRate"
_FUNDING_PAGE = 1000  # Binance's largest ``limit``
_MS = 1_000_000


class BinanceFuturesFeed(BinanceDataFeed):
    """Binance USDT-M futures: candles, trades, quotes, mark prices, liquidations, open interest.

    Args:
        name: the feed's name in the engine.
        ws_url: websocket base URL (``/stream`` is appended).
        rest_url: REST base URL (``/fapi/v1/...`` is appended).
        channels: any of ``"kline"``, ``"agg_trade"``, ``"book_ticker"``, ``"markPrice"``,
            ``"forceOrder"``.
        open_interest_every_s: poll open interest this often (seconds) while connected;
            None (default) does not poll.
        **options: the other arguments of :class:`BinanceDataFeed`.
    """

    channel_streams: Mapping[str, str] = {
        **_CHANNEL_NAMES,
        "markPrice": "markPrice@1s",
        "forceOrder": "forceOrder",
    }
    klines_path = "/fapi/v1/klines"
    depth_path = "/fapi/v1/depth"
    depth_sequencer = BinanceFuturesSequencer

    def __init__(
        self,
        name: str = "binance_futures",
        *,
        ws_url: str = BINANCE_FUTURES_WS_URL,
        rest_url: str = BINANCE_FUTURES_REST_URL,
        channels: Iterable[str] = ("markPrice",),
        open_interest_every_s: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            name,
            ws_url=ws_url,
            rest_url=rest_url,
            channels=channels,  # type: ignore[arg-type]  # checked against channel_streams
            **options,
        )
        if open_interest_every_s is not None and not open_interest_every_s > 0:
            raise ConfigError(
                f"open_interest_every_s: expected seconds > 0 or None, "
                f"found {open_interest_every_s!r}"
            )
        self.open_interest_every_s = open_interest_every_s
        self._open_interest_time: dict[str, int] = {}
        self._poller: asyncio.Task[Any] | None = None

    # ----------------------------------------------------------------- session
    async def connect(self) -> bool:
        """Start the websocket supervisor and, if asked, the open-interest poller."""
        connected = await super().connect()
        every, poller = self.open_interest_every_s, self._poller
        if every is not None and (poller is None or poller.done()):
            self._poller = self.spawn(self._poll_open_interest(every), name="open_interest")
        return connected

    async def disconnect(self) -> None:
        """Stop the poller, then the websocket session and the REST client."""
        poller, self._poller = self._poller, None
        if poller is not None and not poller.done():
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
        await super().disconnect()

    def parse_frame(self, raw: bytes | str, now: int) -> ParsedMessage | Emitted:
        """Decode one frame: a derivatives record, or what the spot parser decodes."""
        return parse_futures_message(raw, now, symbols=self._venue)

    # ----------------------------------------------------------------- open interest
    async def _poll_open_interest(self, every_s: float) -> None:
        while self.fatal_error is None:
            for symbol in list(self.desired):
                record = await self._fetch_open_interest(symbol)
                if record is not None and self._open_interest_time.get(symbol) != record.ts_event:
                    self._open_interest_time[symbol] = record.ts_event
                    await self.emit(record)
            await asyncio.sleep(every_s)  # the polling interval, not a wait for an event

    async def _fetch_open_interest(self, symbol: str) -> OpenInterest | None:
        pair = symbol.partition(":")[0].replace("/", "").upper()
        try:
            return await self.retrying(
                lambda: self.get_open_interest(symbol), what=f"openInterest {pair}"
            )
        except FeedError as exc:
            self.report_error("open_interest", str(exc), symbol=symbol)
            return None

    # ----------------------------------------------------------------- funding history
    async def get_funding_rates(self, symbol: str, start: int, end: int) -> list[FundingRate]:
        """Fetch the settled funding rates of ``symbol`` with funding time in [start, end) ns.

        Pages of 1,000 from ``/fapi/v1/fundingRate``, each through :meth:`retrying`.

        Raises:
            FeedError: the venue refused the request fatally or retries ran out.
        """
        pair = symbol.partition(":")[0].replace("/", "").upper()
        self._venue.setdefault(pair, symbol)
        found: list[FundingRate] = []
        cursor = start
        while cursor < end:
            params = {
                "symbol": pair,
                "startTime": str(cursor // _MS),
                "endTime": str((end - 1) // _MS),
                "limit": str(_FUNDING_PAGE),
            }
            page = await self.retrying(
                lambda params=params: self._funding_page(params),  # type: ignore[misc]
                what=f"fundingRate {pair}",
            )
            fresh = [rate for rate in page if cursor <= rate.ts_event < end]
            found.extend(fresh)
            if len(page) < _FUNDING_PAGE or not fresh:
                break
            cursor = fresh[-1].ts_event + 1
        return found

    async def _funding_page(self, params: Mapping[str, str]) -> list[FundingRate]:
        body = await self._get(FUNDING_RATE_PATH, params)
        return parse_funding_rates(body, time.time_ns(), symbols=self._venue)

    async def _get(self, path: str, params: Mapping[str, str]) -> bytes:
        """GET a REST path; raise the venue's refusal (429/418/5xx) as a FeedError."""
        async with self.http_session().get(f"{self.rest_url}{path}", params=params) as response:
            body = await response.read()
            status, retry_after = response.status, response.headers.get("Retry-After")
        if status in (418, 429) or status >= 500:
            raise http_error(status, _preview(body), retry_after)
        if status != 200:  # a 4xx body is Binance's {"code", "msg"}
            raise rest_error(body) or http_error(status, _preview(body))
        return body

    async def get_open_interest(self, symbol: str) -> OpenInterest:
        """Fetch ``symbol``'s open interest once from ``/fapi/v1/openInterest`` (no retry).

        Raises:
            FeedError: the venue refused the request (429/418 with ``retry_after``), or
                the answer does not decode.
        """
        pair = symbol.partition(":")[0].replace("/", "").upper()
        self._venue.setdefault(pair, symbol)
        body = await self._get(OPEN_INTEREST_PATH, {"symbol": pair})
        return parse_open_interest(body, time.time_ns(), symbols=self._venue)
