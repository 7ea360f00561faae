"""BinanceDataFeed: Binance spot market data on ``websockets`` + aiohttp, without ccxt.

The reference example of subclassing :class:`~lean_data.feeds.streaming.StreamingFeed`:
the feed is only I/O (one websocket on the combined-stream endpoint, one aiohttp session for
REST klines); parsing is the pure functions of :mod:`lean_data.wire.binance`; reconnects,
resubscription, staleness and retries come from the base class.

Streams per symbol: ``<pair>@kline_<interval>`` (closed candles, the ``x`` flag), and
optionally ``<pair>@aggTrade`` (trade ticks) and ``<pair>@bookTicker`` (top-of-book quote
ticks). In-progress candle updates keep the subscription alive; they are emitted (closed=False)
only with ``emit_partial=True``.

Order books (``engine.subscribe_symbol(symbol, data=("book",))``): :meth:`subscribe_book`
subscribes ``<pair>@depth@100ms`` and sends a REST ``/api/v3/depth`` snapshot; each
``depthUpdate`` is emitted as an :class:`~lean_data.book.OrderBookDelta`; the engine's
keeper checks them with :meth:`book_sequencer` and asks :meth:`resync_book` after a gap.
After a reconnect the depth streams are subscribed again and new snapshots sent
(:mod:`lean_data.feeds.binance_depth`, docs/depth.md).

Every closed candle is emitted as the venue sent it (``revision`` 0), a re-sent one too:
the feed does not judge repeats. The engine's continuity (:mod:`lean_data.series.continuity`)
owns that decision: an exact repeat of a delivered candle is dropped and counted as a
duplicate, one with corrected values is delivered as a revision (and storage upserts the
corrected row).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import aiohttp

from lean_data.depth.sequencers import BinanceSpotSequencer, Sequencer
from lean_data.errors import ConfigError, EngineStateError, FeedError, FeedProtocolError
from lean_data.feeds.backoff import BackoffPolicy
from lean_data.feeds.base import Emitted
from lean_data.feeds.binance_depth import depth_stream, fetch_snapshot, parse_depth
from lean_data.feeds.reading import read_frames
from lean_data.feeds.streaming import MIB, Cadence, StreamingFeed, http_error
from lean_data.feeds.transport import (
    WebSocketOptions,
    WebSocketTransport,
    open_websocket,
    resolve_transport,
)
from lean_data.models import AssetClass, MarketData, Resolution, TradeBar, datetime_to_ns
from lean_data.wire.binance import (
    ParsedMessage,
    error_for_code,
    kline_channel,
    parse_message,
    parse_rest_klines,
    stream_name,
    subscribe_frame,
    unsubscribe_frame,
)

__all__ = ["BINANCE_REST_URL", "BINANCE_WS_URL", "BinanceDataFeed", "Channel"]

BINANCE_WS_URL = "wss://stream.binance.com:9443"
BINANCE_REST_URL = "https://api.binance.com"
Channel = Literal["kline", "agg_trade", "book_ticker"]
_CHANNEL_NAMES: Mapping[str, str] = {"agg_trade": "aggTrade", "book_ticker": "bookTicker"}
_KLINES_PAGE = 1000  # Binance's largest ``limit``
_MS = 1_000_000


class BinanceDataFeed(StreamingFeed):
    """Binance spot candles (and optionally trades and quotes) over websockets, history over REST.

    Args:
        name: the feed's name in the engine.
        ws_url: websocket base URL (the combined endpoint ``/stream`` is appended).
        rest_url: REST base URL (``/api/v3/klines`` is appended).
        resolution: kline interval of the live candles.
        channels: any of ``"kline"``, ``"agg_trade"``, ``"book_ticker"``.
        emit_partial: also emit in-progress candle updates (``closed=False``).
        symbols: the symbols served (None: any crypto pair).
        max_queue: messages the websocket client buffers before it stops reading; None
            (default) derives it from the memory budget, ``ws_buffer_bytes //
            ws_max_message_bytes`` (16 with the defaults); a number whose
            ``max_queue * ws_max_message_bytes`` exceeds ``ws_buffer_bytes`` is refused.
        backoff, cadence_s, stale_factor, open_timeout_s, request_attempts,
        request_budget_s, http_timeout_s, ws_max_message_bytes, ws_buffer_bytes, rng: see
            :class:`StreamingFeed`. ``http_timeout_s`` bounds every klines request (total,
            and the connect and each socket read within it).
            By default (``cadence_s="auto"``) a kline subscription is stale after
            ``stale_factor`` (3) kline periods plus 2 s without a frame (Binance pushes a
            kline update every 1-2 s, trades or not, and the final one up to 2 s late);
            ``cadence_s=2`` is tighter for a liquid pair, ``None`` or ``0`` turns it off.
        transport: the websocket client: ``"auto"`` (picows when installed, else
            websockets; see :mod:`lean_data.feeds.transport`), ``"websockets"`` or
            ``"picows"`` (:class:`ConfigError` when picows is not installed).

    Attributes:
        malformed_frames, unknown_frames: frames counted and skipped.
    """

    asset_classes = frozenset({AssetClass.CRYPTO})

    def __init__(
        self,
        name: str = "binance",
        *,
        ws_url: str = BINANCE_WS_URL,
        rest_url: str = BINANCE_REST_URL,
        resolution: Resolution | str = Resolution.MINUTE,
        channels: Iterable[Channel] = ("kline",),
        emit_partial: bool = False,
        symbols: Iterable[str] | None = None,
        max_queue: int | None = None,
        backoff: BackoffPolicy | None = None,
        cadence_s: Cadence = "auto",
        stale_factor: float = 3.0,
        open_timeout_s: float = 10.0,
        request_attempts: int = 8,
        request_budget_s: float = 180.0,
        http_timeout_s: float = 30.0,
        ws_max_message_bytes: int = MIB,
        ws_buffer_bytes: int = 16 * MIB,
        rng: Callable[[], float] = random.random,
        transport: str = "auto",
    ) -> None:
        super().__init__(
            name,
            symbols=symbols,
            backoff=backoff,
            cadence_s=cadence_s,
            stale_factor=stale_factor,
            open_timeout_s=open_timeout_s,
            request_attempts=request_attempts,
            request_budget_s=request_budget_s,
            http_timeout_s=http_timeout_s,
            ws_max_message_bytes=ws_max_message_bytes,
            ws_buffer_bytes=ws_buffer_bytes,
            rng=rng,
        )
        if max_queue is None:
            max_queue = self.ws_max_queue
        elif not 1 <= max_queue <= self.ws_max_queue:
            raise ConfigError(
                f"max_queue: expected 1 to {self.ws_max_queue} (ws_buffer_bytes "
                f"{ws_buffer_bytes} // ws_max_message_bytes {ws_max_message_bytes}), "
                f"found {max_queue!r}"
            )
        self.channels = tuple(dict.fromkeys(channels))
        unknown = [c for c in self.channels if c != "kline" and c not in self.channel_streams]
        if unknown or not self.channels:
            known = ", ".join(repr(c) for c in ("kline", *self.channel_streams))
            raise ConfigError(f"channels: expected some of {known}, found {list(channels)!r}")
        self.ws_url = ws_url.rstrip("/")
        self.rest_url = rest_url.rstrip("/")
        self.resolution = Resolution.parse(resolution)
        self._kline = kline_channel(self.resolution)
        self.emit_partial = emit_partial
        self.max_queue = max_queue
        self.transport = resolve_transport(transport)
        self._ws: WebSocketTransport | None = None
        self._http: aiohttp.ClientSession | None = None
        self._venue: dict[str, str] = {}  # "BTCUSDT" -> "BTC/USDT"
        self._request_id = 0
        self.malformed_frames = 0
        self.unknown_frames = 0
        self.books: dict[str, None] = {}  # symbols whose order book is sent

    stale_grace_s = 2.0  # the final kline update comes up to 2 s after the period ends
    channel_streams: Mapping[str, str] = _CHANNEL_NAMES  # channel -> stream suffix, not kline
    klines_path = "/api/v3/klines"
    depth_path = "/api/v3/depth"
    depth_sequencer: type[Sequencer] = BinanceSpotSequencer

    def bar_period_s(self, symbol: str) -> float | None:
        """Return the kline period (s) when klines are subscribed, else None."""
        return self.resolution.nanos / 1e9 if "kline" in self.channels else None

    # ----------------------------------------------------------------- streams
    def streams_of(self, symbol: str) -> list[str]:
        """Return the stream names this feed subscribes for ``symbol``."""
        names = []
        for channel in self.channels:
            suffix = self._kline if channel == "kline" else self.channel_streams[channel]
            names.append(stream_name(symbol, suffix))
        return names

    def _next_id(self) -> int:
        self._request_id += 1
        return self._request_id

    # ----------------------------------------------------------------- session hooks
    async def open_session(self) -> None:
        """Open the combined-stream websocket (no compression: see StreamingFeed)."""
        options = WebSocketOptions(
            open_timeout_s=self.open_timeout_s,  # the base class bounds open_session too
            max_message_bytes=self.ws_max_message_bytes,
            max_queue=self.max_queue,
        )
        self._ws = await open_websocket(f"{self.ws_url}/stream", options, self.transport)
        if self.books:  # a reconnect: the depth streams again, then new snapshots
            await self._send(subscribe_frame(map(depth_stream, self.books), self._next_id()))
            self.spawn(self._resync_books(list(self.books)), name="book-resync")

    async def close_session(self) -> None:
        """Close the websocket, if open."""
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()

    async def send_subscribe(self, symbols: Sequence[str]) -> None:
        """Send one SUBSCRIBE for every stream of ``symbols`` (the ack is read later)."""
        streams: list[str] = []
        for symbol in symbols:
            self._venue[symbol.partition(":")[0].replace("/", "").upper()] = symbol
            streams.extend(self.streams_of(symbol))
        await self._send(subscribe_frame(streams, self._next_id()))

    async def send_unsubscribe(self, symbols: Sequence[str]) -> None:
        """Send one UNSUBSCRIBE for every stream of ``symbols``."""
        streams = [name for symbol in symbols for name in self.streams_of(symbol)]
        await self._send(unsubscribe_frame(streams, self._next_id()))

    async def _send(self, frame: bytes) -> None:
        ws = self._ws
        if ws is None:
            raise FeedProtocolError("no open websocket to send on", feed=self.name)
        await ws.send(frame.decode())

    async def run_session(self) -> None:
        """Read frames until the connection ends; emit closed candles, trades and quotes
        (and what :meth:`parse_frame` gives besides: the futures feed's records).

        What one socket read gave (:meth:`~lean_data.feeds.transport.WebSocketTransport.
        recv_batch`) is decoded in order and handed over with one :meth:`emit_many`. A
        venue error that ends the session is raised after the items decoded before it were
        handed over.
        """
        ws = self._ws
        assert ws is not None
        # the plain data frames (closed bars, trades, quotes) in one compiled loop, unless a
        # subclass decodes or picks items its own way (the futures feed's records)
        fast = type(self).parse_frame is _PARSE_FRAME and type(self).item_of is _ITEM_OF
        await read_frames(self, ws, self._venue, fast)

    def parse_frame(self, raw: bytes | str, now: int) -> ParsedMessage | Emitted:
        """Decode one frame (the futures feed also decodes its derivatives frames)."""
        return parse_message(raw, now, symbols=self._venue)

    def skip_malformed(self, raw: bytes | str, error: FeedProtocolError) -> None:
        """Count and report a frame that does not decode (the session goes on)."""
        self.malformed_frames += 1
        self.report_error("malformed_frame", f"{error}; frame {_preview(raw)}")

    def item_of(self, message: ParsedMessage, raw: bytes | str, now: int) -> Emitted | None:
        """Return a decoded frame's bar, tick or book delta to emit, or None; count unknown
        events and report retryable venue errors.

        Raises:
            FeedError: a venue error that ends the session (not retryable).
        """
        item = message.item
        if item is not None:
            if isinstance(item, TradeBar) and not item.closed:
                self.note_data(item.symbol, now)  # an update keeps the subscription alive
                if not self.emit_partial:
                    return None
            return item
        if message.kind == "unknown" and message.event == "depthUpdate" and self.books:
            try:
                return parse_depth(raw, now, self._venue)
            except FeedProtocolError as exc:
                self.skip_malformed(raw, exc)
                return None
        if message.kind == "unknown":
            self.unknown_frames += 1
            self.report_error("unknown_frame", f"event {message.event!r}: {_preview(raw)}")
        elif message.kind == "error":
            error = error_for_code(message.error_code, message.error)
            if not error.retryable:
                raise error
            self.report_error("venue_error", str(error))
        return None

    # ----------------------------------------------------------------- order books
    def book_sequencer(self, symbol: str) -> Sequencer:
        """Binance's diff-depth rules: spot ``U``/``u`` (the futures feed: ``pu``)."""
        return self.depth_sequencer()

    async def subscribe_book(self, symbol: str) -> bool:
        """Subscribe ``<pair>@depth@100ms`` on the open socket, then send a REST snapshot.

        Deltas that arrive before the snapshot are buffered by the engine's keeper and
        placed against it (Binance's documented procedure). Returns False when the feed
        has failed fatally.

        Raises:
            FeedError: the snapshot request failed fatally or its retries ran out.
        """
        if self.fatal_error is not None:
            return False
        self._venue[symbol.partition(":")[0].replace("/", "").upper()] = symbol
        new = symbol not in self.books
        self.books[symbol] = None
        async with self._lock:
            if self._session_open and new:
                try:
                    await self._send(subscribe_frame([depth_stream(symbol)], self._next_id()))
                except Exception as exc:  # the next session subscribes it
                    self._recycle(self.translate_error(exc))
        await self.resync_book(symbol)
        return True

    async def resync_book(self, symbol: str) -> None:
        """Fetch a new REST depth snapshot of ``symbol`` and send it.

        Each attempt goes through :meth:`retrying` (429/418 wait for ``Retry-After``).

        Raises:
            FeedError: the venue refused fatally or the retries ran out.
        """
        pair = symbol.partition(":")[0].replace("/", "").upper()
        url = f"{self.rest_url}{self.depth_path}"
        snapshot = await self.retrying(
            lambda: fetch_snapshot(self.http_session(), url, pair, symbol), what=f"depth {pair}"
        )
        await self.emit(snapshot)

    async def _resync_books(self, symbols: list[str]) -> None:
        for symbol in symbols:
            try:
                await self.resync_book(symbol)
            except FeedError as exc:  # the engine asks again at the next invalid delta
                self.report_error("book_resync_failed", str(exc), symbol=symbol)
            except EngineStateError:  # the engine is stopping
                return

    def http_session(self) -> aiohttp.ClientSession:
        """Return the REST client (made on first use, closed by :meth:`disconnect`)."""
        http = self._http
        if http is None or http.closed:
            http = self._http = aiohttp.ClientSession(timeout=http_timeout(self.http_timeout_s))
        return http

    # ----------------------------------------------------------------- history
    async def get_historical_data(
        self,
        symbol: str,
        start_date: datetime | int,
        end_date: datetime | int,
        resolution: Resolution,
    ) -> list[MarketData]:
        """Fetch closed candles with open time in [start, end) from ``/api/v3/klines``.

        Pages of 1,000 follow each other until ``end``; every page goes through
        :meth:`retrying`, so 429/418 answers wait for ``Retry-After``.

        Raises:
            FeedError: the venue refused the request fatally or retries ran out.
            ValueError: Binance has no kline interval of that length.
        """
        resolution = Resolution.parse(resolution)
        interval = kline_channel(resolution).removeprefix("kline_")
        start = start_date if isinstance(start_date, int) else datetime_to_ns(start_date)
        end = end_date if isinstance(end_date, int) else datetime_to_ns(end_date)
        pair = symbol.partition(":")[0].replace("/", "").upper()
        bars: list[MarketData] = []
        cursor = start
        while cursor < end:
            params = {
                "symbol": pair,
                "interval": interval,
                "startTime": str(cursor // _MS),
                "endTime": str((end - 1) // _MS),
                "limit": str(_KLINES_PAGE),
            }
            page = await self.retrying(
                lambda params=params: self._klines(params, symbol, resolution),  # type: ignore[misc]
                what=f"klines {pair} {interval}",
            )
            fresh = [bar for bar in page if cursor <= bar.ts_event < end and bar.closed]
            bars.extend(fresh)
            if len(page) < _KLINES_PAGE or not fresh:
                break
            cursor = fresh[-1].ts_event + resolution.nanos
        return bars

    async def _klines(
        self, params: Mapping[str, str], symbol: str, resolution: Resolution
    ) -> list[TradeBar]:
        http = self.http_session()
        async with http.get(f"{self.rest_url}{self.klines_path}", params=params) as response:
            body = await response.read()
            status, retry_after = response.status, response.headers.get("Retry-After")
        if status in (418, 429) or status >= 500:
            raise http_error(status, _preview(body), retry_after)
        # a 4xx body is Binance's {"code", "msg"}: parse_rest_klines raises its error
        bars = parse_rest_klines(body, symbol, resolution, now_ns=time.time_ns())
        if status != 200:
            raise http_error(status, _preview(body))
        return bars

    async def disconnect(self) -> None:
        """Close the websocket session and the REST client."""
        try:
            await super().disconnect()
        finally:
            http, self._http = self._http, None
            if http is not None:
                await http.close()

    def get_connection_status(self) -> dict[str, Any]:
        """Return the base snapshot plus frame counters."""
        status = super().get_connection_status()
        status.update(
            malformed_frames=self.malformed_frames,
            unknown_frames=self.unknown_frames,
        )
        return status


def http_timeout(total_s: float) -> aiohttp.ClientTimeout:
    """Return the aiohttp timeouts of one request bounded by ``total_s`` seconds."""
    return aiohttp.ClientTimeout(
        total=total_s,
        connect=min(10.0, total_s),
        sock_connect=min(10.0, total_s),
        sock_read=total_s,
    )


def _preview(raw: bytes | str, limit: int = 120) -> str:
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    return repr(text if len(text) <= limit else text[:limit] + "...")


_PARSE_FRAME = BinanceDataFeed.parse_frame
_ITEM_OF = BinanceDataFeed.item_of
