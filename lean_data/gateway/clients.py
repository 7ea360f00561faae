"""WebSocket clients of the gateway: one bounded queue and one sender task per client.

The engine hands the gateway every accepted item in its pipeline task; :meth:`FanOut.deliver`
encodes it once per wire format needed and offers the frame to each client subscribed to
its symbol, without waiting. Each :class:`Client` holds at most ``maxsize`` frames under its
overflow policy:

- ``drop_oldest``: a full queue discards its oldest frame for the new one;
- ``conflate``: the queue keeps only the latest frame per series (kind, symbol, resolution);
  a replaced frame, or the oldest series when ``maxsize`` series are held, is discarded.

Every discarded frame is counted in the client's ``dropped`` and in the gateway's total. The
client's sender task awaits each ``send_frame``: aiohttp waits for the socket
to drain once more than its write limit (64 KiB) is buffered, so a client that does not read
holds at most its queue plus about two write limits of frames, and never makes the engine or
another client wait. A client that keeps losing frames for longer than the gateway's
``max_lag_s`` is disconnected (close code 4008, see :data:`CLOSE_TOO_SLOW`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from lean_data.config import OverflowPolicy
from lean_data.errors import ConfigError
from lean_data.gateway.encode import Frame, encode, item_fields, series_key
from lean_data.models import MarketData
from lean_data.quality.levels import Verdict

__all__ = ["CLOSE_GOING_AWAY", "CLOSE_TOO_SLOW", "Client", "FanOut", "client_policy"]

CLOSE_GOING_AWAY = 1001
"""Close code when the gateway shuts down (the engine stops)."""
CLOSE_TOO_SLOW = 4008
"""Close code for a client that lost frames continuously for longer than ``max_lag_s``."""


def client_policy(value: OverflowPolicy | str) -> OverflowPolicy:
    """Return the overflow policy a gateway client may use (never BLOCK).

    Raises:
        ConfigError: an unknown policy, or ``block`` (a client must never stall the engine).
    """
    try:
        policy = OverflowPolicy(value)
    except ValueError:
        raise ConfigError(
            f"policy: expected 'drop_oldest' or 'conflate', found {value!r}"
        ) from None
    if policy is OverflowPolicy.BLOCK:
        raise ConfigError("policy: 'block' would let one websocket client stall the engine")
    return policy


class Client:
    """One websocket client: its subscriptions, bounded queue, counters and sender task.

    Args:
        ident: the client's number (unique in the gateway, shown in statistics).
        ws: the prepared websocket response.
        fmt: the wire format, ``json`` or ``msgpack``.
        policy: ``DROP_OLDEST`` or ``CONFLATE``.
        maxsize: queue bound (frames; under CONFLATE, series held).
        peer: the remote address, for statistics.
        transport: the connection's transport (write buffer statistics, abort).
    """

    def __init__(
        self,
        ident: int,
        ws: web.WebSocketResponse,
        fmt: str,
        policy: OverflowPolicy,
        maxsize: int,
        peer: str = "",
        transport: asyncio.Transport | None = None,
    ) -> None:
        if maxsize < 1:
            raise ConfigError(f"queue_size: expected >= 1 frames, found {maxsize}")
        self.ident = ident
        self.ws = ws
        self.fmt = fmt
        self.policy = policy
        self.maxsize = maxsize
        self.peer = peer
        self.transport = transport
        self.task: asyncio.Task[None] | None = None
        """The sender task (set by whoever runs :meth:`run`)."""
        self.symbols: set[str] = set()
        self.everything = False
        self._conflate = policy is OverflowPolicy.CONFLATE
        self._queue: deque[Frame] = deque()
        self._latest: OrderedDict[str, Frame] = OrderedDict()
        self._wake = asyncio.Event()
        self._closing = False
        self.queued = 0
        self.sent = 0
        self.in_flight = 0
        self.dropped = 0
        self.max_depth = 0
        self.write_buffer_max = 0
        self.behind_since = 0.0
        """Monotonic time of the first loss since the queue was last empty (0: not behind)."""
        self.close_code = 0
        self.close_reason = ""

    def __len__(self) -> int:
        return len(self._latest) if self._conflate else len(self._queue)

    def offer(self, key: str, frame: Frame) -> None:
        """Queue one frame without waiting; discard per policy when full (counted)."""
        if self._closing:
            return
        lost = False
        if self._conflate:
            latest = self._latest
            if key in latest:
                del latest[key]
                lost = True
            elif len(latest) >= self.maxsize:
                latest.popitem(last=False)
                lost = True
            latest[key] = frame
            depth = len(latest)
        else:
            queue = self._queue
            if len(queue) >= self.maxsize:
                queue.popleft()
                lost = True
            queue.append(frame)
            depth = len(queue)
        self.queued += 1
        if lost:
            self.dropped += 1
            if not self.behind_since:
                self.behind_since = time.monotonic()
        if depth > self.max_depth:
            self.max_depth = depth
        if not self._wake.is_set():
            self._wake.set()

    def _pop(self) -> Frame:
        if self._conflate:
            return self._latest.popitem(last=False)[1]
        return self._queue.popleft()

    async def run(self) -> None:
        """Send queued frames in order until :meth:`finish` and empty (the sender task).

        Ends quietly when the connection is gone.
        """
        with contextlib.suppress(ConnectionError):
            await self._send_loop()

    async def _send_loop(self) -> None:
        ws = self.ws
        pending = self._latest if self._conflate else self._queue
        pop = self._pop
        transport = self.transport
        while True:
            while pending:
                opcode, data = pop()
                self.in_flight = 1
                await ws.send_frame(data, opcode)
                self.in_flight = 0
                self.sent += 1
                if transport is not None:
                    buffered = transport.get_write_buffer_size()
                    if buffered > self.write_buffer_max:
                        self.write_buffer_max = buffered
            self.behind_since = 0.0
            self._wake.clear()
            if self._closing:
                return
            await self._wake.wait()

    def finish(self) -> None:
        """Take no more frames; the sender stops once it has sent what is queued."""
        self._closing = True
        self._wake.set()

    def abort(self) -> None:
        """Cut the connection now (a peer that does not answer the close frame)."""
        if self.transport is not None:
            self.transport.abort()

    def lag_s(self, now: float) -> float:
        """Seconds this client has been losing frames without catching up (0: it keeps up)."""
        return now - self.behind_since if self.behind_since else 0.0

    def statistics(self) -> dict[str, Any]:
        """Return a snapshot of this client's counters."""
        return {
            "id": self.ident,
            "peer": self.peer,
            "format": self.fmt,
            "policy": self.policy.value,
            "symbols": ["*"] if self.everything else sorted(self.symbols),
            "queue_depth": len(self),
            "maxsize": self.maxsize,
            "max_depth": self.max_depth,
            "queued": self.queued,
            "sent": self.sent,
            "in_flight": self.in_flight,
            "dropped": self.dropped,
            "write_buffer_max": self.write_buffer_max,
        }


