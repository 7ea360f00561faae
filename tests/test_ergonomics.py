"""Python ergonomics (issue 16, point 5) on real data replayed through a real engine.

The bundled demo data (``lean_data/demo_data``, see its PROVENANCE.md): AAPL's 1-minute
bars of 2014-06-05/06/09 and SPY's 1-minute trade and quote bars of 2013-10-07.

- ``engine.bars()``: the history answer as ``Bars``; ``to_pandas()`` / ``to_polars()``
  hold exactly its values (times to the ns, every price and volume), per item type.
- ``engine.stream()``: every item the pipeline delivered, in its order, once; the
  iteration ends at stop after what was queued; ``break`` unregisters it; a consumer that
  falls behind under ``drop_oldest`` gets the newest items and the counts add up.
- ``add_data_callback(symbols=..., kinds=...)``: a callback gets exactly its symbols'
  items of its kinds, sync or async, also through the ``on_bar`` decorators.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pytest

import lean_data
from lean_data import Config, DataEngine, DataQualityLevel
from lean_data.analytics.frames import Bars, missing_library
from lean_data.errors import ConfigError, EngineClosedError
from lean_data.feeds.replay import ReplayFeed
from lean_data.models import MarketData, QuoteBar, TradeBar

DEMO = Path(lean_data.__file__).parent / "demo_data/lean/equity/usa/minute"
AAPL = sorted((DEMO / "aapl").glob("*_trade.zip"))
SPY = [DEMO / "spy/20131007_trade.zip", DEMO / "spy/20131007_quote.zip"]
Seen = list[tuple[str, MarketData, DataQualityLevel]]


def _engine(tmp_path: Path | None) -> tuple[DataEngine, ReplayFeed, Seen]:
    """An engine replaying AAPL and SPY, and the list its unfiltered callback fills."""
    engine = DataEngine(Config(db_path=None if tmp_path is None else tmp_path / "d.db"))
    feed = ReplayFeed("replay", [*AAPL, *SPY])
    engine.add_feed(feed)
    seen: Seen = []
    engine.add_data_callback(lambda s, item, q: seen.append((s, item, q)))
    return engine, feed, seen


async def _subscribe(engine: DataEngine) -> None:
    for symbol in ("AAPL", "SPY"):
        await engine.subscribe_symbol(symbol)


# ---------------------------------------------------------------------- bars and frames


async def test_bars_to_pandas_and_polars_hold_the_history_value_for_value(
    tmp_path: Path,
) -> None:
    engine, feed, _ = _engine(tmp_path)
    await _subscribe(engine)
    async with engine:
        await feed.wait_finished()
        await engine.wait_idle()
        history = await engine.get_historical_data("AAPL", 0, 2**62)
        bars = await engine.bars("AAPL", "2014-06-05", "2014-06-10T00:00:00Z")
    assert len(history) == len(bars) == 2_303
    assert bars == history
    assert isinstance(bars[0], TradeBar)
    assert (bars.symbol, str(bars.resolution)) == ("AAPL", "1m")
    rows = [[b.open, b.high, b.low, b.close, b.volume] for b in history]  # type: ignore[union-attr]
    stamps = [b.ts_event for b in history]

    frame = bars.to_pandas()
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert {str(dtype) for dtype in frame.dtypes} == {"float64"}
    assert frame.index.name == "time"
    assert str(frame.index.tz) == "UTC"
    assert [t.value for t in frame.index] == stamps
    assert frame.to_numpy().tolist() == rows
    assert frame.index[0] == pd.Timestamp(bars[0].time)
    assert frame.attrs == {"symbol": "AAPL", "resolution": "1m"}

    table = bars.to_polars()
    assert table.columns == ["time", "open", "high", "low", "close", "volume"]
    assert table.schema["time"] == pl.Datetime("ns", "UTC")
    assert table["time"].cast(pl.Int64).to_list() == stamps
    assert table.drop("time").rows() == [tuple(r) for r in rows]


async def test_a_mixed_answer_is_exported_per_kind() -> None:
    """Without storage the replay feed answers SPY with trade and quote bars together."""
    engine, feed, seen = _engine(None)
    await _subscribe(engine)
    async with engine:
        await feed.wait_finished()
        start = datetime(2013, 10, 7, tzinfo=UTC)
        bars = await engine.bars("SPY", start, "2013-10-08", "1m")
    quotes = bars.of("quote")
    end = 1_381_190_400 * 10**9  # 2013-10-08T00:00Z: the last quote bar opens on it
    replayed = [i for _, i, _ in seen if type(i) is QuoteBar and i.ts_event < end]
    assert quotes == [i.with_ts_recv(0) for i in replayed]  # history from the file: no ts_recv
    assert len(quotes) == 907
    assert len(bars) == len(quotes) + len(bars.of("bar"))
    with pytest.raises(ValueError, match=r"several kinds \(bar, quote\).*bars.of\('bar'\)"):
        bars.to_pandas()
    frame = quotes.to_pandas()
    assert list(frame.columns[:2]) == ["bid_open", "bid_high"]
    assert len(frame.columns) == 10
    first = quotes[0]
    assert isinstance(first, QuoteBar)
    assert frame.iloc[0].tolist() == [float(getattr(first, c)) for c in frame.columns]
    assert quotes.to_polars().height == 907


def test_bars_is_a_read_only_sequence_and_times_come_in_three_forms() -> None:
    bar = TradeBar("AAPL", 1_401_956_100_000_000_000, 1.0, 2.0, 0.5, 1.5, 10.0)
    bars = Bars([bar, bar], "AAPL")
    assert isinstance(bars[:1], Bars)
    assert bars[:1] == [bar]
    assert not hasattr(bars, "append")
    assert not hasattr(bars, "__setitem__")
    empty = Bars([]).to_pandas()
    assert list(empty.columns) == ["open", "high", "low", "close", "volume"]
    assert empty.empty
    assert Bars([]).to_polars().columns[0] == "time"
    with pytest.raises(ValueError, match="kind: expected one of bar, quote, tick"):
        bars.of("quote_bar")


async def test_bars_reads_start_and_end_as_datetime_iso_or_ns() -> None:
    engine, feed, _ = _engine(None)
    await _subscribe(engine)
    async with engine:
        await feed.wait_finished()
        by_iso = await engine.bars("AAPL", "2014-06-06", "2014-06-06T12:00:00+00:00")
        by_ns = await engine.bars("AAPL", 1_402_012_800 * 10**9, 1_402_056_000 * 10**9)
        naive = await engine.bars("AAPL", datetime(2014, 6, 6), datetime(2014, 6, 6, 12))
        with pytest.raises(ValueError, match="start: expected a datetime, an ISO 8601"):
            await engine.bars("AAPL", "yesterday", "2014-06-07")
    assert len(by_iso) > 0
    assert by_iso == by_ns == naive


def test_a_missing_library_is_one_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """``sys.modules[name] = None`` makes ``import name`` fail as it does when missing."""
    bars = Bars([TradeBar("AAPL", 0, 1.0, 1.0, 1.0, 1.0, 1.0)])
    for name, export in (("pandas", bars.to_pandas), ("polars", bars.to_polars)):
        monkeypatch.setitem(sys.modules, name, None)
        with pytest.raises(ImportError) as caught:
            export()
        message = f"Bars.to_{name}() needs {name}: pip install 'lean-data[{name}]'"
        assert str(caught.value) == message == str(missing_library(name, f"Bars.to_{name}()"))


# ---------------------------------------------------------------------- streams


async def test_a_stream_gets_every_item_in_order_once_and_ends_at_stop() -> None:
    engine, feed, seen = _engine(None)
    stream = engine.stream()  # before start: every symbol, market data
    got: Seen = []

    async def consume() -> None:
        async for entry in stream:
            got.append(entry)

    await _subscribe(engine)
    async with engine:
        reader = asyncio.create_task(consume())
        await feed.wait_finished()
        await engine.wait_idle()
        listed = [s["name"] for s in engine.get_metrics()["subscribers"]]
    await reader  # the stop ended the iteration
    assert listed == ["stream"]
    assert len(got) == len(seen) == 2_303 + 828 + 908  # AAPL's 3 days, SPY's bars, quotes
    assert got == seen  # in order, each once
    assert all(a[1] is b[1] for a, b in zip(got, seen, strict=True))  # the same objects
    assert stream.delivered == len(got)
    assert stream.dropped == 0
    with pytest.raises(EngineClosedError):
        engine.stream()


async def test_what_is_queued_at_stop_is_delivered_after_it() -> None:
    engine, feed, seen = _engine(None)
    stream = engine.stream("SPY", kinds="quote")
    await _subscribe(engine)
    async with engine:
        await feed.wait_finished()
    got = [entry async for entry in stream]  # nobody read before the engine stopped
    assert [item for _, item, _ in got] == [i for s, i, _ in seen if isinstance(i, QuoteBar)]
    assert len(got) == 908
    assert stream.dropped == 0


async def test_a_consumer_that_falls_behind_gets_the_newest_and_the_counts_add_up() -> None:
    engine, feed, seen = _engine(None)
    stream = engine.stream("AAPL", maxsize=100)  # drop_oldest, the default; read after stop
    slow = engine.stream("AAPL", maxsize=8, name="slow")  # read during the replay
    taken: list[MarketData] = []

    async def read_slowly() -> None:
        async for _, item, _ in slow:
            taken.append(item)
            for _ in range(20):  # other tasks run meanwhile (a yield, not a timed wait)
                await asyncio.sleep(0)

    await _subscribe(engine)
    async with engine:
        reader = asyncio.create_task(read_slowly())
        await feed.wait_finished()
        await feed.delivered()
        stats = next(s for s in engine.get_metrics()["subscribers"] if s["name"] == "stream")
    offered = [item for symbol, item, _ in seen if symbol == "AAPL"]
    got = [item async for _, item, _ in stream]
    assert got == offered[-100:]
    assert (stats["policy"], stats["queue_depth"]) == ("drop_oldest", 100)
    assert stats["symbols"] == ["AAPL"]
    assert stats["dropped"] == stream.dropped == len(offered) - 100
    assert stream.delivered + stream.dropped == len(offered) == 2_303
    await reader
    assert slow.delivered + slow.dropped == len(offered)
    position = {id(item): n for n, item in enumerate(offered)}
    order = [position[id(item)] for item in taken]
    assert order == sorted(set(order))  # what it got is in order, each once
    assert len(taken) == slow.delivered


async def test_break_unregisters_the_stream_even_a_blocking_one() -> None:
    """A ``block`` stream of one slot that is left after one item: were it still listed,
    the pipeline would wait for room forever and the replay would never finish."""
    engine, feed, seen = _engine(None)
    await _subscribe(engine)
    first: list[MarketData] = []
    async with engine:
        async for _, item, _ in engine.stream("AAPL", policy="block", maxsize=1):
            first.append(item)
            break
        assert engine.get_metrics()["subscribers"] == []
        await feed.wait_finished()
        await engine.wait_idle()
        async with engine.stream() as kept:  # leaving `async with` closes it
            assert [s["name"] for s in engine.get_metrics()["subscribers"]] == ["stream"]
        assert engine.get_metrics()["subscribers"] == []
        assert [e async for e in kept] == []
    assert first == [next(i for s, i, _ in seen if s == "AAPL")]
    assert len(seen) == 2_303 + 828 + 908


# ---------------------------------------------------------------------- filtered callbacks


async def test_filtered_callbacks_get_exactly_their_symbols_and_kinds() -> None:
    engine, feed, seen = _engine(None)
    aapl_bars: list[MarketData] = []
    spy_quotes: list[MarketData] = []
    both: list[tuple[str, MarketData]] = []
    decorated: list[MarketData] = []
    engine.add_data_callback(lambda s, i, q: aapl_bars.append(i), symbols=["AAPL"], kinds="bar")
    engine.add_data_callback(lambda s, i, q: spy_quotes.append(i), kinds=("quote",))

    async def on_both(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
        both.append((symbol, item))

    subscriber = engine.add_data_callback(on_both, symbols=("SPY",), kinds=("bar", "quote"))
    assert subscriber is not None

    @engine.on_bar("SPY")
    def on_spy_bar(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
        decorated.append(item)

    await _subscribe(engine)
    async with engine:
        await feed.wait_finished()
        await engine.wait_idle()
        stats = subscriber.statistics()
    assert aapl_bars == [i for s, i, _ in seen if s == "AAPL" and type(i) is TradeBar]
    assert len(aapl_bars) == 2_303
    assert spy_quotes == [i for s, i, _ in seen if type(i) is QuoteBar]
    assert len(spy_quotes) == 908
    assert both == [(s, i) for s, i, _ in seen if s == "SPY"]
    assert decorated == [i for s, i, _ in seen if s == "SPY" and type(i) is TradeBar]
    assert (stats["delivered"], stats["dropped"]) == (len(both), 0)  # only what it takes
    assert (stats["symbols"], stats["kinds"]) == (["SPY"], ["bar", "quote"])


async def test_a_filtered_callback_can_be_removed() -> None:
    engine, feed, seen = _engine(None)
    got: list[MarketData] = []

    def on_aapl(symbol: str, item: MarketData, quality: DataQualityLevel) -> None:
        got.append(item)
        if len(got) == 10:
            assert engine.remove_data_callback(on_aapl)

    engine.add_data_callback(on_aapl, symbols="AAPL")
    await _subscribe(engine)
    async with engine:
        await feed.wait_finished()
        await engine.wait_idle()
    assert got == [i for s, i, _ in seen if s == "AAPL"][:10]
    assert not engine.remove_data_callback(on_aapl)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kinds": "quote_bar"}, r"kinds: expected some of bar, quote, tick, funding_rate, "),
        ({"kinds": ()}, "kinds: expected some of"),
        ({"symbols": []}, "symbols: expected symbol names"),
        ({"symbols": ["AAPL", ""]}, "symbols: expected symbol names"),
    ],
)
def test_a_bad_filter_is_one_clear_error(options: dict[str, Any], message: str) -> None:
    engine = DataEngine(Config(db_path=None))
    with pytest.raises(ConfigError, match=message):
        engine.add_data_callback(lambda s, i, q: None, **options)
    with pytest.raises(ConfigError, match=message):
        engine.stream(**options) if "kinds" in options else engine.stream("AAPL", "")
