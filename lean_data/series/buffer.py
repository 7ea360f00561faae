"""A fixed-capacity ring buffer of the most recent items, one per symbol in the engine.

The event-loop thread appends; any other thread may read. Every mutation and every copy
happens under one lock, so a reader always sees a consistent snapshot (never half of an
``extend`` or a ``clear``). ``add`` takes the lock with its ``acquire``/``release`` bound
once, rather than ``with``: on CPython 3.11 ``with`` measured about 0.1 µs more per
``add``, and compiled, a method looked up by name costs ~400 instructions a call. The lock
is ``lean_data._rows.Latch`` with the compiled package (threading.Lock's behaviour without
its argument parsing: ~350 instructions less per ``add``; and while no other thread waits
for it, without the OS lock and the clock read CPython 3.11 makes even for a lock that is
free: ~1% of figure 2), else ``threading.Lock``.

Storage is columnar for the common item: a million buffered bars cost about 65 MB
(tracemalloc) instead of ~330 MB for TradeBar objects with their own floats and ints, and
are not a million objects for the garbage collector to traverse. An item whose type is
exactly :class:`~lean_data.models.TradeBar` is packed into one 56-byte row of a
``bytearray`` (``ts_event``, OHLCV, ``ts_recv``); its ring slot holds a key object with the
fields a series' bars share (symbol, resolution, ``closed``, ``revision``, ``backfilled``),
one per distinct combination, so a slot costs a pointer. Any other item (QuoteBar, Tick, a
TradeBar subclass, a user object, a TradeBar whose fields do not fit a row) is held as the
object itself. Slots and rows grow geometrically up to ``max_size``, and rows only when a
bar arrives, so a buffer that sees a few items, or no bars, stays small. Reads copy slots
and rows under the lock and rebuild the bars after releasing it.

A full ring's store frees the item it overwrites, one kept since the ring last came round
(10,000 items of a symbol ago by default) and long out of the CPU's caches, as are the
objects a tick holds; the compiled package's store (``lean_data._rows.ring_put``) asks for
the lines of the items the next two stores free before they are needed.
"""

from __future__ import annotations

import math
import struct
import threading
from collections.abc import Callable, Iterable, Mapping
from itertools import repeat
from typing import Any, Final, Generic, SupportsIndex, TypeVar

from lean_data.errors import ConfigError
from lean_data.models import Resolution, TradeBar
from lean_data.native import twin
from lean_data.slots import (
    BAR,
    BAR_BACKFILLED,
    BAR_CLOSE,
    BAR_CLOSED,
    BAR_HIGH,
    BAR_LOW,
    BAR_OPEN,
    BAR_RESOLUTION,
    BAR_REVISION,
    BAR_SYMBOL,
    BAR_TS_EVENT,
    BAR_TS_RECV,
    BAR_VOLUME,
)

__all__ = ["DataBuffer", "buffer_statistics"]

T = TypeVar("T")

# One bar row: ts_event, open, high, low, close, volume, ts_recv; native layout, as a row
# never leaves the process. Packing raises struct.error for a value that does not fit. The
# times as a C long where that is 64 bits (Linux, macOS): struct converts it with
# PyLong_AsLong, where CPython 3.11 converts a "q" of a nanosecond time through a byte
# array (~190 instructions); "q" where a long is 32 bits (Windows).
_I64: Final = "l" if struct.calcsize("@l") == 8 else "q"
_ROW_STRUCT: Final = struct.Struct(f"@{_I64}ddddd{_I64}")
_ROW: Final = _ROW_STRUCT.size
_pack_into: Final = _ROW_STRUCT.pack_into


def _pack_bar(rows: bytearray, offset: int, f: tuple[Any, ...]) -> None:
    """Pack a bar's fields (:data:`BAR`'s tuple) into its row; raises when one does not fit
    (struct.error) or the row is not allocated."""
    # the values go to struct as the objects they are (untyped tuple items)
    _pack_into(
        rows,
        offset,
        f[BAR_TS_EVENT],
        f[BAR_OPEN],
        f[BAR_HIGH],
        f[BAR_LOW],
        f[BAR_CLOSE],
        f[BAR_VOLUME],
        f[BAR_TS_RECV],
    )


_PACK_BAR: Final = twin("lean_data._rows", "pack_bar", _pack_bar)


def _ring_put(slots: list[Any], index: int, item: object) -> None:
    """``slots[index] = item``, IndexError when there is no slot ``index``. The C twin
    (``lean_data._rows.ring_put``) first asks the CPU for what the ring's next two stores
    overwrite: once the ring is full each store frees an item kept since the ring last came
    round, whose lines (the item's and its fields') are long out of the caches."""
    slots[index] = item


