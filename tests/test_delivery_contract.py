"""Day two and the seed contract (issue 10, done-when 1 and 5).

Real SPY minute trade bars of 2013-10-07 … 10-11 (LEAN, AlgoSeek; bundled in
lean_data/demo_data and copied in tests/fixtures, see PROVENANCE.md). Replayed twice into one
database, in any file order, through the examples as a user runs them, with adjacent bars
swapped on a live feed, and with defects seeded into a real file for the seed design's
monitoring example.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lean_data import Config, DataEngine, DataQualityLevel, ReplayFeed, TradeBar
from lean_data.analytics.transform import DataTransformer
from lean_data.cli import DEMO_DATA
from lean_data.loaders import load_file
from lean_data.models import MarketData

from .helpers import ListFeed, received

EXAMPLES = Path(__file__).parent.parent / "examples"
SPY_FILES = sorted((DEMO_DATA / "lean/equity/usa/minute/spy").glob("*_trade.zip"))[:2]


async def _replay(files: list[Path], db: Path | None) -> list[tuple[MarketData, DataQualityLevel]]:
    seen: list[tuple[MarketData, DataQualityLevel]] = []
    feed = ReplayFeed("replay", files)
    async with DataEngine(Config(db_path=db)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(lambda s, b, q: seen.append((b, q)))
        await engine.subscribe_symbol("SPY")
        await feed.wait_finished()
        await engine.wait_idle()
    return seen


def _key(item: MarketData) -> tuple[object, ...]:
    assert isinstance(item, TradeBar)
    return (item.ts_event, item.open, item.high, item.low, item.close, item.volume)


async def test_the_same_files_replayed_twice_into_one_database_deliver_the_same(
    tmp_path: Path,
) -> None:
    db = tmp_path / "day.db"
    first = await _replay(SPY_FILES, db)
    second = await _replay(SPY_FILES, db)
    newest_first = await _replay(SPY_FILES[::-1], db)
    assert len(first) == 1_656
    assert [(_key(b), q) for b, q in second] == [(_key(b), q) for b, q in first]
    assert [(_key(b), q) for b, q in newest_first] == [(_key(b), q) for b, q in first]
    stamps = [b.ts_event for b, _ in first]
    assert stamps == sorted(stamps)


def _run_example(name: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
        cwd=cwd,
    )


def test_quickstart_and_trading_bot_run_twice_with_identical_output(tmp_path: Path) -> None:
    for example in ("quickstart.py", "trading_bot.py"):
        first = _run_example(example, tmp_path).stdout
        second = _run_example(example, tmp_path).stdout
        assert first == second, example
        assert len(first.splitlines()) > 10, first
    assert (tmp_path / "quickstart.db").exists()
    # every crossover of the whole week, as the full series' SMAs count them
    count, _, _ = second.splitlines()[-1].partition(" trades;")
    assert int(count) == _crossovers(
        sorted(DEMO_DATA.glob("lean/equity/usa/minute/spy/*_trade.zip"))
    )


def _crossovers(files: list[Path], fast: int = 10, slow: int = 30) -> int:
    """How often the fast SMA of the closes crosses the slow one (the example's strategy)."""
    bars = sorted((b for f in files for b in load_file(f, symbol="SPY")), key=lambda b: b.ts_event)
    sma = DataTransformer.calculate_technical_indicators(bars, [f"sma_{fast}", f"sma_{slow}"])
    position = trades = 0
    for f, s in zip(sma[f"sma_{fast}"][slow:], sma[f"sma_{slow}"][slow:], strict=True):
        if (want := int(f > s)) != position:
            position, trades = want, trades + 1
    return trades


async def test_late_bars_on_a_live_feed_are_delivered_flagged(tmp_path: Path) -> None:
    """144 adjacent swaps in a live series: every bar is called back once, none only stored."""
    bars = [b for b in load_file(SPY_FILES[0]) if isinstance(b, TradeBar)]
    sent = list(bars)
    for i in range(0, 288, 2):  # swap 144 adjacent pairs early in the day
        sent[i], sent[i + 1] = sent[i + 1], sent[i]

    class LiveFeed(ListFeed):
        live = True

    feed = LiveFeed("venue", {"SPY": sent})
    seen: list[tuple[MarketData, DataQualityLevel]] = []
    on_time: list[MarketData] = []
    async with DataEngine(Config(db_path=tmp_path / "live.db")) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(lambda s, b, q: seen.append((b, q)))
        engine.add_data_callback(lambda s, b, q: on_time.append(b), late=False)
        await engine.subscribe_symbol("SPY")
        await feed.wait_pumped()
        await engine.wait_idle()
        outcomes = engine.get_metrics()["engine"]["outcomes"]
    assert sorted(_key(b) for b, _ in seen) == sorted(_key(b) for b in bars)
    assert len(seen) == len(bars)
    late = [b for b, q in seen if b not in on_time]
    assert len(late) == outcomes["late"] == 144
    assert {q for b, q in seen if b in late} <= {DataQualityLevel.POOR}
    assert [b.ts_event for b in on_time] == sorted(b.ts_event for b in on_time)


def test_the_seed_monitoring_example_logs_exactly_the_seeded_defects(tmp_path: Path) -> None:
    bars = [b for b in load_file(SPY_FILES[0]) if isinstance(b, TradeBar)]
    defects = {400: "high below low", 500: "negative volume", 600: "year 2100", 700: "zero open"}
    lines = ["timestamp,open,high,low,close,volume"]
    for i, b in enumerate(bars):
        o, h, low, c, v, t = b.open, b.high, b.low, b.close, b.volume, b.time
        h = low - 1 if i == 400 else h
        v = -5.0 if i == 500 else v
        t = t.replace(year=2100) if i == 600 else t
        o = 0.0 if i == 700 else o
        lines.append(f"{t:%Y-%m-%d %H:%M:%S.%f},{o},{h},{low},{c},{v}")
    path = tmp_path / "spy.csv"
    path.write_text("\n".join(lines) + "\n")
    result = _run_example("monitoring.py", tmp_path, str(path))
    logged = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(logged) == len(defects), result.stderr
    stamps = {int(line.split("ts_event=")[1].split(",")[0]) for line in logged}
    expected = {bars[i].ts_event for i in (400, 500, 700)}
    assert expected < stamps
    (future,) = stamps - expected
    assert future > 4_000_000_000 * 10**9  # the bar moved to 2100
    average = float(result.stdout.splitlines()[0])
    assert average == pytest.approx((len(bars) - len(defects)) / len(bars), rel=1e-12)


async def test_average_quality_score_is_the_mean_of_the_delivered_levels() -> None:
    path = DEMO_DATA / "lean/crypto/coinbase/daily/btcusd_trade.zip"
    feed = ReplayFeed("replay", [path])
    levels: list[DataQualityLevel] = []
    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(lambda s, b, q: levels.append(q))
        symbol = feed.symbols[0]
        await engine.subscribe_symbol(symbol)
        await feed.wait_finished()
        await engine.wait_idle()
        report = await engine.get_data_quality_report(symbol)
    assert len(set(levels)) > 1  # the real bad print and the illiquid start are flagged
    assert report["messages"] == len(levels)
    mean = sum(q.value for q in levels) / len(levels)
    assert report["average_quality_score"] == pytest.approx(mean, rel=1e-12)
    assert report["levels"] == {level.name: levels.count(level) for level in DataQualityLevel}
    assert report["feeds"]["replay"]["messages"] == len(levels)


async def test_exact_repeats_are_counted_in_metrics_and_one_errors_row(tmp_path: Path) -> None:
    import sqlite3

    bars = received([b for b in load_file(SPY_FILES[0]) if isinstance(b, TradeBar)][:100])
    sent = [*bars[:50], bars[10], bars[20], bars[49], *bars[50:]]
    feed = ListFeed("venue", {"SPY": sent})
    seen: list[MarketData] = []
    db = tmp_path / "dup.db"
    async with DataEngine(Config(db_path=db)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(lambda s, b, q: seen.append(b))
        await engine.subscribe_symbol("SPY")
        await feed.wait_pumped()
        await engine.wait_idle()
    outcomes = engine.get_metrics()["engine"]["outcomes"]
    assert seen == bars
    assert (outcomes["delivered"], outcomes["duplicate"]) == (100, 3)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select message from errors where kind = 'undelivered'").fetchall()
    assert len(rows) == 1
    assert rows[0][0].startswith("not delivered this run: duplicate 3 ")
