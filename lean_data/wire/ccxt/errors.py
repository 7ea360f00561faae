"""ccxt's exceptions mapped to lean_data errors, and credentials kept out of messages.

ccxt is never imported: its exceptions are recognised by the names of the classes on their
MRO that ccxt defines (module ``ccxt.base.errors``), so this module works without ccxt.

- :func:`error_for` maps a ccxt exception to a :class:`~lean_data.errors.FeedError` with the
  right ``retryable`` flag (table in its docstring); secrets are redacted.
- :func:`secrets_of` / :func:`redact` find and mask credentials.
- :func:`undecodable_json` recognises a frame ccxt's receive loop cannot decode.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
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

__all__ = ["SECRET_KEYS", "error_for", "is_ccxt_error", "redact", "secrets_of", "undecodable_json"]

_CCXT_ERRORS_MODULE = "ccxt.base.errors"

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
