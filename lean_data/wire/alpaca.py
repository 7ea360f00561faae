"""Pure parsers and message builders for Alpaca market data (stream and REST bars).

Covers the stock stream (``wss://stream.data.alpaca.markets/v2/{iex|sip|test}``), the crypto
stream (``/v1beta3/crypto/us``) and the historical bars of ``GET /v2/stocks/bars`` and
``GET /v1beta3/crypto/us/bars``, as alpaca-py 0.44.0 speaks them. No asyncio and no clock
reads: the receive time (and, for REST, "now") is passed in.

Conventions:

- Frames are arrays of messages. A binary frame is msgpack (what a client that sent
  ``Content-Type: application/msgpack`` gets; ``t`` is a msgpack Timestamp), a text frame
  is JSON (``t`` an RFC-3339 string with up to nanosecond precision). :func:`decode_frame`
  turns both into a list of dicts whose ``t`` is ``int`` ns since the epoch.
- Symbols are kept as Alpaca sends them: ``"SPY"``, crypto ``"BTC/USD"``.
- ``b`` is a closed minute bar, ``u`` a revision of a minute bar already sent (Alpaca sends
  one after the half-minute when late trades changed it), ``d`` the running daily bar
  (``closed=False``, keyed by Alpaca's day open ``t``, midnight New York in UTC).
- Trades are TRADE ticks: ``trade_id`` is ``i``, ``exchange`` is ``x``, ``condition`` is
  the conditions ``c`` joined by ``","``; a crypto trade has no ``c`` and its
  ``condition`` is ``"buyer_maker"`` when the taker side ``tks`` is ``"S"`` (as for
  Binance's aggTrade), else ``""``.
- Quotes are QUOTE ticks (top of book): ``price`` is the midpoint, ``size`` 0, ``exchange``
  is ``"<bx>/<ax>"`` when the venue names the exchanges (stocks), else ``""``.
- Message types this module does not decode (``c`` corrections, ``x`` cancel errors, ``s``
  statuses, ``l`` LULDs, ``o`` order books, ``n`` news, anything new) give
  ``kind="unknown"``, never an exception, so a feed can count them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, overload

import msgpack
import orjson

from lean_data.errors import (
    ConnectionLimitError,
    FeedAuthError,
    FeedConnectError,
    FeedError,
    FeedProtocolError,
    RateLimitError,
    SubscriptionError,
)
from lean_data.models import (
    NS_PER_DAY,
    NS_PER_HOUR,
    NS_PER_MINUTE,
    NS_PER_SECOND,
    Resolution,
    Tick,
    TickType,
    TradeBar,
    datetime_to_ns,
)

__all__ = [
    "CHANNEL_OF_TYPE",
    "CRYPTO_CHANNELS",
    "STOCK_CHANNELS",
    "Encoding",
    "MessageKind",
    "ParsedMessage",
    "auth_message",
    "decode_frame",
    "error_for_code",
    "error_for_http",
    "ns_to_rfc3339",
    "parse_bars_page",
    "parse_frame",
    "parse_message",
    "parse_timeframe",
    "rfc3339_to_ns",
    "subscribe_message",
    "timeframe_of",
    "unsubscribe_message",
]

STOCK_CHANNELS: tuple[str, ...] = (
    "trades", "quotes", "bars", "updatedBars", "dailyBars",
    "statuses", "lulds", "corrections", "cancelErrors",
)  # fmt: skip
"""The stock stream's channels, in the order of its subscription acks."""
CRYPTO_CHANNELS: tuple[str, ...] = (
    "trades", "quotes", "orderbooks", "bars", "updatedBars", "dailyBars",
)  # fmt: skip
"""The crypto stream's channels, in the order of its subscription acks."""
CHANNEL_OF_TYPE: Mapping[str, str] = {
    "t": "trades", "q": "quotes", "b": "bars", "u": "updatedBars", "d": "dailyBars",
    "s": "statuses", "l": "lulds", "c": "corrections", "x": "cancelErrors",
    "o": "orderbooks", "n": "news",
}  # fmt: skip
"""The channel each data message type ``T`` belongs to."""
_CLIENT_CHANNELS = frozenset(STOCK_CHANNELS) | frozenset(CRYPTO_CHANNELS) | {"news"}

MessageKind = Literal[
    "bar", "updated_bar", "daily_bar", "trade", "quote",
    "success", "subscription", "error", "unknown",
]  # fmt: skip
Encoding = Literal["msgpack", "json"]


