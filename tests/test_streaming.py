"""StreamingFeed rules that need no venue: exhaustion, quiet symbols, shutdown, error mapping.

The feed below is a minimal subclass whose "connection" is an in-process script; it replays
the real FTX BTC-PERP minute bars (tests/fixtures/nautilus_trader, see PROVENANCE.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from lean_data import Config, DataEngine, TradeBar
from lean_data.errors import FeedAuthError, FeedConnectError, RateLimitError
from lean_data.feeds.backoff import BackoffPolicy
from lean_data.feeds.base import FeedStatus
from lean_data.feeds.streaming import StreamingFeed
from lean_data.loaders import load_file
from lean_data.models import MarketData, Resolution

from .conftest import FIXTURES, eventually

FTX = FIXTURES / "nautilus_trader/btc-perp-20211231-20220201_1m.csv"


def ftx_bars(n: int) -> list[TradeBar]:
    bars = [b for b in load_file(FTX, symbol="BTC-PERP") if isinstance(b, TradeBar)]
    return bars[:n]


class ScriptFeed(StreamingFeed):
    """Each session: fail to open while ``refuse`` > 0, else emit ``bars`` then idle."""

    def __init__(
        self, bars: Sequence[TradeBar], refuse: int = 0, name: str = "script", **kwargs: object
    ) -> None:
        super().__init__(name, symbols=["BTC-PERP"], rng=lambda: 1.0, **kwargs)  # type: ignore[arg-type]
        self.bars, self.refuse = list(bars), refuse
        self.sent: list[list[str]] = []

    async def open_session(self) -> None:
        if self.refuse > 0:
            self.refuse -= 1
            raise ConnectionRefusedError("loopback refused")

    async def close_session(self) -> None:
        return None

    async def send_subscribe(self, symbols: Sequence[str]) -> None:
        self.sent.append(list(symbols))

    async def send_unsubscribe(self, symbols: Sequence[str]) -> None:
        self.sent.append(["-" + s for s in symbols])

    async def run_session(self) -> None:
        for bar in self.bars:
            await self.emit(TradeBar(bar.symbol, bar.ts_event, bar.open, bar.high, bar.low,
                                     bar.close, bar.volume))  # fmt: skip
        await asyncio.Event().wait()  # an open, quiet connection

    async def get_historical_data(
        self, symbol: str, start_date: datetime | int, end_date: datetime | int,
        resolution: Resolution,
    ) -> list[MarketData]:  # fmt: skip
        return []


async def test_max_attempts_turn_into_one_fatal_error() -> None:
    feed = ScriptFeed([], refuse=10, backoff=BackoffPolicy(base_s=0.001, max_attempts=3))
    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        await eventually(lambda: feed.status is FeedStatus.FAILED)
    assert feed.connect_attempts == 4  # the first try and three retries
    assert len(feed.reconnect_delays) == 3
    assert isinstance(feed.fatal_error, FeedConnectError)
    assert "gave up after 4 attempts" in str(feed.fatal_error)


async def test_a_symbol_without_cadence_is_never_stale_and_subscribing_offline_works() -> None:
    # the same script twice: 5 bars, then an open and quiet connection; only one promises a
    # cadence. By the time that one is reported stale, the other must still be untouched.
    quiet = ScriptFeed(ftx_bars(5), refuse=2, name="quiet", backoff=BackoffPolicy(base_s=0.001))
    watched = ScriptFeed(ftx_bars(5), name="watched", cadence_s=0.02)
    seen: list[int] = []
    async with (
        DataEngine(Config(db_path=None)) as first,
        DataEngine(Config(db_path=None)) as second,
    ):
        first.add_feed(quiet)
        first.add_data_callback(lambda s, b, q: seen.append(b.ts_event))
        await first.subscribe_symbol("BTC-PERP")  # while the feed is still reconnecting
        second.add_feed(watched)
        await second.subscribe_symbol("BTC-PERP")
        await eventually(lambda: len(seen) == 5, message=f"seen {seen}")
        await eventually(lambda: watched.stale_events >= 1, message="watched")
        assert quiet.stale_events == 0
        assert quiet.status is FeedStatus.CONNECTED
        assert quiet.sessions == 1  # never recycled
    assert quiet.sent == [["BTC-PERP"]]
    assert quiet.connect_attempts == 3


async def test_stopping_the_engine_mid_stream_is_not_a_feed_failure(tmp_path: Path) -> None:
    feed = ScriptFeed(ftx_bars(20_000))
    db = tmp_path / "stop.db"
    async with DataEngine(Config(db_path=db, inbox_size=8)) as engine:
        engine.add_feed(feed)
        await engine.subscribe_symbol("BTC-PERP")
        await eventually(lambda: feed.messages_emitted > 100)
    assert feed.fatal_error is None
    assert feed.errors == 0


async def test_handshake_refusals_map_to_lean_data_errors() -> None:
    feed = ScriptFeed([])
    for status, expected in ((401, FeedAuthError), (429, RateLimitError), (503, FeedConnectError)):

        async def refuse(
            connection: ServerConnection, request: object, status: int = status
        ) -> Response:
            response = connection.respond(status, "refused\n")
            response.headers["Retry-After"] = "7"
            return response

        async with serve(
            lambda ws: ws.wait_closed(), "127.0.0.1", 0, process_request=refuse
        ) as srv:
            port = srv.sockets[0].getsockname()[1]
            with pytest.raises(InvalidStatus) as caught:
                async with connect(f"ws://127.0.0.1:{port}"):
                    pass
        error = feed.translate_error(caught.value)
        assert type(error) is expected, status
        assert error.retryable is (status != 401)
        if isinstance(error, RateLimitError):
            assert error.retry_after == 7.0
