"""Row parsers for LEAN CSVs: a fast loop per row kind plus a careful path for odd rows.

The fast loops split on commas and build the model directly. Anything they cannot read
(a blank line, fractional milliseconds, a bad number) falls to :func:`_recover`, which
either parses the row the slow way or raises a :class:`DataFormatError` naming the line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from lean_data.errors import DataFormatError
from lean_data.loaders._clock import LocalClock, days_from_civil
from lean_data.loaders._common import row_error
from lean_data.models import (
    NS_PER_DAY,
    NS_PER_HOUR,
    NS_PER_MINUTE,
    QuoteBar,
    Resolution,
    Tick,
    TickType,
    TradeBar,
)

__all__ = [
    "DateTimeStamper",
    "RowContext",
    "crypto_quote_ticks",
    "crypto_trade_ticks",
    "equity_quote_ticks",
    "equity_trade_ticks",
    "quote_bars",
    "trade_bars",
]

_TRADE = TickType.TRADE
_QUOTE = TickType.QUOTE
_BAR_NAMES = ("time", "open", "high", "low", "close", "volume")
_QUOTE_NAMES = (
    *("time", "bid_open", "bid_high", "bid_low", "bid_close", "bid_size"),
    *("ask_open", "ask_high", "ask_low", "ask_close", "ask_size"),
)
_EQ_TRADE_NAMES = ("time", "price", "size", "_exchange", "_condition", "suspicious")
_EQ_QUOTE_NAMES = (
    *("time", "bid_price", "bid_size", "ask_price", "ask_size"),
    *("_exchange", "_condition", "suspicious"),
)
_CRYPTO_TRADE_NAMES = ("time", "price", "size")
_CRYPTO_QUOTE_NAMES = ("time", "bid_price", "bid_size", "ask_price", "ask_size")
_EXTRA_FIELDS_OK = (_CRYPTO_TRADE_NAMES, _CRYPTO_QUOTE_NAMES)


@dataclass(slots=True)
class RowContext:
    """What every row of one file shares.

    Attributes:
        symbol: symbol of every item.
        resolution: bar period.
        source: the file, for messages.
        entry: the CSV's name inside the zip, for messages.
        scale: divisor of prices (10 000 for equity deci-cents, 1 otherwise).
        base: UTC ns of the file date's midnight (ms-of-day files).
    """

    symbol: str
    resolution: Resolution
    source: str
    entry: str
    scale: float
    base: int


class DateTimeStamper:
    """Turn ``YYYYMMDD HH:MM`` wall-clock text into UTC ns, caching each date."""

    __slots__ = ("_clock", "_days")

    def __init__(self, clock: LocalClock) -> None:
        self._clock = clock
        self._days: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        key = text[:8]
        day = self._days.get(key)
        if day is None:
            if len(key) != 8 or not key.isdigit():
                raise ValueError(f"expected YYYYMMDD HH:MM, got {text!r}")
            day = days_from_civil(int(key[:4]), int(key[4:6]), int(key[6:]))
            self._days[key] = day
        if len(text) != 14 or text[8] != " " or text[11] != ":":
            raise ValueError(f"expected YYYYMMDD HH:MM, got {text!r}")
        naive = day * NS_PER_DAY + int(text[9:11]) * NS_PER_HOUR + int(text[12:]) * NS_PER_MINUTE
        return self._clock.to_utc(naive)


T = TypeVar("T")
Stamper = DateTimeStamper | None
_FLAGS = {"0": False, "1": True}


def _ms_to_ns(text: str) -> int:
    """Return ns for milliseconds text, which may carry a fraction (``14400009.367``)."""
    whole, dot, frac = text.strip().partition(".")
    if dot and not frac.isdigit():
        raise ValueError(f"bad milliseconds {text!r}")
    return int(whole) * 1_000_000 + (int(frac[:6].ljust(6, "0")) if dot else 0)


def _stream(
    lines: Iterable[str],
    context: RowContext,
    stamp: Stamper,
    names: Sequence[str],
    build: Callable[[list[str], int, RowContext], T],
) -> Iterator[T]:
    """Yield ``build(fields, ts, context)`` per line; odd lines go to :func:`_recover`."""
    base = context.base
    numbered = enumerate(lines, 1)
    line_no, line = 0, ""
    while True:
        try:
            if stamp is None:
                for line_no, line in numbered:  # noqa: B007 - read by the except clause
                    fields = line.split(",")
                    yield build(fields, base + int(fields[0]) * 1_000_000, context)
            else:
                for line_no, line in numbered:  # noqa: B007 - read by the except clause
                    fields = line.split(",")
                    yield build(fields, stamp(fields[0]), context)
            break
        except (ValueError, IndexError, KeyError):
            item = _recover(line, line_no, context, stamp, names, build)
            if item is not None:
                yield item
    if line_no == 0:
        raise DataFormatError(f"{context.entry} is empty", source=context.source, line=1)


def _recover(
    line: str,
    line_no: int,
    context: RowContext,
    stamp: Stamper,
    names: Sequence[str],
    build: Callable[[list[str], int, RowContext], T],
) -> T | None:
    """Parse a row the fast loop rejected; None for a blank line.

    Raises:
        DataFormatError: the row is malformed (names the line and the bad field).
    """
    text = line.strip()
    if not text:
        return None
    fields = text.split(",")
    try:
        ts = stamp(fields[0]) if stamp else context.base + _ms_to_ns(fields[0])
        return build(fields, ts, context)
    except (ValueError, IndexError, KeyError):
        pass
    if names in _EXTRA_FIELDS_OK:  # trailing extra fields are allowed: judge the known ones
        fields = fields[: len(names)]
    raise row_error(context.source, line_no, fields, names, where=context.entry)


def _trade_bar(fields: list[str], ts: int, context: RowContext) -> TradeBar:
    _, open_, high, low, close, volume = fields
    scale = context.scale
    return TradeBar(
        context.symbol,
        ts,
        float(open_) / scale,
        float(high) / scale,
        float(low) / scale,
        float(close) / scale,
        float(volume),
        context.resolution,
    )


def _quote_bar(fields: list[str], ts: int, context: RowContext) -> QuoteBar:
    _, b_open, b_high, b_low, b_close, b_size, a_open, a_high, a_low, a_close, a_size = fields
    scale = context.scale
    return QuoteBar(
        context.symbol,
        ts,
        float(b_open) / scale,
        float(b_high) / scale,
        float(b_low) / scale,
        float(b_close) / scale,
        float(b_size),
        float(a_open) / scale,
        float(a_high) / scale,
        float(a_low) / scale,
        float(a_close) / scale,
        float(a_size),
        context.resolution,
    )


def _equity_trade_tick(fields: list[str], ts: int, context: RowContext) -> Tick:
    _, price, size, exchange, condition, suspicious = fields
    return Tick(
        context.symbol,
        ts,
        float(price) / context.scale,
        float(size),
        _TRADE,
        0,
        0.0,
        0.0,
        0.0,
        0.0,
        exchange,
        condition,
        _FLAGS[suspicious.rstrip()],
    )


def _quote_tick(
    context: RowContext,
    ts: int,
    bid: float,
    bid_size: float,
    ask: float,
    ask_size: float,
    exchange: str = "",
    condition: str = "",
    suspicious: bool = False,
) -> Tick:
    price = (bid + ask) / 2.0 if bid > 0.0 and ask > 0.0 else max(bid, ask)
    return Tick(
        context.symbol, ts, price, 0.0, _QUOTE, 0, bid, bid_size, ask, ask_size, exchange,
        condition, suspicious,
    )  # fmt: skip


def _equity_quote_tick(fields: list[str], ts: int, context: RowContext) -> Tick:
    _, bid, bid_size, ask, ask_size, exchange, condition, suspicious = fields
    scale = context.scale
    return _quote_tick(
        context,
        ts,
        float(bid) / scale,
        float(bid_size),
        float(ask) / scale,
        float(ask_size),
        exchange,
        condition,
        _FLAGS[suspicious.rstrip()],
    )


def _crypto_trade_tick(fields: list[str], ts: int, context: RowContext) -> Tick:
    return Tick(context.symbol, ts, float(fields[1]), float(fields[2]))


def _crypto_quote_tick(fields: list[str], ts: int, context: RowContext) -> Tick:
    bid, bid_size, ask, ask_size = (float(value) for value in fields[1:5])
    return _quote_tick(context, ts, bid, bid_size, ask, ask_size)


def trade_bars(lines: Iterable[str], context: RowContext, stamp: Stamper) -> Iterator[TradeBar]:
    """Stream ``time,open,high,low,close,volume`` rows as TradeBars."""
    return _stream(lines, context, stamp, _BAR_NAMES, _trade_bar)


def quote_bars(lines: Iterable[str], context: RowContext, stamp: Stamper) -> Iterator[QuoteBar]:
    """Stream ``time,bid OHLC,bid size,ask OHLC,ask size`` rows as QuoteBars."""
    return _stream(lines, context, stamp, _QUOTE_NAMES, _quote_bar)


def equity_trade_ticks(lines: Iterable[str], context: RowContext, stamp: Stamper) -> Iterator[Tick]:
    """Stream ``ms,price,size,exchange,condition,suspicious`` rows as trade Ticks."""
    return _stream(lines, context, stamp, _EQ_TRADE_NAMES, _equity_trade_tick)


def equity_quote_ticks(lines: Iterable[str], context: RowContext, stamp: Stamper) -> Iterator[Tick]:
    """Stream ``ms,bid,bid size,ask,ask size,exchange,condition,suspicious`` as quote Ticks."""
    return _stream(lines, context, stamp, _EQ_QUOTE_NAMES, _equity_quote_tick)


def crypto_trade_ticks(lines: Iterable[str], context: RowContext, stamp: Stamper) -> Iterator[Tick]:
    """Stream ``ms,price,size[,...]`` rows as trade Ticks."""
    return _stream(lines, context, stamp, _CRYPTO_TRADE_NAMES, _crypto_trade_tick)


def crypto_quote_ticks(lines: Iterable[str], context: RowContext, stamp: Stamper) -> Iterator[Tick]:
    """Stream ``ms,bid,bid size,ask,ask size[,...]`` rows as quote Ticks."""
    return _stream(lines, context, stamp, _CRYPTO_QUOTE_NAMES, _crypto_quote_tick)