_RING_PUT: Final = twin("lean_data._rows", "ring_put", _ring_put)
_LOCK: Final[Callable[[], Any]] = twin("lean_data._rows", "Latch", threading.Lock)
_MIN_GROWTH: Final = 16  # slots or rows are allocated at least this many at a time
_MAX_KEYS: Final = 64  # distinct bar keys remembered for sharing, per buffer
# C statics for classes of pure modules, used per item (see lean_data.quality.screen)
_TRADE_BAR: Final = TradeBar
_BAR: Final = BAR  # a C static, not a module-dict lookup per use (see quality/screen.py)
# math.nan itself, the object: compiled, a read of math.nan (or a float) is boxed anew each time.
_NAN: Final[object] = vars(math)["nan"]


class _BarKey:
    """The fields a series' bars share; a slot holding one means "its row holds a bar"."""

    __slots__ = ("backfilled", "closed", "resolution", "revision", "symbol")

    def __init__(
        self, symbol: str, resolution: Resolution, closed: bool, revision: int, backfilled: bool
    ) -> None:
        self.symbol = symbol
        self.resolution = resolution
        self.closed = closed
        self.revision = revision
        self.backfilled = backfilled


class DataBuffer(Generic[T]):
    """Keep the ``max_size`` most recent items; adding to a full buffer drops the oldest.

    Items that are TradeBars come back as equal copies, not as the objects added: a bar is
    stored as its fields packed into a row (for memory, see the module docstring), and a
    read builds a new TradeBar from them. Prices,
    volume and the timestamps go through a C double or int64: an ``int`` price comes back
    as a ``float``, and any ``nan`` as ``math.nan`` itself (so the copy of a bar built with
    ``math.nan`` compares equal to it). A TradeBar whose fields do not fit (a timestamp
    beyond int64, a price that is not a number), a TradeBar subclass, and every other item
    come back as the objects added.

    Args:
        max_size: capacity, at least 1.

    Raises:
        ConfigError: ``max_size`` is not a positive integer.
    """

    __slots__ = (
        "_acquire",
        "_cleared",
        "_count",
        "_key",
        "_keys",
        "_lock",
        "_max_size",
        "_release",
        "_rows",
        "_slots",
    )

    # SupportsIndex, not int: the compiled build checks an int parameter itself (TypeError),
    # where this check gives the ConfigError both builds promise. Likewise elsewhere.
    def __init__(self, max_size: SupportsIndex) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise ConfigError(f"DataBuffer max_size must be a positive integer, got {max_size!r}")
        self._max_size = max_size
        self._lock = _LOCK()
        # bound once: compiled, lock.acquire() is a method lookup by name on every add
        self._acquire = self._lock.acquire
        self._release = self._lock.release
        # Item k since the last clear sits at slot k % max_size; when that slot holds a
        # _BarKey, row k % max_size of _rows holds the rest of the bar.
        self._slots: list[Any] = []
        self._rows = bytearray()
        self._count = 0  # items added since the last clear
        self._cleared = 0  # items added before the last clear
        self._key = _BarKey("", Resolution.TICK, True, 0, False)  # the last key used
        self._keys: dict[tuple[Any, ...], _BarKey] = {}

    def add(self, item: T) -> None:
        """Append ``item`` in O(1), overwriting the oldest item when the buffer is full."""
        self._acquire()
        try:
            self._put(item)
        finally:
            self._release()

    def extend(self, items: Iterable[T]) -> None:
        """Append every item of ``items`` in order, as one atomic step for readers."""
        batch = items if isinstance(items, list | tuple) else list(items)
        put = self._put
        with self._lock:
            for item in batch:
                put(item)

    def get_latest(self, n: int = 1) -> list[T]:
        """Return the ``n`` most recent items, oldest first (all of them if ``n`` > length).

        Raises:
            TypeError: ``n`` is not an int.
            ValueError: ``n`` is negative.
        """
        if isinstance(n, bool) or not isinstance(n, int):  # compiled: refused at the call
            raise TypeError(f"n must be an int, got {n!r}")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        size = self._max_size
        with self._lock:
            count = self._count
            n = min(n, count, size)
            if n == 0:
                return []
            end = (count - 1) % size + 1  # one past the newest slot
            start = end - n
            slots, rows = self._slots, self._rows
            if start >= 0:
                parts = [(slots[start:end], rows[start * _ROW : end * _ROW])]
            else:  # wrapped: the older part is at the end of the ring
                start += size
                parts = [(slots[start:], rows[start * _ROW :]), (slots[:end], rows[: end * _ROW])]
        out: list[Any] = []
        for part_slots, part_rows in parts:
            _rebuild(part_slots, part_rows, out)
        return out

    @property
    def latest(self) -> T | None:
        """The most recent item, or ``None`` when the buffer is empty."""
        latest = self.get_latest(1)
        return latest[0] if latest else None

    @property
    def utilization(self) -> float:
        """Percentage of the capacity in use, from 0.0 to 100.0."""
        return len(self) * 100.0 / self._max_size

    @property
    def max_size(self) -> int:
        """The capacity given at construction."""
        return self._max_size

    @property
    def total_added(self) -> int:
        """How many items were ever added, including overwritten and cleared ones."""
        with self._lock:
            return self._cleared + self._count

    def clear(self) -> None:
        """Remove every item and free the storage; ``total_added`` keeps counting."""
        with self._lock:
            self._cleared += self._count
            self._count = 0
            self._slots = []
            self._rows = bytearray()
            self._keys.clear()

    def __len__(self) -> int:
        return min(self._count, self._max_size)

    def __repr__(self) -> str:
        return f"DataBuffer(max_size={self._max_size}, len={len(self)})"

    # -- internals, called with the lock held ------------------------------------------

    def _put(self, item: object) -> None:
        """Store ``item`` in the next slot (and an exact TradeBar's fields in its row).

        One implementation for every item: the common bar matches the usual key and packs
        into an allocated row with no call. When packing fails, either row ``i`` is not
        allocated yet (:meth:`_grow_rows` allocates it and the same code packs again, at
        most once more) or a field does not fit a row (a timestamp beyond int64, a price
        that is not a number, an unhashable field): the slot then holds the object itself.
        """
        count = self._count
        i = count % self._max_size
        slot: Any = item
        if type(item) is _TRADE_BAR:
            key = self._key
            try:
                f = _BAR(item)  # every field in one call (lean_data.slots)
                if (
                    f[BAR_SYMBOL] != key.symbol
                    or f[BAR_RESOLUTION] is not key.resolution
                    or f[BAR_CLOSED] is not key.closed
                    or f[BAR_REVISION] != key.revision
                    or f[BAR_BACKFILLED] is not key.backfilled
                ):
                    key = self._key_for(item)
                _PACK_BAR(self._rows, i * _ROW, f)
                slot = key
            except Exception:  # row i not allocated yet, or a field that does not fit a row
                if self._grow_rows(i):
                    self._put(item)  # row i exists now: pack again, the same way
                    return
        try:
            _RING_PUT(self._slots, i, slot)
        except IndexError:  # slot i not allocated yet
            slots = self._slots
            slots.extend(repeat(None, self._grown(len(slots), i) - len(slots)))
            slots[i] = slot
        self._count = count + 1

    def _grow_rows(self, i: int) -> bool:
        """Allocate rows up to ``i`` if row ``i`` is missing; return whether it was."""
        rows = self._rows
        have = len(rows) // _ROW
        if have > i:
            return False
        grown = bytearray(self._grown(have, i) * _ROW)  # exact size: extend overallocates
        grown[: len(rows)] = rows
        self._rows = grown
        return True

    def _key_for(self, bar: TradeBar) -> _BarKey:
        """Return the shared key for ``bar``'s series and flags, and make it the usual one."""
        fields = (bar.symbol, bar.resolution, bar.closed, bar.revision, bar.backfilled)
        key = self._keys.get(fields)
        if key is None:
            if len(self._keys) >= _MAX_KEYS:  # many series in one buffer: forget old keys
                self._keys.clear()
            key = self._keys[fields] = _BarKey(*fields)
        self._key = key
        return key

    def _grown(self, have: int, i: int) -> int:
        """How many slots or rows to hold when ``have`` lack position ``i``."""
        return min(self._max_size, max(i + 1, 2 * have, _MIN_GROWTH))


