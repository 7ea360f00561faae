"""Order books of a :class:`~lean_data.feeds.ccxt_feed.CcxtDataFeed`: ccxt.pro's
``watch_order_book``, conflated into top-N snapshots.

ccxt maintains each book itself (it fetches the snapshot, buffers and sequences the deltas
with the venue's rules, and re-syncs on its own checks), so the feed sends only
:class:`~lean_data.book.OrderBookSnapshot` records (the top ``depth`` levels a side, made
by :func:`~lean_data.wire.ccxt.orderbook_to_snapshot`) and the engine's default
:class:`~lean_data.depth.Sequencer` applies each one.

One watch task per book (key ``(symbol, "book")`` of the session), with two loops: the
*watch* loop awaits ccxt's next change, converts it and puts it in the symbol's slot;
the *delivery* loop emits the slot's snapshot. While the engine's book queue is full the
delivery loop waits in ``emit`` and the watch loop goes on replacing the slot: the
states the engine had no room for are skipped and counted (:attr:`CcxtBooks.conflated`),
and depth never holds up ccxt's socket. A snapshot whose levels equal the last one sent
(a change deeper than ``depth``) is not sent again. When ccxt finds a book out of sync
(``InvalidNonce``/``ChecksumError``: it drops the book and its subscription), the watch
reports it (kind ``book_resync``) and calls again: ccxt re-subscribes and re-fetches.

:meth:`CcxtBooks.resync` re-creates the watch: ccxt's ``un_watch_order_book`` where the
exchange has it (ccxt then drops its subscription and cached book; the new watch
subscribes afresh and ccxt fetches a new snapshot), else ccxt's own recipe after a failed
check (``binance.handle_order_book``): drop the cached book and the client's order-book
subscription, so the next ``watch_order_book`` subscribes again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from lean_data.book import OrderBookSnapshot
from lean_data.errors import ConfigError, FeedProtocolError, SubscriptionError
from lean_data.feeds.ccxt_session import CcxtSession
from lean_data.wire.ccxt import is_ccxt_error, orderbook_to_snapshot

__all__ = ["BOOK", "CcxtBooks"]

BOOK = "book"
"""The channel name of a book's watch task in a :class:`CcxtSession`."""


