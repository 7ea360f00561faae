"""The live page in a real headless Chromium, driven through chromedriver's WebDriver HTTP API
(with aiohttp: no Selenium, no new dependency).

Bars (real FTX BTC-PERP minute bars) are replayed while the page is open; the test reads
the DOM until the latest bar shown changes, and writes a PNG screenshot to the test's
``tmp_path`` (``<pytest tmp dir>/test_the_live_page_shows_bars0/gateway_live_page.png``).

Chromium is required, never skipped: CI installs Debian's ``chromium`` and
``chromium-driver`` (.ci/run) and this test fails loudly when they are missing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from tests.gateway_helpers import SYMBOL, LiveFeed, bars, serving
from tests.helpers import received

TOKEN = "page-token-51b2"
WAIT_S = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def iso(ns: int) -> str:
    """What the page shows for a time: JavaScript's ``Date.toISOString()`` (ms, ``Z``)."""
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


async def until(check: Callable[[], Awaitable[bool]], message: str) -> None:
    """Poll ``check`` until it is true; fail after ``WAIT_S`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not await check():
        assert loop.time() < deadline, f"not within {WAIT_S}s: {message}"
        await asyncio.sleep(0.05)


class Browser:
    """One WebDriver session of a headless Chromium."""

    def __init__(self, http: aiohttp.ClientSession, base: str, session_id: str) -> None:
        self.http, self.base, self.id = http, base, session_id

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        url = f"{self.base}/session/{self.id}{path}"
        async with self.http.request(method, url, json=body) as response:
            payload = await response.json()
            assert response.status == 200, payload
            return payload["value"]

    async def go(self, url: str) -> None:
        await self.call("POST", "/url", {"url": url})

    async def run(self, script: str) -> Any:
        return await self.call("POST", "/execute/sync", {"script": script, "args": []})

    async def text(self, selector: str) -> str | None:
        found: str | None = await self.run(
            f"const e = document.querySelector({selector!r}); return e ? e.textContent : null;"
        )
        return found

    async def screenshot(self) -> bytes:
        return base64.b64decode(await self.call("GET", "/screenshot"))


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[Browser]:
    """A chromedriver process and one headless Chromium session; both ended after."""
    driver = shutil.which("chromedriver")
    binary = shutil.which("chromium")
    if not (driver and binary):
        raise AssertionError(
            "the browser test needs Debian's chromium and chromium-driver: "
            "apt-get install -y chromium chromium-driver (.ci/run installs them)"
        )
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        driver,
        f"--port={port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:

            async def driver_ready() -> bool:
                try:
                    async with http.get(f"{base}/status") as response:
                        return bool((await response.json())["value"]["ready"])
                except aiohttp.ClientConnectionError:
                    return False

            await until(driver_ready, "chromedriver answers")
            options = {
                "binary": binary,
                "args": [
                    "--headless=new",
                    "--no-sandbox",  # CI runs as root
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    f"--user-data-dir={profile}",
                ],
            }
            capabilities = {"browserName": "chrome", "goog:chromeOptions": options}
            body = {"capabilities": {"alwaysMatch": capabilities}}
            async with http.post(f"{base}/session", json=body) as response:
                created = await response.json()
                assert response.status == 200, created
            browser = Browser(http, base, created["value"]["sessionId"])
            try:
                yield browser
            finally:
                async with http.delete(f"{base}/session/{browser.id}"):
                    pass
    finally:
        process.terminate()
        await process.wait()


async def test_the_live_page_shows_bars(tmp_path: Path) -> None:
    source = received(bars(300))
    feed = LiveFeed("ftx")
    async with (
        serving(token=TOKEN) as (engine, gateway),
        chromium(tmp_path / "profile") as browser,
    ):
        engine.add_feed(feed)
        await engine.subscribe_symbol(SYMBOL, feed_name="ftx")
        for bar in source[:10]:
            await feed.emit(bar)
        await browser.go(f"{gateway.url}/?token={TOKEN}")
        row = f'#bars tr[data-symbol="{SYMBOL}"]'

        async def shows(ts_event: int) -> bool:
            return await browser.text(f"{row} td.time") == iso(ts_event)

        async def connected() -> bool:
            feed_status = await browser.text('#feeds tr[data-symbol="ftx"] td.status')
            return await browser.text("#conn") == "open" and feed_status == "connected"

        await until(connected, "websocket open and the feed shown connected")
        await until(lambda: shows(source[9].ts_event), "the snapshot bar")
        first = await browser.text(f"{row} td.time")
        for bar in source[10:]:  # replayed while the page is open
            await feed.emit(bar)
        await until(lambda: shows(source[-1].ts_event), "the last replayed bar")
        latest = source[-1]
        assert await browser.text(f"{row} td.time") != first
        assert float(await browser.text(f"{row} td.close") or "nan") == latest.close
        assert float(await browser.text(f"{row} td.volume") or "nan") == latest.volume
        assert await browser.text(f"{row} td.quality") in {"EXCELLENT", "GOOD"}
        assert await browser.text("#engine") == "running"
        shown = int(await browser.text("#received") or 0)
        assert shown >= len(source) - 9  # the snapshot, then every bar after it
        png = await browser.screenshot()
    path = tmp_path / "gateway_live_page.png"
    path.write_bytes(png)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 10_000
    print(f"screenshot: {path}")
