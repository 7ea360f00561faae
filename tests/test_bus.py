"""The NATS JetStream bus against a real server (127.0.0.1:4222), no mocks.

Real FTX BTC-PERP minute bars (tests/fixtures/nautilus_trader/btc-perp-20211231-
20220201_1m.csv). Each test gets its own subject prefix and stream (random names), deleted
afterwards. Outages are real: a small TCP proxy in front of NATS (``Proxy``) is cut
(connections closed, connects refused) or muted (the server's answers, acks included,
swallowed) and restored. When NATS is not running every test here fails with one line
saying how to start it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, StreamConfig
from nats.js.errors import NotFoundError

from lean_data import Config, DataEngine
from lean_data.bus import BusFeed, BusPublisher
from lean_data.bus.codec import decode, encode
from lean_data.bus.subjects import subject_for
from lean_data.engine.sinks import ItemSink
from lean_data.feeds.backoff import BackoffPolicy
from lean_data.loaders import load_file
from lean_data.models import MarketData, TradeBar
from lean_data.quality.levels import CLEAN
from tests.conftest import FIXTURES, eventually
from tests.helpers import ListFeed, received

FTX = FIXTURES / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"
SYMBOL = "BTC-PERP"
NATS_URL = "nats://127.0.0.1:4222"
START_NATS = (
    "NATS JetStream is not reachable at 127.0.0.1:4222; start it with: "
    "nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server &"
)
FAST = BackoffPolicy(base_s=0.02, cap_s=0.2)

_BARS: list[TradeBar] = []


def bars(n: int) -> list[TradeBar]:
    """The first ``n`` real FTX minute bars (loaded once)."""
    if not _BARS:
        _BARS.extend(b for b in load_file(FTX, symbol=SYMBOL) if isinstance(b, TradeBar))
    return _BARS[:n]


@dataclass
class Bus:
    """One test's NATS connection, subject prefix and stream name."""

    nc: Client
    js: JetStreamContext
    prefix: str
    stream: str

    async def count(self) -> int:
        """Messages in the stream (0 while it does not exist)."""
        try:
            return int((await self.js.stream_info(self.stream)).state.messages)
        except NotFoundError:
            return 0

    async def items(self) -> list[MarketData]:
        """Every item in the stream, in stream order."""
        return [decode(data)[1] for data in await self.payloads()]

    async def payloads(self) -> list[bytes]:
        """Every message's payload, in stream order (an ephemeral consumer)."""
        psub = await self.js.pull_subscribe(
            f"{self.prefix}.>", stream=self.stream, config=ConsumerConfig(ack_policy=AckPolicy.NONE)
        )
        info = await psub.consumer_info()
        out: list[bytes] = []
        while len(out) < (info.num_pending or 0):
            out.extend(m.data for m in await psub.fetch(1000, timeout=5))
        await psub.unsubscribe()
        return out


async def _quiet(exc: Exception) -> None:
    """nats-py's error callback: a failed connect raises anyway."""


async def connect_or_fail() -> Client:
    try:
        return await nats.connect(
            NATS_URL, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=1,
            reconnect_time_wait=0, error_cb=_quiet,
        )  # fmt: skip
    except Exception:
        pytest.fail(START_NATS, pytrace=False)


@contextlib.asynccontextmanager
async def bus_context(stream: str | None = None) -> AsyncIterator[Bus]:
    """A fresh prefix and stream name; the stream is deleted afterwards."""
    nc = await connect_or_fail()
    prefix = f"t{secrets.token_hex(5)}"
    bus = Bus(nc, nc.jetstream(), prefix, stream or prefix.upper())
    try:
        yield bus
    finally:
        with contextlib.suppress(NotFoundError):
            await bus.js.delete_stream(bus.stream)
        await nc.close()


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    async with bus_context() as found:
        yield found


