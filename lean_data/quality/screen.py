"""The first judgement of every item: values no market and no storage can hold.

Pure and stateless. The engine screens each item before continuity, buffering, storage or
any calendar arithmetic sees it, so an impossible time can never become a series head and
no computation grows with the size of a bogus time jump. Everything here is INVALID:

=======================  =============================================================
``bad_timestamp``        the event (or receive) time is not an ``int`` (a float, NaN,
                         ``bool``) or is outside int64 nanoseconds (negative, >= 2**63)
``timestamp_unit``       the event time falls in 1970, where a time in seconds,
                         milliseconds or microseconds given as nanoseconds lands
``future_timestamp``     the event time is later than the receive time (or, without
                         one, the wall clock) by more than ``clock_skew_ns``
``bad_revision``         a bar's revision is not a non-negative ``int`` below 2**63
``bad_field``            a bar's resolution is not a ``Resolution`` or its ``closed`` or
                         ``backfilled`` flag not a ``bool``; a tick's ``tick_type`` is not
                         a ``TickType``
``absurd_value``         a price, size or volume that is not a number (None, text, a
                         ``bool``), or a finite one beyond 1e12 (a price) or 1e18 (a
                         size/volume; this covers ints that storage cannot hold, 2**63
                         and more); NaN and
                         infinities are left to the validator's own rules
``bad_text``             a string field (symbol, exchange, condition, trade id) is not
                         a ``str`` or is not valid Unicode text (a lone surrogate)
=======================  =============================================================

Then the value rules (:mod:`lean_data.quality.validator` lists them): OHLC inconsistent, a price
not positive or not finite, a negative or infinite volume or size, a crossed quote. The
stateful checks after it never see such an item.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields as dataclass_fields
from typing import Any, Final

from lean_data.models import MarketData, QuoteBar, Resolution, Tick, TickType, TradeBar, model_kind
from lean_data.native import twin
from lean_data.quality.levels import DataQualityLevel, Verdict
from lean_data.quality.rules import INF, bad_price, fmt, ohlc_problem, size_issue, verdict
from lean_data.slots import (
    BAR,
    BAR_BACKFILLED,
    BAR_CLOSE,
    BAR_CLOSED,
    BAR_HIGH,
    BAR_LOW,
    BAR_OPEN,
    BAR_RESOLUTION,
    BAR_REVISION,
    BAR_SYMBOL,
    BAR_TS_EVENT,
    BAR_TS_RECV,
    BAR_VOLUME,
    TICK,
    TICK_ASK_PRICE,
    TICK_ASK_SIZE,
    TICK_BID_PRICE,
    TICK_BID_SIZE,
    TICK_CONDITION,
    TICK_EXCHANGE,
    TICK_PRICE,
    TICK_SIZE,
    TICK_SYMBOL,
    TICK_TRADE_ID,
    TICK_TS_EVENT,
    TICK_TS_RECV,
    TICK_TYPE,
)

__all__ = ["MAX_PRICE", "MAX_SIZE", "MIN_EVENT_NS", "bad_text", "kind_of", "screen"]

INT64_MAX: Final = 2**63 - 1
# The fast path's upper bound: compiled, an int up to 2**62 - 1 is a C value and compares
# as one, where INT64_MAX is a boxed int and each comparison with it a generic call. Times
# from 2116 to int64's end fail the fast path and take the full walk, which judges them.
_FAST_MAX: Final = 2**62 - 1
MIN_EVENT_NS: Final = 365 * 86_400 * 10**9
"""1971-01-01: earlier event times are taken for seconds, ms or us mistaken for ns."""
MAX_PRICE: Final = 1e12
"""No traded instrument is priced above this; beyond it a value is corrupt."""
MAX_SIZE: Final = 1e18
"""No trade, quote or bar volume is this large (SHIB minutes reach ~1e13)."""

_INVALID: Final = DataQualityLevel.INVALID
# Compiled, a class imported from a pure module is looked up in this module's dict at each
# use (~100 instructions); a Final alias is a C static. The per-item checks use these.
_TRADE_BAR: Final = TradeBar
_TICK: Final = Tick
_QUOTE_BAR: Final = QuoteBar
_RESOLUTION: Final = Resolution
_BAR: Final = BAR
_TICK_FIELDS: Final = TICK
_TRADE: Final = TickType.TRADE
# str.isascii called as a function: compiled, text.isascii() on a value narrowed by an exact
# type check is a method looked up by name (~200 instructions); this is one C call
_isascii: Final[Callable[[object], bool]] = str.isascii  # type: ignore[assignment]
_QUOTE: Final = TickType.QUOTE
_OHLC: Final = ("open", "high", "low", "close")
_INFINITIES: Final = (float("inf"), float("-inf"))
_BAR_FIELDS: Final[tuple[tuple[str, type], ...]] = (
    ("resolution", Resolution), ("closed", bool), ("backfilled", bool),
)  # fmt: skip
_TRADE_BAR_PRICES: Final[tuple[str, ...]] = ("open", "high", "low", "close")
_QUOTE_BAR_PRICES: Final[tuple[str, ...]] = (
    "bid_open", "bid_high", "bid_low", "bid_close", "ask_open", "ask_high", "ask_low", "ask_close",
)  # fmt: skip


def kind_of(item: object) -> type | None:
    """:func:`~lean_data.models.model_kind` with the common case first: TradeBar, QuoteBar
    or Tick for an item of that model or of a subclass of it, None for anything else.

    Every stage takes an item's path by this, so a user's subclass is handled as its base
    model; compiled, an exact model costs identity checks and no Python call.
    """
    kind = type(item)
    if kind is _TRADE_BAR or kind is _TICK or kind is _QUOTE_BAR:
        return kind
    return model_kind(item)


def _kind(item: MarketData) -> type:
    """:func:`kind_of`, with TypeError for an item that is not a model."""
    kind = kind_of(item)
    if kind is None:
        raise TypeError(f"expected a TradeBar, QuoteBar or Tick, got {type(item).__name__}")
    return kind


def _invalid(code: str, message: str) -> Verdict:
    return Verdict(_INVALID, (code,), message)


def bad_text(value: object) -> str | None:
    """Return why ``value`` is not storable text, or None when it is."""
    if type(value) is not str:
        return f"expected a str, found {type(value).__name__} {value!r:.60}"
    if value.isascii():
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"{ascii(value)[:60]} is not valid Unicode text ({exc.reason})"
    return None


def _time(name: str, ts: object) -> Verdict | None:
    if type(ts) is not int:
        return _invalid("bad_timestamp", f"{name} {ts!r:.40} is not an int of nanoseconds")
    if not 0 <= ts <= INT64_MAX:
        return _invalid("bad_timestamp", f"{name} {ts} is outside int64 nanoseconds")
    return None


def _number(name: str, value: object, limit: float) -> Verdict | None:
    """Absurd when beyond ``limit`` in magnitude (NaN passes: later rules judge it)."""
    kind = type(value)
    if kind is float:
        if -limit <= value <= limit or value != value or value in _INFINITIES:  # type: ignore[operator]  # a float
            return None  # NaN and infinities: the validator's rules name them
    elif kind is int:
        if -limit <= value <= limit:  # type: ignore[operator]  # an int
            return None
    elif kind is bool:
        return _invalid("absurd_value", f"{name} is a bool ({value})")
    else:
        return _invalid("absurd_value", f"{name} is a {kind.__name__}, not a number")
    shown = f"{value:.6g}" if kind is float else f"an int of {len(str(abs(value)))} digits"  # type: ignore[arg-type]
    return _invalid("absurd_value", f"{name} {shown} is beyond {limit:g}")


def screen(item: MarketData, skew_ns: Any, now: Callable[[], int]) -> Verdict | None:
    """Return the INVALID verdict of an item with an impossible value, or None.

    The common case (every field plainly sane) costs one expression; anything else,
    including NaN and infinities, takes the full walk of :func:`_screen`.

    Args:
        item: a TradeBar, QuoteBar or Tick.
        skew_ns: how far an event time may be ahead of the receive time (or the clock), an
            int (Any: compiled, the int object is handed to the C check as it is).
        now: the wall clock in ns, read only when the item carries no receive time.

    Raises:
        TypeError: ``item`` is not a TradeBar, QuoteBar or Tick.
    """
    kind = _kind(item)  # a subclass of a model takes its path; TypeError for a non-model
    if kind is _TRADE_BAR:  # every field in one call (lean_data.slots), judged from the tuple
        f = _BAR(item)
        plain = _PLAIN_BAR(f, skew_ns, now)
        if plain is None:  # a value the C check does not read: the twin compares it
            plain = _plain_bar(f, skew_ns, now)
        return None if plain else _screen(item, skew_ns, now)
    if kind is _TICK:
        f = _TICK_FIELDS(item)
        plain = _PLAIN_TICK(f, skew_ns, now)
        if plain is None:
            plain = _plain_tick(f, skew_ns, now)
        if plain:
            return None
    return _screen(item, skew_ns, now)


def _plain_times(
    ts: object, recv: object, symbol: object, skew_ns: int, now: Callable[[], int]
) -> bool:
    """True when an item's event and receive times and its symbol are plainly sane.

    Fields are read untyped (object) until judged: the compiled build checks a typed read
    and would raise TypeError for a float time where the screen must answer INVALID. Narrowed
    by exact type checks, a value compares as a C int or double, where an object compares
    through a generic rich comparison. Numbers of another type (an int price, a NumPy float)
    are compared as they compare (_sane_bar, _sane_tick); anything that fails takes the full
    walk, which judges it."""
    return (
        type(ts) is int
        and type(recv) is int
        and MIN_EVENT_NS <= ts <= _FAST_MAX
        and 0 <= recv <= _FAST_MAX
        and ts - (recv or now()) <= skew_ns
        and type(symbol) is str
        and _isascii(symbol)
    )


def _plain_bar(f: tuple[Any, ...], skew_ns: int, now: Callable[[], int]) -> bool:
    """True when a bar's fields (:data:`lean_data.slots.BAR`'s tuple) are all plainly sane:
    :func:`screen`'s one expression for a bar (see :func:`_plain_times` for the reads)."""
    if not _plain_times(f[BAR_TS_EVENT], f[BAR_TS_RECV], f[BAR_SYMBOL], skew_ns, now):
        return False
    o: object = f[BAR_OPEN]
    h: object = f[BAR_HIGH]
    lo: object = f[BAR_LOW]
    c: object = f[BAR_CLOSE]
    v: object = f[BAR_VOLUME]
    if (
        type(o) is float
        and type(h) is float
        and type(lo) is float
        and type(c) is float
        and type(v) is float
    ):
        sane = 0.0 < lo <= o <= h <= MAX_PRICE and lo <= c <= h and 0.0 <= v <= MAX_SIZE
    else:
        sane = _sane_bar(o, h, lo, c, v)
    revision: object = f[BAR_REVISION]
    return (
        sane
        and type(revision) is int
        and 0 <= revision <= _FAST_MAX
        and type(f[BAR_RESOLUTION]) is _RESOLUTION
        and type(f[BAR_CLOSED]) is bool
        and type(f[BAR_BACKFILLED]) is bool
    )


