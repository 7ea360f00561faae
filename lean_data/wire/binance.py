"""Pure parsers and request builders for Binance market-data websockets and REST klines.

Covers spot (``stream.binance.com``), Binance.US and USDT-M futures (``fstream``): the
combined-stream envelope ``{"stream": ..., "data": ...}`` and raw payloads, ``kline_<i>``,
``aggTrade`` and ``bookTicker`` events, subscription acks and error frames, and the
12-field arrays of ``GET /api/v3/klines``. No asyncio and no clock reads: the receive time
(and, for REST, "now") is passed in. Prices and sizes arrive as decimal strings and become
``float`` (``repr(float(s))`` gives back ``s`` up to 15 significant digits).

Conventions:

- Symbols: the venue's ``BTCUSDT`` becomes ``BTC/USDT`` by splitting off the longest known
  quote asset (:data:`KNOWN_QUOTES`); a feed that knows its symbols (e.g. futures
  ``BTC/USDT:USDT``) passes ``symbols={"BTCUSDT": "BTC/USDT:USDT"}`` instead.
- aggTrade: ``Tick.trade_id`` is the aggregate trade id ``a``; ``Tick.condition`` is
  ``"buyer_maker"`` when ``m`` is true (the seller was the aggressor), else ``""``.
- bookTicker: a QUOTE tick whose ``price`` is the midpoint and ``size`` 0; its event time is
  the futures transaction time ``T`` (else ``E``), or the receive time on spot, which sends
  neither.
- Events this module does not decode (``depthUpdate``, ``trade``, ``24hrTicker``, ...)
  give ``kind="unknown"``, never an exception, so a feed can count them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Final, Literal

import orjson
from msgspec import UNSET, ValidationError
from msgspec.structs import astuple

from lean_data.errors import FeedError, FeedProtocolError, RateLimitError, SubscriptionError
from lean_data.models import NS_PER_DAY, Resolution, Tick, TickType, TradeBar
from lean_data.slots import BUILD_BAR, BUILD_TICK
from lean_data.wire.binance_typed import (
    TYPED_MISS,
    AggTradeEvent,
    BookTickerEvent,
    Envelope,
    KlineEvent,
    SpotBookTicker,
    SpotBookTickerEnvelope,
    decode_envelope,
    decode_spot_book_envelope,
)
from lean_data.wire.numbers import decimal_float as _float

__all__ = [
    "KLINE_INTERVALS",
    "KNOWN_QUOTES",
    "MessageKind",
    "ParsedMessage",
    "binance_symbol",
    "decode_frame",
    "error_for_code",
    "kline_channel",
    "parse_agg_trade",
    "parse_book_ticker",
    "parse_kline",
    "parse_message",
    "parse_message_checked",
    "parse_message_typed",
    "parse_rest_klines",
    "stream_name",
    "subscribe_frame",
    "take_items",
    "unsubscribe_frame",
]

# Quote assets listed on Binance spot, US and futures; longest first so BUSD wins over USD.
KNOWN_QUOTES: Final[tuple[str, ...]] = tuple(
    sorted(
        {
            "USDT", "BUSD", "USDC", "FDUSD", "TUSD", "USDP", "USDS", "DAI", "PAX", "UST",
            "BTC", "ETH", "BNB", "XRP", "TRX", "DOGE", "DOT", "SOL",
            "USD", "EUR", "GBP", "AUD", "BRL", "TRY", "RUB", "UAH", "NGN", "ZAR", "IDRT",
            "BIDR", "BKRW", "PLN", "RON", "ARS", "JPY", "MXN", "COP", "CZK", "VAI", "BVND",
        },
        key=lambda quote: (-len(quote), quote),
    )
)  # fmt: skip

_MS: Final = 1_000_000  # ns per ms
_TRADE: Final = TickType.TRADE  # compiled: a C static, not a lookup through EnumType
_QUOTE: Final = TickType.QUOTE
# C statics for classes of pure modules, used per item (see lean_data.quality.screen)
_TRADE_BAR: Final = TradeBar
_BUILD_BAR: Final = BUILD_BAR
_BUILD_TICK: Final = BUILD_TICK
_TICK: Final = Tick
_KLINE_EVENT: Final = KlineEvent
_AGG_TRADE_EVENT: Final = AggTradeEvent
_decode_envelope: Final = decode_envelope
_decode_spot_book_envelope: Final = decode_spot_book_envelope
_astuple: Final = astuple
_NS_PER_WEEK: Final = 7 * NS_PER_DAY

# Binance kline intervals with a fixed length ("1M", a calendar month, has none).
KLINE_INTERVALS: Final[dict[str, Resolution]] = {
    interval: Resolution.parse(interval)
    for interval in ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h")
} | {"1d": Resolution.DAILY, "3d": Resolution(3 * NS_PER_DAY), "1w": Resolution(_NS_PER_WEEK)}
_INTERVAL_OF: Final[dict[Resolution, str]] = {res: name for name, res in KLINE_INTERVALS.items()}

MessageKind = Literal["kline", "agg_trade", "book_ticker", "ack", "error", "unknown"]


class ParsedMessage:
    """One decoded websocket frame.

    Attributes:
        kind: ``kline``, ``agg_trade``, ``book_ticker`` (``item`` set), ``ack`` (a reply to
            SUBSCRIBE/UNSUBSCRIBE; ``request_id`` set), ``error`` (``error``, ``error_code``
            and, when the venue echoed it, ``request_id`` set) or ``unknown`` (an event this
            module does not decode; ``event`` names it).
        item: the bar or tick, for data kinds.
        stream: the combined-stream name (``"btcusdt@kline_1m"``), "" for raw payloads.
        request_id: the ``id`` of an ack or error reply.
        error: the venue's error message.
        error_code: the venue's error code.
        event: the payload's ``e`` field ("" when absent).

    A plain class, not a dataclass: compiled, a dataclass's generated ``__init__`` cost
    ~10x a native one, once per frame. Equality and ``repr`` are written out below.
    """

    __slots__ = ("error", "error_code", "event", "item", "kind", "request_id", "stream")

    def __init__(
        self,
        kind: MessageKind,
        item: TradeBar | Tick | None = None,
        stream: str = "",
        request_id: int | None = None,
        error: str = "",
        error_code: int | None = None,
        event: str = "",
    ) -> None:
        self.kind: MessageKind = kind
        self.item = item
        self.stream = stream
        self.request_id = request_id
        self.error = error
        self.error_code = error_code
        self.event = event

    def _fields(self) -> tuple[object, ...]:
        return (
            self.kind, self.item, self.stream, self.request_id, self.error, self.error_code,
            self.event,
        )  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParsedMessage):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __repr__(self) -> str:
        names = ("kind", "item", "stream", "request_id", "error", "error_code", "event")
        shown = ", ".join(f"{n}={v!r}" for n, v in zip(names, self._fields(), strict=True))
        return f"ParsedMessage({shown})"


# --- symbols, streams and requests -----------------------------------------------------


def binance_symbol(stream_symbol: str, quotes: Sequence[str] = KNOWN_QUOTES) -> str:
    """Return the canonical ``BASE/QUOTE`` for a Binance symbol (``"BTCUSDT"`` -> ``"BTC/USDT"``).

    Args:
        stream_symbol: the venue symbol, any case (``"BTCUSDT"``, ``"btcusdt"``).
        quotes: quote assets to try, longest first.

    Raises:
        FeedProtocolError: no quote asset in ``quotes`` ends the symbol.
    """
    text = stream_symbol.upper()
    for quote in quotes:
        if len(text) > len(quote) and text.endswith(quote):
            return f"{text[: -len(quote)]}/{quote}"
    raise FeedProtocolError(
        f"expected a Binance symbol ending in a known quote asset, found {stream_symbol!r}"
    )


_canonical: Final = lru_cache(maxsize=8192)(binance_symbol)


def _fast_item() -> Callable[[bytes | str, int, Mapping[str, str] | None], Any] | None:
    """The C reader of klines and aggTrades (lean_data._binance), None when not built: the
    same item as :func:`parse_message` for the frames it takes ((bar, stream) for an
    in-progress kline), None for the rest."""
    try:
        from lean_data._binance import Decoder
    except ImportError:  # a pure install: every frame takes parse_message
        return None
    return Decoder(_canonical, KLINE_INTERVALS, BUILD_BAR, BUILD_TICK, TickType.TRADE).item


_FAST_ITEM: Final = _fast_item()


def stream_name(symbol: str, channel: str) -> str:
    """Return the stream name for a symbol and channel (``"btcusdt@kline_1m"``).

    Args:
        symbol: ``BTC/USDT``, ``BTC/USDT:USDT`` (the settle part is dropped) or ``BTCUSDT``.
        channel: ``kline_1m``, ``aggTrade``, ``bookTicker``, ...
    """
    pair = symbol.partition(":")[0].replace("/", "")
    if not pair or not channel:
        raise ValueError(f"expected a symbol and a channel, got {symbol!r} and {channel!r}")
    return f"{pair.lower()}@{channel}"


def kline_channel(resolution: Resolution | str) -> str:
    """Return the kline channel for a resolution (``Resolution.MINUTE`` -> ``"kline_1m"``).

    Raises:
        ValueError: Binance has no kline interval of that length.
    """
    resolution = Resolution.parse(resolution)
    interval = _INTERVAL_OF.get(resolution)
    if interval is None:
        raise ValueError(
            f"expected one of Binance's kline intervals {sorted(KLINE_INTERVALS)}, got {resolution}"
        )
    return f"kline_{interval}"


def subscribe_frame(streams: Iterable[str], request_id: int) -> bytes:
    """Return ``{"method":"SUBSCRIBE","params":[...],"id":N}`` as compact JSON bytes."""
    return _request("SUBSCRIBE", streams, request_id)


def unsubscribe_frame(streams: Iterable[str], request_id: int) -> bytes:
    """Return ``{"method":"UNSUBSCRIBE","params":[...],"id":N}`` as compact JSON bytes."""
    return _request("UNSUBSCRIBE", streams, request_id)


def _request(method: str, streams: Iterable[str], request_id: int) -> bytes:
    params = list(streams)
    if not params:
        raise ValueError(f"{method} needs at least one stream")
    return orjson.dumps({"method": method, "params": params, "id": request_id})


def error_for_code(code: int | None, message: str) -> FeedError:
    """Return the lean_data error for a Binance error code (not raised).

    ``-1003`` (request weight exceeded) and ``-1015`` (too many orders/messages) are
    :class:`RateLimitError`; ``-1121`` (invalid symbol) is :class:`SubscriptionError`;
    anything else is :class:`FeedProtocolError`.
    """
    text = f"Binance error {code}: {message}"
    if code in (-1003, -1015):
        return RateLimitError(text)
    if code == -1121:
        return SubscriptionError(text)
    return FeedProtocolError(text)


# --- websocket messages ------------------------------------------------------------------


def parse_message(
    raw: bytes | str, ts_recv: int, *, symbols: Mapping[str, str] | None = None
) -> ParsedMessage:
    """Decode one websocket frame: combined-stream envelope, raw payload, ack or error.

    A well-formed combined-stream frame of a known event is decoded by the typed schemas
    of :mod:`lean_data.wire.binance_typed` (msgspec, in C); anything else by
    :func:`parse_message_checked`. Both give the same result or the same error.

    Args:
        raw: the frame's text or bytes.
        ts_recv: local receive time, ns since the epoch.
        symbols: venue symbol (``"BTCUSDT"``) -> canonical symbol; missing entries fall
            back to :func:`binance_symbol`.

    Raises:
        FeedProtocolError: the frame is not JSON, not an object, or a known event lacks a
            field or has one of the wrong type.
    """
    try:
        return _typed_message(decode_frame(raw), ts_recv, symbols)
    except _RECHECK:
        pass  # not the typed schema or a bad value: the checked path decides and says why
    return parse_message_checked(raw, ts_recv, symbols=symbols)


# What the typed path raises for a frame the checked path must decode (and explain).
_RECHECK: Final = (*TYPED_MISS, FeedProtocolError)


def take_items(
    frames: list[bytes | str],
    start: int,
    ts_recv: Any,
    symbols: Mapping[str, str] | None,
    items: list[Any],
) -> tuple[int, ParsedMessage | None]:
    """Decode ``frames[start:]`` in order, appending each closed bar, trade and quote to
    ``items``, up to the first frame that is something else; one compiled loop for what is
    nearly every frame of a busy stream.

    Returns that frame's index and, when it decoded, its message (an in-progress bar, an
    ack, a venue error, another event), for the feed to handle as :func:`parse_message`'s
    result; None when it does not decode (the feed decodes it again to report why).
    ``(len(frames), None)`` when every frame was taken. ``ts_recv`` is the read's receipt
    time (an int, kept as the object it is: compiled, a native int is boxed at each call).

    With the compiled package, a kline or an aggTrade spelled the usual way is read by the C
    reader (``lean_data._binance``: the same item in one pass); every other frame by
    :func:`parse_message`.
    """
    index, count = start, len(frames)
    fast = _FAST_ITEM
    while index < count:
        frame = frames[index]
        # a kline or an aggTrade in one C pass (lean_data._binance); None: the rest
        item: Any = None if fast is None else fast(frame, ts_recv, symbols)
        if type(item) is tuple:  # an in-progress kline and its stream: the feed's to handle
            return index, ParsedMessage("kline", item[0], item[1], event="kline")
        if item is None:
            try:
                message = parse_message(frame, ts_recv, symbols=symbols)
            except FeedProtocolError:
                return index, None
            item = message.item
            if item is None or (type(item) is _TRADE_BAR and not item.closed):
                return index, message
        items.append(item)
        index += 1
    return count, None


def parse_message_typed(
    raw: bytes | str, ts_recv: int, *, symbols: Mapping[str, str] | None = None
) -> ParsedMessage | None:
    """Decode a frame on the typed path alone: None when it needs the checked path.

    For tests and benchmarks; feeds call parse_message.
    """
    try:
        return _typed_message(decode_frame(raw), ts_recv, symbols)
    except _RECHECK:
        return None


def _typed_message(
    frame: Envelope | SpotBookTickerEnvelope,
    ts_recv: int,
    symbols: Mapping[str, str] | None,
) -> ParsedMessage:
    """What parse_message_checked gives for a typed frame; raises ValueError (float(), an
    interval without a fixed length) or FeedProtocolError (symbol) where its fast paths do."""
    data, stream = frame.data, frame.stream
    # A Struct's fields in one C call (astuple) then read by position: compiled, each
    # attribute read of a Struct is a generic lookup (~20 ns), a tuple index is not.
    # Positions follow the declaration order of KlineBody and AggTradeEvent.
    if type(data) is _KLINE_EVENT:
        k: tuple[Any, ...] = _astuple(data.k)  # t o h l c v x s i ...
        interval: str = k[8]
        resolution = KLINE_INTERVALS.get(interval)
        if resolution is None:
            raise ValueError(f"kline interval {interval!r}")
        venue: str = k[7]
        found = _mapped(symbols, venue)
        start: int = k[0]
        closed: bool = k[6]
        bar = _BUILD_BAR(  # TradeBar's fields in order, filled in C (lean_data.slots)
            _canonical(venue) if found is None else found,
            start * _MS, _float(k[1]), _float(k[2]), _float(k[3]), _float(k[4]), _float(k[5]),
            resolution, ts_recv, closed, 0, False,
        )  # fmt: skip
        return ParsedMessage("kline", bar, stream, event="kline")
    if type(data) is _AGG_TRADE_EVENT:
        a: tuple[Any, ...] = _astuple(data)  # a T p q m s ...
        venue = a[5]
        found = _mapped(symbols, venue)
        trade_ms: int = a[1]
        tick = _BUILD_TICK(  # Tick's fields in order, filled in C (lean_data.slots)
            _canonical(venue) if found is None else found,
            trade_ms * _MS, _float(a[2]), _float(a[3]), _TRADE, ts_recv, 0.0, 0.0, 0.0, 0.0,
            "", "buyer_maker" if a[4] else "", False, str(a[0]),
        )  # fmt: skip
        return ParsedMessage("agg_trade", tick, stream, event="aggTrade")
    if type(data) is BookTickerEvent or (
        type(data) is SpotBookTicker
        and (stream.endswith("@bookTicker") if stream else data.u is not UNSET)
    ):  # a spot bookTicker names no event: its stream (or, without one, its keys) tells
        bid, ask = _float(data.b), _float(data.a)
        event_ms = data.T if data.T is not UNSET else data.E
        found = symbols.get(data.s) if symbols is not None else None
        quote = Tick(
            _canonical(data.s) if found is None else found,
            ts_recv if event_ms is UNSET else event_ms * _MS, (bid + ask) / 2.0, 0.0,
            _QUOTE, ts_recv, bid_price=bid, bid_size=_float(data.B), ask_price=ask,
            ask_size=_float(data.A),
        )  # fmt: skip
        return ParsedMessage("book_ticker", quote, stream, event="bookTicker")
    return ParsedMessage("unknown", stream=stream, event=data.event)


def decode_frame(raw: bytes | str) -> Envelope | SpotBookTickerEnvelope:
    """Decode a combined-stream frame of one of the typed events (compiled: no interpreted
    call between the feed's loop and msgspec's decoder).

    Raises:
        msgspec.DecodeError: the frame is not one of these schemas (the caller takes the
            checked path); :class:`msgspec.ValidationError` is a subclass.
        UnicodeEncodeError: ``raw`` is a str with a lone surrogate.
        RecursionError: ``raw`` nests arrays or objects about 1,000 deep.
    """
    try:
        frame: Envelope | SpotBookTickerEnvelope = _decode_envelope(raw)
    except ValidationError:  # well-formed JSON of another shape: maybe a spot bookTicker
        frame = _decode_spot_book_envelope(raw)
    return frame


def _mapped(symbols: Mapping[str, str] | None, venue: str) -> str | None:
    """``symbols.get(venue)``; compiled, a dict's (the feeds pass one) is a C lookup where a
    Mapping's ``get`` is a generic method call."""
    if type(symbols) is dict:
        return symbols.get(venue)
    return symbols.get(venue) if symbols is not None else None


