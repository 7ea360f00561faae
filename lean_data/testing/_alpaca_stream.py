"""The stream side of the Alpaca loopback server: websocket sessions and the shared timeline.

:class:`AlpacaStreamServer` serves the stream endpoints (auth, subscriptions, replaying the
timeline with faults); :class:`~lean_data.testing.alpaca.AlpacaLoopbackServer` adds the
REST bars. The protocol is described in :mod:`lean_data.testing.alpaca`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from functools import partial
from http import HTTPStatus
from typing import Any

import msgpack
import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from lean_data.models import QuoteBar, Tick, TradeBar
from lean_data.testing._alpaca_data import alpaca_message
from lean_data.testing._faults import BinaryFramePlanner, FramePlanner, ServerFaults
from lean_data.testing._rest import LoopbackServers
from lean_data.wire.alpaca import (
    CHANNEL_OF_TYPE,
    CRYPTO_CHANNELS,
    STOCK_CHANNELS,
    ns_to_rfc3339,
    rfc3339_to_ns,
)

__all__ = ["STREAM_PATHS", "AlpacaStreamServer", "TimelineItem"]

logger = logging.getLogger(__name__)

STREAM_PATHS: Mapping[str, str] = {
    "/v2/iex": "iex",
    "/v2/sip": "sip",
    "/v2/delayed_sip": "delayed_sip",
    "/v2/test": "test",
    "/v1beta3/crypto/us": "crypto",
}
"""Stream path -> feed name (the names ``plan_feeds`` uses)."""

TimelineItem = TradeBar | QuoteBar | Tick | Mapping[str, Any]
"""A model object (see :func:`alpaca_message`) or an Alpaca message dict (``t`` int ns or
RFC-3339 text)."""

_MSGPACK = "application/msgpack"
_UNKNOWN_TYPE = "loopbackUnknown"  # a T Alpaca never sends


def _message(item: TimelineItem) -> dict[str, Any]:
    if isinstance(item, TradeBar | QuoteBar | Tick):
        return alpaca_message(item)
    message = dict(item)
    stamp = message.get("t")
    if isinstance(stamp, str):
        message["t"] = rfc3339_to_ns(stamp)
    return message


def _is_data(message: Mapping[str, Any]) -> bool:
    return message.get("T") in CHANNEL_OF_TYPE and isinstance(message.get("S"), str)


class _Codec:
    """Encode arrays of messages for one connection: msgpack bytes or JSON text."""

    def __init__(self, binary: bool) -> None:
        self.binary = binary

    def encode(self, messages: Sequence[Mapping[str, Any]]) -> bytes | str:
        return self.pack(messages) if self.binary else self.dumps(messages)

    def pack(self, messages: Sequence[Mapping[str, Any]]) -> bytes:
        packed: bytes = msgpack.packb([_stamped(m, _timestamp) for m in messages])
        return packed

    def dumps(self, messages: Sequence[Mapping[str, Any]]) -> str:
        return orjson.dumps([_stamped(m, ns_to_rfc3339) for m in messages]).decode()


def _stamped(message: Mapping[str, Any], convert: Callable[[int], Any]) -> Mapping[str, Any]:
    stamp = message.get("t")
    return {**message, "t": convert(stamp)} if isinstance(stamp, int) else message


def _timestamp(ns: int) -> Any:
    return msgpack.Timestamp.from_unix_nano(ns)


def _decode_client(raw: bytes | str) -> Any:
    """Decode a client message (binary msgpack, text JSON); raise ValueError if it fails."""
    if isinstance(raw, bytes):
        try:
            return msgpack.unpackb(raw)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise ValueError(str(exc)) from None
    return orjson.loads(raw)


# --- websocket sessions ------------------------------------------------------------------


class _Session:
    """One client connection: a receive loop (auth, subscriptions) and a send loop (data)."""

    def __init__(self, server: AlpacaStreamServer, ws: ServerConnection, feed: str) -> None:
        self.server, self.ws, self.feed = server, ws, feed
        headers = ws.request.headers if ws.request is not None else None
        content_type = headers.get("Content-Type", "") if headers is not None else ""
        binary = content_type.partition(";")[0].strip().lower() == _MSGPACK
        self.codec = _Codec(binary)
        self.planner: FramePlanner | BinaryFramePlanner = (
            BinaryFramePlanner(server.faults) if binary else FramePlanner(server.faults)
        )
        names = CRYPTO_CHANNELS if feed == "crypto" else STOCK_CHANNELS
        self.channels: dict[str, dict[str, None]] = {name: {} for name in names}
        self.header_keys = (
            (headers.get("APCA-API-KEY-ID"), headers.get("APCA-API-SECRET-KEY"))
            if headers is not None and "APCA-API-KEY-ID" in headers
            else None
        )
        self.authenticated = asyncio.Event()
        self.cursor = server._cursor if server.resume else 0
        self.silent = False
        self.wake = asyncio.Event()

    async def run(self) -> None:
        try:
            await self._control({"T": "success", "msg": "connected"})
            if self.header_keys is not None and not await self._auth(*self.header_keys):
                return
            async with asyncio.TaskGroup() as group:
                sender = group.create_task(self._send_loop())
                await self._receive_loop()
                sender.cancel()
        except ConnectionClosed:
            pass

    # receiving

    async def _receive_loop(self) -> None:
        timeout = self.server.auth_timeout
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while True:
            try:
                if deadline is not None and not self.authenticated.is_set():
                    async with asyncio.timeout_at(deadline):
                        raw = await self.ws.recv()
                else:
                    raw = await self.ws.recv()
            except TimeoutError:
                await self._fatal(404, "auth timeout")
                return
            except ConnectionClosed:
                return
            if not await self._on_message(raw):
                return

    async def _on_message(self, raw: bytes | str) -> bool:
        """Answer one client message; False when the connection was closed."""
        try:
            request = _decode_client(raw)
        except ValueError:
            self.server.received.append(raw)
            await self._error(400, "invalid syntax")
            return True
        self.server.received.append(request)
        action = request.get("action") if isinstance(request, dict) else None
        if action == "auth":
            if self.authenticated.is_set():
                await self._error(403, "already authenticated")
                return True
            return await self._auth(request.get("key"), request.get("secret"))
        if action in ("subscribe", "unsubscribe"):
            await self._subscription(action, request)
            return True
        await self._error(400, "invalid syntax")
        return True

    async def _auth(self, key: object, secret: object) -> bool:
        server = self.server
        if key != server.key or secret != server.secret:
            return await self._fatal(402, "auth failed")
        if server.faults.refuse_concurrent and any(
            session.authenticated.is_set() for session in server._sessions if session is not self
        ):
            logger.debug("loopback fault: refusing connection %d", server.connections)
            return await self._fatal(406, "connection limit exceeded")
        if server.plan_feeds is not None and self.feed not in server.plan_feeds:
            return await self._fatal(409, "insufficient subscription")
        await self._control({"T": "success", "msg": "authenticated"})
        self.authenticated.set()
        return True

    async def _subscription(self, action: str, request: dict[str, Any]) -> None:
        if not self.authenticated.is_set():
            await self._error(401, "not authenticated")
            return
        changes = {key: value for key, value in request.items() if key != "action"}
        if not all(
            key in self.channels
            and isinstance(value, list)
            and all(isinstance(symbol, str) for symbol in value)
            for key, value in changes.items()
        ):
            await self._error(400, "invalid syntax")
            return
        plan = self.server.plan_channels
        if plan is not None and any(key not in plan for key in changes):
            await self._error(409, "insufficient subscription")
            return
        updated = self._apply(action, changes)
        limit = self.server.symbol_limit
        symbols = {s for names in updated.values() for s in names if s != "*"}
        if limit is not None and len(symbols) > limit:
            await self._error(405, "symbol limit exceeded")
            return
        self.channels = updated
        await self._control({"T": "subscription", **{k: list(v) for k, v in updated.items()}})
        self.wake.set()  # after the ack, so data never precedes it

    def _apply(self, action: str, changes: Mapping[str, list[str]]) -> dict[str, dict[str, None]]:
        updated = {name: dict(symbols) for name, symbols in self.channels.items()}
        for channel, symbols in changes.items():
            targets = [channel]
            if channel == "trades" and self.feed != "crypto":
                targets += ["corrections", "cancelErrors"]
            for target in targets:
                for symbol in symbols:
                    if action == "subscribe":
                        updated[target][symbol] = None
                    else:
                        updated[target].pop(symbol, None)
        return updated

    async def _error(self, code: int, msg: str) -> None:
        await self._control({"T": "error", "code": code, "msg": msg})

    async def _fatal(self, code: int, msg: str) -> bool:
        """Send an error frame and close the connection; return False."""
        await self._error(code, msg)
        await self.ws.close()
        return False

    async def _control(self, message: Mapping[str, Any]) -> None:
        if not self.silent:
            await self.ws.send(self.codec.encode([message]))

    # sending

    async def _send_loop(self) -> None:
        try:
            await self.authenticated.wait()
            if await self._act():
                return
            while True:
                self.wake.clear()  # before looking, so a push while we write is not missed
                batch = self._next_batch()
                if batch is None:
                    if await self._write(self.planner.flush()):
                        return
                    await self.wake.wait()
                    continue
                if await self._write(self._plan(batch)):
                    return
                if self.server.frame_interval:
                    await asyncio.sleep(self.server.frame_interval)
        except ConnectionClosed:
            return

    def _plan(self, batch: list[dict[str, Any]]) -> Sequence[bytes | str]:
        self.planner.faults = self.server.faults
        unknown = [{"T": _UNKNOWN_TYPE, "S": str(batch[0].get("S", ""))}]
        codec = self.codec
        if isinstance(self.planner, BinaryFramePlanner):
            return self.planner.feed(codec.pack(batch), partial(codec.pack, unknown))
        return self.planner.feed(codec.dumps(batch), partial(codec.dumps, unknown))

    def _next_batch(self) -> list[dict[str, Any]] | None:
        timeline, server = self.server._timeline, self.server
        if not any(self.channels.values()):
            return None
        batch: list[dict[str, Any]] = []
        while self.cursor < len(timeline) and len(batch) < server.batch_size:
            message = timeline[self.cursor]
            if not _is_data(message):
                if batch:
                    break
                self._advance()
                return [message]
            self._advance()
            symbols = self.channels.get(CHANNEL_OF_TYPE[message["T"]])
            if symbols and ("*" in symbols or message["S"] in symbols):
                batch.append(message)
        return batch or None

    def _advance(self) -> None:
        self.cursor += 1
        self.server._cursor = max(self.server._cursor, self.cursor)

    async def _write(self, frames: Sequence[bytes | str]) -> bool:
        for frame in frames:
            await self.ws.send(frame)
        return await self._act()

    async def _act(self) -> bool:
        """Carry out a drop or silence the planner asked for; True when sending is over."""
        self.planner.faults = self.server.faults  # a test may have replaced them
        stop = self.planner.check()
        if stop:
            logger.debug("loopback fault: %s after %d frames", stop, self.planner.written)
        if stop == "drop":
            await self.drop(self.server.faults.drop_close_code)
        elif stop == "silence":
            self.silent = True
        return bool(stop)

    async def drop(self, code: int | None, reason: str = "loopback fault: drop") -> None:
        if code is None:
            self.ws.transport.abort()
        else:
            await self.ws.close(code, reason)


class AlpacaStreamServer(LoopbackServers):
    """The stream endpoints of :class:`~lean_data.testing.alpaca.AlpacaLoopbackServer`.

    Takes its stream arguments (``timeline``, ``key``, ``secret``, ``batch_size``,
    ``frame_interval``, ``resume``, ``faults``, ``plan_feeds``, ``plan_channels``,
    ``symbol_limit``, ``auth_timeout``, ``ping_interval``) and its ``received``,
    ``connections`` attributes, documented there.
    """

    def __init__(
        self,
        timeline: Iterable[TimelineItem] = (),
        *,
        key: str = "key",
        secret: str = "secret",
        batch_size: int = 16,
        frame_interval: float | None = None,
        resume: bool = False,
        faults: ServerFaults | None = None,
        plan_feeds: Collection[str] | None = None,
        plan_channels: Collection[str] | None = None,
        symbol_limit: int | None = None,
        auth_timeout: float | None = 10.0,
        ping_interval: float | None = 20.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._timeline = [_message(item) for item in timeline]
        self._cursor = 0
        self.key, self.secret = key, secret
        self.batch_size, self.frame_interval, self.resume = batch_size, frame_interval, resume
        self.faults = faults if faults is not None else ServerFaults()
        self.plan_feeds, self.plan_channels = plan_feeds, plan_channels
        self.symbol_limit, self.auth_timeout = symbol_limit, auth_timeout
        self._ping_interval = ping_interval
        self.received: list[Any] = []
        self.connections = 0
        self._sessions: set[_Session] = set()

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The timeline as Alpaca messages (``t`` int ns), in replay order."""
        return list(self._timeline)

    @property
    def open_connections(self) -> int:
        """Websocket connections currently being served."""
        return len(self._sessions)

    def stream_url(self, feed: str = "iex") -> str:
        """Return the stream URL of a feed (``"iex"``, ``"sip"``, ``"test"``, ``"crypto"``)."""
        for path, name in STREAM_PATHS.items():
            if name == feed:
                return self.ws_url + path
        raise ValueError(f"expected a feed from {sorted(STREAM_PATHS.values())}, got {feed!r}")

    def push(self, *items: TimelineItem) -> None:
        """Append messages to the timeline; connected subscribers get them next."""
        self._timeline.extend(_message(item) for item in items)
        for session in self._sessions:
            session.wake.set()

    async def disconnect(self, code: int | None = None) -> None:
        """Drop every open connection: abort (the client sees 1006) or close with ``code``."""
        for session in list(self._sessions):
            await session.drop(code, "loopback: disconnect")

    async def start(self) -> None:
        """Bind the websocket server to 127.0.0.1 on an ephemeral port."""
        self._ws_server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            process_request=self._check_path,
            ping_interval=self._ping_interval,
        )
        port = self._ws_server.sockets[0].getsockname()[1]
        self.ws_url = f"ws://127.0.0.1:{port}"

    def _check_path(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.partition("?")[0] in STREAM_PATHS:
            return None
        return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        path = ws.request.path.partition("?")[0] if ws.request is not None else ""
        session = _Session(self, ws, STREAM_PATHS[path])
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