def _plain_tick(f: tuple[Any, ...], skew_ns: int, now: Callable[[], int]) -> bool:
    """True when a tick's fields (:data:`lean_data.slots.TICK`'s tuple) are all plainly
    sane: :func:`screen`'s one expression for a tick (see :func:`_plain_times`)."""
    if not _plain_times(f[TICK_TS_EVENT], f[TICK_TS_RECV], f[TICK_SYMBOL], skew_ns, now):
        return False
    tick_type: object = f[TICK_TYPE]
    price: object = f[TICK_PRICE]
    size: object = f[TICK_SIZE]
    bid: object = f[TICK_BID_PRICE]
    ask: object = f[TICK_ASK_PRICE]
    bid_size: object = f[TICK_BID_SIZE]
    ask_size: object = f[TICK_ASK_SIZE]
    if (
        type(price) is not float
        or type(size) is not float
        or type(bid) is not float
        or type(ask) is not float
        or type(bid_size) is not float
        or type(ask_size) is not float
    ):
        sane = _sane_tick(tick_type, price, size, bid, ask, bid_size, ask_size)
    elif tick_type is _TRADE:
        sane = 0.0 < price <= MAX_PRICE and 0.0 <= size <= MAX_SIZE
        sane = sane and -MAX_PRICE <= bid <= MAX_PRICE
        sane = sane and -MAX_PRICE <= ask <= MAX_PRICE
        sane = sane and -MAX_SIZE <= bid_size <= MAX_SIZE
        sane = sane and -MAX_SIZE <= ask_size <= MAX_SIZE
    else:
        sane = tick_type is _QUOTE
        sane = sane and 0.0 < bid <= ask <= MAX_PRICE
        sane = sane and 0.0 <= bid_size <= MAX_SIZE
        sane = sane and 0.0 <= ask_size <= MAX_SIZE
        sane = sane and -MAX_PRICE <= price <= MAX_PRICE
        sane = sane and -MAX_SIZE <= size <= MAX_SIZE
    exchange: object = f[TICK_EXCHANGE]
    condition: object = f[TICK_CONDITION]
    trade_id: object = f[TICK_TRADE_ID]
    return (
        sane
        and type(exchange) is str
        and _isascii(exchange)
        and type(condition) is str
        and _isascii(condition)
        and type(trade_id) is str
        and _isascii(trade_id)
    )


