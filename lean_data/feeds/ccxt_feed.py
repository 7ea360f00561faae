"""CcxtDataFeed: live closed candles and trades, and history, for any ccxt exchange id.

A :class:`~lean_data.feeds.streaming.StreamingFeed` on ccxt.pro: the base owns reconnects
with backoff, resubscription, staleness and fatal stops; this module is the thin shell that
runs ccxt's ``watch_*`` calls. Parsing and the closed-candle logic are pure
(:mod:`lean_data.wire.ccxt`).

How it runs:

- **One ccxt.pro instance per session.** ``open_session`` builds
  ``ccxt.pro.<exchange_id>(config)`` with ``enableRateLimit=True`` and sets the markets:
  the given ones, or loaded once and reused by later sessions (a failed load fails the
  session attempt, which the base retries with backoff and ``Retry-After``; raise
  ``open_timeout_s`` for venues with very large market lists). ``close_session`` closes it.
  A connection ccxt reports lost ends the session, and a connection ccxt silently
  replaced (its next ``watch_*`` call redials) does too, so reconnects always go through
  the base's backoff, never through ccxt's own.
- **One watch task per symbol and channel** (``watch_ohlcv(symbol, timeframe)``,
  ``watch_trades(symbol)``), started by :meth:`send_subscribe` (no reply awaited) and
  cancelled by :meth:`send_unsubscribe`, which then lets ccxt's ``un_watch_*`` send the
  unsubscribe in the background when the exchange supports it. Any exception from a
  watch task ends the session; :meth:`translate_error` decides retry or stop.
- **A frame ccxt cannot handle never kills the stream unnoticed.** ccxt's receive loop
  stops for good when a frame's decoding or handler raises, and no pending watch call
  learns of it. The feed wraps each ccxt client's ``handle_message``: an undecodable frame
  (truncated JSON) is counted (``malformed_frames``), reported and skipped; any other
  exception is reported (``handler_error``) and ends the session, which the base
  reconnects and resubscribes.
- **Closed candles only** by default: a candle is emitted once it is final (a newer candle
  was seen, or its period plus ``grace_s`` ended by ``clock``), once per (symbol, open
  time) across reconnects; a later change is emitted as a revision. ``emit_partial=True``
  also emits the forming candle (``closed=False``). A clock task closes candles whose
  period ended while the venue was quiet. A row whose open time cannot be true by
  ``clock`` (ahead of it by more than 5 s of clock skew, or before 1971: a timestamp in
  the wrong unit) is emitted once as it is, for the engine's validator to judge, and
  never closes or replaces a real candle (:class:`~lean_data.wire.ccxt.CandleCloser`).
- ccxt resolves a ``watch_*`` call on the *next* message, so updates that arrive while a
  batch is being emitted would wait in ccxt's cache for the following message. The feed
  also reads that cache (``exchange.ohlcvs`` / ``exchange.trades``) with each batch, before
  a clock close and when a session ends, so nothing is held back or lost with the session.
- **History** (:meth:`get_historical_data`) uses a separate REST instance
  (``ccxt.async_support.<exchange_id>``) created on first use and closed by
  :meth:`disconnect`, so it works whether or not a stream session is open. Each
  ``fetch_ohlcv`` page goes through :meth:`retrying` (429/418 ``Retry-After`` honoured).

Credentials in ``exchange_config`` (``apiKey``, ``secret``, ...) are passed to ccxt only;
they are masked in every error message and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import math
import random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, ClassVar

from lean_data.errors import (
    ConfigError,
    FeedConnectError,
    FeedError,
    FeedProtocolError,
    RateLimitError,
)
from lean_data.feeds.backoff import BackoffPolicy
from lean_data.feeds.streaming import Cadence, StreamingFeed
from lean_data.models import (
    NS_PER_SECOND,
    AssetClass,
    MarketData,
    Resolution,
    TradeBar,
    datetime_to_ns,
)
from lean_data.wire.ccxt import (
    CandleCloser,
    RecentKeys,
    error_for,
    is_ccxt_error,
    market_asset_class,
    parse_ohlcv_row,
    plausible,
    redact,
    secrets_of,
    timeframe_of,
    trade_key,
    trade_to_tick,
    undecodable_json,
)

__all__ = ["CHANNELS", "CcxtDataFeed"]

CHANNELS = frozenset({"ohlcv", "trades"})
"""The channels a :class:`CcxtDataFeed` can watch."""

_MS = 1_000_000
_EXCHANGE_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_WATCH_METHODS = {"ohlcv": "watchOHLCV", "trades": "watchTrades"}
_UNWATCH_METHODS = {
    "ohlcv": ("unWatchOHLCV", "un_watch_ohlcv"),
    "trades": ("unWatchTrades", "un_watch_trades"),
}


def _import_ccxt(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"CcxtDataFeed needs ccxt ({module} could not be imported: {exc}); "
            "install it with: pip install 'lean-data[ccxt]'"
        ) from exc


@dataclass(eq=False)
class _Session:
    """What one ccxt.pro session owns."""

    exchange: Any
    failed: asyncio.Future[None]
    watchers: dict[tuple[str, str], asyncio.Task[None]] = field(default_factory=dict)
    unwatching: dict[tuple[str, str], asyncio.Task[Any]] = field(default_factory=dict)
    clients: dict[str, Any] = field(default_factory=dict)  # ws url -> ccxt Client seen


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
        pro = _import_ccxt("ccxt.pro")
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
        self._clock = clock
        self._exchange_config = dict(exchange_config or {})
        self._secrets = secrets_of(self._exchange_config)
        self._market_list = None if markets is None else [dict(m) for m in markets]
        self._market_classes: tuple[object, dict[str, AssetClass | None]] = (None, {})
        self._current: _Session | None = None
        self._rest_client: Any = None
        self._rest_lock = asyncio.Lock()
        self.closers: dict[str, CandleCloser] = {}
        self.malformed_frames = 0
        self._recent_trades: dict[str, RecentKeys] = {}
        self._outbox: dict[str, deque[MarketData]] = {}
        self._symbol_locks: dict[str, asyncio.Lock] = {}

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
                error.retry_after = _retry_after(exchange)
            raise error from exc

    # ----------------------------------------------------------------- exchanges
    def _new_exchange(self, module: str) -> Any:
        cls = getattr(_import_ccxt(module), self.exchange_id)
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

    def _check_capabilities(self, exchange: Any) -> None:
        has = exchange.has
        for channel in self.channels:
            if has.get(_WATCH_METHODS[channel]) is not True:
                raise ConfigError(
                    f"{self.exchange_id} cannot {_WATCH_METHODS[channel]} in ccxt.pro "
                    f"(has[{_WATCH_METHODS[channel]!r}] is {has.get(_WATCH_METHODS[channel])!r})"
                )
        timeframes = exchange.timeframes or {}
        if "ohlcv" in self.channels and timeframes and self.timeframe not in timeframes:
            raise ConfigError(
                f"{self.exchange_id} has no {self.timeframe!r} candles; "
                f"timeframes: {sorted(timeframes)}"
            )

    # ----------------------------------------------------------------- session hooks
    async def open_session(self) -> None:
        """Build this session's ccxt.pro exchange and give it the markets."""
        exchange = self._new_exchange("ccxt.pro")
        session = self._current = _Session(exchange, asyncio.get_running_loop().create_future())
        self._guard_clients(session)
        self._check_capabilities(exchange)
        await self._set_markets(exchange)

    async def close_session(self) -> None:
        """Stop the watch tasks, keep what ccxt still cached, close the exchange."""
        session, self._current = self._current, None
        if session is None:
            return
        try:
            tasks = [*session.watchers.values(), *session.unwatching.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._keep_cached(session)
        finally:
            if session.failed.done():
                if not session.failed.cancelled():
                    session.failed.exception()  # retrieved: run_session may not have run
            else:
                session.failed.cancel()
            await session.exchange.close()

    async def send_subscribe(self, symbols: Sequence[str]) -> None:
        """Start the watch tasks of ``symbols``; ccxt sends the subscribe, no reply awaited.

        Raises:
            ccxt.BadSymbol: a symbol is not among the exchange's markets (fatal).
        """
        session = self._live()
        for symbol in symbols:
            session.exchange.market(symbol)  # BadSymbol before anything starts
        for symbol in symbols:
            if "ohlcv" in self.channels and symbol not in self.closers:
                self.closers[symbol] = CandleCloser(
                    symbol,
                    self.resolution,
                    grace_ns=self.grace_ns,
                    emit_partial=self.emit_partial,
                )
            for channel in self.channels:
                self._start_watch(session, symbol, channel)

    async def send_unsubscribe(self, symbols: Sequence[str]) -> None:
        """Cancel the watch tasks of ``symbols``; ccxt's ``un_watch_*`` runs in the background."""
        session = self._current
        if session is None:
            return
        for symbol in symbols:
            for channel in self.channels:
                task = session.watchers.pop((symbol, channel), None)
                if task is None:
                    continue
                task.cancel()
                self._start_unwatch(session, symbol, channel)
            closer = self.closers.get(symbol)
            if closer is not None:
                closer.drop_open()
            box = self._outbox.get(symbol)
            if box is not None:
                box.clear()  # in place: a delivery under way stops after its current item

    async def run_session(self) -> None:
        """Run the clock until a watch task fails; raise its error."""
        session = self._live()
        clock = asyncio.ensure_future(self._clock_loop(session))
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

    def _live(self) -> _Session:
        session = self._current
        if session is None:
            raise FeedConnectError("no open ccxt session", feed=self.name)
        return session

    # ----------------------------------------------------------------- watch tasks
    def _start_watch(self, session: _Session, symbol: str, channel: str) -> None:
        key = (symbol, channel)
        if key in session.watchers:
            return
        run = self._watch_ohlcv if channel == "ohlcv" else self._watch_trades
        task = asyncio.get_running_loop().create_task(
            run(session, symbol), name=f"{self.name}:{channel}:{symbol}"
        )
        session.watchers[key] = task
        task.add_done_callback(partial(self._watch_done, session))

    def _watch_done(self, session: _Session, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            error = FeedConnectError(f"{task.get_name()} ended", feed=self.name)
        if not session.failed.done():
            session.failed.set_exception(error)

    def _start_unwatch(self, session: _Session, symbol: str, channel: str) -> None:
        flag, method_name = _UNWATCH_METHODS[channel]
        exchange = session.exchange
        if exchange.has.get(flag) is not True:
            return
        method = getattr(exchange, method_name)
        args = (symbol, self.timeframe) if channel == "ohlcv" else (symbol,)
        helper = asyncio.get_running_loop().create_task(
            _await_result(method, *args), name=f"{self.name}:unwatch:{channel}:{symbol}"
        )
        session.unwatching[(symbol, channel)] = helper
        helper.add_done_callback(partial(self._unwatch_done, session, (symbol, channel)))

    def _unwatch_done(
        self, session: _Session, key: tuple[str, str], task: asyncio.Task[Any]
    ) -> None:
        if session.unwatching.get(key) is task:
            del session.unwatching[key]
        symbol = key[0]
        if not task.cancelled() and task.exception() is not None:
            error = self.translate_error(task.exception())  # type: ignore[arg-type]
            self.report_error("unsubscribe_failed", f"{symbol}: {error}", symbol=symbol)

    def _guard_clients(self, session: _Session) -> None:
        """Keep a frame ccxt cannot handle from killing its receive loop unnoticed.

        ccxt reads a websocket in a chain of callbacks; a frame whose decoding or handler
        raises ends the chain, and no pending ``watch_*`` call ever fails or resolves. Every
        client the session's exchange makes has its ``handle_message`` wrapped: an
        undecodable frame (truncated, garbled JSON) is counted in ``malformed_frames``,
        reported and skipped (ccxt changed nothing yet); any other exception is reported
        (``handler_error``) and ends the session, so the base reconnects and resubscribes.
        """
        exchange = session.exchange
        make_client = exchange.client

        def client(url: str) -> Any:
            made = make_client(url)
            if getattr(made, "_lean_data_session", None) is not session:
                handle = made.handle_message

                def guarded(message: Any) -> Any:
                    try:
                        return handle(message)
                    except Exception as exc:
                        self._frame_failed(session, message, exc)
                        return None

                made.handle_message = guarded
                made._lean_data_session = session
            return made

        exchange.client = client

    def _frame_failed(self, session: _Session, message: Any, exc: Exception) -> None:
        data = getattr(message, "data", message)
        preview = _preview(data)
        if undecodable_json(data):
            self.malformed_frames += 1
            self.report_error("malformed_frame", f"{exc!r}; frame {preview}")
            return
        self.report_error("handler_error", f"ccxt could not handle a frame: {exc!r}; {preview}")
        if not session.failed.done():
            session.failed.set_exception(
                FeedProtocolError(f"ccxt could not handle a frame: {exc!r}", feed=self.name)
            )

    def _check_connections(self, session: _Session) -> None:
        """Raise when a websocket ccxt opened for this session closed or was replaced.

        ccxt redials on the next ``watch_*`` call after a close; ending the session instead
        keeps reconnects under the feed's backoff and accounting.
        """
        clients: dict[str, Any] = session.exchange.clients or {}
        for url, client in session.clients.items():
            if client.error is not None or clients.get(url) is not client:
                raise FeedConnectError("the websocket connection was closed", feed=self.name)
        for url, client in clients.items():
            session.clients.setdefault(url, client)

    async def _unwatched(self, session: _Session, key: tuple[str, str]) -> None:
        """Wait until an unsubscribe of ``key`` still in flight is acknowledged.

        ccxt drops the subscription (and fails its pending watch) only when the venue acks
        the unsubscribe; a watch started before that would be failed by it.
        """
        pending = session.unwatching.get(key)
        if pending is not None:
            await asyncio.wait({pending})

    async def _watch_ohlcv(self, session: _Session, symbol: str) -> None:
        exchange = session.exchange
        await self._unwatched(session, (symbol, "ohlcv"))
        while True:
            self._check_connections(session)
            rows = [list(row) for row in await exchange.watch_ohlcv(symbol, self.timeframe)]
            self._check_connections(session)
            # each pass also takes the updates ccxt cached while no watch call was pending
            sent = await self._deliver(symbol, partial(self._close_rows, symbol, rows, session))
            while sent:  # emitting may have let more arrive
                sent = await self._deliver(symbol, partial(self._close_rows, symbol, [], session))

    async def _watch_trades(self, session: _Session, symbol: str) -> None:
        exchange = session.exchange
        await self._unwatched(session, (symbol, "trades"))
        while True:
            self._check_connections(session)
            trades = list(await exchange.watch_trades(symbol))
            self._check_connections(session)
            sent = await self._deliver(symbol, partial(self._new_ticks, symbol, trades, session))
            while sent:
                sent = await self._deliver(symbol, partial(self._new_ticks, symbol, [], session))

    async def _deliver(self, symbol: str, produce: Callable[[], list[MarketData]]) -> int:
        """Emit what ``produce`` makes (under the symbol's lock, in order); return the count.

        Items leave the symbol's outbox only once the engine took them, so an item made
        final just before a session ended is emitted by the next session, not lost.
        """
        lock = self._symbol_locks.get(symbol)
        if lock is None:
            lock = self._symbol_locks[symbol] = asyncio.Lock()
        async with lock:
            box = self._outbox.get(symbol)
            if box is None:
                box = self._outbox[symbol] = deque()
            box.extend(produce())
            sent = 0
            while box:
                await self.emit(box[0])
                box.popleft()
                sent += 1
            return sent

    # ----------------------------------------------------------------- candles
    def _close_rows(
        self, symbol: str, rows: list[list[Any]], session: _Session | None = None
    ) -> list[MarketData]:
        """Run ``rows`` through the symbol's closer; return the bars made final.

        With ``session``, then also the rows ccxt cached from ``revision_window`` candles
        before the newest one on: updates that arrived while no watch call was pending (ccxt
        would return them only with the next message), and corrections of closed candles
        (ccxt updates the cached row in place and never returns it). Rows already seen
        change nothing.
        """
        closer = self.closers.get(symbol)
        if closer is None:
            return []
        now = self._clock()
        if rows:  # ccxt returned rows: the subscription is alive, emitted or not
            self.note_data(symbol, time.time_ns())
        out: list[MarketData] = []
        # the cache first: an in-place final update of a candle ccxt returns no more (a row
        # after it, say a bogus one, is "newest") must reach the closer before the next
        # candle's opening row closes it
        for batch in (None, rows):
            if batch is None:
                if session is None:
                    continue
                latest = closer.latest
                lookback = self.revision_window * self.resolution.nanos
                since = -1 if latest is None else latest - lookback
                batch = self._cached_rows(session, symbol, since=since, now=now)
            for row in batch:
                try:
                    out.extend(closer.update(row, now))
                except FeedError as exc:
                    self.report_error("bad_row", f"{symbol}: {exc}", symbol=symbol)
        return out

    def _cached_rows(
        self, session: _Session, symbol: str, *, since: int, now: int
    ) -> list[list[Any]]:
        """Return ccxt's cached rows of ``symbol`` opening at or after ``since`` (ns).

        ccxt keeps rows in arrival order; the walk back from the newest stops at the first
        plausible row older than ``since``. Implausible rows (see
        :func:`~lean_data.wire.ccxt.plausible`) on the way are returned too: the closer
        passes each on once.
        """
        ohlcvs = session.exchange.ohlcvs
        stored = ohlcvs.get(symbol, {}).get(self.timeframe) if isinstance(ohlcvs, dict) else None
        if not stored:
            return []
        tail: list[list[Any]] = []
        for row in reversed(stored):
            if not isinstance(row[0], int):
                break
            ts = row[0] * _MS
            if ts < since and plausible(ts, now):
                break
            tail.append(list(row))
        tail.reverse()
        return tail

    def _close_due(self, session: _Session, symbol: str, now: int) -> list[MarketData]:
        out = self._close_rows(symbol, [], session)
        closer = self.closers.get(symbol)
        if closer is not None:
            out.extend(closer.due(now))
        return out

    async def _clock_loop(self, session: _Session) -> None:
        """Emit leftovers of the last session, then close candles whose period ended."""
        for symbol in [s for s, box in self._outbox.items() if box and s in self.desired]:
            await self._deliver(symbol, list)
        while True:
            now = self._clock()
            next_due: int | None = None
            for symbol, closer in list(self.closers.items()):
                if (symbol, "ohlcv") not in session.watchers:
                    continue
                deadline = closer.deadline()
                if deadline is not None and deadline <= now:
                    await self._deliver(symbol, partial(self._close_due, session, symbol, now))
                elif deadline is not None and (next_due is None or deadline < next_due):
                    next_due = deadline
            wait = self.close_check_s
            if next_due is not None:
                wait = min(wait, max(0.0, (next_due - now) / NS_PER_SECOND))
            await asyncio.sleep(wait)

    def _keep_cached(self, session: _Session) -> None:
        """Put everything ccxt cached for the ended session through the closers and dedupers."""
        for symbol, channel in list(session.watchers):
            box = self._outbox.setdefault(symbol, deque())
            if channel == "ohlcv":
                rows = self._cached_rows(session, symbol, since=-1, now=self._clock())
                box.extend(self._close_rows(symbol, rows))
            else:
                box.extend(self._new_ticks(symbol, [], session))

    # ----------------------------------------------------------------- trades
    def _new_ticks(
        self, symbol: str, trades: list[Any], session: _Session | None = None
    ) -> list[MarketData]:
        """Return ticks for the trades not seen before, in order.

        With ``session``, then also for the trades ccxt cached after the newest one seen
        (arrived while no watch call was pending).
        """
        recent = self._recent_trades.get(symbol)
        if recent is None:
            recent = self._recent_trades[symbol] = RecentKeys()
        out: list[MarketData] = []
        for batch in (trades, None):
            if batch is None:
                if session is None:
                    break
                batch = self._cached_trades(session, symbol, recent)
            for trade in batch:
                try:
                    tick = trade_to_tick(symbol, trade, exchange=self.exchange_id)
                    key = trade_key(trade)
                except (FeedError, AttributeError, TypeError) as exc:
                    self.report_error("bad_trade", f"{symbol}: {exc}", symbol=symbol)
                    continue
                if recent.add(key):
                    out.append(tick)
        return out

    def _cached_trades(self, session: _Session, symbol: str, recent: RecentKeys) -> list[Any]:
        """Return ccxt's cached trades of ``symbol`` newer than the last one already seen."""
        trades = session.exchange.trades
        stored = trades.get(symbol) if isinstance(trades, dict) else None
        if not stored:
            return []
        tail = []
        for trade in reversed(stored):
            if not isinstance(trade, Mapping) or trade_key(trade) in recent:
                break
            tail.append(trade)
        tail.reverse()
        return tail

    # ----------------------------------------------------------------- history
    async def _rest(self) -> Any:
        """Return the REST exchange for history, built (with markets) on first use."""
        async with self._rest_lock:
            if self._rest_client is None:
                client = self._new_exchange("ccxt.async_support")
                try:
                    await self.retrying(
                        partial(self._set_markets, client), what=f"{self.exchange_id} markets"
                    )
                except BaseException:
                    await client.close()
                    raise
                self._rest_client = client
            return self._rest_client

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
        each page goes through :meth:`retrying`. Bars repeated across pages are kept once.

        Raises:
            ConfigError: ``resolution`` is TICK or a period the exchange has no candles for.
            FeedError: a page failed fatally or the backoff policy gave up (BadSymbol is a
                :class:`~lean_data.errors.SubscriptionError`).
        """
        res = Resolution.parse(resolution)
        try:
            timeframe = timeframe_of(res)
        except ValueError as exc:
            raise ConfigError(f"{self.name}: history needs a bar period: {exc}") from exc
        start = start_date if isinstance(start_date, int) else datetime_to_ns(start_date)
        end = end_date if isinstance(end_date, int) else datetime_to_ns(end_date)
        if end <= start:
            return []
        client = await self._rest()
        if client.timeframes and timeframe not in client.timeframes:
            raise ConfigError(f"{self.exchange_id} has no {timeframe!r} candles")
        period_ms = res.nanos // _MS
        cursor, end_ms = math.ceil(start / _MS), math.ceil(end / _MS)
        bars: dict[int, TradeBar] = {}
        while cursor < end_ms:
            limit = min(self.history_limit, math.ceil((end_ms - cursor) / period_ms))
            fetch = partial(
                self._call, client, client.fetch_ohlcv, symbol, timeframe, cursor, limit
            )
            rows = await self.retrying(
                fetch, what=f"fetch_ohlcv {symbol} {timeframe} since {cursor}"
            )
            newest = self._page_bars(symbol, rows, res, start, end, bars)
            if newest is None or newest < cursor:
                break  # an empty page, or the exchange ignored `since`: nothing further
            cursor = newest + period_ms
        return [bars[ts] for ts in sorted(bars)]

    def _page_bars(
        self,
        symbol: str,
        rows: Iterable[Any],
        res: Resolution,
        start: int,
        end: int,
        bars: dict[int, TradeBar],
    ) -> int | None:
        """Add a page's bars in ``[start, end)`` to ``bars``; return its newest open time (ms)."""
        newest: int | None = None
        for row in rows:
            try:
                ts, (o, h, low, c, v) = parse_ohlcv_row(row)
            except FeedError as exc:
                self.report_error("bad_row", f"{symbol} history: {exc}", symbol=symbol)
                continue
            newest = ts // _MS if newest is None else max(newest, ts // _MS)
            if start <= ts < end and ts not in bars:
                bars[ts] = TradeBar(symbol, ts, o, h, low, c, v, res, closed=True)
        return newest

    async def disconnect(self) -> None:
        """Stop streaming and close the history exchange; idempotent."""
        try:
            await super().disconnect()
        finally:
            client, self._rest_client = self._rest_client, None
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.close()


def _preview(data: object, limit: int = 120) -> str:
    text = data.decode(errors="replace") if isinstance(data, bytes | bytearray) else str(data)
    return repr(text if len(text) <= limit else text[:limit] + "...")


async def _await_result(method: Callable[..., Any], *args: Any) -> Any:
    result = method(*args)
    if inspect.isawaitable(result):
        return await result
    return result


def _retry_after(exchange: Any) -> float | None:
    """Return the Retry-After seconds of the exchange's last HTTP response, if it said."""
    headers = getattr(exchange, "last_response_headers", None)
    if not isinstance(headers, Mapping):
        return None
    value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None
