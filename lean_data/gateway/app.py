"""The gateway: one aiohttp application serving the engine's data and health over HTTP.

Routes (see docs/distribution.md, "The gateway"):

- ``GET /ws``: WebSocket; clients subscribe to symbols and receive their items as JSON
  text frames (default) or msgpack binary frames (``?format=msgpack`` or ``"format"`` in
  a subscribe message); per-client bounded queues (:mod:`lean_data.gateway.clients`).
- ``GET /metrics``: Prometheus text format (:mod:`lean_data.gateway.collector`).
- ``GET /health``: 200 while the engine runs, else 503.
- ``GET /ready``: 200 when every subscribed feed is connected and fresh, else 503 with a
  JSON body naming each problem (:mod:`lean_data.gateway.health`).
- ``GET /status``: a JSON summary (engine, readiness, feeds, gateway and client counters).
- ``GET /``: the live page (:mod:`lean_data.gateway.page`).

With a token, ``/ws``, ``/metrics`` and ``/status`` need ``Authorization: Bearer <token>``
or ``?token=<token>`` (browsers cannot set websocket headers) and answer 401 otherwise;
``/health``, ``/ready`` and the page itself stay open for probes. The token is compared in
constant time and never logged: the access log writes the path without its query string.

The gateway is an engine sink named ``gateway``: the engine hands it every accepted item
(:meth:`Gateway.offer`, never waiting) and closes it on stop, which closes every client
(code 1001) and shuts the HTTP server down.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
import time
from collections.abc import Mapping
from typing import Any

import msgpack
import orjson
from aiohttp import WSMsgType, web
from aiohttp.abc import AbstractAccessLogger
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest

from lean_data.config import OverflowPolicy
from lean_data.errors import ConfigError, EngineStateError
from lean_data.gateway.clients import (
    CLOSE_GOING_AWAY,
    CLOSE_TOO_SLOW,
    Client,
    FanOut,
    client_policy,
)
from lean_data.gateway.collector import LATENCY_BUCKETS, EngineCollector
from lean_data.gateway.encode import FORMATS, encode, item_fields, series_key
from lean_data.gateway.health import liveness, readiness
from lean_data.gateway.page import PAGE
from lean_data.gateway.view import EngineView
from lean_data.models import MarketData
from lean_data.quality.levels import Verdict

__all__ = ["Gateway"]

log = logging.getLogger(__name__)
access_log = logging.getLogger("lean_data.gateway.access")

_MAX_CLIENT_MESSAGE = 64 * 1024
_MAX_SYMBOLS = 10_000


class _AccessLogger(AbstractAccessLogger):
    """One line per request: remote, method, path (never the query: it may hold a token)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %d %.1fms",
            request.remote,
            request.method,
            request.path,
            response.status,
            time * 1000,
        )


