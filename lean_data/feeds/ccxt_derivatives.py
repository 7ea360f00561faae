"""Funding rates and open interest of a :class:`~lean_data.feeds.ccxt_feed.CcxtDataFeed`,
polled over ccxt's REST API.

ccxt.pro has no unified stream of either, so :class:`CcxtDerivatives` polls, from the
feed's :meth:`connect` to its :meth:`disconnect`, with the REST exchange the history uses
(``ccxt.async_support.<exchange_id>``, :class:`~lean_data.feeds.ccxt_history.CcxtHistory`):

- every ``funding_every_s``: ``fetch_funding_rate(symbol)`` for each subscribed swap,
  emitted as a :class:`~lean_data.derivatives.FundingRate` for the funding it announces
  when its time or rate changed since the last one sent;
- every ``open_interest_every_s``: ``fetch_open_interest(symbol)`` for each subscribed
  contract, emitted as an :class:`~lean_data.derivatives.OpenInterest` when its time
  changed (the same reading again is not news).

Each request goes through the feed's :meth:`retrying` (429/418 ``Retry-After``
honoured); one that still fails is reported (kind ``funding_rate`` / ``open_interest``)
and the polling goes on, until the feed fails fatally. A symbol whose market is not a
contract is skipped; an exchange without the method is reported once and not polled.
:meth:`CcxtDerivatives.funding_history` pages ``fetch_funding_rate_history``. Converting
ccxt's structures is pure (:mod:`lean_data.wire.ccxt.depth`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from functools import partial
from typing import Any

from lean_data.derivatives import FundingRate, OpenInterest
from lean_data.errors import ConfigError, FeedError
from lean_data.feeds.ccxt_history import CcxtHistory
from lean_data.wire.ccxt import funding_history_of, funding_rate_of, open_interest_of

__all__ = ["CcxtDerivatives"]

_MS = 1_000_000
_METHODS = {"funding_rate": "fetchFundingRate", "open_interest": "fetchOpenInterest"}
_MARKET_FLAG = {"funding_rate": "swap", "open_interest": "contract"}


class CcxtDerivatives:
    """Polls funding rates and open interest; pages funding history (module docstring).

    Args:
        history: the feed's REST side: its exchange (``client()``, built with the markets
            on first use), ``call`` (ccxt's errors mapped), ``retrying`` and ``report``;
            ``page_limit`` rows per ``fetch_funding_rate_history`` page.
        every_s: the polling interval (s) of ``"funding_rate"`` and ``"open_interest"``;
            None: not polled.
        emit: the feed's ``emit``.
        alive: False once the feed failed fatally (the polling stops).

    Attributes:
        sent: records emitted, by kind.

    Raises:
        ConfigError: an interval is not None nor > 0.
    """

    def __init__(
        self,
        history: CcxtHistory,
        every_s: Mapping[str, float | None],
        emit: Callable[[Any], Awaitable[None]],
        alive: Callable[[], bool],
    ) -> None:
        for kind, every in every_s.items():
            if every is not None and not every > 0:
                name = "funding_every_s" if kind == "funding_rate" else "open_interest_every_s"
                raise ConfigError(f"{name}: expected seconds > 0 or None, found {every!r}")
        self.exchange_id, self.page_limit = history.exchange_id, history.page_limit
        self.every_s = {kind: every for kind, every in every_s.items() if every is not None}
        self._pollers: list[asyncio.Task[Any]] = []
        self._client, self._call, self._retrying = history.client, history.call, history.retrying
        self._emit, self._report, self._alive = emit, history.report, alive
        self._last: dict[tuple[str, str], object] = {}  # (kind, symbol) -> last sent key
        self.sent = {"funding_rate": 0, "open_interest": 0}

    def statistics(self) -> dict[str, int]:
        """Return the counts of records emitted (for the feed's connection status)."""
        return {
            "funding_rates": self.sent["funding_rate"],
            "open_interest": self.sent["open_interest"],
        }

    def start(
        self,
        spawn: Callable[..., asyncio.Task[Any]],
        symbols: Callable[[], Collection[str]],
    ) -> None:
        """Start the pollers (``spawn``: the feed's) unless they run."""
        if any(not task.done() for task in self._pollers):
            return
        self._pollers = [
            spawn(self.poll(kind, every, symbols), name=kind)
            for kind, every in self.every_s.items()
        ]

    async def stop(self) -> None:
        """Cancel the pollers and wait for them; idempotent."""
        pollers, self._pollers = self._pollers, []
        for task in pollers:
            task.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)

    async def poll(self, kind: str, every_s: float, symbols: Callable[[], Collection[str]]) -> None:
        """Fetch ``kind`` for each of ``symbols()`` every ``every_s`` s; emit what is new."""
        client = await self._client()
        method = _METHODS[kind]
        if client.has.get(method) is not True:
            self._report(kind, f"{self.exchange_id} cannot {method} in ccxt; not polled")
            return
        while self._alive():
            for symbol in list(symbols()):
                market = client.markets.get(symbol) if client.markets else None
                if market is None or not market.get(_MARKET_FLAG[kind]):
                    continue  # not a contract: no funding, no open interest
                record = await self._fetch(kind, symbol)
                if record is not None:
                    await self._send(kind, record)
            await asyncio.sleep(every_s)  # the polling interval, not a wait for an event

    async def _fetch(self, kind: str, symbol: str) -> FundingRate | OpenInterest | None:
        try:
            if kind == "funding_rate":
                return await self.funding_rate(symbol)
            return await self.open_interest(symbol)
        except FeedError as exc:
            self._report(kind, f"{symbol}: {exc}", symbol=symbol)
            return None

    async def _send(self, kind: str, record: FundingRate | OpenInterest) -> None:
        key: object = record.ts_event
        if isinstance(record, FundingRate):
            key = (record.ts_event, record.rate, record.next_funding_time)
        if self._last.get((kind, record.symbol)) == key:
            return
        self._last[kind, record.symbol] = key
        await self._emit(record)
        self.sent[kind] += 1

    async def funding_rate(self, symbol: str) -> FundingRate:
        """Fetch ``symbol``'s current funding rate (with retries).

        Raises:
            FeedError: the venue refused fatally, retries ran out, or the answer is
                malformed (:class:`~lean_data.errors.FeedProtocolError`).
        """
        client = await self._client()
        fetch = partial(self._call, client, client.fetch_funding_rate, symbol)
        structure = await self._retrying(fetch, what=f"fetch_funding_rate {symbol}")
        return funding_rate_of(symbol, structure, time.time_ns())

    async def open_interest(self, symbol: str) -> OpenInterest:
        """Fetch ``symbol``'s open interest (with retries).

        Raises:
            FeedError: as :meth:`funding_rate`.
        """
        client = await self._client()
        fetch = partial(self._call, client, client.fetch_open_interest, symbol)
        structure = await self._retrying(fetch, what=f"fetch_open_interest {symbol}")
        return open_interest_of(symbol, structure, time.time_ns())

    async def funding_history(self, symbol: str, start: int, end: int) -> list[FundingRate]:
        """Return the settled funding rates of ``symbol`` with funding time in [start, end) ns.

        Pages ``fetch_funding_rate_history(symbol, since, limit, {"until": ...})`` from
        ``start``, each page through :meth:`retrying`, until a page brings nothing new.

        Raises:
            FeedError: a page failed fatally, retries ran out, or a row is malformed.
        """
        client = await self._client()
        found: list[FundingRate] = []
        cursor = start
        while cursor < end:
            params = {"until": (end - 1) // _MS}
            since = -(-cursor // _MS)  # ceil: no rate before `cursor`
            fetch = partial(
                self._call,
                client,
                client.fetch_funding_rate_history,
                symbol,
                since,
                self.page_limit,
                params,
            )
            rows = await self._retrying(fetch, what=f"fetch_funding_rate_history {symbol}")
            page = funding_history_of(symbol, rows, time.time_ns())
            fresh = sorted(
                (r for r in page if cursor <= r.ts_event < end), key=lambda r: r.ts_event
            )
            found.extend(fresh)
            if not fresh:
                break
            cursor = fresh[-1].ts_event + 1
        return found
