"""Loopback servers that speak real venue protocols, for lean_data's tests and yours.

Everything binds 127.0.0.1 on ephemeral ports and replays real recorded data::

    from lean_data.testing import BinanceLoopbackServer

    async with BinanceLoopbackServer("BINANCE.ws.1.0", klines={"BTCUSDT": bars}) as server:
        server.faults.drop_after = 5
        ...
"""

from lean_data.testing._faults import MALFORMED_FRAME, FramePlanner, ServerFaults
from lean_data.testing.binance import (
    KLINES_WEIGHT,
    WEIGHT_LIMIT_1M,
    BinanceLoopbackServer,
    RestRequest,
    kline_event,
    kline_row,
    stream_of,
)

__all__ = [
    "KLINES_WEIGHT",
    "MALFORMED_FRAME",
    "WEIGHT_LIMIT_1M",
    "BinanceLoopbackServer",
    "FramePlanner",
    "RestRequest",
    "ServerFaults",
    "kline_event",
    "kline_row",
    "stream_of",
]
