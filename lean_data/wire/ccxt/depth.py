"""ccxt's order books, funding rates and open interest to lean_data records.

Pure: no I/O, no clock reads (the receive time is passed in), ccxt never imported. Every
malformed input raises :class:`~lean_data.errors.FeedProtocolError` naming the field's
path in ccxt's structure and what was found (``orderbook.bids[3]: expected [price,
amount] numbers, found ['x', 1.0]``).

- :func:`orderbook_to_snapshot`: the top ``depth`` levels of the order book ccxt.pro
  maintains (``watch_order_book``: a dict, or ccxt's ``OrderBook``, with ``bids``/``asks``
  lists of ``[price, amount, ...]`` best first, ``timestamp`` ms, ``nonce``) as an
  :class:`~lean_data.book.OrderBookSnapshot`.
- :func:`funding_rate_of`: a ``fetch_funding_rate`` structure as a
  :class:`~lean_data.derivatives.FundingRate` for the funding it announces.
- :func:`funding_history_of`: ``fetch_funding_rate_history`` rows as settled rates.
- :func:`open_interest_of`: a ``fetch_open_interest`` structure as an
  :class:`~lean_data.derivatives.OpenInterest`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeGuard

from lean_data.book import Level, OrderBookSnapshot
from lean_data.derivatives import FundingRate, OpenInterest
from lean_data.errors import FeedProtocolError
from lean_data.wire.ccxt.rows import resolution_of

__all__ = [
    "funding_history_of",
    "funding_rate_of",
    "open_interest_of",
    "orderbook_to_snapshot",
]

_MS = 1_000_000  # ns per ms
_NAN = math.nan


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _levels(book: Mapping[str, Any], side: str, depth: int) -> tuple[Level, ...]:
    rows = book.get(side)
    if not isinstance(rows, Sequence) or isinstance(rows, str | bytes):
        found = type(rows).__name__
        raise FeedProtocolError(f"orderbook.{side}: expected a list of levels, found {found}")
    levels: list[Level] = []
    for index, row in enumerate(rows[:depth]):
        if not (
            isinstance(row, Sequence) and not isinstance(row, str | bytes) and len(row) >= 2
            and _is_number(row[0]) and _is_number(row[1])
        ):  # fmt: skip
            raise FeedProtocolError(
                f"orderbook.{side}[{index}]: expected [price, amount] numbers, found {row!r}"
            )
        price, amount = float(row[0]), float(row[1])
        if not (math.isfinite(price) and price > 0 and math.isfinite(amount)):
            raise FeedProtocolError(
                f"orderbook.{side}[{index}]: expected a finite price > 0 and a finite "
                f"amount, found {row!r}"
            )
        levels.append((price, amount))
    return tuple(levels)


def _time_ns(value: object, where: str) -> int | None:
    """ccxt's ms timestamp (None when the venue gives none) in ns."""
    if value is None:
        return None
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise FeedProtocolError(f"{where}: expected ms since the epoch or None, found {value!r}")
    return int(value) * _MS


def orderbook_to_snapshot(
    symbol: str, orderbook: object, depth: int, ts_recv: int
) -> OrderBookSnapshot:
    """Return the top ``depth`` levels a side of ccxt's order book as a snapshot.

    ``sequence`` is ccxt's ``nonce`` (Binance ``lastUpdateId``/``u``; -1 when the venue
    numbers nothing); ``ts_event`` its ``timestamp``, else ``ts_recv``. Levels keep ccxt's
    order (best first); a third item (a count, an order id) is ignored.

    Raises:
        FeedProtocolError: ``orderbook`` is not a mapping, names another symbol, or a
            level, the timestamp or the nonce is malformed.
    """
    if not isinstance(orderbook, Mapping):
        found = type(orderbook).__name__
        raise FeedProtocolError(f"orderbook: expected a ccxt order book (dict), found {found}")
    named = orderbook.get("symbol")
    if named is not None and named != symbol:
        raise FeedProtocolError(f"orderbook.symbol: expected {symbol!r}, found {named!r}")
    bids, asks = _levels(orderbook, "bids", depth), _levels(orderbook, "asks", depth)
    nonce = orderbook.get("nonce")
    if nonce is None:
        sequence = -1
    elif type(nonce) is int and nonce >= 0:
        sequence = nonce
    else:
        raise FeedProtocolError(f"orderbook.nonce: expected an int >= 0 or None, found {nonce!r}")
    ts_event = _time_ns(orderbook.get("timestamp"), "orderbook.timestamp")
    try:
        return OrderBookSnapshot(symbol, bids, asks, sequence, ts_event or ts_recv, ts_recv)
    except ValueError as exc:
        raise FeedProtocolError(f"orderbook of {symbol}: {exc}") from exc


