"""picows's side of :class:`~lean_data.feeds.transport.PicowsTransport`: the queue its frames
arrive in (by callback, bounded in bytes), the listener picows calls, and the error of a
connection that ended without a clean close.

The listener class is defined on first use (picows is an optional dependency: ``pip install
'lean-data[fast]'``); nothing here imports picows at import time.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from typing import Any

__all__ = ["FrameQueue", "WebSocketClosedError", "listener_type"]

_OK_CODES = (1000, 1001)


class WebSocketClosedError(Exception):
    """The connection ended without a clean close handshake (the websockets client raises
    ``ConnectionClosedError`` in the same cases).

    Attributes:
        received, sent: the close codes received and sent (None: no close frame).
        reason: the reason of the close that decided it.
    """

    def __init__(self, received: int | None, sent: int | None, reason: str) -> None:
        self.received, self.sent, self.reason = received, sent, reason
        rcvd = "no close frame received" if received is None else f"received {received}"
        super().__init__(f"{rcvd}{'' if sent is None else f'; sent {sent}'} ({reason})")

    def __repr__(self) -> str:
        return f"WebSocketClosedError({self.received!r}, {self.sent!r}, {self.reason!r})"


class FrameQueue:
    """The frames a picows connection received, bounded in bytes, and how it ended.

    picows calls :meth:`put` (through the listener) for every data frame of a socket read;
    once ``budget`` bytes wait, reading from the socket pauses until the reader has taken
    them down to a quarter (websockets' low-water mark). Fragmented messages are joined
    (at most ``max_message`` bytes, else the connection closes with 1009).
    """

    def __init__(self, budget: int, max_message: int) -> None:
        self.frames: deque[bytes] = deque()
        self.buffered = self.peak_buffered = 0
        self.budget, self.resume_at, self.max_message = budget, budget // 4, max_message
        self.received = self.pauses = self.batches = 0
        self.paused = self.disconnected = False
        self.ws: Any = None  # picows.WSTransport, set on connect
        self.fragments: list[bytes] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._gone: asyncio.Future[None] | None = None

    def put(self, payload: bytes) -> None:
        """Queue one message; wake the reader; pause reading at the budget."""
        self.frames.append(payload)
        self.received += 1
        buffered = self.buffered = self.buffered + len(payload)
        if buffered > self.peak_buffered:
            self.peak_buffered = buffered
        if buffered >= self.budget and not self.paused:
            self.paused = True
            self.pauses += 1
            self.ws.underlying_transport.pause_reading()
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def take_all(self) -> list[bytes | str]:
        """Return and forget every queued frame; resume reading if paused."""
        frames: list[bytes | str] = list(self.frames)
        self.frames.clear()
        self.batches += 1
        if self.buffered > self.peak_buffered:
            self.peak_buffered = self.buffered
        self.buffered = 0
        if self.paused:
            self.resume()
        return frames

    def resume(self) -> None:
        """Read from the socket again."""
        self.paused = False
        if not self.disconnected:
            self.ws.underlying_transport.resume_reading()

    async def wait_frames(self) -> None:
        """Wait until a frame is queued or the connection is gone."""
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        await waiter

    def gone(self) -> None:
        """The connection is closed: wake the reader and whoever waits in close()."""
        self.disconnected = True
        for future in (self._waiter, self._gone):
            if future is not None and not future.done():
                future.set_result(None)
        self._waiter = None

    async def wait_disconnected(self) -> None:
        """Wait until the connection is gone."""
        if not self.disconnected:
            self._gone = asyncio.get_running_loop().create_future()
            await self._gone

    def closed_error(self) -> WebSocketClosedError | None:
        """Return the error of an unclean end (None: clean, both ways 1000/1001)."""
        handshake = self.ws.close_handshake if self.ws is not None else None
        received = sent = None
        reason = ""
        if handshake is not None:
            if handshake.recv is not None:
                received, reason = handshake.recv.code.value, handshake.recv.reason
            if handshake.sent is not None:
                sent = handshake.sent.code.value
                reason = reason or handshake.sent.reason
        if received in _OK_CODES and (sent is None or sent in _OK_CODES):
            return None
        return WebSocketClosedError(received, sent, reason)

    def raise_unless_clean(self) -> None:
        """Raise :class:`WebSocketClosedError` unless the connection closed cleanly."""
        error = self.closed_error()
        if error is not None:
            raise error


@functools.cache
def listener_type() -> Any:
    """Return the picows listener class (defined on first use: picows is optional)."""
    import picows

    text, binary = picows.WSMsgType.TEXT, picows.WSMsgType.BINARY
    continuation, close = picows.WSMsgType.CONTINUATION, picows.WSMsgType.CLOSE
    too_big = picows.WSCloseCode.MESSAGE_TOO_BIG

    class Listener(picows.WSListener):
        """Hand each data frame to the queue; answer a close; tell the queue when gone."""

        TEXT, OK = text, picows.WSCloseCode.OK

        def __init__(self, queue: FrameQueue) -> None:
            super().__init__()
            self.queue = queue

        def on_ws_connected(self, transport: Any) -> None:
            self.queue.ws = transport

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            kind = frame.msg_type
            queue = self.queue
            if kind in (text, binary) and frame.fin:
                queue.put(frame.get_payload_as_bytes())
            elif kind in (text, binary, continuation):
                self._fragment(transport, frame)
            elif kind == close:
                if not transport.is_close_frame_sent:
                    transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()

        def _fragment(self, transport: Any, frame: Any) -> None:
            queue = self.queue
            if queue.fragments is None:
                queue.fragments = []
            queue.fragments.append(frame.get_payload_as_bytes())
            if sum(map(len, queue.fragments)) > queue.max_message:
                queue.fragments = None
                transport.send_close(too_big, b"message too big")
                transport.disconnect()
            elif frame.fin:
                parts, queue.fragments = queue.fragments, None
                queue.put(b"".join(parts))

        def on_ws_disconnected(self, transport: Any) -> None:
            self.queue.gone()

    return Listener