@dataclass(slots=True)
class ParsedMessage:
    """One decoded stream message.

    Attributes:
        kind: ``bar`` (``b``), ``updated_bar`` (``u``), ``daily_bar`` (``d``), ``trade``
            (``t``), ``quote`` (``q``) with ``item`` set; ``success`` (``text`` is
            ``"connected"`` or ``"authenticated"``); ``subscription`` (``channels`` set);
            ``error`` (``code`` and ``text`` set); ``unknown`` (a type this module does
            not decode; ``type`` names it).
        item: the bar or tick, for data kinds. An ``updated_bar`` has ``revision=1``:
            the parser cannot know how many revisions came before, so a feed keeps a
            count per (symbol, open time) and sets ``revision`` to 1 for the first ``u``
            of a bar, 2 for the second, and so on.
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


# --- times --------------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2}))?"
)


def rfc3339_to_ns(text: str) -> int:
    """Return ns since the epoch for an RFC-3339 time (up to 9 fraction digits).

    A bare date (``"2013-10-10"``, which Alpaca's REST ``start``/``end`` accept) is
    midnight UTC; a time needs ``Z`` or an offset (``+00:00``, ``-04:00``).

    Raises:
        ValueError: the text is not such a time.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(
            f"expected an RFC-3339 time such as 2021-02-22T15:51:44.208Z, got {text!r}"
        )
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
            tzinfo=UTC,
        )  # fmt: skip
    except ValueError as exc:
        raise ValueError(f"expected an RFC-3339 time, got {text!r} ({exc})") from None
    ns = datetime_to_ns(moment) + (int(fraction.ljust(9, "0")) if fraction else 0)
    if zone and zone not in "Zz":
        sign = -1 if zone[0] == "+" else 1
        ns += sign * (int(zone[1:3]) * NS_PER_HOUR + int(zone[4:6]) * NS_PER_MINUTE)
    return ns


def ns_to_rfc3339(ns: int) -> str:
    """Return the RFC-3339 UTC text Alpaca writes for ``ns`` (``"2021-02-22T19:15:00Z"``).

    The fraction keeps its significant digits only (``".208Z"``, ``".335689322Z"``).
    """
    seconds, fraction = divmod(ns, NS_PER_SECOND)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


# --- client messages ----------------------------------------------------------------------


@overload
def auth_message(key: str, secret: str, encoding: Literal["msgpack"] = ...) -> bytes: ...
@overload
def auth_message(key: str, secret: str, encoding: Literal["json"]) -> str: ...
def auth_message(key: str, secret: str, encoding: Encoding = "msgpack") -> bytes | str:
    """Return ``{"action":"auth","key":...,"secret":...}`` as msgpack bytes or JSON text.

    alpaca-py sends msgpack (a binary frame); JSON goes in a text frame.

    Raises:
        ValueError: the key or the secret is empty (the values are never echoed).
    """
    if not key or not secret:
        raise ValueError("expected a non-empty API key and secret")
    return _encode({"action": "auth", "key": key, "secret": secret}, encoding)


@overload
def subscribe_message(
    channels: Mapping[str, Iterable[str]], encoding: Literal["msgpack"] = ...
) -> bytes: ...
@overload
def subscribe_message(channels: Mapping[str, Iterable[str]], encoding: Literal["json"]) -> str: ...
def subscribe_message(
    channels: Mapping[str, Iterable[str]], encoding: Encoding = "msgpack"
) -> bytes | str:
    """Return ``{"action":"subscribe", <channel>: [symbols], ...}`` (msgpack or JSON).

    Args:
        channels: channel (``"bars"``, ``"trades"``, ...) -> symbols (``"*"`` for all);
            channels with no symbols are left out.
        encoding: ``"msgpack"`` (bytes) or ``"json"`` (text).

    Raises:
        ValueError: a channel is not an Alpaca channel, or no channel has a symbol.
    """
    return _encode(_action("subscribe", channels), encoding)


@overload
def unsubscribe_message(
    channels: Mapping[str, Iterable[str]], encoding: Literal["msgpack"] = ...
) -> bytes: ...
@overload
def unsubscribe_message(
    channels: Mapping[str, Iterable[str]], encoding: Literal["json"]
) -> str: ...
def unsubscribe_message(
    channels: Mapping[str, Iterable[str]], encoding: Encoding = "msgpack"
) -> bytes | str:
    """Return ``{"action":"unsubscribe", <channel>: [symbols], ...}`` (msgpack or JSON).

    Raises:
        ValueError: a channel is not an Alpaca channel, or no channel has a symbol.
    """
    return _encode(_action("unsubscribe", channels), encoding)


def _action(action: str, channels: Mapping[str, Iterable[str]]) -> dict[str, Any]:
    message: dict[str, Any] = {"action": action}
    for channel, symbols in channels.items():
        if channel not in _CLIENT_CHANNELS:
            raise ValueError(
                f"expected Alpaca channels from {sorted(_CLIENT_CHANNELS)}, got {channel!r}"
            )
        names = list(dict.fromkeys(symbols))
        if names:
            message[channel] = names
    if len(message) == 1:
        raise ValueError(f"{action} needs at least one channel with a symbol")
    return message


def _encode(message: Mapping[str, Any], encoding: Encoding) -> bytes | str:
    if encoding == "msgpack":
        packed: bytes = msgpack.packb(message)
        return packed
    if encoding == "json":
        return orjson.dumps(message).decode()
    raise ValueError(f"expected encoding 'msgpack' or 'json', got {encoding!r}")