def parse_message_checked(
    raw: bytes | str, ts_recv: int, *, symbols: Mapping[str, str] | None = None
) -> ParsedMessage:
    """Decode one websocket frame with dicts, checking field by field (see parse_message)."""
    message = _object(_loads(raw), "frame")
    stream = message.get("stream")
    if stream is not None and "data" in message:
        if not isinstance(stream, str):
            raise _bad("envelope.stream", "a string", stream)
        return _parse_payload(_object(message["data"], "envelope.data"), stream, ts_recv, symbols)
    if "id" in message and ("result" in message or "error" in message):
        return _parse_reply(message)
    if "code" in message and "msg" in message:
        return _error(message, None)
    return _parse_payload(message, "", ts_recv, symbols)


def _parse_payload(
    data: Mapping[str, object], stream: str, ts_recv: int, symbols: Mapping[str, str] | None
) -> ParsedMessage:
    event = data.get("e", "")
    if event == "kline":
        item: TradeBar | Tick = parse_kline(data, ts_recv, symbols=symbols)
        return ParsedMessage("kline", item, stream, event="kline")
    if event == "aggTrade":
        item = parse_agg_trade(data, ts_recv, symbols=symbols)
        return ParsedMessage("agg_trade", item, stream, event="aggTrade")
    if event == "bookTicker" or (event == "" and _is_spot_book_ticker(data, stream)):
        item = parse_book_ticker(data, ts_recv, symbols=symbols)
        return ParsedMessage("book_ticker", item, stream, event="bookTicker")
    return ParsedMessage("unknown", stream=stream, event=event if isinstance(event, str) else "")


