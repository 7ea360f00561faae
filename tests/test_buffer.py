"""DataBuffer: ring semantics against a reference list, utilization, and thread safety."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from lean_data.buffer import DataBuffer
from lean_data.errors import ConfigError
from lean_data.models import Resolution, TradeBar


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


def test_holds_bars_by_identity() -> None:
    bar = TradeBar("AAPL", 1_402_300_800_000_000_000, 645.57, 645.57, 92.23, 92.42, 600.0)
    buffer: DataBuffer[TradeBar] = DataBuffer(2)
    buffer.add(bar)
    assert buffer.latest is bar
    assert buffer.get_latest(1)[0].resolution is Resolution.MINUTE


class BufferMachine(RuleBasedStateMachine):
    """After any sequence of operations, the buffer equals the tail of a reference list."""

    def __init__(self) -> None:
        super().__init__()
        self.capacity = 0
        self.buffer: DataBuffer[int] = DataBuffer(1)
        self.reference: list[int] = []
        self.added = 0

    @precondition(lambda self: self.capacity == 0)
    @rule(capacity=st.integers(min_value=1, max_value=12))
    def create(self, capacity: int) -> None:
        self.capacity = capacity
        self.buffer = DataBuffer(capacity)

    @precondition(lambda self: self.capacity > 0)
    @rule(value=st.integers())
    def add(self, value: int) -> None:
        self.buffer.add(value)
        self.reference.append(value)
        self.added += 1

    @precondition(lambda self: self.capacity > 0)
    @rule(values=st.lists(st.integers(), max_size=30))
    def extend(self, values: list[int]) -> None:
        self.buffer.extend(iter(values))
        self.reference.extend(values)
        self.added += len(values)

    @precondition(lambda self: self.capacity > 0)
    @rule()
    def clear(self) -> None:
        self.buffer.clear()
        self.reference.clear()

    @precondition(lambda self: self.capacity > 0)
    @rule(n=st.integers(min_value=0, max_value=20))
    def get_latest(self, n: int) -> None:
        kept = self.reference[-self.capacity :]
        assert self.buffer.get_latest(n) == (kept[-n:] if n else [])

    @precondition(lambda self: self.capacity > 0)
    @invariant()
    def matches_reference(self) -> None:
        kept = self.reference[-self.capacity :]
        assert len(self.buffer) == len(kept)
        assert self.buffer.get_latest(self.capacity) == kept
        assert self.buffer.latest == (kept[-1] if kept else None)
        assert self.buffer.utilization == len(kept) * 100.0 / self.capacity
        assert self.buffer.total_added == self.added


TestBufferMachine = BufferMachine.TestCase
TestBufferMachine.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)


@given(
    capacity=st.integers(min_value=1, max_value=50),
    values=st.lists(st.integers(), max_size=200),
    n=st.integers(min_value=0, max_value=60),
)
def test_get_latest_is_the_tail_of_everything_added(
    capacity: int, values: list[int], n: int
) -> None:
    buffer: DataBuffer[int] = DataBuffer(capacity)
    for value in values:
        buffer.add(value)
    expected = values[-capacity:][-n:] if n else []
    assert buffer.get_latest(n) == expected


@pytest.fixture
def fast_thread_switching() -> Iterator[None]:
    """Make the interpreter switch threads every microsecond so races show up."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


@pytest.mark.usefixtures("fast_thread_switching")
def test_a_reader_thread_never_sees_a_torn_snapshot() -> None:
    total = 200_000
    buffer: DataBuffer[int] = DataBuffer(1_000)
    done = threading.Event()
    failures: list[list[int]] = []
    snapshots = [0]

    def writer() -> None:
        for value in range(total):
            buffer.add(value)
        done.set()

    def reader() -> None:
        while not done.is_set() or snapshots[0] == 0:
            snapshot = buffer.get_latest(100)
            if not snapshot:
                continue
            snapshots[0] += 1
            if snapshot != list(range(snapshot[0], snapshot[0] + len(snapshot))):
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
    assert buffer.get_latest(3) == [199_997, 199_998, 199_999]
    assert buffer.total_added == total
