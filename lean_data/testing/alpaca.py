"""A loopback Alpaca market-data server (stream and historical bars) for tests, users' too.

``AlpacaLoopbackServer`` binds 127.0.0.1 on ephemeral ports and speaks Alpaca's market-data
protocol as alpaca-py 0.44.0 uses it:

- Stream (``ws_url``): ``/v2/iex``, ``/v2/sip``, ``/v2/delayed_sip``, ``/v2/test`` (stocks)
  and ``/v1beta3/crypto/us``; any other path gets HTTP 404. A client that sends the header
  ``Content-Type: application/msgpack`` (alpaca-py does) gets binary msgpack frames with
  ``t`` as a msgpack Timestamp; any other gets JSON text frames with RFC-3339 ``t``.
  Client messages may be msgpack (binary) or JSON (text) and fragmented.
- Handshake: ``[{"T":"success","msg":"connected"}]``; then auth by message
  (``{"action":"auth","key":..,"secret":..}``) or by the ``APCA-API-KEY-ID`` /
  ``APCA-API-SECRET-KEY`` headers -> ``authenticated``, or an error frame: ``402 auth
  failed`` (wrong keys, then close), ``406 connection limit exceeded`` (with
  ``faults.refuse_concurrent`` and another authenticated connection open, then close),
  ``409 insufficient subscription`` (a feed outside ``plan_feeds``, then close), ``403
  already authenticated``, ``404 auth timeout`` (none within ``auth_timeout``, then close).
  ``subscribe``/``unsubscribe`` get the ``subscription`` ack with the endpoint's full
  channel map (``*`` is every symbol; stock trades bring corrections and cancelErrors),
  or ``401 not authenticated``, ``400 invalid syntax``, ``405 symbol limit exceeded``
  (over ``symbol_limit``), ``409 insufficient subscription`` (a channel outside
  ``plan_channels``).
- Data: one timeline of messages (from models, wire dicts, or :func:`lean_timeline` built
  from real LEAN files), then whatever :meth:`AlpacaLoopbackServer.push` adds. Each
  connection replays it from the start (or, with ``resume=True``, from where the previous
  connection stopped), filtered to its subscriptions, up to ``batch_size`` messages per
  frame; messages without a data channel (an ``error`` pushed to the timeline) go to every
  connection, alone in their frame. Sending waits until the client is authenticated and
  subscribed.
- REST (``rest_url``): ``GET /v2/stocks/bars`` (needs the key headers: missing 401, wrong
  403 ``{"message":"forbidden."}``) and ``GET /v1beta3/crypto/us/bars`` (keys optional),
  paginated with an opaque ``page_token``: the bars of the requested symbols (symbol
  order, then time; ``sort=desc`` reverses time) with open time in ``[start, end]``, at
  most ``limit`` (default 1000, max 10000) per page in all. Bad parameters get 422
  ``{"code":42210000,"message":...}``; injected rate limits 429 with ``Retry-After``.
- Faults: ``server.faults`` (:class:`~lean_data.testing.ServerFaults`), read live; frame
  positions count data frames (arrays), control replies are not counted.

Example::

    async with AlpacaLoopbackServer(lean_timeline(root, "SPY", "20131010")) as server:
        stream = StockDataStream("key", "secret", url_override=server.stream_url("iex"))
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from functools import partial
from typing import Any

import orjson
from aiohttp import web

from lean_data.models import TradeBar
from lean_data.testing._alpaca_data import TAPES, alpaca_message, lean_timeline
from lean_data.testing._alpaca_rest import DEFAULT_LIMIT, MAX_LIMIT, BarBook, Unprocessable
from lean_data.testing._alpaca_stream import STREAM_PATHS, AlpacaStreamServer, TimelineItem
from lean_data.testing._binance_klines import RestRequest
from lean_data.testing._faults import ServerFaults
from lean_data.testing._rest import recording_middleware

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "STREAM_PATHS",
    "TAPES",
    "AlpacaLoopbackServer",
    "RestRequest",
    "TimelineItem",
    "alpaca_message",
    "lean_timeline",
]


class AlpacaLoopbackServer(AlpacaStreamServer):
    """An Alpaca market-data server on 127.0.0.1 for tests; use as ``async with``.

    Args:
        timeline: the stream's data, in order (see :data:`TimelineItem`).
        bars: stock bars served by ``/v2/stocks/bars``, by symbol (see ``BarBook``).
        crypto_bars: crypto bars served by ``/v1beta3/crypto/us/bars``, by ``"BTC/USD"``.
        key, secret: the credentials the server accepts.
        batch_size: data messages per frame at most.
        frame_interval: seconds between data frames (``None``: as fast as possible).
        resume: start each new connection where the previous one stopped instead of at
            the start of the timeline (like a live venue after a reconnect).
        faults: fault settings (a fresh :class:`ServerFaults` by default).
        plan_feeds: feeds the account's plan includes (names in :data:`STREAM_PATHS`);
            others get ``409 insufficient subscription`` at auth. ``None``: all.
        plan_channels: channels the plan includes; subscribing others gets 409.
            ``None``: all.
        symbol_limit: distinct symbols a connection may subscribe (``*`` not counted)
            before ``405 symbol limit exceeded``. ``None``: no limit.
        auth_timeout: seconds a client has to authenticate (Alpaca: 10); ``None``: forever.
        page_limit: REST bars per page at most, whatever the ``limit`` asked.
        ping_interval: seconds between the server's websocket pings.

    Attributes:
        received: every message clients sent, decoded (credentials included: this is the
            test's own server); the raw frame when it did not decode.
        connections: websocket connections accepted so far (refused ones included).
        rest_requests: every HTTP request answered, in order.
    """

    def __init__(
        self,
        timeline: Iterable[TimelineItem] = (),
        *,
        bars: Mapping[str, Iterable[TradeBar | Mapping[str, Any]]] | None = None,
        crypto_bars: Mapping[str, Iterable[TradeBar | Mapping[str, Any]]] | None = None,
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
        page_limit: int | None = None,
        ping_interval: float | None = 20.0,
    ) -> None:
        super().__init__(
            timeline,
            key=key,
            secret=secret,
            batch_size=batch_size,
            frame_interval=frame_interval,
            resume=resume,
            faults=faults,
            plan_feeds=plan_feeds,
            plan_channels=plan_channels,
            symbol_limit=symbol_limit,
            auth_timeout=auth_timeout,
            ping_interval=ping_interval,
        )
        self._stocks, self._crypto = BarBook(bars or {}), BarBook(crypto_bars or {})
        self.page_limit = page_limit
        self.rest_requests: list[RestRequest] = []

    async def start(self) -> None:
        """Bind both servers to 127.0.0.1 on ephemeral ports."""
        await super().start()
        app = web.Application(
            middlewares=[recording_middleware(self.rest_requests, self._fault_response)]
        )
        app.router.add_get("/v2/stocks/bars", partial(self._bars, self._stocks, True))
        app.router.add_get("/v1beta3/crypto/us/bars", partial(self._bars, self._crypto, False))
        await self._serve_rest(app)

    def _fault_response(self) -> web.Response | None:
        faults = self.faults
        if faults.ban_next > 0 or faults.rate_limit_next > 0:
            if faults.ban_next > 0:
                faults.ban_next -= 1
            else:
                faults.rate_limit_next -= 1
            headers = {"Retry-After": str(faults.retry_after)}
            return _json({"message": "too many requests."}, 429, headers)
        return None

    async def _bars(self, book: BarBook, keys_required: bool, request: web.Request) -> web.Response:
        key = request.headers.get("APCA-API-KEY-ID")
        secret = request.headers.get("APCA-API-SECRET-KEY")
        if key is None and secret is None:
            if keys_required:
                return _json({"message": "unauthorized."}, 401)
        elif key != self.key or secret != self.secret:
            return _json({"message": "forbidden."}, 403)
        try:
            body = book.page(request.query, page_limit=self.page_limit)
        except Unprocessable as exc:
            return _json(exc.body, 422)
        return _json(body)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )
