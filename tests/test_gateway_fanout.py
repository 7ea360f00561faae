"""Gateway fan-out under load: 200 websocket clients on loopback, one of them never reading.

Every fast client must get every bar in order; the one that does not read loses frames per
its policy (counted), never holds more than its queue bound, never makes the engine or the
other clients wait, and is closed (code 4008) when it stays behind too long.

The bars are the real FTX BTC-PERP minute bars, emitted by a live feed. The slow client
subscribes first and bars are emitted until it loses frames (its kernel and aiohttp buffers
are full: a 4 KiB ``SO_RCVBUF`` on its side, a 16 KiB ``SO_SNDBUF`` on the gateway's, so a few
hundred frames do it, whatever the machine); then the fast clients join and the next bars
are emitted in batches, each once the fast clients have read the previous one (that is what
makes them "fast").
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import aiohttp

from lean_data.gateway import CLOSE_TOO_SLOW, Gateway
from lean_data.models import TradeBar
from tests.conftest import eventually
from tests.gateway_helpers import (
    SYMBOL,
    LiveFeed,
    bars,
    frame_ohlcv,
    hello_and_subscribe,
    ohlcv,
    receive_message,
    renamed,
    serving,
)
from tests.helpers import received

CLIENTS = 200
QUEUE = 100
BATCH = 50
SEND_BUFFER = 16 * 1024  # the server's kernel buffer per client (SO_SNDBUF)
WRITE_BUFFER_BOUND = 256 * 1024  # aiohttp's high-water mark plus one write limit, with room


def small_receive_buffer(addr_info: Any) -> socket.socket:
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


@contextlib.asynccontextmanager
async def slow_session() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(socket_factory=small_receive_buffer)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


class Reader:
    """A fast client: reads every frame as it comes, keeps what it got."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            message = await receive_message(self.ws)
            self.frames.append(message)


async def replay_in_batches(
    feed: LiveFeed, items: Sequence[TradeBar], readers: Sequence[Reader]
) -> None:
    """Emit ``items`` in batches, each once every reader has read the previous ones."""
    for start in range(0, len(items), BATCH):
        for bar in items[start : start + BATCH]:
            await feed.emit(bar)
        done = min(start + BATCH, len(items))
        await eventually(
            lambda done=done: all(len(r.frames) >= done for r in readers),  # type: ignore[misc]
            timeout=30,
            message=f"fast clients read {done} bars",
        )


async def saturate(
    feed: LiveFeed, source: Iterator[TradeBar], gateway: Gateway, *, rounds: int = 3
) -> int:
    """Emit bars until the (only, slow) client is stuck: it loses frames and ``rounds``
    batches in a row sent it nothing more (its buffers are full; ``rounds=0``: as soon as it
    loses one); return how many bars were emitted."""
    emitted = 0
    still = 0
    last_sent = -1
    while still < max(rounds, 1):
        for _ in range(BATCH):
            await feed.emit(next(source))
            emitted += 1
        await asyncio.sleep(0.01)  # let the sender and the sockets move what they can
        (client,) = gateway.client_statistics()
        stuck = client["dropped"] > 0 and (rounds == 0 or client["sent"] == last_sent)
        still = still + 1 if stuck else 0
        last_sent = client["sent"]
        assert emitted < 20_000, "the slow client never filled up"
    return emitted


def by_ident(gateway: Gateway) -> dict[int, dict[str, Any]]:
    return {c["id"]: c for c in gateway.client_statistics()}


async def test_200_clients_one_never_reading() -> None:
    source = iter(received(bars(20_000)))
    feed = LiveFeed("ftx")
    options: dict[str, Any] = {"queue_size": QUEUE, "send_buffer_bytes": SEND_BUFFER}
    async with (
        serving(max_lag_s=None, **options) as (engine, gateway),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
        slow_session() as slow_http,
    ):
        engine.add_feed(feed)
        await engine.subscribe_symbol(SYMBOL, feed_name="ftx")
        slow = await slow_http.ws_connect(f"{gateway.url}/ws")
        await hello_and_subscribe(slow, [SYMBOL])  # then it never reads again
        (slow_id,) = by_ident(gateway)
        before = await saturate(feed, source, gateway)
        stuck = by_ident(gateway)[slow_id]
        sockets = await asyncio.gather(
            *(session.ws_connect(f"{gateway.url}/ws") for _ in range(CLIENTS - 1))
        )
        await asyncio.gather(*(hello_and_subscribe(ws, [SYMBOL]) for ws in sockets))
        readers = [Reader(ws) for ws in sockets]
        sent = [next(source) for _ in range(1000)]
        await replay_in_batches(feed, sent, readers)
        stats = by_ident(gateway)
        totals = gateway.statistics()
        for reader in readers:
            reader.task.cancel()
        await asyncio.gather(*(r.task for r in readers), return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in sockets))
    slow_stats = stats.pop(slow_id)
    expected = [ohlcv(b) for b in sent]
    for reader in readers:
        assert [frame_ohlcv(f) for f in reader.frames] == expected
    assert len(stats) == CLIENTS - 1
    for client in stats.values():
        assert client["dropped"] == 0
        assert client["sent"] == len(sent)
        assert client["max_depth"] <= QUEUE
        assert client["write_buffer_max"] <= WRITE_BUFFER_BOUND
    # the slow one lost frames (counted), never held more than its bound
    offered = before + len(sent)
    assert slow_stats["queued"] == offered
    assert slow_stats["sent"] == stuck["sent"]  # it took nothing while the others ran ...
    assert slow_stats["dropped"] - stuck["dropped"] == len(sent)  # ... each new bar pushed one out
    assert slow_stats["max_depth"] == slow_stats["queue_depth"] == QUEUE
    accounted = slow_stats["sent"] + slow_stats["in_flight"] + slow_stats["dropped"] + QUEUE
    assert accounted == offered
    assert slow_stats["write_buffer_max"] <= WRITE_BUFFER_BOUND
    assert totals["dropped"] == slow_stats["dropped"]
    assert totals["clients"] == CLIENTS
    assert totals["queue_depth_max"] == QUEUE


