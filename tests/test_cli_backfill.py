"""``lean-data backfill`` as a real subprocess against loopback Binance and Alpaca servers.

The servers run in this process, each on its own event loop in a thread, and replay real
data: Binance klines of BTC/BUSD 2022-12-13 (``lean_data/demo_data``, LEAN copy of Binance
1-minute bars) and ADA/BTC 2021-11-27 (raw Binance klines, ``tests/fixtures/nautilus_trader``)
plus ETH/BTC 5-minute klines (freqtrade's Binance test data, ``tests/fixtures/freqtrade``:
the server knows the symbol but has no 1-minute klines of it, so its chunks come back empty);
Alpaca ``/v2/stocks/bars`` of AAPL, AIG and SPY daily bars (LEAN, ``tests/fixtures/lean``).
"""

from __future__ import annotations

import asyncio
import csv
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from lean_data.loaders import load_file
from lean_data.models import TradeBar, datetime_to_ns
from lean_data.testing import AlpacaLoopbackServer, BinanceLoopbackServer

from .conftest import FIXTURES

ROOT = Path(__file__).parent.parent
BTC_FILE = ROOT / "lean_data/demo_data/lean/crypto/binance/minute/btcbusd/20221213_trade.zip"
ADA_FILE = FIXTURES / "nautilus_trader/ADABTC-1m-2021-11-27.csv"
ETH_FILE = FIXTURES / "freqtrade/ETH_BTC-5m.feather"
DAILY = FIXTURES / "lean/equity/usa/daily"
STOCKS = ("AAPL", "AIG", "SPY")
KEYS = {"APCA_API_KEY_ID": "PKLOOPBACK", "APCA_API_SECRET_KEY": "sk-loopback-secret-42"}
Row = tuple[str, int, float, float, float, float, float]


def bars_of(path: Path, symbol: str) -> list[TradeBar]:
    return [
        TradeBar(symbol, b.ts_event, b.open, b.high, b.low, b.close, b.volume,
                 resolution=b.resolution)
        for b in load_file(path)
        if isinstance(b, TradeBar)
    ]  # fmt: skip


def btc() -> list[TradeBar]:
    return bars_of(BTC_FILE, "BTC/BUSD")


def ada_rows() -> list[list[str]]:
    with ADA_FILE.open(newline="") as f:
        return list(csv.reader(f))


def stocks() -> dict[str, list[TradeBar]]:
    return {s: bars_of(DAILY / f"{s.lower()}.zip", s) for s in STOCKS}


def row(bar: TradeBar) -> Row:
    return (bar.symbol, bar.ts_event, bar.open, bar.high, bar.low, bar.close, bar.volume)


class Served:
    """A loopback server on its own event loop in a thread (the CLI is a subprocess)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Any:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self.server

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop (its state is that loop's)."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)


class GatedBinance(BinanceLoopbackServer):
    """Answers ``open_requests`` klines requests, then holds the next ones until released."""

    def __init__(self, *args: Any, open_requests: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.open_requests = open_requests
        self.held = 0
        self.release: asyncio.Event | None = None

    async def _klines(self, request: web.Request) -> web.Response:
        if self.open_requests <= 0:
            self.release = self.release or asyncio.Event()
            self.held += 1
            await self.release.wait()
        self.open_requests -= 1
        return await super()._klines(request)


@pytest.fixture
def binance_klines() -> dict[str, list[Any]]:
    return {"BTCBUSD": btc(), "ADABTC": ada_rows(), "ETHBTC": bars_of(ETH_FILE, "ETH/BTC")}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lean_data.cli", "backfill", *args]


def environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "LEAN_DATA_"))}
    env.update(extra)
    return env


def backfill(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli(*args), capture_output=True, text=True, timeout=120, env=env or environ()
    )


def stored(db: Path, feed: str = "") -> list[Row]:
    where = "where feed = ?" if feed else ""
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "select symbol, ts_event, open, high, low, close, volume from bars "
            f"{where} order by symbol, ts_event",
            (feed,) if feed else (),
        ).fetchall()


def klines_requests(server: Any) -> list[Any]:
    return [r for r in server.rest_requests if r.path == "/api/v3/klines"]


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.01)


BINANCE_RANGE = ("--start", "2021-11-27", "--end", "2022-12-14")


def test_binance_three_symbols_stored_exactly_then_a_second_run_fetches_nothing(
    tmp_path: Path, binance_klines: dict[str, list[Any]]
) -> None:
    """Done-when 1 and 2 (Binance): the server's rows, value for value; then no request."""
    with Served(BinanceLoopbackServer(klines=binance_klines)) as server:
        args = ("binance", "BTC/BUSD", "ADA/BTC", "ETH/BTC", *BINANCE_RANGE, "--no-progress",
                "--feed-option", f"rest_url={server.rest_url}", "--output", str(tmp_path),
                "--chunk-bars", "200000")  # fmt: skip
        first = backfill(*args)
        asked = len(klines_requests(server))
        second = backfill(*args)
        asked_again = len(klines_requests(server)) - asked
    assert first.returncode == 0, first.stderr
    ada = [("ADA/BTC", int(r[0]) * 1_000_000, *(float(v) for v in r[1:6])) for r in ada_rows()]
    assert stored(tmp_path / "lean_data.db", "binance") == sorted(ada + [row(b) for b in btc()])
    assert "binance 1m: fetched 1,450 bars" in first.stdout
    lines = {line.split()[0]: line.split() for line in first.stdout.splitlines() if line}
    assert lines["BTC/BUSD"][2:4] == ["0", "1,440"]  # stored before, fetched
    assert lines["ADA/BTC"][2:4] == ["0", "10"]
    eth = lines["ETH/BTC"]  # every chunk empty: the server has no 1m klines of it
    assert eth[2:4] == ["0", "0"]
    assert eth[4] == f"{eth[5]}/{eth[5]}"
    assert asked > 0
    assert second.returncode == 0, second.stderr
    assert asked_again == 0
    assert "nothing to fetch" in second.stdout
    assert "no request was made" in second.stdout
    lines = {line.split()[0]: line.split() for line in second.stdout.splitlines() if line}
    assert lines["BTC/BUSD"][2:4] == ["1,440", "0"]
    assert stored(tmp_path / "lean_data.db", "binance") == sorted(ada + [row(b) for b in btc()])


