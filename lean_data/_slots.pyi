"""Type stub of the C extension lean_data._slots (lean_data/_slots.c)."""

from collections.abc import Callable
from typing import Any

class Slots:
    """Read a model's fields into a tuple (call), build one, copy one with a field changed."""

    cls: type
    names: tuple[str, ...]

    def __init__(
        self, cls: type, names: tuple[str, ...], constants: tuple[type, ...] = (), /
    ) -> None: ...
    def __call__(self, item: object) -> tuple[Any, ...]: ...
    def build(self, *values: object) -> Any: ...
    def with_value(
        self, item: Any, index: int, value: object, fallback: Callable[[Any, int, object], Any]
    ) -> Any: ...

def mark_seen(
    items: Any, last_seen: dict[str, int], now: int, readers: tuple[Slots, ...], /
) -> int: ...
def plain_tick(
    fields: tuple[Any, ...], skew_ns: object, now: Callable[[], int], /
) -> bool | None: ...
def plain_bar(
    fields: tuple[Any, ...], skew_ns: object, now: Callable[[], int], /
) -> bool | None: ...
def screen_limits(
    min_event_ns: int,
    fast_max: int,
    max_price: float,
    max_size: float,
    trade: object,
    quote: object,
    resolution: type,
    tick_indexes: tuple[int, ...],
    tick_length: int,
    bar_indexes: tuple[int, ...],
    bar_length: int,
    /,
) -> None: ...
