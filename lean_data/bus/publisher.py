"""BusPublisher: an engine sink that publishes every accepted item to NATS JetStream.

Attach it with ``engine.add_sink(BusPublisher(...))``; it has the shape of
:class:`lean_data.engine.sinks.ItemSink` (name, open, offer, close, statistics) without
importing the engine. The engine hands it each accepted item (closed bars, quotes, ticks;
never INVALID items or in-progress bars) with its feed and verdict.

- :meth:`BusPublisher.offer` never waits: the item joins a bounded buffer
  (``buffer_size``); when that is full, ``policy`` drops the oldest buffered item
  (``drop_oldest``) or the new one (``drop_newest``), counted as ``dropped_overflow``.
- One task (owned by the publisher, started by :meth:`open`) encodes items
  (:mod:`lean_data.bus.codec`) and publishes them in order to
  ``<prefix>.<kind>.<feed>.<symbol>`` with a ``Nats-Msg-Id`` (:mod:`lean_data.bus.subjects`),
  at most ``max_pending`` unacknowledged at a time.
- Any failure (NATS unreachable, the connection lost, an ack error, no ack within
  ``ack_timeout_s``) ends the connection: every unacknowledged message goes back to the
  front of the queue, in order, and the task reconnects after a capped, jittered
  exponential backoff (:class:`lean_data.feeds.backoff.Backoff`). Meanwhile items wait in
  the bounded buffer. Because one connection delivers in order and everything from the
  first unacknowledged message on is re-sent in order with the same message ids, the
  stream keeps each series in publish order and JetStream's duplicate window stores
  each message once (a re-sent message that was stored is acked as a duplicate).
- :meth:`close` publishes the backlog and waits for its acks, then closes the
  connection. The engine bounds it by ``Config.stop_timeout_s``; what is still unpublished
  then is counted (``dropped_at_close``, ``unconfirmed_at_close``).

Nothing is lost silently: ``offered == acked + dropped + unconfirmed_at_close + pending +
buffered`` at every moment the task is not mid-step (see :meth:`statistics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import time
from collections import deque
from typing import Any, Literal

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import MaxPayloadError
from nats.js.errors import APIError, NoStreamResponseError

from lean_data.bus.codec import encode
from lean_data.bus.stream import StreamSettings, ensure_stream
from lean_data.bus.subjects import escape_token, message_id, stream_name_for, subject_for
from lean_data.config import OverflowPolicy
from lean_data.feeds.backoff import Backoff, BackoffPolicy
from lean_data.models import MarketData, QuoteBar, TradeBar
from lean_data.quality.levels import Verdict

__all__ = ["BusPublisher"]

log = logging.getLogger(__name__)

Policy = Literal["drop_oldest", "drop_newest"]
_Message = tuple[str, bytes, str]  # subject, payload, message id
# In flight: [message, answer, ack deadline (monotonic)]; the answer is None until the
# server's reply came: True (stored), False (a duplicate: stored before), or the error.
_Inflight = list[Any]
_DEFAULT_BACKOFF = BackoffPolicy(base_s=0.1, cap_s=5.0)


class _State(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"
    CLOSED = "closed"


class _Rejected(Exception):
    """The server refused one message for good (it is dropped, counted, and recorded)."""


def _policy(value: str | OverflowPolicy) -> Policy:
    text = value.value if isinstance(value, OverflowPolicy) else value
    if text == "drop_oldest":
        return "drop_oldest"
    if text == "drop_newest":
        return "drop_newest"
    raise ValueError(
        f"BusPublisher policy: expected 'drop_oldest' or 'drop_newest' (offer() never "
        f"waits, so 'block' and 'conflate' do not apply), got {value!r}"
    )


class BusPublisher:
    """Publish the items an engine accepts to a NATS JetStream stream (an engine sink).

    Args:
        url: the NATS server.
        prefix: subject prefix; items go to ``<prefix>.<kind>.<feed>.<symbol>``.
        stream: the stream's name (default: the prefix upper-cased, ``lean`` -> ``LEAN``);
            created at connect time when missing (see :mod:`lean_data.bus.stream`).
        name: the sink's name in ``get_metrics()["sinks"]``.
        buffer_size: items held while NATS is slow or away.
        max_pending: messages published but not acknowledged yet, at most.
        policy: what a full buffer drops: ``"drop_oldest"`` or ``"drop_newest"``.
        max_age_s, max_bytes, duplicate_window_s: the stream's limits when it is created.
        ack_timeout_s: a message not acknowledged by then counts as a failure.
        connect_timeout_s: how long one connection attempt may take.
        backoff: delays between reconnects (default 0.1 s doubling up to 5 s, jittered).

    Raises:
        ValueError: a size, time or policy out of range.
    """

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        prefix: str = "lean",
        stream: str | None = None,
        name: str = "bus",
        buffer_size: int = 100_000,
        max_pending: int = 1_000,
        policy: Policy | OverflowPolicy = "drop_oldest",
        max_age_s: float = 86_400.0,
        max_bytes: int = 1 << 30,
        duplicate_window_s: float = 120.0,
        ack_timeout_s: float = 5.0,
        connect_timeout_s: float = 2.0,
        backoff: BackoffPolicy | None = None,
    ) -> None:
        if buffer_size < 1 or max_pending < 1:
            raise ValueError(
                f"BusPublisher: buffer_size and max_pending must be >= 1, "
                f"got {buffer_size} and {max_pending}"
            )
        if not ack_timeout_s > 0 or not connect_timeout_s > 0:
            raise ValueError("BusPublisher: ack_timeout_s and connect_timeout_s must be > 0")
        self.name = name
        self.url = url
        self.prefix = prefix
        self.settings = StreamSettings(
            stream or stream_name_for(prefix), prefix, max_age_s, max_bytes, duplicate_window_s
        )
        self.policy: Policy = _policy(policy)
        self._buffer_size = buffer_size
        self._max_pending = max_pending
        self._ack_timeout_s = ack_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._backoff = Backoff(backoff or _DEFAULT_BACKOFF)
        self._buffer: deque[tuple[str, MarketData, Verdict]] = deque()
        self._retry: deque[_Message] = deque()  # unacknowledged messages, sent first
        self._inflight: deque[_Inflight] = deque()
        self._heads: dict[tuple[str, str, str], tuple[str, str]] = {}
        self._wake: asyncio.Event | None = None
        self._waiting: dict[str, _Inflight] = {}  # reply token -> its in-flight entry
        self._reply_prefix = ""
        self._sent = 0
        self._task: asyncio.Task[None] | None = None
        self._nc: Client | None = None
        self._state = _State.NEW
        self._closing = False
        self._delay_s = 0.0
        self.offered = self.published = self.acked = self.duplicates = self.resent = 0
        self.dropped_overflow = self.dropped_rejected = self.dropped_unencodable = 0
        self.dropped_at_close = self.unconfirmed_at_close = 0
        self.errors = self.connects = 0
        self.last_error = ""
        self.stream_created = False
        self.stream_differs = ""

    # ------------------------------------------------------------------ the sink
    async def open(self) -> None:
        """Start the publishing task; returns at once (it connects, and retries, on its own).

        Raises:
            RuntimeError: the publisher was closed or opened already.
        """
        if self._task is not None or self._state is _State.CLOSED:
            raise RuntimeError(f"BusPublisher {self.name!r} can be opened once")
        self._wake = asyncio.Event()
        self._state = _State.CONNECTING
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"bus:{self.name}")

    def offer(self, feed: str, item: MarketData, verdict: Verdict) -> None:
        """Queue one item for publishing without waiting (a full buffer drops per policy)."""
        self.offered += 1
        buffer = self._buffer
        if len(buffer) >= self._buffer_size:
            self.dropped_overflow += 1
            if self.policy == "drop_newest":
                return
            buffer.popleft()
        buffer.append((feed, item, verdict))
        wake = self._wake
        if wake is not None:
            wake.set()

    async def close(self) -> None:
        """Publish the backlog, wait for its acks, close the connection; idempotent.

        Cancelled (the engine's stop timeout), it counts what was left as
        ``dropped_at_close`` (never sent) and ``unconfirmed_at_close`` (sent, no ack).
        """
        if self._state is _State.CLOSED:
            return
        self._closing = True
        task = self._task
        try:
            if task is not None:
                assert self._wake is not None
                self._wake.set()
                await task
        finally:
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            self._count_left()
            await self._drop_connection()
            self._state = _State.CLOSED

    def statistics(self) -> dict[str, Any]:
        """Counters: ``offered == acked + dropped + unconfirmed_at_close + pending +
        buffered`` (``published`` counts every send, re-sends included; ``duplicates``
        are acks JetStream flagged duplicate: a message it had stored already)."""
        nc = self._nc
        dropped = (
            self.dropped_overflow + self.dropped_rejected + self.dropped_unencodable
            + self.dropped_at_close
        )  # fmt: skip
        return {
            "state": self._state.value,
            "connected": nc is not None and nc.is_connected,
            "offered": self.offered,
            "published": self.published,
            "acked": self.acked,
            "duplicates": self.duplicates,
            "resent": self.resent,
            "pending": len(self._inflight),
            "buffered": len(self._buffer) + len(self._retry),
            "dropped": dropped,
            "dropped_overflow": self.dropped_overflow,
            "dropped_rejected": self.dropped_rejected,
            "dropped_unencodable": self.dropped_unencodable,
            "dropped_at_close": self.dropped_at_close,
            "unconfirmed_at_close": self.unconfirmed_at_close,
            "errors": self.errors,
            "last_error": self.last_error,
            "connects": self.connects,
            "backoff_attempt": self._backoff.attempt,
            "backoff_delay_s": self._delay_s,
            "stream": self.settings.name,
            "stream_created": self.stream_created,
            "stream_config_differs": self.stream_differs,
        }

    # ------------------------------------------------------------------ the task
    async def _run(self) -> None:
        """Connect, publish until closing with nothing left; on failure back off, retry."""
        while True:
            try:
                await self._session()
                return
            except Exception as exc:  # every bus failure is retried; each is counted
                self._record(exc)
            finally:
                self._requeue()
                await self._drop_connection()
            self._state = _State.BACKOFF
            self._delay_s = self._backoff.next_delay()
            await asyncio.sleep(self._delay_s)

    async def _session(self) -> None:
        self._state = _State.CONNECTING
        self._nc = nc = await nats.connect(
            self.url,
            name=f"lean_data:{self.name}",
            allow_reconnect=False,  # a lost connection is this task's to handle, in order
            connect_timeout=self._connect_timeout_s,
            max_reconnect_attempts=1,  # nats-py: 0 would retry forever; 1 tries twice
            reconnect_time_wait=0.0,  # ... back to back; the backoff here spaces attempts
            error_cb=self._on_error,
            disconnected_cb=self._on_change,
            closed_cb=self._on_change,
        )
        js = nc.jetstream()
        created, differs = await ensure_stream(js, self.settings)
        self.stream_created = self.stream_created or created
        if differs and differs != self.stream_differs:
            log.warning("bus %s: stream %s exists with another configuration, used as it "
                        "is: %s", self.name, self.settings.name, differs)  # fmt: skip
        self.stream_differs = differs
        self.connects += 1
        self._state = _State.CONNECTED
        self._delay_s = 0.0
        # Acks come back on one wildcard inbox, matched by a counter (what publish_async
        # does with a future, a semaphore and a random token per message, for less).
        self._reply_prefix = f"{nc.new_inbox()}."
        await nc.subscribe(f"{self._reply_prefix}*", cb=self._on_reply)
        await self._pump(nc)

    async def _pump(self, nc: Client) -> None:
        """Publish in order with at most ``max_pending`` unacknowledged; return when closing
        and everything was acknowledged; raise on any failure."""
        inflight, retry, buffer = self._inflight, self._retry, self._buffer
        wake = self._wake
        assert wake is not None
        timeout = self._ack_timeout_s
        while True:
            if nc.is_closed or not nc.is_connected:
                raise ConnectionError("the connection to NATS was lost")
            wake.clear()
            deadline = time.monotonic() + timeout  # of what this round sends
            while len(inflight) < self._max_pending and (retry or buffer):
                message = retry.popleft() if retry else self._encode(*buffer.popleft())
                if message is None:
                    continue
                self._sent += 1
                token = str(self._sent)
                try:
                    await nc.publish(
                        message[0], message[1], reply=self._reply_prefix + token,
                        headers={"Nats-Msg-Id": message[2]},
                    )  # fmt: skip
                except MaxPayloadError:
                    self.dropped_rejected += 1
                    self._record(_Rejected(f"{message[2]}: larger than the server's max payload"))
                    continue
                except BaseException:
                    retry.appendleft(message)
                    raise
                entry = [message, None, deadline]
                inflight.append(entry)
                self._waiting[token] = entry
                self.published += 1
            self._collect()
            if not inflight and self._closing and not retry and not buffer:
                return
            if inflight:
                left = inflight[0][2] - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"no ack from JetStream within {timeout}s for {inflight[0][0][2]}"
                    )
                if len(inflight) < self._max_pending and (retry or buffer):
                    continue
                try:
                    async with asyncio.timeout(left):
                        await wake.wait()
                except TimeoutError:
                    pass
            elif not (retry or buffer):
                await wake.wait()

    def _collect(self) -> None:
        """Count the acks that arrived, oldest first; raise on a failed one."""
        inflight = self._inflight
        while inflight and inflight[0][1] is not None:
            message, answer, _ = inflight[0]
            if isinstance(answer, BaseException):
                if _retryable(answer):
                    raise answer
                inflight.popleft()
                self.dropped_rejected += 1
                self._record(_Rejected(f"JetStream refused {message[2]} on {message[0]}: {answer}"))
                continue
            inflight.popleft()
            self.acked += 1
            if answer is False:
                self.duplicates += 1
            if self._backoff.attempt:
                self._backoff.reset()  # data flows again: the next failure starts small

    def _encode(self, feed: str, item: MarketData, verdict: Verdict) -> _Message | None:
        """Return the message of one item; None (counted, recorded) when it cannot be one."""
        try:
            key = (item.kind, feed, item.symbol)
            head = self._heads.get(key)
            if head is None:
                subject = subject_for(self.prefix, item.kind, feed, item.symbol)
                id_head = f"{item.kind}:{escape_token(feed)}:{escape_token(item.symbol)}:"
                head = self._heads[key] = (subject, id_head)
            if isinstance(item, TradeBar | QuoteBar):
                msg_id = f"{head[1]}{item.ts_event}:{item.resolution.nanos}:{item.revision}"
            else:
                msg_id = message_id(feed, item)
            return head[0], encode(feed, item, verdict), msg_id
        except Exception as exc:  # a bad symbol or field: that item only
            self.dropped_unencodable += 1
            self._record(exc)
            return None

    def _requeue(self) -> None:
        """Put every unacknowledged message back at the front of the queue, in order."""
        self._collect_quietly()
        inflight = self._inflight
        if not inflight:
            return
        self.resent += len(inflight)
        self._retry.extendleft(reversed([message for message, _, _ in inflight]))
        inflight.clear()
        self._waiting.clear()

    def _collect_quietly(self) -> None:
        with contextlib.suppress(Exception):  # a failure being handled: re-send the rest
            self._collect()

    def _count_left(self) -> None:
        self._collect_quietly()
        self.unconfirmed_at_close += len(self._inflight)
        self.dropped_at_close += len(self._retry) + len(self._buffer)
        self._inflight.clear()
        self._waiting.clear()
        self._retry.clear()
        self._buffer.clear()

    async def _drop_connection(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            try:
                await asyncio.wait_for(nc.close(), self._connect_timeout_s)
            except Exception as exc:  # closing a broken connection: nothing to save
                log.debug("bus %s: closing the NATS connection: %r", self.name, exc)

    # ------------------------------------------------------------------ events
    def _record(self, exc: BaseException) -> None:
        self.errors += 1
        text = str(exc).strip() or type(exc).__name__
        self.last_error = f"{type(exc).__name__}: {text}".splitlines()[0]
        if self.errors <= 10 or self.errors % 1000 == 0:
            log.warning("bus %s: %s (buffered %d)", self.name, self.last_error,
                        len(self._buffer) + len(self._retry))  # fmt: skip

    async def _on_reply(self, msg: Msg) -> None:
        """Record JetStream's answer to one publish: stored, duplicate, or an error."""
        entry = self._waiting.pop(msg.subject[len(self._reply_prefix) :], None)
        if entry is None:  # an answer to a message re-queued since
            return
        data = msg.data
        if not data and msg.headers and msg.headers.get("Status") == "503":
            entry[1] = NoStreamResponseError()  # no stream takes the subject (yet)
        elif b'"error"' in data:
            entry[1] = _api_error(data)
        else:
            entry[1] = b'"duplicate"' not in data  # the server writes "duplicate": true
        wake = self._wake
        if wake is not None:
            wake.set()

    async def _on_error(self, exc: Exception) -> None:
        log.debug("bus %s: NATS client error: %r", self.name, exc)

    async def _on_change(self) -> None:
        wake = self._wake
        if wake is not None:
            wake.set()

    def __repr__(self) -> str:
        return f"<BusPublisher {self.name!r} {self.url} {self._state.value}>"


def _api_error(data: bytes) -> BaseException:
    """The APIError of an error answer (a ValueError when it is not even JSON)."""
    try:
        error: BaseException = APIError.from_error(json.loads(data)["error"])
    except Exception as exc:  # an answer we cannot read is an answer we cannot trust
        return ValueError(f"unreadable JetStream answer {data[:200]!r}: {exc!r}")
    return error


def _retryable(exc: BaseException) -> bool:
    """True unless JetStream refused this one message for good (an API error other than
    "unavailable"; a missing stream is retried: it is made again on reconnect)."""
    if isinstance(exc, NoStreamResponseError):
        return True
    if isinstance(exc, APIError):
        return exc.code in (None, 503)
    return True
