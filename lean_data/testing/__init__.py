"""Loopback servers that speak real venue protocols, for lean_data's tests and yours.

Everything binds 127.0.0.1 on ephemeral ports and replays real recorded data::

    from lean_data.testing import BinanceLoopbackServer

    async with BinanceLoopbackServer("BINANCE.ws.1.0", klines={"BTCUSDT": bars}) as server:
        server.faults.drop_after = 5
        ...

``AlpacaLoopbackServer`` (and ``alpaca_message``, ``lean_timeline``) need msgpack, from the
``alpaca`` extra; they are imported on first use.
"""

from typing import TYPE_CHECKING, Any

from lean_data.testing._faults import (
    MALFORMED_BINARY_FRAME,
    MALFORMED_FRAME,
    BinaryFramePlanner,
    FramePlanner,
    ServerFaults,
)
from lean_data.testing.binance import (
    KLINES_WEIGHT,
    WEIGHT_LIMIT_1M,
    BinanceLoopbackServer,
    RestRequest,
    kline_event,
    kline_row,
    stream_of,
)
from lean_data.testing.binance_futures import BinanceFuturesLoopbackServer
from lean_data.testing.kraken import KrakenLoopbackServer

if TYPE_CHECKING:
    from lean_data.testing.alpaca import AlpacaLoopbackServer, alpaca_message, lean_timeline

_ALPACA = frozenset({"AlpacaLoopbackServer", "alpaca_message", "lean_timeline"})


def __getattr__(name: str) -> Any:
    """Import the Alpaca server (and msgpack) only when it is asked for."""
    if name not in _ALPACA:
        raise AttributeError(f"module 'lean_data.testing' has no attribute {name!r}")
    from lean_data.testing import alpaca

    value = getattr(alpaca, name)
    globals()[name] = value
    return value


__all__ = [
    "KLINES_WEIGHT",
    "MALFORMED_BINARY_FRAME",
    "MALFORMED_FRAME",
    "WEIGHT_LIMIT_1M",
    "AlpacaLoopbackServer",
    "BinanceFuturesLoopbackServer",
    "BinanceLoopbackServer",
    "BinaryFramePlanner",
    "FramePlanner",
    "KrakenLoopbackServer",
    "RestRequest",
    "ServerFaults",
    "alpaca_message",
    "kline_event",
    "kline_row",
    "lean_timeline",
    "stream_of",
]
