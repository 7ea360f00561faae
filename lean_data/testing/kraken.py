"""A loopback Kraken WebSocket v1 ``book`` server for tests, users' too.

``KrakenLoopbackServer(capture_path)`` binds 127.0.0.1 on an ephemeral port (``ws_url``) and
speaks Kraken's public WS v1 book protocol, replaying a real cryptofeed capture
(``KRAKEN.ws.50.0``: ``book-1000`` of 10 pairs):

- on connect it sends the recorded ``systemStatus``;
- ``{"event": "subscribe", "pair": [...], "subscription": {"name": "book", "depth": 1000}}``
  is answered with one ``subscriptionStatus`` per pair (the recorded channelID), then the
  recorded book messages of the subscribed pairs are replayed in recorded order, text for
  text (snapshot first, then updates; same channelID, channelName and pair);
- ``{"event": "unsubscribe", ...}`` stops a pair; a later subscribe of a pair whose replay
  has gone past its recorded snapshot is answered with a *derived* snapshot: the book the
  unfaulted replay of that pair has reached (every recorded message of the pair before the
  connection's cursor, applied through ``lean_data.depth`` with Kraken's checksum rules and
  depth 1000), its top 1000 levels a side written with the pair's decimals as Kraken does;
  the recorded updates that follow are sent after it;
- ``{"event": "ping"}`` gets ``pong``; when the replay has nothing left a ``heartbeat``.

Faults (``server.faults``, read live), by index among the capture's book messages (as
:func:`lean_data.loaders.depth_captures.kraken_messages` yields them): ``corrupt_checksum``
(sent with ``c`` plus one, modulo 2**32), ``malformed_before`` (preceded by the first half
of their text: not JSON); ``drop_after`` closes each connection after that many book
messages. With ``resume=True`` a new connection starts where the furthest one stopped.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Self

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from lean_data.book import OrderBookSnapshot
from lean_data.depth import BookKeeper, KrakenChecksumSequencer, OrderBook
from lean_data.loaders.capture import read_capture
from lean_data.wire.kraken_book import KrakenBookMessage, parse_book_message

__all__ = ["KrakenFaults", "KrakenLoopbackServer"]

DEPTH = 1000
_CHECKSUM = re.compile(r'"c":"(\d+)"')
_STATUS = '{"connectionID":1,"event":"systemStatus","status":"online","version":"1.8.3"}'


@dataclass
class KrakenFaults:
    """What the server does wrong, read live."""

    corrupt_checksum: set[int] = field(default_factory=set)
    malformed_before: set[int] = field(default_factory=set)
    drop_after: int | None = None


class _Entry(NamedTuple):
    position: int  # among the capture's book messages
    raw: str
    message: KrakenBookMessage


def _corrupted(raw: str) -> str:
    match = _CHECKSUM.search(raw)
    bad = (int(match[1]) + 1) % 2**32 if match is not None else 0
    return raw if match is None else f'{raw[: match.start()]}"c":"{bad}"{raw[match.end() :]}'


class _Session:
    """One connection: requests are queued for the send loop, the only writer."""

    def __init__(self, server: KrakenLoopbackServer, ws: ServerConnection) -> None:
        self.server, self.ws = server, ws
        self.cursor = server.furthest if server.resume else 0
        self.pairs: dict[str, None] = {}
        self.outbox: list[tuple[str, Any]] = []  # ("text", str) | ("subscribed", pair) | ...
        self.wake = asyncio.Event()
        self.sent = 0
        self._books: dict[str, tuple[BookKeeper, int]] = {}  # pair -> unfaulted replay

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            sender = group.create_task(self._send_loop())
            try:
                async for message in self.ws:
                    self._on_message(message)
            except ConnectionClosed:
                pass
            sender.cancel()

    def _on_message(self, message: str | bytes) -> None:
        try:
            request = orjson.loads(message)
        except orjson.JSONDecodeError:
            request = None
        self.server.received.append(request if request is not None else message)
        event = request.get("event") if isinstance(request, dict) else None
        if event == "ping":
            pong = {"event": "pong", **({"reqid": request["reqid"]} if "reqid" in request else {})}
            self._queue("text", orjson.dumps(pong).decode())
        elif event in ("subscribe", "unsubscribe"):
            pairs, wanted = request.get("pair"), request.get("subscription") or {}
            error = self.server.refusal(pairs, wanted)
            for pair in pairs if isinstance(pairs, list) else [None]:
                if error is not None or pair not in self.server.channels:
                    reason = error or f"Currency pair not supported {pair}"
                    self._queue("text", self.server.status(pair, "error", reason, event))
                else:
                    self._queue(event, pair)
        else:
            self._queue("text", '{"event":"error","errorMessage":"Malformed request"}')

    def _queue(self, kind: str, value: Any) -> None:
        self.outbox.append((kind, value))
        self.wake.set()

    async def _send_loop(self) -> None:
        server, timeline = self.server, self.server.timeline
        await self.ws.send(_STATUS)
        idle_told = False
        try:
            while True:
                self.wake.clear()  # before looking: a request from now on is not missed
                while self.outbox:
                    await self._control(*self.outbox.pop(0))
                if not self.pairs or self.cursor >= len(timeline):
                    if self.pairs and not idle_told:
                        idle_told = True
                        await self.ws.send('{"event":"heartbeat"}')
                    await self.wake.wait()
                    continue
                entry = timeline[self.cursor]
                self.cursor += 1
                server.furthest = max(server.furthest, self.cursor)
                if entry.message.pair not in self.pairs:
                    continue
                if entry.position in server.faults.malformed_before:
                    await self.ws.send(entry.raw[: len(entry.raw) // 2])  # not JSON
                faulted = entry.position in server.faults.corrupt_checksum
                await self.ws.send(_corrupted(entry.raw) if faulted else entry.raw)
                self.sent += 1
                limit = server.faults.drop_after
                if limit is not None and self.sent >= limit:
                    await self.ws.close(1011, "loopback fault: drop_after")
                    return
                await asyncio.sleep(0)  # let requests in between messages
        except ConnectionClosed:
            return

    async def _control(self, kind: str, value: Any) -> None:
        if kind == "text":
            await self.ws.send(value)
            return
        pair: str = value
        if kind == "unsubscribe":
            reason = None if pair in self.pairs else "Subscription Not Found"
            self.pairs.pop(pair, None)
            await self.ws.send(self.server.status(pair, "error" if reason else "unsubscribed",
                                                  reason, kind))  # fmt: skip
            return
        if pair in self.pairs:
            await self.ws.send(self.server.status(pair, "error", "Already subscribed", kind))
            return
        self.pairs[pair] = None
        await self.ws.send(self.server.status(pair, "subscribed", None, kind))
        if self.server.first_position[pair] < self.cursor:  # the recorded one is behind us
            self.server.derived.append((pair, self.cursor))
            await self.ws.send(self.derived(pair))

    def derived(self, pair: str) -> str:
        """The *derived* snapshot of ``pair`` at this connection's cursor (Kraken's format)."""
        server = self.server
        keeper, done = self._books.get(pair) or (server.new_keeper(pair), 0)
        entries = server.by_pair[pair]
        while done < len(entries) and entries[done].position < self.cursor:
            record = entries[done].message.record
            if isinstance(record, OrderBookSnapshot):
                keeper.on_snapshot(record)
            else:
                keeper.on_delta(record)
            done += 1
        self._books[pair] = (keeper, done)
        book, (price_dp, size_dp) = keeper.book, server.decimals[pair]
        stamp = f"{book.ts_event // 10**9}.{book.ts_event % 10**9 // 1000:06d}"

        def side(levels: list[Any]) -> list[list[str]]:
            return [[f"{p:.{price_dp}f}", f"{s:.{size_dp}f}", stamp] for p, s in levels]

        body = {"as": side(book.asks(DEPTH)), "bs": side(book.bids(DEPTH))}
        channel = server.channels[pair]
        return orjson.dumps([channel, body, f"book-{DEPTH}", pair]).decode()


class KrakenLoopbackServer:
    """Kraken WS v1 ``book`` on 127.0.0.1, replaying a cryptofeed capture (see the module).

    Attributes:
        ws_url: ``ws://127.0.0.1:<port>`` once started.
        faults: :class:`KrakenFaults`.
        received: every request decoded (or its raw text when it was not JSON).
        connections: connections accepted so far.
        derived: ``(pair, cursor)`` of every derived snapshot sent, in order (the cursor: the
            book messages of the timeline the replay had passed).
        timeline: the capture's book messages, in recorded order.
    """

    def __init__(self, capture_path: str | Path, *, resume: bool = False) -> None:
        self.resume = resume
        self.faults = KrakenFaults()
        self.received: list[Any] = []
        self.connections = 0
        self.derived: list[tuple[str, int]] = []
        self.furthest = 0
        self.ws_url = ""
        self.timeline: list[_Entry] = []
        self.by_pair: dict[str, list[_Entry]] = {}
        self.channels: dict[str, int] = {}
        self.decimals: dict[str, tuple[int, int]] = {}
        self.first_position: dict[str, int] = {}
        for ts, body in read_capture(capture_path).received:
            message = parse_book_message(body, ts)
            if message is None:
                continue
            entry = _Entry(len(self.timeline), body, message)
            self.timeline.append(entry)
            self.by_pair.setdefault(message.pair, []).append(entry)
            self.channels.setdefault(message.pair, message.channel_id)
            self.first_position.setdefault(message.pair, entry.position)
            if message.price_decimals >= 0:
                self.decimals.setdefault(
                    message.pair, (message.price_decimals, message.size_decimals)
                )
        self._server: Server | None = None
        self._sessions: set[_Session] = set()

    def new_keeper(self, pair: str) -> BookKeeper:
        """A keeper with Kraken's rules for the unfaulted replay of ``pair``."""
        sequencer = KrakenChecksumSequencer(*self.decimals[pair], DEPTH)
        return BookKeeper(OrderBook(self.by_pair[pair][0].message.record.symbol,
                                    max_depth=DEPTH), sequencer)  # fmt: skip

    @staticmethod
    def refusal(pairs: object, wanted: Any) -> str | None:
        """Why a (un)subscribe request is refused as a whole, or None."""
        if not isinstance(pairs, list) or not pairs:
            return "Pair(s) not found"
        if not isinstance(wanted, dict) or wanted.get("name") != "book":
            return "Subscription name invalid"
        if wanted.get("depth", 10) != DEPTH:
            return f"Subscription depth not supported (this server replays book-{DEPTH})"
        return None

    def status(self, pair: str | None, status: str, error: str | None, event: str) -> str:
        """One ``subscriptionStatus`` message, as Kraken words it."""
        reply: dict[str, Any] = {}
        if pair in self.channels and error is None:
            reply["channelID"] = self.channels[pair]
            reply["channelName"] = f"book-{DEPTH}"
        if error is not None:
            reply["errorMessage"] = error
        reply.update(event="subscriptionStatus", pair=pair, status=status)
        reply["subscription"] = {"depth": DEPTH, "name": "book"}
        return orjson.dumps(reply).decode()

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        session = _Session(self, ws)
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)

    async def start(self) -> None:
        """Bind 127.0.0.1 on an ephemeral port."""
        self._server = await serve(self._handle, "127.0.0.1", 0, compression=None)
        self.ws_url = f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        """Close every connection and the server; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
