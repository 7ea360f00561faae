"""Pure parser of Bybit v5 public ``orderbook.<depth>.<symbol>`` websocket messages.

``{"topic":"orderbook.500.XRPUSDT","type":"snapshot"|"delta","ts":ms,"cts":ms,
"data":{"s":"XRPUSDT","b":[["1.9531","6203"],...],"a":[...],"u":20254869,"seq":...}}``.

- ``type == "snapshot"``, or any message with ``u == 1`` (Bybit restarted its service and
  starts again from a full book), becomes an :class:`~lean_data.book.OrderBookSnapshot`
  whose ``sequence`` is ``u``;
- ``type == "delta"`` becomes an :class:`~lean_data.book.OrderBookDelta` with
  ``first_sequence == last_sequence == u`` (``prev_sequence`` -1: Bybit states none);
- ``ts_event`` is the matching engine's ``cts`` when present, else the system ``ts``.

No asyncio, no clock reads: the receive time is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping

from lean_data.book import OrderBookDelta, OrderBookSnapshot
from lean_data.errors import FeedProtocolError
from lean_data.wire.binance import binance_symbol
from lean_data.wire.levels import bad_field, expect_object, loads, parse_levels

__all__ = ["parse_orderbook_message"]

_MS = 1_000_000


def _int(data: Mapping[str, object], key: str, where: str) -> int:
    value = data.get(key)
    if type(value) is not int:
        raise bad_field(f"{where}.{key}", "an integer", value)
    return value


def parse_orderbook_message(
    raw: bytes | str | Mapping[str, object],
    ts_recv: int,
    *,
    symbols: Mapping[str, str] | None = None,
) -> OrderBookSnapshot | OrderBookDelta:
    """Decode one ``orderbook`` message (text, bytes or an already decoded object).

    Args:
        raw: the message.
        ts_recv: local receive time, ns.
        symbols: venue symbol (``"XRPUSDT"``) -> canonical; missing entries are split off
            a known quote asset (``"XRP/USDT"``).

    Raises:
        FeedProtocolError: not an orderbook message, or a field is missing or malformed.
    """
    message = expect_object(loads(raw) if isinstance(raw, bytes | str) else raw, "message")
    kind = message.get("type")
    if kind not in ("snapshot", "delta"):
        raise bad_field("message.type", "'snapshot' or 'delta'", kind)
    data = expect_object(message.get("data"), "message.data")
    update = _int(data, "u", "data")
    ts_ms = _int(message, "cts", "message") if "cts" in message else _int(message, "ts", "")
    venue = data.get("s")
    if type(venue) is not str:
        raise bad_field("data.s", "a symbol string", venue)
    found = symbols.get(venue) if symbols is not None else None
    symbol = binance_symbol(venue) if found is None else found
    bids = parse_levels(data.get("b"), "data.b")
    asks = parse_levels(data.get("a"), "data.a")
    try:
        if kind == "snapshot" or update == 1:
            return OrderBookSnapshot(symbol, bids, asks, update, ts_ms * _MS, ts_recv)
        return OrderBookDelta(symbol, bids, asks, update, update, -1, None, ts_ms * _MS, ts_recv)
    except ValueError as exc:
        raise FeedProtocolError(f"orderbook {venue} u={update}: {exc}") from None
