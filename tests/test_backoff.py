"""Backoff: exact delays with a pinned rng, floors, reset, exhaustion, and classify()."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lean_data.errors import (
    ConfigError,
    DataFormatError,
    EngineClosedError,
    FeedAuthError,
    FeedConnectError,
    FeedError,
    FeedProtocolError,
    RateLimitError,
    StorageError,
    SubscriptionError,
)
from lean_data.feeds.backoff import (
    Backoff,
    BackoffPolicy,
    classify,
    max_total_delay,
    retry_after_of,
)


def const(value: float) -> Callable[[], float]:
    """Return an rng that always yields ``value``."""
    return lambda: value


def delays(backoff: Backoff, count: int) -> list[float]:
    return [backoff.next_delay() for _ in range(count)]


def test_upper_bound_rng_gives_base_times_two_to_the_n_capped() -> None:
    backoff = Backoff(rng=const(1.0))
    assert delays(backoff, 9) == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff.attempt == 9


def test_custom_policy_scales_and_caps() -> None:
    policy = BackoffPolicy(base_s=1.0, cap_s=10.0, multiplier=3.0)
    assert delays(Backoff(policy, rng=const(1.0)), 4) == [1.0, 3.0, 9.0, 10.0]
    assert delays(Backoff(policy, rng=const(0.5)), 4) == [0.5, 1.5, 4.5, 5.0]


def test_zero_rng_gives_zero_but_retry_after_is_a_floor() -> None:
    backoff = Backoff(rng=const(0.0))
    assert delays(backoff, 3) == [0.0, 0.0, 0.0]
    assert backoff.next_delay(retry_after_s=7) == 7
    assert backoff.attempt == 4


def test_retry_after_below_the_jitter_leaves_the_jitter() -> None:
    backoff = Backoff(rng=const(1.0))
    assert delays(backoff, 4) == [0.5, 1.0, 2.0, 4.0]
    assert backoff.next_delay(retry_after_s=3.0) == 8.0


@pytest.mark.parametrize("ignored", [None, -5.0, float("nan")])
def test_missing_negative_or_nan_retry_after_imposes_no_floor(ignored: float | None) -> None:
    assert Backoff(rng=const(0.0)).next_delay(retry_after_s=ignored) == 0.0


def test_connection_limited_waits_at_least_the_connection_limit() -> None:
    backoff = Backoff(rng=const(1.0))
    assert backoff.next_delay(connection_limited=True) == 90.0
    assert Backoff(rng=const(0.0)).next_delay(connection_limited=True) == 90.0
    # A longer Retry-After wins over the connection-limit floor, up to its cap.
    uncapped = Backoff(BackoffPolicy(retry_after_cap_s=300.0), rng=const(1.0))
    assert uncapped.next_delay(connection_limited=True, retry_after_s=120.0) == 120.0
    # The cap never lowers the connection-limit floor.
    assert backoff.next_delay(connection_limited=True, retry_after_s=1e9) == 90.0
    policy = BackoffPolicy(base_s=100.0, cap_s=200.0)
    assert Backoff(policy, rng=const(1.0)).next_delay(connection_limited=True) == 100.0
    assert Backoff(policy, rng=const(0.99)).next_delay(connection_limited=True) == 99.0


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    assert Backoff(rng=const(0.0)).next_delay(retry_after_s=1e9) == 60.0  # the default cap
    policy = BackoffPolicy(retry_after_cap_s=2.5)
    assert Backoff(policy, rng=const(0.0)).next_delay(retry_after_s=1e9) == 2.5
    assert Backoff(policy, rng=const(0.0)).next_delay(retry_after_s=float("inf")) == 2.5
    assert Backoff(policy, rng=const(0.0)).next_delay(retry_after_s=2.0) == 2.0
    # the jitter window still applies above a capped floor
    assert (
        Backoff(BackoffPolicy(base_s=5.0, retry_after_cap_s=2.5), rng=const(1.0)).next_delay(
            retry_after_s=1e9
        )
        == 5.0
    )


def test_reset_returns_to_attempt_zero() -> None:
    backoff = Backoff(rng=const(1.0))
    assert delays(backoff, 5) == [0.5, 1.0, 2.0, 4.0, 8.0]
    backoff.reset()
    assert backoff.attempt == 0
    assert delays(backoff, 2) == [0.5, 1.0]


def test_max_attempts_exhaustion_refuses_further_delays() -> None:
    backoff = Backoff(BackoffPolicy(max_attempts=3), rng=const(1.0))
    seen = []
    for _ in range(3):
        seen.append((backoff.exhausted, backoff.next_delay()))
    assert seen == [(False, 0.5), (False, 1.0), (False, 2.0)]
    assert backoff.exhausted
    with pytest.raises(RuntimeError, match="backoff exhausted: 3 of 3 attempts used"):
        backoff.next_delay()
    assert backoff.attempt == 3
    backoff.reset()
    assert (backoff.exhausted, backoff.next_delay()) == (False, 0.5)


def test_unlimited_policy_is_never_exhausted() -> None:
    backoff = Backoff(rng=const(0.0))
    delays(backoff, 2000)
    assert backoff.attempt == 2000
    assert not backoff.exhausted


def test_ceiling_matches_the_formula_and_survives_huge_attempts() -> None:
    backoff = Backoff()
    assert [backoff.ceiling(n) for n in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff.ceiling(5000) == 30.0  # 2.0**5000 overflows a float
    assert BackoffPolicy(multiplier=1.0).ceiling(10_000) == 0.5
    with pytest.raises(ValueError, match="attempt: expected >= 0, found -1"):
        backoff.ceiling(-1)


def test_default_rng_stays_inside_the_window() -> None:
    backoff = Backoff()
    for attempt in range(20):
        assert 0.0 <= backoff.next_delay() <= backoff.ceiling(attempt)


def test_max_total_delay_sums_the_ceilings_exactly() -> None:
    policy = BackoffPolicy()
    assert max_total_delay(policy, 0) == 0.0
    assert max_total_delay(policy, 1) == 0.5
    assert max_total_delay(policy, 6) == 31.5  # 0.5 + 1 + 2 + 4 + 8 + 16
    assert max_total_delay(policy, 8) == 91.5  # ... + 30 + 30
    assert max_total_delay(policy, 100) == 31.5 + 30.0 * 94
    fast = BackoffPolicy(base_s=0.01, cap_s=0.08)
    assert max_total_delay(fast, 5) == pytest.approx(0.01 + 0.02 + 0.04 + 0.08 + 0.08)
    with pytest.raises(ValueError, match="attempts: expected >= 0, found -2"):
        max_total_delay(policy, -2)


@given(
    policy=st.builds(
        BackoffPolicy,
        base_s=st.floats(0.001, 10.0),
        cap_s=st.floats(10.0, 1000.0),
        multiplier=st.floats(1.0, 5.0),
        connection_limit_s=st.floats(0.0, 200.0),
    ),
    n=st.integers(0, 60),
)
def test_max_total_delay_equals_the_sum_of_ceilings(policy: BackoffPolicy, n: int) -> None:
    expected = sum(policy.ceiling(attempt) for attempt in range(n))
    assert max_total_delay(policy, n) == pytest.approx(expected, rel=1e-12)


calls = st.lists(
    st.tuples(
        st.floats(0.0, 1.0, exclude_max=True),  # the rng draw
        st.none() | st.floats(0.0, 500.0),  # Retry-After
        st.booleans(),  # connection limited
        st.booleans(),  # reset after this call
    ),
    max_size=80,
)


@given(
    policy=st.builds(
        BackoffPolicy,
        base_s=st.floats(0.001, 10.0),
        cap_s=st.floats(10.0, 1000.0),
        multiplier=st.floats(1.0, 5.0),
        connection_limit_s=st.floats(0.0, 200.0),
        retry_after_cap_s=st.floats(0.0, 1000.0),
    ),
    sequence=calls,
)
def test_every_delay_lies_between_the_floor_and_the_window(
    policy: BackoffPolicy, sequence: list[tuple[float, float | None, bool, bool]]
) -> None:
    draws: Iterator[float] = iter([u for u, _, _, _ in sequence])
    backoff = Backoff(policy, rng=lambda: next(draws))
    expected_attempt = 0
    for _, retry_after, limited, reset in sequence:
        assert backoff.attempt == expected_attempt
        asked = min(retry_after or 0.0, policy.retry_after_cap_s)
        floor = max(asked, policy.connection_limit_s if limited else 0.0)
        ceiling = backoff.ceiling(backoff.attempt)
        delay = backoff.next_delay(retry_after_s=retry_after, connection_limited=limited)
        assert floor <= delay <= max(floor, ceiling)
        expected_attempt += 1
        if reset:
            backoff.reset()
            expected_attempt = 0
    assert backoff.attempt == expected_attempt


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_s": 0.0}, "base_s: expected > 0, found 0.0"),
        ({"base_s": float("nan")}, "base_s: expected > 0, found nan"),
        ({"cap_s": 0.1}, r"cap_s: expected >= base_s \(0.5\), found 0.1"),
        ({"multiplier": 0.5}, "multiplier: expected >= 1, found 0.5"),
        ({"connection_limit_s": -1.0}, "connection_limit_s: expected >= 0, found -1.0"),
        ({"max_attempts": 0}, "max_attempts: expected None or >= 1, found 0"),
        ({"retry_after_cap_s": -1.0}, "retry_after_cap_s: expected >= 0, found -1.0"),
    ],
)
def test_policy_rejects_out_of_range_values(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BackoffPolicy(**kwargs)  # type: ignore[arg-type]  # mixed value types per case


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (FeedConnectError("socket dropped", feed="alpaca"), True),
        (FeedProtocolError("unexpected frame"), True),
        (RateLimitError("429 Too Many Requests", retry_after=7.0), True),
        (FeedAuthError("401 auth failed"), False),
        (SubscriptionError("unknown symbol XYZ"), False),
        (FeedConnectError("406 connection limit exceeded", retryable=False), False),
        (FeedAuthError("auth service unavailable", retryable=True), True),
        (FeedError("generic"), True),
        (DataFormatError("bad row", source="x.csv", line=3), False),
        (StorageError("disk full"), False),
        (EngineClosedError("closed"), False),
        (ConfigError("bad"), False),
        (OSError("network unreachable"), True),
        (ConnectionResetError("reset by peer"), True),
        (ConnectionRefusedError("refused"), True),
        (TimeoutError("read timed out"), True),
        (FileNotFoundError("no such file"), False),
        (ssl.SSLCertVerificationError("certificate verify failed"), False),
        (ValueError("bad value"), False),
        (RuntimeError("bug"), False),
        (asyncio.CancelledError(), False),
        (KeyboardInterrupt(), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_classify(exc: BaseException, retryable: bool) -> None:
    assert classify(exc) is retryable


def test_retry_after_of_reads_rate_limit_errors_only() -> None:
    assert retry_after_of(RateLimitError("slow down", retry_after=7.0)) == 7.0
    assert retry_after_of(RateLimitError("slow down")) is None
    assert retry_after_of(FeedConnectError("dropped")) is None
    assert retry_after_of(OSError("x")) is None


def test_rate_limit_error_feeds_the_floor() -> None:
    backoff = Backoff(rng=const(0.0))
    error = RateLimitError("429", retry_after=7.0)
    assert backoff.next_delay(retry_after_s=retry_after_of(error)) == 7.0
