"""The event-loop runner (``lean_data.engine.runner``) and the engine on uvloop.

Each test that compares loops runs its body through the runner itself (``runner.run(...,
loop=name)``), so the loop under test is the one users get. Data: the bundled demo files
(real SPY, AAPL, BTC bars; lean_data/demo_data), real Binance BTC/BUSD minute bars through the
loopback Binance server, real FTX BTC-PERP bars through the gateway. Nothing is mocked: the
"uvloop not installed" case runs in a child interpreter where importing uvloop fails.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lean_data import Config, DataEngine, DataQualityLevel, TradeBar
from lean_data.cli.commands import demo_files
from lean_data.engine import runner
from lean_data.errors import ConfigError
from lean_data.feeds.replay import ReplayFeed
from lean_data.models import MarketData, with_ts_recv
from lean_data.storage.factory import create_storage
from lean_data.testing import BinanceLoopbackServer
from tests.conftest import eventually
from tests.gateway_helpers import SYMBOL as FTX_SYMBOL
from tests.gateway_helpers import bars as ftx_bars
from tests.gateway_helpers import frame_ohlcv, hello_and_subscribe, ohlcv, read_items, serving
from tests.helpers import ListFeed, received
from tests.test_binance_feed import SYMBOL, feed_for, key, push_klines, real_bars

uvloop = pytest.importorskip("uvloop")

LOOPS = ("asyncio", "uvloop")


def loop_kind() -> str:
    """The running loop's class, as ``module.Name`` (what the runner made, seen directly)."""
    running = asyncio.get_running_loop()
    return f"{type(running).__module__}.{type(running).__name__}"


async def kind_and_name() -> tuple[str, str]:
    return loop_kind(), runner.running_loop_name()


# ---------------------------------------------------------------------------- choosing
def test_auto_runs_on_uvloop_when_it_is_installed() -> None:
    kind, name = runner.run(kind_and_name())
    assert (kind, name) == ("uvloop.Loop", "uvloop")
    assert runner.uvloop_version() == uvloop.__version__


@pytest.mark.parametrize(
    ("loop", "kind"), [("asyncio", "asyncio.unix_events._UnixSelectorEventLoop"),
                       ("uvloop", "uvloop.Loop"), ("UVLOOP", "uvloop.Loop")],
)  # fmt: skip
def test_each_named_loop_is_the_loop_the_coroutine_runs_on(loop: str, kind: str) -> None:
    assert runner.run(kind_and_name(), loop=loop) == (kind, loop.lower())


def test_config_loop_names_the_loop_and_the_argument_wins_over_it() -> None:
    plain = Config(db_path=None, loop="asyncio")
    assert runner.run(kind_and_name(), config=plain)[1] == "asyncio"
    assert runner.run(kind_and_name(), config=plain, loop="uvloop")[1] == "uvloop"
    assert runner.run(kind_and_name(), config=Config(db_path=None))[1] == "uvloop"  # auto


def test_run_returns_the_result_raises_the_error_and_closes_the_loop() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def fails() -> None:
        loops.append(asyncio.get_running_loop())
        raise ValueError("from the coroutine")

    with pytest.raises(ValueError, match="from the coroutine"):
        runner.run(fails(), loop="uvloop")
    assert loops[0].is_closed()


def test_an_unknown_loop_is_one_config_error_line_and_the_coroutine_is_closed() -> None:
    coro = kind_and_name()
    with pytest.raises(ConfigError) as caught:
        runner.run(coro, loop="trio")
    assert str(caught.value) == "loop must be one of auto, asyncio, uvloop, got 'trio'"
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED  # no "never awaited"


_WITHOUT_UVLOOP = r"""
import sys
sys.modules["uvloop"] = None  # importing uvloop fails here, as when it is not installed
import asyncio
from lean_data.engine import runner
from lean_data.errors import ConfigError

async def name():
    return runner.running_loop_name(), runner.loop_mismatch("uvloop")

print(runner.uvloop_version())
print(*runner.run(name()), sep="\n")
try:
    runner.run(name(), loop="uvloop")
except ConfigError as exc:
    print(exc)
"""


