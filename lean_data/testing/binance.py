"""A loopback Binance server (websocket streams and REST klines) for tests, users' too.

``BinanceLoopbackServer`` binds 127.0.0.1 on ephemeral ports and speaks Binance's public
market-data protocol:

- Websocket (``ws_url``): ``/stream?streams=a/b`` (combined: each frame is
  ``{"stream": name, "data": payload}``), ``/ws`` and ``/ws/<stream>`` (raw payloads); any
  other path starting with ``/stream`` is combined, anything else raw (ccxt appends a stream
  index such as ``/stream/0``). Live ``SUBSCRIBE``, ``UNSUBSCRIBE``, ``LIST_SUBSCRIPTIONS``,
  ``SET_PROPERTY``/``GET_PROPERTY`` (``combined``) are answered as Binance does.
- Data frames come from one timeline: the received frames of a cryptofeed capture (real
  recorded traffic), then whatever :meth:`BinanceLoopbackServer.push` adds. Each connection
  replays the timeline from the start (or, with ``resume=True``, from where the previous
  connection stopped), filtered to its subscriptions, as fast as possible or paced by the
  recorded receive times. Sending waits while a connection has no subscription.
- REST (``rest_url``): ``GET /api/v3/klines`` from given bars, ``/api/v3/ping``,
  ``/api/v3/time``; request weight in ``X-MBX-USED-WEIGHT-1M`` (klines weigh 2, the spot
  docs' flat weight; others 1) against a per-minute limit, then 429.
- Faults: ``server.faults`` (:class:`~lean_data.testing.ServerFaults`), read live.

Example::

    async with BinanceLoopbackServer("BINANCE.ws.1.0") as server:
        async with connect(server.stream_url("nknusdt@kline_1m")) as ws:
            frame = await ws.recv()
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import orjson
from aiohttp import web
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from lean_data.loaders.capture import Capture, read_capture
from lean_data.models import TradeBar
from lean_data.testing._binance_depth import DepthFaultPlan, DepthReplay
from lean_data.testing._binance_klines import (
    KLINES_WEIGHT,
    WEIGHT_LIMIT_1M,
    BadRequest,
    KlineBook,
    RestRequest,
    kline_event,
    kline_row,
)
from lean_data.testing._faults import FramePlanner, ServerFaults
from lean_data.testing._rest import LoopbackServers, recording_middleware

__all__ = [
    "KLINES_WEIGHT",
    "WEIGHT_LIMIT_1M",
    "BinanceLoopbackServer",
    "RestRequest",
    "kline_event",
    "kline_row",
    "stream_of",
]

logger = logging.getLogger(__name__)

_EVENT_CHANNELS = {
    "aggTrade": "aggTrade",
    "trade": "trade",
    "bookTicker": "bookTicker",
    "depthUpdate": "depth",
    "24hrTicker": "ticker",
    "24hrMiniTicker": "miniTicker",
}
_METHODS = "SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY"
_Reply = dict[str, Any]


# --- frames ------------------------------------------------------------------------------


def stream_of(payload: Mapping[str, Any]) -> str:
    """Return the stream name a raw Binance payload belongs to (``"btcusdt@kline_1m"``).

    ``kline`` gives ``<s>@kline_<k.i>``; ``aggTrade``, ``trade``, ``bookTicker`` (also the
    spot form without ``e``: ``u``, ``s``, ``b``, ``B``, ``a``, ``A``), ``depthUpdate``
    (``@depth``: the update speed is not in the payload), ``24hrTicker`` and
    ``24hrMiniTicker`` give ``<s>@<channel>``, with ``s`` lower-cased.

    Raises:
        ValueError: the payload has no symbol or an event type not listed above.
    """
    symbol, event = payload.get("s"), payload.get("e")
    if not isinstance(symbol, str):
        raise ValueError(f"expected a Binance payload with a string 's', found {payload!r:.120}")
    if event == "kline":
        return f"{symbol.lower()}@kline_{payload['k']['i']}"
    if event is None and all(key in payload for key in ("u", "b", "B", "a", "A")):
        event = "bookTicker"
    channel = _EVENT_CHANNELS.get(event) if isinstance(event, str) else None
    if channel is None:
        raise ValueError(f"expected a known Binance event type, found e={event!r}")
    return f"{symbol.lower()}@{channel}"


class _Frame(NamedTuple):
    stream: str
    wrapped: str  # combined-stream text
    raw: str  # payload text
    ts_ns: int | None  # recorded receive time (None for pushed frames)


def _wrap(stream: str, raw: str) -> str:
    return f'{{"stream":{orjson.dumps(stream).decode()},"data":{raw}}}'


def _frame_from_text(text: str, ts_ns: int | None) -> _Frame | None:
    """Return the frame for one received text, or None if it is not a data frame."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict):
        return None
    stream = message.get("stream")
    if isinstance(stream, str) and isinstance(message.get("data"), dict):
        prefix = _wrap(stream, "")[:-1]
        raw = text[len(prefix) : -1] if text.startswith(prefix) and text.endswith("}") else None
        if raw is None:
            raw = orjson.dumps(message["data"]).decode()
        return _Frame(stream, text, raw, ts_ns)
    try:
        stream = stream_of(message)
    except (ValueError, KeyError, TypeError):
        return None
    return _Frame(stream, _wrap(stream, text), text, ts_ns)


