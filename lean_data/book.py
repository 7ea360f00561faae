"""Order-book records: price levels, snapshots and deltas, the same for every venue.

A venue sends its book as one full picture (:class:`OrderBookSnapshot`: a REST depth
answer, Bybit's ``snapshot`` message, Kraken's first ``as``/``bs`` message) and then
changes (:class:`OrderBookDelta`: Binance ``depthUpdate``, Bybit ``delta``, Kraken
``a``/``b``). A delta is one venue *message*, not one level: venues number (Binance
``U``/``u``/``pu``, Bybit ``u``) and checksum (Kraken ``c``) whole messages, so the
sequence numbers and the checksum belong to the batch of level changes the message holds.
Each level change gives the level's new total size; a size of 0 removes the level.

Conventions are those of :mod:`lean_data.models`: ``int`` nanoseconds since the epoch
(``ts_event`` from the venue, ``ts_recv`` local), ``float`` prices and sizes, frozen slotted
dataclasses. Unlike bars, these records check their *shape* when built (a NaN or infinite
number, a non-positive price, a sequence range running backwards, a level that is not a
pair of floats raise ``ValueError`` naming the field): the book could not even be keyed by
such a level. Whether the *content* is plausible (a negative size, a crossed book, a gap in
the sequence) is judged by :mod:`lean_data.depth`, which gives a verdict instead of raising,
so bad data can be counted and reported.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace
from typing import NamedTuple, TypeVar

from lean_data.models import _fast_constructor

__all__ = ["BookLevel", "BookSide", "Level", "Levels", "OrderBookDelta", "OrderBookSnapshot"]


class BookSide(enum.Enum):
    """The side of the book a level rests on."""

    BID = "bid"
    ASK = "ask"


class BookLevel(NamedTuple):
    """One price level: the total size resting at ``price`` (0 in a delta removes it)."""

    price: float
    size: float


Level = tuple[float, float]
"""A level in a record: ``(price, size)``. Plain tuples, not :class:`BookLevel`: a record is
built per venue message and a NamedTuple costs about twice as much to build; a BookLevel is
a tuple, so records accept them too, and the book's views return BookLevels."""
Levels = tuple[Level, ...]


_INF = math.inf
_R = TypeVar("_R")


def _fast_checked(cls: type[_R]) -> type[_R]:
    """Build ``cls`` with :func:`lean_data.models._fast_constructor` (plain slot stores, not
    ``object.__setattr__`` per field: about half the cost of a delta), keeping the check.

    ``type.__call__`` runs ``__init__`` with the same arguments after ``__new__``; here
    ``__init__`` only runs the ``__post_init__`` check, so ``cls(...)``,
    ``dataclasses.replace`` and unpickling are all checked.
    """
    check = cls.__post_init__  # type: ignore[attr-defined]  # every record here has one
    checked_copy = cls.with_ts_recv  # type: ignore[attr-defined]  # every record here has one
    fast = _fast_constructor(cls)
    type.__setattr__(fast, "with_ts_recv", checked_copy)  # keep ours: replace() checks

    def __init__(self: _R, *args: object, **kwargs: object) -> None:
        check(self)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    type.__setattr__(fast, "__init__", __init__)
    return fast


_U32 = 2**32


def _check_levels(levels: object, name: str) -> None:
    """One cheap pass over well-formed levels; on a failure, find and name the culprit."""
    if type(levels) is not tuple:
        raise ValueError(f"{name}: expected a tuple of (price, size), got {type(levels).__name__}")
    try:
        for price, size in levels:  # NaN fails every comparison below
            if not (
                type(price) is float and type(size) is float
                and 0.0 < price < _INF and -_INF < size < _INF
            ):  # fmt: skip
                break
        else:
            return
    except (TypeError, ValueError):  # not a pair
        pass
    _name_bad_level(levels, name)


def _name_bad_level(levels: tuple[object, ...], name: str) -> None:
    isfinite = math.isfinite
    for index, level in enumerate(levels):
        if not isinstance(level, tuple) or len(level) != 2:
            raise ValueError(f"{name}[{index}]: expected a (price, size) pair, got {level!r}")
        price, size = level
        if type(price) is not float or type(size) is not float:
            raise ValueError(f"{name}[{index}]: expected float price and size, got {level!r}")
        if not (isfinite(price) and price > 0.0):
            raise ValueError(f"{name}[{index}]: expected a finite price > 0, got {price!r}")
        if not isfinite(size):
            raise ValueError(f"{name}[{index}]: expected a finite size, got {size!r}")