def _no_limits(*values: object) -> None:
    """The pure build's ``screen_limits``: there is no C check to give them to."""


Plain = Callable[[tuple[Any, ...], Any, Callable[[], int]], bool | None]
# The one-expression checks in C where the package is compiled (lean_data._slots: the pure
# twins' answer, or None where the C reading does not take a value and the twin must
# answer), given this module's limits, kinds and field indexes
_PLAIN_BAR: Final[Plain] = twin("lean_data._slots", "plain_bar", _plain_bar)
_PLAIN_TICK: Final[Plain] = twin("lean_data._slots", "plain_tick", _plain_tick)
twin("lean_data._slots", "screen_limits", _no_limits)(
    MIN_EVENT_NS, _FAST_MAX, MAX_PRICE, MAX_SIZE, _TRADE, _QUOTE, Resolution,
    (TICK_TS_EVENT, TICK_TS_RECV, TICK_SYMBOL, TICK_TYPE, TICK_PRICE, TICK_SIZE,
     TICK_BID_PRICE, TICK_ASK_PRICE, TICK_BID_SIZE, TICK_ASK_SIZE, TICK_EXCHANGE,
     TICK_CONDITION, TICK_TRADE_ID),
    len(dataclass_fields(Tick)),
    (BAR_TS_EVENT, BAR_TS_RECV, BAR_SYMBOL, BAR_OPEN, BAR_HIGH, BAR_LOW, BAR_CLOSE,
     BAR_VOLUME, BAR_REVISION, BAR_RESOLUTION, BAR_CLOSED, BAR_BACKFILLED),
    len(dataclass_fields(TradeBar)),
)  # fmt: skip