class FanOut:
    """Who gets which symbol: the clients, indexed by the symbols they subscribed to."""

    def __init__(self) -> None:
        self.clients: dict[int, Client] = {}
        self._by_symbol: dict[str, set[Client]] = {}
        self._everything: set[Client] = set()
        self.items = 0
        self.frames_encoded = 0
        self.left_dropped = 0  # frames lost by clients that have gone
        self.left_sent = 0
        self.left_max_depth = 0

    def add(self, client: Client) -> None:
        """Register a connected client (it subscribes to nothing yet)."""
        self.clients[client.ident] = client

    def remove(self, client: Client) -> None:
        """Forget a client that has gone; its counters join the totals."""
        if self.clients.pop(client.ident, None) is None:
            return
        self.unsubscribe(client, ["*", *client.symbols])
        client.finish()
        self.left_dropped += client.dropped
        self.left_sent += client.sent
        self.left_max_depth = max(self.left_max_depth, client.max_depth)

    def subscribe(self, client: Client, symbols: Iterable[str]) -> None:
        """Send ``client`` the items of ``symbols`` from now on (``"*"``: every symbol)."""
        for symbol in symbols:
            if symbol == "*":
                client.everything = True
                self._everything.add(client)
            else:
                client.symbols.add(symbol)
                self._by_symbol.setdefault(symbol, set()).add(client)

    def unsubscribe(self, client: Client, symbols: Iterable[str]) -> None:
        """Stop sending ``client`` the items of ``symbols`` (``"*"``: the wildcard only)."""
        for symbol in symbols:
            if symbol == "*":
                client.everything = False
                self._everything.discard(client)
                continue
            client.symbols.discard(symbol)
            holders = self._by_symbol.get(symbol)
            if holders is not None:
                holders.discard(client)
                if not holders:
                    del self._by_symbol[symbol]

    def targets(self, symbol: str) -> set[Client]:
        """Return the clients that receive ``symbol``."""
        named = self._by_symbol.get(symbol)
        if not self._everything:
            return named or set()
        return self._everything | named if named else self._everything

    def deliver(self, feed: str, item: MarketData, verdict: Verdict, key: str = "") -> None:
        """Offer ``item`` to every client that receives its symbol (never waits).

        ``key`` is the item's :func:`~lean_data.gateway.encode.series_key` when known.
        """
        self.items += 1
        targets = self.targets(item.symbol)
        if targets:
            self.send_to(targets, item_fields(feed, item, verdict), key or series_key(item))

    def send_to(self, clients: Iterable[Client], message: dict[str, Any], key: str) -> None:
        """Encode ``message`` once per format needed and offer it to ``clients``."""
        frames: dict[str, Frame] = {}
        for client in clients:
            frame = frames.get(client.fmt)
            if frame is None:
                frame = frames[client.fmt] = encode(message, client.fmt)
                self.frames_encoded += 1
            client.offer(key, frame)

    def statistics(self) -> dict[str, Any]:
        """Totals over every client, present and gone."""
        clients = list(self.clients.values())
        return {
            "clients": len(clients),
            "items": self.items,
            "frames_encoded": self.frames_encoded,
            "sent": self.left_sent + sum(c.sent for c in clients),
            "dropped": self.left_dropped + sum(c.dropped for c in clients),
            "queue_depth": sum(len(c) for c in clients),
            "queue_depth_max": max([self.left_max_depth, *(c.max_depth for c in clients)]),
        }
