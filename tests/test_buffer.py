"""DataBuffer: ring semantics against a reference, TradeBar rows, memory, and thread safety.

Bars are the FTX BTC-PERP 1-minute bars of
``tests/fixtures/nautilus_trader/btc-perp-20211231-20220201_1m.csv``, plus hand-made bars
for the edges of a row (int64 limits, nan, inf, -0.0, odd resolutions and flags).
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
import struct
import sys
import threading
import tracemalloc
from array import array
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from lean_data.errors import ConfigError
from lean_data.loaders import load_file
from lean_data.models import QuoteBar, Resolution, Tick, TickType, TradeBar
from lean_data.series.buffer import DataBuffer
from tests.conftest import FIXTURES

CSV = FIXTURES / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FIVE_MINUTES = Resolution.parse("5m")


@pytest.fixture(scope="module")
def btc() -> list[TradeBar]:
    """The first 2,000 real FTX BTC-PERP 1-minute bars."""
    bars = load_file(CSV, symbol="BTC-PERP")[:2_000]
    assert all(type(b) is TradeBar for b in bars)
    return bars  # type: ignore[return-value]  # checked just above


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10", None])
def test_rejects_a_capacity_that_is_not_a_positive_integer(bad: object) -> None:
    with pytest.raises(ConfigError, match="positive integer"):
        DataBuffer(bad)  # type: ignore[arg-type]  # the point is a wrong type


def test_overwrites_the_oldest_and_returns_latest_oldest_first() -> None:
    assert DataBuffer[int](3).latest is None
    buffer: DataBuffer[int] = DataBuffer(3)
    assert buffer.get_latest(5) == []
    for value in range(1, 6):
        buffer.add(value)
    assert buffer.get_latest(1) == [5]
    assert buffer.get_latest(2) == [4, 5]
    assert buffer.get_latest(3) == [3, 4, 5]
    assert buffer.get_latest(99) == [3, 4, 5]
    assert buffer.get_latest(0) == []
    assert buffer.get_latest() == [5]
    assert buffer.latest == 5
    assert len(buffer) == 3
    assert buffer.total_added == 5
    assert buffer.max_size == 3


def test_negative_n_is_rejected() -> None:
    buffer: DataBuffer[int] = DataBuffer(2)
    with pytest.raises(ValueError, match="n must be >= 0, got -1"):
        buffer.get_latest(-1)


def test_utilization_is_a_percentage_of_capacity() -> None:
    buffer: DataBuffer[int] = DataBuffer(8)
    assert buffer.utilization == 0.0
    buffer.add(1)
    assert buffer.utilization == 12.5
    buffer.extend(range(5))
    assert buffer.utilization == 75.0
    buffer.extend(range(100))
    assert buffer.utilization == 100.0
    buffer.clear()
    assert buffer.utilization == 0.0
    assert buffer.total_added == 106
    assert repr(buffer) == "DataBuffer(max_size=8, len=0)"


def test_extend_accepts_a_generator_and_keeps_order() -> None:
    buffer: DataBuffer[int] = DataBuffer(4)
    buffer.extend(x * x for x in range(6))
    assert buffer.get_latest(4) == [4, 9, 16, 25]
    assert buffer.total_added == 6


# ------------------------------------------------------------------------ TradeBar rows
EDGE_BARS = [
    TradeBar("AAPL", 1_402_300_800_000_000_000, 645.57, 645.57, 92.23, 92.42, 600.0),
    TradeBar(
        "BTC/USDT", 1_640_995_200_000_000_000, 46_216.93, 46_271.08, 46_208.37, 46_250.0,
        math.nan, FIVE_MINUTES, ts_recv=1_640_995_200_123_456_789, closed=False, revision=3,
        backfilled=True,
    ),
    TradeBar(
        "", INT64_MIN, -0.0, math.inf, -math.inf, 5e-324, -1.7976931348623157e308,
        Resolution.TICK, ts_recv=INT64_MAX, revision=2**70,
    ),
    TradeBar("ES", INT64_MAX, math.nan, math.nan, math.nan, math.nan, 0.0, Resolution(7)),
    TradeBar("EUR/USD", -1, 1.1, 1.2, 1.0, 1.15, 2.5, Resolution.DAILY, -5, True, -2, True),
]  # fmt: skip


@pytest.mark.parametrize("bar", EDGE_BARS, ids=lambda b: repr(b.symbol))
def test_a_trade_bar_comes_back_as_an_equal_copy_of_every_field(bar: TradeBar) -> None:
    buffer: DataBuffer[TradeBar] = DataBuffer(2)
    buffer.add(bar)
    got = buffer.latest
    assert got == bar
    assert got is not bar
    assert repr(got) == repr(bar)  # also the types and the sign of -0.0
    assert got is not None
    assert got.resolution is bar.resolution
    assert type(got.closed) is bool
    assert type(got.backfilled) is bool
    assert buffer.get_latest(5) == [bar]


def test_any_nan_comes_back_as_math_nan() -> None:
    quiet_negative = struct.unpack("<d", struct.pack("<Q", 0xFFF8_0000_0000_0001))[0]
    bar = TradeBar("X", 0, float("nan"), -math.nan, quiet_negative, 1.0, math.nan)
    buffer: DataBuffer[TradeBar] = DataBuffer(1)
    buffer.add(bar)
    [got] = buffer.get_latest(1)
    assert (got.open, got.high, got.low, got.volume) == (math.nan,) * 4  # identical objects
    assert got.close == 1.0


def test_a_bar_comes_back_equal_and_neither_can_change() -> None:
    bar = TradeBar("BTC/USDT", 60_000_000_000, 1.0, 2.0, 0.5, 1.5, 10.0, closed=False)
    buffer: DataBuffer[TradeBar] = DataBuffer(3)
    buffer.add(bar)
    returned = buffer.get_latest(1)[0]
    assert returned == bar
    with pytest.raises(dataclasses.FrozenInstanceError):
        bar.close = 1.75  # type: ignore[misc]  # what the test checks
    with pytest.raises(dataclasses.FrozenInstanceError):
        returned.high = 99.0  # type: ignore[misc]  # what the test checks
    assert buffer.latest == bar


def test_int_prices_come_back_as_equal_floats() -> None:
    bar = TradeBar("SPY", 0, 400, 401, 399, 400, 1_000)  # ints: the type checker allows them
    buffer: DataBuffer[TradeBar] = DataBuffer(1)
    buffer.add(bar)
    got = buffer.latest
    assert got == bar
    assert got is not None
    assert (got.open, got.volume) == (400.0, 1000.0)
    assert type(got.open) is float


class _LabelledBar(TradeBar):
    """A user's TradeBar subclass: not ``type(item) is TradeBar``, so held as is."""


