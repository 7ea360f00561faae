"""Pure parser of Kraken WebSocket v1 ``book`` channel messages.

Kraken v1 sends arrays, not objects:

- snapshot: ``[channelID, {"as": [[price, volume, timestamp], ...], "bs": [...]},
  "book-1000", "XBT/USD"]``;
- update: ``[channelID, {"a": [...]}, "book-1000", pair]``, ``[channelID, {"b": [...],
  "c": "<crc32>"}, ...]`` or both sides in two objects, the checksum ``c`` in the last; a
  level may carry a 4th field ``"r"`` (a republished level, applied like any other).

Prices and volumes are decimal strings with a fixed number of decimals per pair; the
checksum (see :func:`lean_data.depth.kraken_checksum`) needs those decimals, so the parse
result carries the ones seen on the wire. ``ts_event`` is the newest level timestamp in the
message (Kraken gives no message time). Pairs become canonical symbols (``XBT`` -> ``BTC``,
``XDG`` -> ``DOGE``). Events (``heartbeat``, ``subscriptionStatus``, ...) give None.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from lean_data.book import BookLevel, OrderBookDelta, OrderBookSnapshot
from lean_data.errors import FeedProtocolError
from lean_data.wire.levels import bad_field, decimal_text, loads

__all__ = ["KrakenBookMessage", "kraken_symbol", "parse_book_message"]

_ASSETS = {"XBT": "BTC", "XDG": "DOGE"}


class KrakenBookMessage(NamedTuple):
    """One decoded book message.

    Attributes:
        channel_id: Kraken's channel id.
        pair: the venue pair (``"XBT/CHF"``).
        record: the snapshot or delta (symbol canonical: ``"BTC/CHF"``).
        price_decimals: digits after the point in the message's prices (-1 if no level).
        size_decimals: digits after the point in its volumes (-1 if no level).
    """

    channel_id: int
    pair: str
    record: OrderBookSnapshot | OrderBookDelta
    price_decimals: int
    size_decimals: int


def kraken_symbol(pair: str) -> str:
    """``"XBT/CHF"`` -> ``"BTC/CHF"`` (Kraken's legacy asset codes replaced)."""
    base, _, quote = pair.partition("/")
    return f"{_ASSETS.get(base, base)}/{_ASSETS.get(quote, quote)}"


def _seconds_to_ns(text: str, where: str) -> int:
    whole, _, fraction = text.partition(".")
    if not whole.isdigit() or (fraction and not fraction.isdigit()) or len(fraction) > 9:
        raise bad_field(where, "decimal seconds", text)
    return int(whole) * 1_000_000_000 + int(fraction.ljust(9, "0") or "0")


def _decimals(text: str) -> int:
    point = text.find(".")
    return 0 if point < 0 else len(text) - point - 1


class _Side:
    __slots__ = ("levels", "newest", "price_decimals", "size_decimals")

    def __init__(self) -> None:
        self.levels: list[BookLevel] = []
        self.newest = 0
        self.price_decimals = -1
        self.size_decimals = -1

    def add(self, raw: object, where: str) -> None:
        if not isinstance(raw, list):
            raise bad_field(where, "an array of [price, volume, timestamp] arrays", raw)
        for index, entry in enumerate(raw):
            at = f"{where}[{index}]"
            if not isinstance(entry, list) or len(entry) < 3:
                raise bad_field(at, "a [price, volume, timestamp(, 'r')] array", entry)
            price, volume, stamp = entry[0], entry[1], entry[2]
            self.levels.append(
                BookLevel(decimal_text(price, f"{at}.price"), decimal_text(volume, f"{at}.volume"))
            )
            if type(stamp) is not str:
                raise bad_field(f"{at}.timestamp", "decimal seconds", stamp)
            self.newest = max(self.newest, _seconds_to_ns(stamp, f"{at}.timestamp"))
            self.price_decimals = _decimals(price)
            self.size_decimals = _decimals(volume)


def parse_book_message(
    raw: bytes | str | Sequence[object], ts_recv: int
) -> KrakenBookMessage | None:
    """Decode one frame of the ``book`` channel; None for events and other channels.

    Raises:
        FeedProtocolError: a book message whose fields are missing or malformed, or a
            checksum that is not an unsigned 32-bit decimal.
    """
    message = loads(raw) if isinstance(raw, bytes | str) else raw
    if not isinstance(message, list):
        return None  # an event object: heartbeat, systemStatus, subscriptionStatus
    if len(message) < 4 or type(message[-2]) is not str or not message[-2].startswith("book"):
        return None
    channel_id, pair = message[0], message[-1]
    if type(channel_id) is not int or type(pair) is not str:
        raise bad_field("book", "[channelID, {...}, 'book-N', pair]", message)
    bids, asks, checksum, snapshot = _Side(), _Side(), None, False
    for index, part in enumerate(message[1:-2], start=1):
        if not isinstance(part, dict):
            raise bad_field(f"book[{index}]", "an object of levels", part)
        for key, value in part.items():
            if key in ("as", "bs"):
                snapshot = True
            if key in ("as", "a"):
                asks.add(value, f"book[{index}].{key}")
            elif key in ("bs", "b"):
                bids.add(value, f"book[{index}].{key}")
            elif key == "c":
                if type(value) is not str or not value.isdigit() or int(value) >= 2**32:
                    raise bad_field(f"book[{index}].c", "an unsigned 32-bit decimal", value)
                checksum = int(value)
    symbol = kraken_symbol(pair)
    ts_event = max(bids.newest, asks.newest) or ts_recv
    try:
        if snapshot:
            record: OrderBookSnapshot | OrderBookDelta = OrderBookSnapshot(
                symbol, tuple(bids.levels), tuple(asks.levels), -1, ts_event, ts_recv
            )
        else:
            record = OrderBookDelta(
                symbol, tuple(bids.levels), tuple(asks.levels), -1, -1, -1, checksum,
                ts_event, ts_recv,
            )  # fmt: skip
    except ValueError as exc:
        raise FeedProtocolError(f"book {pair}: {exc}") from None
    price_decimals = max(bids.price_decimals, asks.price_decimals)
    size_decimals = max(bids.size_decimals, asks.size_decimals)
    return KrakenBookMessage(channel_id, pair, record, price_decimals, size_decimals)
