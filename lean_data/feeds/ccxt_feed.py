"""CcxtDataFeed: live closed candles and trades, and history, for any ccxt exchange id.

A :class:`~lean_data.feeds.streaming.StreamingFeed` on ccxt.pro: the base owns reconnects
with backoff, resubscription, staleness and fatal stops; this module is the thin shell that
configures the feed and implements the session hooks. The rest is split by responsibility:

- :mod:`lean_data.feeds.ccxt_session` -- one ccxt.pro instance per session (built by
  ``open_session`` with ``enableRateLimit=True``; markets given, or loaded once and reused
  by later sessions; raise ``open_timeout_s`` for venues with very large market lists), one
  watch task per symbol and channel (``watch_ohlcv(symbol, timeframe)``,
  ``watch_trades(symbol)``) started by :meth:`send_subscribe` (no reply awaited) and
  cancelled by :meth:`send_unsubscribe`, which then lets ccxt's ``un_watch_*`` send the
  unsubscribe in the background. Any exception from a watch task ends the session
  (:meth:`translate_error` decides retry or stop); so does a connection ccxt reports lost
  or silently replaced, so reconnects always go through the base's backoff. A frame ccxt
  cannot handle never kills its receive loop unnoticed: an undecodable one (truncated
  JSON) is counted (``malformed_frames``), reported and skipped; any other exception is
  reported (``handler_error``) and ends the session.
- :mod:`lean_data.feeds.ccxt_stream` -- **closed candles only** by default: a candle is
  emitted once it is final (a newer candle was seen, or its period plus ``grace_s`` ended
  by ``clock``), once per (symbol, open time) across reconnects; a later change is
  emitted as a correction (``emit_partial=True`` also emits the forming candle). A clock
  task closes candles whose period ended while the venue was quiet; ccxt's caches are
  read with each batch, before a clock close and when a session ends, so nothing is held
  back or lost with the session. A row whose open time cannot be true by ``clock`` is
  emitted once as it is, for the engine's validator to judge
  (:class:`~lean_data.wire.ccxt.CandleCloser`).
- :mod:`lean_data.feeds.ccxt_history` -- :meth:`get_historical_data` on a separate REST
  instance (``ccxt.async_support.<exchange_id>``), created on first use and closed by
  :meth:`disconnect`; each ``fetch_ohlcv`` page goes through :meth:`retrying`.
- :mod:`lean_data.feeds.ccxt_depth` (order books: :meth:`subscribe_book`) and
  :mod:`lean_data.feeds.ccxt_derivatives` (funding rates, open interest: polled, history).
- :mod:`lean_data.wire.ccxt` -- the pure part: errors, rows to models, closing candles,
  reading ccxt's caches.

Credentials in ``exchange_config`` (``apiKey``, ``secret``, ...) are passed to ccxt only;
they are masked in every error message and never logged.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any, ClassVar

from lean_data.derivatives import FundingRate
from lean_data.errors import (
    ConfigError,
    FeedConnectError,
    FeedError,
    FeedProtocolError,
    RateLimitError,
)
from lean_data.feeds.backoff import BackoffPolicy
from lean_data.feeds.base import FeedStatus
from lean_data.feeds.ccxt_depth import CcxtBooks
from lean_data.feeds.ccxt_derivatives import CcxtDerivatives
from lean_data.feeds.ccxt_history import CcxtHistory
from lean_data.feeds.ccxt_session import CcxtSession, import_ccxt, preview_of, retry_after
from lean_data.feeds.ccxt_stream import CcxtStream
from lean_data.feeds.streaming import Cadence, StreamingFeed
from lean_data.models import (
    NS_PER_SECOND,
    AssetClass,
    MarketData,
    Resolution,
    datetime_to_ns,
)
from lean_data.wire.ccxt import (
    error_for,
    is_ccxt_error,
    market_asset_class,
    redact,
    secrets_of,
    timeframe_of,
    undecodable_json,
)

__all__ = ["CHANNELS", "CcxtDataFeed"]

CHANNELS = frozenset({"ohlcv", "trades"})
"""The channels a :class:`CcxtDataFeed` can watch."""

_EXCHANGE_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_UNWATCH_METHODS = {
    "ohlcv": ("unWatchOHLCV", "un_watch_ohlcv"),
    "trades": ("unWatchTrades", "un_watch_trades"),
}


class CcxtDataFeed(StreamingFeed):
    """Live candles and trades, and OHLCV history, from any exchange ccxt.pro supports.

    Args:
        name: unique name of this feed in an engine.
        exchange_id: the ccxt id (``"binance"``, ``"kraken"``, ``"okx"``...).
        resolution: the candle period watched live (``"1m"``, ``Resolution.HOUR``...).
        channels: ``("ohlcv",)``, ``("trades",)`` or ``("ohlcv", "trades")``.
        exchange_config: merged into the ccxt constructor config: ``apiKey``/``secret``,
            ``urls``, ``options``, ``timeout``... (``enableRateLimit`` is always True).
        markets: market structures for ccxt's ``set_markets`` (no ``load_markets``
            request); None loads them once through the first session and reuses them.
        emit_partial: also emit the forming candle (``closed=False``) on every change.
        history_limit: candles per ``fetch_ohlcv`` page.
        revision_window: closed candles (counted back from the newest) whose rows in ccxt's
            cache are compared with what was emitted on every pass, so a correction the
            venue re-sends for one of them is emitted as a revision. ccxt's
            ``watch_ohlcv`` returns only the newest rows, never an older row it updated.
        grace_s: seconds after a period's end the venue may still send the final update
            before the clock closes the candle.
        close_check_s: longest pause between clock checks (an injected clock may jump).
        clock: wall clock in ns deciding when periods end (``time.time_ns``; tests pin it).
        book_depth, book_limit: levels a side per book snapshot; ccxt's ``watch_order_book``
            ``limit`` (None: the exchange's default). See :meth:`subscribe_book`.
        funding_every_s, open_interest_every_s: poll funding rates / open interest of the
            contracts subscribed (bars or book) while connected; None (default): not polled.
        symbols: the symbols this feed serves (None: any crypto symbol).
        request_attempts, request_budget_s: the budget of each history page (see
            :class:`~lean_data.feeds.streaming.StreamingFeed`).
        http_timeout_s: ccxt's ``timeout`` (its REST request limit) unless
            ``exchange_config`` sets one; ccxt's websocket buffers are its own (not bounded
            by ``ws_buffer_bytes``).
        backoff, cadence_s, stale_factor, open_timeout_s, rng: see
            :class:`~lean_data.feeds.streaming.StreamingFeed`. By default
            (``cadence_s="auto"``) an ohlcv subscription is stale after ``stale_factor``
            (3) candle periods plus ``grace_s`` without a row from ccxt; a trades-only one
            is never judged stale. ``None`` or ``0`` turns it off.

    Raises:
        ConfigError: ccxt is missing, the exchange id is unknown to ccxt.pro, or an
            argument is out of range.

    Attributes:
        exchange_id: the ccxt id.
        timeframe: the ccxt timeframe watched (``"1m"``).
        resolution: the candle period watched.
        channels: the channels watched per symbol.
        closers: the :class:`~lean_data.wire.ccxt.CandleCloser` per symbol.
        malformed_frames: frames ccxt could not decode, reported and skipped.
    """

    asset_classes: ClassVar[frozenset[AssetClass]] = frozenset({AssetClass.CRYPTO})

    def __init__(
        self,
        name: str,
        exchange_id: str,
        *,
        resolution: Resolution | str = "1m",
        channels: Iterable[str] = ("ohlcv",),
        exchange_config: Mapping[str, Any] | None = None,
        markets: Iterable[Mapping[str, Any]] | None = None,
        emit_partial: bool = False,
        history_limit: int = 500,
        revision_window: int = 64,
        grace_s: float = 2.0,
        close_check_s: float = 1.0,
        clock: Callable[[], int] = time.time_ns,
        book_depth: int = 20,
        book_limit: int | None = None,
        funding_every_s: float | None = None,
        open_interest_every_s: float | None = None,
        symbols: Iterable[str] | None = None,
        backoff: BackoffPolicy | None = None,
        cadence_s: Cadence = "auto",
        stale_factor: float = 3.0,
        open_timeout_s: float = 10.0,
        request_attempts: int = 8,
        request_budget_s: float = 180.0,
        http_timeout_s: float = 30.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.channels = tuple(dict.fromkeys(channels))
        if not self.channels or not set(self.channels) <= CHANNELS:
            raise ConfigError(
                f"channels: expected some of {sorted(CHANNELS)}, found {list(self.channels)}"
            )
        self.resolution = Resolution.parse(resolution)
        try:
            self.timeframe = timeframe_of(self.resolution)
        except ValueError as exc:
            raise ConfigError(f"resolution: {exc}") from exc
        if history_limit < 1:
            raise ConfigError(f"history_limit: expected >= 1, found {history_limit!r}")
        if revision_window < 0:
            raise ConfigError(f"revision_window: expected >= 0, found {revision_window!r}")
        if not grace_s >= 0:
            raise ConfigError(f"grace_s: expected >= 0, found {grace_s!r}")
        if not close_check_s > 0:
            raise ConfigError(f"close_check_s: expected > 0, found {close_check_s!r}")
        if not isinstance(exchange_id, str) or not _EXCHANGE_ID.match(exchange_id):
            raise ConfigError(
                f"exchange_id: expected a ccxt id such as 'binance', found {exchange_id!r}"
            )
        pro = import_ccxt("ccxt.pro")
        if exchange_id not in pro.exchanges:
            raise ConfigError(f"exchange_id: ccxt.pro has no exchange {exchange_id!r}")
        summary = {"exchange_id": exchange_id, "resolution": self.resolution.name}
        super().__init__(
            name,
            summary | {"channels": list(self.channels)},
            symbols=symbols,
            backoff=backoff,
            cadence_s=cadence_s,
            stale_factor=stale_factor,
            open_timeout_s=open_timeout_s,
            request_attempts=request_attempts,
            request_budget_s=request_budget_s,
            http_timeout_s=http_timeout_s,
            rng=rng,
        )
        self.exchange_id = exchange_id
        self.emit_partial = emit_partial
        self.history_limit = history_limit
        self.revision_window = revision_window
        self.grace_ns = round(grace_s * NS_PER_SECOND)
        self.stale_grace_s = grace_s
        self.close_check_s = close_check_s
        self._exchange_config = dict(exchange_config or {})
        self._secrets = secrets_of(self._exchange_config)
        self._market_list = None if markets is None else [dict(m) for m in markets]
        self._market_classes: tuple[object, dict[str, AssetClass | None]] = (None, {})
        self._current: CcxtSession | None = None
        self._history = CcxtHistory(
            name,
            exchange_id,
            page_limit=history_limit,
            new_exchange=self._new_exchange,
            set_markets=self._set_markets,
            call=self._call,
            retrying=self.retrying,
            report_error=self.report_error,
        )
        self.malformed_frames = 0
        self._stream = CcxtStream(
            exchange_id=exchange_id,
            resolution=self.resolution,
            timeframe=self.timeframe,
            grace_ns=self.grace_ns,
            emit_partial=emit_partial,
            revision_window=revision_window,
            close_check_s=close_check_s,
            clock=clock,
            emit=self.emit,
            note_data=self.note_data,
            report_error=self.report_error,
        )
        self.closers = self._stream.closers
        self._books = CcxtBooks(
            exchange_id, book_depth, book_limit, self.emit, self.note_data, self.report_error
        )
        every = {"funding_rate": funding_every_s, "open_interest": open_interest_every_s}
        self._derivatives = CcxtDerivatives(self._history, every, self.emit, self._alive)

    def asset_class(self, symbol: str) -> AssetClass | None:
        """Return the class of ``symbol``'s ccxt market (type, else base/quote); see the base.

        Before the markets are known (given, or loaded on the first connection) and for a
        symbol the exchange does not list, the answer is the base's: crypto.
        """
        markets = self._market_list
        source, classes = self._market_classes
        if source is not markets:  # first call, or the markets were loaded since
            classes = {str(m.get("symbol")): market_asset_class(m) for m in markets or ()}
            self._market_classes = (markets, classes)
        return classes.get(symbol) or super().asset_class(symbol)

    def bar_period_s(self, symbol: str) -> float | None:
        """Return the candle period (s) when candles are watched, else None."""
        return self.resolution.nanos / NS_PER_SECOND if "ohlcv" in self.channels else None

    @property
    def exchange(self) -> Any:
        """The ccxt.pro exchange of the open session (None between sessions); to inspect only."""
        session = self._current
        return None if session is None else session.exchange

    # ----------------------------------------------------------------- errors
    def translate_error(self, exc: BaseException) -> FeedError:
        """Map ccxt exceptions with :func:`~lean_data.wire.ccxt.error_for`, others as the base."""
        if is_ccxt_error(exc):
            return error_for(exc, feed=self.name, secrets=self._secrets)
        error = super().translate_error(exc)
        if self._secrets and any(secret in str(error) for secret in self._secrets):
            error.args = (redact(str(error), self._secrets),)
        return error

    def get_connection_status(self) -> dict[str, Any]:
        """Return the base snapshot plus the exchange, channels and candle counters."""
        status = super().get_connection_status()
        status.update(
            exchange_id=self.exchange_id,
            malformed_frames=self.malformed_frames,
            timeframe=self.timeframe,
            channels=list(self.channels),
            candle_revisions=sum(c.revisions for c in self.closers.values()),
            ignored_rows=sum(c.ignored for c in self.closers.values()),
            implausible_rows=sum(c.implausible for c in self.closers.values()),
            **self._books.statistics(),
            **self._derivatives.statistics(),
        )
        return status

    async def _call(self, exchange: Any, method: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Await one ccxt REST call; a ccxt error becomes a FeedError with its Retry-After."""
        try:
            return await method(*args)
        except Exception as exc:
            if not is_ccxt_error(exc):
                raise
            error = error_for(exc, feed=self.name, secrets=self._secrets)
            if isinstance(error, RateLimitError):
                error.retry_after = retry_after(exchange)
            raise error from exc

    # ----------------------------------------------------------------- exchanges
    def _new_exchange(self, module: str) -> Any:
        cls = getattr(import_ccxt(module), self.exchange_id)
        timeout_ms = int(self.http_timeout_s * 1000)
        config = {"timeout": timeout_ms, **self._exchange_config, "enableRateLimit": True}
        return cls(config)

    async def _set_markets(self, exchange: Any) -> None:
        """Give ``exchange`` the feed's markets, loading them once when none are known.

        Given markets are completed with ccxt's ``safe_market_structure`` first:
        ``set_markets`` keeps the dicts as given in ``markets_by_id``, where ccxt's message
        handlers read keys such as ``inverse`` unguarded (a KeyError there stops ccxt's
        receive loop without failing any pending ``watch_*`` call).
        """
        if self._market_list is not None:
            exchange.set_markets([exchange.safe_market_structure(m) for m in self._market_list])
            return
        await self._call(exchange, exchange.load_markets)
        self._market_list = list(exchange.markets.values())

    # ----------------------------------------------------------------- session hooks
    async def open_session(self) -> None:
        """Build this session's ccxt.pro exchange and give it the markets."""
        exchange = self._new_exchange("ccxt.pro")
        loop = asyncio.get_running_loop()
        session = self._current = CcxtSession(exchange, loop.create_future(), self.name)
        session.guard_clients(partial(self._frame_failed, session))
        session.check_capabilities(self.channels, self.timeframe)
        await self._set_markets(exchange)
        self._books.start_all(session)

    async def close_session(self) -> None:
        """Stop the watch tasks, keep what ccxt still cached, close the exchange."""
        session, self._current = self._current, None
        if session is None:
            return
        try:
            await session.stop_tasks()
            self._books.session_ended()
            self._stream.keep_cached(session)
        finally:
            await session.close()

    async def send_subscribe(self, symbols: Sequence[str]) -> None:
        """Start the watch tasks of ``symbols``; ccxt sends the subscribe, no reply awaited.

        Raises:
            ccxt.BadSymbol: a symbol is not among the exchange's markets (fatal).
        """
        session = self._live()
        for symbol in symbols:
            session.exchange.market(symbol)  # BadSymbol before anything starts
        for symbol in symbols:
            if "ohlcv" in self.channels:
                self._stream.track(symbol)
            for channel in self.channels:
                stream = self._stream
                run = stream.watch_ohlcv if channel == "ohlcv" else stream.watch_trades
                session.start_watch((symbol, channel), partial(run, session, symbol))

    async def send_unsubscribe(self, symbols: Sequence[str]) -> None:
        """Cancel the watch tasks of ``symbols``; ccxt's ``un_watch_*`` runs in the background."""
        session = self._current
        if session is None:
            return
        for symbol in symbols:
            for channel in self.channels:
                if session.stop_watch((symbol, channel)):
                    self._start_unwatch(session, symbol, channel)
            self._stream.drop(symbol)

    async def run_session(self) -> None:
        """Run the clock until a watch task fails; raise its error."""
        session = self._live()
        clock = asyncio.ensure_future(self._stream.run_clock(session, self.desired))
        try:
            await asyncio.wait({session.failed, clock}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            clock.cancel()
            await asyncio.gather(clock, return_exceptions=True)
        for ended in (session.failed, clock):
            if ended.done() and not ended.cancelled():
                error = ended.exception()
                if error is not None:
                    raise error

    def _alive(self) -> bool:
        return self.fatal_error is None

    def _live(self) -> CcxtSession:
        session = self._current
        if session is None:
            raise FeedConnectError("no open ccxt session", feed=self.name)
        return session

    def _start_unwatch(self, session: CcxtSession, symbol: str, channel: str) -> None:
        flag, method_name = _UNWATCH_METHODS[channel]
        if session.exchange.has.get(flag) is not True:
            return
        args = (symbol, self.timeframe) if channel == "ohlcv" else (symbol,)
        session.start_unwatch((symbol, channel), method_name, args, self._unwatch_failed)

    def _unwatch_failed(self, symbol: str, exc: BaseException) -> None:
        error = self.translate_error(exc)
        self.report_error("unsubscribe_failed", f"{symbol}: {error}", symbol=symbol)

    def _frame_failed(self, session: CcxtSession, message: Any, exc: Exception) -> None:
        """Skip an undecodable frame (counted, reported); end the session on any other."""
        data = getattr(message, "data", message)
        preview = preview_of(data)
        if undecodable_json(data):
            self.malformed_frames += 1
            self.report_error("malformed_frame", f"{exc!r}; frame {preview}")
            return
        self.report_error("handler_error", f"ccxt could not handle a frame: {exc!r}; {preview}")
        session.fail(FeedProtocolError(f"ccxt could not handle a frame: {exc!r}", feed=self.name))

    # ----------------------------------------------------------------- history
    async def get_historical_data(
        self,
        symbol: str,
        start_date: datetime | int,
        end_date: datetime | int,
        resolution: Resolution | str = Resolution.MINUTE,
    ) -> list[MarketData]:
        """Return closed bars of ``symbol`` opening in ``[start, end)``, oldest first.

        Pages ``fetch_ohlcv`` from ``start`` by ``since``/``limit`` (at most
        ``history_limit`` candles, never more than the range still needs) until ``end``;
        each page goes through :meth:`retrying`. Bars repeated across pages are kept once
        (:class:`~lean_data.feeds.ccxt_history.CcxtHistory`).

        Raises:
            ConfigError: ``resolution`` is TICK or a period the exchange has no candles for.
            FeedError: a page failed fatally or the backoff policy gave up (BadSymbol is a
                :class:`~lean_data.errors.SubscriptionError`).
        """
        start = start_date if isinstance(start_date, int) else datetime_to_ns(start_date)
        end = end_date if isinstance(end_date, int) else datetime_to_ns(end_date)
        return await self._history.fetch(symbol, start, end, Resolution.parse(resolution))

    # ----------------------------------------------------------------- depth, derivatives
    async def subscribe_book(self, symbol: str) -> bool:
        """Send ``symbol``'s top ``book_depth`` levels per change of ccxt's book (ccxt_depth).

        Raises:
            SubscriptionError: (once connected) no ``watchOrderBook`` or no such market.
        """
        connected = self.status is FeedStatus.CONNECTED
        self._books.subscribe(self._current if connected else None, symbol)
        return True

    async def resync_book(self, symbol: str) -> None:
        """Re-create ``symbol``'s book watch: ccxt fetches a fresh book (ccxt_depth)."""
        session = self._current
        if session is not None and symbol in self._books.symbols:
            self._books.resync(session, symbol, self._unwatch_failed)

    async def get_funding_rates(self, symbol: str, start: int, end: int) -> list[FundingRate]:
        """Return the settled funding rates of ``symbol`` with funding time in [start, end) ns.

        Raises:
            FeedError: a page failed fatally or retries ran out.
        """
        return await self._derivatives.funding_history(symbol, start, end)

    async def connect(self) -> bool:
        """Start the session supervisor and, if asked, the funding / open-interest pollers."""
        connected = await super().connect()
        self._derivatives.start(self.spawn, lambda: {**self.desired, **self._books.symbols})
        return connected

    async def disconnect(self) -> None:
        """Stop the pollers and streaming, close the history exchange; idempotent."""
        await self._derivatives.stop()
        try:
            await super().disconnect()
        finally:
            await self._history.close()