def test_binance_five_minute_klines_of_a_third_symbol_stored_exactly(
    tmp_path: Path, binance_klines: dict[str, list[Any]]
) -> None:
    """ETH/BTC's real 5m klines (5,760 over three weeks of 2018), in chunks of a day."""
    with Served(BinanceLoopbackServer(klines=binance_klines)) as server:
        url = f"rest_url={server.rest_url}"
        args = ("binance", "ETH/BTC", "--start", "2018-01-10", "--end", "2018-02-01",
                "--resolution", "5m", "--chunk-bars", "288", "--no-progress",
                "--feed-option", url, "--output", str(tmp_path))  # fmt: skip
        first = backfill(*args)
        second = backfill(*args)
    assert first.returncode == 0, first.stderr
    eth = binance_klines["ETHBTC"]
    assert len(eth) == 5760
    wire = [(*row(b)[:2], *(float(f"{v:.8f}") for v in row(b)[2:])) for b in eth]  # 8 decimals
    assert stored(tmp_path / "lean_data.db", "binance") == wire  # as Binance's strings say
    assert "binance 5m: fetched 5,760 bars" in first.stdout
    assert second.returncode == 0, second.stderr
    assert "nothing to fetch" in second.stdout


def test_alpaca_three_symbols_stored_exactly_then_a_second_run_fetches_nothing(
    tmp_path: Path,
) -> None:
    """Done-when 1 and 2 (Alpaca): real daily bars of three stocks, then no request."""
    source = stocks()
    start, end = "2013-01-01", "2014-01-01"
    lo, hi = datetime_to_ns_text(start), datetime_to_ns_text(end)
    expected = sorted(row(b) for bars in source.values() for b in bars if lo <= b.ts_event < hi)
    assert len(expected) > 700
    server = AlpacaLoopbackServer(
        bars=source, key=KEYS["APCA_API_KEY_ID"], secret=KEYS["APCA_API_SECRET_KEY"]
    )
    with Served(server):
        args = ("alpaca", *STOCKS, "--start", start, "--end", end, "--resolution", "1d",
                "--feed-option", f"data_url={server.rest_url}", "--output", str(tmp_path),
                "--no-progress")  # fmt: skip
        first = backfill(*args, env=environ(**KEYS))
        asked = len(server.rest_requests)
        second = backfill(*args, env=environ(**KEYS))
        asked_again = len(server.rest_requests) - asked
    assert first.returncode == 0, first.stderr
    assert stored(tmp_path / "lean_data.db", "alpaca") == expected
    assert asked == 6  # 2 chunks a symbol: the epoch-aligned 1440-day boundary is 2013-05-15
    assert second.returncode == 0, second.stderr
    assert asked_again == 0
    assert "nothing to fetch" in second.stdout
    assert KEYS["APCA_API_SECRET_KEY"] not in first.stdout + first.stderr


