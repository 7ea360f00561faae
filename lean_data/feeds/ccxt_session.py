"""One ccxt.pro session of a CcxtDataFeed: its exchange, watch tasks and sockets.

:class:`CcxtSession` owns what one connection of the feed started: the ccxt.pro exchange,
one watch task per (symbol, channel), the ``un_watch_*`` calls still in flight, and the
websocket clients ccxt opened. Any watch task that ends, and any frame ccxt could not
handle, fails the session (:attr:`CcxtSession.failed`), which ends the feed's
``run_session``; the feed's base class then reconnects with backoff.

Also here: importing ccxt lazily (:func:`import_ccxt`), reading a ccxt exchange's last
``Retry-After`` (:func:`retry_after`) and previewing a frame for an error
(:func:`preview_of`).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from lean_data.errors import ConfigError, FeedConnectError

__all__ = ["CcxtSession", "import_ccxt", "preview_of", "retry_after"]

Key = tuple[str, str]
"""(symbol, channel)"""


def import_ccxt(module: str) -> Any:
    """Import a ccxt module (``ccxt.pro``, ``ccxt.async_support``).

    Raises:
        ConfigError: ccxt is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"CcxtDataFeed needs ccxt ({module} could not be imported: {exc}); "
            "install it with: pip install 'lean-data[ccxt]'"
        ) from exc


def retry_after(exchange: Any) -> float | None:
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


_WATCH_METHODS = {"ohlcv": "watchOHLCV", "trades": "watchTrades"}


def preview_of(data: object, limit: int = 120) -> str:
    """Return the start of a frame (bytes or text) as a repr, for an error message."""
    text = data.decode(errors="replace") if isinstance(data, bytes | bytearray) else str(data)
    return repr(text if len(text) <= limit else text[:limit] + "...")


async def _await_result(method: Callable[..., Any], *args: Any) -> Any:
    result = method(*args)
    if inspect.isawaitable(result):
        return await result
    return result