def test_without_uvloop_auto_is_asyncio_and_uvloop_says_how_to_install_it() -> None:
    child = subprocess.run(
        [sys.executable, "-W", "error", "-c", _WITHOUT_UVLOOP],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (child.returncode, child.stderr) == (0, "")
    assert child.stdout.splitlines() == [
        "None",
        "asyncio",
        "Config.loop is 'uvloop' but the engine runs on asyncio's default loop: start it with "
        "lean_data.run(main(), config=config) instead of asyncio.run "
        '(pip install "lean-data[uvloop]")',
        "loop='uvloop' but uvloop is not installed: pip install \"lean-data[uvloop]\"",
    ]


@pytest.mark.parametrize("loop", LOOPS)
def test_only_a_uvloop_config_on_another_loop_is_a_mismatch(loop: str) -> None:
    async def mismatches() -> list[str | None]:
        return [runner.loop_mismatch(asked) for asked in ("auto", "asyncio", "uvloop")]

    found = runner.run(mismatches(), loop=loop)
    assert found[:2] == [None, None]
    if loop == "uvloop":
        assert found[2] is None
    else:
        assert found[2] == (
            "Config.loop is 'uvloop' but the engine runs on asyncio's default loop: start it "
            "with lean_data.run(main(), config=config) instead of asyncio.run"
        )


# ---------------------------------------------------------------------------- Config.loop
def test_config_loop_is_checked_and_lower_cased() -> None:
    assert Config().loop == "auto"
    assert Config(loop="UVLOOP").loop == "uvloop"
    with pytest.raises(ConfigError, match=r"^Config.loop must be one of auto, asyncio, uvloop"):
        Config(loop="uv")


def test_config_loop_from_a_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = tmp_path / "good.toml"
    good.write_text('loop = "asyncio"\n')
    assert Config.from_file(good).loop == "asyncio"
    bad = tmp_path / "bad.toml"
    bad.write_text('buffer_size = 10\nloop = "uvlop"\n')
    with pytest.raises(ConfigError) as caught:
        Config.from_file(bad)
    assert str(caught.value) == (
        f"{bad}:2: Config.loop must be one of auto, asyncio, uvloop, got 'uvlop'"
    )
    monkeypatch.setenv("LEAN_DATA_LOOP", "UVLOOP")
    assert Config.from_env().loop == "uvloop"
    assert Config.from_file(good).loop == "uvloop"  # the variable wins over the file


# ---------------------------------------------------------------------------- the engine
Seen = dict[str, list[str]]


def shown(item: MarketData) -> str:
    """An item as text without its receive time (a wall-clock stamp that differs per run)."""
    return repr(with_ts_recv(item, 0))


async def replay_demo(db: Path) -> tuple[Seen, Seen, Seen, int]:
    """Replay the demo files into an engine storing in ``db``.

    Returns what a sync callback saw and what an async callback saw (per series, in order,
    with their levels), the stored bars per series, and how many items the files hold.
    """
    feed = ReplayFeed("replay", demo_files())
    total = sum(feed.count(symbol) for symbol in feed.symbols)
    inline: Seen = defaultdict(list)
    queued: Seen = defaultdict(list)

    # Per series: a gap's backfill answer may land at another moment on another loop, which
    # interleaves the series of one symbol (BTC/USD 1d and 1m) differently.
    def series(symbol: str, data: MarketData) -> str:
        return f"{symbol} {type(data).__name__} {getattr(data, 'resolution', '')}"

    def on_data(symbol: str, data: MarketData, quality: DataQualityLevel) -> None:
        inline[series(symbol, data)].append(f"{quality.name} {shown(data)}")

    async def on_data_async(symbol: str, data: MarketData, quality: DataQualityLevel) -> None:
        await asyncio.sleep(0)  # a real await: the queue worker gives the loop up each item
        queued[series(symbol, data)].append(f"{quality.name} {shown(data)}")

    engine = DataEngine(Config(db_path=db, metrics_interval_s=0))
    engine.add_feed(feed)
    engine.add_data_callback(on_data)
    engine.add_data_callback(on_data_async)
    for symbol in feed.symbols:
        await engine.subscribe_symbol(symbol, data=feed.data_of(symbol))
    async with engine:
        await feed.wait_finished()
        await engine.wait_idle()
        await eventually(lambda: sum(map(len, queued.values())) == sum(map(len, inline.values())))
    return dict(inline), dict(queued), await stored_bars(db), total


async def stored_bars(db: Path) -> Seen:
    storage = create_storage(Config(db_path=db))
    assert storage is not None
    out: Seen = {}
    async with storage:
        for feed, symbol, resolution in await storage.bar_series_keys():
            rows = await storage.get_market_data(symbol, 0, 2**62, resolution=resolution, feed=feed)
            out[f"{feed} {symbol} {resolution}"] = [shown(b) for b in rows]
    return out


def test_a_demo_replay_delivers_and_stores_the_same_items_on_both_loops(tmp_path: Path) -> None:
    runs = {loop: runner.run(replay_demo(tmp_path / f"{loop}.db"), loop=loop) for loop in LOOPS}
    inline, queued, stored, total = runs["asyncio"]
    assert sum(map(len, inline.values())) == total > 10_000  # every item of the files
    assert queued == inline  # the async callback: same items, same order, same levels
    assert sum(map(len, stored.values())) > 10_000
    assert runs["uvloop"] == runs["asyncio"]  # same order, counts, levels and rows


async def binance_bars(db: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Stream real klines from the loopback Binance server; what the callback saw, stored."""
    bars = real_bars(60)
    seen: list[MarketData] = []

    async def on_bar(symbol: str, bar: MarketData, quality: DataQualityLevel) -> None:
        seen.append(bar)

    async with BinanceLoopbackServer() as server:
        push_klines(server, bars)
        async with DataEngine(Config(db_path=db)) as engine:
            engine.add_feed(feed_for(server))
            engine.add_data_callback(on_bar)
            assert await engine.subscribe_symbol(SYMBOL) == "binance"
            await eventually(lambda: len(seen) == len(bars))
            await engine.wait_idle()
    storage = create_storage(Config(db_path=db))
    assert storage is not None
    async with storage:
        rows = await storage.get_market_data(SYMBOL, 0, 2**62)
    assert [key(b) for b in seen] == [key(b) for b in bars]
    return [key(b) for b in seen], [key(b) for b in rows]


@pytest.mark.parametrize("loop", LOOPS)
def test_a_binance_websocket_feed_reaches_async_callbacks_and_sqlite(
    loop: str, tmp_path: Path
) -> None:
    seen, rows = runner.run(binance_bars(tmp_path / "binance.db"), loop=loop)
    assert rows == seen == [key(b) for b in real_bars(60)]


async def gateway_frames(send_buffer_bytes: int) -> list[dict[str, Any]]:
    """Serve real bars over the gateway (its sockets' SO_SNDBUF set) to an aiohttp client."""
    sent = received(ftx_bars(500))
    async with (
        serving(send_buffer_bytes=send_buffer_bytes) as (engine, gateway),
        aiohttp.ClientSession() as session,
    ):
        engine.add_feed(ListFeed("ftx", {FTX_SYMBOL: sent}))
        async with session.ws_connect(f"{gateway.url}/ws") as ws:
            await hello_and_subscribe(ws, [FTX_SYMBOL])
            await engine.subscribe_symbol(FTX_SYMBOL)
            frames = await read_items(ws, len(sent))
    assert all(isinstance(b, TradeBar) for b in sent)
    assert [frame_ohlcv(f) for f in frames] == [ohlcv(b) for b in sent]  # type: ignore[arg-type]  # TradeBars, checked above
    return frames


@pytest.mark.parametrize("loop", LOOPS)
def test_the_gateway_serves_every_bar_with_its_send_buffer_set(loop: str) -> None:
    frames = runner.run(gateway_frames(64 * 1024), loop=loop)
    assert [f["ts_event"] for f in frames] == [b.ts_event for b in ftx_bars(500)]


_UNTIL_INTERRUPTED = """
import asyncio, sys
from lean_data.engine import runner

async def main():
    try:
        print(runner.running_loop_name(), flush=True)
        await asyncio.Event().wait()
    finally:
        print("cleaned up", flush=True)

try:
    runner.run(main(), loop=sys.argv[1])
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
"""


@pytest.mark.parametrize("loop", LOOPS)
def test_ctrl_c_cancels_the_main_coroutine_on_both_loops(loop: str) -> None:
    with subprocess.Popen(
        [sys.executable, "-W", "error", "-c", _UNTIL_INTERRUPTED, loop],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as child:  # fmt: skip
        assert child.stdout is not None
        assert child.stdout.readline() == f"{loop}\n"  # running, waiting for the signal
        os.kill(child.pid, signal.SIGINT)
        out, err = child.communicate(timeout=30)
    assert (out, err, child.returncode) == ("cleaned up\nKeyboardInterrupt\n", "", 0)


@pytest.mark.parametrize(("loop", "warned"), [("asyncio", 1), ("uvloop", 0)])
def test_start_warns_once_when_the_config_asks_for_uvloop_and_the_loop_is_not(
    loop: str, warned: int, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with DataEngine(Config(db_path=None, loop="uvloop")) as engine:
            await engine.start()  # idempotent while running: no second warning
        async with DataEngine(Config(db_path=None, loop="auto")):
            pass  # auto takes the loop it finds: never a warning

    with caplog.at_level(logging.WARNING, logger="lean_data.engine.core"):
        runner.run(main(), loop=loop)
    said = [r.getMessage() for r in caplog.records if "Config.loop" in r.getMessage()]
    assert (
        said
        == [
            "Config.loop is 'uvloop' but the engine runs on asyncio's default loop: start it "
            "with lean_data.run(main(), config=config) instead of asyncio.run"
        ]
        * warned
    )
