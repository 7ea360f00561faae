"""Engine sinks: every accepted item reaches each sink with its feed and verdict.

Real FTX BTC-PERP minute bars (tests/fixtures/nautilus_trader/btc-perp-20211231-
20220201_1m.csv, a copy of ../shared/data's file) with one impossible bar in the middle.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from lean_data import Config, DataEngine
from lean_data.errors import ConfigError
from lean_data.loaders import load_file
from lean_data.models import MarketData, TradeBar
from lean_data.quality.levels import DataQualityLevel, Verdict
from tests.conftest import FIXTURES
from tests.helpers import ListFeed, received

FTX = FIXTURES / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"
SYMBOL = "BTC-PERP"


def bars(n: int) -> list[TradeBar]:
    out = [b for b in load_file(FTX, symbol=SYMBOL) if isinstance(b, TradeBar)]
    return out[:n]


class Collect:
    """A sink that keeps what it is offered and says when it was opened and closed."""

    def __init__(self, name: str = "collect", *, fail_on: int | None = None) -> None:
        self.name = name
        self.items: list[tuple[str, MarketData, Verdict]] = []
        self.events: list[str] = []
        self._fail_on = fail_on
        self.offers = 0

    async def open(self) -> None:
        self.events.append("open")

    def offer(self, feed: str, item: MarketData, verdict: Verdict) -> None:
        self.offers += 1
        if self.offers == self._fail_on:
            raise RuntimeError("sink broke on this one")
        self.items.append((feed, item, verdict))

    async def close(self) -> None:
        self.events.append(f"close after {len(self.items)}")

    def statistics(self) -> dict[str, Any]:
        return {"received": len(self.items)}


async def test_every_accepted_item_reaches_the_sink_with_its_verdict() -> None:
    sent = received(bars(300))
    bad = dataclasses.replace(sent[150], high=sent[150].low / 2)  # high below low
    items: list[MarketData] = [*sent[:150], bad, *sent[150:]]
    feed = ListFeed("ftx", {SYMBOL: items})
    sink = Collect()
    engine = DataEngine(Config(db_path=None))
    engine.add_feed(feed)
    engine.add_sink(sink)
    async with engine:
        await engine.subscribe_symbol(SYMBOL)
        await feed.wait_pumped()
        await engine.wait_idle()
        assert engine.get_metrics()["sinks"] == {"collect": {"received": 300}}
    assert [item for _, item, _ in sink.items] == sent  # in order, the INVALID one not
    assert {feed for feed, _, _ in sink.items} == {"ftx"}
    assert all(v.level is not DataQualityLevel.INVALID for _, _, v in sink.items)
    assert engine.get_metrics()["engine"]["outcomes"]["invalid"] == 1
    assert sink.events == ["open", "close after 300"]  # closed after everything reached it


async def test_a_failing_sink_costs_only_itself() -> None:
    sent = received(bars(50))
    feed = ListFeed("ftx", {SYMBOL: sent})
    broken, fine = Collect("broken", fail_on=10), Collect("fine")
    delivered: list[MarketData] = []
    engine = DataEngine(Config(db_path=None))
    engine.add_feed(feed)
    engine.add_sink(broken)
    engine.add_sink(fine)
    engine.add_data_callback(lambda symbol, item, level: delivered.append(item))
    async with engine:
        await engine.subscribe_symbol(SYMBOL)
        await feed.wait_pumped()
        await engine.wait_idle()
        metrics = engine.get_metrics()
    assert delivered == sent
    assert [item for _, item, _ in fine.items] == sent
    assert len(broken.items) == 49  # the 10th raised; the others arrived
    assert metrics["engine"]["errors_by_kind"]["sink_error"] == 1


async def test_a_sink_added_while_running_is_opened() -> None:
    sink = Collect()
    engine = DataEngine(Config(db_path=None))
    engine.add_feed(ListFeed("ftx"))
    async with engine:
        engine.add_sink(sink)
        await engine.wait_idle()
        for task in [t for t in asyncio.all_tasks() if t.get_name().startswith("sink:")]:
            await task
        assert sink.events == ["open"]
    assert sink.events == ["open", "close after 0"]


def test_add_sink_refuses_what_is_not_a_sink_and_a_second_name() -> None:
    engine = DataEngine(Config(db_path=None))
    engine.add_sink(Collect())
    with pytest.raises(ConfigError, match="already attached"):
        engine.add_sink(Collect())
    with pytest.raises(ConfigError, match="add_sink"):
        engine.add_sink(object())  # type: ignore[arg-type]
