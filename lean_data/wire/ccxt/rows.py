"""ccxt's unified structures to models: OHLCV rows, trades, timeframes, markets.

Pure: no I/O, no clock reads, ccxt never imported.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

from lean_data.errors import FeedProtocolError
from lean_data.models import (
    NS_PER_DAY,
    NS_PER_SECOND,
    AssetClass,
    Resolution,
    Tick,
    TickType,
    TradeBar,
)

__all__ = [
    "Values",
    "market_asset_class",
    "ohlcv_to_bars",
    "parse_ohlcv_row",
    "resolution_of",
    "timeframe_of",
    "trade_key",
    "trade_to_tick",
]

MS = 1_000_000  # ns per ms
_NS_PER_WEEK = 7 * NS_PER_DAY

Values = tuple[float, float, float, float, float]
"""open, high, low, close, volume of one candle."""

_CRYPTO_MARKET_TYPES = frozenset({"spot", "margin", "swap", "future", "option", "delivery"})


def market_asset_class(market: Mapping[str, Any]) -> AssetClass | None:
    """Return the asset class of a ccxt market structure, or None when it does not say.

    A market ``type`` of spot, margin, swap, future or option is crypto: an exchange ccxt
    speaks to trades every listed market around the clock, fiat pairs included (Kraken's
    EUR/USD), so its sessions are a crypto venue's. A market of another type, or of none,
    is judged by its ``base``/``quote`` pair with :func:`~lean_data.symbols.classify_symbol`.
    """
    from lean_data.symbols import classify_symbol

    if market.get("type") in _CRYPTO_MARKET_TYPES:
        return AssetClass.CRYPTO
    base, quote = market.get("base"), market.get("quote")
    if isinstance(base, str) and isinstance(quote, str) and base and quote:
        return classify_symbol(f"{base}/{quote}")
    return None


# --- periods -----------------------------------------------------------------------------


def timeframe_of(resolution: Resolution | str) -> str:
    """Return the ccxt timeframe of a bar period (``Resolution.MINUTE`` -> ``"1m"``).

    Raises:
        ValueError: ``resolution`` is TICK or not a whole number of seconds.
    """
    res = Resolution.parse(resolution)
    if res.is_tick or res.nanos % NS_PER_SECOND:
        raise ValueError(f"expected a bar period of whole seconds, found {res.name!r}")
    if res.nanos % _NS_PER_WEEK == 0:
        return f"{res.nanos // _NS_PER_WEEK}w"
    return res.name


def resolution_of(timeframe: str) -> Resolution:
    """Return the bar period of a ccxt timeframe (``"1m"``, ``"4h"``, ``"1w"``).

    Raises:
        ValueError: the timeframe has no fixed length (``"1M"``, a calendar month) or is
            not a timeframe.
    """
    text = timeframe.strip()
    if text.endswith("w") and text[:-1].isdigit() and int(text[:-1]) > 0:
        return Resolution(int(text[:-1]) * _NS_PER_WEEK)
    if text.endswith(("M", "y")):
        raise ValueError(f"expected a timeframe of fixed length, found {timeframe!r}")
    return Resolution.parse(text)


# --- rows --------------------------------------------------------------------------------


def _number(value: object, what: str, *, optional: bool = False) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if value is None and optional:
        return math.nan
    raise FeedProtocolError(f"{what}: expected a number, found {type(value).__name__} {value!r}")


def _ms(value: object, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise FeedProtocolError(
        f"{what}: expected a timestamp in ms, found {type(value).__name__} {value!r}"
    )


def parse_ohlcv_row(row: object) -> tuple[int, Values]:
    """Return ``(open time ns, (open, high, low, close, volume))`` of a ccxt OHLCV row.

    A missing volume (``None``) becomes ``nan``.

    Raises:
        FeedProtocolError: the row is not ``[ts_ms, o, h, l, c, v, ...]`` with numbers.
    """
    if not isinstance(row, Sequence) or isinstance(row, str) or len(row) < 6:
        raise FeedProtocolError(f"expected an OHLCV row [ts, o, h, l, c, v], found {row!r:.120}")
    ts = _ms(row[0], "ohlcv timestamp") * MS
    o, h, low, c = (_number(row[i], f"ohlcv[{i}]") for i in range(1, 5))
    return ts, (o, h, low, c, _number(row[5], "ohlcv[5]", optional=True))


def make_bar(
    symbol: str,
    ts: int,
    values: Values,
    resolution: Resolution,
    *,
    closed: bool = True,
    revision: int = 0,
    ts_recv: int = 0,
) -> TradeBar:
    o, h, low, c, v = values
    return TradeBar(
        symbol, ts, o, h, low, c, v, resolution, ts_recv=ts_recv, closed=closed, revision=revision
    )


def ohlcv_to_bars(
    symbol: str,
    rows: Iterable[object],
    resolution: Resolution | str,
    *,
    closed: bool = True,
    ts_recv: int = 0,
) -> list[TradeBar]:
    """Return one :class:`TradeBar` per ccxt OHLCV row, in the rows' order.

    Args:
        symbol: the unified symbol (``"BTC/USDT"``).
        rows: ``[ts_ms, o, h, l, c, v]`` rows as ``fetch_ohlcv`` returns them.
        resolution: the rows' period.
        closed: the bars' ``closed`` flag (True for history).
        ts_recv: receive time to stamp, ns (0: unknown).

    Raises:
        FeedProtocolError: a row is malformed (the message names its index).
    """
    res = Resolution.parse(resolution)
    bars = []
    for index, row in enumerate(rows):
        try:
            ts, values = parse_ohlcv_row(row)
        except FeedProtocolError as exc:
            raise FeedProtocolError(f"row {index}: {exc}") from exc
        bars.append(make_bar(symbol, ts, values, res, closed=closed, ts_recv=ts_recv))
    return bars


def trade_key(trade: Mapping[str, Any]) -> Hashable:
    """Return what identifies a ccxt trade: its ``id``, else (timestamp, price, amount, side)."""
    trade_id = trade.get("id")
    if trade_id is not None and trade_id != "":
        return str(trade_id)
    return (trade.get("timestamp"), trade.get("price"), trade.get("amount"), trade.get("side"))


def trade_to_tick(
    symbol: str, trade: Mapping[str, Any], *, exchange: str = "", ts_recv: int = 0
) -> Tick:
    """Return the TRADE tick of a ccxt unified trade structure.

    ``ts_event`` is ``timestamp`` (ms); ``size`` is ``amount`` (``nan`` when missing);
    ``trade_id`` is ``id``; ``condition`` is ``"buyer_maker"`` when the taker sold
    (``side == "sell"``), as :mod:`lean_data.wire.binance` marks Binance's ``m`` flag.

    Raises:
        FeedProtocolError: ``timestamp`` or ``price`` is missing or not a number.
    """
    if not isinstance(trade, Mapping):
        raise FeedProtocolError(f"expected a trade structure, found {type(trade).__name__}")
    trade_id = trade.get("id")
    return Tick(
        symbol=symbol,
        ts_event=_ms(trade.get("timestamp"), "trade timestamp") * MS,
        price=_number(trade.get("price"), "trade price"),
        size=_number(trade.get("amount"), "trade amount", optional=True),
        tick_type=TickType.TRADE,
        ts_recv=ts_recv,
        exchange=exchange,
        condition="buyer_maker" if trade.get("side") == "sell" else "",
        trade_id="" if trade_id is None else str(trade_id),
    )