def datetime_to_ns_text(text: str) -> int:
    from datetime import UTC, datetime

    return datetime_to_ns(datetime.fromisoformat(text).replace(tzinfo=UTC))


def test_an_interrupted_run_resumes_and_ends_with_the_same_rows(
    tmp_path: Path, binance_klines: dict[str, list[Any]]
) -> None:
    """Done-when 3: SIGINT while the 6th of 24 chunks is held by the server; then resume."""
    day = ("--start", "2022-12-13", "--end", "2022-12-14", "--chunk-bars", "60", "--no-progress")
    with Served(BinanceLoopbackServer(klines=binance_klines)) as plain:
        whole = backfill("binance", "BTC/BUSD", *day, "--output", str(tmp_path / "whole"),
                         "--feed-option", f"rest_url={plain.rest_url}")  # fmt: skip
    assert whole.returncode == 0, whole.stderr
    reference = stored(tmp_path / "whole/lean_data.db")
    assert reference == [row(b) for b in btc()]

    gated = GatedBinance(klines=binance_klines, open_requests=5)
    served = Served(gated)
    out = tmp_path / "resumed"
    with served:
        args = ("binance", "BTC/BUSD", *day, "--output", str(out),
                "--feed-option", f"rest_url={gated.rest_url}")  # fmt: skip
        proc = subprocess.Popen(
            cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ()
        )
        try:
            wait_until(lambda: served.call(lambda: gated.held) == 1)
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
        partial = stored(out / "lean_data.db")
        served.call(lambda: setattr(gated, "open_requests", 10**6))
        served.call(lambda: gated.release.set() if gated.release else None)
        before = len(klines_requests(gated))
        again = backfill(*args)
        resumed = klines_requests(gated)[before:]
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == (
        "lean-data: interrupted: 5 of 24 chunks stored; run the same command again to fetch "
        "the rest"
    )
    assert "BTC/BUSD" in stdout  # the summary so far
    assert partial == reference[:300]  # five chunks of 60 minutes, all committed
    assert again.returncode == 0, again.stderr
    assert stored(out / "lean_data.db") == reference
    sixth = datetime_to_ns_text("2022-12-13T05:00") // 1_000_000
    assert int(resumed[0].params["startTime"]) == sixth  # resumed where storage stopped
    assert "fetched 1,140 bars in 19 of 19 chunks" in again.stdout


def test_a_429_storm_slows_the_run_but_every_row_arrives(tmp_path: Path) -> None:
    """Done-when 4: 30 consecutive 429s with Retry-After 0; retries counted and recorded."""
    source = stocks()
    server = AlpacaLoopbackServer(
        bars=source, key=KEYS["APCA_API_KEY_ID"], secret=KEYS["APCA_API_SECRET_KEY"]
    )
    with Served(server):
        server.faults.retry_after = 0  # set before the CLI starts: no request yet
        server.faults.rate_limit_next = 30
        result = backfill("alpaca", *STOCKS, "--start", "2013-01-01", "--end", "2014-01-01",
                          "--resolution", "1d", "--output", str(tmp_path), "--no-progress",
                          "--feed-option", f"data_url={server.rest_url}",
                          "--feed-option", "request_attempts=40",
                          "--feed-option", "backoff.base_s=0.001",
                          "--feed-option", "backoff.cap_s=0.004",
                          env=environ(**KEYS))  # fmt: skip
        statuses = [r.status for r in server.rest_requests]
    assert result.returncode == 0, result.stderr
    assert statuses == [429] * 30 + [200] * 6
    lo, hi = datetime_to_ns_text("2013-01-01"), datetime_to_ns_text("2014-01-01")
    expected = sorted(row(b) for bars in source.values() for b in bars if lo <= b.ts_event < hi)
    assert stored(tmp_path / "lean_data.db") == expected
    assert "(0 empty, 0 failed, 30 retries)" in result.stdout
    with sqlite3.connect(tmp_path / "lean_data.db") as conn:
        (limited,) = conn.execute(
            "select count(*) from errors where kind = 'rate_limited'"
        ).fetchone()
    assert limited == 30


