"""Alpaca's historical bars: timeframes and pages of ``GET /v2/stocks/bars`` (pure).

Also ``GET /v1beta3/crypto/us/bars``; a REST bar has the stream bar's fields, so it is
read by the same bar parser. "Now" is passed in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from lean_data.errors import FeedProtocolError
from lean_data.models import NS_PER_DAY, NS_PER_HOUR, NS_PER_MINUTE, Resolution, TradeBar
from lean_data.wire.alpaca.fields import _bad, _str
from lean_data.wire.alpaca.stream import _bar

__all__ = ["parse_bars_page", "parse_timeframe", "timeframe_of"]

_TIMEFRAME = re.compile(r"(\d+)(Min|T|Hour|H|Day|D|Week|W|Month|M)")
_UNIT_NS = {"Min": NS_PER_MINUTE, "Hour": NS_PER_HOUR, "Day": NS_PER_DAY, "Week": 7 * NS_PER_DAY}
_ALIAS = {"T": "Min", "H": "Hour", "D": "Day", "W": "Week", "M": "Month"}
_MAX_AMOUNT = {"Min": 59, "Hour": 23, "Day": 1, "Week": 1}


def timeframe_of(resolution: Resolution | str) -> str:
    """Return Alpaca's timeframe for a resolution (``Resolution.MINUTE`` -> ``"1Min"``).

    Alpaca allows 1-59 Min, 1-23 Hour, 1 Day and 1 Week (``"7d"``).

    Raises:
        ValueError: Alpaca has no timeframe of that length (ticks, seconds, 2 days, ...).
    """
    resolution = Resolution.parse(resolution)
    nanos = resolution.nanos
    for unit in ("Week", "Day", "Hour", "Min"):
        size = _UNIT_NS[unit]
        if nanos and nanos % size == 0 and nanos // size <= _MAX_AMOUNT[unit]:
            return f"{nanos // size}{unit}"
    raise ValueError(
        f"expected a resolution Alpaca serves (1-59 min, 1-23 h, 1 day, 1 week), got {resolution}"
    )


def parse_timeframe(text: str) -> Resolution:
    """Return the resolution of an Alpaca timeframe (``"5Min"``, ``"1Hour"``, ``"1D"``).

    Raises:
        ValueError: not a timeframe, out of Alpaca's ranges, or a month (no fixed length).
    """
    match = _TIMEFRAME.fullmatch(text)
    if match is None:
        raise ValueError(f"expected a timeframe such as 1Min, 5Min, 1Hour or 1Day, got {text!r}")
    amount, unit = int(match.group(1)), _ALIAS.get(match.group(2), match.group(2))
    if unit == "Month":
        raise ValueError(f"a month has no fixed length, got {text!r}")
    if not 1 <= amount <= _MAX_AMOUNT[unit]:
        raise ValueError(f"expected 1-{_MAX_AMOUNT[unit]} {unit}, got {text!r}")
    return Resolution(amount * _UNIT_NS[unit])


def parse_bars_page(
    body: bytes | str | Mapping[str, Any],
    resolution: Resolution = Resolution.MINUTE,
    *,
    now_ns: int | None = None,
    backfilled: bool = False,
) -> tuple[dict[str, list[TradeBar]], str | None]:
    """Decode one page of ``/v2/stocks/bars`` or ``/v1beta3/crypto/us/bars``.

    Args:
        body: the response body (``{"bars": {symbol: [...]}, "next_page_token": ...}``;
            the single-symbol form ``{"bars": [...], "symbol": ...}`` is accepted too).
        resolution: the requested timeframe (see :func:`parse_timeframe`).
        now_ns: when the page was received; sets ``ts_recv``, and a bar is closed when it
            ended by then. ``None``: ``ts_recv=0`` and every bar closed.
        backfilled: mark the bars as fetched to fill a gap.

    Returns:
        Bars by symbol in the order sent, and the next page's token (``None`` when last).

    Raises:
        FeedProtocolError: the body is not JSON or not a bars page, or a bar is malformed.
    """
    page = body if isinstance(body, Mapping) else _loads(body)
    if not isinstance(page, Mapping) or "bars" not in page:
        raise _bad("bars page", 'an object with "bars"', page)
    token = page.get("next_page_token")
    if token is not None and (not isinstance(token, str) or not token):
        raise _bad("bars page.next_page_token", "a string or null", token)
    series = page["bars"]
    if isinstance(series, list):
        series = {_str(page, "symbol", "bars page"): series}
    elif series is None:
        series = {}
    if not isinstance(series, Mapping):
        raise _bad("bars page.bars", "an object of symbol -> bars", series)
    ts_recv = 0 if now_ns is None else now_ns
    result: dict[str, list[TradeBar]] = {}
    for symbol, rows in series.items():
        if not isinstance(rows, list):
            raise _bad(f"bars.{symbol}", "a list of bars", rows)
        bars = []
        for index, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise _bad(f"bars.{symbol}[{index}]", "an object", row)
            where = f"bars.{symbol}[{index}]"
            message = {**row, "S": symbol}
            bars.append(
                _bar(
                    message, ts_recv, where, resolution, True, backfilled=backfilled, now_ns=now_ns
                )
            )
        result[str(symbol)] = bars
    return result, token


def _loads(raw: bytes | str) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        preview = raw[:80] if isinstance(raw, str) else raw[:80].decode("utf-8", "replace")
        raise FeedProtocolError(f"expected JSON, found {preview!r} ({exc})") from None