def _sane_bar(o: Any, h: Any, lo: Any, c: Any, v: Any) -> bool:
    """:func:`screen`'s bar values check for numbers that are not all exact floats; False
    for values that do not compare with numbers (None, text): the full walk names them."""
    try:
        return bool(0.0 < lo <= o <= h <= MAX_PRICE and lo <= c <= h and 0.0 <= v <= MAX_SIZE)
    except TypeError:
        return False


def _sane_tick(
    tick_type: object, price: Any, size: Any, bid: Any, ask: Any, bid_size: Any, ask_size: Any
) -> bool:
    """:func:`screen`'s tick values check for numbers that are not all exact floats; False
    for values that do not compare with numbers (None, text): the full walk names them."""
    try:
        return _sane_tick_values(tick_type, price, size, bid, ask, bid_size, ask_size)
    except TypeError:
        return False


def _sane_tick_values(
    tick_type: object, price: Any, size: Any, bid: Any, ask: Any, bid_size: Any, ask_size: Any
) -> bool:
    if tick_type is _TRADE:
        sane = 0.0 < price <= MAX_PRICE and 0.0 <= size <= MAX_SIZE
        sane = sane and -MAX_PRICE <= bid <= MAX_PRICE
        sane = sane and -MAX_PRICE <= ask <= MAX_PRICE
        sane = sane and -MAX_SIZE <= bid_size <= MAX_SIZE
        return bool(sane and -MAX_SIZE <= ask_size <= MAX_SIZE)
    sane = tick_type is _QUOTE
    sane = sane and 0.0 < bid <= ask <= MAX_PRICE
    sane = sane and 0.0 <= bid_size <= MAX_SIZE
    sane = sane and 0.0 <= ask_size <= MAX_SIZE
    sane = sane and -MAX_PRICE <= price <= MAX_PRICE
    return bool(sane and -MAX_SIZE <= size <= MAX_SIZE)


