"""Type stub of the C extension lean_data._binance (lean_data/_binance.c)."""

from collections.abc import Callable
from typing import Any

class Decoder:
    """Read klines and aggTrades of Binance combined-stream frames in one C pass."""

    def __init__(
        self,
        canonical: Callable[[str], str],
        intervals: dict[str, Any],
        build_bar: Callable[..., Any],
        build_tick: Callable[..., Any],
        trade: object,
        /,
    ) -> None: ...
    def item(self, frame: object, ts_recv: int, symbols: object, /) -> Any: ...