def _check_common(symbol: object, ts_event: object, ts_recv: object) -> None:
    if not (type(symbol) is str and symbol and type(ts_event) is int and type(ts_recv) is int
            and ts_event >= 0 and ts_recv >= 0):  # fmt: skip
        if type(symbol) is not str or not symbol:
            raise ValueError(f"symbol: expected a non-empty string, got {symbol!r}")
        for name, value in (("ts_event", ts_event), ("ts_recv", ts_recv)):
            if type(value) is not int or value < 0:
                raise ValueError(f"{name}: expected int nanoseconds >= 0, got {value!r}")


@_fast_checked
@dataclass(slots=True, frozen=True)
class OrderBookSnapshot:
    """A full picture of one symbol's book.

    Attributes:
        symbol: canonical symbol (``"BTC/USDT"``).
        bids: levels, best (highest) first, as the venue sent them.
        asks: levels, best (lowest) first, as the venue sent them.
        sequence: the venue's update id the picture is at (Binance ``lastUpdateId``, Bybit
            ``u``); -1 when the venue numbers nothing (Kraken v1).
        ts_event: venue time of the picture, ns (the receive time when the venue gives none).
        ts_recv: local receive time, ns.
    """

    symbol: str
    bids: Levels
    asks: Levels
    sequence: int
    ts_event: int
    ts_recv: int

    def with_ts_recv(self, ts_recv: int) -> OrderBookSnapshot:
        """Return a copy received at ``ts_recv`` (ns since the epoch), checked."""
        return replace(self, ts_recv=ts_recv)

    def __post_init__(self) -> None:
        _check_common(self.symbol, self.ts_event, self.ts_recv)
        _check_levels(self.bids, "bids")
        _check_levels(self.asks, "asks")
        if type(self.sequence) is not int or self.sequence < -1:
            raise ValueError(f"sequence: expected an int >= -1, got {self.sequence!r}")


@_fast_checked
@dataclass(slots=True, frozen=True)
class OrderBookDelta:
    """One venue message of level changes for one symbol.

    Attributes:
        symbol: canonical symbol.
        bids: bid level changes in the venue's order (the last wins); size 0 removes.
        asks: ask level changes in the venue's order; size 0 removes.
        first_sequence: the first update id the message covers (Binance ``U``; Bybit ``u``);
            -1 when the venue numbers nothing.
        last_sequence: the last update id it covers (Binance and Bybit ``u``); -1 when none.
        prev_sequence: the previous message's last id as the venue states it (Binance
            futures ``pu``); -1 when the venue does not say.
        checksum: the venue's checksum of the book after this message (Kraken ``c``, an
            unsigned CRC32), or None.
        ts_event: venue event time, ns.
        ts_recv: local receive time, ns.
    """

    symbol: str
    bids: Levels
    asks: Levels
    first_sequence: int
    last_sequence: int
    prev_sequence: int
    checksum: int | None
    ts_event: int
    ts_recv: int

    def with_ts_recv(self, ts_recv: int) -> OrderBookDelta:
        """Return a copy received at ``ts_recv`` (ns since the epoch), checked."""
        return replace(self, ts_recv=ts_recv)

    def __post_init__(self) -> None:
        _check_common(self.symbol, self.ts_event, self.ts_recv)
        _check_levels(self.bids, "bids")
        _check_levels(self.asks, "asks")
        first, last, prev = self.first_sequence, self.last_sequence, self.prev_sequence
        if not (
            type(first) is int and type(last) is int and type(prev) is int
            and -1 <= first <= last and prev >= -1
        ):  # fmt: skip
            _name_bad_sequence(first, last, prev)
        checksum = self.checksum
        if checksum is not None and (type(checksum) is not int or not 0 <= checksum < _U32):
            raise ValueError(f"checksum: expected an unsigned 32-bit int, got {checksum!r}")


def _name_bad_sequence(first: object, last: object, prev: object) -> None:
    for name, value in (
        ("first_sequence", first),
        ("last_sequence", last),
        ("prev_sequence", prev),
    ):
        if type(value) is not int or value < -1:
            raise ValueError(f"{name}: expected an int >= -1, got {value!r}")
    raise ValueError(f"expected first_sequence <= last_sequence, got {first} > {last}")