def _is_spot_book_ticker(data: Mapping[str, object], stream: str) -> bool:
    if stream:
        return stream.endswith("@bookTicker")
    return "u" in data and "b" in data and "A" in data and "s" in data


def _parse_reply(message: Mapping[str, object]) -> ParsedMessage:
    request_id = message["id"]
    if request_id is not None and type(request_id) is not int:
        raise _bad("reply.id", "an integer or null", request_id)
    if "error" in message:
        return _error(_object(message["error"], "reply.error"), request_id)
    return ParsedMessage("ack", request_id=request_id)


def _error(body: Mapping[str, object], request_id: int | None) -> ParsedMessage:
    code, text = body.get("code"), body.get("msg", "")
    if code is not None and type(code) is not int:
        raise _bad("error.code", "an integer", code)
    return ParsedMessage(
        "error", request_id=request_id, error=str(text), error_code=code, event="error"
    )


def parse_kline(
    data: Mapping[str, object], ts_recv: int, *, symbols: Mapping[str, str] | None = None
) -> TradeBar:
    """Return the bar of a ``kline`` event (in progress unless ``k.x`` is true).

    ``ts_event`` is the open time ``k.t``; ``resolution`` comes from ``k.i``.

    Raises:
        FeedProtocolError: ``k`` or one of its fields is missing or of the wrong type, or
            the interval has no fixed length (``"1M"``).
    """
    try:  # the well-formed frame, checked in one go; anything unusual takes the slow path
        k: Any = data["k"]
        o, h, lo, c, v, t, x, s, i = (
            k["o"], k["h"], k["l"], k["c"], k["v"], k["t"], k["x"], k["s"], k["i"]
        )  # fmt: skip
        if (
            type(o) is str and type(h) is str and type(lo) is str and type(c) is str
            and type(v) is str and type(t) is int and type(x) is bool and type(s) is str
            and type(i) is str
        ):  # fmt: skip
            resolution = KLINE_INTERVALS.get(i)
            if resolution is not None:
                found = symbols.get(s) if symbols is not None else None
                return TradeBar(
                    _canonical(s) if found is None else found,
                    t * _MS, float(o), float(h), float(lo), float(c), float(v),
                    resolution, ts_recv, x,
                )  # fmt: skip
    except (KeyError, TypeError, ValueError):
        pass
    return _parse_kline_checked(data, ts_recv, symbols)


