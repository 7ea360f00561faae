"""Websocket transports of the streaming feeds: one small interface, two clients.

A feed opens a :class:`WebSocketTransport` with :func:`open_websocket`, sends text, iterates
frames (``async for raw in ws``; or :meth:`~WebSocketTransport.recv_batch`: every frame one
socket read brought, and :meth:`~WebSocketTransport.take_ready`: those already there, without
a coroutine) and closes it. Two implementations:

- ``"websockets"``: the ``websockets`` asyncio client (always installed, the fallback).
- ``"picows"``: picows, a Cython client (``pip install 'lean-data[fast]'``). Its frames
  arrive by callback; :class:`PicowsTransport` queues them (:mod:`lean_data.feeds.picows_queue`:
  the queue, the listener picows calls, the error of an unclean close) and pauses reading from the
  socket once ``max_queue * max_message_bytes`` bytes wait for the reader (websockets'
  bound: ``max_queue`` messages of at most that size); TCP backpressure reaches the venue.

``transport="auto"`` takes picows when it imports, else websockets; the environment variable
``LEAN_DATA_WS_TRANSPORT`` (``websockets`` or ``picows``) overrides ``auto`` without a code
change. Both behave alike for a feed: text frames arrive as ``str`` (websockets) or UTF-8
``bytes`` (picows: one not UTF-8 fails JSON decoding, counted as malformed), binary frames
as ``bytes``; reading ends after a clean close (1000/1001 both ways) and raises otherwise
(websockets' ``ConnectionClosedError``, :class:`WebSocketClosedError`: the same retryable
feed errors by :mod:`lean_data.feeds.translate`). Both ping every ``ping_interval_s`` and
drop a peer silent for ``ping_timeout_s`` more; neither compresses.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from lean_data.errors import ConfigError
from lean_data.feeds.picows_queue import FrameQueue, WebSocketClosedError, listener_type

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = [
    "TRANSPORTS",
    "PicowsTransport",
    "TransportName",
    "TransportStats",
    "WebSocketClosedError",
    "WebSocketOptions",
    "WebSocketTransport",
    "WebsocketsTransport",
    "open_websocket",
    "resolve_transport",
]

TransportName = Literal["websockets", "picows"]
TRANSPORTS: tuple[TransportName, ...] = ("websockets", "picows")
ENV_VAR = "LEAN_DATA_WS_TRANSPORT"


def resolve_transport(name: str) -> TransportName:
    """Return the transport ``name`` stands for (``"auto"``: picows when installed).

    Raises:
        ConfigError: an unknown name, or ``"picows"`` without picows installed.
    """
    if name == "auto":
        name = os.environ.get(ENV_VAR, "") or (
            "picows" if importlib.util.find_spec("picows") is not None else "websockets"
        )
    if name == "websockets":
        return "websockets"
    if name == "picows":
        if importlib.util.find_spec("picows") is None:
            raise ConfigError("transport 'picows': not installed; pip install 'lean-data[fast]'")
        return "picows"
    raise ConfigError(f"transport: expected 'auto', 'websockets' or 'picows', found {name!r}")


@dataclass(frozen=True, slots=True)
class WebSocketOptions:
    """How to open and bound one websocket connection.

    Attributes:
        open_timeout_s: limit of the TCP connect plus the upgrade handshake.
        max_message_bytes: largest message accepted; a larger one closes with 1009.
        max_queue: messages buffered ahead of the reader (websockets); picows pauses at
            ``max_queue * max_message_bytes`` bytes (past it by at most the socket read
            that crossed it, itself at most the kernel's receive buffer).
        ping_interval_s: seconds between keepalive pings (picows: of silence).
        ping_timeout_s: seconds to wait for the pong before the connection is dropped.
        close_timeout_s: seconds :meth:`WebSocketTransport.close` waits for the handshake.
    """

    open_timeout_s: float = 10.0
    max_message_bytes: int = 1024 * 1024
    max_queue: int = 16
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    close_timeout_s: float = 1.0

    @property
    def buffer_bytes(self) -> int:
        """The bytes of frames buffered ahead of the reader before reading pauses."""
        return self.max_queue * self.max_message_bytes


@dataclass(frozen=True, slots=True)
class TransportStats:
    """A snapshot of one connection's counters (None: the client does not expose it).

    Attributes:
        transport: ``"websockets"`` or ``"picows"``.
        frames: data frames (messages) received.
        buffered_frames, buffered_bytes: received, not yet taken by the reader.
        peak_buffered_bytes: the most bytes ever waiting for the reader.
        read_pauses: times reading from the socket was paused for the reader.
        batches: :meth:`~WebSocketTransport.recv_batch` calls that returned frames
            (``frames / batches`` is the mean number of frames handed over per read).
    """

    transport: TransportName
    frames: int | None
    buffered_frames: int | None
    buffered_bytes: int | None
    peak_buffered_bytes: int | None
    read_pauses: int | None
    batches: int | None = None


class WebSocketTransport(ABC):
    """One open websocket connection, as a feed uses it.

    Iterate it for one frame at a time; the iteration ends after a clean close and raises
    (:class:`WebSocketClosedError` or the client's own error) after any other.
    """

    name: ClassVar[TransportName]

    @abstractmethod
    async def send(self, text: str) -> None:
        """Send one text frame."""

    @abstractmethod
    async def close(self) -> None:
        """Close the connection (a close handshake, bounded); idempotent."""

    @abstractmethod
    async def recv_batch(self) -> list[bytes | str]:
        """Wait for frames; return every frame received and not yet taken (one socket
        read's worth or more, at least one). Returns ``[]`` after a clean close.

        Raises:
            WebSocketClosedError: (picows) the connection ended without a clean close.
        """

    def take_ready(self) -> list[bytes | str] | None:
        """Return every frame already received and not yet taken, without waiting; None
        when none is (then :meth:`recv_batch` waits for one). A read loop under load takes
        its frames this way with no coroutine per read. This base has nothing to give: a
        client that hands frames out only when awaited (websockets) keeps it."""
        return None

    @abstractmethod
    def __aiter__(self) -> Any:
        """Return an async iterator of frames (``bytes`` or ``str``)."""

    @property
    @abstractmethod
    def transport(self) -> asyncio.Transport:
        """The underlying asyncio transport (``is_reading()`` shows backpressure)."""

    @abstractmethod
    def statistics(self) -> TransportStats:
        """Return a snapshot of this connection's counters."""


async def open_websocket(
    url: str, options: WebSocketOptions, transport: str = "auto"
) -> WebSocketTransport:
    """Open a websocket to ``url`` with the client ``transport`` names.

    Raises:
        ConfigError: see :func:`resolve_transport`.
        TimeoutError: the connection did not open within ``options.open_timeout_s``.
        OSError, and the client's handshake errors: see :mod:`lean_data.feeds.translate`.
    """
    if resolve_transport(transport) == "picows":
        return await PicowsTransport.open(url, options)
    return await WebsocketsTransport.open(url, options)


# ----------------------------------------------------------------------------- websockets
class WebsocketsTransport(WebSocketTransport):
    """The ``websockets`` asyncio client (it bounds its queue by ``max_queue`` messages)."""

    name: ClassVar[TransportName] = "websockets"

    def __init__(self, connection: ClientConnection) -> None:
        from websockets.exceptions import ConnectionClosedOK

        self._ws = connection
        self._closed_ok = ConnectionClosedOK  # imported once, caught per frame

    @classmethod
    async def open(cls, url: str, options: WebSocketOptions) -> WebsocketsTransport:
        """Connect; see :func:`open_websocket`."""
        from websockets.asyncio.client import connect

        connection = await connect(
            url,
            open_timeout=options.open_timeout_s,
            close_timeout=options.close_timeout_s,
            max_size=options.max_message_bytes,
            compression=None,  # deflate would defeat the buffer bound (see StreamingFeed)
            max_queue=options.max_queue,
            ping_interval=options.ping_interval_s,
            ping_timeout=options.ping_timeout_s,
        )
        return cls(connection)

    async def send(self, text: str) -> None:
        """Send one text frame."""
        await self._ws.send(text)

    async def close(self) -> None:
        """Close the connection; idempotent."""
        await self._ws.close()

    async def recv_batch(self) -> list[bytes | str]:
        """Return the next frame as a list of one (websockets hands out one at a time)."""
        try:
            return [await self._ws.recv()]
        except self._closed_ok:
            return []

    def __aiter__(self) -> Any:
        """Iterate the client's frames directly (no extra layer per frame)."""
        return self._ws.__aiter__()

    @property
    def transport(self) -> asyncio.Transport:
        """The underlying asyncio transport."""
        return self._ws.transport

    def statistics(self) -> TransportStats:
        """Counters the websockets client does not expose are None."""
        return TransportStats(self.name, None, None, None, None, None)


# ----------------------------------------------------------------------------- picows
class PicowsTransport(WebSocketTransport):
    """picows (Cython): frames queued by callback, reading paused at the byte budget."""

    name: ClassVar[TransportName] = "picows"

    def __init__(self, ws: Any, listener: FrameQueue, close_timeout_s: float) -> None:
        self._ws = ws  # picows.WSTransport
        self._listener = listener
        self._close_timeout_s = close_timeout_s

    @classmethod
    async def open(cls, url: str, options: WebSocketOptions) -> PicowsTransport:
        """Connect; see :func:`open_websocket`."""
        import picows

        queue = FrameQueue(options.buffer_bytes, options.max_message_bytes)
        async with asyncio.timeout(options.open_timeout_s):
            ws, _ = await picows.ws_connect(
                lambda: listener_type()(queue),
                url,
                websocket_handshake_timeout=options.open_timeout_s,
                enable_auto_ping=True,
                auto_ping_idle_timeout=options.ping_interval_s,
                auto_ping_reply_timeout=min(options.ping_timeout_s, options.ping_interval_s),
                max_frame_size=options.max_message_bytes,
                max_redirects=0,
                logger_name="lean_data",
            )
        return cls(ws, queue, options.close_timeout_s)

    async def send(self, text: str) -> None:
        """Send one text frame (written to the socket's buffer); WebSocketClosedError when
        the connection is closing or closed."""
        ws = self._ws
        if ws.is_disconnected or ws.is_close_frame_sent:
            raise self._listener.closed_error() or WebSocketClosedError(None, None, "closing")
        ws.send(listener_type().TEXT, text.encode())

    async def close(self) -> None:
        """Send a close frame, wait for the peer's (bounded), disconnect; idempotent."""
        ws = self._ws
        if ws.is_disconnected:
            return
        if not ws.is_close_frame_sent:
            ws.send_close(listener_type().OK)
        if self._listener.paused:  # the peer's close frame waits behind unread data
            self._listener.resume()
        try:
            async with asyncio.timeout(self._close_timeout_s):
                await self._listener.wait_disconnected()
        except TimeoutError:
            ws.disconnect(False)

    async def recv_batch(self) -> list[bytes | str]:
        """Return every frame already received (waiting for one if none is)."""
        queue = self._listener
        while not queue.frames:
            if queue.disconnected:
                queue.raise_unless_clean()
                return []
            await queue.wait_frames()
        return queue.take_all()

    def take_ready(self) -> list[bytes | str] | None:
        """Return every frame already received (None when none is), without waiting."""
        queue = self._listener
        return queue.take_all() if queue.frames else None

    def __aiter__(self) -> PicowsTransport:
        return self

    async def __anext__(self) -> bytes:
        queue = self._listener
        frames = queue.frames
        while not frames:
            if queue.disconnected:
                queue.raise_unless_clean()
                raise StopAsyncIteration
            await queue.wait_frames()
        raw = frames.popleft()
        queue.buffered -= len(raw)
        if queue.paused and queue.buffered <= queue.resume_at:
            queue.resume()
        return raw

    @property
    def transport(self) -> asyncio.Transport:
        """The underlying asyncio transport."""
        transport: asyncio.Transport = self._ws.underlying_transport
        return transport

    def statistics(self) -> TransportStats:
        """Frames received, what waits for the reader, read pauses, batches taken."""
        q = self._listener
        return TransportStats(
            self.name, q.received, len(q.frames), q.buffered, q.peak_buffered, q.pauses, q.batches
        )
