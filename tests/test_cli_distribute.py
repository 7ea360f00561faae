"""``lean-data collect`` and ``lean-data serve``: the README's two-process example, run.

Real FTX BTC-PERP minute bars (the first 1,500 rows of tests/fixtures/nautilus_trader/
btc-perp-20211231-20220201_1m.csv, a copy of ../shared/data's file) through real NATS
JetStream at 127.0.0.1:4222 (the tests fail, never skip, when it is absent) and a real
websocket client of the gateway. Every command runs as its own OS process.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.conftest import FIXTURES
from tests.test_bus import bus_context

FTX = FIXTURES / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"
BARS = 1_500
NATS_URL = "nats://127.0.0.1:4222"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lean_data.cli", *args]


def _minutes(tmp_path: Path) -> Path:
    """The first BARS bars as BTC-PERP.csv (the file name is the symbol)."""
    lines = FTX.read_text(encoding="utf-8").splitlines()[: BARS + 1]
    path = tmp_path / "BTC-PERP.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _cli(*args), capture_output=True, text=True, timeout=120, env=env, check=False
    )


async def _serving(child: asyncio.subprocess.Process) -> str:
    """The gateway URL ``serve`` prints on its first line."""
    assert child.stdout is not None
    line = (await asyncio.wait_for(child.stdout.readline(), 30)).decode()
    found = re.search(r"serving (http://\S+)", line)
    assert found, f"serve printed {line!r}"
    return found.group(1)


async def test_collect_and_serve_two_processes(tmp_path: Path) -> None:
    csv = _minutes(tmp_path)
    env = {**os.environ, "LEAN_DATA_GATEWAY_TOKEN": "s3cret-for-the-test"}
    async with bus_context() as bus:
        bus_args = ("--bus", NATS_URL, "--prefix", bus.prefix, "--stream", bus.stream)
        serve = await asyncio.create_subprocess_exec(
            *_cli("serve", *bus_args, "--symbols", "BTC-PERP", "--port", "0",
                  "--output", str(tmp_path / "serve"), "--durable", "cli-test"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        try:
            url = await _serving(serve)
            seen: list[int] = []
            async with aiohttp.ClientSession() as http:
                refused = await http.get(f"{url}/status")
                assert refused.status == 401  # the token from the environment is asked
                ws_url = url.replace("http://", "ws://") + "/ws?token=s3cret-for-the-test"
                async with http.ws_connect(ws_url) as ws:
                    await ws.send_json({"op": "subscribe", "symbols": ["BTC-PERP"]})
                    # the serving process is up before the collector: the stream does not
                    # exist yet, and the bus feed waits for it
                    collect = await asyncio.to_thread(
                        _run, "collect", str(csv), *bus_args, "--no-progress",
                        "--output", str(tmp_path / "collect"), env=env,
                    )  # fmt: skip
                    assert collect.returncode == 0, collect.stderr
                    assert "items: delivered 1,500" in collect.stdout
                    assert "published 1,500" in collect.stdout
                    assert "acked 1,500" in collect.stdout
                    assert await bus.count() == BARS
                    while len(seen) < BARS:
                        message = json.loads((await ws.receive(timeout=30)).data)
                        if message["type"] == "bar":
                            seen.append(message["ts_event"])
            assert len(seen) == BARS
            assert seen == sorted(set(seen))  # every bar once, in order
            # day two: the same file again is the same stream (message ids de-duplicate)
            again = await asyncio.to_thread(
                _run, "collect", str(csv), *bus_args, "--no-progress",
                "--output", str(tmp_path / "collect"), env=env,
            )  # fmt: skip
            assert again.returncode == 0, again.stderr
            assert "duplicates 1,500" in again.stdout
            assert await bus.count() == BARS
        finally:
            serve.send_signal(signal.SIGINT)
            raw_out, raw_err = await asyncio.wait_for(serve.communicate(), 60)
        out, err = raw_out.decode(), raw_err.decode()
        assert serve.returncode == 0, err
        assert "s3cret-for-the-test" not in out + err
        assert err.count("bus_no_stream") == 1  # the missing stream is said once


def test_collect_without_sources_and_serve_without_data_say_so(tmp_path: Path) -> None:
    collect = _run("collect", "--output", str(tmp_path / "c"))
    assert collect.returncode == 1
    assert collect.stderr.strip().splitlines() == [
        "lean-data: error: collect needs something to record: FILE..., --demo or --binance"
    ]
    serve = _run("serve", "--output", str(tmp_path / "s"))
    assert serve.returncode == 1
    assert len(serve.stderr.strip().splitlines()) == 1
    assert "serve needs data" in serve.stderr


async def test_collect_with_the_bus_away_delivers_locally_and_counts(tmp_path: Path) -> None:
    """No NATS where --bus points: every bar is delivered and stored; the summary says
    what the bus could not take (nothing is silently dropped)."""
    csv = _minutes(tmp_path)
    done = await asyncio.to_thread(
        _run, "collect", str(csv), "--bus", "nats://127.0.0.1:9", "--no-progress",
        "--output", str(tmp_path / "c"), "--stop-timeout", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "items: delivered 1,500" in done.stdout
    assert "acked 0" in done.stdout
    lost = re.search(r"dropped_at_close ([\d,]+)", done.stdout)
    buffered = re.search(r"unconfirmed_at_close ([\d,]+)", done.stdout)
    assert lost is not None
    assert buffered is not None
    assert int(lost.group(1).replace(",", "")) + int(buffered.group(1).replace(",", "")) == BARS