OBJECT_BARS = [
    TradeBar("BTC/USDT", 2**63, 1.0, 1.0, 1.0, 1.0, 1.0),  # beyond int64
    TradeBar("BTC/USDT", 0, 1.0, 1.0, 1.0, 1.0, 1.0, ts_recv=INT64_MIN - 1),
    TradeBar("BTC/USDT", 0, "1.5", 1.0, 1.0, 1.0, 1.0),  # type: ignore[arg-type]  # a str
    TradeBar("BTC/USDT", 0, 1.0, 1.0, 1.0, 1.0, None),  # type: ignore[arg-type]  # None
    TradeBar("BTC/USDT", 0, 1.0, 1.0, 1.0, 1.0, 1.0, closed=[True]),  # type: ignore[arg-type]
    TradeBar(["BTC", "USDT"], 0, 1.0, 1.0, 1.0, 1.0, 1.0),  # type: ignore[arg-type]
    _LabelledBar("BTC/USDT", 0, 1.0, 1.0, 1.0, 1.0, 1.0),
]


@pytest.mark.parametrize("odd", OBJECT_BARS, ids=repr)
def test_a_bar_that_does_not_fit_a_row_is_held_as_the_object(
    odd: TradeBar, btc: list[TradeBar]
) -> None:
    buffer: DataBuffer[TradeBar] = DataBuffer(3)
    for item in (btc[0], btc[1], odd, btc[2]):  # the odd bar lands on a wrapped slot
        buffer.add(item)
    got = buffer.get_latest(3)
    assert got == [btc[1], odd, btc[2]]
    assert got[1] is odd
    assert got[0] is not btc[1]