class Proxy:
    """A TCP proxy in front of NATS that a test can cut, mute and restore."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 4222)) -> None:
        self.target = target
        self.port = 0
        self.muted = False
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> Proxy:
        """Listen (on the same port after a cut)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def cut(self) -> None:
        """Close every connection and refuse new ones."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._links):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def restore(self) -> None:
        """Let everything through again."""
        self.muted = False
        if self._server is None:
            await self.start()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._links |= {writer, up_writer}
        for task in (
            asyncio.create_task(self._pipe(reader, up_writer, False)),
            asyncio.create_task(self._pipe(up_reader, writer, True)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answers: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if answers and self.muted:
                    continue  # the server's answers (INFO, acks, PONGs) vanish
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._links.discard(writer)
            writer.close()


async def acks_settled(bus: Bus, consumer: str) -> ConsumerInfo:
    """The consumer's info once the server has every ack the client sent (acks are
    fire-and-forget messages; a query can overtake them)."""
    deadline = time.monotonic() + 10
    while True:
        info: ConsumerInfo = await bus.js.consumer_info(bus.stream, consumer)
        if not info.num_ack_pending or time.monotonic() > deadline:
            return info
        await asyncio.sleep(0.01)  # polling the server's state, not a timing guess


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    found = await Proxy().start()
    yield found
    await found.cut()


def publisher(bus: Bus, url: str = NATS_URL, **options: Any) -> BusPublisher:
    options.setdefault("backoff", FAST)
    return BusPublisher(url, prefix=bus.prefix, stream=bus.stream, **options)


# ---------------------------------------------------------------------------- tests
def test_the_publisher_is_an_engine_sink_and_bad_options_are_refused() -> None:
    assert isinstance(BusPublisher(), ItemSink)
    with pytest.raises(ValueError, match="drop_oldest' or 'drop_newest"):
        BusPublisher(policy="block")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="buffer_size"):
        BusPublisher(buffer_size=0)
    with pytest.raises(ValueError, match="bus prefix"):
        BusPublisher(prefix="a b")


def test_importing_the_bus_without_nats_py_says_how_to_install_it() -> None:
    code = "import sys; sys.modules['nats'] = None; import lean_data.bus"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "ImportError: lean_data.bus needs nats-py: pip install 'lean-data[nats]'"
    )


async def test_one_engine_publishes_another_consumes_every_bar_in_order(bus: Bus) -> None:
    sent = received(bars(3000))
    feed = ListFeed("ftx", {SYMBOL: sent})
    pub = publisher(bus, max_pending=200)
    engine = DataEngine(Config(db_path=None))
    engine.add_feed(feed)
    engine.add_sink(pub)
    async with engine:
        await engine.subscribe_symbol(SYMBOL)
        await feed.wait_pumped()
        await engine.wait_idle()
    stats = engine.get_metrics()["sinks"]["bus"]
    assert stats["acked"] == stats["offered"] == 3000
    assert (stats["dropped"], stats["pending"], stats["buffered"], stats["errors"]) == (0, 0, 0, 0)
    assert stats["stream_created"] is True
    assert await bus.items() == sent  # the stream holds every bar, in order, ts_recv kept

    seen: list[MarketData] = []
    consumer = DataEngine(Config(db_path=None))
    bus_feed = BusFeed("bus", prefix=bus.prefix, stream=bus.stream)
    consumer.add_feed(bus_feed)
    consumer.add_data_callback(lambda symbol, item, level: seen.append(item))
    async with consumer:
        await consumer.subscribe_symbol(SYMBOL)
        await eventually(lambda: len(seen) >= 3000, message="consumer callbacks")
        window = await bus_feed.get_historical_data(
            SYMBOL, sent[1000].ts_event, sent[1500].ts_event, bars(1)[0].resolution
        )
    assert seen == sent
    assert window == sent[1000:1500]
    status = bus_feed.get_connection_status()
    assert (status["received"], status["acked"], status["malformed"]) == (3000, 3000, 0)


async def test_bus_down_engine_delivers_locally_then_the_backlog_is_published_once(
    bus: Bus, proxy: Proxy
) -> None:
    """Done-when 2: acks vanish mid-stream (muted), then NATS is unreachable (cut); the
    engine's callbacks get everything meanwhile; restored, the backlog is published and
    what had been stored already is dropped by message id."""
    sent = received(bars(3000))
    first, rest = sent[:1000], sent[1000:]
    feed = ListFeed("ftx", {SYMBOL: first})
    pub = publisher(bus, proxy.url, max_pending=200, ack_timeout_s=0.5, connect_timeout_s=0.5)
    seen: list[MarketData] = []
    engine = DataEngine(Config(db_path=None))
    engine.add_feed(feed)
    engine.add_sink(pub)
    engine.add_data_callback(lambda symbol, item, level: seen.append(item))
    async with engine:
        await engine.subscribe_symbol(SYMBOL)
        await feed.wait_pumped()
        await eventually(lambda: pub.acked == 1000, message="first 1000 acked")
        proxy.muted = True  # the server still stores what arrives; its acks are lost
        feed.items[SYMBOL] = rest
        await feed.subscribe(SYMBOL)  # ListFeed pumps its (new) list again
        await feed.wait_pumped()
        await engine.wait_idle()
        await eventually(lambda: pub.errors >= 1, message="the publisher notices")
        await proxy.cut()
        assert seen == sent  # local delivery never waited for the bus
        stats = engine.get_metrics()["sinks"]["bus"]
        assert stats["connected"] is False
        assert stats["buffered"] + stats["pending"] == 3000 - stats["acked"] > 0
        assert stats["dropped"] == 0
        await proxy.restore()
        await eventually(lambda: pub.acked == 3000, timeout=20, message="backlog acked")
    stats = engine.get_metrics()["sinks"]["bus"]
    assert stats["duplicates"] >= 1  # sent while muted: stored, its ack lost, re-sent
    assert stats["resent"] >= stats["duplicates"]
    assert (stats["offered"], stats["dropped"], stats["buffered"]) == (3000, 0, 0)
    assert await bus.count() == 3000
    assert await bus.items() == sent  # exact, in order, each once


async def test_an_unreachable_bus_at_start_holds_the_items_until_it_comes(
    bus: Bus, proxy: Proxy
) -> None:
    await proxy.cut()
    sent = received(bars(2000))
    feed = ListFeed("ftx", {SYMBOL: sent})
    pub = publisher(bus, proxy.url, connect_timeout_s=0.5)
    seen: list[MarketData] = []
    engine = DataEngine(Config(db_path=None))
    engine.add_feed(feed)
    engine.add_sink(pub)
    engine.add_data_callback(lambda symbol, item, level: seen.append(item))
    async with engine:
        await engine.subscribe_symbol(SYMBOL)
        await feed.wait_pumped()
        await engine.wait_idle()
        await eventually(lambda: pub.errors >= 2, message="connect attempts fail")
        stats = pub.statistics()
        assert seen == sent
        assert (stats["connected"], stats["buffered"], stats["acked"]) == (False, 2000, 0)
        assert stats["state"] in ("backoff", "connecting")
        assert "Error" in stats["last_error"]
        await proxy.restore()
    assert pub.statistics()["acked"] == 2000  # close() published the backlog
    assert await bus.items() == sent


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
async def test_a_full_buffer_drops_per_policy_and_counts(
    bus: Bus, proxy: Proxy, policy: str
) -> None:
    await proxy.cut()
    sent = received(bars(150))
    pub = publisher(bus, proxy.url, buffer_size=100, policy=policy, connect_timeout_s=0.5)
    await pub.open()
    for bar in sent:
        pub.offer("ftx", bar, CLEAN)
    stats = pub.statistics()
    assert (stats["offered"], stats["buffered"], stats["dropped_overflow"]) == (150, 100, 50)
    await proxy.restore()
    await pub.close()
    stats = pub.statistics()
    assert (stats["acked"], stats["dropped"], stats["buffered"]) == (100, 50, 0)
    kept = sent[50:] if policy == "drop_oldest" else sent[:100]
    assert await bus.items() == kept


async def test_close_publishes_the_backlog(bus: Bus) -> None:
    sent = received(bars(2000))
    pub = publisher(bus, max_pending=100)
    await pub.open()
    for bar in sent:  # before the publisher has even connected
        pub.offer("ftx", bar, CLEAN)
    await pub.close()
    await pub.close()  # idempotent
    stats = pub.statistics()
    assert (stats["acked"], stats["state"], stats["dropped"]) == (2000, "closed", 0)
    assert await bus.items() == sent


async def test_close_cut_short_counts_what_it_could_not_publish(bus: Bus, proxy: Proxy) -> None:
    await proxy.cut()
    pub = publisher(bus, proxy.url, connect_timeout_s=0.5)
    await pub.open()
    for bar in received(bars(500)):
        pub.offer("ftx", bar, CLEAN)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(pub.close(), 0.3)  # what the engine's stop timeout does
    stats = pub.statistics()
    assert (stats["state"], stats["dropped_at_close"], stats["dropped"]) == ("closed", 500, 500)
    assert stats["offered"] == stats["acked"] + stats["dropped"] + stats["unconfirmed_at_close"]


async def test_malformed_messages_are_reported_terminated_and_skipped(bus: Bus) -> None:
    sent = received(bars(60))
    subject = subject_for(bus.prefix, "bar", "ftx", SYMBOL)
    await bus.js.add_stream(StreamConfig(name=bus.stream, subjects=[f"{bus.prefix}.>"]))
    bad = [b"\x00not msgpack", encode("ftx", TradeBar("ETH-PERP", 1, 1, 1, 1, 1, 1), CLEAN)]
    for i, bar in enumerate(sent):
        await bus.js.publish(subject, encode("ftx", bar, CLEAN))
        if i in (10, 40):
            await bus.js.publish(subject, bad[i == 40])
    seen: list[MarketData] = []
    engine = DataEngine(Config(db_path=None))
    bus_feed = BusFeed("bus", prefix=bus.prefix, stream=bus.stream)
    engine.add_feed(bus_feed)
    engine.add_data_callback(lambda symbol, item, level: seen.append(item))
    async with engine:
        await engine.subscribe_symbol(SYMBOL)
        await eventually(lambda: len(seen) >= 60 and bus_feed.malformed == 2)
        info = await acks_settled(bus, bus_feed.consumer_name(SYMBOL))
        errors = engine.get_metrics()["engine"]["errors_by_kind"]
    assert seen == sent
    assert errors["bus_malformed"] == 2
    assert (info.num_ack_pending, info.num_redelivered, info.num_pending) == (0, 0, 0)


async def test_bars_the_bus_delivers_again_are_dropped_by_continuity(bus: Bus) -> None:
    """The same closed bars (same open time, values and revision) arriving a second time,
    as a redelivery does, reach the callbacks once: continuity drops the repeats."""
    sent = received(bars(100))
    await bus.js.add_stream(StreamConfig(name=bus.stream, subjects=[f"{bus.prefix}.>"]))
    subject = subject_for(bus.prefix, "bar", "ftx", SYMBOL)
    for bar in sent:
        await bus.js.publish(subject, encode("ftx", bar, CLEAN))
    seen: list[MarketData] = []
    engine = DataEngine(Config(db_path=None))
    bus_feed = BusFeed("bus", prefix=bus.prefix, stream=bus.stream)
    engine.add_feed(bus_feed)
    engine.add_data_callback(lambda symbol, item, level: seen.append(item))
    async with engine:
        await engine.subscribe_symbol(SYMBOL)
        await eventually(lambda: len(seen) == 100)
        await engine.unsubscribe_symbol(SYMBOL)
        await bus.js.delete_consumer(bus.stream, bus_feed.consumer_name(SYMBOL))
        await engine.subscribe_symbol(SYMBOL)  # a new consumer: every bar once more
        await eventually(lambda: bus_feed.received == 200)
        await engine.wait_idle()
        outcomes = engine.get_metrics()["engine"]["outcomes"]
    assert seen == sent
    assert outcomes["duplicate"] == 100


async def test_an_existing_stream_with_other_limits_is_used_as_it_is(bus: Bus) -> None:
    await bus.js.add_stream(
        StreamConfig(name=bus.stream, subjects=[f"{bus.prefix}.>"], max_age=600)
    )
    pub = publisher(bus)
    await pub.open()
    pub.offer("ftx", received(bars(1))[0], CLEAN)
    await pub.close()
    stats = pub.statistics()
    assert (stats["acked"], stats["stream_created"]) == (1, False)
    assert "max_age_s is 600.0" in stats["stream_config_differs"]
    assert (await bus.js.stream_info(bus.stream)).config.max_age == 600
