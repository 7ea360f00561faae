"""Pure parsers of Binance USDT-M futures derivatives data: mark prices, liquidations,
open interest and funding-rate history.

- ``<symbol>@markPrice@1s`` (or ``@markPrice``, every 3 s): ``{"e": "markPriceUpdate",
  "E", "s", "p" mark, "i" index, "P" estimated settle, "r" funding rate, "T" next funding
  time}`` becomes a :class:`~lean_data.derivatives.MarkPrice` at ``E`` carrying ``r`` and
  ``T`` (a delivery contract sends ``"r": ""`` and ``"T": 0``: NaN and 0).
- ``<symbol>@forceOrder``: ``{"e": "forceOrder", "E", "o": {"s", "S", "o", "f", "q", "p",
  "ap", "X", "l", "z", "T"}}`` becomes a :class:`~lean_data.derivatives.Liquidation` at the
  order's trade time ``o.T``, side lower-cased; an average price ``"0"`` (nothing filled
  yet) is NaN.
- ``GET /fapi/v1/openInterest`` (``{"openInterest", "symbol", "time"}``) becomes an
  :class:`~lean_data.derivatives.OpenInterest` in contracts (the venue gives no notional).
- ``GET /fapi/v1/fundingRate`` (an array of ``{"symbol", "fundingRate", "fundingTime",
  "markPrice"}``) becomes :class:`~lean_data.derivatives.FundingRate` records.

Symbols: a feed passes ``symbols={"BTCUSDT": "BTC/USDT:USDT"}``; a venue symbol it does not
know becomes ``BASE/QUOTE:QUOTE`` (a linear contract settles in its quote), with a delivery
suffix kept (``BTCUSDT_240329`` -> ``BTC/USDT:USDT-240329``).

Every other frame (klines, trades, acks, errors) is decoded by
:func:`lean_data.wire.binance.parse_message`'s rules, from the same single JSON decode.
Malformed input raises :class:`~lean_data.errors.FeedProtocolError` naming the field, as
that module's parsers do; the fast path tries the well-formed frame in one go and anything
unusual takes the checked path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache

from lean_data.derivatives import DerivativesData, FundingRate, Liquidation, MarkPrice, OpenInterest
from lean_data.errors import FeedError, FeedProtocolError
from lean_data.wire.binance import (
    _MS,
    ParsedMessage,
    _bad,
    _decimal,
    _error,
    _field,
    _loads,
    _ms_to_ns,
    _object,
    _parse_payload,
    _parse_reply,
    binance_symbol,
    error_for_code,
    parse_message_typed,
)

__all__ = [
    "futures_symbol",
    "parse_force_order",
    "parse_funding_rates",
    "parse_futures_message",
    "parse_mark_price",
    "parse_open_interest",
    "rest_error",
]

_NAN = math.nan


@lru_cache(maxsize=8192)
def futures_symbol(venue_symbol: str) -> str:
    """Return the canonical symbol of a USDT-M contract (``"BTCUSDT"`` -> ``"BTC/USDT:USDT"``).

    Raises:
        FeedProtocolError: no known quote asset ends the pair.
    """
    pair, _, delivery = venue_symbol.upper().partition("_")
    spot = binance_symbol(pair)
    quote = spot.partition("/")[2]
    return f"{spot}:{quote}-{delivery}" if delivery else f"{spot}:{quote}"


def _symbol(value: object, where: str, symbols: Mapping[str, str] | None) -> str:
    if type(value) is not str or not value:
        raise _bad(f"{where}.s", "a symbol string", value)
    found = symbols.get(value) if symbols is not None else None
    return futures_symbol(value) if found is None else found


def _record(where: str, build: type[DerivativesData], **fields: object) -> DerivativesData:
    """Build a record; its own check (a price <= 0, ...) becomes a protocol error."""
    try:
        return build(**fields)  # type: ignore[arg-type]  # fields checked by the record
    except (TypeError, ValueError) as exc:
        raise FeedProtocolError(f"{where}: {exc}") from None


# --- websocket events ----------------------------------------------------------------------


def parse_mark_price(
    data: Mapping[str, object], ts_recv: int, *, symbols: Mapping[str, str] | None = None
) -> MarkPrice:
    """Return the mark price of a ``markPriceUpdate`` event (with its funding rate and time).

    Raises:
        FeedProtocolError: a field is missing, of the wrong type or out of range.
    """
    try:  # the well-formed event in one go; anything unusual takes the checked path
        e, s, p, i, r, t = data["E"], data["s"], data["p"], data["i"], data["r"], data["T"]
        if (
            type(e) is int and type(s) is str and type(p) is str and type(i) is str
            and type(r) is str and type(t) is int
        ):  # fmt: skip
            found = symbols.get(s) if symbols is not None else None
            return MarkPrice(
                futures_symbol(s) if found is None else found, e * _MS, float(p), float(i),
                ts_recv, float(r) if r else _NAN, t * _MS,
            )  # fmt: skip
    except (KeyError, TypeError, ValueError):
        pass
    return _parse_mark_price_checked(data, ts_recv, symbols)


def _parse_mark_price_checked(
    data: Mapping[str, object], ts_recv: int, symbols: Mapping[str, str] | None
) -> MarkPrice:
    where = "markPriceUpdate"
    rate = _field(data, "r", where)
    record = _record(
        where,
        MarkPrice,
        symbol=_symbol(_field(data, "s", where), where, symbols),
        ts_event=_ms_to_ns(data, "E", where),
        mark_price=_decimal(data, "p", where),
        index_price=_decimal(data, "i", where),
        ts_recv=ts_recv,
        funding_rate=_NAN if rate == "" else _decimal(data, "r", where),
        next_funding_time=_ms_to_ns(data, "T", where),
    )
    assert isinstance(record, MarkPrice)
    return record


def parse_force_order(
    data: Mapping[str, object], ts_recv: int, *, symbols: Mapping[str, str] | None = None
) -> Liquidation:
    """Return the liquidation of a ``forceOrder`` event.

    ``ts_event`` is the order's trade time ``o.T``; ``side`` is ``o.S`` lower-cased;
    ``average_price`` is ``o.ap`` (NaN when ``"0"``); ``filled_quantity`` is ``o.z``.

    Raises:
        FeedProtocolError: a field is missing, of the wrong type or out of range.
    """
    order = _object(_field(data, "o", "forceOrder"), "forceOrder.o")
    try:
        s, side, t = order["s"], order["S"], order["T"]
        q, p, ap, x, z = order["q"], order["p"], order["ap"], order["X"], order["z"]
        if (
            type(s) is str and type(side) is str and type(t) is int and type(q) is str
            and type(p) is str and type(ap) is str and type(x) is str and type(z) is str
        ):  # fmt: skip
            found = symbols.get(s) if symbols is not None else None
            average = float(ap)
            return Liquidation(
                futures_symbol(s) if found is None else found, t * _MS, side.lower(),
                float(p), float(q), ts_recv, x, average if average else _NAN, float(z),
            )  # fmt: skip
    except (KeyError, TypeError, ValueError):
        pass
    return _parse_force_order_checked(order, ts_recv, symbols)


def _parse_force_order_checked(
    order: Mapping[str, object], ts_recv: int, symbols: Mapping[str, str] | None
) -> Liquidation:
    where = "forceOrder.o"
    side = _field(order, "S", where)
    if side not in ("BUY", "SELL"):
        raise _bad(f"{where}.S", "'BUY' or 'SELL'", side)
    status = _field(order, "X", where)
    if type(status) is not str:
        raise _bad(f"{where}.X", "an order status string", status)
    average = _decimal(order, "ap", where)
    record = _record(
        where,
        Liquidation,
        symbol=_symbol(_field(order, "s", where), where, symbols),
        ts_event=_ms_to_ns(order, "T", where),
        side=str(side).lower(),
        price=_decimal(order, "p", where),
        quantity=_decimal(order, "q", where),
        ts_recv=ts_recv,
        order_status=status,
        average_price=average if average else _NAN,
        filled_quantity=_decimal(order, "z", where),
    )
    assert isinstance(record, Liquidation)
    return record


def parse_futures_message(
    raw: bytes | str, ts_recv: int, *, symbols: Mapping[str, str] | None = None
) -> ParsedMessage | MarkPrice | Liquidation:
    """Decode one futures websocket frame: a derivatives record, or a :class:`ParsedMessage`.

    ``markPriceUpdate`` and ``forceOrder`` payloads (raw or in a combined-stream envelope)
    give their record; anything else is decoded as
    :func:`lean_data.wire.binance.parse_message` decodes it.

    Raises:
        FeedProtocolError: the frame is not JSON, not an object, or a known event lacks a
            field or has one of the wrong type.
    """
    typed = parse_message_typed(raw, ts_recv, symbols=symbols)
    if typed is not None:  # kline, aggTrade, bookTicker, trade, depthUpdate: never ours below
        return typed
    message = _object(_loads(raw), "frame")
    stream = message.get("stream")
    if stream is not None and "data" in message:
        if not isinstance(stream, str):
            raise _bad("envelope.stream", "a string", stream)
        data = _object(message["data"], "envelope.data")
    elif "id" in message and ("result" in message or "error" in message):
        return _parse_reply(message)
    elif "code" in message and "msg" in message:
        return _error(message, None)
    else:
        data, stream = message, ""
    event = data.get("e")
    if event == "markPriceUpdate":
        return parse_mark_price(data, ts_recv, symbols=symbols)
    if event == "forceOrder":
        return parse_force_order(data, ts_recv, symbols=symbols)
    return _parse_payload(data, stream, ts_recv, symbols)


# --- REST ----------------------------------------------------------------------------------


def rest_error(body: bytes | str) -> FeedError | None:
    """Return the error a Binance ``{"code", "msg"}`` body means (not raised), else None."""
    try:
        found = _loads(body)
    except FeedProtocolError:
        return None
    if isinstance(found, dict) and "code" in found and "msg" in found:
        code = found["code"]
        return error_for_code(code if type(code) is int else None, str(found["msg"]))
    return None


def _rest_body(body: bytes | str, what: str) -> object:
    """Decode a REST body; a Binance ``{"code", "msg"}`` object raises its error."""
    found = _loads(body)
    if isinstance(found, dict) and "code" in found and "msg" in found:
        code = found["code"]
        raise error_for_code(code if type(code) is int else None, str(found["msg"]))
    return found


def parse_open_interest(
    body: bytes | str, ts_recv: int, *, symbols: Mapping[str, str] | None = None
) -> OpenInterest:
    """Decode a ``GET /fapi/v1/openInterest`` body: open contracts at ``time``.

    Raises:
        FeedError: the body is a Binance error object (see :func:`error_for_code`).
        FeedProtocolError: a field is missing, of the wrong type or out of range.
    """
    where = "openInterest"
    answer = _object(_rest_body(body, where), where)
    record = _record(
        where,
        OpenInterest,
        symbol=_symbol(_field(answer, "symbol", where), where, symbols),
        ts_event=_ms_to_ns(answer, "time", where),
        contracts=_decimal(answer, "openInterest", where),
        ts_recv=ts_recv,
    )
    assert isinstance(record, OpenInterest)
    return record


def parse_funding_rates(
    body: bytes | str, ts_recv: int, *, symbols: Mapping[str, str] | None = None
) -> list[FundingRate]:
    """Decode a ``GET /fapi/v1/fundingRate`` body: settled funding rates, oldest first.

    Raises:
        FeedError: the body is a Binance error object (see :func:`error_for_code`).
        FeedProtocolError: the body is not an array of funding objects.
    """
    rows = _rest_body(body, "fundingRate")
    if not isinstance(rows, list):
        raise _bad("fundingRate", "a JSON array of funding objects", rows)
    found: list[FundingRate] = []
    for index, row in enumerate(rows):
        where = f"fundingRate[{index}]"
        item = _object(row, where)
        record = _record(
            where,
            FundingRate,
            symbol=_symbol(_field(item, "symbol", where), where, symbols),
            ts_event=_ms_to_ns(item, "fundingTime", where),
            rate=_decimal(item, "fundingRate", where),
            ts_recv=ts_recv,
        )
        assert isinstance(record, FundingRate)
        found.append(record)
    return found
