"""Pure parsers of Binance order-book messages: diff depth, REST depth snapshots, bookTicker.

Covers spot and Binance.US (``depthUpdate`` with ``U``/``u``; REST ``/api/v3/depth`` with
``lastUpdateId`` and no time), USD-M and COIN-M futures (``depthUpdate`` with ``pu`` and
transaction time ``T``; REST ``/fapi/v1/depth``, ``/dapi/v1/depth`` with ``E``/``T``).
A well-formed message is decoded in one pass; anything unusual takes a checked path that
names the first bad field. No asyncio, no clock reads: the receive time is passed in.

- ``OrderBookDelta``: ``first_sequence`` = ``U``, ``last_sequence`` = ``u``,
  ``prev_sequence`` = ``pu`` (-1 on spot), ``ts_event`` = ``T`` (futures) else ``E``.
- ``OrderBookSnapshot``: ``sequence`` = ``lastUpdateId``; ``ts_event`` = ``T`` (futures),
  else the receive time (spot REST gives none).
- :class:`BookTop` (bookTicker): the venue's own best bid/ask with its update id ``u``,
  as levels (``lean_data.wire.binance.parse_book_ticker`` gives the quote tick instead).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

from lean_data.book import BookLevel, OrderBookDelta, OrderBookSnapshot
from lean_data.errors import FeedProtocolError
from lean_data.wire.binance import binance_symbol, error_for_code
from lean_data.wire.levels import bad_field, decimal_text, expect_object, loads, parse_levels

__all__ = [
    "BookTop",
    "parse_book_top",
    "parse_depth_frame",
    "parse_depth_snapshot",
    "parse_depth_update",
]

_MS = 1_000_000
_canonical = lru_cache(maxsize=8192)(binance_symbol)


class BookTop(NamedTuple):
    """A bookTicker event: the venue's best bid and ask after update ``update_id``."""

    symbol: str
    update_id: int
    bid: BookLevel
    ask: BookLevel
    ts_recv: int


def _symbol(value: object, symbols: Mapping[str, str] | None, where: str) -> str:
    if type(value) is not str:
        raise bad_field(f"{where}.s", "a symbol string", value)
    if symbols is not None and (found := symbols.get(value)) is not None:
        return found
    return _canonical(value)


def _int(data: Mapping[str, object], key: str, where: str) -> int:
    if key not in data:
        raise FeedProtocolError(f"{where}: expected field {key!r}, found fields {sorted(data)}")
    value = data[key]
    if type(value) is not int:
        raise bad_field(f"{where}.{key}", "an integer", value)
    return value


def parse_depth_update(
    data: Mapping[str, object], ts_recv: int, *, symbols: Mapping[str, str] | None = None
) -> OrderBookDelta:
    """Return the delta of one ``depthUpdate`` payload (the ``data`` of the envelope).

    Raises:
        FeedProtocolError: a field is missing or of the wrong type, or a level is not a
            positive finite price with a finite size.
    """
    try:  # the well-formed event in one go; anything unusual takes the checked path
        first, last, venue, prev = data["U"], data["u"], data["s"], data.get("pu", -1)
        ts_ms = data["T"] if "T" in data else data["E"]
        if (
            type(first) is int and type(last) is int and type(prev) is int
            and type(ts_ms) is int and type(venue) is str
        ):  # fmt: skip
            found = symbols.get(venue) if symbols is not None else None
            return OrderBookDelta(
                _canonical(venue) if found is None else found,
                parse_levels(data["b"], "depthUpdate.b"),
                parse_levels(data["a"], "depthUpdate.a"),
                first, last, prev, None, ts_ms * _MS, ts_recv,
            )  # fmt: skip
    except (KeyError, ValueError, FeedProtocolError):
        pass
    return _parse_depth_update_checked(data, ts_recv, symbols)


