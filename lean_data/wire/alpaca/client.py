"""What an Alpaca stream client sends: the channels, and auth / subscribe / unsubscribe frames.

alpaca-py sends msgpack (a binary frame); JSON goes in a text frame. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, overload

import msgpack
import orjson

__all__ = [
    "CHANNEL_OF_TYPE",
    "CRYPTO_CHANNELS",
    "STOCK_CHANNELS",
    "Encoding",
    "auth_message",
    "subscribe_message",
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

Encoding = Literal["msgpack", "json"]


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