class CcxtBooks:
    """The books one ccxt feed watches, across sessions.

    Args:
        exchange_id: the ccxt id (errors).
        depth: levels a side in each snapshot.
        limit: the ``limit`` given to ``watch_order_book`` (the depth ccxt keeps and asks
            of the venue's snapshot); None: the exchange's default (Binance: 1,000).
        emit: the feed's ``emit`` (waits while the engine's book queue is full).
        note_data: the feed's staleness clock.
        report_error: the feed's ``report_error``.

    Attributes:
        symbols: the books subscribed (watched again by every new session).
        sent: snapshots emitted.
        conflated: snapshots replaced by a newer one before the engine took them.
        unchanged: ccxt changes that left the top ``depth`` levels as last sent.
        resyncs: watches re-created on the engine's request.
        ccxt_resyncs: books ccxt found out of sync (``InvalidNonce``, ``ChecksumError``) and
            dropped; the watch goes on and ccxt subscribes and fetches the book again.

    Raises:
        ConfigError: ``depth`` or ``limit`` below 1.
    """

    def __init__(
        self,
        exchange_id: str,
        depth: int,
        limit: int | None,
        emit: Callable[[Any], Awaitable[None]],
        note_data: Callable[[str, int], None],
        report_error: Callable[..., None],
    ) -> None:
        if depth < 1 or (limit is not None and limit < 1):
            raise ConfigError(f"book_depth, book_limit: expected >= 1, found {depth!r}, {limit!r}")
        self.exchange_id, self.depth, self.limit = exchange_id, depth, limit
        self._emit, self._note_data, self._report = emit, note_data, report_error
        self.symbols: dict[str, None] = {}
        self.sent = self.conflated = self.unchanged = self.resyncs = self.ccxt_resyncs = 0
        self._slot: dict[str, OrderBookSnapshot] = {}
        self._ready: dict[str, asyncio.Event] = {}
        self._last: dict[str, tuple[object, object]] = {}

    def statistics(self) -> dict[str, int]:
        """Return the counters (for the feed's connection status)."""
        return {
            "book_snapshots": self.sent,
            "book_conflated": self.conflated,
            "book_unchanged": self.unchanged,
            "book_resyncs": self.resyncs,
            "book_ccxt_resyncs": self.ccxt_resyncs,
        }

    def subscribe(self, session: CcxtSession | None, symbol: str) -> None:
        """Add ``symbol``'s book; watch it now in ``session`` (None: once a session opens).

        Raises:
            SubscriptionError: the exchange cannot ``watchOrderBook`` in ccxt.pro, or has
                no market ``symbol``.
        """
        if session is not None:
            has = session.exchange.has.get("watchOrderBook")
            if has is not True:
                raise SubscriptionError(f"{self.exchange_id} cannot watchOrderBook ({has!r})")
            if symbol not in (session.exchange.markets or {}):
                raise SubscriptionError(f"{self.exchange_id} has no market {symbol!r}")
        self.symbols[symbol] = None
        if session is not None:
            self.start(session, symbol)

    def start_all(self, session: CcxtSession) -> None:
        """Watch every subscribed book in a new session; drop (and report) unknown ones."""
        markets = session.exchange.markets or {}
        for symbol in list(self.symbols):
            if symbol in markets and session.exchange.has.get("watchOrderBook") is True:
                self.start(session, symbol)
            else:
                del self.symbols[symbol]
                message = f"{self.exchange_id} cannot watch the order book of {symbol}"
                self._report("book_refused", message, symbol=symbol)

    def start(self, session: CcxtSession, symbol: str) -> None:
        """Start watching ``symbol``'s book in ``session`` (no-op when it is watched)."""
        session.start_watch((symbol, BOOK), partial(self.run, session, symbol))

    def stop(self, session: CcxtSession | None, symbol: str) -> bool:
        """Stop watching ``symbol`` (kept subscribed); return False when no watch ran."""
        self._slot.pop(symbol, None)
        self._last.pop(symbol, None)
        return session is not None and session.stop_watch((symbol, BOOK))

    def session_ended(self) -> None:
        """Forget what the ended session had not sent: the next session starts afresh."""
        self._slot.clear()
        self._last.clear()

    async def run(self, session: CcxtSession, symbol: str) -> None:
        """The watch task of one book: the watch loop and the delivery loop, until one fails."""
        loops = {
            asyncio.ensure_future(self._watch(session, symbol)),
            asyncio.ensure_future(self._deliver(symbol)),
        }
        try:
            done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raise the loop's error
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    async def _watch(self, session: CcxtSession, symbol: str) -> None:
        exchange = session.exchange
        await session.unwatched((symbol, BOOK))
        while True:
            session.check_connections()
            try:
                book = await exchange.watch_order_book(symbol, self.limit)
            except Exception as exc:
                if not _book_out_of_sync(exc):
                    raise
                self.ccxt_resyncs += 1  # ccxt dropped the book; the next call re-subscribes
                self._report("book_resync", f"{symbol}: {exc}", symbol=symbol)
                continue
            session.check_connections()
            now = time.time_ns()
            self._note_data(symbol, now)
            try:
                snapshot = orderbook_to_snapshot(symbol, book, self.depth, now)
            except FeedProtocolError as exc:
                self._report("bad_book", f"{symbol}: {exc}", symbol=symbol)
                continue
            self.offer(snapshot)

    def offer(self, snapshot: OrderBookSnapshot) -> None:
        """Put ``snapshot`` in its symbol's slot, replacing (and counting) one not yet sent."""
        symbol = snapshot.symbol
        levels = (snapshot.bids, snapshot.asks)
        if self._last.get(symbol) == levels:
            self.unchanged += 1
            return
        self._last[symbol] = levels
        if symbol in self._slot:
            self.conflated += 1
        self._slot[symbol] = snapshot
        ready = self._ready.get(symbol)
        if ready is None:
            ready = self._ready[symbol] = asyncio.Event()
        ready.set()

    async def _deliver(self, symbol: str) -> None:
        ready = self._ready.get(symbol)
        if ready is None:
            ready = self._ready[symbol] = asyncio.Event()
        while True:
            await ready.wait()
            ready.clear()
            snapshot = self._slot.pop(symbol, None)
            if snapshot is not None:
                await self._emit(snapshot)
                self.sent += 1

    def resync(
        self, session: CcxtSession, symbol: str, on_error: Callable[[str, BaseException], None]
    ) -> None:
        """Re-create ``symbol``'s watch so that ccxt fetches a fresh book (module docstring)."""
        self.resyncs += 1
        self.stop(session, symbol)
        exchange = session.exchange
        if exchange.has.get("unWatchOrderBook") is True:
            session.start_unwatch((symbol, BOOK), "un_watch_order_book", (symbol,), on_error)
        else:
            forget_book(exchange, symbol)
        self.start(session, symbol)


def _book_out_of_sync(exc: BaseException) -> bool:
    """ccxt's ``InvalidNonce`` (``ChecksumError`` is one): a gap or a checksum mismatch."""
    return is_ccxt_error(exc) and any(c.__name__ == "InvalidNonce" for c in type(exc).__mro__)


def forget_book(exchange: Any, symbol: str) -> None:
    """Drop ccxt's cached book of ``symbol`` and its clients' order-book subscriptions.

    What ccxt itself does when a book fails its checks (``binance.handle_order_book``:
    ``del self.orderbooks[symbol]``, ``del client.subscriptions[messageHash]``): the next
    ``watch_order_book`` subscribes again and ccxt builds the book from a new snapshot.
    Message hashes differ by exchange (``orderbook::BTC/USDT``, ``orderbook:BTC/USDT``...),
    so every subscription whose hash names the order book and the symbol is dropped.
    """
    books = getattr(exchange, "orderbooks", None)
    if isinstance(books, dict):
        books.pop(symbol, None)
    for client in list((getattr(exchange, "clients", None) or {}).values()):
        subscriptions = getattr(client, "subscriptions", None)
        if not isinstance(subscriptions, dict):
            continue
        for key in [k for k in subscriptions if isinstance(k, str)]:
            if "orderbook" in key.lower() and symbol in key:
                del subscriptions[key]