def test_mixed_items_keep_their_order_and_identity_across_wrap_around(
    btc: list[TradeBar],
) -> None:
    quote = QuoteBar(
        "BTC-PERP", btc[0].ts_event, 46_216.0, 46_218.5, 46_215.0, 46_217.0, 1.5, 46_217.0,
        46_219.5, 46_216.0, 46_218.0, 0.75,
    )  # fmt: skip
    tick = Tick("BTC-PERP", btc[0].ts_event + 1, 46_216.5, 0.25, TickType.TRADE, trade_id="7")
    added: list[object] = []
    buffer: DataBuffer[object] = DataBuffer(7)
    for k in range(40):
        item = (btc[k], quote, btc[k + 100], tick, f"note {k}", k)[k % 6]
        buffer.add(item)
        added.append(item)
        for n in range(9):
            expected = added[-7:][-n:] if n else []
            got = buffer.get_latest(n)
            assert got == expected
            assert all(
                a is b for a, b in zip(got, expected, strict=True) if type(b) is not TradeBar
            )
        assert buffer.latest == item
    assert len(buffer) == 7


def test_many_series_and_flags_in_one_buffer_round_trip(btc: list[TradeBar]) -> None:
    bars = [
        dataclasses.replace(
            bar, symbol=f"S{k % 150}", closed=k % 3 != 0, revision=k % 5, backfilled=k % 7 == 0
        )
        for k, bar in enumerate(btc[:1_000])
    ]
    buffer: DataBuffer[TradeBar] = DataBuffer(600)
    buffer.extend(bars[:500])
    for bar in bars[500:]:
        buffer.add(bar)
    assert buffer.get_latest(600) == bars[-600:]
    buffer.clear()
    assert buffer.get_latest(600) == []
    buffer.add(bars[0])
    assert buffer.get_latest(600) == [bars[0]]
    assert buffer.total_added == 1_001


# --------------------------------------------------------------- model-based (hypothesis)
_INT64 = st.integers(INT64_MIN, INT64_MAX)
_FLOATS = st.floats(allow_nan=False) | st.just(math.nan)
_SYMBOLS = st.sampled_from(["BTC/USDT", "ETH/USDT", ""])
_BARS = st.builds(
    TradeBar,
    symbol=_SYMBOLS,
    ts_event=_INT64,
    open=_FLOATS,
    high=_FLOATS,
    low=_FLOATS,
    close=_FLOATS,
    volume=_FLOATS,
    resolution=st.sampled_from([Resolution.MINUTE, FIVE_MINUTES, Resolution.TICK]),
    ts_recv=_INT64 | st.just(2**63),  # 2**63 does not fit a row: held as the object
    closed=st.booleans(),
    revision=st.integers(0, 3) | st.integers(),
    backfilled=st.booleans(),
)
_TICKS = st.builds(Tick, symbol=_SYMBOLS, ts_event=_INT64, price=_FLOATS, size=_FLOATS)
_ITEMS = st.one_of(_BARS, _BARS, _TICKS, st.integers())


def _same_items(got: list[object], kept: list[object]) -> None:
    """``got`` equals ``kept``; every item but an exact TradeBar is the very object."""
    assert got == kept
    assert [repr(x) for x in got] == [repr(x) for x in kept]  # -0.0 vs 0.0, int vs float
    for a, b in zip(got, kept, strict=True):
        assert (a is b) is (type(b) is not TradeBar or b.ts_recv == 2**63)


class BufferMachine(RuleBasedStateMachine):
    """After any sequence of operations, the buffer equals the tail of a reference list."""

    def __init__(self) -> None:
        super().__init__()
        self.capacity = 0
        self.buffer: DataBuffer[object] = DataBuffer(1)
        self.reference: list[object] = []
        self.added = 0

    @precondition(lambda self: self.capacity == 0)
    @rule(capacity=st.integers(min_value=1, max_value=40))
    def create(self, capacity: int) -> None:
        self.capacity = capacity
        self.buffer = DataBuffer(capacity)

    @precondition(lambda self: self.capacity > 0)
    @rule(value=_ITEMS)
    def add(self, value: object) -> None:
        self.buffer.add(value)
        self.reference.append(value)
        self.added += 1

    @precondition(lambda self: self.capacity > 0)
    @rule(values=st.lists(_ITEMS, max_size=30))
    def extend(self, values: list[object]) -> None:
        self.buffer.extend(iter(values))
        self.reference.extend(values)
        self.added += len(values)

    @precondition(lambda self: self.capacity > 0)
    @rule()
    def clear(self) -> None:
        self.buffer.clear()
        self.reference.clear()

    @precondition(lambda self: self.capacity > 0)
    @rule(n=st.integers(min_value=0, max_value=50))
    def get_latest(self, n: int) -> None:
        kept = self.reference[-self.capacity :]
        _same_items(self.buffer.get_latest(n), kept[-n:] if n else [])

    @precondition(lambda self: self.capacity > 0)
    @invariant()
    def matches_reference(self) -> None:
        kept = self.reference[-self.capacity :]
        assert len(self.buffer) == len(kept)
        _same_items(self.buffer.get_latest(self.capacity), kept)
        _same_items([self.buffer.latest] if kept else [], kept[-1:])
        assert self.buffer.utilization == len(kept) * 100.0 / self.capacity
        assert self.buffer.total_added == self.added


