"""A history request that never answers stalls nobody (issue 10, done-when 3).

Real SPY and AAPL minute trade bars in the regular session (LEAN, AlgoSeek;
tests/fixtures/PROVENANCE.md), from one live feed whose history endpoint never answers for
SPY. Three bars are cut out of SPY, so its series parks behind a backfill that hangs.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from lean_data import Config, DataEngine, Resolution, TradeBar
from lean_data.loaders import load_file
from lean_data.models import MarketData

from .conftest import FIXTURES, eventually
from .helpers import ListFeed, received

USA = FIXTURES / "lean/equity/usa/minute"


def _session(path: Path, start_s: int, n: int) -> list[MarketData]:
    return received([x for x in load_file(path) if x.ts_event >= start_s * 10**9][:n])


SPY = _session(USA / "spy/20131007_trade.zip", 1381152600, 120)  # 09:30 New York
AAPL = _session(USA / "aapl/20140609_trade.zip", 1402320600, 300)
HOLE = (10, 11, 12)
SPY_SENT = [b for i, b in enumerate(SPY) if i not in HOLE]


class StuckHistoryFeed(ListFeed):
    """A live feed whose history request for SPY never returns."""

    live = True

    def __init__(self) -> None:
        super().__init__("venue", {"SPY": SPY_SENT, "AAPL": AAPL})
        self.asked = asyncio.Event()

    async def get_historical_data(
        self,
        symbol: str,
        start_date: datetime | int,
        end_date: datetime | int,
        resolution: Resolution,
    ) -> list[MarketData]:
        if symbol == "SPY":
            self.asked.set()
            await asyncio.Event().wait()  # the venue never answers
        return await super().get_historical_data(symbol, start_date, end_date, resolution)


async def _engine(feed: StuckHistoryFeed, **config: float) -> tuple[DataEngine, list[MarketData]]:
    seen: list[MarketData] = []
    engine = DataEngine(Config(db_path=None, **config))  # type: ignore[arg-type]
    await engine.start()
    engine.add_feed(feed)
    engine.add_data_callback(lambda s, b, q: seen.append(b))
    await engine.subscribe_symbol("AAPL")
    await engine.subscribe_symbol("SPY")
    return engine, seen


def _of(seen: list[MarketData], symbol: str) -> list[MarketData]:
    return [b for b in seen if b.symbol == symbol]


async def test_other_symbols_flow_and_the_stuck_one_flows_after_the_deadline() -> None:
    feed = StuckHistoryFeed()
    engine, seen = await _engine(feed, backfill_timeout_s=5.0)
    await feed.wait_pumped()
    parked = len(SPY_SENT) - HOLE[0]
    await eventually(
        lambda: (
            len(_of(seen, "AAPL")) == len(AAPL)
            and engine.continuity.parked("SPY", Resolution.MINUTE) == parked
        )
    )
    # every AAPL bar was delivered while SPY's history request was still hanging
    assert feed.asked.is_set()
    assert _of(seen, "SPY") == SPY_SENT[: HOLE[0]]
    await engine.wait_idle()  # the deadline ends the wait: the parked bars go on
    assert _of(seen, "SPY") == SPY_SENT
    assert _of(seen, "AAPL") == AAPL
    errors = engine.metrics.to_dict()
    await engine.stop()
    kinds = errors["feeds"]["venue"]["errors_by_kind"]
    assert kinds.get("backfill_timeout") == 1, kinds
    outcomes = engine.get_metrics()["engine"]
    assert outcomes["accepted"] == len(SPY_SENT) + len(AAPL)
    assert outcomes["outcomes"]["delivered"] == outcomes["accepted"]


async def test_stop_delivers_what_a_hanging_request_holds() -> None:
    feed = StuckHistoryFeed()
    engine, seen = await _engine(feed, backfill_timeout_s=300.0)
    await feed.wait_pumped()
    await eventually(lambda: len(_of(seen, "AAPL")) == len(AAPL))
    await eventually(lambda: engine.continuity.parked("SPY", Resolution.MINUTE) > 0)
    await engine.stop()
    assert _of(seen, "SPY") == SPY_SENT
    metrics = engine.get_metrics()
    assert metrics["engine"]["outcomes"]["delivered"] == metrics["engine"]["accepted"]
    assert metrics["continuity"]["parked"] == 0


async def test_a_full_parked_series_gives_up_its_request_without_waiting() -> None:
    feed = StuckHistoryFeed()
    engine, seen = await _engine(feed, backfill_timeout_s=300.0, parked_max=20)
    await feed.wait_pumped()
    await eventually(lambda: len(_of(seen, "SPY")) == len(SPY_SENT))
    assert _of(seen, "SPY") == SPY_SENT
    assert all(isinstance(b, TradeBar) and not b.backfilled for b in seen)
    kinds = engine.metrics.to_dict()["feeds"]["venue"]["errors_by_kind"]
    await engine.stop()
    assert kinds.get("backfill_abandoned") == 1, kinds