def _parse_kline_checked(
    data: Mapping[str, object], ts_recv: int, symbols: Mapping[str, str] | None
) -> TradeBar:
    """parse_kline field by field, raising a precise error for the first bad field."""
    k = _object(_field(data, "k", "kline"), "kline.k")
    interval = _field(k, "i", "kline.k")
    resolution = KLINE_INTERVALS.get(interval) if isinstance(interval, str) else None
    if resolution is None:
        raise _bad("kline.k.i", f"one of {sorted(KLINE_INTERVALS)}", interval)
    return TradeBar(
        symbol=_symbol(k, "kline.k", symbols),
        ts_event=_ms_to_ns(k, "t", "kline.k"),
        open=_decimal(k, "o", "kline.k"),
        high=_decimal(k, "h", "kline.k"),
        low=_decimal(k, "l", "kline.k"),
        close=_decimal(k, "c", "kline.k"),
        volume=_decimal(k, "v", "kline.k"),
        resolution=resolution,
        ts_recv=ts_recv,
        closed=_flag(k, "x", "kline.k"),
    )


def parse_agg_trade(
    data: Mapping[str, object], ts_recv: int, *, symbols: Mapping[str, str] | None = None
) -> Tick:
    """Return the TRADE tick of an ``aggTrade`` event.

    ``ts_event`` is the trade time ``T``; ``trade_id`` the aggregate id ``a``;
    ``condition`` is ``"buyer_maker"`` when ``m`` is true, else ``""``.

    Raises:
        FeedProtocolError: a field is missing or of the wrong type.
    """
    try:  # the well-formed event in one go; anything unusual takes the slow path
        a, t, p, q, m, s = data["a"], data["T"], data["p"], data["q"], data["m"], data["s"]
        if (
            type(a) is int and type(t) is int and type(p) is str and type(q) is str
            and type(m) is bool and type(s) is str
        ):  # fmt: skip
            found = symbols.get(s) if symbols is not None else None
            return Tick(
                _canonical(s) if found is None else found,
                t * _MS, float(p), float(q), _TRADE, ts_recv,
                condition="buyer_maker" if m else "", trade_id=str(a),
            )  # fmt: skip
    except (KeyError, TypeError, ValueError):
        pass
    return _parse_agg_trade_checked(data, ts_recv, symbols)


