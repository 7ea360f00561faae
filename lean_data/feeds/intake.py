"""What every feed does with an item it hands over: stamp, count, offer (compiled).

:class:`FeedIntake` is the base of :class:`~lean_data.feeds.base.DataFeed`: the feed's name,
the engine it is attached to, its per-feed counters and the two coroutines that hand items
over, :meth:`~FeedIntake.emit` and :meth:`~FeedIntake.emit_many`. Every item of every feed
passes through one of them, so they are compiled with the hot path (a compiled class that
users' feeds subclass, like the validator); the rest of DataFeed, its I/O and its lifecycle,
stays plain Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from mypy_extensions import mypyc_attr

from lean_data.book import OrderBookDelta, OrderBookSnapshot
from lean_data.derivatives import FundingRate, Liquidation, MarkPrice, OpenInterest
from lean_data.errors import EngineStateError
from lean_data.inbox import Door
from lean_data.models import MarketData, Tick, TradeBar
from lean_data.native import time_ns, twin
from lean_data.slots import BAR_TS_RECV, COPY_BAR, fields_of, own_copy

__all__ = ["Emitted", "FeedIntake"]

Emitted = (
    MarketData
    | OrderBookSnapshot
    | OrderBookDelta
    | FundingRate
    | OpenInterest
    | MarkPrice
    | Liquidation
)
"""What a feed may emit: market data, order-book records and derivatives records."""

# C statics (compiled): a module global of a pure module is a dict lookup per use
_NOW: Final = time_ns
_COPY: Final = COPY_BAR
_OWN_COPY: Final = own_copy
_TS_RECV: Final = BAR_TS_RECV
_TRADE_BAR: Final = TradeBar
_TICK: Final = Tick
# (ts_recv, symbol) of an exact TradeBar or Tick from its slots in one C call: compiled, each
# field read of a pure model is a generic lookup where the interpreter specialises slot reads
_BAR_RECEIPT: Final = fields_of(TradeBar, ("ts_recv", "symbol"))
_TICK_RECEIPT: Final = fields_of(Tick, ("ts_recv", "symbol"))


def _mark_seen(
    items: Sequence[Any], last_seen: dict[str, int], now: int, readers: tuple[Any, ...]
) -> int:
    """The leading items :func:`hand_over` need not look at one by one: with the compiled
    package (``lean_data._slots.mark_seen``), those that are exactly a TradeBar or a Tick
    (the classes of ``readers``, readers of ``(ts_recv, symbol)``) with a receive time that
    is a non-zero int and a str symbol, each seen now (``last_seen[symbol] = now``), up to
    the first other one, whose index it returns. This pure twin takes none (0): the loop
    does the same for every item."""
    return 0


_MARK_SEEN: Final = twin("lean_data._slots", "mark_seen", _mark_seen)
# a tuple object (compiled, a Final tuple of known length is rebuilt at each use)
_RECEIPTS: Final[tuple[Any, ...]] = (_BAR_RECEIPT, _TICK_RECEIPT)


def _receipt(item: Any) -> tuple[Any, ...] | None:
    """``(item.ts_recv, item.symbol)``, or None when ``item`` has no such fields (not a
    model). An exact TradeBar's or Tick's from its slots in one C call."""
    kind = type(item)
    if kind is _TRADE_BAR:
        return _BAR_RECEIPT(item)
    if kind is _TICK:
        return _TICK_RECEIPT(item)
    try:
        return item.ts_recv, item.symbol
    except AttributeError:
        return None


# Every feed subclasses it: the compiled class must allow that.
@mypyc_attr(allow_interpreted_subclasses=True)
class FeedIntake:
    """A feed's name, its engine and its hand-over counters; the base of DataFeed.

    Args:
        name: unique name of the feed in an engine.

    Attributes:
        name: the feed's name.
        messages_emitted: items handed to the engine so far.
        last_message_ns: receive time (ns) of the last item handed over, 0 before any.
        last_seen: receive time (ns) of the last item handed over, per symbol.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._sink: Any = None  # a FeedSink (lean_data.feeds.base): the engine, or a double
        # its offer_many, bound when the sink is set (attach): compiled, a call by name on
        # the engine looks the method up in the engine's type and dict on every read
        self._offer_many: Any = None
        # the engine's door (its Intake) when the sink is an engine (attach): compiled, its
        # offer_many is then a native call, not a bound method's argument parsing
        self._intake: Door | None = None
        self.messages_emitted = 0
        self.last_message_ns = 0
        self.last_seen: dict[str, int] = {}

    async def emit(self, item: Emitted) -> None:
        """Hand one item to the engine; waits while the engine's inbox is full.

        When the feed left ``ts_recv`` at 0, the engine gets a copy of ``item`` stamped
        with the current time (models are immutable; ``item`` itself is unchanged).

        Raises:
            EngineStateError: the feed is not attached to an engine.
            TypeError: ``item`` is not a model object.
        """
        sink = self._sink
        if sink is None:
            raise EngineStateError(f"feed {self.name!r} is not attached to a running engine")
        receipt = _receipt(item)
        if receipt is None:
            raise TypeError(f"emit() takes a TradeBar, QuoteBar or Tick, got {type(item).__name__}")
        now = _NOW()
        untyped: Any = item
        if receipt[0] == 0:  # item.with_ts_recv(now); a TradeBar's copy made in one C call
            untyped = _COPY(untyped, _TS_RECV, now, _OWN_COPY)
        self.last_seen[receipt[1]] = now
        self.last_message_ns = now
        self.messages_emitted += 1
        name = self.name
        if not sink.offer(name, untyped):
            await sink.accept(name, untyped)

    async def emit_many(self, items: Sequence[Emitted]) -> None:
        """Hand several items to the engine at once, in order: what one socket read gave.

        The same as :meth:`emit` for each item (``ts_recv`` stamped when 0), but one inbox
        operation for all of them, so the engine's per-item cost of taking them in is paid
        once per read. Waits while the engine's inbox has no room for them.

        Raises:
            EngineStateError: the feed is not attached to an engine.
            TypeError: an item is not a model object (nothing is handed over then).
        """
        handed = hand_over(self, items, _NOW())
        if handed is not None:  # the inbox has no room for them yet
            await self._sink.accept_many(self.name, handed)


