"""Order books for the loopback Binance servers: REST depth snapshots, depth faults.

A server built with a REST depth capture (cryptofeed's ``BINANCE.http.0.0``: lines
``<url> -> <receive time>: <body>``) answers ``GET /api/v3/depth`` (the futures server:
``/fapi/v1/depth``) for each recorded symbol:

- the **first** answer for a symbol is the recorded body, as the venue sent it;
- every later one is *derived*: the recorded snapshot plus every recorded ``depthUpdate``
  of that symbol the server's replay has reached (positions before the furthest cursor of
  its connections), applied without faults through the venue's rules (spot ``U``/``u``,
  futures ``pu``; chosen from the frames). It holds every level of that book: Binance would
  cut it to ``limit`` levels, which would make a re-synced book differ from the replay in
  its deepest levels (SUSHIUSDT reaches 1,006 bids).

Faults (fields of :class:`~lean_data.testing.ServerFaults`, read live): ``depth_drop``
(recorded updates, by their final id ``u``, never sent), ``depth_swap`` (an update sent
after the next update of its symbol), ``depth_stale_next`` (the next K depth answers are
the recorded snapshot again: its ``lastUpdateId`` predates every update since),
``depth_rate_limit_next`` (the next K depth requests get 429 with ``Retry-After``),
``depth_cross`` (an update sent with one more bid priced above every ask: a crossed book).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

from lean_data.book import OrderBookDelta
from lean_data.depth import BinanceFuturesSequencer, BinanceSpotSequencer, BookKeeper, OrderBook
from lean_data.testing._binance_futures_data import decimal_text
from lean_data.testing._binance_klines import BadRequest, _int_param, _mandatory
from lean_data.testing._faults import ServerFaults
from lean_data.wire.depth_binance import parse_depth_snapshot, parse_depth_update

__all__ = ["DepthFaultPlan", "DepthReplay", "recorded_depth"]

SPOT_DEPTH_WEIGHT = 50  # /api/v3/depth with limit 501-1000
FUTURES_DEPTH_WEIGHT = 20  # /fapi/v1/depth with limit 501-1000
_LINE = re.compile(r"^(?P<url>\S+) -> (?P<ts>\d+(?:\.\d+)?): (?P<body>.*)$")
_SYMBOL = re.compile(r"[?&]symbol=(\w+)")


class _FrameLike(Protocol):
    @property
    def raw(self) -> str: ...


def recorded_depth(path: str | Path) -> dict[str, str]:
    """Return the recorded REST depth bodies of a cryptofeed HTTP capture, by Binance symbol."""
    found: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        match = _LINE.match(line)
        symbol = _SYMBOL.search(match["url"]) if match is not None else None
        if match is not None and symbol is not None and "/depth" in match["url"]:
            found[symbol[1]] = match["body"]
    return found


class DepthReplay:
    """The depth one server serves: recorded snapshots, their unfaulted replay, the faults.

    Args:
        frames: the server's timeline (objects with ``raw``, the payload text).
        http: the REST depth capture; None: the server has no depth endpoint.
    """

    def __init__(self, frames: Sequence[_FrameLike], http: str | Path | None) -> None:
        self.recorded = recorded_depth(http) if http is not None else {}
        self.positions: dict[int, tuple[str, int]] = {}  # timeline position -> (symbol, u)
        self._deltas: dict[str, list[tuple[int, OrderBookDelta]]] = {}
        for position, frame in enumerate(frames if self.recorded else ()):
            if '"depthUpdate"' not in frame.raw:
                continue
            data = orjson.loads(frame.raw)
            venue = data["s"]
            delta = parse_depth_update(data, 0, symbols={venue: venue})
            self.positions[position] = (venue, delta.last_sequence)
            self._deltas.setdefault(venue, []).append((position, delta))
        self.futures = any(d.prev_sequence != -1 for ds in self._deltas.values() for _, d in ds)
        self.weight = FUTURES_DEPTH_WEIGHT if self.futures else SPOT_DEPTH_WEIGHT
        self._keepers: dict[str, tuple[BookKeeper, int]] = {}
        self.served: dict[str, int] = {}
        """Depth answers given so far (429s excluded), by Binance symbol."""

    def answer(
        self, query: Mapping[str, str], cursor: int, faults: ServerFaults
    ) -> tuple[int, Any]:
        """Return ``(status, body)`` for one depth request; 429 (body None): rate limited.

        Args:
            query: the request's parameters (``symbol``, optional ``limit``).
            cursor: how far the server's replay has reached (timeline positions taken).
            faults: the server's faults (``depth_rate_limit_next`` and
                ``depth_stale_next`` are counted down here).
        """
        if faults.depth_rate_limit_next > 0:
            faults.depth_rate_limit_next -= 1
            return 429, None
        try:
            symbol = _mandatory(query, "symbol")
            _int_param(query, "limit")
        except BadRequest as exc:
            return 400, {"code": exc.code, "msg": exc.msg}
        recorded = self.recorded.get(symbol)
        if recorded is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        served = self.served[symbol] = self.served.get(symbol, 0) + 1
        if served == 1 or faults.depth_stale_next > 0:
            if served > 1:
                faults.depth_stale_next -= 1
            return 200, orjson.Fragment(recorded)
        return 200, self._derived(symbol, cursor)

    def _derived(self, symbol: str, cursor: int) -> dict[str, Any]:
        keeper, index = self._keepers.get(symbol) or (self._start(symbol), 0)
        deltas = self._deltas.get(symbol, [])
        while index < len(deltas) and deltas[index][0] < cursor:
            keeper.on_delta(deltas[index][1])
            index += 1
        self._keepers[symbol] = (keeper, index)
        book = keeper.book
        body: dict[str, Any] = {"lastUpdateId": book.sequence}
        if self.futures:
            body["E"] = body["T"] = book.ts_event // 1_000_000
        body["bids"] = [[decimal_text(p), decimal_text(s)] for p, s in book.bids()]
        body["asks"] = [[decimal_text(p), decimal_text(s)] for p, s in book.asks()]
        return body

    def _start(self, symbol: str) -> BookKeeper:
        sequencer = BinanceFuturesSequencer() if self.futures else BinanceSpotSequencer()
        keeper = BookKeeper(OrderBook(symbol), sequencer)
        keeper.on_snapshot(parse_depth_snapshot(self.recorded[symbol], symbol, 0))
        return keeper


class DepthFaultPlan:
    """One connection's depth faults: which recorded updates to drop or send late. Pure."""

    def __init__(self, replay: DepthReplay) -> None:
        self._positions = replay.positions
        self._held: dict[str, Any] = {}  # symbol -> a frame waiting to be sent after the next

    def take(self, position: int, frame: Any, faults: ServerFaults) -> list[Any]:
        """Return the frames to send for the timeline frame at ``position`` (maybe none)."""
        found = self._positions.get(position)
        if found is None:
            return [frame]
        symbol, last = found
        if last in faults.depth_drop:
            return []
        if last in faults.depth_cross:
            frame = _crossed(frame)
        held = self._held.pop(symbol, None)
        if held is None and last in faults.depth_swap:
            self._held[symbol] = frame
            return []
        return [frame] if held is None else [frame, held]


CROSSING_BID = "99999999.00000000"
"""The price of the bid ``depth_cross`` adds: above any ask of the recorded symbols."""


def _crossed(frame: Any) -> Any:
    """``frame`` (a server frame: ``stream``, ``wrapped``, ``raw``) with one more bid, at
    :data:`CROSSING_BID`."""
    data = orjson.loads(frame.raw)
    data["b"] = [*data.get("b", []), [CROSSING_BID, "1.00000000"]]
    raw = orjson.dumps(data).decode()
    wrapped = f'{{"stream":{orjson.dumps(frame.stream).decode()},"data":{raw}}}'
    return frame._replace(raw=raw, wrapped=wrapped)