def _parse_depth_update_checked(
    data: Mapping[str, object], ts_recv: int, symbols: Mapping[str, str] | None
) -> OrderBookDelta:
    """parse_depth_update field by field, raising a precise error for the first bad field."""
    where = "depthUpdate"
    first = _int(data, "U", where)
    last = _int(data, "u", where)
    prev = _int(data, "pu", where) if "pu" in data else -1
    ts_ms = _int(data, "T", where) if "T" in data else _int(data, "E", where)
    symbol = _symbol(data.get("s"), symbols, where)
    bids = parse_levels(data.get("b"), f"{where}.b")
    asks = parse_levels(data.get("a"), f"{where}.a")
    try:
        return OrderBookDelta(symbol, bids, asks, first, last, prev, None, ts_ms * _MS, ts_recv)
    except ValueError as exc:
        raise FeedProtocolError(f"{where} {symbol}: {exc}") from None


def parse_depth_snapshot(body: bytes | str, symbol: str, ts_recv: int) -> OrderBookSnapshot:
    """Return the snapshot in a REST depth answer (``{"lastUpdateId":..,"bids":..}``).

    Args:
        body: the response body.
        symbol: canonical symbol to put on the snapshot.
        ts_recv: the time the response was received, ns.

    Raises:
        FeedError: the body is a Binance error object.
        FeedProtocolError: the body is not a depth answer.
    """
    data = loads(body)
    if isinstance(data, dict) and "code" in data and "msg" in data:
        code = data["code"]
        raise error_for_code(code if type(code) is int else None, str(data["msg"]))
    data = expect_object(data, "depth")
    sequence = _int(data, "lastUpdateId", "depth")
    ts_event = _int(data, "T", "depth") * _MS if "T" in data else ts_recv
    bids = parse_levels(data.get("bids"), "depth.bids")
    asks = parse_levels(data.get("asks"), "depth.asks")
    try:
        return OrderBookSnapshot(symbol, bids, asks, sequence, ts_event, ts_recv)
    except ValueError as exc:
        raise FeedProtocolError(f"depth {symbol}: {exc}") from None


def parse_book_top(
    data: Mapping[str, object], ts_recv: int, *, symbols: Mapping[str, str] | None = None
) -> BookTop:
    """Return the best bid and ask of one ``bookTicker`` payload with its update id ``u``.

    Raises:
        FeedProtocolError: a field is missing or of the wrong type.
    """
    where = "bookTicker"
    fields = {}
    for key in "bBaA":
        if key not in data:
            raise FeedProtocolError(f"{where}: expected field {key!r}, found {sorted(data)}")
        fields[key] = decimal_text(data[key], f"{where}.{key}")
    return BookTop(
        _symbol(data.get("s"), symbols, where),
        _int(data, "u", where),
        BookLevel(fields["b"], fields["B"]),
        BookLevel(fields["a"], fields["A"]),
        ts_recv,
    )


def parse_depth_frame(
    raw: bytes | str, ts_recv: int, *, symbols: Mapping[str, str] | None = None
) -> OrderBookDelta | BookTop | None:
    """Decode one websocket frame: a depth delta, a bookTicker top, or None for others.

    Accepts the combined-stream envelope ``{"stream":..,"data":..}`` and raw payloads.

    Raises:
        FeedProtocolError: the frame is not JSON or a depth/bookTicker payload is bad.
    """
    message: Any = loads(raw)
    if not isinstance(message, dict):
        raise bad_field("frame", "a JSON object", message)
    stream = message.get("stream", "")
    data = message.get("data", message)
    if not isinstance(data, dict):
        raise bad_field("envelope.data", "a JSON object", data)
    event = data.get("e")
    if event == "depthUpdate":
        return parse_depth_update(data, ts_recv, symbols=symbols)
    if event == "bookTicker" or (
        event is None and isinstance(stream, str) and stream.endswith("@bookTicker")
    ):
        return parse_book_top(data, ts_recv, symbols=symbols)
    return None
