"""Reconnect and retry policy shared by every feed: capped, fully jittered exponential backoff.

This module is pure: no asyncio, no clock reads, and randomness is injected, so the feed base
class owns the only reconnect loop and tests can pin every delay. The algorithm is "full
jitter" from the AWS Architecture Blog post *Exponential Backoff And Jitter*::

    delay = uniform(0, min(cap, base * multiplier ** attempt))

raised to a floor when the venue said how long to wait (``Retry-After``, a rate-limit frame)
or refused a connection because the account is at its connection limit (Alpaca's 406
``connection limit exceeded``; the venue reaps half-dead sockets after about 90 s, so trying
earlier only extends the storm). Typical use in a reconnect loop::

    backoff = Backoff(policy)
    while True:
        try:
            await run_session()            # calls backoff.reset() on the first real message
        except Exception as exc:
            if not classify(exc) or backoff.exhausted:
                raise                      # the feed reports it; never give up silently
            await asyncio.sleep(backoff.next_delay(retry_after_s=retry_after_of(exc)))
"""

from __future__ import annotations

import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from lean_data.errors import ConfigError, FeedError, LeanDataError, RateLimitError

__all__ = [
    "Backoff",
    "BackoffPolicy",
    "classify",
    "max_total_delay",
    "retry_after_of",
]

