"""DataMetrics with an injected clock: exact rates, percentiles and snapshots."""

from __future__ import annotations

import math
import random
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lean_data.engine.metrics import DataMetrics

MS = 1_000_000  # ns per ms


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


EMPTY_LATENCY = {"avg": 0.0, "p50": 0.0, "p99": 0.0, "max": 0.0, "samples": 0}


def test_latency_percentiles_are_nearest_rank_over_known_samples(clock: Clock) -> None:
    metrics = DataMetrics(clock=clock)
    samples = list(range(1, 101))
    random.Random(7).shuffle(samples)  # recording order must not matter
    for ms in samples:
        metrics.record_latency_ns(ms * MS)
    assert metrics.to_dict()["engine"]["latency_ms"] == {
        "avg": 50.5,
        "p50": 50.0,
        "p99": 99.0,
        "max": 100.0,
        "samples": 100,
    }


def test_latency_reservoir_keeps_only_the_last_samples(clock: Clock) -> None:
    metrics = DataMetrics(latency_samples=10, clock=clock)
    for ms in range(1, 26):
        metrics.record_latency_ns(ms * MS)
    assert metrics.to_dict()["engine"]["latency_ms"] == {
        "avg": 20.5,  # mean of 16..25
        "p50": 20.0,
        "p99": 25.0,
        "max": 25.0,
        "samples": 10,
    }


def test_update_latency_takes_milliseconds_and_ignores_nan(clock: Clock) -> None:
    metrics = DataMetrics(clock=clock)
    metrics.update_latency(1.5, feed="a")
    metrics.update_latency(math.nan, feed="a")
    metrics.update_latency(math.inf)
    expected = {"avg": 1.5, "p50": 1.5, "p99": 1.5, "max": 1.5, "samples": 1}
    snapshot = metrics.to_dict()
    assert snapshot["engine"]["latency_ms"] == expected
    assert snapshot["feeds"]["a"]["latency_ms"] == expected


def test_rate_counts_complete_seconds_of_the_window(clock: Clock) -> None:
    metrics = DataMetrics(window_s=10, clock=clock)
    for i in range(10):  # 10 messages in second 1000
        clock.now = 1000.0 + i / 10
        metrics.increment_messages()
    clock.now = 1001.5
    metrics.increment_messages(20)  # 20 in second 1001
    assert metrics.messages_per_second() == 10.0  # only second 1000 is complete
    clock.now = 1002.0
    assert metrics.messages_per_second() == 15.0  # (10 + 20) / 2 seconds since start
    clock.now = 1010.0
    assert metrics.messages_per_second() == 3.0  # 30 over the full 10 s window
    clock.now = 1011.0  # the window is now [1001, 1011): second 1000 slid out
    assert metrics.messages_per_second() == 2.0
    clock.now = 1012.0
    assert metrics.messages_per_second() == 0.0
    assert metrics.to_dict()["engine"]["messages"] == 30


def test_rate_window_survives_more_seconds_than_buckets(clock: Clock) -> None:
    metrics = DataMetrics(window_s=3, clock=clock)
    for second in range(1000, 1050):
        clock.now = second + 0.5
        metrics.increment_messages(second - 999)  # 1, 2, ..., 50
    clock.now = 1050.0
    assert metrics.messages_per_second() == (48 + 49 + 50) / 3


def test_feeds_are_counted_apart_and_in_the_engine_total(clock: Clock) -> None:
    metrics = DataMetrics(window_s=60, clock=clock)
    metrics.increment_messages(3, feed="alpaca")
    metrics.increment_messages(5, feed="binance")
    metrics.increment_messages(2)
    metrics.record_latency_ns(4 * MS, feed="alpaca")
    metrics.record_latency_ns(8 * MS, feed="binance")
    metrics.record_quality(1.0, feed="alpaca")
    metrics.record_quality(0.6, feed="binance")
    metrics.record_quality(0.2, feed="binance")
    metrics.increment_errors(feed="binance", kind="protocol")
    clock.now = 1001.0
    snapshot = metrics.to_dict()
    assert snapshot["feeds"] == {
        "alpaca": {
            "messages": 3,
            "messages_per_second": 3.0,
            "errors": 0,
            "errors_by_kind": {},
            "latency_ms": {"avg": 4.0, "p50": 4.0, "p99": 4.0, "max": 4.0, "samples": 1},
            "quality": {"average": 1.0, "count": 1},
        },
        "binance": {
            "messages": 5,
            "messages_per_second": 5.0,
            "errors": 1,
            "errors_by_kind": {"protocol": 1},
            "latency_ms": {"avg": 8.0, "p50": 8.0, "p99": 8.0, "max": 8.0, "samples": 1},
            "quality": {"average": pytest.approx(0.4), "count": 2},
        },
    }
    assert metrics.messages_per_second("alpaca") == 3.0
    assert metrics.messages_per_second("unknown") == 0.0
    assert snapshot["engine"]["messages"] == 10
    assert snapshot["engine"]["quality"] == {"average": pytest.approx(0.6), "count": 3}


