"""AlpacaDataFeed: Alpaca stock and crypto market data, live and historical.

**Live data** speaks Alpaca's stream protocol directly with ``websockets`` + msgpack (the
framing and parsing are the pure functions of :mod:`lean_data.wire.alpaca`), not through
alpaca-py's ``StockDataStream``: that class cannot be embedded safely in a running event
loop. Its ``subscribe_*`` methods, called while the stream runs, block on
``asyncio.run_coroutine_threadsafe(...).result()`` for a coroutine scheduled on the *same*
loop (a deadlock when called from a coroutine), ``run()`` calls ``asyncio.run`` (fails inside
a running loop), and ``stop()`` blocks the loop thread the same way. The wire protocol is the
same one alpaca-py speaks (msgpack frames, ``Content-Type: application/msgpack``), and the
loopback server's tests drive the real alpaca-py client to prove it.

**History** goes through alpaca-py's ``StockHistoricalDataClient`` /
``CryptoHistoricalDataClient`` (what it does well: request building, pagination with
``next_page_token``, model parsing). It is blocking (``requests``), so each call runs in a
worker thread (``asyncio.to_thread``). alpaca-py's own 429 handling (three blind 3 s sleeps)
is switched off; the feed's :meth:`~StreamingFeed.retrying` waits for ``Retry-After`` instead
and counts every retry. Pages are requested one chunk at a time, so a failure resumes after
the last bar received instead of starting over.

**Limits.** alpaca-py's ``requests`` session has no timeout of its own: the feed mounts an
adapter that gives every request ``(connect, read)`` timeouts of ``(min(10, http_timeout_s),
http_timeout_s)`` (``read`` bounds each socket read, not the whole answer; the whole request
is bounded by :meth:`~StreamingFeed.retrying`'s ``request_budget_s``, after which the worker
thread is abandoned and ends at its next read timeout). The stream is our own ``websockets``
client, with ``max_size`` and ``max_queue`` from ``ws_max_message_bytes`` and
``ws_buffer_bytes``; alpaca-py's ``StockDataStream`` (and its ``websocket_params``) is not
used.

Channels: ``bars`` (closed minute bars), ``updatedBars`` (revisions of sent bars, emitted with
``revision`` 1, 2, ...), ``dailyBars`` (running daily bar, ``closed=False``), ``trades``,
``quotes``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal

from websockets.asyncio.client import ClientConnection, connect

from lean_data.errors import ConfigError, FeedError, FeedProtocolError
from lean_data.feeds.backoff import BackoffPolicy
from lean_data.feeds.streaming import MIB, Cadence, StreamingFeed, http_error
from lean_data.models import AssetClass, MarketData, Resolution, TradeBar, datetime_to_ns
from lean_data.secrets import Credentials
from lean_data.wire.alpaca import (
    CRYPTO_CHANNELS,
    STOCK_CHANNELS,
    Encoding,
    auth_message,
    error_for_code,
    parse_frame,
    subscribe_message,
    timeframe_of,
    unsubscribe_message,
)

__all__ = ["ALPACA_DATA_URL", "ALPACA_STREAM_URL", "AlpacaDataFeed"]

ALPACA_STREAM_URL = "wss://stream.data.alpaca.markets"
ALPACA_DATA_URL = "https://data.alpaca.markets"
_PAGE = 10_000  # alpaca-py's largest page


class _NoFrameLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets' logger without its DEBUG frame dumps (they would show the auth bytes)."""

    def isEnabledFor(self, level: int) -> bool:  # logging's own name
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


log = logging.getLogger(__name__)
_NO_FRAME_LOG = _NoFrameLog(logging.getLogger("websockets.client"), {})
_REVISIONS_KEPT = 4096