def _parse_agg_trade_checked(
    data: Mapping[str, object], ts_recv: int, symbols: Mapping[str, str] | None
) -> Tick:
    """parse_agg_trade field by field, raising a precise error for the first bad field."""
    trade_id = _field(data, "a", "aggTrade")
    if type(trade_id) is not int:
        raise _bad("aggTrade.a", "an integer", trade_id)
    return Tick(
        symbol=_symbol(data, "aggTrade", symbols),
        ts_event=_ms_to_ns(data, "T", "aggTrade"),
        price=_decimal(data, "p", "aggTrade"),
        size=_decimal(data, "q", "aggTrade"),
        tick_type=TickType.TRADE,
        ts_recv=ts_recv,
        condition="buyer_maker" if _flag(data, "m", "aggTrade") else "",
        trade_id=str(trade_id),
    )


def parse_book_ticker(
    data: Mapping[str, object], ts_recv: int, *, symbols: Mapping[str, str] | None = None
) -> Tick:
    """Return the QUOTE tick of a ``bookTicker`` payload (best bid and ask).

    ``price`` is the midpoint. The event time is ``T`` (futures transaction time), else
    ``E``, else ``ts_recv`` (spot sends neither).

    Raises:
        FeedProtocolError: a field is missing or of the wrong type.
    """
    bid, ask = _decimal(data, "b", "bookTicker"), _decimal(data, "a", "bookTicker")
    key = "T" if "T" in data else "E" if "E" in data else ""
    return Tick(
        symbol=_symbol(data, "bookTicker", symbols),
        ts_event=_ms_to_ns(data, key, "bookTicker") if key else ts_recv,
        price=(bid + ask) / 2.0,
        size=0.0,
        tick_type=TickType.QUOTE,
        ts_recv=ts_recv,
        bid_price=bid,
        bid_size=_decimal(data, "B", "bookTicker"),
        ask_price=ask,
        ask_size=_decimal(data, "A", "bookTicker"),
    )