class Gateway:
    """Serve an engine's items over WebSocket, its metrics, health and a live page.

    Usually started with ``await engine.serve(...)``; standalone::

        gateway = Gateway(engine, "127.0.0.1", 0, token="s3cret")
        await gateway.start()        # attaches itself as the engine's "gateway" sink
        print(gateway.url)
        await gateway.close()        # or let engine.stop() close it

    Args:
        engine: the engine (anything with the :class:`~lean_data.gateway.view.EngineView`
            methods).
        host: the address to listen on (default loopback only).
        port: the TCP port; 0 picks a free one (read :attr:`port` after start).
        token: when set, the bearer token ``/ws``, ``/metrics`` and ``/status`` require.
        policy: each client's overflow policy, ``drop_oldest`` or ``conflate`` (a client
            may ask for the other one with ``?policy=``).
        queue_size: each client's queue bound (frames; series under ``conflate``).
        max_lag_s: a client losing frames continuously for longer is closed with code
            4008; None never closes one.
        stale_after_s: the staleness limit for live feeds that declare none (``/ready``).
        close_timeout_s: on close, how long clients get to receive what is queued, and then
            to answer the close frame, before their connection is cut.
        send_buffer_bytes: the kernel send buffer (``SO_SNDBUF``) of each websocket
            connection; None keeps the system's autotuning (which lets a client that does
            not read hold up to ``net.ipv4.tcp_wmem``'s maximum, 4 MiB by default, before
            its queue starts to drop).

    Raises:
        ConfigError: a ``block`` or unknown policy, or ``queue_size`` < 1.
    """

    name = "gateway"

    def __init__(
        self,
        engine: EngineView,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        token: str | None = None,
        policy: OverflowPolicy | str = OverflowPolicy.DROP_OLDEST,
        queue_size: int = 1000,
        max_lag_s: float | None = 30.0,
        stale_after_s: float | None = None,
        close_timeout_s: float = 2.0,
        send_buffer_bytes: int | None = 256 * 1024,
    ) -> None:
        if queue_size < 1:
            raise ConfigError(f"queue_size: expected >= 1 frames, found {queue_size}")
        self._engine = engine
        self.host = host
        self.port = port
        self._token = token.encode() if token else None
        self.policy = client_policy(policy)
        self.queue_size = queue_size
        self.max_lag_s = max_lag_s
        self.stale_after_s = stale_after_s
        self.close_timeout_s = close_timeout_s
        self.send_buffer_bytes = send_buffer_bytes
        self.fanout = FanOut()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(EngineCollector(engine, self.statistics))
        self.latency = Histogram(
            "lean_data_gateway_item_latency_seconds",
            "ts_recv to the gateway, per accepted item",
            ["feed"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._observe: dict[str, Any] = {}  # feed -> its histogram child's observe
        self._latest: dict[str, tuple[str, MarketData, Verdict]] = {}
        self._runner: web.AppRunner | None = None
        self._attached = False
        self._closed = False
        self._close_done: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._next_id = 0
        self.connections = 0
        self.refused = 0
        self.evicted = 0

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """The base URL, ``http://host:port`` (the page; ``/ws``, ``/metrics``... below it)."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> Gateway:
        """Attach to the engine as its ``gateway`` sink and start listening; idempotent.

        Raises:
            EngineStateError: the gateway was closed (create a new one).
            EngineClosedError: the engine was stopped.
            OSError: the port cannot be bound.
        """
        if self._closed:
            raise EngineStateError("this Gateway was closed; create a new one")
        if self._runner is not None:
            return self
        if not self._attached:
            self._engine.add_sink(self)
            self._attached = True
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        app.router.add_get("/status", self._status)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log_class=_AccessLogger,
            access_log=access_log,
            shutdown_timeout=self.close_timeout_s,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        if self.max_lag_s is not None:
            self._spawn(self._reap(self.max_lag_s), "gateway:reaper")
        log.info("gateway listening on %s", self.url)
        return self

    async def open(self) -> None:
        """Sink protocol: nothing to do, :meth:`start` already runs the server."""

    async def close(self) -> None:
        """Close every client (1001), stop the HTTP server; idempotent, awaits a close
        already in progress."""
        if self._close_done is not None:
            await asyncio.shield(self._close_done)
            return
        self._closed = True
        self._close_done = asyncio.get_running_loop().create_future()
        try:
            clients = list(self.fanout.clients.values())
            await asyncio.gather(
                *(self._close_client(c, CLOSE_GOING_AWAY, "server shutting down", True)
                  for c in clients)
            )  # fmt: skip
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(self._tasks)
            if self._runner is not None:
                await self._runner.cleanup()
        finally:
            self._close_done.set_result(None)
        log.info("gateway %s closed", self.url)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ the sink
    def offer(self, feed: str, item: MarketData, verdict: Verdict) -> None:
        """Take one accepted item: time it, remember it, queue it for its clients."""
        if self._closed:
            return
        ts_recv = item.ts_recv
        if ts_recv:
            observe = self._observe.get(feed)
            if observe is None:
                observe = self._observe[feed] = self.latency.labels(feed).observe
            observe((time.time_ns() - ts_recv) / 1e9)
        key = series_key(item)
        self._latest[key] = (feed, item, verdict)
        self.fanout.deliver(feed, item, verdict, key)

    def statistics(self) -> dict[str, Any]:
        """Counters for ``get_metrics()["sinks"]["gateway"]`` and ``/metrics``."""
        stats = self.fanout.statistics()
        stats.update(
            url=self.url,
            connections=self.connections,
            refused=self.refused,
            evicted=self.evicted,
            series=len(self._latest),
        )
        return stats

    def client_statistics(self) -> list[dict[str, Any]]:
        """Each connected client's counters (id, queue depth, max depth, sent, dropped...)."""
        return [c.statistics() for c in self.fanout.clients.values()]

    # ------------------------------------------------------------------ HTTP
    def _authorized(self, request: web.Request) -> bool:
        if self._token is None:
            return True
        header = request.headers.get("Authorization", "")
        scheme, _, supplied = header.partition(" ")
        if scheme.lower() != "bearer":
            supplied = request.query.get("token", "")
        return hmac.compare_digest(supplied.strip().encode(), self._token)

    def _refuse(self, request: web.Request) -> web.Response:
        self.refused += 1
        log.warning("refused %s %s from %s: missing or wrong token", request.method,
                    request.path, request.remote)  # fmt: skip
        return web.json_response(
            {"error": "unauthorized: send Authorization: Bearer <token> or ?token=<token>"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="lean_data"'},
        )

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def _metrics(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._refuse(request)
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, request: web.Request) -> web.Response:
        body = liveness(self._engine)
        return web.json_response(body, status=200 if body["live"] else 503)

    async def _ready(self, request: web.Request) -> web.Response:
        body = readiness(self._engine, time.time_ns(), self.stale_after_s)
        return web.json_response(body, status=200 if body["ready"] else 503)

    async def _status(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._refuse(request)
        metrics = self._engine.get_metrics()
        feeds = {
            name: {
                "connection": feed.get("connection", {}),
                "messages": feed.get("messages", 0),
                "messages_per_second": feed.get("messages_per_second", 0.0),
            }
            for name, feed in metrics.get("feeds", {}).items()
        }
        body = {
            "engine": metrics.get("engine", {}).get("state"),
            "messages": metrics.get("engine", {}).get("messages", 0),
            "readiness": readiness(self._engine, time.time_ns(), self.stale_after_s),
            "feeds": feeds,
            "subscriptions": sorted({s for _, s in self._engine.subscriptions()}),
            "gateway": self.statistics(),
            "clients": self.client_statistics(),
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    # ------------------------------------------------------------------ websocket
    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return self._refuse(request)
        try:
            fmt = _format(request.query.get("format", "json"))
            policy = client_policy(request.query.get("policy", self.policy))
        except ConfigError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if self._closed:
            return web.json_response({"error": "the gateway is closing"}, status=503)
        ws = web.WebSocketResponse(max_msg_size=_MAX_CLIENT_MESSAGE)
        await ws.prepare(request)
        self._limit_send_buffer(request)
        self._next_id += 1
        self.connections += 1
        client = Client(
            self._next_id, ws, fmt, policy, self.queue_size, request.remote or "", request.transport
        )
        self.fanout.add(client)
        client.task = sender = asyncio.get_running_loop().create_task(
            client.run(), name=f"gateway:client:{client.ident}"
        )
        try:
            hello = {"type": "hello", "client": client.ident, "format": fmt}
            hello.update(policy=policy.value, queue_size=self.queue_size)
            await self._reply(client, hello)
            async for message in ws:
                if message.type is WSMsgType.TEXT or message.type is WSMsgType.BINARY:
                    await self._command(client, message.data)
        finally:
            self.fanout.remove(client)
            if not sender.done() and client.close_code == 0:
                sender.cancel()
            await asyncio.wait([sender])
        return ws

    def _limit_send_buffer(self, request: web.Request) -> None:
        size = self.send_buffer_bytes
        transport = request.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if size is not None and sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)

    async def _command(self, client: Client, data: str | bytes) -> None:
        try:
            request = orjson.loads(data) if isinstance(data, str) else msgpack.unpackb(data)
            reply = self._apply(client, request)
        except (ValueError, TypeError, msgpack.UnpackException, ConfigError) as exc:
            reply = {"type": "error", "message": f"{exc}"[:300]}
        await self._reply(client, reply)

    def _apply(self, client: Client, request: Any) -> dict[str, Any]:
        if not isinstance(request, Mapping):
            raise ValueError('expected a map like {"op": "subscribe", "symbols": ["BTC/USDT"]}')
        op = request.get("op")
        if op == "ping":
            return {"type": "pong"}
        if op not in ("subscribe", "unsubscribe"):
            raise ValueError(f"op: expected subscribe, unsubscribe or ping, found {op!r}")
        symbols = request.get("symbols", [])
        if isinstance(symbols, str):
            symbols = [symbols]
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise ValueError("symbols: expected a list of symbol names (or '*')")
        if len(symbols) + len(client.symbols) > _MAX_SYMBOLS:
            raise ValueError(f"symbols: at most {_MAX_SYMBOLS} per client")
        if "format" in request:
            client.fmt = _format(str(request["format"]))
        if op == "unsubscribe":
            self.fanout.unsubscribe(client, symbols)
        else:
            self.fanout.subscribe(client, symbols)
            if request.get("snapshot"):
                self._snapshot(client, set(symbols))
        current = ["*"] if client.everything else []
        return {"type": f"{op}d", "symbols": current + sorted(client.symbols)}

    def _snapshot(self, client: Client, symbols: set[str]) -> None:
        """Queue the latest item of each series of ``symbols``, marked ``snapshot``."""
        wanted = sorted(
            (entry for entry in self._latest.values()
             if "*" in symbols or entry[1].symbol in symbols),
            key=lambda entry: entry[1].ts_event,
        )  # fmt: skip
        for feed, item, verdict in wanted:
            message = item_fields(feed, item, verdict)
            message["snapshot"] = True
            client.offer(series_key(item), encode(message, client.fmt))

    async def _reply(self, client: Client, message: dict[str, Any]) -> None:
        """Send a control message now (it overtakes queued items; waits if the peer is slow)."""
        opcode, data = encode(message, client.fmt)
        with contextlib.suppress(ConnectionError):
            await client.ws.send_frame(data, opcode)

    # ------------------------------------------------------------------ slow clients
    async def _reap(self, max_lag_s: float) -> None:
        """Every so often, close the clients that have been losing frames too long."""
        period = min(1.0, max_lag_s / 4)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for client in list(self.fanout.clients.values()):
                lag = client.lag_s(now)
                if lag > max_lag_s and client.close_code == 0:
                    self.evicted += 1
                    log.warning(
                        "closing websocket client %d (%s): lost %d frames, behind for %.1fs",
                        client.ident, client.peer, client.dropped, lag,
                    )  # fmt: skip
                    reason = f"too slow: {client.dropped} frames lost over {lag:.0f}s"
                    self._spawn(
                        self._close_client(client, CLOSE_TOO_SLOW, reason, False),
                        f"gateway:evict:{client.ident}",
                    )

    async def _close_client(self, client: Client, code: int, reason: str, drain: bool) -> None:
        """Close one client: optionally let it receive its queue, then send the close frame;
        cut the connection if it does not answer within ``close_timeout_s``."""
        client.close_code, client.close_reason = code, reason
        self.fanout.remove(client)  # no new frames; finish what is queued
        sender = client.task
        if sender is not None and not sender.done():
            if drain:
                await asyncio.wait([sender], timeout=self.close_timeout_s)
            sender.cancel()
            await asyncio.wait([sender])
        try:
            await asyncio.wait_for(
                client.ws.close(code=code, message=reason.encode()), self.close_timeout_s
            )
        except (TimeoutError, ConnectionError):
            client.abort()


def _format(value: str) -> str:
    if value not in FORMATS:
        raise ConfigError(f"format: expected one of {', '.join(FORMATS)}, found {value!r}")
    return value