def _screen(item: MarketData, skew_ns: int, now: Callable[[], int]) -> Verdict | None:
    """The full walk behind :func:`screen`: every field, in a fixed order."""
    kind = _kind(item)  # a subclass of a model takes its path; TypeError for a non-model
    fields: Any = item  # untyped reads, as in screen()
    bad = _time("ts_event", fields.ts_event) or _time("ts_recv", fields.ts_recv)
    if bad is not None:
        return bad
    ts: int = fields.ts_event
    if ts < MIN_EVENT_NS:
        return _invalid(
            "timestamp_unit",
            f"ts_event {ts} is in 1970: a time in s, ms or us given as ns?",
        )
    reference = item.ts_recv or now()
    if ts - reference > skew_ns:
        what = "receive time" if item.ts_recv else "clock"
        return _invalid(
            "future_timestamp",
            f"event time {ts} is {(ts - reference) / 1e9:.3f} s after the {what} {reference}",
        )
    text = bad_text(fields.symbol)
    if text is not None:
        return _invalid("bad_text", f"symbol: {text}")
    if kind is TradeBar or kind is QuoteBar:
        revision = fields.revision  # bars only
        if type(revision) is not int or not 0 <= revision <= INT64_MAX:
            return _invalid("bad_revision", f"revision {revision!r:.40} is not an int >= 0")
        for name, expected in _BAR_FIELDS:
            value = getattr(item, name)
            if type(value) is not expected:
                shown = f"{type(value).__name__} {value!r:.40}"
                return _invalid("bad_field", f"{name} is a {shown}, not a {expected.__name__}")
        prices = _TRADE_BAR_PRICES if kind is TradeBar else _QUOTE_BAR_PRICES
        sizes: tuple[str, ...] = ("volume",) if kind is TradeBar else ("bid_size", "ask_size")
    else:
        tick_type = fields.tick_type
        if type(tick_type) is not TickType:
            shown = f"{type(tick_type).__name__} {tick_type!r:.40}"
            return _invalid("bad_field", f"tick_type is a {shown}, not a TickType")
        for name in ("exchange", "condition", "trade_id"):
            text = bad_text(getattr(item, name))
            if text is not None:
                return _invalid("bad_text", f"{name}: {text}")
        prices = ("price", "bid_price", "ask_price")
        sizes = ("size", "bid_size", "ask_size")
    for name in prices:
        bad = _number(name, getattr(item, name), MAX_PRICE)
        if bad is not None:
            return bad
    for name in sizes:
        bad = _number(name, getattr(item, name), MAX_SIZE)
        if bad is not None:
            return bad
    return _values(item, kind)


def _values(item: MarketData, kind: type) -> Verdict | None:
    """The value rules: impossible prices, OHLC, volumes, sizes and crossed quotes."""
    if kind is TradeBar:
        bar: TradeBar = item  # type: ignore[assignment]  # its kind
        bad = ohlc_problem("", bar.open, bar.high, bar.low, bar.close)
        if bad is not None:
            return Verdict(_INVALID, (bad[0],), bad[1])
        v = bar.volume
        if not 0.0 <= v < INF and v == v:
            code = "negative_volume" if v < 0.0 else "non_finite_volume"
            return _invalid(code, f"volume {fmt(v)} is impossible")
        return None
    if kind is QuoteBar:
        quote: QuoteBar = item  # type: ignore[assignment]  # its kind
        for side in ("bid_", "ask_"):
            bad = ohlc_problem(side, *(getattr(quote, side + f) for f in _OHLC))
            if bad is not None:
                return Verdict(_INVALID, (bad[0],), bad[1])
        size = size_issue(quote.bid_size, quote.ask_size, "quote size")
        if size is not None and size[1] is _INVALID:
            return verdict([size])
        if quote.bid_close > quote.ask_close:
            msg = f"bid_close {fmt(quote.bid_close)} is above ask_close {fmt(quote.ask_close)}"
            return _invalid("crossed_quote", msg)
        return None
    tick: Tick = item  # type: ignore[assignment]  # the last kind
    if tick.tick_type is _TRADE:
        if not 0.0 < tick.price < INF:
            return bad_price("price", tick.price)
        size = size_issue(tick.size, 0.0, "trade size")
    else:
        bid, ask = tick.bid_price, tick.ask_price
        if not 0.0 < bid < INF:
            return bad_price("bid", bid)
        if not 0.0 < ask < INF:
            return bad_price("ask", ask)
        if bid > ask:
            return _invalid("crossed_quote", f"bid {fmt(bid)} is above ask {fmt(ask)}")
        size = size_issue(tick.bid_size, tick.ask_size, "quote size")
    if size is not None and size[1] is _INVALID:
        return verdict([size])
    return None