def test_engine_snapshot_has_every_key(clock: Clock) -> None:
    metrics = DataMetrics(clock=clock)
    metrics.increment_errors(2, kind="callback")
    metrics.increment_errors()
    metrics.increment_drops(4, source="subscriber:slow")
    metrics.increment_drops()
    metrics.set_gauge("cache_hit_rate", 0.75)
    metrics.set_gauge("inbox_depth", 12)
    metrics.record_quality(math.nan)
    clock.now = 1012.5
    assert metrics.to_dict() == {
        "engine": {
            "messages": 0,
            "messages_per_second": 0.0,
            "errors": 3,
            "errors_by_kind": {"callback": 2, "other": 1},
            "drops": 5,
            "drops_by_source": {"subscriber:slow": 4, "other": 1},
            "latency_ms": EMPTY_LATENCY,
            "quality": {"average": 0.0, "count": 0},
            "uptime_s": 12.5,
            "gauges": {"cache_hit_rate": 0.75, "inbox_depth": 12.0},
        },
        "feeds": {},
    }


def test_to_json_round_trips_to_the_same_dict(clock: Clock) -> None:
    metrics = DataMetrics(clock=clock)
    metrics.increment_messages(7, feed="kraken")
    metrics.record_latency_ns(3 * MS, feed="kraken")
    metrics.increment_errors(feed="kraken", kind="rate_limit")
    metrics.set_gauge("buffer_utilization", 41.5)
    clock.now = 1003.0
    assert orjson.loads(metrics.to_json()) == metrics.to_dict()


def test_to_json_writes_nan_as_null(clock: Clock) -> None:
    metrics = DataMetrics(clock=clock)
    metrics.set_gauge("spread", math.nan)
    assert orjson.loads(metrics.to_json())["engine"]["gauges"] == {"spread": None}


def test_reset_forgets_everything_and_restarts_uptime(clock: Clock) -> None:
    metrics = DataMetrics(clock=clock)
    metrics.increment_messages(5, feed="a")
    metrics.record_latency_ns(MS)
    metrics.increment_drops(source="x")
    metrics.set_gauge("g", 1.0)
    clock.now = 1100.0
    metrics.reset()
    clock.now = 1101.0
    snapshot = metrics.to_dict()
    assert snapshot["feeds"] == {}
    assert (snapshot["engine"]["messages"], snapshot["engine"]["drops"]) == (0, 0)
    assert (snapshot["engine"]["uptime_s"], snapshot["engine"]["gauges"]) == (1.0, {})
    assert snapshot["engine"]["latency_ms"] == EMPTY_LATENCY


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="window_s must be >= 1"):
        DataMetrics(window_s=0.5)
    with pytest.raises(ValueError, match="latency_samples >= 1"):
        DataMetrics(latency_samples=0)


def test_record_delivery_equals_the_three_calls_it_replaces() -> None:
    def clock() -> float:
        return 100.0  # both see the same second

    one, three = DataMetrics(clock=clock), DataMetrics(clock=clock)
    samples = [("a", 1_000, 1.0), ("a", 2_000, 0.8), ("b", 3_000, float("nan")), ("a", 4, 0.5)]
    for feed, latency, score in samples:
        one.record_delivery(feed, latency, score)
        three.increment_messages(feed=feed)
        three.record_latency_ns(latency, feed=feed)
        three.record_quality(score, feed=feed)
    a, b = one.to_dict(), three.to_dict()
    for snapshot in (a, b):
        for scope in [snapshot["engine"], *snapshot["feeds"].values()]:
            scope.pop("uptime_s", None)
            scope.pop("messages_per_second", None)
    assert a == b
    assert a["engine"]["messages"] == 4
    assert a["feeds"]["a"]["quality"]["count"] == 3


def test_delivery_latency_of_each_model_live_and_replayed() -> None:
    """A live bar's latency counts from its close (a forming one from its open), a tick's
    from its event, a replayed item's from its receipt; a tick subclass is a tick."""
    import dataclasses
    import time

    from lean_data.engine.metrics import delivery_latency_ns
    from lean_data.models import NS_PER_MINUTE, QuoteBar, Resolution, Tick, TradeBar

    @dataclasses.dataclass(frozen=True, slots=True)
    class VenueTick(Tick):
        venue: str = ""

    event, recv = 1_700_000_000 * 10**9, 1_700_000_030 * 10**9
    five = Resolution.parse("5m")
    bar = TradeBar("BTC/USDT", event, 1.0, 2.0, 0.5, 1.5, 3.0, five, recv)
    forming = dataclasses.replace(bar, closed=False)
    quote = QuoteBar("EUR/USD", event, *([1.0] * 10), resolution=Resolution.MINUTE, ts_recv=recv)
    tick = Tick("BTC/USDT", event, 1.0, 2.0, ts_recv=recv)
    cases = [
        (True, bar, event + 5 * NS_PER_MINUTE),
        (True, forming, event),
        (True, quote, event + NS_PER_MINUTE),
        (True, tick, event),
        (True, VenueTick("BTC/USDT", event, 1.0, 2.0, ts_recv=recv, venue="x"), event),
        (False, bar, recv),
        (False, tick, recv),
    ]
    for live, item, since in cases:
        before = time.time_ns()
        latency = delivery_latency_ns(live, item)
        after = time.time_ns()
        assert before - since <= latency <= after - since, (live, item)


