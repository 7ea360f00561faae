"""lean_data.slots: a model's fields in one call give what getattr and the class give.

Both readers are checked whenever they exist: the pure one (``operator.attrgetter`` and
the class) always, the C one (``lean_data._slots``) on the compiled build, where CI's
compiled run requires it.
"""

from __future__ import annotations

import dataclasses
import operator
import os
import pickle
from typing import Any

import pytest

from lean_data import slots
from lean_data.models import Resolution, Tick, TickType, TradeBar
from lean_data.slots import _copy_by_fallback

NAMES = tuple(f.name for f in dataclasses.fields(TradeBar))


class Way:
    """One build's reader, builder and copy of TradeBars."""

    def __init__(self, read: Any, build: Any, copy: Any) -> None:
        self.read, self.build, self.copy = read, build, copy


def _ways() -> list[Way]:
    found = [Way(operator.attrgetter(*NAMES), TradeBar, _copy_by_fallback)]  # the pure build's
    if slots._Slots is not None:
        made = slots._Slots(TradeBar, NAMES)
        found.append(Way(made, made.build, made.with_value))
    return found


WAYS = _ways()


@pytest.fixture(params=WAYS, ids=["pure", "c"][: len(WAYS)])
def way(request: pytest.FixtureRequest) -> Way:
    return request.param


def _replace_at(item: Any, index: int, value: object) -> Any:
    return dataclasses.replace(item, **{NAMES[index]: value})


@dataclasses.dataclass(frozen=True, slots=True)
class VenueBar(TradeBar):
    venue: str = "X"


def _bar(**changes: Any) -> TradeBar:
    bar = TradeBar("BTC/USDT", 1_700_000_000 * 10**9, 1.0, 2.0, 0.5, 1.5, 10.0, ts_recv=7)
    return dataclasses.replace(bar, **changes) if changes else bar


def test_the_compiled_build_has_the_c_readers() -> None:
    if os.environ.get("LEAN_DATA_VARIANT") == "compiled":
        assert slots.NATIVE
        assert type(slots.BAR).__module__ == "lean_data._slots"
    elif os.environ.get("LEAN_DATA_VARIANT") == "pure":
        assert not slots.NATIVE
        assert type(slots.BAR) is operator.attrgetter
        assert slots.BUILD_BAR is TradeBar


def test_positions_are_the_field_order() -> None:
    assert NAMES == (
        "symbol", "ts_event", "open", "high", "low", "close", "volume", "resolution",
        "ts_recv", "closed", "revision", "backfilled",
    )  # fmt: skip
    assert [NAMES.index(n) for n in NAMES] == [
        slots.BAR_SYMBOL, slots.BAR_TS_EVENT, slots.BAR_OPEN, slots.BAR_HIGH, slots.BAR_LOW,
        slots.BAR_CLOSE, slots.BAR_VOLUME, slots.BAR_RESOLUTION, slots.BAR_TS_RECV,
        slots.BAR_CLOSED, slots.BAR_REVISION, slots.BAR_BACKFILLED,
    ]  # fmt: skip


def test_tick_positions_are_its_field_order() -> None:
    names = [f.name for f in dataclasses.fields(Tick)]
    positions = {
        "symbol": slots.TICK_SYMBOL, "ts_event": slots.TICK_TS_EVENT, "price": slots.TICK_PRICE,
        "size": slots.TICK_SIZE, "tick_type": slots.TICK_TYPE, "ts_recv": slots.TICK_TS_RECV,
        "bid_price": slots.TICK_BID_PRICE, "bid_size": slots.TICK_BID_SIZE,
        "ask_price": slots.TICK_ASK_PRICE, "ask_size": slots.TICK_ASK_SIZE,
        "exchange": slots.TICK_EXCHANGE, "condition": slots.TICK_CONDITION,
        "suspicious": slots.TICK_SUSPICIOUS, "trade_id": slots.TICK_TRADE_ID,
    }  # fmt: skip
    assert {name: names.index(name) for name in names} == positions


def test_a_tick_reads_and_builds_as_the_class_does() -> None:
    tick = Tick("ETH/USDT", 10**18, 2.5, 1.0, TickType.TRADE, 5, condition="x", trade_id="7")
    values = slots.TICK(tick)
    assert values == tuple(getattr(tick, f.name) for f in dataclasses.fields(Tick))
    built = slots.BUILD_TICK(*values)
    assert type(built) is Tick
    assert built == tick


def test_a_bar_reads_as_getattr_reads_it(way: Way) -> None:
    bar = _bar(open="not a number", revision=-1, resolution=None)  # hostile values pass
    assert way.read(bar) == tuple(getattr(bar, name) for name in NAMES)


def test_subclasses_read_through_getattr(way: Way) -> None:
    venue = VenueBar("A/B", 10**18, 1.0, 1.0, 1.0, 1.0, 0.0, venue="V")
    assert way.read(venue) == tuple(getattr(venue, name) for name in NAMES)
    plain = type("Plain", (TradeBar,), {})("A/B", 10**18, 1.0, 1.0, 1.0, 2.0, 0.0)
    assert way.read(plain) == tuple(getattr(plain, name) for name in NAMES)