def _frames_from_capture(capture: Capture) -> list[_Frame]:
    frames = (_frame_from_text(text, ts) for ts, text in capture.received)
    return [frame for frame in frames if frame is not None]


# --- websocket sessions ------------------------------------------------------------------


class _Session:
    """One client connection: a receive loop (requests) and a send loop (data)."""

    def __init__(self, server: BinanceLoopbackServer, ws: ServerConnection) -> None:
        self.server, self.ws = server, ws
        parts = urlsplit(ws.request.path if ws.request is not None else "/ws")
        self.combined = parts.path.startswith("/stream")
        names = parse_qs(parts.query).get("streams", [""])[0].split("/")
        if parts.path.startswith("/ws/"):
            names = [parts.path.removeprefix("/ws/")]
        self.streams: dict[str, None] = dict.fromkeys(name for name in names if name)
        self.planner = FramePlanner(server.faults)
        self.depth, self.pending = DepthFaultPlan(server.depth), list[_Frame]()
        self.cursor = server._cursor if server.resume else 0
        self.silent = False
        self.wake = asyncio.Event()
        self._last_ts: int | None = None

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            sender = group.create_task(self._send_loop())
            try:
                async for message in self.ws:
                    await self._on_message(message)
            except ConnectionClosed:
                pass
            sender.cancel()

    # sending

    async def _send_loop(self) -> None:
        try:
            if await self._act():
                return
            while True:
                self.wake.clear()  # before looking: a push from now on is not missed
                frame = self._next_frame()
                if frame is None:
                    if await self._write(self.planner.flush()):
                        return
                    await self.wake.wait()
                    continue
                await self._pace(frame)
                text = frame.wrapped if self.combined else frame.raw
                self.planner.faults = self.server.faults
                if await self._write(self.planner.feed(text, partial(self._unknown, frame))):
                    return
        except ConnectionClosed:
            return

    def _next_frame(self) -> _Frame | None:
        frames, streams, pending = self.server._frames, self.streams, self.pending
        while not pending and streams and self.cursor < len(frames):
            frame = frames[self.cursor]
            self.cursor += 1
            self.server._cursor = max(self.server._cursor, self.cursor)
            if frame.stream in streams:  # depth faults may hold it back or drop it
                pending.extend(self.depth.take(self.cursor - 1, frame, self.server.faults))
        return pending.pop(0) if pending else None

    async def _pace(self, frame: _Frame) -> None:
        pace, last = self.server.pace, self._last_ts
        if frame.ts_ns is not None:
            self._last_ts = frame.ts_ns
        if pace and last is not None and frame.ts_ns is not None and frame.ts_ns > last:
            await asyncio.sleep((frame.ts_ns - last) / 1e9 / pace)

    def _unknown(self, frame: _Frame) -> str:
        symbol = frame.stream.partition("@")[0].upper()
        raw = orjson.dumps({"e": "unknownEvent", "E": 0, "s": symbol}).decode()
        return _wrap(frame.stream, raw) if self.combined else raw

    async def _write(self, texts: list[str]) -> bool:
        for text in texts:
            await self.ws.send(text)
        return await self._act()

    async def _act(self) -> bool:
        """Carry out a drop or silence the planner asked for; True when sending is over."""
        self.planner.faults = self.server.faults  # a test may have replaced them
        stop = self.planner.check()
        if stop:
            logger.debug("loopback fault: %s after %d frames", stop, self.planner.written)
        if stop == "drop":
            code = self.server.faults.drop_close_code
            if code is None:
                self.ws.transport.abort()
            else:
                await self.ws.close(code, "loopback fault: drop")
        elif stop == "silence":
            self.silent = True
        return bool(stop)

    # receiving

    async def _on_message(self, message: str | bytes) -> None:
        try:
            request: Any = orjson.loads(message)
        except orjson.JSONDecodeError as exc:
            self.server.received.append(message)
            await self._reply({"error": {"code": 3, "msg": f"Invalid JSON: {exc}"}, "id": None})
            return
        self.server.received.append(request)
        reply = self._answer(request)
        await self._reply(reply)
        if "result" in reply and request.get("method") in ("SUBSCRIBE", "UNSUBSCRIBE"):
            self._change_streams(request["method"], request["params"])  # after the ack

    def _answer(self, request: Any) -> _Reply:
        if not isinstance(request, dict):
            return _invalid("request must be an object", None)
        request_id, method, params = request.get("id"), request.get("method"), request.get("params")
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                return _invalid("params must be a list of stream names", request_id)
            return {"result": None, "id": request_id}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": list(self.streams), "id": request_id}
        if method in ("SET_PROPERTY", "GET_PROPERTY") and isinstance(params, list):
            return self._property(method, params, request_id)
        return _invalid(f"unknown variant {method!r}, expected one of {_METHODS}", request_id)

    def _change_streams(self, method: str, names: list[str]) -> None:
        for name in names:
            if method == "SUBSCRIBE":
                self.streams[name] = None
            else:
                self.streams.pop(name, None)
        self.wake.set()

    def _property(self, method: str, params: list[Any], request_id: Any) -> _Reply:
        if not params or params[0] != "combined":
            return {"error": {"code": 0, "msg": "Unknown property"}, "id": request_id}
        if method == "GET_PROPERTY":
            return {"result": self.combined, "id": request_id}
        if len(params) != 2 or not isinstance(params[1], bool):
            return {"error": {"code": 1, "msg": "Invalid value type: expected Boolean"}, "id": None}
        self.combined = params[1]
        return {"result": None, "id": request_id}

    async def _reply(self, reply: _Reply) -> None:
        if not self.silent:
            await self.ws.send(orjson.dumps(reply).decode())