# -- the latency ring: lean_data._rows.Samples (compiled build) and its pure twin ----------

I64 = 2**63 - 1


def _rings() -> list[type]:
    """Every Samples implementation present: the pure twin, and the C type where built."""
    from lean_data.engine import metrics

    rings: list[type] = [metrics._Samples]
    try:
        from lean_data import _rows
    except ImportError:  # a pure install
        return rings
    return [*rings, _rows.Samples]


@pytest.mark.parametrize("ring", _rings(), ids=lambda ring: ring.__module__)
@given(
    size=st.integers(1, 12),
    values=st.lists(st.integers(-(2**70), 2**70) | st.integers(-10, 10), max_size=40),
)
def test_samples_keep_the_last_size_values_clamped_to_int64(
    ring: type, size: int, values: list[int]
) -> None:
    samples = ring(size)
    for value in values:
        samples.append(value)
    expected = [max(-I64, min(I64, value)) for value in values][-size:] if values else []
    assert samples.values() == expected  # oldest first
    assert len(samples) == len(expected)
    assert samples.size == size


@pytest.mark.parametrize("ring", _rings(), ids=lambda ring: ring.__module__)
def test_samples_refuse_a_size_below_one_and_a_value_that_is_not_an_int(ring: type) -> None:
    with pytest.raises(ValueError, match="size must be >= 1"):
        ring(0)
    samples = ring(3)
    samples.append(True)  # an int, as the list ring took it
    with pytest.raises(TypeError):  # compiled, the pure twin's own check is mypyc's
        samples.append(1.5)
    assert samples.values() == [1]


def test_the_engine_keeps_latency_samples_in_the_c_ring_where_it_is_built() -> None:
    """The compiled build's metrics keep int64 values, not int objects (see _Samples)."""
    from lean_data.engine import metrics

    try:
        from lean_data import _rows
    except ImportError:
        assert metrics._SAMPLES is metrics._Samples
        return
    assert metrics._SAMPLES is _rows.Samples
    assert type(DataMetrics()._engine.latency) is _rows.Samples


def test_a_latency_beyond_int64_is_reported_clamped_not_raised(clock: Clock) -> None:
    metrics = DataMetrics(clock=clock)
    metrics.record_delivery("f", 10**30, 1.0)  # an event time no clock gives
    metrics.record_delivery("f", -(10**30), 1.0)
    metrics.record_delivery("f", 2 * MS, 1.0)
    latency = metrics.to_dict()["engine"]["latency_ms"]
    assert latency["max"] == I64 / MS
    assert latency["samples"] == 3
    assert metrics.to_dict()["feeds"]["f"]["latency_ms"]["max"] == I64 / MS


def test_the_default_clock_is_monotonic_seconds_on_time_monotonics_scale() -> None:
    """The metrics' default clock (the compiled package's coarse_clock, else time.monotonic)
    reads the same clock as time.monotonic to within the kernel's tick, never goes back,
    and moves: a rate window's second and the uptime are right to a few ms."""
    import time

    from lean_data.engine import metrics as module

    clock = module._CLOCK
    before = time.monotonic()
    readings = [clock() for _ in range(1_000)]
    after = time.monotonic()
    assert all(isinstance(value, float) for value in readings)
    assert readings == sorted(readings)
    assert before - 0.05 <= readings[0] <= readings[-1] <= after
    deadline = time.monotonic() + 5.0
    while clock() <= readings[-1]:  # the next tick comes (a busy wait, bounded)
        assert time.monotonic() < deadline, "the default clock did not move in 5 s"
    assert DataMetrics()._clock is clock


def test_the_wall_clock_in_ns_is_time_time_ns() -> None:
    """lean_data.native.time_ns (the compiled package's C read, else time.time_ns) is the
    wall clock in ns: an int between two time.time_ns() readings."""
    import time

    from lean_data import native

    for _ in range(1_000):
        before = time.time_ns()
        now = native.time_ns()
        after = time.time_ns()
        assert type(now) is int
        assert before <= now <= after


def _elapsed_twins() -> list[Any]:
    from lean_data import native
    from tests.twins import twins

    return twins(native._elapsed_ns, native.elapsed_ns, "lean_data._rows.elapsed_ns")


@pytest.mark.parametrize("elapsed", _elapsed_twins(), ids=lambda f: f.__module__)
def test_elapsed_ns_is_the_wall_clock_minus_its_argument_for_any_int(elapsed: Any) -> None:
    import time

    since = time.time_ns() - 5_000
    before = time.time_ns()
    got = elapsed(since)
    after = time.time_ns()
    assert type(got) is int
    assert before - since <= got <= after - since  # the latency of a tick 5 µs old
    for far in (2**70, -(2**63), -(2**80)):  # beyond int64, or a difference beyond it
        before = time.time_ns()
        got = elapsed(far)
        assert before - far <= got <= time.time_ns() - far
    assert isinstance(elapsed(1.5), float)  # as Python subtracts
    with pytest.raises(TypeError):
        elapsed("x")
