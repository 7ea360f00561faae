"""BusFeed: a DataFeed that consumes what BusPublishers put on a NATS JetStream stream.

Each subscribed symbol gets one durable pull consumer (NATS 2.9 consumers take a single
filter subject) on ``<prefix>.<kind|*>.*.<symbol>``, named from ``durable`` and the symbol,
so a restarted process resumes from the consumer's acknowledged position. A message is
acknowledged only after :meth:`~lean_data.feeds.base.DataFeed.emit` returned, i.e. the
engine took the item into its inbox: a process that dies before that gets the message
again. Redelivered bars (same open time, values and revision) are dropped as duplicates
by the engine's continuity; see docs/distribution.md for exactly what is guaranteed.

A message that cannot be decoded is counted (``malformed``), reported (errors table kind
``bus_malformed``) and terminated, so it is never redelivered; the messages around it
still arrive. Unsubscribing stops the symbol's consumer but keeps it on the server: a
later subscribe resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from datetime import datetime
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from lean_data.bus.codec import decode
from lean_data.bus.subjects import filter_for, stream_name_for
from lean_data.feeds.backoff import Backoff, BackoffPolicy
from lean_data.feeds.base import DataFeed
from lean_data.models import (
    NS_PER_SECOND,
    AssetClass,
    MarketData,
    Resolution,
    Tick,
    TradeBar,
    datetime_to_ns,
    ns_to_datetime,
)

__all__ = ["BusFeed"]

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_RETRY = BackoffPolicy(base_s=0.2, cap_s=5.0)


class BusFeed(DataFeed):
    """Consume items published by :class:`~lean_data.bus.BusPublisher` (a live feed).

    Args:
        name: the feed's name in the engine.
        url: the NATS server (the client reconnects on its own, forever).
        prefix: the publishers' subject prefix.
        stream: the stream's name (default: the prefix upper-cased, like the publisher).
        durable: base name of the durable consumers (default: ``name``); one consumer per
            symbol is named ``<durable>_<symbol>_<hash>``.
        start_time: where a *new* consumer starts: None for everything the stream holds,
            else a time (datetime or ns) of publication. An existing consumer resumes
            from its own position whatever this says.
        kind: ``"bar"``, ``"quote"`` or ``"tick"`` to consume one kind; None for all.
        symbols, asset_classes: what the feed serves (as :class:`DataFeed`).
        batch: messages asked for per fetch.
        fetch_timeout_s: how long one fetch waits for messages.
        ack_wait_s: a message not acknowledged by then is redelivered (a new consumer's).
        history_timeout_s: the deadline of one :meth:`get_historical_data` read.
    """

    live = True

    def __init__(
        self,
        name: str,
        url: str = "nats://127.0.0.1:4222",
        *,
        prefix: str = "lean",
        stream: str | None = None,
        durable: str | None = None,
        start_time: datetime | int | None = None,
        kind: str | None = None,
        symbols: list[str] | None = None,
        asset_classes: frozenset[AssetClass] | None = None,
        batch: int = 256,
        fetch_timeout_s: float = 1.0,
        ack_wait_s: float = 30.0,
        history_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(name, symbols=symbols, asset_classes=asset_classes)
        filter_for(prefix, "x", kind=kind)  # checks prefix and kind now, not at subscribe
        self.url = url
        self.prefix = prefix
        self.stream = stream or stream_name_for(prefix)
        self.durable = _NAME_UNSAFE.sub("_", durable or name)
        self.start_ns = (
            datetime_to_ns(start_time) if isinstance(start_time, datetime) else (start_time)
        )
        self.kind = kind
        self.batch = batch
        self.fetch_timeout_s = fetch_timeout_s
        self.ack_wait_s = ack_wait_s
        self.history_timeout_s = history_timeout_s
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._consumers: dict[str, asyncio.Task[Any]] = {}
        self.received = 0
        self.redelivered = 0
        self.malformed = 0
        self.acked = 0
        self.reconnects = 0
        self.rewound = 0

    # ------------------------------------------------------------------ DataFeed
    async def connect(self) -> bool:
        """Connect to NATS (the client then reconnects by itself after a loss)."""
        self._nc = await nats.connect(
            self.url,
            name=f"lean_data:{self.name}",
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=2,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        self._js = self._nc.jetstream()
        return True

    async def disconnect(self) -> None:
        """Close the connection (the durable consumers stay on the server)."""
        nc, self._nc, self._js = self._nc, None, None
        self._consumers.clear()
        if nc is not None and not nc.is_closed:
            await nc.close()

    async def subscribe(self, symbol: str) -> bool:
        """Start consuming ``symbol`` from its durable consumer (made when missing)."""
        if symbol not in self._consumers:
            self._consumers[symbol] = self.spawn(self._consume(symbol), name=f"bus:{symbol}")
        return True

    async def unsubscribe(self, symbol: str) -> bool:
        """Stop consuming ``symbol``; its durable consumer keeps its position for later."""
        task = self._consumers.pop(symbol, None)
        if task is None:
            return False
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return True

    async def get_historical_data(
        self,
        symbol: str,
        start_date: datetime | int,
        end_date: datetime | int,
        resolution: Resolution,
    ) -> list[MarketData]:
        """Return ``symbol``'s bars (ticks for TICK) with open time in [start, end) that the
        stream still holds, read by an ephemeral consumer from the first message published
        at or after ``start`` (a bar is published after it opens), one version per open
        time (the highest revision).

        The stream keeps ``max_age_s``/``max_bytes`` worth of messages; the engine's
        storage link asks storage first and this feed only for what storage does not
        cover, so older data comes from storage.
        """
        js = self._js
        if js is None:
            return []
        start = start_date if isinstance(start_date, int) else datetime_to_ns(start_date)
        end = end_date if isinstance(end_date, int) else datetime_to_ns(end_date)
        kind = "tick" if resolution.is_tick else "bar"
        subject = filter_for(self.prefix, symbol, kind=kind)
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=ns_to_datetime(max(0, start - 60 * NS_PER_SECOND)),  # clock skew
            ack_policy=AckPolicy.NONE,
            inactive_threshold=max(5.0, self.history_timeout_s),
            mem_storage=True,
        )
        try:
            async with asyncio.timeout(self.history_timeout_s):
                items = await self._read_window(js, subject, config)
        except (TimeoutError, NotFoundError) as exc:
            self.report_error("bus_history", f"{symbol} [{start}, {end}): {exc!r}", symbol=symbol)
            return []
        return _window(items, symbol, start, end, resolution)

    async def _read_window(
        self, js: JetStreamContext, subject: str, config: ConsumerConfig
    ) -> list[MarketData]:
        psub = await js.pull_subscribe(subject, stream=self.stream, config=config)
        items: list[MarketData] = []
        consumer = ""
        try:
            info = await psub.consumer_info()
            consumer, left = info.name, info.num_pending or 0
            while left > 0:
                for msg in await psub.fetch(min(left, 1024), timeout=self.history_timeout_s):
                    left -= 1
                    try:
                        items.append(decode(msg.data)[1])
                    except ValueError as exc:
                        self.malformed += 1
                        self.report_error("bus_malformed", f"{msg.subject}: {exc}")
        finally:
            await psub.unsubscribe()
            try:
                if consumer:
                    await js.delete_consumer(self.stream, consumer)
            except Exception:  # ephemeral: the server removes it when inactive anyway
                pass
        return items

    def get_connection_status(self) -> dict[str, Any]:
        """The base snapshot plus the bus counters."""
        status = super().get_connection_status()
        status.update(
            received=self.received,
            redelivered=self.redelivered,
            malformed=self.malformed,
            acked=self.acked,
            reconnects=self.reconnects,
            rewound=self.rewound,
            consumers=sorted(self._consumers),
        )
        return status

    # ------------------------------------------------------------------ consuming
    def consumer_name(self, symbol: str) -> str:
        """Return the durable consumer name of ``symbol`` (stable across restarts)."""
        digest = hashlib.sha1(f"{self.kind}|{symbol}".encode()).hexdigest()[:8]
        return f"{self.durable}_{_NAME_UNSAFE.sub('_', symbol)}_{digest}"

    async def _consume(self, symbol: str) -> None:
        """Fetch, emit, wait until the engine processed them, then ack, in order, until
        cancelled; retry what fails."""
        psub = await self._bind(symbol)
        backoff = Backoff(_RETRY)
        try:
            while True:
                try:
                    msgs = await psub.fetch(self.batch, timeout=self.fetch_timeout_s)
                except (NatsTimeoutError, TimeoutError):
                    continue  # nothing new
                except Exception as exc:  # reconnecting, a server hiccup: report, retry
                    self.report_error("bus_fetch", f"{symbol}: {exc!r}", symbol=symbol)
                    await asyncio.sleep(backoff.next_delay())
                    continue
                backoff.reset()
                taken = [msg for msg in msgs if await self._deliver(symbol, msg)]
                if taken:
                    await self.delivered()  # processed by the engine: now they may go
                    for msg in taken:
                        await msg.ack()
                    self.acked += len(taken)
        finally:  # the client's inbox only: the durable consumer stays on the server
            nc = self._nc
            if nc is not None and not nc.is_closed:
                with contextlib.suppress(Exception):
                    await psub.unsubscribe()

    async def _bind(self, symbol: str) -> JetStreamContext.PullSubscription:
        """Return the pull subscription of ``symbol``'s durable consumer, made when missing;
        waits (reporting) while the stream does not exist yet."""
        durable = self.consumer_name(symbol)
        subject = filter_for(self.prefix, symbol, kind=self.kind)
        backoff = Backoff(_RETRY)
        missing = False
        while True:
            js = self._js
            if js is None:
                raise ConnectionError(f"feed {self.name!r} is not connected")
            config = ConsumerConfig(
                durable_name=durable,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self.ack_wait_s,
                max_ack_pending=max(1_000, 4 * self.batch),
                deliver_policy=DeliverPolicy.ALL,
            )
            if self.start_ns is not None:
                config.deliver_policy = DeliverPolicy.BY_START_TIME
                config.opt_start_time = ns_to_datetime(self.start_ns)
            try:
                psub = await js.pull_subscribe(
                    subject, durable=durable, stream=self.stream, config=config
                )
                return await self._rewound(js, psub, subject, config)
            except NotFoundError:  # no stream yet: no publisher ran; said once, then waits
                if not missing:
                    missing = True
                    self.report_error(
                        "bus_no_stream",
                        f"{symbol}: stream {self.stream} does not exist yet; waiting for a "
                        f"publisher (prefix {self.prefix!r}) to create it",
                        symbol=symbol,
                    )
                await asyncio.sleep(backoff.next_delay())
            except Exception as exc:  # NATS away, a server hiccup
                self.report_error("bus_subscribe", f"{symbol} on {self.stream}: {exc!r}",
                                  symbol=symbol)  # fmt: skip
                await asyncio.sleep(backoff.next_delay())

    async def _rewound(
        self,
        js: JetStreamContext,
        psub: JetStreamContext.PullSubscription,
        subject: str,
        config: ConsumerConfig,
    ) -> JetStreamContext.PullSubscription:
        """Start the durable consumer again right after its last acknowledged message when
        an earlier process left messages unacknowledged (it took them and died before its
        engine processed them): they come now, in order, instead of after ``ack_wait_s``
        behind newer ones. A durable name belongs to one consuming process."""
        info = await psub.consumer_info()
        if not info.num_ack_pending:
            return psub
        floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
        durable = config.durable_name
        assert durable is not None
        await psub.unsubscribe()
        await js.delete_consumer(self.stream, durable)
        config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = (floor or 0) + 1
        config.opt_start_time = None
        self.rewound += info.num_ack_pending
        return await js.pull_subscribe(subject, durable=durable, stream=self.stream, config=config)

    async def _deliver(self, symbol: str, msg: Msg) -> bool:
        """Emit one message's item; False for a malformed one (terminated here)."""
        self.received += 1
        meta = msg.metadata
        if meta.num_delivered > 1:
            self.redelivered += 1
        try:
            _, item, _ = decode(msg.data)
            if item.symbol != symbol:
                raise ValueError(f"carries symbol {item.symbol!r}, its subject names {symbol!r}")
        except ValueError as exc:
            self.malformed += 1
            self.report_error(
                "bus_malformed",
                f"{msg.subject} stream seq {meta.sequence.stream}: {exc}",
                symbol=symbol,
            )
            await msg.term()
            return False
        await self.emit(item)
        return True

    async def _on_error(self, exc: Exception) -> None:
        self.last_error = f"nats: {exc!r}"

    async def _on_disconnected(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            self.report_error("bus_disconnected", f"lost the connection to {self.url}")

    async def _on_reconnected(self) -> None:
        self.reconnects += 1


def _window(
    items: list[MarketData], symbol: str, start: int, end: int, resolution: Resolution
) -> list[MarketData]:
    """Keep ``symbol``'s items of the resolution in [start, end), the newest revision of
    each bar, in time order."""
    if resolution.is_tick:
        ticks = [x for x in items if isinstance(x, Tick) and x.symbol == symbol]
        return sorted((x for x in ticks if start <= x.ts_event < end), key=lambda x: x.ts_event)
    best: dict[int, TradeBar] = {}
    for x in items:
        if (
            isinstance(x, TradeBar) and x.symbol == symbol and x.resolution is resolution
            and start <= x.ts_event < end
        ):  # fmt: skip
            seen = best.get(x.ts_event)
            if seen is None or x.revision >= seen.revision:
                best[x.ts_event] = x
    return [best[ts] for ts in sorted(best)]
