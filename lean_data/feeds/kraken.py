"""Kraken WebSocket v1 order books (``book``, depth 1000) as a streaming feed.

``KrakenBookFeed`` sends books only (no bars): ``subscribe_book(symbol)`` sends
``{"event": "subscribe", "pair": [pair], "subscription": {"name": "book", "depth": 1000}}``
on the open socket; each ``book-1000`` message is parsed (:mod:`lean_data.wire.kraken_book`)
and emitted as an ``OrderBookSnapshot`` or ``OrderBookDelta``. Kraken numbers nothing; each
update carries the CRC32 ``c`` of the top 10 levels, so ``book_sequencer`` is a
``KrakenChecksumSequencer`` with the pair's decimals as on the wire (learned from its
snapshot, before it is emitted) and the subscribed depth. ``resync_book`` unsubscribes and
subscribes again on the same socket: Kraken answers a subscribe with a new snapshot. After
a reconnect every book is subscribed again (each gets a new snapshot).

Symbols are canonical (``BTC/CHF``; the venue pair is ``XBT/CHF``). ``heartbeat``, ``pong``
and an ``online`` ``systemStatus`` are dropped; a ``subscriptionStatus`` error or another
status is reported (``venue_error``); a frame that does not decode is counted, reported
(``malformed_frame``) and skipped.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson

from lean_data.book import OrderBookDelta, OrderBookSnapshot
from lean_data.depth import KrakenChecksumSequencer, Sequencer
from lean_data.errors import FeedProtocolError
from lean_data.feeds.backoff import BackoffPolicy
from lean_data.feeds.streaming import MIB, StreamingFeed
from lean_data.feeds.transport import (
    WebSocketOptions,
    WebSocketTransport,
    open_websocket,
    resolve_transport,
)
from lean_data.models import AssetClass, MarketData, Resolution
from lean_data.wire.kraken_book import parse_book_message
from lean_data.wire.levels import loads

__all__ = ["KRAKEN_WS_URL", "KrakenBookFeed", "kraken_pair"]

KRAKEN_WS_URL = "wss://ws.kraken.com"
_LEGACY = {"BTC": "XBT", "DOGE": "XDG"}


def kraken_pair(symbol: str) -> str:
    """``"BTC/CHF"`` -> ``"XBT/CHF"`` (the pair Kraken v1 names)."""
    base, _, quote = symbol.partition(":")[0].partition("/")
    return f"{_LEGACY.get(base, base)}/{_LEGACY.get(quote, quote)}"


class KrakenBookFeed(StreamingFeed):
    """Kraken WS v1 ``book`` (depth 1000) for the engine's order books.

    Args:
        name: unique feed name.
        ws_url: the websocket endpoint (a loopback server's ``ws_url`` in tests).
        depth: the subscribed book depth (10, 25, 100, 500 or 1000); the book is kept to it.
        symbols, backoff, open_timeout_s, ws_max_message_bytes, ws_buffer_bytes, rng: see
            :class:`~lean_data.feeds.streaming.StreamingFeed` (no bars: never stale).
        transport: the websocket client, ``"auto"``, ``"websockets"`` or ``"picows"``
            (see :class:`~lean_data.feeds.binance.BinanceDataFeed`).

    Attributes:
        books: the symbols whose books are subscribed.
        decimals: ``(price, volume)`` decimals per symbol, as seen on the wire.
        malformed_frames, unknown_frames: frames counted and skipped.
    """

    asset_classes = frozenset({AssetClass.CRYPTO})

    def __init__(
        self,
        name: str = "kraken",
        *,
        ws_url: str = KRAKEN_WS_URL,
        depth: int = 1000,
        symbols: Iterable[str] | None = None,
        backoff: BackoffPolicy | None = None,
        open_timeout_s: float = 10.0,
        ws_max_message_bytes: int = 4 * MIB,
        ws_buffer_bytes: int = 16 * MIB,
        rng: Callable[[], float] = random.random,
        transport: str = "auto",
    ) -> None:
        super().__init__(
            name, symbols=symbols, backoff=backoff, cadence_s=None,
            open_timeout_s=open_timeout_s, ws_max_message_bytes=ws_max_message_bytes,
            ws_buffer_bytes=ws_buffer_bytes, rng=rng,
        )  # fmt: skip
        self.ws_url = ws_url
        self.depth = depth
        self.books: dict[str, None] = {}
        self.decimals: dict[str, tuple[int, int]] = {}
        self._by_pair: dict[str, str] = {}  # venue pair -> the user's symbol
        self._sent: set[str] = set()  # pairs subscribed on this session
        self.transport = resolve_transport(transport)
        self._ws: WebSocketTransport | None = None
        self.malformed_frames = 0
        self.unknown_frames = 0

    # ----------------------------------------------------------------- session hooks
    async def open_session(self) -> None:
        """Open the websocket; after a reconnect, subscribe every book again."""
        options = WebSocketOptions(  # no compression: see StreamingFeed
            open_timeout_s=self.open_timeout_s,
            max_message_bytes=self.ws_max_message_bytes,
            max_queue=self.ws_max_queue,
        )
        self._ws = await open_websocket(self.ws_url, options, self.transport)
        self._sent = set()
        if self.books:
            await self._book_request("subscribe", list(self.books))

    async def close_session(self) -> None:
        """Close the websocket, if open."""
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()

    async def send_subscribe(self, symbols: Sequence[str]) -> None:
        """No bars: books are subscribed by :meth:`subscribe_book`."""

    async def send_unsubscribe(self, symbols: Sequence[str]) -> None:
        """No bars: nothing to stop."""

    async def _book_request(self, event: str, symbols: Sequence[str]) -> None:
        ws = self._ws
        if ws is None:
            raise FeedProtocolError("no open websocket to send on", feed=self.name)
        pairs = [kraken_pair(symbol) for symbol in symbols]
        for symbol, pair in zip(symbols, pairs, strict=True):
            self._by_pair[pair] = symbol
        subscription = {"name": "book", "depth": self.depth}
        await ws.send(orjson.dumps({"event": event, "pair": pairs,
                                    "subscription": subscription}).decode())  # fmt: skip
        if event == "subscribe":
            self._sent.update(pairs)
        else:
            self._sent.difference_update(pairs)

    async def run_session(self) -> None:
        """Read frames until the connection ends; emit book snapshots and updates."""
        ws = self._ws
        assert ws is not None
        async for raw in ws:
            now = time.time_ns()
            try:
                message = loads(raw)
                parsed = parse_book_message(message, now) if isinstance(message, list) else None
            except FeedProtocolError as exc:
                self._malformed(raw, exc)
                continue
            if parsed is None:
                self._event(message, raw)
                continue
            symbol = self._by_pair.get(parsed.pair, parsed.record.symbol)
            record: OrderBookSnapshot | OrderBookDelta = parsed.record
            if record.symbol != symbol:
                record = dataclasses.replace(record, symbol=symbol)
            if parsed.price_decimals >= 0 and (
                isinstance(record, OrderBookSnapshot) or symbol not in self.decimals
            ):
                self.decimals[symbol] = (parsed.price_decimals, parsed.size_decimals)
            await self.emit(record)

    def _event(self, message: object, raw: bytes | str) -> None:
        if not isinstance(message, dict):
            if not isinstance(message, list) or not message:
                self._malformed(raw, FeedProtocolError("expected a Kraken v1 event or channel"))
                return
            event, status = "channel", ""
        else:
            event, status = str(message.get("event")), str(message.get("status"))
        if event in ("heartbeat", "pong"):
            self._session_data = True  # the connection is alive (resets the backoff)
        elif (
            event == "error"
            or (event == "systemStatus" and status != "online")
            or (event == "subscriptionStatus" and status == "error")
        ):
            assert isinstance(message, dict)
            what = message.get("errorMessage", status)
            self.report_error("venue_error", f"{event} {message.get('pair', '')}: {what}")
        elif event not in ("systemStatus", "subscriptionStatus"):
            self.unknown_frames += 1
            self.report_error("unknown_frame", _preview(raw))

    def _malformed(self, raw: bytes | str, error: FeedProtocolError) -> None:
        self.malformed_frames += 1
        self.report_error("malformed_frame", f"{error}; frame {_preview(raw)}")

    # ----------------------------------------------------------------- order books
    def book_sequencer(self, symbol: str) -> Sequencer:
        """Kraken's CRC32 rule with the pair's wire decimals and the subscribed depth.

        Raises:
            LookupError: no level of ``symbol`` read yet (the engine asks at its first record).
        """
        decimals = self.decimals.get(symbol)
        if decimals is None:
            raise LookupError(f"{symbol}: no book level read yet: decimals unknown")
        return KrakenChecksumSequencer(*decimals, self.depth)

    async def subscribe_book(self, symbol: str) -> bool:
        """Subscribe ``symbol``'s book on the open socket (or on the next session); False
        when the feed has failed fatally."""
        if self.fatal_error is not None:
            return False
        self.books[symbol] = None
        async with self._lock:
            if self._session_open and kraken_pair(symbol) not in self._sent:
                try:
                    await self._book_request("subscribe", [symbol])
                except Exception as exc:  # the next session subscribes it
                    self._recycle(self.translate_error(exc))
        return True

    async def resync_book(self, symbol: str) -> None:
        """Unsubscribe and subscribe ``symbol``'s book on the same socket: Kraken answers
        with a new snapshot (the keeper buffers the updates before it, then drops them).

        Raises:
            FeedProtocolError: no socket is open (the next session subscribes anew).
        """
        async with self._lock:
            await self._book_request("unsubscribe", [symbol])
            await self._book_request("subscribe", [symbol])

    async def get_historical_data(
        self,
        symbol: str,
        start_date: datetime | int,
        end_date: datetime | int,
        resolution: Resolution,
    ) -> list[MarketData]:
        """Books only: this feed has no history (an empty list)."""
        del symbol, start_date, end_date, resolution
        return []

    def get_connection_status(self) -> dict[str, Any]:
        """Return the base snapshot plus frame counters."""
        frames = {"malformed_frames": self.malformed_frames, "unknown_frames": self.unknown_frames}
        return {**super().get_connection_status(), **frames}


def _preview(raw: bytes | str, limit: int = 120) -> str:
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    return repr(text if len(text) <= limit else text[:limit] + "...")