class AlpacaDataFeed(StreamingFeed):
    """Alpaca live bars, revisions, trades and quotes; history through alpaca-py.

    Args:
        name: the feed's name in the engine.
        credentials: key id and secret; None reads ``APCA_API_KEY_ID`` /
            ``APCA_API_SECRET_KEY`` from the environment.
        market: ``"stocks"`` or ``"crypto"``.
        source: the stock data feed (``"iex"``, ``"sip"``, ``"test"``); crypto uses ``"us"``.
        channels: stream channels per symbol (default closed bars and their revisions).
        stream_url: websocket base URL (the path ``/v2/<source>`` or
            ``/v1beta3/crypto/us`` is appended).
        data_url: REST base URL for history.
        encoding: ``"msgpack"`` (what alpaca-py uses) or ``"json"``.
        symbols: the symbols served (None: any symbol of the market's asset class).
        backoff, cadence_s, stale_factor, open_timeout_s, request_attempts,
        request_budget_s, http_timeout_s, ws_max_message_bytes, ws_buffer_bytes, rng: see
            :class:`StreamingFeed`. By default (``cadence_s="auto"``) a ``bars``
            subscription is stale after
            ``stale_factor`` (3) minutes plus 10 s without a message; for stocks only while
            the regular session is open by the symbol's exchange calendar
            (:func:`~lean_data.series.calendars.calendar_for`; without the ``calendars`` extra,
            stocks are never judged stale). Minute bars come only for minutes with trades:
            for a thinly traded symbol pass ``cadence_s=None`` (off) or a longer cadence.

    Raises:
        ConfigError: an unknown market, source or channel, or no credentials.
    """

    def __init__(
        self,
        name: str = "alpaca",
        *,
        credentials: Credentials | None = None,
        market: Literal["stocks", "crypto"] = "stocks",
        source: str = "iex",
        channels: Iterable[str] = ("bars", "updatedBars"),
        stream_url: str = ALPACA_STREAM_URL,
        data_url: str = ALPACA_DATA_URL,
        encoding: Encoding = "msgpack",
        symbols: Iterable[str] | None = None,
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
    ) -> None:
        if market not in ("stocks", "crypto"):
            raise ConfigError(f"market: expected 'stocks' or 'crypto', found {market!r}")
        asset = AssetClass.CRYPTO if market == "crypto" else AssetClass.EQUITY
        super().__init__(
            name,
            symbols=symbols,
            asset_classes=[asset],
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
        allowed = CRYPTO_CHANNELS if market == "crypto" else STOCK_CHANNELS
        self.channels = tuple(dict.fromkeys(channels))
        bad = [c for c in self.channels if c not in allowed]
        if bad or not self.channels:
            raise ConfigError(f"channels: expected some of {list(allowed)}, found {bad!r}")
        if market == "stocks" and source not in ("iex", "sip", "delayed_sip", "test"):
            raise ConfigError(f"source: expected iex, sip, delayed_sip or test, found {source!r}")
        self.market = market
        self.source = source
        self.credentials = credentials or Credentials.from_env(
            "APCA_API_KEY_ID", "APCA_API_SECRET_KEY"
        )
        path = "/v1beta3/crypto/us" if market == "crypto" else f"/v2/{source}"
        self.stream_url = stream_url.rstrip("/") + path
        self.data_url = data_url.rstrip("/")
        self.encoding: Encoding = encoding
        self._ws: ClientConnection | None = None
        self._history_client: Any = None
        self._revisions: OrderedDict[tuple[str, int], int] = OrderedDict()
        self.malformed_frames = 0
        self.unknown_messages = 0
        self.revisions = 0
        self._calendars: dict[str, Any] = {}  # symbol -> trading calendar (None: unknown)

    # ----------------------------------------------------------------- staleness
    stale_grace_s = 10.0  # a minute bar comes a few seconds after its minute

    def bar_period_s(self, symbol: str) -> float | None:
        """Return 60 (Alpaca streams minute bars) when ``bars`` are subscribed, else None."""
        return 60.0 if "bars" in self.channels else None

    def expects_data(self, symbol: str, now_ns: int) -> bool:
        """Return True for crypto; for stocks, while the regular session is open.

        The calendar is :func:`~lean_data.series.calendars.calendar_for` (read only); without the
        ``calendars`` extra a stock never expects data (never judged stale by default).
        """
        if self.market == "crypto":
            return True
        if symbol not in self._calendars:
            from lean_data.series.calendars import calendar_for

            try:
                self._calendars[symbol] = calendar_for(symbol, AssetClass.EQUITY)
            except ConfigError as exc:
                log.warning("feed %s: no staleness for %s: %s", self.name, symbol, exc)
                self._calendars[symbol] = None
        calendar = self._calendars[symbol]
        return calendar is not None and bool(calendar.is_open(now_ns))

    # ----------------------------------------------------------------- session hooks
    async def open_session(self) -> None:
        """Connect, read ``connected``, authenticate; raise the venue's error on refusal."""
        headers = {"Content-Type": "application/msgpack"} if self.encoding == "msgpack" else {}
        self._ws = ws = await connect(
            self.stream_url,
            additional_headers=headers,
            open_timeout=self.open_timeout_s,  # the base class bounds open_session too
            close_timeout=1.0,
            max_size=self.ws_max_message_bytes,
            compression=None,  # see StreamingFeed: deflate would defeat ws_buffer_bytes
            max_queue=self.ws_max_queue,
            ping_interval=10.0,
            ping_timeout=30.0,
            logger=_NO_FRAME_LOG,
        )
        await self._expect(ws, "connected")
        key, secret = self.credentials.key_id.reveal(), self.credentials.secret.reveal()
        await ws.send(auth_message(key, secret, self.encoding))
        await self._expect(ws, "authenticated")

    async def _expect(self, ws: ClientConnection, text: str) -> None:
        """Read control messages until ``success: text``; raise an ``error`` message."""
        while True:
            raw = await ws.recv()
            for message in parse_frame(raw, time.time_ns()):
                if message.kind == "error":
                    raise error_for_code(message.code, message.text)
                if message.kind == "success" and message.text == text:
                    return

    async def close_session(self) -> None:
        """Close the websocket, if open."""
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()

    def _channel_map(self, symbols: Sequence[str]) -> dict[str, list[str]]:
        return {channel: list(symbols) for channel in self.channels}

    async def send_subscribe(self, symbols: Sequence[str]) -> None:
        """Subscribe ``symbols`` on every configured channel (the ack is read later)."""
        await self._send(subscribe_message(self._channel_map(symbols), self.encoding))

    async def send_unsubscribe(self, symbols: Sequence[str]) -> None:
        """Unsubscribe ``symbols`` from every configured channel."""
        await self._send(unsubscribe_message(self._channel_map(symbols), self.encoding))

    async def _send(self, message: bytes | str) -> None:
        ws = self._ws
        if ws is None:
            raise FeedProtocolError("no open websocket to send on", feed=self.name)
        await ws.send(message)

    async def run_session(self) -> None:
        """Read frames until the connection ends; emit bars, revisions, trades and quotes."""
        ws = self._ws
        assert ws is not None
        async for raw in ws:
            now = time.time_ns()
            try:
                messages = parse_frame(raw, now)
            except FeedProtocolError as exc:
                self.malformed_frames += 1
                self.report_error("malformed_frame", f"{exc}; frame {_preview(raw)}")
                continue
            for message in messages:
                item = message.item
                if item is not None:
                    if message.kind == "updated_bar" and isinstance(item, TradeBar):
                        item = replace(item, revision=self._next_revision(item))
                    elif message.kind == "bar" and isinstance(item, TradeBar):
                        self._remember(item)
                    await self.emit(item)
                elif message.kind == "error":
                    error = error_for_code(message.code, message.text)
                    if not error.retryable:
                        raise error
                    self.report_error("venue_error", str(error))
                elif message.kind == "unknown":
                    self.unknown_messages += 1
                    self.report_error("unknown_message", f"type {message.type!r}")

    def _remember(self, bar: TradeBar) -> None:
        key = (bar.symbol, bar.ts_event)
        self._revisions[key] = 0
        self._revisions.move_to_end(key)
        if len(self._revisions) > _REVISIONS_KEPT:
            self._revisions.popitem(last=False)

    def _next_revision(self, bar: TradeBar) -> int:
        key = (bar.symbol, bar.ts_event)
        revision = self._revisions.get(key, 0) + 1
        self._revisions[key] = revision
        self._revisions.move_to_end(key)
        if len(self._revisions) > _REVISIONS_KEPT:
            self._revisions.popitem(last=False)
        self.revisions += 1
        return revision

    # ----------------------------------------------------------------- history
    async def get_historical_data(
        self,
        symbol: str,
        start_date: datetime | int,
        end_date: datetime | int,
        resolution: Resolution,
    ) -> list[MarketData]:
        """Fetch bars with open time in [start, end) through alpaca-py, off the event loop.

        Raises:
            FeedError: the venue refused fatally (bad keys, bad symbol) or retries ran out.
            ValueError: Alpaca has no timeframe of that length.
        """
        resolution = Resolution.parse(resolution)
        timeframe = timeframe_of(resolution)
        start = start_date if isinstance(start_date, int) else datetime_to_ns(start_date)
        end = end_date if isinstance(end_date, int) else datetime_to_ns(end_date)
        bars: list[MarketData] = []
        cursor = start
        self._client()  # imports alpaca-py here, on the loop thread, not in a worker
        while cursor < end:
            chunk = await self.retrying(
                lambda cursor=cursor: asyncio.to_thread(  # type: ignore[misc]
                    self._fetch_chunk, symbol, timeframe, resolution, cursor, end
                ),
                what=f"bars {symbol} {timeframe}",
            )
            fresh = [bar for bar in chunk if cursor <= bar.ts_event < end]
            bars.extend(fresh)
            if len(chunk) < _PAGE or not fresh:
                break
            cursor = fresh[-1].ts_event + resolution.nanos
        return bars

    def _client(self) -> Any:
        if self._history_client is None:
            key, secret = self.credentials.key_id.reveal(), self.credentials.secret.reveal()
            with warnings.catch_warnings():
                # alpaca.data imports its stream module, which uses websockets' legacy API
                warnings.simplefilter("ignore", DeprecationWarning)
                from alpaca.data import enums, requests, timeframe  # noqa: F401
                from alpaca.data.historical import (
                    CryptoHistoricalDataClient,
                    StockHistoricalDataClient,
                )
            if self.market == "crypto":
                client: Any = CryptoHistoricalDataClient(key, secret, url_override=self.data_url)
            else:
                client = StockHistoricalDataClient(key, secret, url_override=self.data_url)
            client._retry = 0  # our retry loop honours Retry-After; alpaca-py's sleeps 3 s
            _bound_requests(client._session, self.http_timeout_s)
            self._history_client = client
        return self._history_client

    def _fetch_chunk(
        self, symbol: str, timeframe: str, resolution: Resolution, start: int, end: int
    ) -> list[TradeBar]:
        """Blocking: one alpaca-py call for up to one page of bars (runs in a thread)."""
        from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

        amount, unit = _split_timeframe(timeframe)
        frame = TimeFrame(amount, TimeFrameUnit(unit))
        begin = datetime.fromtimestamp(start / 1e9, tz=UTC)
        until = datetime.fromtimestamp((end - 1) / 1e9, tz=UTC)
        client = self._client()
        if self.market == "crypto":
            from alpaca.data.requests import CryptoBarsRequest

            request: Any = CryptoBarsRequest(
                symbol_or_symbols=symbol, timeframe=frame, start=begin, end=until, limit=_PAGE
            )
            barset = client.get_crypto_bars(request)
        else:
            from alpaca.data.enums import Adjustment, DataFeed
            from alpaca.data.requests import StockBarsRequest

            request = StockBarsRequest(
                symbol_or_symbols=symbol,
                timeframe=frame,
                start=begin,
                end=until,
                limit=_PAGE,
                adjustment=Adjustment.RAW,
                feed=DataFeed(self.source) if self.source in ("iex", "sip") else None,
            )
            barset = client.get_stock_bars(request)
        now = time.time_ns()
        return [
            TradeBar(
                symbol=symbol,
                ts_event=datetime_to_ns(bar.timestamp),
                open=float(bar.open),
                high=float(bar.high),
                low=float(bar.low),
                close=float(bar.close),
                volume=float(bar.volume),
                resolution=resolution,
                ts_recv=now,
                closed=datetime_to_ns(bar.timestamp) + resolution.nanos <= now,
            )
            for bar in barset.data.get(symbol, [])
        ]

    def translate_error(self, exc: BaseException) -> FeedError:
        """Map alpaca-py's ``APIError`` (HTTP status, ``Retry-After``) and the rest."""
        status = getattr(exc, "status_code", None)
        if type(exc).__name__ == "APIError" and isinstance(status, int):
            response = getattr(exc, "response", None)
            headers = getattr(response, "headers", None) or {}
            return http_error(status, str(exc)[:200], headers.get("Retry-After"))
        return super().translate_error(exc)

    async def disconnect(self) -> None:
        """Close the stream session and the history client."""
        try:
            await super().disconnect()
        finally:
            client, self._history_client = self._history_client, None
            if client is not None:
                client._session.close()

    def get_connection_status(self) -> dict[str, Any]:
        """Return the base snapshot plus frame and revision counters."""
        status = super().get_connection_status()
        status.update(
            malformed_frames=self.malformed_frames,
            unknown_messages=self.unknown_messages,
            revisions=self.revisions,
        )
        return status


def _bound_requests(session: Any, timeout_s: float) -> None:
    """Give every request of a ``requests.Session`` without a timeout ``(connect, read)``."""
    from requests.adapters import HTTPAdapter

    timeout = (min(10.0, timeout_s), timeout_s)

    class _TimeoutAdapter(HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeout
            return super().send(request, *args, **kwargs)

    for prefix in ("https://", "http://"):
        session.mount(prefix, _TimeoutAdapter())


def _split_timeframe(timeframe: str) -> tuple[int, str]:
    digits = len(timeframe) - len(timeframe.lstrip("0123456789"))
    return int(timeframe[:digits]), timeframe[digits:]


def _preview(raw: bytes | str, limit: int = 80) -> str:
    return repr(raw if len(raw) <= limit else raw[:limit])
