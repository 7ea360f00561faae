"""What both loopback servers share: their two servers' life, and what they do with every
HTTP request (inject faults, record the answer)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Self

from aiohttp import web
from aiohttp.typedefs import Middleware
from websockets.asyncio.server import Server

from lean_data.testing._binance_klines import RestRequest

__all__ = ["LoopbackServers", "recording_middleware"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def recording_middleware(
    log: list[RestRequest], fault: Callable[[], web.Response | None]
) -> Middleware:
    """Return an aiohttp middleware that answers with ``fault()`` when it gives a response
    (an injected 429/418), else with the route, and appends every request to ``log``."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        params = dict(request.query)
        try:
            response = fault() or await handler(request)
        except web.HTTPException as exc:
            log.append(RestRequest(request.method, request.path, params, exc.status))
            raise
        log.append(RestRequest(request.method, request.path, params, response.status))
        return response

    return middleware


class LoopbackServers:
    """A websocket server and an aiohttp REST app on 127.0.0.1: start, close, ``async with``.

    Subclasses bind the websocket server in :meth:`start` and hand their REST app to
    :meth:`_serve_rest`.
    """

    _ws_server: Server | None = None
    _runner: web.AppRunner | None = None
    ws_url = ""
    rest_url = ""

    async def start(self) -> None:
        """Bind both servers to 127.0.0.1 on ephemeral ports."""
        raise NotImplementedError

    async def _serve_rest(self, app: web.Application) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.rest_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        """Close every connection and both servers; idempotent."""
        ws_server, self._ws_server = self._ws_server, None
        runner, self._runner = self._runner, None
        if ws_server is not None:
            ws_server.close()
            await ws_server.wait_closed()
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