async def test_conflate_keeps_the_latest_bar_per_symbol() -> None:
    btc = received(bars(20_000))
    eth = received(renamed(bars(20_000, 20_000), "ETH-PERP"))
    source = iter([bar for pair in zip(btc, eth, strict=True) for bar in pair])
    feed = LiveFeed("ftx")
    options: dict[str, Any] = {"queue_size": QUEUE, "send_buffer_bytes": SEND_BUFFER}
    async with (
        serving(policy="conflate", max_lag_s=None, **options) as (engine, gateway),
        aiohttp.ClientSession() as session,
        slow_session() as slow_http,
    ):
        engine.add_feed(feed)
        for symbol in (SYMBOL, "ETH-PERP"):
            await engine.subscribe_symbol(symbol, feed_name="ftx")
        slow = await slow_http.ws_connect(f"{gateway.url}/ws")
        ack = await hello_and_subscribe(slow, [SYMBOL, "ETH-PERP"])
        assert ack["symbols"] == ["BTC-PERP", "ETH-PERP"]
        (slow_id,) = by_ident(gateway)
        before = await saturate(feed, source, gateway, rounds=0)  # it conflates at once
        fast = await session.ws_connect(f"{gateway.url}/ws?policy=drop_oldest")  # all bars
        await hello_and_subscribe(fast, ["*"])
        reader = Reader(fast)
        sent = [next(source) for _ in range(600)]
        await replay_in_batches(feed, sent, [reader])
        held = by_ident(gateway)[slow_id]
        assert held["policy"] == "conflate"
        assert held["queued"] == before + len(sent)
        assert held["dropped"] > 0
        assert held["max_depth"] <= 2
        # now it reads: what it gets ends with the latest bar of each symbol, in order
        last = {bar.symbol: bar.ts_event for bar in sent}
        got: list[dict[str, Any]] = []
        while {f["symbol"]: f["ts_event"] for f in got[-2:]} != last:
            got.append(await receive_message(slow))
        reader.task.cancel()
        await asyncio.gather(reader.task, return_exceptions=True)
        await fast.close()
        await slow.close()
    assert [frame_ohlcv(f) for f in reader.frames] == [ohlcv(b) for b in sent]
    for symbol in (SYMBOL, "ETH-PERP"):
        mine = [f["ts_event"] for f in got if f["symbol"] == symbol]
        assert mine == sorted(set(mine))  # in order, no repeats


async def test_a_client_behind_too_long_is_closed_with_4008() -> None:
    source = iter(received(bars(20_000)))
    feed = LiveFeed("ftx")
    options: dict[str, Any] = {"queue_size": QUEUE, "send_buffer_bytes": SEND_BUFFER}
    async with (
        serving(max_lag_s=0.2, **options) as (engine, gateway),
        aiohttp.ClientSession() as session,
        slow_session() as slow_http,
    ):
        engine.add_feed(feed)
        await engine.subscribe_symbol(SYMBOL, feed_name="ftx")
        slow = await slow_http.ws_connect(f"{gateway.url}/ws")
        await hello_and_subscribe(slow, [SYMBOL])
        await saturate(feed, source, gateway)
        fast = await session.ws_connect(f"{gateway.url}/ws")
        await hello_and_subscribe(fast, [SYMBOL])
        reader = Reader(fast)
        while gateway.statistics()["evicted"] == 0:  # it stays behind: it is closed
            await replay_in_batches(feed, [next(source) for _ in range(BATCH)], [reader])
            reader.frames.clear()
        while (message := await slow.receive(timeout=20)).type is not aiohttp.WSMsgType.CLOSE:
            assert message.type is aiohttp.WSMsgType.TEXT  # what was buffered before the close
        assert slow.close_code == CLOSE_TOO_SLOW
        assert message.extra.startswith("too slow: ")
        assert gateway.statistics()["clients"] == 1  # the fast one goes on
        await replay_in_batches(feed, [next(source) for _ in range(BATCH)], [reader])
        reader.task.cancel()
        await asyncio.gather(reader.task, return_exceptions=True)
        await fast.close()
