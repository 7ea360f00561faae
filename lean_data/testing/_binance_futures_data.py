"""Binance USDT-M derivatives frames for the loopback server, and records derived from real data.

Pure: no I/O, no clock. The builders turn records into what Binance sends (the
``markPriceUpdate`` and ``forceOrder`` events, the ``/fapi/v1/openInterest`` and
``/fapi/v1/fundingRate`` answers), with decimal strings that give the record's float back.

Binance publishes no history of its mark-price, liquidation and open-interest streams, so
the ``derive_*`` functions build those records from real recorded candles and funding
rates (freqtrade's XRP/USDT:USDT files, for instance); the rules are stated on each one
so a test can say what is real and what is derived.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from typing import Any

from lean_data.derivatives import FundingRate, Liquidation, MarkPrice, OpenInterest
from lean_data.models import TradeBar

__all__ = [
    "decimal_text",
    "derive_liquidations",
    "derive_mark_prices",
    "derive_open_interest",
    "force_order_event",
    "funding_rate_row",
    "mark_price_event",
    "open_interest_answer",
    "premium_index_answer",
    "venue_symbol",
]

_MS = 1_000_000
_SECOND_MS = 1000
_HOUR_MS = 3_600_000


def venue_symbol(symbol: str) -> str:
    """Return Binance's symbol for a canonical one (``"XRP/USDT:USDT"`` -> ``"XRPUSDT"``)."""
    return symbol.partition(":")[0].replace("/", "").upper()


def decimal_text(value: float) -> str:
    """Return ``value`` as Binance writes it (8 decimals) when that is exact, else ``repr``."""
    text = f"{value:.8f}"
    return text if float(text) == value else repr(value)


# --- frames --------------------------------------------------------------------------------


def mark_price_event(record: MarkPrice, *, settle_price: float | None = None) -> dict[str, Any]:
    """Return the ``<pair>@markPrice@1s`` event of a mark price.

    ``P`` (estimated settle price) is ``settle_price``, else the mark; a NaN funding rate
    is sent as ``""`` (Binance's value for a delivery contract).
    """
    rate = record.funding_rate
    return {
        "e": "markPriceUpdate",
        "E": record.ts_event // _MS,
        "s": venue_symbol(record.symbol),
        "p": decimal_text(record.mark_price),
        "i": decimal_text(record.index_price),
        "P": decimal_text(record.mark_price if settle_price is None else settle_price),
        "r": "" if rate != rate else decimal_text(rate),
        "T": record.next_funding_time // _MS,
    }


def force_order_event(record: Liquidation) -> dict[str, Any]:
    """Return the ``<pair>@forceOrder`` event of a liquidation (a LIMIT IOC order)."""
    filled = record.filled_quantity
    average = record.average_price
    return {
        "e": "forceOrder",
        "E": record.ts_event // _MS,
        "o": {
            "s": venue_symbol(record.symbol),
            "S": record.side.upper(),
            "o": "LIMIT",
            "f": "IOC",
            "q": decimal_text(record.quantity),
            "p": decimal_text(record.price),
            "ap": "0" if average != average else decimal_text(average),
            "X": record.order_status or "FILLED",
            "l": "0" if filled != filled else decimal_text(filled),
            "z": "0" if filled != filled else decimal_text(filled),
            "T": record.ts_event // _MS,
        },
    }


def open_interest_answer(record: OpenInterest) -> dict[str, Any]:
    """Return the ``GET /fapi/v1/openInterest`` answer of a record (contracts only)."""
    return {
        "openInterest": decimal_text(record.contracts),
        "symbol": venue_symbol(record.symbol),
        "time": record.ts_event // _MS,
    }


def premium_index_answer(record: MarkPrice) -> dict[str, Any]:
    """Return the ``GET /fapi/v1/premiumIndex`` answer of a mark price (documented fields;
    the estimated settle price is the mark, the interest rate Binance's usual 0.01 %)."""
    return {
        "symbol": venue_symbol(record.symbol),
        "markPrice": decimal_text(record.mark_price),
        "indexPrice": decimal_text(record.index_price),
        "estimatedSettlePrice": decimal_text(record.mark_price),
        "lastFundingRate": decimal_text(record.funding_rate),
        "interestRate": "0.00010000",
        "nextFundingTime": record.next_funding_time // _MS,
        "time": record.ts_event // _MS,
    }


