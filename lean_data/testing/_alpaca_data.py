"""Alpaca stream messages built from lean_data models and from real LEAN files.

Pure except for reading the LEAN zips. A message is a dict as Alpaca sends it, with ``t``
as int ns since the epoch; the loopback server turns ``t`` into a msgpack Timestamp or an
RFC-3339 string per connection.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from lean_data.loaders import load_file
from lean_data.models import (
    NS_PER_MINUTE,
    NS_PER_SECOND,
    QuoteBar,
    Resolution,
    Tick,
    TickType,
    TradeBar,
    datetime_to_ns,
)

__all__ = ["TAPES", "alpaca_message", "lean_timeline"]

TAPES = {"SPY": "B", "AAPL": "C"}
"""The SIP tape of the symbols in lean_data's LEAN fixtures (SPY is NYSE Arca-listed: tape B;
AAPL Nasdaq-listed: tape C)."""

_NEW_YORK = ZoneInfo("America/New_York")
_HALF_MINUTE = 30 * NS_PER_SECOND
# Order of messages sent at the same instant: prints, then quotes, bars, daily bars, updates.
_RANK = {"t": 0, "q": 1, "b": 2, "d": 3, "u": 4}
_Add = Callable[[int, dict[str, Any]], None]


def _size(value: float) -> int | float:
    """Alpaca sends whole sizes and volumes as integers."""
    return int(value) if value.is_integer() else value


def alpaca_message(
    item: TradeBar | QuoteBar | Tick,
    *,
    trade_count: int | None = None,
    vwap: float | None = None,
    trade_id: int | None = None,
    tape: str | None = None,
) -> dict[str, Any]:
    """Return the Alpaca stream message for a model object (``t`` as int ns).

    - A minute :class:`TradeBar` is a ``b`` bar, or a ``u`` (updated bar) when its
      ``revision`` is above 0; a daily one is a ``d`` bar. ``n`` and ``vw`` are
      ``trade_count`` and ``vwap`` (``null`` when not given: a bar does not carry them).
    - A TRADE :class:`Tick` is a ``t``: ``i`` is ``trade_id`` (else ``Tick.trade_id`` when
      it is an integer), ``x`` the exchange, ``c`` the condition split on ``","``, ``z``
      the tape. A crypto symbol (with ``/``) gets ``tks`` instead (``"S"`` when the
      condition is ``"buyer_maker"``, else ``"B"``) and no ``x``, ``c``, ``z``.
    - A QUOTE :class:`Tick` is a ``q``; ``exchange`` ``"<bx>/<ax>"`` gives ``bx``/``ax``.
    - A :class:`QuoteBar` is the ``q`` of its closing top of book (``bid_close``,
      ``bid_size``, ``ask_close``, ``ask_size``) stamped at the bar's close time.

    Raises:
        ValueError: a non-daily bar is not a minute bar (Alpaca streams no other).
    """
    if isinstance(item, TradeBar):
        return _bar_message(item, trade_count, vwap)
    if isinstance(item, Tick) and item.tick_type is TickType.TRADE:
        return _trade_message(item, trade_id, tape)
    crypto = "/" in item.symbol
    message: dict[str, Any] = {"T": "q", "S": item.symbol}
    if isinstance(item, QuoteBar):
        stamp = item.ts_event + item.resolution.nanos
        bid, bid_size, ask, ask_size = item.bid_close, item.bid_size, item.ask_close, item.ask_size
        bid_exchange = ask_exchange = conditions = ""
    else:
        stamp, bid, bid_size = item.ts_event, item.bid_price, item.bid_size
        ask, ask_size, conditions = item.ask_price, item.ask_size, item.condition
        bid_exchange, _, ask_exchange = item.exchange.partition("/")
    if bid_exchange and not crypto:
        message["bx"] = bid_exchange
    message.update(bp=bid, bs=_size(bid_size))
    if ask_exchange and not crypto:
        message["ax"] = ask_exchange
    message.update({"ap": ask, "as": _size(ask_size), "t": stamp})
    if conditions and not crypto:
        message["c"] = conditions.split(",")
    if tape is not None and not crypto:
        message["z"] = tape
    return message


def _bar_message(bar: TradeBar, trade_count: int | None, vwap: float | None) -> dict[str, Any]:
    if bar.resolution == Resolution.DAILY:
        kind = "d"
    elif bar.resolution == Resolution.MINUTE:
        kind = "u" if bar.revision > 0 else "b"
    else:
        raise ValueError(f"expected a minute or daily bar, got a {bar.resolution} bar")
    return {
        "T": kind, "S": bar.symbol, "o": bar.open, "h": bar.high, "l": bar.low,
        "c": bar.close, "v": _size(bar.volume), "t": bar.ts_event, "n": trade_count, "vw": vwap,
    }  # fmt: skip


def _trade_message(tick: Tick, trade_id: int | None, tape: str | None) -> dict[str, Any]:
    if trade_id is None and tick.trade_id.isdigit():
        trade_id = int(tick.trade_id)
    message: dict[str, Any] = {"T": "t", "S": tick.symbol}
    if trade_id is not None:
        message["i"] = trade_id
    if "/" in tick.symbol:
        message.update(p=tick.price, s=_size(tick.size), t=tick.ts_event)
        message["tks"] = "S" if tick.condition == "buyer_maker" else "B"
        return message
    if tick.exchange:
        message["x"] = tick.exchange
    message.update(p=tick.price, s=_size(tick.size))
    message["c"] = tick.condition.split(",") if tick.condition else []
    message["t"] = tick.ts_event
    if tape is not None:
        message["z"] = tape
    return message


# --- timelines from LEAN files ------------------------------------------------------------


def lean_timeline(
    root: str | Path,
    symbol: str,
    date: str,
    *,
    start: int | datetime | None = None,
    end: int | datetime | None = None,
    ticks: bool = True,
    quotes: bool = True,
    daily: bool = False,
    tape: str | None = None,
) -> list[dict[str, Any]]:
    """Return an Alpaca stock stream derived from one day of real LEAN equity files.

    Every message is *derived from* the LEAN files under ``root`` (the vendor is AlgoSeek
    via QuantConnect; Alpaca never sent these frames), in the order a live stream would
    send them (messages of the same instant: trades, quotes, bars, daily bars, updates):

    - ``t`` (``ticks=True`` and ``equity/usa/tick/<sym>/<date>_trade.zip`` exists): every
      print, at its time; ``i`` is the print's 1-based position in the day's file, ``x``
      the LEAN exchange code, ``c`` LEAN's sale-condition flags as one string, ``z`` the
      tape (``tape``, else :data:`TAPES`).
    - ``b`` at each minute's close: with a tick file, the bar a live aggregator builds from
      *every* print of the minute (``n`` the print count, ``vw`` the exact volume-weighted
      price); without one, the vendor's minute bar (``n``/``vw`` null).
    - ``u`` at the close plus 30 s (Alpaca sends updates after the half-minute): the
      vendor's final minute bar (``equity/usa/minute/<sym>/<date>_trade.zip``, ``n``/``vw``
      null) wherever its OHLCV differs from the ``b`` bar, i.e. where the vendor dropped
      prints a live aggregator took (SPY 2013-10-10 after hours: block prints at 165.59
      while SPY traded near 169; the opening auction). So the *last* bar sent for every
      minute equals the vendor's bar.
    - ``q`` (``quotes=True`` and ``..._quote.zip`` exists): each minute quote bar's closing
      top of book, stamped at the bar's close (see :func:`alpaca_message`).
    - ``d`` (``daily=True``) at each minute's close: the running daily bar of the vendor's
      minute bars so far that day, ``t`` at midnight New York.

    Args:
        root: a LEAN data folder (holding ``equity/usa/...``).
        symbol: the ticker (``"SPY"``).
        date: the day, ``YYYYMMDD``.
        start, end: keep prints, bars and quote bars whose time (bar open time) lies in
            ``[start, end)``; ns since the epoch or datetimes (naive: UTC).
        ticks, quotes, daily: include what is described above.
        tape: the ``z`` of trades and quotes.

    Raises:
        DataFormatError: a LEAN file is malformed.
        FileNotFoundError: the minute trade file does not exist.
    """
    base = Path(root) / "equity" / "usa"
    name = symbol.lower()
    tape = tape if tape is not None else TAPES.get(symbol.upper())
    low = _ns(start, -math.inf)
    high = _ns(end, math.inf)
    vendor = load_file(base / "minute" / name / f"{date}_trade.zip")
    bars = [bar for bar in vendor if isinstance(bar, TradeBar)]
    entries: list[tuple[int, int, int, dict[str, Any]]] = []

    def add(at: int, message: dict[str, Any]) -> None:
        entries.append((at, _RANK[message["T"]], len(entries), message))

    tick_path = base / "tick" / name / f"{date}_trade.zip"
    if ticks and tick_path.exists():
        prints = [item for item in load_file(tick_path) if isinstance(item, Tick)]
        for number, tick in enumerate(prints, 1):
            if low <= tick.ts_event < high:
                add(tick.ts_event, alpaca_message(tick, trade_id=number, tape=tape))
        _bars_from_prints(prints, bars, low, high, add)
    else:
        for bar in bars:
            if low <= bar.ts_event < high:
                add(bar.ts_event + NS_PER_MINUTE, alpaca_message(bar))
    quote_path = base / "minute" / name / f"{date}_quote.zip"
    if quotes and quote_path.exists():
        for quote in load_file(quote_path):
            if isinstance(quote, QuoteBar) and low <= quote.ts_event < high:
                add(quote.ts_event + quote.resolution.nanos, alpaca_message(quote, tape=tape))
    if daily:
        for at, running in _running_daily(bars):
            if low <= at - NS_PER_MINUTE < high:
                add(at, alpaca_message(running))
    entries.sort(key=lambda entry: entry[:3])
    return [message for *_, message in entries]


def _ns(value: int | datetime | None, default: float) -> float:
    if value is None:
        return default
    return value if isinstance(value, int) else datetime_to_ns(value)


def _bars_from_prints(
    prints: list[Tick], vendor: list[TradeBar], low: float, high: float, add: _Add
) -> None:
    by_minute: dict[int, list[Tick]] = {}
    for tick in prints:
        if low <= tick.ts_event < high:
            by_minute.setdefault(Resolution.MINUTE.floor(tick.ts_event), []).append(tick)
    finals = {bar.ts_event: bar for bar in vendor if low <= bar.ts_event < high}
    for minute in sorted(by_minute.keys() | finals.keys()):
        final = finals.get(minute)
        minute_prints = by_minute.get(minute)
        if not minute_prints:  # a vendor bar without prints (none in the 2013 SPY files)
            if final is not None:
                add(minute + NS_PER_MINUTE, alpaca_message(final))
            continue
        live, count, vwap = _aggregate(minute_prints, minute)
        add(minute + NS_PER_MINUTE, alpaca_message(live, trade_count=count, vwap=vwap))
        if final is not None and _ohlcv(final) != _ohlcv(live):
            final = TradeBar(*_ohlcv_fields(final), revision=1)
            add(minute + NS_PER_MINUTE + _HALF_MINUTE, alpaca_message(final))


def _aggregate(prints: list[Tick], minute: int) -> tuple[TradeBar, int, float]:
    volume = math.fsum(tick.size for tick in prints)
    bar = TradeBar(
        symbol=prints[0].symbol,
        ts_event=minute,
        open=prints[0].price,
        high=max(tick.price for tick in prints),
        low=min(tick.price for tick in prints),
        close=prints[-1].price,
        volume=volume,
    )
    vwap = math.fsum(tick.price * tick.size for tick in prints) / volume
    return bar, len(prints), vwap


def _ohlcv(bar: TradeBar) -> tuple[float, ...]:
    return (bar.open, bar.high, bar.low, bar.close, bar.volume)


def _ohlcv_fields(bar: TradeBar) -> tuple[str, int, float, float, float, float, float]:
    return (bar.symbol, bar.ts_event, bar.open, bar.high, bar.low, bar.close, bar.volume)


def _running_daily(bars: Iterable[TradeBar]) -> Iterator[tuple[int, TradeBar]]:
    """Yield (minute close, running daily bar) for each vendor minute bar."""
    running: TradeBar | None = None
    for bar in bars:
        if running is None:
            local = datetime.fromtimestamp(bar.ts_event / NS_PER_SECOND, _NEW_YORK)
            midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
            running = TradeBar(
                bar.symbol, datetime_to_ns(midnight), bar.open, bar.high, bar.low, bar.close,
                bar.volume, Resolution.DAILY, closed=False,
            )  # fmt: skip
        else:
            running = TradeBar(
                bar.symbol, running.ts_event, running.open, max(running.high, bar.high),
                min(running.low, bar.low), bar.close, math.fsum((running.volume, bar.volume)),
                Resolution.DAILY, closed=False,
            )  # fmt: skip
        yield bar.ts_event + NS_PER_MINUTE, running
