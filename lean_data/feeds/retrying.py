"""One REST request, retried with backoff and ``Retry-After`` within a budget.

:meth:`StreamingFeed.retrying <lean_data.feeds.streaming.StreamingFeed.retrying>` is the
door feeds use; this module is its loop, passed what it needs (how to translate a failure,
how long the venue asked to wait, where to report) instead of reaching into the feed.
A request gives up with :class:`~lean_data.errors.RetriesExhaustedError` after
``attempts`` attempts or ``seconds`` seconds, whichever comes first: an attempt still
running when the time is up is cancelled, and a wait that would end past it is not started.
Either way the error names the last failure the venue gave, so "HTTP 500" is not lost
behind "the time ran out".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from lean_data.errors import (
    ConnectionLimitError,
    FeedError,
    RateLimitError,
    RetriesExhaustedError,
)
from lean_data.feeds.backoff import Backoff
from lean_data.feeds.translate import own_cause

__all__ = ["RequestBudget", "retry_request"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RequestBudget:
    """What one request may spend: ``attempts`` tries and ``seconds`` in all (waits too)."""

    feed: str
    attempts: int
    seconds: float


async def retry_request(
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    budget: RequestBudget,
    backoff: Backoff,
    translate: Callable[[BaseException], FeedError],
    retry_after: Callable[[FeedError, str], float | None],
    report: Callable[[str, str], None],
    on_retry: Callable[[float], None],
) -> T:
    """Run ``call`` until it succeeds, fails fatally or the budget runs out.

    Args:
        call: makes the request afresh on every attempt.
        what: names the request in errors (``"klines BTCUSDT"``).
        budget: the attempts and seconds allowed.
        backoff: the delays between attempts (fresh for this request).
        translate: maps a failure to a :class:`FeedError` with a retryable flag.
        retry_after: the seconds the venue asked to wait after ``error``, or None.
        report: records a survived problem (kind, message).
        on_retry: told the delay of every retry before it is waited.

    Raises:
        FeedError: a fatal failure.
        RetriesExhaustedError: the budget (or the backoff's ``max_attempts``) ran out.
    """
    started = time.monotonic()
    deadline = started + budget.seconds
    attempts = 0
    failed: FeedError | None = None  # the last attempt's failure, named when time runs out

    def exhausted(last: str) -> RetriesExhaustedError:
        error = _exhausted(what, budget, attempts, started, last)
        report("retries_exhausted", str(error))
        return error

    while True:
        attempts += 1
        timeout = asyncio.timeout_at(_loop_time(deadline))
        try:
            async with timeout:
                return await call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if timeout.expired():
                cut = f"the time budget ran out during attempt {attempts}"
                if failed is None:
                    raise exhausted(cut) from None
                raise exhausted(f"{failed}; then {cut}") from failed
            error = failed = translate(exc)
            if not error.retryable:
                if error is exc:
                    raise
                raise error from own_cause(exc)
            if backoff.exhausted or attempts >= budget.attempts:
                raise exhausted(str(error)) from own_cause(exc)
            delay = backoff.next_delay(
                retry_after_s=retry_after(error, what),
                connection_limited=isinstance(error, ConnectionLimitError),
            )
            if time.monotonic() + delay > deadline:
                raise exhausted(f"{error}; the next wait ({delay:g}s) ends late") from own_cause(
                    exc
                )
            on_retry(delay)
            kind = "rate_limited" if isinstance(error, RateLimitError) else "request_failed"
            report(kind, f"{what}: {error}; retry {backoff.attempt} in {delay:.3f}s")
            await asyncio.sleep(delay)


def _exhausted(
    what: str, budget: RequestBudget, attempts: int, started: float, last: str
) -> RetriesExhaustedError:
    elapsed = time.monotonic() - started
    return RetriesExhaustedError(
        f"{what}: gave up after {attempts} attempts in {elapsed:.3f}s "
        f"(budget {budget.attempts} attempts, {budget.seconds:g}s); "
        f"last: {last}",
        feed=budget.feed,
        attempts=attempts,
        elapsed_s=elapsed,
    )


def _loop_time(monotonic_deadline: float) -> float:
    """Convert a ``time.monotonic`` deadline to the running loop's clock."""
    return asyncio.get_running_loop().time() + (monotonic_deadline - time.monotonic())