# --- errors -------------------------------------------------------------------------------


def error_for_code(code: int | None, message: str) -> FeedError:
    """Return the lean_data error for an Alpaca stream error (not raised).

    - 401 not authenticated, 402 auth failed, 403 already authenticated, 404 auth
      timeout: :class:`FeedAuthError` (fatal).
    - 405 symbol limit exceeded, 408 v2 not enabled, 409 insufficient subscription:
      :class:`SubscriptionError` (fatal: the account's plan does not allow it).
    - 406 connection limit exceeded: :class:`ConnectionLimitError` (retry slowly).
    - 407 slow client: :class:`FeedConnectError` (retryable).
    - 429: :class:`RateLimitError`.
    - 400 invalid syntax: :class:`FeedProtocolError` (our message was wrong).
    - 500 internal error and any other code: :class:`FeedConnectError` (retryable).
    """
    text = f"Alpaca error {code}: {message}"
    if code in (401, 402, 403, 404):
        return FeedAuthError(text)
    if code in (405, 408, 409):
        return SubscriptionError(text)
    if code == 406:
        return ConnectionLimitError(text)
    if code == 429:
        return RateLimitError(text)
    if code == 400:
        return FeedProtocolError(text)
    return FeedConnectError(text)


def error_for_http(
    status: int, body: bytes | str | Mapping[str, Any], *, retry_after: float | None = None
) -> FeedError:
    """Return the lean_data error for a failed Alpaca REST answer (not raised).

    401/403 (``{"message": "forbidden."}``) are :class:`FeedAuthError`; 429 is
    :class:`RateLimitError` carrying ``retry_after`` (the ``Retry-After`` header, seconds);
    400, 404 and 422 (a bad parameter: ``{"code": 42210000, "message": ...}``) are
    :class:`FeedProtocolError` (fatal: the same request fails again); anything else
    (5xx, 504 gateway timeout) is a retryable :class:`FeedConnectError`.
    """
    detail = _error_detail(body)
    text = f"Alpaca HTTP {status}: {detail}"
    if status in (401, 403):
        return FeedAuthError(text)
    if status == 429:
        return RateLimitError(text, retry_after=retry_after)
    if status in (400, 404, 422):
        return FeedProtocolError(text, retryable=False)
    return FeedConnectError(text)


def _error_detail(body: bytes | str | Mapping[str, Any]) -> str:
    decoded: object = body
    if isinstance(body, bytes | str):
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError:
            raw = body if isinstance(body, str) else body.decode("utf-8", "replace")
            return raw[:200]
    if isinstance(decoded, Mapping) and "message" in decoded:
        code = decoded.get("code")
        return f"{decoded['message']}" + (f" (code {code})" if code is not None else "")
    return repr(decoded)[:200]


# --- stream frames ------------------------------------------------------------------------


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


# --- REST bars ----------------------------------------------------------------------------

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


# --- field access: cheap on the happy path, precise messages otherwise ---------------------


def _field(message: Mapping[str, Any], key: str, where: str) -> Any:
    try:
        return message[key]
    except KeyError:
        raise FeedProtocolError(
            f"{where}: expected field {key!r}, found fields {sorted(map(str, message))}"
        ) from None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _num(message: Mapping[str, Any], key: str, where: str) -> float:
    value = _field(message, key, where)
    if not _is_number(value):
        raise _bad(f"{where}.{key}", "a number", value)
    return float(value)


def _str(message: Mapping[str, Any], key: str, where: str) -> str:
    value = _field(message, key, where)
    if type(value) is not str:
        raise _bad(f"{where}.{key}", "a string", value)
    return value


def _opt_str(message: Mapping[str, Any], key: str, where: str) -> str:
    value = message.get(key, "")
    if type(value) is not str:
        raise _bad(f"{where}.{key}", "a string", value)
    return value


def _str_list(message: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = message.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(type(item) is str for item in value):
        raise _bad(f"{where}.{key}", "a list of strings", value)
    return value


def _ts(message: Mapping[str, Any], where: str) -> int:
    value = _field(message, "t", where)
    if type(value) is int:
        return value
    if isinstance(value, str):
        return _time(value, f"{where}.t")
    if isinstance(value, msgpack.Timestamp):
        nanos: int = value.to_unix_nano()
        return nanos
    raise _bad(f"{where}.t", "a time (int ns, RFC-3339 text or msgpack Timestamp)", value)


def _time(text: str, where: str) -> int:
    try:
        return rfc3339_to_ns(text)
    except ValueError:
        raise _bad(where, "an RFC-3339 time", text) from None


def _bad(where: str, expected: str, found: object) -> FeedProtocolError:
    text = repr(found)
    if len(text) > 80:
        text = text[:77] + "..."
    return FeedProtocolError(f"{where}: expected {expected}, found {type(found).__name__} {text}")
