"""What both loopback servers do with every HTTP request: inject faults, record the answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from lean_data.testing._binance_klines import RestRequest

__all__ = ["recording_middleware"]

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
