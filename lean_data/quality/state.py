"""Per-series rolling state of :mod:`lean_data.quality.validator` and the rules that move it.

A :class:`Series` holds one series' price reference, last timestamp and fixed-size windows
of moves and ranges (O(1) memory per series); the functions below widen limits over quiet
spells, confirm level shifts and judge repeated bars against that state.
"""

from __future__ import annotations

import math
from typing import Any, Final

from lean_data.models import NS_PER_MINUTE, MarketData, QuoteBar, TradeBar
from lean_data.quality.rules import FAIR, POOR, Issues, add, tier

TICK_PERIOD: Final = NS_PER_MINUTE  # time unit for widening tick limits over quiet spells
NO_TS: Final = -(2**63)
# the one float object a zero observation is stored as: a window slot is read back a window
# of the series' items later, when a float made for it would be long out of the CPU's caches
# (a tick's range is always 0.0, and a trade at the last trade's price moves 0.0)
_ZERO: Final[object] = float(0)


class Series:
    """Rolling state of one series: price reference, last timestamp, windows of moves."""

    __slots__ = (
        "base_confirm",
        "base_pending",
        "base_ref",
        "base_ref_ts",
        "closed",
        "confirm",
        "floor",
        "hard",
        "has_volume",
        "idx",
        "last",
        "moves",
        "msum",
        "n",
        "needed",
        "pending",
        "period",
        "pushed",
        "ranges",
        "ref",
        "ref_ts",
        "resum_in",
        "revision",
        "rsum",
        "size",
        "ts",
    )

    def __init__(self, window: int, period_ns: int) -> None:
        self.ts = NO_TS
        self.ref = 0.0  # price reference: the last accepted price (0: none yet)
        self.ref_ts = 0
        self.pending = 0.0  # a flagged new level awaiting confirmation (0: none)
        self.confirm = 0  # how many items have been seen at the pending level
        self.needed = 2 if period_ns else 3  # items at a new level that make it a shift
        self.base_ref = 0.0  # the reference state from before the current bar
        self.base_ref_ts = 0
        self.base_pending = 0.0
        self.base_confirm = 0
        self.closed = True
        self.revision = 0
        self.last: MarketData | None = None
        self.has_volume = False
        self.period = period_ns or TICK_PERIOD
        self.hard, self.floor = tier(period_ns)
        self.size = window
        # lists, not array("d"): compiled, a list item is read and set natively, where an
        # array's goes through its generic item protocol and argument parsing (~450
        # instructions a set); a window is small (``window`` floats a series). Items are
        # floats, typed Any: a zero is stored as the shared _ZERO (compiled, a float item
        # would be a new float object on every store)
        self.moves: list[Any] = [_ZERO] * window
        self.ranges: list[Any] = [_ZERO] * window
        self.msum = 0.0
        self.rsum = 0.0
        self.n = 0
        self.idx = 0
        self.pushed = False  # whether the current bar already put a value in the windows
        self.resum_in = 8 * window  # updates left before msum and rsum are re-summed

    def accept(self, price: float, ts: int) -> None:
        """Make ``price`` the reference and drop any pending level."""
        self.ref = price
        self.ref_ts = ts
        self.pending = 0.0
        self.confirm = 0

    def new_bar(self, ts: int) -> None:
        """Start a new bar: remember the state its later versions are judged against."""
        self.ts = ts
        self.pushed = False
        self.base_ref = self.ref
        self.base_ref_ts = self.ref_ts
        self.base_pending = self.pending
        self.base_confirm = self.confirm

    def same_bar(self) -> None:
        """Go back to the state from before the current bar's first version."""
        self.ref = self.base_ref
        self.ref_ts = self.base_ref_ts
        self.pending = self.base_pending
        self.confirm = self.base_confirm

    def record(self, move: float, rng: float) -> None:
        """Put an observation in the windows (replacing the current bar's earlier one)."""
        moves, ranges, size = self.moves, self.ranges, self.size
        i = self.idx
        if self.pushed:
            i = i - 1 if i else size - 1
        else:
            self.idx = i + 1 if i + 1 < size else 0
            self.pushed = True
            if self.n < size:
                self.n += 1
        old_move: float = moves[i]
        old_range: float = ranges[i]
        self.msum += move - old_move
        self.rsum += rng - old_range
        moves[i] = move if move else _ZERO
        ranges[i] = rng if rng else _ZERO
        left = self.resum_in - 1
        if left:
            self.resum_in = left
        else:  # re-sum every 8 * size updates: no float drift
            self.resum_in = 8 * size
            self.msum = math.fsum(moves)
            self.rsum = math.fsum(ranges)


def forget(table: dict[Any, Series], symbol: str | None) -> None:
    """Drop every series of ``table``, or those of ``symbol`` (the key's second field)."""
    if symbol is None:
        table.clear()
        return
    for key in [key for key in table if key[1] == symbol]:
        del table[key]


def widened(st: Series, ts: int, lim: float) -> float:
    """Widen ``lim`` by sqrt(elapsed periods) when the reference is older than a period."""
    elapsed = ts - st.ref_ts
    if elapsed > st.period:
        return lim * math.sqrt(elapsed / st.period)
    return lim


def level_shift(st: Series, price: float, ts: int, lim: float, rng: float) -> bool:
    """Track a flagged level; return True (and accept it) once enough items confirm it."""
    pending = st.pending
    if pending > 0.0:
        move = abs(math.log(price / pending))
        if move <= lim:
            st.confirm += 1
            if st.confirm >= st.needed:
                st.accept(price, ts)
                st.record(move, rng)
                return True
            st.record(lim, rng)
            return False
    st.pending = price
    st.confirm = 1
    st.record(lim, rng)
    return False


def repeat(st: Series, bar: TradeBar | QuoteBar, issues: Issues) -> Issues:
    """Judge a bar with the open time of the previous one: an update, or a duplicate."""
    if bar.revision > st.revision or not st.closed:
        return issues
    if bar_values(st.last) == bar_values(bar):
        return add(issues, "duplicate_timestamp", FAIR, f"repeats the bar at {bar.ts_event}")
    msg = (
        f"differs from the bar already received for {bar.ts_event} (revision "
        f"{bar.revision}) without a new revision"
    )
    return add(issues, "duplicate_timestamp", POOR, msg)


def bar_values(item: MarketData | None) -> tuple[object, ...]:
    """Return a bar's prices and sizes (NaN as None, so that NaN equals NaN)."""
    if isinstance(item, TradeBar):
        values: tuple[float, ...] = (item.open, item.high, item.low, item.close, item.volume)
    elif isinstance(item, QuoteBar):
        values = (
            item.bid_open, item.bid_high, item.bid_low, item.bid_close, item.bid_size,
            item.ask_open, item.ask_high, item.ask_low, item.ask_close, item.ask_size,
        )  # fmt: skip
    else:
        return ()
    return tuple(None if v != v else v for v in values)
