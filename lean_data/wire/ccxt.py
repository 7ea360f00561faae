"""Pure helpers for ccxt / ccxt.pro market data: errors, closed candles, rows to models.

No I/O, no asyncio, no clock reads, and ccxt is never imported: its exceptions are
recognised by the names of the classes on their MRO that ccxt defines (module
``ccxt.base.errors``), so this module imports and works without ccxt installed.

- :func:`error_for` maps a ccxt exception to a lean_data :class:`~lean_data.errors.FeedError`
  with the right ``retryable`` flag (table in its docstring); secrets are redacted.
- :class:`CandleCloser` turns the rows of ``watch_ohlcv`` (``[ts_ms, o, h, l, c, v]``,
  in-progress candle included, no closed flag) into final bars, each exactly once, with
  later corrections as revisions; a row whose open time cannot be true (:func:`plausible`)
  is passed on once and changes nothing.
- :func:`ohlcv_to_bars`, :func:`parse_ohlcv_row` and :func:`trade_to_tick` convert ccxt's
  unified structures; :func:`timeframe_of` / :func:`resolution_of` map bar periods.
- :func:`market_asset_class` says what a ccxt market structure is (routing, calendars).
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import orjson

from lean_data.errors import (
    FeedAuthError,
    FeedConnectError,
    FeedError,
    FeedProtocolError,
    RateLimitError,
    SubscriptionError,
)
from lean_data.models import (
    NS_PER_DAY,
    NS_PER_SECOND,
    AssetClass,
    Resolution,
    Tick,
    TickType,
    TradeBar,
)

__all__ = [
    "SECRET_KEYS",
    "CandleCloser",
    "RecentKeys",
    "error_for",
    "is_ccxt_error",
    "market_asset_class",
    "ohlcv_to_bars",
    "parse_ohlcv_row",
    "plausible",
    "redact",
    "resolution_of",
    "secrets_of",
    "timeframe_of",
    "trade_key",
    "trade_to_tick",
    "undecodable_json",
]

_MS = 1_000_000  # ns per ms
MIN_PLAUSIBLE_NS = 365 * NS_PER_DAY
"""1971-01-01: an earlier open time is a unit mistake (seconds read as ms), not a candle."""
DEFAULT_SKEW_NS = 5 * NS_PER_SECOND
"""How far ahead of our clock a venue's clock may run (the engine's ``clock_skew_ns``)."""
_NS_PER_WEEK = 7 * NS_PER_DAY
_CCXT_ERRORS_MODULE = "ccxt.base.errors"

Values = tuple[float, float, float, float, float]
"""open, high, low, close, volume of one candle."""

SECRET_KEYS: tuple[str, ...] = (
    "apiKey",
    "secret",
    "password",
    "uid",
    "login",
    "privateKey",
    "walletAddress",
    "token",
    "twofa",
)
"""ccxt constructor keys whose values are credentials (never logged or put in errors)."""

# --- errors ------------------------------------------------------------------------------

# First class name found along the exception's MRO wins, so the most specific rule applies
# (BadSymbol before BadRequest, RateLimitExceeded before NetworkError, ...).
_RULES: Mapping[str, str] = {
    "BadSymbol": "subscription",
    "AuthenticationError": "auth",  # PermissionDenied, AccountSuspended, AccountNotEnabled
    "RateLimitExceeded": "rate_limit",
    "DDoSProtection": "rate_limit",  # Binance raises it for HTTP 418 and 429
    "InvalidNonce": "protocol",  # ChecksumError (order-book desync) included
    "BadResponse": "protocol",  # NullResponse included
    "NetworkError": "connect",  # RequestTimeout, ExchangeNotAvailable, OnMaintenance
    "ExchangeClosedByUser": "connect",  # a watch pending while its session was closed
    "OperationFailed": "retry",  # CancelPending
    "UnsubscribeError": "retry",
    "BadRequest": "fatal",
    "ArgumentsRequired": "fatal",
    "NotSupported": "fatal",
    "InvalidProxySettings": "fatal",
    "OperationRejected": "fatal",  # MarketClosed, RestrictedLocation, ...
    "ExchangeError": "exchange",
    "BaseError": "retry",
}

_SECRET_PARAM = re.compile(
    r"(?i)\b(signature|api[_-]?key|apikey|secret|passphrase|password|token|x-mbx-apikey)"
    r"(\"?\s*[=:]\s*\"?)([^&\s\"',}]+)"
)


_CRYPTO_MARKET_TYPES = frozenset({"spot", "margin", "swap", "future", "option", "delivery"})


def market_asset_class(market: Mapping[str, Any]) -> AssetClass | None:
    """Return the asset class of a ccxt market structure, or None when it does not say.

    A market ``type`` of spot, margin, swap, future or option is crypto: an exchange ccxt
    speaks to trades every listed market around the clock, fiat pairs included (Kraken's
    EUR/USD), so its sessions are a crypto venue's. A market of another type, or of none,
    is judged by its ``base``/``quote`` pair with :func:`~lean_data.symbols.classify_symbol`.
    """
    from lean_data.symbols import classify_symbol

    if market.get("type") in _CRYPTO_MARKET_TYPES:
        return AssetClass.CRYPTO
    base, quote = market.get("base"), market.get("quote")
    if isinstance(base, str) and isinstance(quote, str) and base and quote:
        return classify_symbol(f"{base}/{quote}")
    return None


def _ccxt_names(exc: BaseException) -> list[str]:
    return [cls.__name__ for cls in type(exc).__mro__ if cls.__module__ == _CCXT_ERRORS_MODULE]


def is_ccxt_error(exc: BaseException) -> bool:
    """Return True when ``exc`` is an instance of a ccxt exception class."""
    return bool(_ccxt_names(exc))


def secrets_of(config: Mapping[str, Any]) -> tuple[str, ...]:
    """Return the credential values in a ccxt constructor config (see :data:`SECRET_KEYS`)."""
    found = (config.get(key) for key in SECRET_KEYS)
    return tuple(value for value in found if isinstance(value, str) and value)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with every secret and every ``signature=``/``apiKey=``-like value masked."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return _SECRET_PARAM.sub(r"\1\2***", text)


def error_for(
    exc: BaseException,
    *,
    feed: str = "",
    retry_after: float | None = None,
    secrets: Iterable[str] = (),
) -> FeedError:
    """Return the lean_data error for a ccxt exception (not raised).

    ==========================================  ==========================  =========
    ccxt exception (and subclasses)             lean_data error             retryable
    ==========================================  ==========================  =========
    RateLimitExceeded, DDoSProtection           RateLimitError              yes
    NetworkError, RequestTimeout,               FeedConnectError            yes
    ExchangeNotAvailable, OnMaintenance
    InvalidNonce, ChecksumError, BadResponse,   FeedProtocolError           yes
    NullResponse
    ExchangeClosedByUser                        FeedConnectError            yes
    OperationFailed, CancelPending,             FeedError                   yes
    UnsubscribeError, other BaseError
    AuthenticationError, PermissionDenied,      FeedAuthError               no
    AccountSuspended, AccountNotEnabled
    BadSymbol                                   SubscriptionError           no
    BadRequest, ArgumentsRequired,              FeedError                   no
    NotSupported, OperationRejected,
    InvalidProxySettings
    ExchangeError caused by a transport error   FeedConnectError            yes
    (``__cause__`` an OSError or aiohttp error)
    any other ExchangeError                     FeedError                   no
    ==========================================  ==========================  =========

    A plain ``ExchangeError`` is what ccxt raises for an error reply it has no specific
    class for (an unknown error code, a websocket error frame); following ccxt's own rule
    that exchange errors are not worth retrying, it stops the feed rather than hammering
    the venue. ccxt also raises it (``from`` the aiohttp exception) when a response broke
    off mid-transfer; that transport failure is retryable.

    Args:
        exc: a ccxt exception.
        feed: the feed's name, for the message.
        retry_after: seconds the venue asked to wait (the ``Retry-After`` header of the
            failed response); kept on a :class:`RateLimitError`.
        secrets: credential values to mask in the message (see :func:`secrets_of`).

    Raises:
        TypeError: ``exc`` is not a ccxt exception.
    """
    names = _ccxt_names(exc)
    if not names:
        raise TypeError(f"expected a ccxt exception, found {type(exc).__name__}")
    rule = next((_RULES[name] for name in names if name in _RULES), "retry")
    message = redact(f"{type(exc).__name__}: {exc}", secrets)
    if rule == "rate_limit":
        return RateLimitError(message, feed=feed, retry_after=retry_after)
    if rule == "connect":
        return FeedConnectError(message, feed=feed)
    if rule == "protocol":
        return FeedProtocolError(message, feed=feed)
    if rule == "auth":
        return FeedAuthError(message, feed=feed)
    if rule == "subscription":
        return SubscriptionError(message, feed=feed)
    if rule == "exchange" and _transport_cause(exc):
        return FeedConnectError(message, feed=feed)
    return FeedError(message, feed=feed, retryable=rule == "retry")


def _transport_cause(exc: BaseException) -> bool:
    cause = exc.__cause__
    if cause is None:
        return False
    if isinstance(cause, OSError):
        return True
    return any(cls.__module__.split(".")[0] == "aiohttp" for cls in type(cause).__mro__)


def undecodable_json(data: object) -> bool:
    """Return True when ``data`` is a frame ccxt decodes as JSON and no JSON decoder accepts.

    ccxt decodes a text or binary frame that starts like a JSON object or array; one that
    does not parse (truncated, garbled) makes its receive loop raise before any handler
    ran, so skipping the frame changes nothing in ccxt.
    """
    if isinstance(data, str):
        data = data.encode(errors="replace")
    if not isinstance(data, bytes | bytearray) or data.lstrip()[:1] not in (b"{", b"["):
        return False
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return True
    return False


# --- periods -----------------------------------------------------------------------------


def timeframe_of(resolution: Resolution | str) -> str:
    """Return the ccxt timeframe of a bar period (``Resolution.MINUTE`` -> ``"1m"``).

    Raises:
        ValueError: ``resolution`` is TICK or not a whole number of seconds.
    """
    res = Resolution.parse(resolution)
    if res.is_tick or res.nanos % NS_PER_SECOND:
        raise ValueError(f"expected a bar period of whole seconds, found {res.name!r}")
    if res.nanos % _NS_PER_WEEK == 0:
        return f"{res.nanos // _NS_PER_WEEK}w"
    return res.name


def resolution_of(timeframe: str) -> Resolution:
    """Return the bar period of a ccxt timeframe (``"1m"``, ``"4h"``, ``"1w"``).

    Raises:
        ValueError: the timeframe has no fixed length (``"1M"``, a calendar month) or is
            not a timeframe.
    """
    text = timeframe.strip()
    if text.endswith("w") and text[:-1].isdigit() and int(text[:-1]) > 0:
        return Resolution(int(text[:-1]) * _NS_PER_WEEK)
    if text.endswith(("M", "y")):
        raise ValueError(f"expected a timeframe of fixed length, found {timeframe!r}")
    return Resolution.parse(text)


# --- rows --------------------------------------------------------------------------------


def _number(value: object, what: str, *, optional: bool = False) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if value is None and optional:
        return math.nan
    raise FeedProtocolError(f"{what}: expected a number, found {type(value).__name__} {value!r}")


def _ms(value: object, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise FeedProtocolError(
        f"{what}: expected a timestamp in ms, found {type(value).__name__} {value!r}"
    )


def parse_ohlcv_row(row: object) -> tuple[int, Values]:
    """Return ``(open time ns, (open, high, low, close, volume))`` of a ccxt OHLCV row.

    A missing volume (``None``) becomes ``nan``.

    Raises:
        FeedProtocolError: the row is not ``[ts_ms, o, h, l, c, v, ...]`` with numbers.
    """
    if not isinstance(row, Sequence) or isinstance(row, str) or len(row) < 6:
        raise FeedProtocolError(f"expected an OHLCV row [ts, o, h, l, c, v], found {row!r:.120}")
    ts = _ms(row[0], "ohlcv timestamp") * _MS
    o, h, low, c = (_number(row[i], f"ohlcv[{i}]") for i in range(1, 5))
    return ts, (o, h, low, c, _number(row[5], "ohlcv[5]", optional=True))


def _bar(
    symbol: str,
    ts: int,
    values: Values,
    resolution: Resolution,
    *,
    closed: bool = True,
    revision: int = 0,
    ts_recv: int = 0,
) -> TradeBar:
    o, h, low, c, v = values
    return TradeBar(
        symbol, ts, o, h, low, c, v, resolution, ts_recv=ts_recv, closed=closed, revision=revision
    )


def ohlcv_to_bars(
    symbol: str,
    rows: Iterable[object],
    resolution: Resolution | str,
    *,
    closed: bool = True,
    ts_recv: int = 0,
) -> list[TradeBar]:
    """Return one :class:`TradeBar` per ccxt OHLCV row, in the rows' order.

    Args:
        symbol: the unified symbol (``"BTC/USDT"``).
        rows: ``[ts_ms, o, h, l, c, v]`` rows as ``fetch_ohlcv`` returns them.
        resolution: the rows' period.
        closed: the bars' ``closed`` flag (True for history).
        ts_recv: receive time to stamp, ns (0: unknown).

    Raises:
        FeedProtocolError: a row is malformed (the message names its index).
    """
    res = Resolution.parse(resolution)
    bars = []
    for index, row in enumerate(rows):
        try:
            ts, values = parse_ohlcv_row(row)
        except FeedProtocolError as exc:
            raise FeedProtocolError(f"row {index}: {exc}") from exc
        bars.append(_bar(symbol, ts, values, res, closed=closed, ts_recv=ts_recv))
    return bars


def trade_key(trade: Mapping[str, Any]) -> Hashable:
    """Return what identifies a ccxt trade: its ``id``, else (timestamp, price, amount, side)."""
    trade_id = trade.get("id")
    if trade_id is not None and trade_id != "":
        return str(trade_id)
    return (trade.get("timestamp"), trade.get("price"), trade.get("amount"), trade.get("side"))


def trade_to_tick(
    symbol: str, trade: Mapping[str, Any], *, exchange: str = "", ts_recv: int = 0
) -> Tick:
    """Return the TRADE tick of a ccxt unified trade structure.

    ``ts_event`` is ``timestamp`` (ms); ``size`` is ``amount`` (``nan`` when missing);
    ``trade_id`` is ``id``; ``condition`` is ``"buyer_maker"`` when the taker sold
    (``side == "sell"``), as :mod:`lean_data.wire.binance` marks Binance's ``m`` flag.

    Raises:
        FeedProtocolError: ``timestamp`` or ``price`` is missing or not a number.
    """
    if not isinstance(trade, Mapping):
        raise FeedProtocolError(f"expected a trade structure, found {type(trade).__name__}")
    trade_id = trade.get("id")
    return Tick(
        symbol=symbol,
        ts_event=_ms(trade.get("timestamp"), "trade timestamp") * _MS,
        price=_number(trade.get("price"), "trade price"),
        size=_number(trade.get("amount"), "trade amount", optional=True),
        tick_type=TickType.TRADE,
        ts_recv=ts_recv,
        exchange=exchange,
        condition="buyer_maker" if trade.get("side") == "sell" else "",
        trade_id="" if trade_id is None else str(trade_id),
    )


class RecentKeys:
    """Remember the last ``size`` keys seen; :meth:`add` says whether a key is new."""

    __slots__ = ("_order", "_seen", "size")

    def __init__(self, size: int = 10_000) -> None:
        if size < 1:
            raise ValueError(f"size: expected >= 1, found {size}")
        self.size = size
        self._seen: set[Hashable] = set()
        self._order: deque[Hashable] = deque()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, key: Hashable) -> bool:
        """Record ``key``; return False when it was already among the recent keys."""
        if key in self._seen:
            return False
        self._seen.add(key)
        self._order.append(key)
        if len(self._order) > self.size:
            self._seen.discard(self._order.popleft())
        return True


# --- closing candles ---------------------------------------------------------------------


def _same(a: Values, b: Values) -> bool:
    """Compare candle values, NaN equal to NaN (an unknown volume is not a change)."""
    return all(x == y or (x != x and y != y) for x, y in zip(a, b, strict=True))


def plausible(ts_ns: int, now_ns: int, *, skew_ns: int = DEFAULT_SKEW_NS) -> bool:
    """Return True when an open time can be real: from 1971 on, not ahead of ``now_ns + skew``.

    A candle cannot open after the venue's clock, which runs at most ``skew_ns`` ahead of
    ours; a timestamp in µs or ns read as ms lands centuries ahead, one in seconds in 1970.
    """
    return MIN_PLAUSIBLE_NS <= ts_ns <= now_ns + skew_ns


class CandleCloser:
    """Turn ccxt OHLCV rows of one symbol into final bars: each candle once, then revisions.

    ``watch_ohlcv`` returns ``[ts_ms, o, h, l, c, v]`` rows that include the candle still
    forming and carry no closed flag, so the venue's clock decides: a candle is final once
    a newer candle is seen (the venue's clock passed its end), or once its period plus
    ``grace_ns`` has ended by the clock (the caller passes the time in; nothing here reads
    a clock). A final candle is returned once with ``closed=True, revision=0``; a later row
    for it with different values is returned as ``revision + 1`` (the engine's continuity
    numbers revisions in the end); an identical row is ignored, so rows replayed after a
    reconnect never duplicate a bar. A row for a candle older than the newest one seen and
    never seen before is final at once.

    Only a row whose open time is :func:`plausible` by the time it is received takes part.
    Any other (a far-future or unit-confused timestamp) is returned once per open time as a
    ``closed=True`` bar, for the engine's validator to judge, and changes nothing else: it
    neither closes the forming candle nor becomes the newest candle seen.

    Args:
        symbol: the symbol put on the bars.
        resolution: the candle period.
        grace_ns: how long after a period's end the venue may still send its final update.
        emit_partial: also return the forming candle (``closed=False``) whenever it changes.
        keep: final candles remembered for revisions and duplicate checks; rows for
            candles older than the forgotten ones are ignored (counted in :attr:`ignored`).
        skew_ns: how far ahead of the caller's clock the venue's clock may run.

    Attributes:
        revisions: revised bars returned so far.
        ignored: rows ignored because their candle was already forgotten.
        implausible: rows with an implausible open time (each open time returned once).
    """

    __slots__ = (
        "_bogus",
        "_closed",
        "_floor",
        "_grace",
        "_latest",
        "_open",
        "_partial",
        "_skew",
        "emit_partial",
        "ignored",
        "implausible",
        "keep",
        "resolution",
        "revisions",
        "symbol",
    )

    def __init__(
        self,
        symbol: str,
        resolution: Resolution | str,
        *,
        grace_ns: int = 2 * NS_PER_SECOND,
        emit_partial: bool = False,
        keep: int = 1000,
        skew_ns: int = DEFAULT_SKEW_NS,
    ) -> None:
        res = Resolution.parse(resolution)
        if res.is_tick:
            raise ValueError("a CandleCloser needs a bar period, found 'tick'")
        if grace_ns < 0:
            raise ValueError(f"grace_ns: expected >= 0, found {grace_ns}")
        if keep < 1:
            raise ValueError(f"keep: expected >= 1, found {keep}")
        if skew_ns < 0:
            raise ValueError(f"skew_ns: expected >= 0, found {skew_ns}")
        self.symbol, self.resolution = symbol, res
        self._grace, self.emit_partial, self.keep = grace_ns, emit_partial, keep
        self._skew = skew_ns
        self._open: tuple[int, Values] | None = None
        self._partial: Values | None = None
        self._closed: dict[int, tuple[Values, int]] = {}
        self._latest = -1  # newest open time seen, ns
        self._floor = -1  # open times at or below this were forgotten
        self._bogus = RecentKeys(64)  # implausible open times already returned
        self.revisions = 0
        self.ignored = 0
        self.implausible = 0

    @property
    def open_time(self) -> int | None:
        """Open time (ns) of the candle still forming, or None."""
        return None if self._open is None else self._open[0]

    @property
    def latest(self) -> int | None:
        """Open time (ns) of the newest candle seen, or None."""
        return None if self._latest < 0 else self._latest

    def deadline(self) -> int | None:
        """Return when (ns) the forming candle is final by the clock, or None."""
        if self._open is None:
            return None
        return self._open[0] + self.resolution.nanos + self._grace

    def update(self, row: object, now_ns: int) -> list[TradeBar]:
        """Take one ccxt row received at ``now_ns``; return the bars it made final.

        Raises:
            FeedProtocolError: the row is malformed (the closer's state is unchanged).
        """
        ts, values = parse_ohlcv_row(row)
        return self.apply(ts, values, now_ns)

    def apply(self, ts: int, values: Values, now_ns: int) -> list[TradeBar]:
        """Take one candle (open time ns and values); return the bars it made final."""
        if not plausible(ts, now_ns, skew_ns=self._skew):
            self.implausible += 1
            if not self._bogus.add(ts):
                return []
            return [_bar(self.symbol, ts, values, self.resolution)]
        if ts in self._closed:
            return self._revise(ts, values)
        if ts <= self._floor:
            self.ignored += 1
            return []
        if ts < self._latest:  # older than the newest candle seen: final at once
            return [self._record(ts, values)]
        out = []
        if self._open is not None and ts > self._open[0]:
            out.append(self._close_open())
        self._latest = ts
        self._open = (ts, values)
        if ts + self.resolution.nanos + self._grace <= now_ns:
            out.append(self._close_open())
        elif self.emit_partial and (self._partial is None or not _same(values, self._partial)):
            self._partial = values
            out.append(_bar(self.symbol, ts, values, self.resolution, closed=False))
        return out

    def due(self, now_ns: int) -> list[TradeBar]:
        """Return the forming candle as final when its period plus grace ended by ``now_ns``."""
        deadline = self.deadline()
        if deadline is None or deadline > now_ns:
            return []
        return [self._close_open()]

    def drop_open(self) -> None:
        """Forget the forming candle without returning it (the symbol was unsubscribed)."""
        self._open = self._partial = None

    def _close_open(self) -> TradeBar:
        assert self._open is not None
        ts, values = self._open
        self._open = self._partial = None
        return self._record(ts, values)

    def _record(self, ts: int, values: Values) -> TradeBar:
        self._closed[ts] = (values, 0)
        while len(self._closed) > self.keep:
            oldest = next(iter(self._closed))
            del self._closed[oldest]
            self._floor = max(self._floor, oldest)
        return _bar(self.symbol, ts, values, self.resolution)

    def _revise(self, ts: int, values: Values) -> list[TradeBar]:
        previous, revision = self._closed[ts]
        if _same(values, previous):
            return []
        self._closed[ts] = (values, revision + 1)
        self.revisions += 1
        return [_bar(self.symbol, ts, values, self.resolution, revision=revision + 1)]