TestBufferMachine = BufferMachine.TestCase
TestBufferMachine.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)


@given(
    capacity=st.integers(min_value=1, max_value=50),
    values=st.lists(_ITEMS, max_size=200),
    n=st.integers(min_value=0, max_value=60),
)
@settings(deadline=None)
def test_get_latest_is_the_tail_of_everything_added(
    capacity: int, values: list[object], n: int
) -> None:
    buffer: DataBuffer[object] = DataBuffer(capacity)
    for value in values:
        buffer.add(value)
    _same_items(buffer.get_latest(n), values[-capacity:][-n:] if n else [])


# ------------------------------------------------------------------------------ memory
def _retained_bytes(fill: Callable[[], object]) -> tuple[int, object]:
    """Bytes still allocated after ``fill()`` (and what it returned, kept alive)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = fill()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before, kept


def test_buffered_bars_cost_under_120_bytes_each(btc: list[TradeBar]) -> None:
    # OHLCV of the real bars in a flat array, so every bar built below has its own floats
    # (as a parser makes them) and nothing but the buffers can keep them alive.
    values = array("d", [x for b in btc for x in (b.open, b.high, b.low, b.close, b.volume)])
    symbols = [f"C{k:03d}/USD" for k in range(100)]
    rows = len(btc)

    def fill() -> list[DataBuffer[TradeBar]]:
        buffers: list[DataBuffer[TradeBar]] = [DataBuffer(1_000) for _ in symbols]
        for i in range(1_000):
            for k, buffer in enumerate(buffers):
                n = 5 * ((k * 7 + i) % rows)
                buffer.add(
                    TradeBar(
                        symbols[k], btc[0].ts_event + i * 60_000_000_000, values[n],
                        values[n + 1], values[n + 2], values[n + 3], values[n + 4],
                        ts_recv=btc[0].ts_event + i * 60_000_000_000 + 123_456 + k,
                    )
                )  # fmt: skip
        return buffers

    used, buffers = _retained_bytes(fill)
    assert isinstance(buffers, list)
    assert sum(len(b) for b in buffers) == 100_000
    assert used / 100_000 < 120  # a TradeBar object with its own fields is ~330 B
    assert buffers[3].get_latest(1)[0].volume == values[5 * ((3 * 7 + 999) % rows) + 4]


def test_a_large_buffer_holding_a_few_items_stays_small(btc: list[TradeBar]) -> None:
    def fill() -> DataBuffer[TradeBar]:
        buffer: DataBuffer[TradeBar] = DataBuffer(1_000_000)
        buffer.extend(btc[:3])
        return buffer

    used, buffer = _retained_bytes(fill)
    assert isinstance(buffer, DataBuffer)
    assert buffer.get_latest(5) == btc[:3]
    assert used < 4_096  # not 1,000,000 preallocated slots and rows


# ------------------------------------------------------------------------------ threads
@pytest.fixture
def fast_thread_switching() -> Iterator[None]:
    """Make the interpreter switch threads every microsecond so races show up."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