def test_a_missing_field_raises_attribute_error(way: Way) -> None:
    empty = object.__new__(TradeBar)  # no field filled
    with pytest.raises(AttributeError, match="symbol"):
        way.read(empty)
    with pytest.raises(AttributeError):
        way.read(object())


def test_build_gives_the_class_instance(way: Way) -> None:
    bar = _bar()
    built = way.build(*way.read(bar))
    assert type(built) is TradeBar
    assert built == bar
    assert hash(built) == hash(bar)
    assert pickle.loads(pickle.dumps(built)) == bar
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.open = 3.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        way.build("A/B", 1)


def test_the_copy_changes_one_field(way: Way) -> None:
    bar = _bar()
    copy = way.copy(bar, slots.BAR_TS_RECV, 99, _replace_at)
    assert copy == dataclasses.replace(bar, ts_recv=99)
    assert bar.ts_recv == 7
    venue = VenueBar("A/B", 10**18, 1.0, 1.0, 1.0, 1.0, 0.0, venue="V")
    moved = way.copy(venue, slots.BAR_TS_RECV, 5, _replace_at)
    assert type(moved) is VenueBar
    assert (moved.venue, moved.ts_recv) == ("V", 5)
    with pytest.raises(IndexError):
        way.copy(bar, len(NAMES), 1, _replace_at)
    stamped = way.copy(bar, slots.BAR_TS_RECV, 11, slots.own_copy)  # what DataFeed.emit does
    assert stamped == bar.with_ts_recv(11)


def test_the_module_reader_is_resolution_aware() -> None:
    assert slots.BAR(_bar(resolution=Resolution.HOUR))[slots.BAR_RESOLUTION] is Resolution.HOUR


def test_the_c_reader_refuses_what_is_not_a_slot() -> None:
    if slots._Slots is None:
        pytest.skip("the C readers are not built (pure install)")
    with pytest.raises(TypeError, match="not an object slot"):
        slots._Slots(TradeBar, ("time",))  # a property
    with pytest.raises(AttributeError):
        slots._Slots(TradeBar, ("nope",))
    with pytest.raises(TypeError, match="takes the 12 fields of TradeBar"):
        slots._Slots(TradeBar, NAMES).build("A/B", 1)


def test_built_of_plain_values_a_model_is_left_to_reference_counting() -> None:
    """A bar or tick the C builder makes of text, numbers, flags, a Resolution and a
    TickType cannot be in a reference cycle: untracked, the collector never walks it (a
    ring buffer holds thousands of ticks). One holding anything else stays tracked, and a
    cycle through it is still collected."""
    if slots._Slots is None:
        pytest.skip("the C builders are not built (pure install)")
    import gc
    import weakref

    bar = slots.BUILD_BAR(*slots.BAR(_bar(resolution=Resolution.HOUR)))
    assert not gc.is_tracked(bar)
    assert not gc.is_tracked(slots.COPY_BAR(bar, slots.BAR_TS_RECV, 9, slots.own_copy))
    tick = Tick("BTC/USDT", 1_700_000_000 * 10**9, 1.0, 2.0, TickType.TRADE, ts_recv=3)
    built = slots.BUILD_TICK(*slots.TICK(tick))
    assert built == tick
    assert not gc.is_tracked(built)

    class Holder:  # a user's object in a field (any value passes the builder)
        pass

    holder = Holder()
    odd = slots.BUILD_TICK(*slots.TICK(dataclasses.replace(tick, exchange=holder)))  # type: ignore[arg-type]
    assert gc.is_tracked(odd)
    holder.tick = odd  # type: ignore[attr-defined]  # a cycle: holder -> odd -> holder
    slots.TICK(tick)  # the reader keeps the instance it read last: another one now
    gone = weakref.ref(holder)
    del holder, odd
    gc.collect()
    assert gone() is None
    with pytest.raises(TypeError, match="tuple of types"):
        slots._Slots(TradeBar, NAMES, (1,))


def test_a_reader_gives_the_same_tuple_for_the_same_frozen_instance() -> None:
    """The stages each read a bar's fields: a C reader remembers the exact instance it read
    last (holding it, so no other object takes its address) and returns the same tuple."""
    if slots._Slots is None:
        pytest.skip("the C readers are not built (pure install)")
    first, second = _bar(), _bar(open=3.0)
    once = slots.BAR(first)
    assert slots.BAR(first) is once
    again = slots.BAR(second)
    assert again is not once
    assert again[slots.BAR_OPEN] == 3.0
    assert slots.BAR(first) == once  # read afresh: equal values, a new tuple
    sub = VenueBar(*once)  # a subclass is read by getattr every time
    assert slots.BAR(sub) is not slots.BAR(sub)