def _rate(structure: Mapping[str, Any], key: str, where: str, *, optional: bool) -> float:
    value = structure.get(key)
    if value is None and optional:
        return _NAN
    if not _is_number(value) or not math.isfinite(value):
        raise FeedProtocolError(f"{where}.{key}: expected a finite number, found {value!r}")
    return float(value)


def _interval_ns(value: object) -> int:
    """ccxt's funding ``interval`` (``"8h"``) in ns; 0 when absent or not a period."""
    if not isinstance(value, str):
        return 0
    try:
        return resolution_of(value).nanos
    except ValueError:
        return 0


def funding_rate_of(symbol: str, structure: object, ts_recv: int) -> FundingRate:
    """Return the funding a ``fetch_funding_rate`` structure announces.

    ``ts_event`` is the funding time the rate is for (``fundingTimestamp``; the reading's
    ``timestamp``, else ``ts_recv``, when the venue gives none), ``rate`` the current
    ``fundingRate``, ``next_funding_time`` ``nextFundingTimestamp`` (0 when none),
    ``predicted_rate`` ``nextFundingRate`` (NaN when none), ``funding_interval`` from
    ``interval`` (``"8h"``; 0 when none). Polls within one funding period give the same
    ``ts_event``: the last one stored wins (storage replaces by key).

    Raises:
        FeedProtocolError: a field is missing or malformed.
    """
    where = "funding_rate"
    if not isinstance(structure, Mapping):
        found = type(structure).__name__
        raise FeedProtocolError(f"{where}: expected a ccxt funding rate (dict), found {found}")
    rate = _rate(structure, "fundingRate", where, optional=False)
    predicted = _rate(structure, "nextFundingRate", where, optional=True)
    funding = _time_ns(structure.get("fundingTimestamp"), f"{where}.fundingTimestamp")
    taken = _time_ns(structure.get("timestamp"), f"{where}.timestamp")
    upcoming = _time_ns(structure.get("nextFundingTimestamp"), f"{where}.nextFundingTimestamp")
    try:
        return FundingRate(
            symbol,
            funding or taken or ts_recv,
            rate,
            ts_recv,
            next_funding_time=upcoming or 0,
            funding_interval=_interval_ns(structure.get("interval")),
            predicted_rate=predicted,
        )
    except (TypeError, ValueError) as exc:
        raise FeedProtocolError(f"{where} of {symbol}: {exc}") from exc


def funding_history_of(symbol: str, rows: Iterable[object], ts_recv: int) -> list[FundingRate]:
    """Return ``fetch_funding_rate_history`` rows (``timestamp``, ``fundingRate``) as settled
    rates, in the order given.

    Raises:
        FeedProtocolError: a row is not a dict or its time or rate is missing or malformed.
    """
    rates: list[FundingRate] = []
    for index, row in enumerate(rows):
        where = f"funding_rate_history[{index}]"
        if not isinstance(row, Mapping):
            raise FeedProtocolError(f"{where}: expected a dict, found {type(row).__name__}")
        ts_event = _time_ns(row.get("timestamp"), f"{where}.timestamp")
        if ts_event is None:
            raise FeedProtocolError(f"{where}.timestamp: expected ms since the epoch, found None")
        rate = _rate(row, "fundingRate", where, optional=False)
        rates.append(FundingRate(symbol, ts_event, rate, ts_recv))
    return rates


def open_interest_of(symbol: str, structure: object, ts_recv: int) -> OpenInterest:
    """Return a ``fetch_open_interest`` structure as a reading.

    ``contracts`` is ``openInterestAmount``, ``notional`` ``openInterestValue`` (NaN when
    the venue gives none; one of them is needed); ``ts_event`` the ``timestamp``, else
    ``ts_recv``.

    Raises:
        FeedProtocolError: both figures are missing, or a field is malformed.
    """
    where = "open_interest"
    if not isinstance(structure, Mapping):
        found = type(structure).__name__
        raise FeedProtocolError(f"{where}: expected a ccxt open interest (dict), found {found}")
    amount = _rate(structure, "openInterestAmount", where, optional=True)
    value = _rate(structure, "openInterestValue", where, optional=True)
    ts_event = _time_ns(structure.get("timestamp"), f"{where}.timestamp")
    try:
        return OpenInterest(symbol, ts_event or ts_recv, amount, value, ts_recv)
    except (TypeError, ValueError) as exc:
        raise FeedProtocolError(f"{where} of {symbol}: {exc}") from exc