# --- REST klines -------------------------------------------------------------------------


def parse_rest_klines(
    body: bytes | str,
    symbol: str,
    resolution: Resolution,
    *,
    now_ns: int,
    backfilled: bool = False,
) -> list[TradeBar]:
    """Decode a ``GET /api/v3/klines`` body (12-field arrays) into bars.

    A bar is closed when its close time (field 6, ms) is before ``now_ns``; the last bar
    of a live request is usually still forming. ``ts_recv`` is ``now_ns``.

    Args:
        body: the response body.
        symbol: canonical symbol to put on the bars.
        resolution: the requested interval; every row must span exactly this long.
        now_ns: the time the response was received, ns since the epoch.
        backfilled: mark the bars as fetched to fill a gap.

    Raises:
        FeedError: the body is a Binance error object (see :func:`error_for_code`).
        FeedProtocolError: the body is not a list of 12-field kline arrays.
    """
    rows = _loads(body)
    if isinstance(rows, dict):
        code = rows.get("code")
        raise error_for_code(code if type(code) is int else None, str(rows.get("msg", rows)))
    if not isinstance(rows, list):
        raise _bad("klines", "a JSON array of kline arrays", rows)
    return [_rest_bar(row, i, symbol, resolution, now_ns, backfilled) for i, row in enumerate(rows)]


