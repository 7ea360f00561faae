"""Reading what ccxt.pro caches, and what was already read of it.

ccxt resolves a ``watch_*`` call on the *next* message, and keeps every row and trade it
received in per-symbol caches (``exchange.ohlcvs[symbol][timeframe]``,
``exchange.trades[symbol]``), updating a candle's row in place. A feed therefore reads the
cache as well as what ``watch_*`` returned, and the same rows and trades come back on every
read. What was already read is protocol state, kept here:

- candles: the :class:`~lean_data.wire.ccxt.candles.CandleCloser` remembers the values it
  passed on per open time, so a row read again changes nothing and a row whose values
  changed is passed on as a correction (the engine's continuity decides what it becomes);
- trades: a :class:`~lean_data.wire.ccxt.candles.RecentKeys` of the trade keys already read,
  the read position in ccxt's trade cache.

Pure functions over those structures: no I/O, no clock reads, ccxt never imported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lean_data.errors import FeedError
from lean_data.models import Resolution, Tick, TradeBar
from lean_data.wire.ccxt.candles import CandleCloser, RecentKeys, plausible
from lean_data.wire.ccxt.rows import MS, parse_ohlcv_row, trade_key, trade_to_tick

__all__ = ["cached_rows", "cached_trades", "close_rows", "new_ticks", "page_bars"]


def cached_rows(
    ohlcvs: object, symbol: str, timeframe: str, *, since: int, now: int
) -> list[list[Any]]:
    """Return ccxt's cached rows of ``symbol`` opening at or after ``since`` (ns).

    ccxt keeps rows in arrival order; the walk back from the newest stops at the first
    plausible row older than ``since``. Implausible rows (see
    :func:`~lean_data.wire.ccxt.candles.plausible`) on the way are returned too: the closer
    passes each on once.
    """
    stored = ohlcvs.get(symbol, {}).get(timeframe) if isinstance(ohlcvs, dict) else None
    if not stored:
        return []
    tail: list[list[Any]] = []
    for row in reversed(stored):
        if not isinstance(row[0], int):
            break
        ts = row[0] * MS
        if ts < since and plausible(ts, now):
            break
        tail.append(list(row))
    tail.reverse()
    return tail


def close_rows(
    closer: CandleCloser, batches: Iterable[Iterable[object]], now: int
) -> tuple[list[TradeBar], list[str]]:
    """Run rows through ``closer``; return the bars made final and the malformed rows' errors."""
    out: list[TradeBar] = []
    problems: list[str] = []
    for batch in batches:
        for row in batch:
            try:
                out.extend(closer.update(row, now))
            except FeedError as exc:
                problems.append(str(exc))
    return out, problems


def cached_trades(trades: object, symbol: str, read: RecentKeys) -> list[Any]:
    """Return ccxt's cached trades of ``symbol`` newer than the last one already ``read``."""
    stored = trades.get(symbol) if isinstance(trades, dict) else None
    if not stored:
        return []
    tail = []
    for trade in reversed(stored):
        if not isinstance(trade, Mapping) or trade_key(trade) in read:
            break
        tail.append(trade)
    tail.reverse()
    return tail


def new_ticks(
    symbol: str, batches: Iterable[Iterable[Any]], read: RecentKeys, *, exchange: str = ""
) -> tuple[list[Tick], list[str]]:
    """Return ticks of the trades not read before (in order), and the malformed ones' errors.

    A trade read again (ccxt returns its cache's trades more than once) is not a tick again:
    ``read`` is the read position, not a judgement on the data.
    """
    out: list[Tick] = []
    problems: list[str] = []
    for batch in batches:
        for trade in batch:
            try:
                tick = trade_to_tick(symbol, trade, exchange=exchange)
                key = trade_key(trade)
            except (FeedError, AttributeError, TypeError) as exc:
                problems.append(str(exc))
                continue
            if read.add(key):
                out.append(tick)
    return out, problems


def page_bars(
    symbol: str,
    rows: Iterable[Any],
    res: Resolution,
    start: int,
    end: int,
    bars: dict[int, TradeBar],
) -> tuple[int | None, list[str]]:
    """Add a history page's bars in ``[start, end)`` to ``bars`` (first one per open time).

    Returns the page's newest open time (ms; None for an empty page) and the malformed
    rows' errors.
    """
    newest: int | None = None
    problems: list[str] = []
    for row in rows:
        try:
            ts, (o, h, low, c, v) = parse_ohlcv_row(row)
        except FeedError as exc:
            problems.append(str(exc))
            continue
        newest = ts // MS if newest is None else max(newest, ts // MS)
        if start <= ts < end and ts not in bars:
            bars[ts] = TradeBar(symbol, ts, o, h, low, c, v, res, closed=True)
    return newest, problems
