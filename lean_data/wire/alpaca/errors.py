"""Alpaca's failures as lean_data errors: stream error codes and REST answers (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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

__all__ = ["error_for_code", "error_for_http"]


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
