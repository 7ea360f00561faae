"""Order books from Binance spot and USD-M futures: what the two feeds share.

Binance's documented procedure ("How to manage a local order book correctly"): open the
``<pair>@depth@100ms`` stream and buffer its events, fetch a REST depth snapshot, drop the
events it covers, apply the rest from the first one that bridges it; on a gap, fetch a new
snapshot. The buffering, bridging and gap rules are the engine's keeper with the venue's
sequencer (:mod:`lean_data.depth`); a feed only subscribes, fetches and emits, with the
helpers here:

- :func:`depth_stream`: the stream name; :func:`parse_depth`: a frame to an
  :class:`~lean_data.book.OrderBookDelta` (pure, :mod:`lean_data.wire.depth_binance`);
- :func:`fetch_snapshot`: one ``GET`` of the REST depth endpoint (spot ``/api/v3/depth``,
  futures ``/fapi/v1/depth``, ``limit=1000``) to an
  :class:`~lean_data.book.OrderBookSnapshot`; 429/418/5xx raise a retryable
  :class:`~lean_data.errors.FeedError` with the venue's ``Retry-After``, which the feed's
  :meth:`~lean_data.feeds.streaming.StreamingFeed.retrying` honours.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import aiohttp

from lean_data.book import OrderBookDelta, OrderBookSnapshot
from lean_data.feeds.streaming import http_error
from lean_data.wire.binance import stream_name
from lean_data.wire.depth_binance import parse_depth_frame, parse_depth_snapshot

__all__ = ["DEPTH_STREAM", "SNAPSHOT_LIMIT", "depth_stream", "fetch_snapshot", "parse_depth"]

DEPTH_STREAM = "depth@100ms"
SNAPSHOT_LIMIT = 1000  # the deepest snapshot USD-M serves; spot's weight 50 (of 6,000 a minute)


def depth_stream(symbol: str) -> str:
    """Return the diff-depth stream of ``symbol`` (``"NKN/USDT"`` -> ``"nknusdt@depth@100ms"``)."""
    return stream_name(symbol, DEPTH_STREAM)


def parse_depth(
    raw: bytes | str, ts_recv: int, symbols: Mapping[str, str]
) -> OrderBookDelta | None:
    """Return the delta of a ``depthUpdate`` frame (None for another event).

    Raises:
        FeedProtocolError: the frame is not a well-formed depth update.
    """
    item = parse_depth_frame(raw, ts_recv, symbols=symbols)
    return item if isinstance(item, OrderBookDelta) else None


async def fetch_snapshot(
    http: aiohttp.ClientSession, url: str, pair: str, symbol: str
) -> OrderBookSnapshot:
    """GET one REST depth snapshot of ``pair`` from ``url``; ``symbol`` names it.

    Raises:
        FeedError: 429/418/5xx (retryable, with ``retry_after``), a Binance error body
            (mapped by its code), or another refusal.
        FeedProtocolError: the body is not a depth answer.
    """
    params = {"symbol": pair, "limit": str(SNAPSHOT_LIMIT)}
    async with http.get(url, params=params) as response:
        body = await response.read()
        status, retry_after = response.status, response.headers.get("Retry-After")
    if status in (418, 429) or status >= 500:
        raise http_error(status, repr(body[:120]), retry_after)
    snapshot = parse_depth_snapshot(body, symbol, time.time_ns())  # raises an error body's
    if status != 200:
        raise http_error(status, repr(body[:120]))
    return snapshot
