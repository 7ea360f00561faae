"""The maintained order book of one (feed, symbol): levels kept sorted, fast top of book.

Each side is a ``dict`` price -> size plus a Python ``list`` of its prices kept ascending
with :mod:`bisect` (``sortedcontainers`` is only a test dependency, through hypothesis, not
a runtime one). Changing the size of an existing level is one dict store; adding or removing
a level is a binary search plus one ``list.insert``/``pop`` (a memmove of at most a few
thousand pointers, well under a microsecond for a 1,000-level book). Best bid is the last
bid price, best ask the first ask price, so the top of book is O(1) and a depth-N view is
a slice.

The book applies what it is given. Whether a message *may* be applied (sequence numbers,
checksums) is the job of :mod:`lean_data.depth.sequencers` and :mod:`lean_data.depth.keeper`;
the book only reports what it can see of itself: crossed or locked, negative sizes.
"""

from __future__ import annotations

import enum
import math
from bisect import bisect_left, insort
from collections.abc import Iterable
from dataclasses import dataclass

from lean_data.book import BookLevel, BookSide, OrderBookDelta, OrderBookSnapshot

__all__ = ["BookState", "OrderBook", "TakeCost"]


class BookState(enum.Enum):
    """What the top of the book looks like."""

    NORMAL = "normal"  # best bid < best ask, or a side is empty
    LOCKED = "locked"  # best bid == best ask
    CROSSED = "crossed"  # best bid > best ask


@dataclass(slots=True, frozen=True)
class TakeCost:
    """What a market order of ``requested`` size would get walking one side of the book.

    Attributes:
        requested: the size asked for.
        filled: the size the book could give (``< requested`` when the book is too thin).
        notional: sum of price x size over the filled part.
        levels: how many levels the walk touched.
        worst_price: the price of the last level touched (nan when nothing filled).
    """

    requested: float
    filled: float
    notional: float
    levels: int
    worst_price: float

    @property
    def complete(self) -> bool:
        """True when the book held the whole requested size."""
        return self.filled >= self.requested

    @property
    def shortfall(self) -> float:
        """The size the book could not give (0 when complete)."""
        return max(self.requested - self.filled, 0.0)

    @property
    def vwap(self) -> float:
        """Average price of the filled part (nan when nothing filled)."""
        return self.notional / self.filled if self.filled > 0 else math.nan