def test_progress_bars_on_stderr_unless_no_progress(
    tmp_path: Path, binance_klines: dict[str, list[Any]]
) -> None:
    """Done-when 5: a bar per symbol and an overall one, on stderr."""
    with Served(BinanceLoopbackServer(klines=binance_klines)) as server:
        shown = backfill("binance", "BTC/BUSD", "ADA/BTC", "--start", "2022-12-13",
                         "--end", "2022-12-14", "--output", str(tmp_path / "a"),
                         "--feed-option", f"rest_url={server.rest_url}")  # fmt: skip
        hidden = backfill("binance", "BTC/BUSD", "--start", "2022-12-13", "--end",
                          "2022-12-14", "--output", str(tmp_path / "b"), "--no-progress",
                          "--feed-option", f"rest_url={server.rest_url}")  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "BTC/BUSD: 100%" in shown.stderr
    assert "1440/1440" in shown.stderr
    assert "ADA/BTC: 100%" in shown.stderr
    assert "all symbols: 100%" in shown.stderr
    assert "2880/2880" in shown.stderr
    assert hidden.returncode == 0
    assert hidden.stderr == ""


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("binanse", "BTC/USDT", "--start", "2024-01-01"), {},
         "lean-data: error: unknown feed 'binanse' (did you mean 'binance'?); pass alpaca, "
         "binance, a ccxt exchange id such as kraken, or define it in a config file "
         "([feeds.NAME] with type = ...)"),
        (("binance", "BTC/USDT", "--start", "2024-01-02", "--end", "2024-01-01"), {},
         "lean-data: error: --start 2024-01-02T00:00:00Z is not before --end "
         "2024-01-01T00:00:00Z; pass a start before the end"),
        (("binance", "BTC/USDT", "--start", "2024-01-01", "--resolution", "7x"), {},
         "lean-data: error: --resolution: expected a resolution such as 'tick', '1s', '5m', "
         "'4h' or '1d', got '7x'"),
        (("binance", "BTC/USDT", "--start", "2024-01-01", "--resolution", "7m"), {},
         "lean-data: error: --resolution 7m: binance has no such bars (expected one of "
         "Binance's kline intervals"),
        (("binance", "BTC/USDT", "--start", "yesterday"), {},
         "lean-data: error: --start 'yesterday': not a date or time; use ISO 8601"),
        (("binance", "BTC/USDT", "--start", "2024-01-01", "--feed-option", "rest_ur=x"), {},
         "lean-data: error: --feed-option rest_ur: unknown option of binance feeds (did you "
         "mean rest_url?); known: ws_url, rest_url, resolution, channels,"),
        (("binance", "BTC/USDT", "--start", "2024-01-01", "--feed-option",
          "request_attempts=many"), {},
         'lean-data: error: --feed-option request_attempts: "many" is not valid: expected an '
         "integer"),
        (("alpaca", "SPY", "--start", "2024-01-01"), {},
         "lean-data: error: feed alpaca: alpaca feeds need API keys and none are set; set "
         "APCA_API_KEY_ID and APCA_API_SECRET_KEY"),
        (("binance", "--start", "2024-01-01"), {},
         "lean-data: error: no SYMBOL; pass one or more after binance"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_creates_nothing(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    """Done-when 6."""
    result = backfill(*args, "--output", str(tmp_path / "out"), env=environ(**env))
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert not (tmp_path / "out").exists()


def test_the_config_file_defines_the_feed_and_the_job(
    tmp_path: Path, binance_klines: dict[str, list[Any]]
) -> None:
    """[feeds.NAME] and [backfill] run with no positionals; the command line wins."""
    with Served(BinanceLoopbackServer(klines=binance_klines)) as server:
        job = tmp_path / "job.toml"
        job.write_text(
            "[feeds.loop]\n"
            'type = "binance"\n'
            f'rest_url = "{server.rest_url}"\n'
            "request_attempts = 3\n"
            "[backfill]\n"
            'feed = "loop"\n'
            'symbols = ["BTC/BUSD"]\n'
            'start = "2022-12-13"\n'
            'end = "2022-12-14"\n'
            'resolution = "1m"\n'
        )
        result = backfill("--config", str(job), "--end", "2022-12-13T01:00",
                          "--output", str(tmp_path), "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert stored(tmp_path / "lean_data.db", "loop") == [row(b) for b in btc()[:60]]
    job.write_text(job.read_text().replace("request_attempts", "request_atempts"))
    bad = backfill("--config", str(job), "--output", str(tmp_path), "--no-progress")
    assert bad.returncode == 1
    assert bad.stderr == (
        f"lean-data: error: {job}:4: feeds.loop.request_atempts: unknown option of binance "
        "feeds (did you mean request_attempts?); known: ws_url, rest_url, resolution, "
        "channels, emit_partial, symbols, max_queue, backoff, cadence_s, stale_factor, "
        "open_timeout_s, request_attempts, request_budget_s, http_timeout_s, "
        "ws_max_message_bytes, ws_buffer_bytes, transport\n"
    )