def _race(buffer: DataBuffer[Any], item_for: Callable[[int], Any], total: int, n: int) -> None:
    """One thread adds ``item_for(0..total)`` while another reads ``get_latest(n)``.

    Every snapshot must be a run of consecutive items, exactly as added (never a torn one).
    """
    done = threading.Event()
    failures: list[list[Any]] = []
    snapshots = [0]

    def writer() -> None:
        for value in range(total):
            buffer.add(item_for(value))
        done.set()

    def reader() -> None:
        while not done.is_set() or snapshots[0] == 0:
            snapshot = buffer.get_latest(n)
            if not snapshot:
                continue
            snapshots[0] += 1
            first = snapshot[0] if type(snapshot[0]) is int else snapshot[0].ts_event
            if snapshot != [item_for(v) for v in range(first, first + len(snapshot))]:
                failures.append(snapshot)
                return

    threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert snapshots[0] > 0
    assert buffer.get_latest(2) == [item_for(total - 2), item_for(total - 1)]
    assert buffer.total_added == total


def _int_for(value: int) -> int:
    return value


def _bar_for(value: int) -> TradeBar | Tick:
    """Every field follows from ``value``; every fifth item is a Tick (held as an object)."""
    if value % 5 == 4:
        return Tick("BTC/USDT", value, float(value), 1.0)
    return TradeBar(
        "BTC/USDT", value, value + 0.25, value + 0.5, value - 0.5, value + 0.125,
        float(value % 97), ts_recv=value + 1_000, closed=value % 2 == 0, revision=value % 3,
    )  # fmt: skip


@pytest.mark.usefixtures("fast_thread_switching")
def test_a_reader_thread_never_sees_a_torn_snapshot() -> None:
    _race(DataBuffer(1_000), _int_for, 200_000, 100)


@pytest.mark.usefixtures("fast_thread_switching")
def test_a_reader_thread_never_sees_a_torn_bar_row() -> None:
    _race(DataBuffer(500), _bar_for, 60_000, 50)


def test_the_buffer_lock_is_the_c_latch_exactly_when_the_package_is_compiled() -> None:
    from lean_data.series import buffer as module

    variant = os.environ.get("LEAN_DATA_VARIANT")
    if variant == "compiled":
        assert type(DataBuffer(1)._lock).__name__ == "Latch"
    elif variant == "pure":
        assert module._LOCK is threading.Lock


def _locks() -> list[Callable[[], Any]]:
    """threading.Lock and, when built, the C latch that stands for it."""
    from lean_data.series import buffer as module

    return [threading.Lock] + ([module._LOCK] if module._LOCK is not threading.Lock else [])


@pytest.mark.parametrize("make", _locks(), ids=lambda make: make.__name__)
def test_the_buffer_lock_behaves_as_threading_lock(make: Callable[[], Any]) -> None:
    lock = make()
    assert not lock.locked()
    assert lock.acquire() is True
    assert lock.locked()
    lock.release()
    assert not lock.locked()
    with pytest.raises(RuntimeError, match="release unlocked lock"):
        lock.release()
    held = []

    def fail_inside() -> None:
        with lock:
            held.append(lock.locked())
            raise KeyError("x")

    with pytest.raises(KeyError):  # an error inside ``with`` still releases it
        fail_inside()
    assert held == [True]
    assert not lock.locked()

    trying, taken = threading.Event(), threading.Event()

    def other() -> None:
        trying.set()
        with lock:
            taken.set()

    lock.acquire()
    thread = threading.Thread(target=other)
    thread.start()
    assert trying.wait(10)  # the other thread is at the lock
    thread.join(0.2)  # it waits for the lock: still alive, nothing taken
    assert thread.is_alive()
    assert not taken.is_set()
    lock.release()
    thread.join(10)
    assert not thread.is_alive()
    assert taken.is_set()
    assert not lock.locked()


@pytest.mark.parametrize("make", _locks(), ids=lambda make: make.__name__)
def test_the_buffer_lock_excludes_threads_that_contend_for_it(make: Callable[[], Any]) -> None:
    import time

    lock, count, inside = make(), [0], [0]

    def work() -> None:
        for _ in range(200):
            with lock:
                inside[0] += 1
                seen = count[0]
                time.sleep(0)  # gives the GIL up while holding the lock: others contend
                count[0] = seen + 1
                assert inside[0] == 1
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert count[0] == 800  # no update lost: one holder at a time, every waiter served
    assert not lock.locked()
    assert lock.acquire() is True  # still usable after the hand-overs
    lock.release()


def test_the_c_latch_takes_no_arguments() -> None:
    from lean_data.series import buffer as module

    if module._LOCK is threading.Lock:
        pytest.skip("the C latch is built with the compiled package")
    with pytest.raises(TypeError, match="takes no arguments"):
        module._LOCK(1)
    with pytest.raises(TypeError):
        module._LOCK().acquire(False)