def funding_rate_row(record: FundingRate) -> dict[str, Any]:
    """Return one element of a ``GET /fapi/v1/fundingRate`` answer."""
    return {
        "symbol": venue_symbol(record.symbol),
        "fundingTime": record.ts_event // _MS,
        "fundingRate": decimal_text(record.rate),
        "markPrice": "",
    }


# --- records derived from real data ----------------------------------------------------------


def derive_mark_prices(
    marks: Sequence[TradeBar], funding: Sequence[FundingRate], index: Iterable[TradeBar]
) -> list[MarkPrice]:
    """Return one mark-price update per real mark candle that a real funding time follows.

    Per candle: the event time is the candle's last second (open + period - 1 s), the mark
    price its close; the index price is the close of the real traded candle (``index``)
    opening at the same time; the funding rate and next funding time are those of the
    first real funding after the event, when it falls within one funding interval.
    Candles without both are skipped.
    """
    closes = {bar.ts_event: bar.close for bar in index}
    times = [rate.ts_event for rate in funding]
    found: list[MarkPrice] = []
    for bar in marks:
        event_ms = (bar.ts_event + bar.resolution.nanos) // _MS - _SECOND_MS
        at = bisect_right(times, event_ms * _MS)
        if at == len(funding) or bar.ts_event not in closes:
            continue
        upcoming = funding[at]
        interval = upcoming.funding_interval or 8 * _HOUR_MS * _MS
        if upcoming.ts_event - event_ms * _MS > interval:
            continue
        found.append(
            MarkPrice(
                bar.symbol,
                event_ms * _MS,
                bar.close,
                closes[bar.ts_event],
                funding_rate=upcoming.rate,
                next_funding_time=upcoming.ts_event // _MS * _MS,
            )
        )
    return found


def derive_liquidations(bars: Iterable[TradeBar], *, move: float = 0.01) -> list[Liquidation]:
    """Return the liquidations a real candle's wicks suggest.

    A candle whose low is more than ``move`` (a fraction) below its open gives a SELL
    liquidation (longs closed) at the low, 30 minutes into the candle; one whose high is
    more than ``move`` above the open gives a BUY at the high, 45 minutes in. The quantity
    is the candle's real volume times the move, divided by 10, to 0.1 (at least 0.1);
    each is FILLED in full at its price.
    """
    found: list[Liquidation] = []
    for bar in bars:
        open_ms = bar.ts_event // _MS
        for side, price, offset in (("sell", bar.low, 30), ("buy", bar.high, 45)):
            size = abs(price - bar.open) / bar.open
            if size <= move:
                continue
            quantity = max(0.1, round(bar.volume * size / 10, 1))
            ts = (open_ms + offset * 60 * _SECOND_MS) * _MS
            found.append(
                Liquidation(bar.symbol, ts, side, price, quantity, 0, "FILLED", price, quantity)
            )
    return sorted(found, key=lambda item: item.ts_event)


def derive_open_interest(bars: Sequence[TradeBar], *, window: int = 24) -> list[OpenInterest]:
    """Return one open-interest reading per real candle once ``window`` candles are in.

    The reading is taken at the candle's close (open + period) and counts the real volume
    of the last ``window`` candles divided by 10, to 0.1 contracts: a proxy that moves
    with trading as open interest does, not the venue's figure.
    """
    found: list[OpenInterest] = []
    for end in range(window, len(bars) + 1):
        last = bars[end - 1]
        contracts = round(sum(bar.volume for bar in bars[end - window : end]) / 10, 1)
        ts = (last.ts_event + last.resolution.nanos) // _MS * _MS
        found.append(OpenInterest(last.symbol, ts, contracts=contracts))
    return found