@dataclass(eq=False)
class CcxtSession:
    """What one ccxt.pro session owns.

    Attributes:
        exchange: the ccxt.pro exchange of the session.
        failed: set with the error that ends the session.
        feed: the feed's name (for errors and task names).
        watchers: the watch task of each (symbol, channel).
        unwatching: ``un_watch_*`` calls still in flight per (symbol, channel).
        clients: the websocket clients ccxt opened, by URL.
    """

    exchange: Any
    failed: asyncio.Future[None]
    feed: str
    watchers: dict[Key, asyncio.Task[None]] = field(default_factory=dict)
    unwatching: dict[Key, asyncio.Task[Any]] = field(default_factory=dict)
    clients: dict[str, Any] = field(default_factory=dict)  # ws url -> ccxt Client seen

    def check_capabilities(self, channels: Iterable[str], timeframe: str) -> None:
        """Check that the exchange can watch ``channels`` (and ``timeframe`` candles).

        Raises:
            ConfigError: a ``watch*`` method the channels need is missing, or the timeframe.
        """
        exchange = self.exchange
        for channel in channels:
            method = _WATCH_METHODS[channel]
            if exchange.has.get(method) is not True:
                found = exchange.has.get(method)
                raise ConfigError(f"{exchange.id} cannot {method} in ccxt.pro (has: {found!r})")
        timeframes = exchange.timeframes or {}
        if "ohlcv" in channels and timeframes and timeframe not in timeframes:
            raise ConfigError(
                f"{exchange.id} has no {timeframe!r} candles; timeframes: {sorted(timeframes)}"
            )

    def fail(self, error: BaseException) -> None:
        """End the session with ``error`` (the first error wins)."""
        if not self.failed.done():
            self.failed.set_exception(error)

    # ----------------------------------------------------------------- watch tasks
    def start_watch(self, key: Key, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start the watch task of ``key`` unless it runs; its end fails the session."""
        if key in self.watchers:
            return
        symbol, channel = key
        task = asyncio.get_running_loop().create_task(run(), name=f"{self.feed}:{channel}:{symbol}")
        self.watchers[key] = task
        task.add_done_callback(self._watch_done)

    def _watch_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            error = FeedConnectError(f"{task.get_name()} ended", feed=self.feed)
        self.fail(error)

    def stop_watch(self, key: Key) -> bool:
        """Cancel the watch task of ``key``; return False when none ran."""
        task = self.watchers.pop(key, None)
        if task is None:
            return False
        task.cancel()
        return True

    def start_unwatch(
        self,
        key: Key,
        method_name: str,
        args: tuple[Any, ...],
        on_error: Callable[[str, BaseException], None],
    ) -> None:
        """Call ccxt's ``method_name`` (an ``un_watch_*``) in the background.

        ``on_error(symbol, exc)`` hears of a failure; the session goes on.
        """
        method = getattr(self.exchange, method_name)
        symbol, channel = key
        helper = asyncio.get_running_loop().create_task(
            _await_result(method, *args), name=f"{self.feed}:unwatch:{channel}:{symbol}"
        )
        self.unwatching[key] = helper
        helper.add_done_callback(partial(self._unwatch_done, key, on_error))

    def _unwatch_done(
        self,
        key: Key,
        on_error: Callable[[str, BaseException], None],
        task: asyncio.Task[Any],
    ) -> None:
        if self.unwatching.get(key) is task:
            del self.unwatching[key]
        if not task.cancelled():
            error = task.exception()
            if error is not None:
                on_error(key[0], error)

    async def unwatched(self, key: Key) -> None:
        """Wait until an unsubscribe of ``key`` still in flight is acknowledged.

        ccxt drops the subscription (and fails its pending watch) only when the venue acks
        the unsubscribe; a watch started before that would be failed by it.
        """
        pending = self.unwatching.get(key)
        if pending is not None:
            await asyncio.wait({pending})

    async def stop_tasks(self) -> None:
        """Cancel every watch and unwatch task and wait for them."""
        tasks = [*self.watchers.values(), *self.unwatching.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Settle :attr:`failed` and close the exchange (after :meth:`stop_tasks`)."""
        if self.failed.done():
            if not self.failed.cancelled():
                self.failed.exception()  # retrieved: run_session may not have run
        else:
            self.failed.cancel()
        await self.exchange.close()

    # ----------------------------------------------------------------- sockets
    def guard_clients(self, on_frame_error: Callable[[Any, Exception], None]) -> None:
        """Keep a frame ccxt cannot handle from killing its receive loop unnoticed.

        ccxt reads a websocket in a chain of callbacks; a frame whose decoding or handler
        raises ends the chain, and no pending ``watch_*`` call ever fails or resolves. Every
        client the session's exchange makes has its ``handle_message`` wrapped: the
        exception goes to ``on_frame_error(message, exc)`` (which skips the frame or fails
        the session) instead of ending ccxt's loop.
        """
        exchange = self.exchange
        make_client = exchange.client

        def client(url: str) -> Any:
            made = make_client(url)
            if getattr(made, "_lean_data_session", None) is not self:
                handle = made.handle_message

                def guarded(message: Any) -> Any:
                    try:
                        return handle(message)
                    except Exception as exc:
                        on_frame_error(message, exc)
                        return None

                made.handle_message = guarded
                made._lean_data_session = self
            return made

        exchange.client = client

    def check_connections(self) -> None:
        """Raise when a websocket ccxt opened for this session closed or was replaced.

        ccxt redials on the next ``watch_*`` call after a close; ending the session instead
        keeps reconnects under the feed's backoff and accounting.

        Raises:
            FeedConnectError: a connection was closed or replaced.
        """
        clients: dict[str, Any] = self.exchange.clients or {}
        for url, client in self.clients.items():
            if client.error is not None or clients.get(url) is not client:
                raise FeedConnectError("the websocket connection was closed", feed=self.feed)
        for url, client in clients.items():
            self.clients.setdefault(url, client)
