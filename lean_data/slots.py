"""Every field of a model in one call: read into a tuple, or build an instance from values.

The models are pure-Python frozen slotted dataclasses (users subclass them). Compiled by
mypyc, a stage's read of one of their fields is a generic attribute lookup, about 160
instructions, and a bar's way through the engine read some sixty. The readers here take
all of an item's fields at once: with the ``lean_data._slots`` extension (built with the
compiled package) straight from the slots of an object that is exactly the model, else by
``getattr`` (a subclass may override a field with a property), so the result is always
``tuple(getattr(item, name) for name in names)``. Without the extension they are
``operator.attrgetter`` and the class itself; the values are the same.

Positions are the models' field order (:data:`BAR_OPEN`, :data:`TICK_PRICE` and friends
name them), pinned by ``tests/test_slots.py`` against ``dataclasses.fields``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from operator import attrgetter
from typing import Any, Final, Protocol

from lean_data.models import Tick, TradeBar

__all__ = [
    "BAR",
    "NATIVE",
    "TICK",
    "Reader",
    "own_copy",
]


def _replace_at(item: Any, index: int, value: object) -> Any:
    """``dataclasses.replace`` of field ``index`` (what a subclass's copy goes through)."""
    return replace(item, **{fields(item)[index].name: value})


def own_copy(item: Any, index: int, value: object) -> Any:
    """``item.with_ts_recv(value)``: the fallback of ``BAR.with_value(item, BAR_TS_RECV,
    value, own_copy)``, which stamps a receive time on any model or record (``index`` is
    TradeBar's position; every other type makes its own copy)."""
    return item.with_ts_recv(value)


class _PyReader:
    """The pure-Python reader: ``attrgetter`` over the names and the class's constructor."""

    __slots__ = ("_get", "cls", "names")

    def __init__(self, cls: type, names: tuple[str, ...]) -> None:
        self.cls = cls
        self.names = names
        self._get = attrgetter(*names)

    def __call__(self, item: object) -> tuple[Any, ...]:
        values: tuple[Any, ...] = self._get(item)
        return values

    def build(self, *values: object) -> Any:
        if len(values) != len(self.names):
            raise TypeError(
                f"build() takes the {len(self.names)} fields of {self.cls.__name__}, "
                f"got {len(values)} values"
            )
        return self.cls(*values)

    def with_value(
        self, item: Any, index: int, value: object, fallback: Callable[[Any, int, object], Any]
    ) -> Any:
        if type(item) is not self.cls:
            return fallback(item, index, value)
        return _replace_at(item, index, value)


_Slots: Any
try:
    from lean_data._slots import Slots as _Slots
except ImportError:  # not built (a pure install): the same values through getattr
    _Slots = None

NATIVE: Final = _Slots is not None  # whether the C readers are in use


class Reader(Protocol):
    """Type of the readers (for annotations): ``reader(item)`` gives the field tuple,
    ``reader.build(*values)`` a new instance of the model, ``reader.with_value(item, index,
    value, fallback)`` a copy with one field changed."""

    def __call__(self, item: object) -> tuple[Any, ...]: ...

    def build(self, *values: object) -> Any: ...

    def with_value(
        self, item: Any, index: int, value: object, fallback: Callable[[Any, int, object], Any]
    ) -> Any: ...


def reader(cls: type) -> Reader:
    """Return the reader of the dataclass model ``cls`` (C when built, else pure)."""
    names = tuple(f.name for f in fields(cls))
    made: Any = _PyReader(cls, names) if _Slots is None else _Slots(cls, names)
    return made  # type: ignore[no-any-return]


BAR: Final = reader(TradeBar)

# Positions in BAR's tuples: TradeBar's field order.
BAR_SYMBOL: Final = 0
BAR_TS_EVENT: Final = 1
BAR_OPEN: Final = 2
BAR_HIGH: Final = 3
BAR_LOW: Final = 4
BAR_CLOSE: Final = 5
BAR_VOLUME: Final = 6
BAR_RESOLUTION: Final = 7
BAR_TS_RECV: Final = 8
BAR_CLOSED: Final = 9
BAR_REVISION: Final = 10
BAR_BACKFILLED: Final = 11

TICK: Final = reader(Tick)

# Positions in TICK's tuples: Tick's field order.
TICK_SYMBOL: Final = 0
TICK_TS_EVENT: Final = 1
TICK_PRICE: Final = 2
TICK_SIZE: Final = 3
TICK_TYPE: Final = 4
TICK_TS_RECV: Final = 5
TICK_BID_PRICE: Final = 6
TICK_BID_SIZE: Final = 7
TICK_ASK_PRICE: Final = 8
TICK_ASK_SIZE: Final = 9
TICK_EXCHANGE: Final = 10
TICK_CONDITION: Final = 11
TICK_SUSPICIOUS: Final = 12
TICK_TRADE_ID: Final = 13
