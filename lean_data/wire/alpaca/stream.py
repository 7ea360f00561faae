"""Alpaca's stream frames: decode msgpack or JSON, parse each message to a model (pure).

See the package docstring (:mod:`lean_data.wire.alpaca`) for the conventions: message
types, symbols, revisions, trade conditions and quotes. No asyncio and no clock reads: the
receive time is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import msgpack
import orjson

from lean_data.errors import FeedProtocolError
from lean_data.models import Resolution, Tick, TickType, TradeBar
from lean_data.wire.alpaca.fields import (
    _bad,
    _is_number,
    _num,
    _opt_str,
    _str,
    _str_list,
    _time,
    _ts,
)

__all__ = ["MessageKind", "ParsedMessage", "decode_frame", "parse_frame", "parse_message"]

MessageKind = Literal[
    "bar", "updated_bar", "daily_bar", "trade", "quote",
    "success", "subscription", "error", "unknown",
]  # fmt: skip


@dataclass(slots=True)
class ParsedMessage:
    """One decoded stream message.

    Attributes:
        kind: ``bar`` (``b``), ``updated_bar`` (``u``), ``daily_bar`` (``d``), ``trade``
            (``t``), ``quote`` (``q``) with ``item`` set; ``success`` (``text`` is
            ``"connected"`` or ``"authenticated"``); ``subscription`` (``channels`` set);
            ``error`` (``code`` and ``text`` set); ``unknown`` (a type this module does
            not decode; ``type`` names it).
        item: the bar or tick, for data kinds. An ``updated_bar`` has ``revision=1``,
            the fact "a correction": the parser cannot know how many came before, and
            the engine's continuity numbers them (1 for the first ``u`` of a bar, the
            next number for each later one with other values).
        type: the message's ``T`` ("" when absent).
        text: the ``msg`` of ``success`` and ``error`` messages.
        code: the error code of ``error`` messages (``None`` when absent).
        channels: channel -> symbols of a ``subscription`` ack, in the order sent.
    """

    kind: MessageKind
    item: TradeBar | Tick | None = None
    type: str = ""
    text: str = ""
    code: int | None = None
    channels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def decode_frame(raw: bytes | bytearray | memoryview | str) -> list[dict[str, Any]]:
    """Decode one server frame into its messages, with ``t`` as int ns since the epoch.

    Bytes are msgpack (``t`` a msgpack Timestamp), text is JSON (``t`` RFC-3339).

    Raises:
        FeedProtocolError: the frame does not decode, is not an array of objects, or a
            ``t`` is not a time.
    """
    if isinstance(raw, str):
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise FeedProtocolError(f"expected a JSON array, found {raw[:80]!r} ({exc})") from None
    else:
        try:
            payload = msgpack.unpackb(raw, timestamp=2)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            preview = bytes(raw[:40])
            raise FeedProtocolError(
                f"expected a msgpack array, found {preview!r} ({type(exc).__name__}: {exc})"
            ) from None
    if not isinstance(payload, list):
        raise _bad("frame", "an array of messages", payload)
    for index, message in enumerate(payload):
        if not isinstance(message, dict):
            raise _bad(f"frame[{index}]", "an object", message)
        stamp = message.get("t")
        if isinstance(stamp, str):
            message["t"] = _time(stamp, f"frame[{index}].t")
    return payload


def parse_frame(raw: bytes | bytearray | memoryview | str, ts_recv: int) -> list[ParsedMessage]:
    """Decode a frame and parse each message (see :func:`decode_frame`, :func:`parse_message`).

    Raises:
        FeedProtocolError: the frame or one of its known messages is malformed.
    """
    return [parse_message(message, ts_recv) for message in decode_frame(raw)]


def parse_message(message: Mapping[str, Any], ts_recv: int) -> ParsedMessage:
    """Parse one message of a decoded frame.

    Args:
        message: one element of :func:`decode_frame`'s list (``t`` may also be an
            RFC-3339 string or a msgpack Timestamp).
        ts_recv: local receive time, ns since the epoch.

    Raises:
        FeedProtocolError: a known message lacks a field or has one of the wrong type.
    """
    kind = message.get("T", "")
    if not isinstance(kind, str):
        raise _bad("message.T", "a type string", kind)
    parser = _DATA.get(kind)
    if parser is not None:
        return parser(message, ts_recv)
    if kind == "success":
        return ParsedMessage("success", type=kind, text=_str(message, "msg", "success"))
    if kind == "error":
        code = message.get("code")
        if code is not None and type(code) is not int:
            raise _bad("error.code", "an integer", code)
        return ParsedMessage("error", type=kind, text=str(message.get("msg", "")), code=code)
    if kind == "subscription":
        return ParsedMessage("subscription", type=kind, channels=_channels(message))
    return ParsedMessage("unknown", type=kind)


def _channels(message: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    channels: dict[str, tuple[str, ...]] = {}
    for key, symbols in message.items():
        if key == "T":
            continue
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise _bad(f"subscription.{key}", "a list of symbols", symbols)
        channels[key] = tuple(symbols)
    return channels


def _bar(
    message: Mapping[str, Any],
    ts_recv: int,
    where: str,
    resolution: Resolution,
    closed: bool,
    *,
    revision: int = 0,
    backfilled: bool = False,
    now_ns: int | None = None,
) -> TradeBar:
    """Return the bar of ``message``; with ``now_ns``, closed only if it ended by then."""
    for key in ("n", "vw"):  # not carried by TradeBar, but checked
        value = message.get(key)
        if value is not None and not _is_number(value):
            raise _bad(f"{where}.{key}", "a number", value)
    ts_event = _ts(message, where)
    if now_ns is not None:
        closed = ts_event + resolution.nanos <= now_ns
    return TradeBar(
        symbol=_str(message, "S", where),
        ts_event=ts_event,
        open=_num(message, "o", where),
        high=_num(message, "h", where),
        low=_num(message, "l", where),
        close=_num(message, "c", where),
        volume=_num(message, "v", where),
        resolution=resolution,
        ts_recv=ts_recv,
        closed=closed,
        revision=revision,
        backfilled=backfilled,
    )


def _parse_bar(message: Mapping[str, Any], ts_recv: int) -> ParsedMessage:
    item = _bar(message, ts_recv, "bar", Resolution.MINUTE, True)
    return ParsedMessage("bar", item, type="b")


def _parse_updated_bar(message: Mapping[str, Any], ts_recv: int) -> ParsedMessage:
    item = _bar(message, ts_recv, "updatedBar", Resolution.MINUTE, True, revision=1)
    return ParsedMessage("updated_bar", item, type="u")


def _parse_daily_bar(message: Mapping[str, Any], ts_recv: int) -> ParsedMessage:
    item = _bar(message, ts_recv, "dailyBar", Resolution.DAILY, False)
    return ParsedMessage("daily_bar", item, type="d")


def _parse_trade(message: Mapping[str, Any], ts_recv: int) -> ParsedMessage:
    trade_id = message.get("i")
    if trade_id is not None and type(trade_id) is not int:
        raise _bad("trade.i", "an integer", trade_id)
    taker = message.get("tks")
    if "c" in message or taker is None:
        condition = ",".join(_str_list(message, "c", "trade"))
    elif taker in ("B", "S"):
        condition = "buyer_maker" if taker == "S" else ""
    else:
        raise _bad("trade.tks", "'B' or 'S'", taker)
    item = Tick(
        symbol=_str(message, "S", "trade"),
        ts_event=_ts(message, "trade"),
        price=_num(message, "p", "trade"),
        size=_num(message, "s", "trade"),
        tick_type=TickType.TRADE,
        ts_recv=ts_recv,
        exchange=_opt_str(message, "x", "trade"),
        condition=condition,
        trade_id="" if trade_id is None else str(trade_id),
    )
    return ParsedMessage("trade", item, type="t")


def _parse_quote(message: Mapping[str, Any], ts_recv: int) -> ParsedMessage:
    bid, ask = _num(message, "bp", "quote"), _num(message, "ap", "quote")
    bid_exchange, ask_exchange = _opt_str(message, "bx", "quote"), _opt_str(message, "ax", "quote")
    item = Tick(
        symbol=_str(message, "S", "quote"),
        ts_event=_ts(message, "quote"),
        price=(bid + ask) / 2.0,
        size=0.0,
        tick_type=TickType.QUOTE,
        ts_recv=ts_recv,
        bid_price=bid,
        bid_size=_num(message, "bs", "quote"),
        ask_price=ask,
        ask_size=_num(message, "as", "quote"),
        exchange=f"{bid_exchange}/{ask_exchange}" if bid_exchange or ask_exchange else "",
        condition=",".join(_str_list(message, "c", "quote")),
    )
    return ParsedMessage("quote", item, type="q")


_DATA = {
    "b": _parse_bar,
    "u": _parse_updated_bar,
    "d": _parse_daily_bar,
    "t": _parse_trade,
    "q": _parse_quote,
}