def _invalid(detail: str, request_id: Any) -> _Reply:
    return {"error": {"code": 2, "msg": f"Invalid request: {detail}"}, "id": request_id}


# --- the server --------------------------------------------------------------------------


class BinanceLoopbackServer(LoopbackServers):
    """A Binance market-data server on 127.0.0.1 for tests; use as ``async with``.

    Args:
        capture: a cryptofeed capture file (or a parsed :class:`Capture`) whose received
            data frames start the replay timeline; ``None`` for an empty timeline.
        klines: bars served by REST klines, by Binance symbol (``"BTCUSDT"``); each item
            a :class:`TradeBar` (interval from its resolution) or a raw 12-field row.
        pace: ``None`` sends as fast as possible; a number replays the recorded gaps
            between frames divided by it (1.0 is real time, 10.0 ten times faster).
        resume: start each new connection where the previous one stopped instead of at
            the start of the timeline (like a live venue after a reconnect).
        faults: fault settings (a fresh :class:`ServerFaults` by default).
        clock: wall clock in seconds, for the weight window and ``/api/v3/time``.
        weight_limit: request weight allowed per minute before 429.
        price_decimals: decimals of prices and volumes formatted from bars.
        ping_interval: seconds between the server's websocket pings (Binance: 20).
        depth: a cryptofeed REST depth capture (``BINANCE.http.0.0``) to serve on
            ``/api/v3/depth`` (``lean_data.testing._binance_depth``: recorded, then derived).

    Attributes:
        received: every message clients sent, parsed JSON (raw text if not JSON).
        connections: websocket connections accepted so far (refused ones included).
        rest_requests: every HTTP request answered, in order.
        used_weight: request weight used in the current minute.
    """

    def __init__(
        self,
        capture: str | Path | Capture | None = None,
        *,
        klines: Mapping[str, Iterable[TradeBar | Sequence[Any]]] | None = None,
        pace: float | None = None,
        resume: bool = False,
        faults: ServerFaults | None = None,
        clock: Callable[[], float] = time.time,
        weight_limit: int = WEIGHT_LIMIT_1M,
        price_decimals: int = 8,
        ping_interval: float | None = 20.0,
        depth: str | Path | None = None,
    ) -> None:
        if isinstance(capture, str | Path):
            capture = read_capture(capture)
        self._frames = [] if capture is None else _frames_from_capture(capture)
        self._cursor = 0
        self.depth = DepthReplay(self._frames, depth)
        self._book = KlineBook(klines or {}, price_decimals)
        self.pace, self.resume = pace, resume
        self.faults = faults if faults is not None else ServerFaults()
        self._clock, self._weight_limit = clock, weight_limit
        self._ping_interval = ping_interval
        self.received: list[Any] = []
        self.connections = 0
        self.rest_requests: list[RestRequest] = []
        self.used_weight = 0
        self._weight_minute = -1
        self._sessions: set[_Session] = set()

    @property
    def frames(self) -> list[tuple[str, str]]:
        """The timeline as ``(stream, combined-stream text)`` pairs, in replay order."""
        return [(frame.stream, frame.wrapped) for frame in self._frames]

    @property
    def open_connections(self) -> int:
        """Websocket connections currently being served."""
        return len(self._sessions)

    def stream_url(self, *streams: str) -> str:
        """Return the combined-stream URL for ``streams``."""
        return f"{self.ws_url}/stream?streams={'/'.join(streams)}"

    def push(self, stream: str, payload: Mapping[str, Any] | str) -> None:
        """Append a data frame to the timeline; connected subscribers get it next.

        Args:
            stream: the stream it belongs to (``"btcusdt@kline_1m"``).
            payload: the event (serialized compactly) or raw text sent verbatim.
        """
        raw = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
        self._frames.append(_Frame(stream, _wrap(stream, raw), raw, None))
        for session in self._sessions:
            session.wake.set()

    async def start(self) -> None:
        """Bind both servers to 127.0.0.1 on ephemeral ports."""
        self._ws_server = await serve(
            self._handle, "127.0.0.1", 0, ping_interval=self._ping_interval
        )
        port = self._ws_server.sockets[0].getsockname()[1]
        self.ws_url = f"ws://127.0.0.1:{port}"
        app = web.Application(
            middlewares=[recording_middleware(self.rest_requests, self._fault_response)]
        )
        app.router.add_get("/api/v3/klines", self._klines)
        app.router.add_get("/api/v3/ping", self._ping)
        app.router.add_get("/api/v3/time", self._time)
        if self.depth.recorded:  # only with a depth capture (else 404, as any unknown path)
            app.router.add_get("/api/v3/depth", self._depth)
        self._add_routes(app)
        await self._serve_rest(app)

    def _add_routes(self, app: web.Application) -> None:
        """Add a subclass's REST routes (the futures server's ``/fapi/v1/...``)."""

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        if self.faults.refuse_concurrent and self._sessions:
            logger.debug("loopback fault: refusing connection %d", self.connections)
            await ws.close(1008, "loopback fault: one connection at a time")
            return
        session = _Session(self, ws)
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)

    # REST

    def _fault_response(self) -> web.Response | None:
        faults = self.faults
        if faults.ban_next > 0:
            faults.ban_next -= 1
            until = int(self._clock() * 1000) + faults.retry_after * 1000
            msg = (
                f"Way too much request weight used; IP banned until {until}. "
                "Please use WebSocket Streams for live updates to avoid bans."
            )
            return self._error(418, -1003, msg, faults.retry_after)
        if faults.rate_limit_next > 0:
            faults.rate_limit_next -= 1
            return self._too_many(faults.retry_after)
        return None

    def _too_many(self, retry_after: int) -> web.Response:
        msg = (
            f"Too much request weight used; current limit is {self._weight_limit} request "
            "weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid "
            "polling the API."
        )
        return self._error(429, -1003, msg, retry_after)

    def _error(self, status: int, code: int, msg: str, retry_after: int | None) -> web.Response:
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return self._json({"code": code, "msg": msg}, status, headers)

    def _json(
        self, body: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> web.Response:
        headers = {**(headers or {}), "X-MBX-USED-WEIGHT-1M": str(self.used_weight)}
        return web.Response(
            body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
        )

    def _charge(self, weight: int) -> bool:
        """Add ``weight`` to this minute's total; False (nothing added) if over the limit."""
        now = self._clock()
        minute = int(now // 60)
        if minute != self._weight_minute:
            self._weight_minute, self.used_weight = minute, 0
        if self.used_weight + weight > self._weight_limit:
            return False
        self.used_weight += weight
        return True

    def _seconds_to_next_minute(self) -> int:
        return max(1, math.ceil(60 - self._clock() % 60))

    async def _klines(self, request: web.Request) -> web.Response:
        if not self._charge(KLINES_WEIGHT):
            return self._too_many(self._seconds_to_next_minute())
        try:
            rows = self._book.select(request.query)
        except BadRequest as exc:
            return self._error(400, exc.code, exc.msg, None)
        return self._json(rows)

    async def _depth(self, request: web.Request) -> web.Response:
        if not self._charge(self.depth.weight):
            return self._too_many(self._seconds_to_next_minute())
        status, body = self.depth.answer(request.query, self._cursor, self.faults)
        return (
            self._too_many(self.faults.retry_after) if status == 429 else self._json(body, status)
        )

    async def _ping(self, request: web.Request) -> web.Response:
        if not self._charge(1):
            return self._too_many(self._seconds_to_next_minute())
        return self._json({})

    async def _time(self, request: web.Request) -> web.Response:
        if not self._charge(1):
            return self._too_many(self._seconds_to_next_minute())
        return self._json({"serverTime": int(self._clock() * 1000)})