class OrderBook:
    """One symbol's book, built from a snapshot and kept current by deltas.

    Args:
        symbol: canonical symbol.
        max_depth: keep at most this many levels a side, dropping the worst after each
            message (Kraken's rule: levels pushed out of the subscribed depth are not
            deleted by the venue); None keeps everything.
    """

    __slots__ = (
        "_ask_prices",
        "_asks",
        "_bid_prices",
        "_bids",
        "invalid_reason",
        "max_depth",
        "sequence",
        "symbol",
        "ts_event",
        "valid",
    )

    def __init__(self, symbol: str, *, max_depth: int | None = None) -> None:
        if max_depth is not None and max_depth < 1:
            raise ValueError(f"max_depth: expected >= 1 or None, got {max_depth}")
        self.symbol = symbol
        self.max_depth = max_depth
        self._bids: dict[float, float] = {}
        self._asks: dict[float, float] = {}
        self._bid_prices: list[float] = []  # ascending: best bid last
        self._ask_prices: list[float] = []  # ascending: best ask first
        self.sequence = -1
        self.ts_event = 0
        self.valid = False
        self.invalid_reason = "no snapshot yet"

    # --- changing the book ----------------------------------------------------------

    def load(self, snapshot: OrderBookSnapshot) -> None:
        """Replace the whole book with ``snapshot`` and mark it valid.

        Levels of size 0 in a snapshot are ignored (they describe nothing).
        """
        self._bids = {price: size for price, size in snapshot.bids if size != 0.0}
        self._asks = {price: size for price, size in snapshot.asks if size != 0.0}
        self._bid_prices = sorted(self._bids)
        self._ask_prices = sorted(self._asks)
        self.sequence = snapshot.sequence
        self.ts_event = snapshot.ts_event
        self._truncate()
        self.valid = True
        self.invalid_reason = ""

    def apply(self, delta: OrderBookDelta) -> None:
        """Apply every level change of ``delta`` in order (size 0 removes the level)."""
        if delta.bids:
            self._apply_side(self._bids, self._bid_prices, delta.bids)
        if delta.asks:
            self._apply_side(self._asks, self._ask_prices, delta.asks)
        if delta.last_sequence != -1:
            self.sequence = delta.last_sequence
        self.ts_event = delta.ts_event
        if self.max_depth is not None:
            self._truncate()

    def set_level(self, side: BookSide, price: float, size: float) -> None:
        """Set one level's size (0 removes it)."""
        if side is BookSide.BID:
            self._apply_side(self._bids, self._bid_prices, ((price, size),))
        else:
            self._apply_side(self._asks, self._ask_prices, ((price, size),))

    @staticmethod
    def _apply_side(
        sizes: dict[float, float], prices: list[float], levels: Iterable[tuple[float, float]]
    ) -> None:
        for price, size in levels:
            if size == 0.0:
                if sizes.pop(price, None) is not None:
                    del prices[bisect_left(prices, price)]
            else:
                if price not in sizes:
                    insort(prices, price)
                sizes[price] = size

    def _truncate(self) -> None:
        depth = self.max_depth
        if depth is None:
            return
        extra = len(self._bid_prices) - depth
        if extra > 0:
            for price in self._bid_prices[:extra]:
                del self._bids[price]
            del self._bid_prices[:extra]
        extra = len(self._ask_prices) - depth
        if extra > 0:
            for price in self._ask_prices[depth:]:
                del self._asks[price]
            del self._ask_prices[depth:]

    def invalidate(self, reason: str) -> None:
        """Mark the book untrustworthy until the next :meth:`load`."""
        self.valid = False
        self.invalid_reason = reason

    def clear(self) -> None:
        """Remove every level (the book stays invalid until the next :meth:`load`)."""
        self._bids.clear()
        self._asks.clear()
        self._bid_prices.clear()
        self._ask_prices.clear()
        self.invalidate("cleared")

    # --- reading the book -----------------------------------------------------------

    @property
    def best_bid(self) -> BookLevel | None:
        """The highest bid, or None when there is none."""
        if not self._bid_prices:
            return None
        price = self._bid_prices[-1]
        return BookLevel(price, self._bids[price])

    @property
    def best_ask(self) -> BookLevel | None:
        """The lowest ask, or None when there is none."""
        if not self._ask_prices:
            return None
        price = self._ask_prices[0]
        return BookLevel(price, self._asks[price])

    def bids(self, depth: int | None = None) -> list[BookLevel]:
        """The best ``depth`` bids (all when None), best first."""
        prices = self._bid_prices
        chosen = prices[::-1] if depth is None else prices[: -depth - 1 : -1]
        sizes = self._bids
        return [BookLevel(price, sizes[price]) for price in chosen]

    def asks(self, depth: int | None = None) -> list[BookLevel]:
        """The best ``depth`` asks (all when None), best first."""
        chosen = self._ask_prices if depth is None else self._ask_prices[:depth]
        sizes = self._asks
        return [BookLevel(price, sizes[price]) for price in chosen]

    def size_at(self, side: BookSide, price: float) -> float:
        """The size resting at ``price`` on ``side`` (0 when there is no level)."""
        return (self._bids if side is BookSide.BID else self._asks).get(price, 0.0)

    def __len__(self) -> int:
        """The number of levels, both sides."""
        return len(self._bid_prices) + len(self._ask_prices)

    @property
    def depth(self) -> tuple[int, int]:
        """(bid levels, ask levels)."""
        return len(self._bid_prices), len(self._ask_prices)

    @property
    def spread(self) -> float:
        """Best ask minus best bid (nan when a side is empty)."""
        if not self._bid_prices or not self._ask_prices:
            return math.nan
        return self._ask_prices[0] - self._bid_prices[-1]

    @property
    def mid(self) -> float:
        """The midpoint of best bid and ask (nan when a side is empty)."""
        if not self._bid_prices or not self._ask_prices:
            return math.nan
        return (self._ask_prices[0] + self._bid_prices[-1]) / 2.0

    @property
    def microprice(self) -> float:
        """The size-weighted mid: ``(bid * ask_size + ask * bid_size) / (bid_size + ask_size)``.

        It leans towards the side with less size (the price more likely to move). nan when
        a side is empty.
        """
        bid, ask = self.best_bid, self.best_ask
        if bid is None or ask is None:
            return math.nan
        total = bid.size + ask.size
        return (bid.price * ask.size + ask.price * bid.size) / total

    def imbalance(self, depth: int = 1) -> float:
        """``(bid size - ask size) / (bid size + ask size)`` over the top ``depth`` levels.

        In [-1, 1]: +1 when only bids rest there. nan when both are empty.
        """
        if depth < 1:
            raise ValueError(f"depth: expected >= 1, got {depth}")
        bid = math.fsum(level.size for level in self.bids(depth))
        ask = math.fsum(level.size for level in self.asks(depth))
        total = bid + ask
        return (bid - ask) / total if total > 0 else math.nan

    def cost_to_take(self, side: BookSide, size: float) -> TakeCost:
        """Walk the book for a market order of ``size``: a buy (``BookSide.BID``, the
        aggressor's side) takes asks, a sell (``BookSide.ASK``) takes bids.

        Returns:
            the filled size, notional, levels touched and worst price; ``complete`` is
            False (and ``shortfall`` positive) when the book is too thin.
        """
        if not (size > 0 and math.isfinite(size)):
            raise ValueError(f"size: expected a finite size > 0, got {size!r}")
        if side is BookSide.BID:
            prices: Iterable[float] = self._ask_prices
            sizes = self._asks
        else:
            prices, sizes = reversed(self._bid_prices), self._bids
        left, levels, worst = size, 0, math.nan
        parts: list[float] = []
        taken: list[float] = []
        for price in prices:
            available = sizes[price]
            levels += 1
            worst = price
            if available >= left:
                parts.append(price * left)
                taken.append(left)
                left = 0.0
                break
            parts.append(price * available)
            taken.append(available)
            left -= available
        filled = size if left == 0.0 else math.fsum(taken)
        return TakeCost(size, filled, math.fsum(parts), levels, worst)

    @property
    def state(self) -> BookState:
        """NORMAL, LOCKED (best bid == best ask) or CROSSED (best bid > best ask)."""
        if not self._bid_prices or not self._ask_prices:
            return BookState.NORMAL
        bid, ask = self._bid_prices[-1], self._ask_prices[0]
        if bid < ask:
            return BookState.NORMAL
        return BookState.LOCKED if bid == ask else BookState.CROSSED

    def negative_levels(self) -> list[tuple[BookSide, BookLevel]]:
        """Every level whose size is negative (a corrupt message; should be empty)."""
        found = [(BookSide.BID, BookLevel(p, s)) for p, s in self._bids.items() if s < 0]
        found += [(BookSide.ASK, BookLevel(p, s)) for p, s in self._asks.items() if s < 0]
        return found

    def __repr__(self) -> str:
        return (
            f"OrderBook({self.symbol!r}, bid={self.best_bid}, ask={self.best_ask}, "
            f"levels={self.depth}, sequence={self.sequence}, valid={self.valid})"
        )