def _rest_bar(
    row: object, index: int, symbol: str, resolution: Resolution, now_ns: int, backfilled: bool
) -> TradeBar:
    where = f"klines[{index}]"
    if not isinstance(row, list) or len(row) < 7:
        raise _bad(where, "an array of 12 kline fields (at least 7)", row)
    fields = dict(zip("tohlcvT", row, strict=False))
    open_ns, close_ns = _ms_to_ns(fields, "t", where), _ms_to_ns(fields, "T", where)
    if close_ns + _MS - open_ns != resolution.nanos:
        raise _bad(f"{where} close time", f"open time + {resolution} - 1 ms", fields["T"])
    return TradeBar(
        symbol=symbol,
        ts_event=open_ns,
        open=_decimal(fields, "o", where),
        high=_decimal(fields, "h", where),
        low=_decimal(fields, "l", where),
        close=_decimal(fields, "c", where),
        volume=_decimal(fields, "v", where),
        resolution=resolution,
        ts_recv=now_ns,
        closed=close_ns < now_ns,
        backfilled=backfilled,
    )


# --- field access: cheap on the happy path, precise messages otherwise ---------------------


def _loads(raw: bytes | str) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        preview = raw[:80] if isinstance(raw, str) else raw[:80].decode("utf-8", "replace")
        raise FeedProtocolError(f"expected JSON, found {preview!r} ({exc})") from None


