"""Every field of a model in one call: read into a tuple, or build an instance from values.

The models are pure-Python frozen slotted dataclasses (users subclass them). Compiled by
mypyc, a stage's read of one of their fields is a generic attribute lookup, about 160
instructions, and a bar's way through the engine read some sixty. The readers here take
all of an item's fields at once: with the ``lean_data._slots`` extension (built with the
compiled package) straight from the slots of an object that is exactly the model, else by
``getattr`` (a subclass may override a field with a property), so the result is always
``tuple(getattr(item, name) for name in names)``. Without the extension they are
``operator.attrgetter`` and the class itself; the values are the same. A bar or tick the
extension builds of plain values (text, numbers, flags, a Resolution, a TickType) cannot be
part of a reference cycle and is left untracked by the garbage collector, as CPython leaves
a tuple of such values. A C reader remembers the exact instance it read last, and returns
the same tuple for it again (the models are frozen; each stage reads a bar's fields): it
keeps that one instance alive until it reads another.

Positions are the models' field order (:data:`BAR_OPEN`, :data:`TICK_PRICE` and friends
name them), pinned by ``tests/test_slots.py`` against ``dataclasses.fields``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from operator import attrgetter
from typing import Any, Final

from lean_data.models import Resolution, Tick, TickType, TradeBar

__all__ = [
    "BAR",
    "BUILD_BAR",
    "BUILD_TICK",
    "COPY_BAR",
    "NATIVE",
    "TICK",
    "fields_of",
    "own_copy",
]

Read = Callable[[object], tuple[Any, ...]]
"""A reader: ``reader(item)`` is the tuple of the item's fields, in the model's order."""
Copy = Callable[[Any, int, object, Callable[[Any, int, object], Any]], Any]
"""``copy(item, index, value, fallback)``: a copy of a TradeBar with field ``index`` set;
anything that is not exactly a TradeBar is copied by ``fallback(item, index, value)``."""


def own_copy(item: Any, index: int, value: object) -> Any:
    """``item.with_ts_recv(value)``: the fallback of ``COPY_BAR(item, BAR_TS_RECV, value,
    own_copy)``, which stamps a receive time on any model or record (``index`` is
    TradeBar's position; every other type makes its own copy)."""
    return item.with_ts_recv(value)


def _copy_by_fallback(
    item: Any, index: int, value: object, fallback: Callable[[Any, int, object], Any]
) -> Any:
    """The pure build's COPY_BAR: every item copies itself (``fallback``)."""
    return fallback(item, index, value)


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


_Slots: Any
try:
    from lean_data._slots import Slots as _Slots
except ImportError:  # not built (a pure install): the same values through getattr
    _Slots = None

NATIVE: Final = _Slots is not None  # whether the C readers are in use

# The readers, builders and the copy. Pure, they are operator.attrgetter objects (a C call,
# no Python frame) and the classes themselves (which take every field positionally).
# Resolution and TickType: interned values that never refer to a model, so a bar or tick
# built of them and plain numbers and text is left untracked by the garbage collector
_CONSTANTS: Final = (Resolution, TickType)
_bar: Any = None if _Slots is None else _Slots(TradeBar, _names(TradeBar), _CONSTANTS)
_tick: Any = None if _Slots is None else _Slots(Tick, _names(Tick), _CONSTANTS)
BAR: Final[Read] = attrgetter(*_names(TradeBar)) if _bar is None else _bar
TICK: Final[Read] = attrgetter(*_names(Tick)) if _tick is None else _tick
BUILD_BAR: Final[Callable[..., TradeBar]] = TradeBar if _bar is None else _bar.build
BUILD_TICK: Final[Callable[..., Tick]] = Tick if _tick is None else _tick.build
COPY_BAR: Final[Copy] = _copy_by_fallback if _bar is None else _bar.with_value


def fields_of(cls: type, names: tuple[str, ...]) -> Read:
    """A reader of some of ``cls``'s fields: ``reader(item)`` is
    ``tuple(getattr(item, name) for name in names)``, from the slots in C for an exact
    ``cls`` when the extension is built (``operator.attrgetter`` otherwise; give two or
    more names, so that it returns a tuple either way)."""
    if len(names) < 2:
        raise ValueError(f"fields_of() reads two or more fields, got {names!r}")
    return attrgetter(*names) if _Slots is None else _Slots(cls, names)


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
