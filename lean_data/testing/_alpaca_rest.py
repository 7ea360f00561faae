"""Alpaca historical bars for the loopback server: one query's page, and its tokens.

Pure: no I/O, no clock. ``GET /v2/stocks/bars`` and ``GET /v1beta3/crypto/us/bars`` return
the bars of the requested symbols (in symbol order, each in time order, ``sort=desc``
reversing time) whose open time lies in ``[start, end]``, at most ``limit`` bars in all per
page, and an opaque ``next_page_token`` while more remain. The token names the last bar
sent; the next page starts after it.
"""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from typing import Any

from lean_data.models import Resolution, TradeBar
from lean_data.testing._alpaca_data import alpaca_message
from lean_data.wire.alpaca import ns_to_rfc3339, parse_timeframe, rfc3339_to_ns

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "BarBook", "Unprocessable"]

DEFAULT_LIMIT = 1000
"""Bars per page when the query has no ``limit`` (Alpaca's default)."""
MAX_LIMIT = 10_000
"""The largest ``limit`` Alpaca accepts."""
_ERROR_CODE = 42210000  # Alpaca's code for an unprocessable parameter


class Unprocessable(Exception):
    """A query Alpaca answers with HTTP 422 and ``{"code": 42210000, "message": ...}``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.body = {"code": _ERROR_CODE, "message": message}


def _row(item: TradeBar | Mapping[str, Any]) -> tuple[int, Resolution, dict[str, Any]]:
    """Return (open time ns, resolution, REST row without ``t``) for a bar or a raw row."""
    if isinstance(item, TradeBar):
        if item.resolution.is_tick:
            raise ValueError("expected bars with a period, got a tick-resolution bar")
        message = alpaca_message(TradeBar(*_fields(item)))  # a minute "b" message
        resolution = item.resolution
    else:
        message = dict(item)
        resolution = Resolution.MINUTE
    stamp = message.pop("t")
    message.pop("T", None)
    message.pop("S", None)
    ns = stamp if isinstance(stamp, int) else rfc3339_to_ns(str(stamp))
    return ns, resolution, message


def _fields(bar: TradeBar) -> tuple[str, int, float, float, float, float, float]:
    return (bar.symbol, bar.ts_event, bar.open, bar.high, bar.low, bar.close, bar.volume)


class BarBook:
    """Bars by (symbol, resolution), sorted by open time, answering bars queries.

    Args:
        bars: by symbol (``"SPY"``, ``"BTC/USD"``): :class:`TradeBar` objects (any period
            with an Alpaca timeframe; ``revision`` ignored) or raw Alpaca REST rows
            (``{"t": ..., "o": ..., ...}``, served verbatim as minute bars).
    """

    def __init__(self, bars: Mapping[str, Iterable[TradeBar | Mapping[str, Any]]]) -> None:
        series: dict[tuple[str, Resolution], dict[int, dict[str, Any]]] = {}
        for symbol, items in bars.items():
            for item in items:
                ns, resolution, row = _row(item)
                series.setdefault((symbol, resolution), {})[ns] = row
        self._rows = {key: sorted(rows.items()) for key, rows in series.items()}
        self._times = {key: [ns for ns, _ in rows] for key, rows in self._rows.items()}

    def page(self, query: Mapping[str, str], *, page_limit: int | None = None) -> dict[str, Any]:
        """Return the JSON body for a bars query (``t`` as RFC-3339 text).

        Args:
            query: the request's query parameters.
            page_limit: at most this many bars per page whatever the ``limit`` (Alpaca
                "may return less"); ``None``: no cap.

        Raises:
            Unprocessable: a parameter is missing or malformed.
        """
        symbols = sorted({s for s in query.get("symbols", "").split(",") if s})
        if not symbols:
            raise Unprocessable("missing symbols")
        resolution = _timeframe(query.get("timeframe", ""))
        start = _time(query, "start", 0)
        end = _time(query, "end", 2**63 - 1)
        limit = _limit(query.get("limit", ""))
        if page_limit is not None:
            limit = min(limit, page_limit)
        sort = query.get("sort", "asc")
        if sort not in ("asc", "desc"):
            raise Unprocessable(f"invalid sort: {sort!r}, expected asc or desc")
        after = _decode_token(query.get("page_token", ""))
        return self._select(symbols, resolution, start, end, limit, sort == "desc", after)

    def _select(
        self,
        symbols: list[str],
        resolution: Resolution,
        start: int,
        end: int,
        limit: int,
        descending: bool,
        after: tuple[str, int] | None,
    ) -> dict[str, Any]:
        out: dict[str, list[dict[str, Any]]] = {}
        count, last = 0, ("", 0)
        for symbol in symbols:
            if after is not None and symbol < after[0]:
                continue
            rows = self._window(symbol, resolution, start, end, descending)
            if after is not None and symbol == after[0]:
                rows = [r for r in rows if (r[0] < after[1] if descending else r[0] > after[1])]
            for ns, row in rows:
                if count == limit:
                    return {"bars": out, "next_page_token": _encode_token(*last)}
                out.setdefault(symbol, []).append({"t": ns_to_rfc3339(ns), **row})
                count, last = count + 1, (symbol, ns)
        return {"bars": out, "next_page_token": None}

    def _window(
        self, symbol: str, resolution: Resolution, start: int, end: int, descending: bool
    ) -> list[tuple[int, dict[str, Any]]]:
        key = (symbol, resolution)
        rows, times = self._rows.get(key, []), self._times.get(key, [])
        window = rows[bisect_left(times, start) : bisect_right(times, end)]
        return window[::-1] if descending else window


def _timeframe(text: str) -> Resolution:
    if not text:
        raise Unprocessable("missing timeframe")
    try:
        return parse_timeframe(text)
    except ValueError:
        raise Unprocessable(f"invalid timeframe: {text!r}") from None


def _time(query: Mapping[str, str], name: str, default: int) -> int:
    text = query.get(name)
    if not text:
        return default
    try:
        return rfc3339_to_ns(text)
    except ValueError:
        raise Unprocessable(f"invalid {name}: {text!r}, expected RFC-3339") from None


def _limit(text: str) -> int:
    if not text:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise Unprocessable(f"invalid limit: {text!r}, expected 1 to {MAX_LIMIT}")
    return int(text)


def _encode_token(symbol: str, ns: int) -> str:
    return base64.b64encode(f"{symbol}|{ns_to_rfc3339(ns)}".encode()).decode()


def _decode_token(token: str) -> tuple[str, int] | None:
    if not token:
        return None
    try:
        symbol, _, stamp = base64.b64decode(token, validate=True).decode().rpartition("|")
        if symbol:
            return symbol, rfc3339_to_ns(stamp)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise Unprocessable(f"invalid page token: {token!r}")