# OSError subclasses that are about local files or certificates: retrying cannot fix them.
_FATAL_OS_ERRORS: tuple[type[OSError], ...] = (
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    ssl.SSLCertVerificationError,
)


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Describe how long to wait between reconnect or retry attempts.

    Args:
        base_s: ceiling of the jitter window for the first attempt, in seconds.
        cap_s: largest ceiling of the jitter window, in seconds.
        multiplier: growth factor of the ceiling per attempt.
        connection_limit_s: minimum wait after a "connection limit exceeded" answer.
        max_attempts: attempts allowed before ``Backoff.exhausted``; None retries forever
            (the feed still reports every failure). REST requests also have their own
            budget (``StreamingFeed(request_attempts=, request_budget_s=)``).
        retry_after_cap_s: the longest wait a venue's ``Retry-After`` (or rate-limit frame)
            can impose; a longer demand is cut to this (the feed reports what was asked).

    Raises:
        ConfigError: a value is out of range.
    """

    base_s: float = 0.5
    cap_s: float = 30.0
    multiplier: float = 2.0
    connection_limit_s: float = 90.0
    max_attempts: int | None = None
    retry_after_cap_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.base_s > 0:
            raise ConfigError(f"BackoffPolicy.base_s: expected > 0, found {self.base_s!r}")
        if not self.cap_s >= self.base_s:
            raise ConfigError(
                f"BackoffPolicy.cap_s: expected >= base_s ({self.base_s!r}), found {self.cap_s!r}"
            )
        if not self.multiplier >= 1:
            raise ConfigError(f"BackoffPolicy.multiplier: expected >= 1, found {self.multiplier!r}")
        if not self.connection_limit_s >= 0:
            raise ConfigError(
                "BackoffPolicy.connection_limit_s: expected >= 0, "
                f"found {self.connection_limit_s!r}"
            )
        if not self.retry_after_cap_s >= 0:
            raise ConfigError(
                f"BackoffPolicy.retry_after_cap_s: expected >= 0, found {self.retry_after_cap_s!r}"
            )
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigError(
                f"BackoffPolicy.max_attempts: expected None or >= 1, found {self.max_attempts!r}"
            )

    def ceiling(self, attempt: int) -> float:
        """Return the upper end of the jitter window for a 0-based attempt number.

        Raises:
            ValueError: ``attempt`` is negative.
        """
        if attempt < 0:
            raise ValueError(f"attempt: expected >= 0, found {attempt}")
        try:
            raw = self.base_s * self.multiplier**attempt
        except OverflowError:  # multiplier**attempt beyond float range: far past the cap
            return self.cap_s
        return min(self.cap_s, raw)


def max_total_delay(policy: BackoffPolicy, attempts: int) -> float:
    """Return the sum of the jitter ceilings of attempts ``0 .. attempts - 1``.

    This bounds the total time ``attempts`` delays can take when no floor (Retry-After,
    connection limit) applies; tests use it to bound connection attempts in a time window.

    Raises:
        ValueError: ``attempts`` is negative.
    """
    if attempts < 0:
        raise ValueError(f"attempts: expected >= 0, found {attempts}")
    total = 0.0
    for attempt in range(attempts):
        ceiling = policy.ceiling(attempt)
        if ceiling >= policy.cap_s:  # every later attempt is capped too
            return total + policy.cap_s * (attempts - attempt)
        total += ceiling
    return total


class Backoff:
    """Full-jitter capped exponential backoff (AWS blog "Exponential Backoff And Jitter").

    ``delay = uniform(0, min(cap, base * multiplier**attempt))``, raised to any floor the
    venue imposed. One instance per connection; not shared between tasks.

    Args:
        policy: the limits; the defaults of :class:`BackoffPolicy` when None.
        rng: returns a float in ``[0, 1]``; ``random.random`` unless a test pins it.
    """

    __slots__ = ("_attempt", "_policy", "_rng")

    def __init__(
        self, policy: BackoffPolicy | None = None, *, rng: Callable[[], float] = random.random
    ) -> None:
        self._policy = policy if policy is not None else BackoffPolicy()
        self._rng = rng
        self._attempt = 0

    @property
    def policy(self) -> BackoffPolicy:
        """Return the policy in force."""
        return self._policy

    @property
    def attempt(self) -> int:
        """Return how many delays were handed out since creation or the last reset."""
        return self._attempt

    @property
    def exhausted(self) -> bool:
        """Return True once ``max_attempts`` delays were handed out (never when it is None)."""
        limit = self._policy.max_attempts
        return limit is not None and self._attempt >= limit

    def ceiling(self, attempt: int) -> float:
        """Return the upper end of the jitter window for a 0-based attempt number."""
        return self._policy.ceiling(attempt)

    def next_delay(
        self, *, retry_after_s: float | None = None, connection_limited: bool = False
    ) -> float:
        """Return the seconds to wait before the next attempt and count the attempt.

        Args:
            retry_after_s: the wait the venue asked for (Retry-After, rate-limit frame); the
                delay is never shorter, up to ``policy.retry_after_cap_s``. None, negative
                or NaN values impose no floor.
            connection_limited: the venue refused because the connection limit is reached;
                the delay is at least ``policy.connection_limit_s``.

        Returns:
            ``max(floor, rng() * ceiling(attempt))`` in seconds.

        Raises:
            RuntimeError: the policy's ``max_attempts`` is used up (check ``exhausted``).
        """
        if self.exhausted:
            raise RuntimeError(
                f"backoff exhausted: {self._attempt} of {self._policy.max_attempts} attempts used"
            )
        floor = self._policy.connection_limit_s if connection_limited else 0.0
        if retry_after_s is not None and retry_after_s > floor:
            floor = max(floor, min(retry_after_s, self._policy.retry_after_cap_s))
        delay = self._rng() * self._policy.ceiling(self._attempt)
        self._attempt += 1
        return delay if delay > floor else floor

    def reset(self) -> None:
        """Return to attempt 0.

        Call this only after real data arrived on the new connection, never merely after a
        successful connect or authentication: a venue that accepts the socket and then drops
        it (or stays silent) would otherwise be retried at the base delay forever, which is
        the reconnect storm this class exists to prevent.
        """
        self._attempt = 0

    def __repr__(self) -> str:
        return f"Backoff(attempt={self._attempt}, policy={self._policy!r})"


def classify(exc: BaseException) -> bool:
    """Return True when retrying or reconnecting after ``exc`` may help.

    A :class:`~lean_data.errors.FeedError` says so itself (``retryable``); other lean_data
    errors are fatal. Network failures (``OSError`` including ``ConnectionError`` and
    ``TimeoutError``) are retryable, except local-file errors and certificate verification
    failures. Everything else, including ``CancelledError`` and ``KeyboardInterrupt``, is not.
    """
    if isinstance(exc, FeedError):
        return exc.retryable
    if isinstance(exc, LeanDataError):
        return False
    if isinstance(exc, OSError):  # ConnectionError and TimeoutError are OSError subclasses
        return not isinstance(exc, _FATAL_OS_ERRORS)
    return False


def retry_after_of(exc: BaseException) -> float | None:
    """Return the wait in seconds the venue asked for in ``exc``, or None when it did not say."""
    if isinstance(exc, RateLimitError):
        return exc.retry_after
    return None