def test_the_c_row_packer_writes_what_struct_packs() -> None:
    """lean_data._rows.pack_bar (the compiled build's) against the pure _pack_bar: the same
    56 bytes for real and odd values, the same refusals (the buffer then keeps the bar
    object), and a refused row left as it was."""
    from lean_data.series import buffer as module
    from lean_data.slots import BAR

    if module._PACK_BAR is module._pack_bar:
        pytest.skip("the C packer is built with the compiled package")
    base = TradeBar("BTC/USDT", 1_700_000_040_000_000_000, 1.5, 2.0, 0.5, 1.75, 3.0, ts_recv=9)
    fine = [
        base,
        dataclasses.replace(base, open=math.nan, volume=math.inf),
        dataclasses.replace(base, high=2, low=True, ts_recv=0),  # struct converts int, bool
        dataclasses.replace(base, ts_event=-(2**63), ts_recv=2**63 - 1),
    ]
    for bar in fine:
        c_rows, py_rows = bytearray(112), bytearray(112)
        module._PACK_BAR(c_rows, 56, BAR(bar))
        module._pack_bar(py_rows, 56, BAR(bar))
        assert c_rows == py_rows
    refused = [
        dataclasses.replace(base, ts_event=2**63),  # beyond int64
        dataclasses.replace(base, ts_recv=1.5),  # a float time
        dataclasses.replace(base, close="1.0"),  # text is not a price
        dataclasses.replace(base, volume=None),
    ]
    for bar in refused:
        c_rows = bytearray(b"\x01" * 56)
        with pytest.raises((TypeError, OverflowError)):
            module._PACK_BAR(c_rows, 0, BAR(bar))
        assert c_rows == bytearray(b"\x01" * 56)
        with pytest.raises(struct.error):
            module._pack_bar(bytearray(56), 0, BAR(bar))
    module._PACK_BAR(bytearray(100), 44, BAR(base))  # the last offset whose row fits
    for size, offset in ((100, 45), (100, 50), (55, 0), (112, -1)):  # the row is not allocated
        with pytest.raises(IndexError, match="row not allocated"):
            module._PACK_BAR(bytearray(size), offset, BAR(base))
    with pytest.raises(TypeError):
        module._PACK_BAR(bytes(56), 0, BAR(base))
    with pytest.raises(TypeError):
        module._PACK_BAR(bytearray(56), 0, BAR(base)[:5])


def test_the_c_ring_store_sets_the_slot_as_a_list_does() -> None:
    """lean_data._rows.ring_put (the compiled build's ring store) against the pure
    _ring_put: the same slot set (from the end for a negative index), the same refusals,
    and the overwritten item freed once the ring held its only reference, whatever the
    slots around it hold (ticks whose fields it asks the CPU for, bars' keys, None)."""
    from lean_data.series import buffer as module

    if module._RING_PUT is module._ring_put:
        pytest.skip("the C ring store is built with the compiled package")
    tick = Tick("BTC/USDT", 1_700_000_000_000_000_000, 1.5, 2.0, ts_recv=9, trade_id="7")
    for index in (0, 1, 2, 3, -1, -4):
        c_slots: list[Any] = [None, tick, "key", 3]
        py_slots: list[Any] = list(c_slots)
        module._RING_PUT(c_slots, index, "new")
        module._ring_put(py_slots, index, "new")
        assert c_slots == py_slots
    for index in (4, -5, 2**40):
        with pytest.raises(IndexError):
            module._RING_PUT([None, tick, "key", 3], index, "new")
    with pytest.raises(TypeError):
        module._RING_PUT((None, None, None), 0, "new")
    with pytest.raises(TypeError):
        module._RING_PUT([None, None, None], 1.0, "new")
    with pytest.raises(TypeError):
        module._RING_PUT([None, None, None], 0)  # type: ignore[call-arg]

    class Kept:
        freed = 0

        def __del__(self) -> None:
            Kept.freed += 1

    ring: list[Any] = [Kept() for _ in range(3)]
    for index in range(6):  # round the ring twice: each store frees the item it overwrites
        module._RING_PUT(ring, index % 3, Kept() if index < 5 else tick)
        assert Kept.freed == index + 1
    assert ring[2] is tick
