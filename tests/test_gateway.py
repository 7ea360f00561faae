"""The gateway over real loopback sockets: websocket delivery (JSON and msgpack), symbol
filtering, the bearer token, /metrics, /health and /ready.

Data: real FTX BTC-PERP minute bars (tests/fixtures/nautilus_trader/btc-perp-20211231-
20220201_1m.csv). Clients are aiohttp's websocket client; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lean_data import Config, DataEngine
from lean_data.engine.state import EngineState
from lean_data.gateway import CLOSE_GOING_AWAY, Gateway
from lean_data.models import MarketData, TradeBar
from lean_data.quality.levels import DataQualityLevel
from tests.conftest import eventually
from tests.gateway_helpers import (
    SYMBOL,
    LiveFeed,
    bars,
    frame_ohlcv,
    hello_and_subscribe,
    ohlcv,
    read_items,
    receive_message,
    renamed,
    serving,
)
from tests.helpers import ListFeed, received


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
async def test_a_client_gets_every_bar_in_order(fmt: str) -> None:
    sent = received(bars(1000))
    feed = ListFeed("ftx", {SYMBOL: sent})
    async with serving() as (engine, gateway), aiohttp.ClientSession() as session:
        engine.add_feed(feed)
        query = "?format=msgpack" if fmt == "msgpack" else ""
        async with session.ws_connect(f"{gateway.url}/ws{query}") as ws:
            ack = await hello_and_subscribe(ws, [SYMBOL])
            assert ack["symbols"] == [SYMBOL]
            await engine.subscribe_symbol(SYMBOL)
            got = await read_items(ws, len(sent))
    assert [frame_ohlcv(f) for f in got] == [ohlcv(b) for b in sent]
    first = got[0]
    assert first["type"] == "bar"
    assert first["feed"] == "ftx"
    assert first["resolution"] == "1m"
    assert first["closed"] is True
    assert first["revision"] == 0
    assert first["quality"] in {level.name for level in DataQualityLevel}
    assert first["score"] == DataQualityLevel[first["quality"]].value
    assert first["ts_recv"] == sent[0].ts_recv
    assert gateway.statistics()["frames_encoded"] == len(sent)  # encoded once per item


async def test_subscriptions_filter_symbols_and_the_format_can_change() -> None:
    btc = received(bars(200))
    eth = received(renamed(bars(200, 5000), "ETH-PERP"))
    feed = ListFeed("ftx", {SYMBOL: btc, "ETH-PERP": eth})
    async with serving() as (engine, gateway), aiohttp.ClientSession() as session:
        engine.add_feed(feed)
        only_eth = await session.ws_connect(f"{gateway.url}/ws")
        everything = await session.ws_connect(f"{gateway.url}/ws")
        nothing = await session.ws_connect(f"{gateway.url}/ws")
        await hello_and_subscribe(only_eth, ["ETH-PERP"], format="msgpack")
        await hello_and_subscribe(everything, ["*"])
        await hello_and_subscribe(nothing, [SYMBOL, "ETH-PERP"])
        await nothing.send_json({"op": "unsubscribe", "symbols": [SYMBOL, "ETH-PERP"]})
        assert await receive_message(nothing) == {"type": "unsubscribed", "symbols": []}
        await engine.subscribe_symbol(SYMBOL)
        await engine.subscribe_symbol("ETH-PERP")
        got_eth = await read_items(only_eth, len(eth))
        got_all = await read_items(everything, len(btc) + len(eth))
        await nothing.send_json({"op": "ping"})
        assert await receive_message(nothing) == {"type": "pong"}  # and no item before it
        await nothing.send_str("not json")
        assert (await receive_message(nothing))["type"] == "error"
        for ws in (only_eth, everything, nothing):
            await ws.close()
    assert [frame_ohlcv(f) for f in got_eth] == [ohlcv(b) for b in eth]
    by_symbol = {
        s: [frame_ohlcv(f) for f in got_all if f["symbol"] == s] for s in (SYMBOL, "ETH-PERP")
    }
    assert by_symbol == {SYMBOL: [ohlcv(b) for b in btc], "ETH-PERP": [ohlcv(b) for b in eth]}


async def test_nan_volume_is_sent_as_null_in_valid_json() -> None:
    bar = bars(1)[0]
    nan = TradeBar(SYMBOL, bar.ts_event, bar.open, bar.high, bar.low, bar.close, math.nan)
    feed = ListFeed("ftx", {SYMBOL: received([nan])})
    async with serving() as (engine, gateway), aiohttp.ClientSession() as session:
        engine.add_feed(feed)
        async with session.ws_connect(f"{gateway.url}/ws") as ws:
            await hello_and_subscribe(ws, [SYMBOL])
            await engine.subscribe_symbol(SYMBOL)
            message = await ws.receive(timeout=20)
    assert '"volume":null' in message.data
    assert orjson.loads(message.data)["close"] == bar.close


async def test_a_snapshot_sends_the_latest_bar_on_subscribe() -> None:
    sent = received(bars(50))
    feed = ListFeed("ftx", {SYMBOL: sent})
    async with serving() as (engine, gateway), aiohttp.ClientSession() as session:
        engine.add_feed(feed)
        await engine.subscribe_symbol(SYMBOL)
        await feed.wait_pumped()
        await engine.wait_idle()
        async with session.ws_connect(f"{gateway.url}/ws") as ws:
            await hello_and_subscribe(ws, ["*"], snapshot=True)
            (latest,) = await read_items(ws, 1)
    assert latest["snapshot"] is True
    assert frame_ohlcv(latest) == ohlcv(sent[-1])


TOKEN = "tok-3f9a1c7be2d54e0b"  # distinctive, so any leak into the logs is found


async def test_a_token_is_required_and_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sent = received(bars(20))
    feed = ListFeed("ftx", {SYMBOL: sent})
    async with serving(token=TOKEN) as (engine, gateway), aiohttp.ClientSession() as session:
        engine.add_feed(feed)
        for path in ("/ws", "/metrics", "/status"):
            for headers, query in (
                ({}, ""),
                ({"Authorization": "Bearer bad-7c1e"}, ""),
                ({}, "?token=bad-7c1e"),
                ({"Authorization": TOKEN}, ""),  # no scheme
            ):
                async with session.get(f"{gateway.url}{path}{query}", headers=headers) as r:
                    assert r.status == 401, (path, headers, query)
                    assert r.headers["WWW-Authenticate"].startswith("Bearer")
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{gateway.url}/ws?token=bad-7c1e")
        assert refused.value.status == 401
        async with session.get(
            f"{gateway.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
        ) as r:
            assert r.status == 200
        for path in ("/health", "/ready", "/"):  # probes and the page stay open
            async with session.get(f"{gateway.url}{path}") as r:
                assert r.status == 200, path
        async with session.ws_connect(f"{gateway.url}/ws?token={TOKEN}") as by_query:
            await hello_and_subscribe(by_query, [SYMBOL])
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with session.ws_connect(f"{gateway.url}/ws", headers=headers) as by_header:
                await hello_and_subscribe(by_header, [SYMBOL])
                await engine.subscribe_symbol(SYMBOL)
                assert len(await read_items(by_query, len(sent))) == len(sent)
                assert len(await read_items(by_header, len(sent))) == len(sent)
        assert gateway.statistics()["refused"] == 13
    logged = caplog.text
    assert "GET /ws 101" in logged
    assert "GET /metrics 401" in logged
    assert "bad-7c1e" not in logged
    assert TOKEN not in logged


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_metrics_after_a_replay(tmp_path: Path) -> None:
    sent = received(bars(500))
    hole = [*sent[:200], *sent[205:]]  # five bars missing: one gap
    feed = ListFeed("ftx", {SYMBOL: hole})
    engine = DataEngine(Config(db_path=str(tmp_path / "lean.db")))
    release = asyncio.Event()
    seen: list[MarketData] = []

    async def stuck(symbol: str, data: MarketData, quality: DataQualityLevel) -> None:
        seen.append(data)
        await release.wait()  # holds its first item: the rest conflate behind it

    engine.add_data_callback(stuck, policy="conflate", queue_size=1, name="stuck")
    async with serving(engine) as (engine, gateway), aiohttp.ClientSession() as session:
        try:
            engine.add_feed(feed)
            async with session.ws_connect(f"{gateway.url}/ws") as ws:
                await hello_and_subscribe(ws, ["*"])
                await engine.subscribe_symbol(SYMBOL)
                await read_items(ws, len(hole))

            def stored() -> bool:
                storage = engine.get_metrics()["storage"]
                return storage["queue_depth"] == 0 and storage["rows_written"] >= len(hole)

            await eventually(stored, message="storage wrote every bar")
            async with session.get(f"{gateway.url}/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain")
                text = await response.text()
            storage = engine.get_metrics()["storage"]
        finally:
            release.set()
    got = _samples(text)
    n = float(len(hole))
    ftx = (("feed", "ftx"),)
    assert got[("lean_data_messages_total", ())] == n
    assert got[("lean_data_accepted_total", ())] == n
    assert got[("lean_data_feed_messages_total", ftx)] == n
    assert got[("lean_data_feed_emitted_total", ftx)] == n
    assert got[("lean_data_feed_connected", ftx)] == 1.0
    assert got[("lean_data_feed_state", (("feed", "ftx"), ("state", "connected")))] == 1.0
    assert got[("lean_data_feed_state", (("feed", "ftx"), ("state", "failed")))] == 0.0
    assert got[("lean_data_engine_running", ())] == 1.0
    assert got[("lean_data_inbox_depth", ())] == 0.0
    levels = {k[1][1][1]: v for k, v in got.items() if k[0] == "lean_data_quality_items_total"}
    assert sum(levels.values()) == n
    assert set(levels) == {lv.name for lv in DataQualityLevel}
    assert got[("lean_data_continuity_gaps_total", ())] == 1.0
    assert got[("lean_data_quality_gaps_total", ftx)] == 1.0
    assert got[("lean_data_gateway_item_latency_seconds_count", ftx)] == n
    assert got[("lean_data_gateway_item_latency_seconds_bucket", (*ftx, ("le", "+Inf")))] == n
    assert got[("lean_data_latency_seconds", (("stat", "max"),))] > 0
    assert got[("lean_data_gateway_sent_total", ())] == n
    assert got[("lean_data_gateway_dropped_total", ())] == 0.0
    assert got[("lean_data_gateway_items_total", ())] == n
    assert got[("lean_data_sink_statistic", (("name", "items"), ("sink", "gateway")))] == n
    assert got[("lean_data_storage_rows_written_total", ())] == storage["rows_written"] >= n
    assert got[("lean_data_storage_queue_depth", ())] == 0.0
    assert got[("lean_data_storage_failed", ())] == 0.0
    stuck_sub = (("subscriber", "stuck"),)
    assert got[("lean_data_subscriber_dropped_total", stuck_sub)] == n - 2  # 1 held, 1 queued
    assert got[("lean_data_subscriber_queue_depth", stuck_sub)] == 1.0
    assert got[("lean_data_engine_gauge", (("name", "subscriber_drops"),))] == n - 2
    assert len(seen) >= 1


async def test_ready_follows_a_feed_that_goes_silent_and_resumes() -> None:
    feed = LiveFeed("live", stale_after=0.5)
    source = iter(received(bars(5000)))
    async with serving() as (engine, gateway), aiohttp.ClientSession() as session:
        engine.add_feed(feed)
        await engine.subscribe_symbol(SYMBOL, feed_name="live")

        async def status(path: str) -> tuple[int, dict[str, Any]]:
            async with session.get(f"{gateway.url}{path}") as response:
                return response.status, await response.json()

        async def ready_while_emitting() -> None:
            """Emit a bar before each look, so the feed is fresh whatever the scheduling."""
            for bar in source:
                await feed.emit(bar)
                code, body = await status("/ready")
                if code == 200:
                    assert body["ready"] is True
                    assert body["problems"] == []
                    return
            raise AssertionError("never ready")

        await ready_while_emitting()
        for _ in range(400):  # silent now: it goes stale by itself
            if (await status("/ready"))[0] == 503:
                break
            await asyncio.sleep(0.05)
        code, body = await status("/ready")
        assert code == 503
        assert body["ready"] is False
        (problem,) = body["problems"]
        assert problem["feed"] == "live"
        assert problem["symbol"] == SYMBOL
        assert problem["reason"] == "stale"
        assert problem["limit_s"] == 0.5
        assert problem["silent_s"] > 0.5
        assert await status("/health") == (200, {"live": True, "engine": "running"})
        await ready_while_emitting()  # it resumes: ready again
        await feed.close()  # a disconnected feed is not ready either
        code, body = await status("/ready")
        assert code == 503
        assert body["problems"] == [
            {"feed": "live", "reason": "feed_not_connected", "status": "closed"}
        ]
        assert (await status("/health"))[0] == 200


async def test_the_engine_closes_the_gateway_and_its_clients_on_stop() -> None:
    engine = DataEngine(Config(db_path=None))
    await engine.start()
    gateway = await engine.serve(port=0)
    assert isinstance(gateway, Gateway)
    assert gateway.port > 0
    assert gateway.url == f"http://127.0.0.1:{gateway.port}"
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gateway.url}/ws")
        await hello_and_subscribe(ws, ["*"])
        reading = asyncio.create_task(ws.receive(timeout=20))  # a client that reads
        await engine.stop()
        assert engine.state is EngineState.CLOSED
        closing = await reading
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == CLOSE_GOING_AWAY
        await ws.close()
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"{gateway.url}/health")
    await gateway.close()  # idempotent