def _object(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise _bad(where, "a JSON object", value)
    return value


def _field(data: Mapping[str, object], key: str, where: str) -> object:
    try:
        return data[key]
    except KeyError:
        raise FeedProtocolError(
            f"{where}: expected field {key!r}, found fields {sorted(data)}"
        ) from None


def _decimal(data: Mapping[str, object], key: str, where: str) -> float:
    value = _field(data, key, where)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise _bad(f"{where}.{key}", "a decimal string", value)


def _ms_to_ns(data: Mapping[str, object], key: str, where: str) -> int:
    value = _field(data, key, where)
    if type(value) is not int:
        raise _bad(f"{where}.{key}", "an integer of milliseconds", value)
    return value * _MS


def _flag(data: Mapping[str, object], key: str, where: str) -> bool:
    value = _field(data, key, where)
    if type(value) is not bool:
        raise _bad(f"{where}.{key}", "true or false", value)
    return value


def _symbol(data: Mapping[str, object], where: str, symbols: Mapping[str, str] | None) -> str:
    value = _field(data, "s", where)
    if type(value) is not str:
        raise _bad(f"{where}.s", "a symbol string", value)
    if symbols is not None:
        found = symbols.get(value)
        if found is not None:
            return found
    return _canonical(value)


def _bad(where: str, expected: str, found: object) -> FeedProtocolError:
    text = repr(found)
    if len(text) > 80:
        text = text[:77] + "..."
    return FeedProtocolError(f"{where}: expected {expected}, found {type(found).__name__} {text}")
