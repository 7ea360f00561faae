"""The live data path of a :class:`~lean_data.feeds.ccxt_feed.CcxtDataFeed`, across sessions.

:class:`CcxtStream` runs the watch loops of one session and keeps, per symbol and across
sessions, what must outlive a connection: the candle closer, the read position in ccxt's
trade cache, and the outbox of items made but not yet taken by the engine.

- ccxt resolves a ``watch_*`` call on the *next* message, so updates that arrive while a
  batch is being emitted would wait in ccxt's cache for the following message. Each pass
  also reads that cache (``exchange.ohlcvs`` / ``exchange.trades``), as does a clock close
  and the end of a session, so nothing is held back or lost with the session. Reading the
  cache is pure (:mod:`lean_data.wire.ccxt.cache`).
- A clock loop closes candles whose period ended while the venue was quiet.
- Items leave a symbol's outbox only once the engine took them (under the symbol's lock,
  in order), so an item made final just before a session ended is emitted by the next.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable
from functools import partial
from typing import Any

from lean_data.feeds.ccxt_session import CcxtSession
from lean_data.models import NS_PER_SECOND, MarketData, Resolution
from lean_data.wire.ccxt import (
    CandleCloser,
    RecentKeys,
    cached_rows,
    cached_trades,
    close_rows,
    new_ticks,
)

__all__ = ["CcxtStream"]


class CcxtStream:
    """Watch loops, candle closing and in-order delivery of one ccxt feed's live data.

    Args:
        exchange_id: put on trade ticks.
        resolution, timeframe: the candle period watched.
        grace_ns, emit_partial: see :class:`~lean_data.wire.ccxt.CandleCloser`.
        revision_window: closed candles (back from the newest) whose cached rows are read
            again on every pass, for corrections.
        close_check_s: longest pause between clock checks.
        clock: wall clock in ns deciding when periods end.
        emit: the feed's ``emit`` (waits while the engine's inbox is full).
        note_data: the feed's staleness clock (``note_data(symbol, now_ns)``).
        report_error: the feed's ``report_error``.

    Attributes:
        closers: the candle closer per symbol.
    """

    def __init__(
        self,
        *,
        exchange_id: str,
        resolution: Resolution,
        timeframe: str,
        grace_ns: int,
        emit_partial: bool,
        revision_window: int,
        close_check_s: float,
        clock: Callable[[], int],
        emit: Callable[[MarketData], Awaitable[None]],
        note_data: Callable[[str, int], None],
        report_error: Callable[..., None],
    ) -> None:
        self.exchange_id, self.resolution, self.timeframe = exchange_id, resolution, timeframe
        self.grace_ns, self.emit_partial = grace_ns, emit_partial
        self.revision_window, self.close_check_s = revision_window, close_check_s
        self._clock, self._emit, self._note_data = clock, emit, note_data
        self._report = report_error
        self.closers: dict[str, CandleCloser] = {}
        self._read_trades: dict[str, RecentKeys] = {}  # trades of ccxt's cache already read
        self._outbox: dict[str, deque[MarketData]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def track(self, symbol: str) -> None:
        """Give ``symbol`` a candle closer (kept across sessions)."""
        if symbol not in self.closers:
            self.closers[symbol] = CandleCloser(
                symbol, self.resolution, grace_ns=self.grace_ns, emit_partial=self.emit_partial
            )

    def drop(self, symbol: str) -> None:
        """Forget ``symbol``'s forming candle and undelivered items (it was unsubscribed)."""
        closer = self.closers.get(symbol)
        if closer is not None:
            closer.drop_open()
        box = self._outbox.get(symbol)
        if box is not None:
            box.clear()  # in place: a delivery under way stops after its current item

    # ----------------------------------------------------------------- watch tasks
    async def watch_ohlcv(self, session: CcxtSession, symbol: str) -> None:
        exchange = session.exchange
        await session.unwatched((symbol, "ohlcv"))
        while True:
            session.check_connections()
            rows = [list(row) for row in await exchange.watch_ohlcv(symbol, self.timeframe)]
            session.check_connections()
            # each pass also takes the updates ccxt cached while no watch call was pending
            sent = await self.deliver(symbol, partial(self._close_rows, symbol, rows, session))
            while sent:  # emitting may have let more arrive
                sent = await self.deliver(symbol, partial(self._close_rows, symbol, [], session))

    async def watch_trades(self, session: CcxtSession, symbol: str) -> None:
        exchange = session.exchange
        await session.unwatched((symbol, "trades"))
        while True:
            session.check_connections()
            trades = list(await exchange.watch_trades(symbol))
            session.check_connections()
            sent = await self.deliver(symbol, partial(self._new_ticks, symbol, trades, session))
            while sent:
                sent = await self.deliver(symbol, partial(self._new_ticks, symbol, [], session))

    async def deliver(self, symbol: str, produce: Callable[[], list[MarketData]]) -> int:
        """Emit what ``produce`` makes (under the symbol's lock, in order); return the count.

        Items leave the symbol's outbox only once the engine took them, so an item made
        final just before a session ended is emitted by the next session, not lost.
        """
        lock = self._locks.get(symbol)
        if lock is None:
            lock = self._locks[symbol] = asyncio.Lock()
        async with lock:
            box = self._outbox.get(symbol)
            if box is None:
                box = self._outbox[symbol] = deque()
            box.extend(produce())
            sent = 0
            while box:
                await self._emit(box[0])
                box.popleft()
                sent += 1
            return sent

    # ----------------------------------------------------------------- candles
    def _close_rows(
        self, symbol: str, rows: list[list[Any]], session: CcxtSession | None = None
    ) -> list[MarketData]:
        """Run ``rows`` through the symbol's closer; return the bars made final.

        With ``session``, first the rows ccxt cached from ``revision_window`` candles
        before the newest one on: updates that arrived while no watch call was pending (ccxt
        would return them only with the next message), and corrections of closed candles
        (ccxt updates the cached row in place and never returns it). The cache goes first:
        an in-place final update of a candle ccxt returns no more must reach the closer
        before the next candle's opening row closes it. Rows already read change nothing.
        """
        closer = self.closers.get(symbol)
        if closer is None:
            return []
        now = self._clock()
        if rows:  # ccxt returned rows: the subscription is alive, emitted or not
            self._note_data(symbol, time.time_ns())
        cached: list[list[Any]] = []
        if session is not None:
            latest = closer.latest
            since = -1 if latest is None else latest - self.revision_window * self.resolution.nanos
            cached = cached_rows(
                session.exchange.ohlcvs, symbol, self.timeframe, since=since, now=now
            )
        bars, problems = close_rows(closer, (cached, rows), now)
        for problem in problems:
            self._report("bad_row", f"{symbol}: {problem}", symbol=symbol)
        return list(bars)

    def _close_due(self, session: CcxtSession, symbol: str, now: int) -> list[MarketData]:
        out = self._close_rows(symbol, [], session)
        closer = self.closers.get(symbol)
        if closer is not None:
            out.extend(closer.due(now))
        return out

    async def run_clock(self, session: CcxtSession, desired: Collection[str]) -> None:
        """Emit leftovers of the last session, then close candles whose period ended."""
        for symbol in [s for s, box in self._outbox.items() if box and s in desired]:
            await self.deliver(symbol, list)
        while True:
            now = self._clock()
            next_due: int | None = None
            for symbol, closer in list(self.closers.items()):
                if (symbol, "ohlcv") not in session.watchers:
                    continue
                deadline = closer.deadline()
                if deadline is not None and deadline <= now:
                    await self.deliver(symbol, partial(self._close_due, session, symbol, now))
                elif deadline is not None and (next_due is None or deadline < next_due):
                    next_due = deadline
            wait = self.close_check_s
            if next_due is not None:
                wait = min(wait, max(0.0, (next_due - now) / NS_PER_SECOND))
            await asyncio.sleep(wait)

    def keep_cached(self, session: CcxtSession) -> None:
        """Put everything ccxt cached for the ended session through the closers and cursors."""
        for symbol, channel in list(session.watchers):
            box = self._outbox.setdefault(symbol, deque())
            if channel == "ohlcv":
                rows = cached_rows(
                    session.exchange.ohlcvs, symbol, self.timeframe, since=-1, now=self._clock()
                )
                box.extend(self._close_rows(symbol, rows))
            else:
                box.extend(self._new_ticks(symbol, [], session))

    # ----------------------------------------------------------------- trades
    def _new_ticks(
        self, symbol: str, trades: list[Any], session: CcxtSession | None = None
    ) -> list[MarketData]:
        """Return ticks for the trades not read before, in order.

        With ``session``, then also for the trades ccxt cached after the newest one read
        (arrived while no watch call was pending).
        """
        read = self._read_trades.get(symbol)
        if read is None:
            read = self._read_trades[symbol] = RecentKeys()

        def batches() -> Iterable[list[Any]]:
            yield trades
            if session is not None:  # read after the batch above was taken in
                yield cached_trades(session.exchange.trades, symbol, read)

        ticks, problems = new_ticks(symbol, batches(), read, exchange=self.exchange_id)
        for problem in problems:
            self._report("bad_trade", f"{symbol}: {problem}", symbol=symbol)
        return list(ticks)
