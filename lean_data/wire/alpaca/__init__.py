"""Pure parsers and message builders for Alpaca market data (stream and REST bars).

One module per concern: :mod:`~lean_data.wire.alpaca.stream` (frames in, models out),
:mod:`~lean_data.wire.alpaca.client` (channels, auth / subscribe frames),
:mod:`~lean_data.wire.alpaca.rest` (timeframes, bars pages),
:mod:`~lean_data.wire.alpaca.errors` (error codes and HTTP answers) and
:mod:`~lean_data.wire.alpaca.fields` (times, checked field access). The names below are
the package's public surface.

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

from lean_data.wire.alpaca.client import (
    CHANNEL_OF_TYPE,
    CRYPTO_CHANNELS,
    STOCK_CHANNELS,
    Encoding,
    auth_message,
    subscribe_message,
    unsubscribe_message,
)
from lean_data.wire.alpaca.errors import error_for_code, error_for_http
from lean_data.wire.alpaca.fields import ns_to_rfc3339, rfc3339_to_ns
from lean_data.wire.alpaca.rest import parse_bars_page, parse_timeframe, timeframe_of
from lean_data.wire.alpaca.stream import (
    MessageKind,
    ParsedMessage,
    decode_frame,
    parse_frame,
    parse_message,
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