def hand_over(feed: FeedIntake, items: Sequence[Emitted], now: Any) -> Sequence[Any] | None:
    """What :meth:`FeedIntake.emit_many` does short of waiting: stamp ``ts_recv`` where it is
    0, count, and offer the items to the engine in one inbox operation. Returns None when
    they were taken (or there were none), else the items as stamped, which the caller hands
    over with ``feed._sink.accept_many`` (it waits for room). The read loop
    (:mod:`lean_data.feeds.reading`) calls it directly for a feed that keeps the base
    ``emit_many``: no coroutine per read.

    ``now`` is the receipt time (``time.time_ns()``, an int kept as the object it is: a
    native int would be boxed anew for each store), the read's own for the read loop.

    Raises:
        EngineStateError: the feed is not attached to an engine.
        TypeError: an item is not a model object (nothing is handed over then).
    """
    if not items:
        return None
    sink = feed._sink
    if sink is None:
        raise EngineStateError(f"feed {feed.name!r} is not attached to a running engine")
    last_seen = feed.last_seen
    stamped: list[Any] | None = None
    # the plain leading items in one C call (none without it); the rest one by one
    for index in range(_MARK_SEEN(items, last_seen, now, _RECEIPTS), len(items)):
        item = items[index]
        receipt = _receipt(item)
        if receipt is None:
            raise TypeError(
                f"emit_many() takes TradeBars, QuoteBars or Ticks, got {type(item).__name__}"
            )
        if receipt[0] == 0:
            if stamped is None:
                stamped = list(items)
            stamped[index] = _COPY(item, _TS_RECV, now, _OWN_COPY)  # with_ts_recv
        last_seen[receipt[1]] = now
    handed: Sequence[Any] = items if stamped is None else stamped
    feed.last_message_ns = now
    feed.messages_emitted += len(handed)
    intake = feed._intake
    if intake is not None:  # the engine's: a native call
        return None if intake.offer_many(feed.name, handed) else handed
    offer_many = feed._offer_many
    if offer_many is None:  # a sink that has none (a double): as before, by name
        offer_many = sink.offer_many
    return None if offer_many(feed.name, handed) else handed
