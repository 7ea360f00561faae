"""Map what a feed's I/O raises to lean_data's feed errors, where it enters.

Every hook of a :class:`~lean_data.feeds.streaming.StreamingFeed` may raise a library's
exception (websockets, picows, aiohttp), an ``OSError``, a timeout or one of ours. :func:`translate`
turns each into a :class:`~lean_data.errors.FeedError` whose ``retryable`` flag the
reconnect loop and request retries act on; :func:`http_error` does the same for an HTTP
status. No library is imported here: their exceptions are recognised only when the library
is already loaded. A websocket that ends without a clean close is the same retryable
:class:`~lean_data.errors.FeedConnectError` whichever client read it (websockets'
``ConnectionClosedError``, :class:`~lean_data.feeds.transport.WebSocketClosedError` of the
picows transport); a refused handshake is :func:`http_error` of its status for both.
"""

from __future__ import annotations

import sys

from lean_data.errors import (
    FeedAuthError,
    FeedConnectError,
    FeedError,
    LeanDataError,
    RateLimitError,
)
from lean_data.feeds.backoff import classify
from lean_data.feeds.transport import WebSocketClosedError

__all__ = ["http_error", "own_cause", "translate"]


def http_error(status: int, message: str, retry_after: str | None = None) -> FeedError:
    """Return the lean_data error for an HTTP status (not raised).

    401/403 are :class:`FeedAuthError` (fatal); 429 and 418 are :class:`RateLimitError` with
    the ``Retry-After`` seconds when given; 5xx and 408 are retryable connection errors;
    other 4xx are fatal.
    """
    text = f"HTTP {status}: {message}"
    if status in (401, 403):
        return FeedAuthError(text)
    if status in (418, 429):
        return RateLimitError(text, retry_after=_seconds(retry_after))
    if status >= 500 or status == 408:
        return FeedConnectError(text)
    return FeedError(text, retryable=False)


def translate(exc: BaseException, feed: str) -> FeedError:
    """Map any exception from ``feed``'s hooks to a :class:`FeedError` with a retryable flag.

    Ours pass through (other lean_data errors are fatal feed errors); library errors are
    mapped by kind; timeouts and network ``OSError`` are retryable connection errors
    (:func:`~lean_data.feeds.backoff.classify` decides for the others); anything else is a
    retryable "unexpected error".
    """
    if isinstance(exc, FeedError):
        return exc
    if isinstance(exc, LeanDataError):
        return FeedError(str(exc), feed=feed, retryable=False)
    translated = _library_error(exc)
    if translated is not None:
        return translated
    if isinstance(exc, TimeoutError):
        return FeedConnectError(f"timed out: {exc!r}", feed=feed)
    if isinstance(exc, OSError):
        return FeedConnectError(f"{exc!r}", feed=feed, retryable=classify(exc))
    return FeedError(f"unexpected error: {exc!r}", feed=feed, retryable=True)


def own_cause(exc: BaseException) -> BaseException | None:
    """Return ``exc`` to chain as a cause only when it is ours.

    A library's message may carry a signed URL, so its exception is not chained.
    """
    return exc if isinstance(exc, LeanDataError) else None


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _library_error(exc: BaseException) -> FeedError | None:
    """Translate websockets, picows and aiohttp exceptions, importing none when unused."""
    if isinstance(exc, WebSocketClosedError):
        return FeedConnectError(f"websocket: {exc!r}")
    picows = sys.modules.get("picows")
    if picows is not None and isinstance(exc, picows.WSError):
        response = getattr(exc, "response", None)
        if isinstance(exc, picows.WSHandshakeError) and response is not None:
            return http_error(
                int(response.status),
                f"websocket handshake refused: {response.status.phrase}",
                response.headers.get("Retry-After"),
            )
        return FeedConnectError(f"websocket: {exc!r}")
    websockets_exceptions = sys.modules.get("websockets.exceptions")
    if websockets_exceptions is not None:
        if isinstance(exc, websockets_exceptions.InvalidStatus):
            response = exc.response
            return http_error(
                response.status_code,
                f"websocket handshake refused: {response.reason_phrase}",
                response.headers.get("Retry-After"),
            )
        if isinstance(exc, websockets_exceptions.WebSocketException):
            return FeedConnectError(f"websocket: {exc!r}")
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None:
        if isinstance(exc, aiohttp.ClientResponseError):
            headers = exc.headers or {}
            return http_error(exc.status, exc.message, headers.get("Retry-After"))
        if isinstance(exc, aiohttp.ClientError):
            return FeedConnectError(f"http: {exc!r}")
    return None
