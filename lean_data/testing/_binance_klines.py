"""Binance REST klines for the loopback server: the 12-field rows and one query's answer.

Pure: no I/O, no clock. ``GET /api/v3/klines`` returns klines whose open time lies in
``[startTime, endTime]``: the first ``limit`` from ``startTime`` when it is given, else the
last ``limit`` up to ``endTime`` (or the newest), as Binance does.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from lean_data.models import TradeBar

__all__ = [
    "KLINES_WEIGHT",
    "WEIGHT_LIMIT_1M",
    "BadRequest",
    "KlineBook",
    "RestRequest",
    "kline_event",
    "kline_row",
]

KLINES_WEIGHT = 2
"""Request weight of one ``/api/v3/klines`` call (Binance spot docs: flat 2)."""
WEIGHT_LIMIT_1M = 6000
"""Binance spot's ``REQUEST_WEIGHT`` limit per minute per IP."""
_DEFAULT_LIMIT, _MAX_LIMIT = 500, 1000
_INTERVALS = frozenset(
    {"1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
     "1d", "3d", "1w", "1M"}
)  # fmt: skip


class RestRequest(NamedTuple):
    """One HTTP request the server answered."""

    method: str
    path: str
    params: dict[str, str]
    status: int


def _interval_name(bar: TradeBar) -> str:
    name = bar.resolution.name
    return "1w" if name == "7d" else name


def kline_row(item: TradeBar | Sequence[Any], *, decimals: int = 8) -> list[Any]:
    """Return Binance's 12-field kline array for a bar or a raw kline row.

    A :class:`TradeBar` gives open time ms, o, h, l, c, v (strings with ``decimals``
    places, as Binance spot sends them; a NaN volume becomes 0), close time ms
    (open + period - 1), then quote volume ``"0"``, trade count ``0``, taker buy base and
    quote ``"0"`` and ignore ``"0"``: a bar does not carry those. A 12-field row (e.g. a
    line of a data.binance.vision CSV) is served with its own values, typed as Binance
    types them.
    """
    if isinstance(item, TradeBar):
        open_ms = item.ts_event // 1_000_000
        close_ms = open_ms + item.resolution.nanos // 1_000_000 - 1
        volume = 0.0 if math.isnan(item.volume) else item.volume
        prices = (item.open, item.high, item.low, item.close, volume)
        return [open_ms, *(f"{p:.{decimals}f}" for p in prices), close_ms, "0", 0, "0", "0", "0"]
    if len(item) != 12:
        raise ValueError(f"expected a 12-field kline row, found {len(item)} fields")
    row = [str(value) for value in item]
    return [int(row[0]), *row[1:6], int(row[6]), row[7], int(row[8]), *row[9:]]


def kline_event(
    symbol: str,
    item: TradeBar | Sequence[Any],
    *,
    closed: bool,
    event_time_ms: int | None = None,
    interval: str = "1m",
    decimals: int = 8,
) -> dict[str, Any]:
    """Return the websocket kline event Binance pushes for a bar or a 12-field kline row.

    The payload of stream ``<symbol lowercase>@kline_<interval>``:
    ``{"e": "kline", "E": ..., "s": symbol, "k": {"t", "T", "s", "i", "f", "L", "o", "c",
    "h", "l", "v", "n", "x", "q", "V", "Q", "B"}}`` with prices as strings.

    Args:
        symbol: Binance symbol (``"BTCBUSD"``).
        item: the candle's values (see :func:`kline_row`).
        closed: the ``x`` flag: True for the candle's final update.
        event_time_ms: ``E``; the close time + 1 ms when None.
        interval: ``i``.
        decimals: decimals of prices formatted from a :class:`TradeBar`.
    """
    row = kline_row(item, decimals=decimals)
    event_ms = row[6] + 1 if event_time_ms is None else event_time_ms
    return {
        "e": "kline",
        "E": event_ms,
        "s": symbol,
        "k": {
            "t": row[0], "T": row[6], "s": symbol, "i": interval, "f": -1, "L": -1,
            "o": row[1], "c": row[4], "h": row[2], "l": row[3], "v": row[5], "n": row[8],
            "x": closed, "q": row[7], "V": row[9], "Q": row[10], "B": row[11],
        },
    }  # fmt: skip


class BadRequest(Exception):
    """A query Binance answers with HTTP 400 and ``{"code": code, "msg": msg}``."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 20:
        raise BadRequest(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        )
    return int(value)


def _mandatory(query: Mapping[str, str], name: str) -> str:
    value = query.get(name, "")
    if not value:
        raise BadRequest(
            -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
        )
    return value


class KlineBook:
    """Klines by (symbol, interval), sorted by open time.

    Args:
        klines: by Binance symbol, bars (interval from their resolution) or raw
            12-field rows (interval from close time + 1 - open time).
        decimals: decimals of prices and volumes formatted from bars.
    """

    def __init__(self, klines: Mapping[str, Iterable[TradeBar | Sequence[Any]]], decimals: int):
        series: dict[tuple[str, str], list[list[Any]]] = {}
        for symbol, items in klines.items():
            for item in items:
                row = kline_row(item, decimals=decimals)
                interval = _interval_name(item) if isinstance(item, TradeBar) else None
                if interval is None:
                    interval = _interval_of_row(row)
                series.setdefault((symbol.upper(), interval), []).append(row)
        self.symbols = {symbol for symbol, _ in series}
        self.rows = {key: sorted(rows, key=lambda row: int(row[0])) for key, rows in series.items()}
        self.times = {key: [int(row[0]) for row in rows] for key, rows in self.rows.items()}

    def select(self, query: Mapping[str, str]) -> list[list[Any]]:
        """Return the rows a ``/api/v3/klines`` query asks for.

        Raises:
            BadRequest: a parameter is missing, malformed or out of range, or the symbol
                is unknown (Binance's codes -1100, -1102, -1120, -1121, -1130, -1023).
        """
        symbol, interval = _mandatory(query, "symbol"), _mandatory(query, "interval")
        start, end = _int_param(query, "startTime"), _int_param(query, "endTime")
        limit = _int_param(query, "limit")
        limit = _DEFAULT_LIMIT if limit is None else limit
        if interval not in _INTERVALS:
            raise BadRequest(-1120, "Invalid interval.")
        if symbol not in self.symbols:
            raise BadRequest(-1121, "Invalid symbol.")
        if not 1 <= limit <= _MAX_LIMIT:
            raise BadRequest(-1130, "Data sent for parameter 'limit' is not valid.")
        if start is not None and end is not None and start > end:
            raise BadRequest(-1023, "Start time is greater than end time.")
        rows, times = self.rows.get((symbol, interval), []), self.times.get((symbol, interval), [])
        stop = len(times) if end is None else bisect_right(times, end)
        if start is not None:
            first = bisect_left(times, start)
            return rows[first : min(stop, first + limit)]
        return rows[max(0, stop - limit) : stop]


def _interval_of_row(row: Sequence[Any]) -> str:
    seconds = (int(row[6]) + 1 - int(row[0])) // 1000
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