def _rebuild(slots: list[Any], rows: bytearray, out: list[Any]) -> None:
    """Append to ``out`` the item of each slot; ``rows`` holds the slots' rows, in order."""
    if not rows:  # no bars among these slots
        out.extend(slots)
        return
    unpack_from = _ROW_STRUCT.unpack_from
    offset = -_ROW
    for slot in slots:
        offset += _ROW
        if type(slot) is not _BarKey:
            out.append(slot)
            continue
        ts_event, open_, high, low, close, volume, ts_recv = unpack_from(rows, offset)
        total = open_ + high + low + close + volume
        if total != total:  # some field is nan (or inf - inf): give back the shared nan
            open_, high, low, close, volume = (
                _NAN if v != v else v for v in (open_, high, low, close, volume)
            )
        out.append(
            TradeBar(
                slot.symbol,
                ts_event,
                open_,
                high,
                low,
                close,
                volume,
                slot.resolution,
                ts_recv,
                slot.closed,
                slot.revision,
                slot.backfilled,
            )
        )


def buffer_statistics(buffers: Mapping[str, DataBuffer[Any]]) -> dict[str, dict[str, float]]:
    """Return each symbol's ring buffer size and utilization (``get_metrics()["buffers"]``)."""
    return {sym: {"size": len(buf), "utilization": buf.utilization} for sym, buf in buffers.items()}
