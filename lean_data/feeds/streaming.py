"""StreamingFeed: the resilience every network feed shares, written once.

A network feed implements five small hooks (open a session, close it, send a subscribe,
send an unsubscribe, read the session until it ends) and inherits:

- **Reconnect with backoff.** One supervisor task per feed opens sessions in a loop. After a
  retryable failure it waits a full-jitter capped exponential delay
  (:class:`~lean_data.feeds.backoff.Backoff`), at least what the venue asked for
  (``Retry-After``, rate-limit frames) and at least ``connection_limit_s`` after a
  connection-limit refusal. The backoff is reset only after a session delivered real data,
  so a venue that accepts the socket and then drops it is not hammered.
- **Desired-state subscriptions.** :meth:`subscribe` / :meth:`unsubscribe` edit the set of
  symbols the user wants; every new session subscribes to all of them before reading.
  Subscribing while disconnected is allowed: it takes effect on the next session.
- **Staleness per subscription, on by default for bars.** A symbol silent for
  ``stale_factor`` x its cadence while the socket is open is reported ``stale``, the engine
  is told (it fails over to another feed serving the symbol) and the connection is
  recycled. By default (``cadence_s="auto"``) the cadence is the bar period
  (:meth:`bar_period_s`) plus ``stale_grace_s``, and silence counts only while the market
  is open (:meth:`expects_data`); a number or a per-symbol mapping sets it, ``None`` or
  ``0`` turns it off. Symbols without a cadence are never judged stale.
- **Fatal errors stop the feed.** Bad credentials, unknown symbols and insufficient plans
  (errors whose ``retryable`` is False) end the supervisor with status ``FAILED`` and one
  clear error; there is no retry loop.
- **Request retries, within a budget.** :meth:`retrying` runs one REST request with the same
  policy, honouring ``Retry-After`` on 429/418 answers, and gives up with
  :class:`~lean_data.errors.RetriesExhaustedError` after ``request_attempts`` attempts or
  ``request_budget_s`` seconds, whichever comes first.
- **Bounded waits and buffers.** A venue's ``Retry-After`` is honoured up to
  ``BackoffPolicy.retry_after_cap_s`` (a longer demand is reported as ``rate_limited``);
  every HTTP request is bounded by ``http_timeout_s``; websocket messages by
  ``ws_max_message_bytes`` and the frames buffered ahead of the reader by
  ``ws_buffer_bytes`` (see :attr:`ws_max_queue`).

The hooks are declared in :mod:`lean_data.feeds.hooks`. This module is the supervisor and
the subscription state; it delegates one session's tasks to :mod:`~lean_data.feeds.session`,
staleness to :mod:`~lean_data.feeds.staleness`, request retries to
:mod:`~lean_data.feeds.retrying` and error mapping to :mod:`~lean_data.feeds.translate`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from lean_data.errors import (
    ConfigError,
    ConnectionLimitError,
    EngineStateError,
    FeedConnectError,
    FeedError,
)
from lean_data.feeds.backoff import Backoff, BackoffPolicy, retry_after_of
from lean_data.feeds.base import DataFeed, FeedStatus
from lean_data.feeds.hooks import SessionHooks
from lean_data.feeds.retrying import RequestBudget, retry_request
from lean_data.feeds.session import cancel_requested, run_session_tasks
from lean_data.feeds.staleness import Cadence, StalenessWatch, StaleSubscriptionError
from lean_data.feeds.translate import http_error, own_cause, translate
from lean_data.models import AssetClass

# Cadence, StaleSubscriptionError and http_error are re-exported: subclasses build on them.
__all__ = ["MIB", "Cadence", "StaleSubscriptionError", "StreamingFeed", "http_error"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_CLOSE_TIMEOUT_S = 5.0
MIB = 1024 * 1024


class StreamingFeed(DataFeed, SessionHooks):
    """Base class of network feeds: reconnects, resubscribes, detects staleness, retries.

    Args:
        name: unique name of this feed in an engine.
        config: source-specific settings, kept as ``self.config``.
        symbols: the symbols this feed serves (None: any of its asset classes).
        asset_classes: overrides the class attribute.
        backoff: reconnect and retry policy (defaults: 0.5 s base, 30 s cap, 90 s after a
            connection-limit refusal, unlimited attempts).
        cadence_s: seconds between messages a subscription promises: ``"auto"`` (the
            default) derives it from the subscription's bar period (:meth:`bar_period_s`;
            none for a feed without one), a number applies to every symbol, a mapping per
            symbol (symbols not in it: none); ``None`` or ``0`` turns staleness off.
        stale_factor: a subscription is stale after ``stale_factor`` x its cadence of silence
            (plus ``stale_grace_s`` when the cadence is derived).
        open_timeout_s: limit for :meth:`open_session` (dial and authentication).
        request_attempts: most attempts of one REST request in :meth:`retrying` (default 8).
        request_budget_s: most seconds one REST request may take in :meth:`retrying`,
            attempts and waits included (default 180); then it fails with
            :class:`~lean_data.errors.RetriesExhaustedError`.
        http_timeout_s: limit of one HTTP request (connect, send, read the whole answer;
            default 30 s). Subclasses pass it to their HTTP client.
        ws_max_message_bytes: largest websocket message accepted (default 1 MiB); a larger
            one closes the connection (code 1009) and the feed reconnects.
        ws_buffer_bytes: memory budget of the frames a websocket client buffers ahead of
            the reader (default 16 MiB): it buffers at most :attr:`ws_max_queue` =
            ``ws_buffer_bytes // ws_max_message_bytes`` messages, then stops reading from
            the socket (TCP backpressure reaches the venue). Subclasses turn websocket
            compression (permessage-deflate) off: one compressed read of a few hundred KiB
            can inflate to hundreds of 1 MiB messages before reading pauses, which no
            ``max_queue`` bounds.
        rng: the jitter source (``random.random``); tests pin it.

    Attributes:
        desired: the symbols the user wants, in subscription order.
        connect_attempts: sessions tried so far.
        sessions: sessions that opened.
        reconnect_delays: every delay waited before a reconnect, in seconds.
        stale_events: subscriptions found stale.
        request_retries, retry_delays: REST retries made by :meth:`retrying` and their waits.
        fatal_error: the error that stopped the feed, if any.
    """

    def __init__(
        self,
        name: str,
        config: Any = None,
        *,
        symbols: Iterable[str] | None = None,
        asset_classes: Iterable[AssetClass] | None = None,
        backoff: BackoffPolicy | None = None,
        cadence_s: Cadence = "auto",
        stale_factor: float = 3.0,
        open_timeout_s: float = 10.0,
        request_attempts: int = 8,
        request_budget_s: float = 180.0,
        http_timeout_s: float = 30.0,
        ws_max_message_bytes: int = MIB,
        ws_buffer_bytes: int = 16 * MIB,
        rng: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(name, config, symbols=symbols, asset_classes=asset_classes)
        for label, seconds in (
            ("request_budget_s", request_budget_s),
            ("http_timeout_s", http_timeout_s),
            ("open_timeout_s", open_timeout_s),
        ):
            if not seconds > 0:
                raise ConfigError(f"{label}: expected > 0, found {seconds!r}")
        if isinstance(request_attempts, bool) or not request_attempts >= 1:
            raise ConfigError(f"request_attempts: expected >= 1, found {request_attempts!r}")
        if not ws_max_message_bytes >= 1:
            raise ConfigError(
                f"ws_max_message_bytes: expected >= 1, found {ws_max_message_bytes!r}"
            )
        if not ws_buffer_bytes >= ws_max_message_bytes:
            raise ConfigError(
                f"ws_buffer_bytes: expected >= ws_max_message_bytes ({ws_max_message_bytes}), "
                f"found {ws_buffer_bytes!r}"
            )
        self.request_attempts = request_attempts
        self.request_budget_s = request_budget_s
        self.http_timeout_s = http_timeout_s
        self.ws_max_message_bytes = ws_max_message_bytes
        self.ws_buffer_bytes = ws_buffer_bytes
        if not stale_factor > 1:
            raise ConfigError(f"stale_factor: expected > 1, found {stale_factor!r}")
        if isinstance(cadence_s, str) and cadence_s != "auto":
            raise ConfigError(f"cadence_s: expected 'auto', seconds or None, found {cadence_s!r}")
        self.backoff_policy = backoff if backoff is not None else BackoffPolicy()
        self._rng = rng
        self._backoff = Backoff(self.backoff_policy, rng=rng)
        self._cadence = cadence_s
        self.stale_factor = stale_factor
        self.open_timeout_s = open_timeout_s
        self.desired: dict[str, None] = {}
        self._active: dict[str, int] = {}  # symbol -> ns when subscribed on this session
        self._session_open = False
        self._session_started_ns = 0
        self._lock = asyncio.Lock()
        self._supervisor: asyncio.Task[None] | None = None
        self._first: asyncio.Future[FeedError | None] | None = None
        self._abort: asyncio.Future[None] | None = None
        self.connect_attempts = 0
        self.sessions = 0
        self.reconnect_delays: list[float] = []
        self.stale_events = 0
        self.request_retries = 0
        self.retry_delays: deque[float] = deque(maxlen=1000)
        self.fatal_error: FeedError | None = None
        self._session_data = False
        self._staleness = StalenessWatch(self.cadence_of, self.stale_after_s, self.last_seen)

    def note_data(self, symbol: str, now_ns: int) -> None:
        """Record that ``symbol`` sent data that is not emitted (an in-progress candle update).

        Emitted items count by themselves; this keeps such a subscription from being judged
        stale and lets the backoff reset after a session that delivered only updates.
        """
        self.last_seen[symbol] = now_ns
        self._session_data = True

    def cadence_of(self, symbol: str) -> float | None:
        """Return the seconds between messages ``symbol`` promises, or None (never stale)."""
        cadence = self._cadence
        if isinstance(cadence, str):
            return self.bar_period_s(symbol)
        if cadence is None or isinstance(cadence, int | float):
            return cadence or None
        return cadence.get(symbol) or None

    def stale_after_s(self, symbol: str, now_ns: int) -> float | None:
        """Return the silence (s) after which ``symbol`` is stale at ``now_ns``, or None.

        None when it promises no cadence, or (derived cadence) its market is closed.
        """
        cadence = self.cadence_of(symbol)
        if cadence is None:
            return None
        if not isinstance(self._cadence, str):
            return self.stale_factor * cadence
        if not self.expects_data(symbol, now_ns):
            return None
        return self.stale_factor * cadence + self.stale_grace_s

    @property
    def ws_max_queue(self) -> int:
        """Return the messages a websocket client may buffer ahead of the reader.

        ``ws_buffer_bytes // ws_max_message_bytes``, so the buffered messages never hold
        more than ``ws_buffer_bytes`` (plus the one being parsed).
        """
        return max(1, self.ws_buffer_bytes // self.ws_max_message_bytes)

    def capped_retry_after(self, error: FeedError, what: str) -> float | None:
        """Return the venue's ``Retry-After`` of ``error``; report it when above the cap.

        The backoff cuts it to ``retry_after_cap_s``; a longer demand is worth knowing
        about (a ban, a misconfigured venue), so it is reported as ``rate_limited``.
        """
        asked = retry_after_of(error)
        cap = self.backoff_policy.retry_after_cap_s
        if asked is not None and asked > cap:
            self.report_error(
                "rate_limited",
                f"{what}: the venue asked to wait {asked:g}s; waiting {cap:g}s "
                "(BackoffPolicy.retry_after_cap_s)",
            )
        return asked

    def translate_error(self, exc: BaseException) -> FeedError:
        """Map any exception from a hook to a :class:`FeedError` with a retryable flag.

        Subclasses extend this for their SDK's exceptions and call ``super()`` for the rest.
        """
        return translate(exc, self.name)

    # ----------------------------------------------------------------- DataFeed API
    @property
    def accepts_subscriptions(self) -> bool:
        """True while the supervisor runs: subscriptions apply now or on the next session."""
        return self._supervisor is not None and not self._supervisor.done()

    async def open(self) -> bool:
        """Start the supervisor (the engine calls this); see :meth:`connect`."""
        return await self.connect()

    async def connect(self) -> bool:
        """Start the supervisor and wait for the first session's outcome.

        Returns True once the first session opened, or when it failed in a way worth
        retrying (the feed keeps reconnecting in the background).

        Raises:
            FeedError: the first attempt failed fatally (bad credentials, ...).
        """
        if self.fatal_error is not None:
            raise self.fatal_error
        loop = asyncio.get_running_loop()
        if self._supervisor is None or self._supervisor.done():
            self._first = loop.create_future()
            self._supervisor = self.spawn(self._supervise(), name="supervisor")
        assert self._first is not None
        error = await asyncio.shield(self._first)
        if error is not None:
            raise error
        return True

    async def disconnect(self) -> None:
        """Stop the supervisor and close the session; idempotent."""
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None and not supervisor.done():
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
        await self._end_session()
        if self.status is not FeedStatus.FAILED:
            self.status = FeedStatus.DISCONNECTED

    async def subscribe(self, symbol: str) -> bool:
        """Add ``symbol`` to the desired set and subscribe it on the open session, if any.

        Returns False when the feed has failed fatally.

        Raises:
            FeedError: the source refused the symbol fatally (it is dropped again).
        """
        if self.fatal_error is not None:
            return False
        self.desired[symbol] = None
        self._staleness.wake()
        async with self._lock:
            if self._session_open and symbol not in self._active:
                try:
                    await self.send_subscribe([symbol])
                except Exception as exc:
                    error = self.translate_error(exc)
                    if not error.retryable:
                        self.desired.pop(symbol, None)
                        if error is exc:
                            raise
                        raise error from own_cause(exc)
                    self._recycle(error)  # the next session subscribes it
                    return True
                self._active[symbol] = time.time_ns()
        return True

    async def unsubscribe(self, symbol: str) -> bool:
        """Remove ``symbol`` from the desired set; returns False when it was not there."""
        if symbol not in self.desired:
            return False
        del self.desired[symbol]
        async with self._lock:
            if self._session_open and self._active.pop(symbol, None) is not None:
                try:
                    await self.send_unsubscribe([symbol])
                except Exception as exc:
                    self._recycle(self.translate_error(exc))
        return True

    async def retrying(
        self, call: Callable[[], Awaitable[T]], *, what: str, policy: BackoffPolicy | None = None
    ) -> T:
        """Run one request, retrying retryable failures with backoff and ``Retry-After``.

        The request has a budget: ``request_attempts`` attempts and ``request_budget_s``
        seconds in all (an attempt still running when the time is up is cancelled; a wait
        that would end past it is not started).

        Args:
            call: makes the request afresh on every attempt.
            what: names the request in errors (``"klines BTCUSDT"``).
            policy: overrides the feed's backoff policy for this request.

        Raises:
            FeedError: a fatal failure.
            RetriesExhaustedError: the budget (or the policy's ``max_attempts``) ran out.
        """
        return await retry_request(
            call,
            what=what,
            budget=RequestBudget(self.name, self.request_attempts, self.request_budget_s),
            backoff=Backoff(policy or self.backoff_policy, rng=self._rng),
            translate=self.translate_error,
            retry_after=self.capped_retry_after,
            report=self.report_error,
            on_retry=self._count_retry,
        )

    def _count_retry(self, delay: float) -> None:
        self.request_retries += 1
        self.retry_delays.append(delay)

    def get_connection_status(self) -> dict[str, Any]:
        """Return the base snapshot plus reconnect, staleness and subscription state."""
        status = super().get_connection_status()
        status.update(
            connect_attempts=self.connect_attempts,
            sessions=self.sessions,
            reconnects=len(self.reconnect_delays),
            stale_events=self.stale_events,
            request_retries=self.request_retries,
            subscriptions=list(self.desired),
            fatal_error=str(self.fatal_error) if self.fatal_error is not None else "",
        )
        return status

    # ----------------------------------------------------------------- supervisor
    async def _supervise(self) -> None:
        while True:
            self.connect_attempts += 1
            self.status = FeedStatus.CONNECTING
            emitted_before = self.messages_emitted
            self._session_data = False
            try:
                await self._session()
                error: FeedError = FeedConnectError(
                    "the server closed the connection", feed=self.name
                )
            except asyncio.CancelledError:
                await self._end_session()
                raise
            except EngineStateError:  # the engine is stopping: emit() refused; not a failure
                await self._end_session()
                return
            except Exception as exc:
                error = self.translate_error(exc)
            if cancel_requested():  # a cancel that asyncio.wait_for (3.11) swallowed
                await self._end_session()
                raise asyncio.CancelledError
            got_data = self._session_data or self.messages_emitted > emitted_before
            await self._end_session()
            self._tell_down(list(self.desired), str(error))
            if not error.retryable:
                self._fail(error)
                return
            if got_data:
                self._backoff.reset()
            if self._backoff.exhausted:
                self._fail(
                    FeedConnectError(
                        f"gave up after {self.connect_attempts} attempts; last: {error}",
                        feed=self.name,
                        retryable=False,
                    )
                )
                return
            delay = self._backoff.next_delay(
                retry_after_s=self.capped_retry_after(error, "reconnect"),
                connection_limited=isinstance(error, ConnectionLimitError),
            )
            self.reconnect_delays.append(delay)
            self.report_error(
                "disconnected", f"{error}; reconnect {self._backoff.attempt} in {delay:.3f}s"
            )
            self._settle_first(None)
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        await asyncio.wait_for(self.open_session(), self.open_timeout_s)
        now = time.time_ns()
        self.status = FeedStatus.CONNECTED
        self.connected_since_ns = self._session_started_ns = now
        self.sessions += 1
        abort = self._abort = asyncio.get_running_loop().create_future()
        async with self._lock:
            self._active = {}
            wanted = list(self.desired)
            if wanted:
                await self.send_subscribe(wanted)
                self._active = dict.fromkeys(wanted, now)
            self._session_open = True
        self._settle_first(None)
        await run_session_tasks(self.run_session, self._watch, abort, name=self.name)

    async def _watch(self) -> None:
        """Raise StaleSubscriptionError when a subscription outlives its cadence in silence."""
        stale = await self._staleness.wait_stale(self._active)
        self.stale_events += 1
        message = (
            f"{stale.symbol}: no data for {stale.silent_s:.3f}s on an open connection "
            f"(expected every {self.cadence_of(stale.symbol):g}s; "
            f"stale after {stale.window_s:g}s)"
        )
        self.report_error("stale", message, symbol=stale.symbol)
        self._tell_down([stale.symbol], "stale")
        raise StaleSubscriptionError(message, feed=self.name)

    def _recycle(self, error: FeedError) -> None:
        abort = self._abort
        if abort is not None and not abort.done():
            abort.set_exception(error)

    async def _end_session(self) -> None:
        self._session_open = False
        self._active = {}
        abort, self._abort = self._abort, None
        if abort is not None and not abort.done():
            abort.cancel()
        if self.status is FeedStatus.CONNECTED or self.status is FeedStatus.CONNECTING:
            self.status = FeedStatus.DISCONNECTED
        try:
            await asyncio.wait_for(self.close_session(), _CLOSE_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # closing a broken connection may fail; it is gone anyway
            log.debug("feed %s: close_session raised %r", self.name, exc)

    def _fail(self, error: FeedError) -> None:
        self.fatal_error = error
        self.status = FeedStatus.FAILED
        self.report_error("fatal", f"{error}; the feed stopped (not retrying)")
        self._settle_first(error)

    def _settle_first(self, error: FeedError | None) -> None:
        first = self._first
        if first is not None and not first.done():
            first.set_result(error)

    def _tell_down(self, symbols: list[str], reason: str) -> None:
        sink = self._sink  # told even with no symbols: the engine's books go stale too
        if sink is not None:
            sink.feed_down(self.name, symbols, reason)
