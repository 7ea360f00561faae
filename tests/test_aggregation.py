"""Trades to bars on real data: SPY's 460 032 trades of 2013-10-10 against LEAN's minute bars.

Prices are compared in deci-cents (``round(price * 10_000)``, the unit of the LEAN files),
volumes exactly (share counts). ``docs/aggregation.md`` explains the rules.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from itertools import pairwise

import pytest

from lean_data.errors import ConfigError
from lean_data.loaders import load_file
from lean_data.models import (
    NS_PER_HOUR,
    NS_PER_MINUTE,
    NS_PER_SECOND,
    Resolution,
    Tick,
    TickType,
    TradeBar,
)
from lean_data.series.aggregation import (
    AggregatorStatistics,
    ForeignTickError,
    PrintUse,
    TickCountBarAggregator,
    TimeBarAggregator,
    TradeCondition,
    TradeRules,
    VolumeBarAggregator,
)

from .conftest import FIXTURES

LEAN = FIXTURES / "lean" / "equity" / "usa"
Key = tuple[int, int, int, int, float]
# 2013-10-10, UTC (New York is UTC-4): the 10:00 New York minute, the last regular minute.
TEN = 1_381_413_600_000_000_000
CLOSING_MINUTE = 1_381_435_140_000_000_000  # 15:59 New York


def key(bar: TradeBar) -> Key:
    o, h, lo, c = (round(p * 10_000) for p in (bar.open, bar.high, bar.low, bar.close))
    return o, h, lo, c, bar.volume


def final(bars: Sequence[TradeBar]) -> dict[int, TradeBar]:
    """The last revision of each bar, by open time."""
    return {bar.ts_event: bar for bar in bars}


def run(ticks: Sequence[Tick], **options: object) -> tuple[list[TradeBar], TimeBarAggregator]:
    aggregator = TimeBarAggregator("SPY", "1m", **options)  # type: ignore[arg-type]
    return aggregator.update_many(ticks) + aggregator.flush(), aggregator


def matches(ours: dict[int, TradeBar], vendor: dict[int, TradeBar]) -> tuple[int, int]:
    minutes = set(ours) | set(vendor)
    same = sum(1 for m in minutes if m in ours and m in vendor and key(ours[m]) == key(vendor[m]))
    return same, len(minutes)


@pytest.fixture(scope="module")
def ticks() -> list[Tick]:
    items = load_file(LEAN / "tick/spy/20131010_trade.zip")
    assert all(isinstance(item, Tick) for item in items)
    return items  # type: ignore[return-value]


@pytest.fixture(scope="module")
def vendor() -> dict[int, TradeBar]:
    return {bar.ts_event: bar for bar in load_file(LEAN / "minute/spy/20131010_trade.zip")}  # type: ignore[misc]


@pytest.fixture(scope="module")
def default_bars(ticks: list[Tick]) -> list[TradeBar]:
    return run(ticks)[0]


def minute_ticks(ticks: list[Tick], start: int) -> list[Tick]:
    return [tick for tick in ticks if start <= tick.ts_event < start + NS_PER_MINUTE]


# --- the vendor match (done-when 3, one day) -----------------------------------------


def test_default_rules_match_every_vendor_minute(
    ticks: list[Tick], vendor: dict[int, TradeBar], default_bars: list[TradeBar]
) -> None:
    same, minutes = matches(final(default_bars), vendor)
    assert (same, minutes) == (883, 883)
    assert same / minutes >= 0.98


def test_naive_aggregation_matches_83_percent(
    ticks: list[Tick], vendor: dict[int, TradeBar]
) -> None:
    bars, aggregator = run(ticks, rules=TradeRules.every_trade())
    assert matches(final(bars), vendor) == (737, 883)
    assert aggregator.statistics() == AggregatorStatistics(trades=460_032, bars=883)


def test_statistics_and_the_one_revision(ticks: list[Tick], default_bars: list[TradeBar]) -> None:
    aggregator = TimeBarAggregator("SPY", Resolution.MINUTE)
    assert aggregator.update_many(ticks) + aggregator.flush() == default_bars
    assert aggregator.statistics() == AggregatorStatistics(
        trades=460_032, ignored=535, bars=883, revisions=1
    )
    assert [bar.revision for bar in default_bars].count(1) == 1
    assert len(default_bars) == 884
    assert all(bar.closed and bar.resolution is Resolution.MINUTE for bar in default_bars)


def test_update_per_tick_equals_update_many(
    ticks: list[Tick], default_bars: list[TradeBar]
) -> None:
    aggregator = TimeBarAggregator("SPY", "1m")
    bars = [bar for tick in ticks for bar in aggregator.update(tick)] + aggregator.flush()
    assert bars == default_bars


def test_rules_classify_every_condition_of_the_day(ticks: list[Tick]) -> None:
    rules = TradeRules()
    seen = {(tick.condition, tick.suspicious) for tick in ticks}
    uses = {(cond, sus): rules.classify(cond, sus) for cond, sus in seen}
    trade, volume_only, nothing = (
        PrintUse(True, True),
        PrintUse(False, True),
        PrintUse(False, False),
    )
    assert uses == {
        # regular, extended hours and their combinations with a veto flag: full prints
        ("1", False): trade, ("2000", False): trade, ("20000001", False): trade,
        ("20002020", False): trade, ("20002000", False): trade, ("20000004", False): trade,
        ("20000002", False): trade, ("20002002", False): trade, ("102000", False): trade,
        ("20102000", False): trade, ("6000", False): trade, ("42000", False): trade,
        # no veto flag at all (average price, sold out of sequence): full prints
        ("100000", False): trade, ("4800", False): trade,
        # intermarket sweeps, trade-through exempt derivatively/average priced: volume only
        ("20000020", False): volume_only, ("20", False): volume_only,
        ("20100200", False): volume_only, ("20100000", False): volume_only,
        ("20000200", False): volume_only, ("20104800", False): volume_only,
        ("22000200", False): volume_only, ("20040200", False): volume_only,
        ("20004a00", False): volume_only,
        # suspicious prints: volume only
        ("20002000", True): volume_only, ("106000", True): volume_only,
        ("2000", True): volume_only, ("42000", True): volume_only,
        # Arca's opening fills, Arca's official close (also a regular trade)
        ("20000040", False): PrintUse(True, True, "open"),
        ("1000001", False): PrintUse(True, False, "close"),
        # official open/close reports, Nasdaq's opening cross: nowhere
        ("4000000", False): nothing, ("1000000", False): nothing, ("20200040", False): nothing,
    }  # fmt: skip
    assert TradeRules.every_trade().classify("20000020", True) == trade
    assert TradeRules(auctions=False).classify("4000000") == trade
    assert TradeCondition.parse("20000020") == (
        TradeCondition.TRADE_THROUGH_EXEMPT | TradeCondition.INTERMARKET_SWEEP
    )
    for not_hex in ("", "buyer_maker", "@,F,T", "-1"):
        assert TradeCondition.parse(not_hex) == TradeCondition.NONE
        assert rules.classify(not_hex) == trade


# --- alignment, clock, no fabricated bars, emit_empty -------------------------------


@pytest.mark.parametrize("period", ["5m", "1h"])
def test_coarser_bars_are_aligned_and_equal_resampled_minutes(
    ticks: list[Tick], default_bars: list[TradeBar], period: str
) -> None:
    resolution = Resolution.parse(period)
    aggregator = TimeBarAggregator("SPY", resolution)
    coarse = final(aggregator.update_many(ticks) + aggregator.flush())
    groups: dict[int, list[TradeBar]] = {}
    for minute, bar in sorted(final(default_bars).items()):
        groups.setdefault(minute - minute % resolution.nanos, []).append(bar)
    expected = {
        start: (
            round(bars[0].open * 10_000), round(max(b.high for b in bars) * 10_000),
            round(min(b.low for b in bars) * 10_000), round(bars[-1].close * 10_000),
            math.fsum(b.volume for b in bars),
        )
        for start, bars in groups.items()
    }  # fmt: skip
    assert {start: key(bar) for start, bar in coarse.items()} == expected
    assert all(start % resolution.nanos == 0 for start in coarse)
    assert len(coarse) == {"5m": 190, "1h": 16}[period]


def test_the_clock_closes_a_bar_without_a_later_trade(
    ticks: list[Tick], vendor: dict[int, TradeBar]
) -> None:
    before = [tick for tick in ticks if tick.ts_event < TEN + NS_PER_MINUTE]
    after = [tick for tick in ticks if tick.ts_event >= TEN + NS_PER_MINUTE]
    aggregator = TimeBarAggregator("SPY", "1m")
    closed_by_trades = aggregator.update_many(before)
    assert closed_by_trades[-1].ts_event == TEN - NS_PER_MINUTE
    in_progress = aggregator.snapshot(ts_recv=7)
    assert in_progress is not None
    assert (in_progress.closed, in_progress.ts_recv) == (False, 7)
    assert key(in_progress) == key(vendor[TEN])
    assert aggregator.on_clock(TEN + NS_PER_MINUTE - 1) == []
    (bar,) = aggregator.on_clock(TEN + NS_PER_MINUTE)
    assert key(bar) == key(vendor[TEN])
    assert (bar.ts_event, bar.closed, bar.revision, bar.ts_recv) == (
        TEN, True, 0, TEN + NS_PER_MINUTE
    )  # fmt: skip
    assert aggregator.snapshot() is None
    assert aggregator.on_clock(TEN + NS_PER_MINUTE) == []  # nothing twice
    assert aggregator.update(after[0]) == []  # the next trade does not close it again
    rest = aggregator.update_many(after[1:]) + aggregator.flush()
    assert matches(final([*closed_by_trades, bar, *rest]), vendor) == (883, 883)


def test_no_bar_is_fabricated_for_minutes_without_trades(ticks: list[Tick]) -> None:
    traded = {tick.ts_event - tick.ts_event % NS_PER_MINUTE for tick in ticks}
    aggregator = TimeBarAggregator("SPY", "1m")
    emitted: list[TradeBar] = []
    for tick in ticks:  # the clock ticks every second of trading time, and at every trade
        emitted += aggregator.on_clock(tick.ts_event - tick.ts_event % NS_PER_SECOND)
        emitted += aggregator.update(tick)
    emitted += aggregator.on_clock(ticks[-1].ts_event + NS_PER_HOUR)
    opened = {bar.ts_event for bar in emitted}
    first, last = min(traded), max(traded)
    quiet = set(range(first, last, NS_PER_MINUTE)) - traded
    assert len(quiet) == 77
    assert opened.isdisjoint(quiet)
    assert opened == traded
    assert aggregator.statistics().empty_bars == 0


def test_emit_empty_fills_quiet_minutes_with_flat_bars(
    ticks: list[Tick], default_bars: list[TradeBar]
) -> None:
    bars, aggregator = run(ticks, emit_empty=True)
    assert aggregator.statistics() == AggregatorStatistics(
        trades=460_032, ignored=535, bars=960, revisions=1, empty_bars=77
    )
    by_minute = final(bars)
    starts = sorted(by_minute)
    assert starts == list(range(starts[0], starts[-1] + 1, NS_PER_MINUTE))
    real = final(default_bars)
    for previous, minute in pairwise(starts):
        bar = by_minute[minute]
        if minute in real:
            assert bar == real[minute]
        else:
            close = by_minute[previous].close
            assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (
                close, close, close, close, 0.0
            )  # fmt: skip


def test_emit_empty_on_the_clock(ticks: list[Tick]) -> None:
    day = [tick for tick in ticks if tick.ts_event < TEN + NS_PER_MINUTE]
    aggregator = TimeBarAggregator("SPY", "1m", emit_empty=True)
    aggregator.update_many(day)
    closed = aggregator.on_clock(TEN + 4 * NS_PER_MINUTE + 5)
    assert [bar.ts_event for bar in closed] == [TEN + i * NS_PER_MINUTE for i in range(4)]
    flat = closed[1].close
    assert closed[0].close == flat
    assert [key(bar) for bar in closed[1:]] == [(round(flat * 10_000),) * 4 + (0.0,)] * 3
    assert aggregator.on_clock(TEN + 4 * NS_PER_MINUTE + 6) == []


# --- late trades ------------------------------------------------------------------


def test_the_closing_cross_revises_the_last_session_bar(default_bars: list[TradeBar]) -> None:
    versions = [bar for bar in default_bars if bar.ts_event == CLOSING_MINUTE]
    assert [(key(bar), bar.revision) for bar in versions] == [
        ((1_690_900, 1_691_900, 1_690_800, 1_691_700, 4_269_661.0), 0),  # last regular trade
        ((1_690_900, 1_692_400, 1_690_800, 1_692_400, 4_269_661.0), 1),  # Arca's official close
    ]
    assert default_bars.index(versions[1]) == default_bars.index(versions[0]) + 1


def test_late_policy_drop_keeps_the_first_version(
    ticks: list[Tick], vendor: dict[int, TradeBar]
) -> None:
    bars, aggregator = run(ticks, late="drop")
    assert aggregator.statistics() == AggregatorStatistics(
        trades=460_032, ignored=535, bars=883, late_dropped=1
    )
    assert key(final(bars)[CLOSING_MINUTE]) == (
        1_690_900,
        1_691_900,
        1_690_800,
        1_691_700,
        4_269_661.0,
    )
    assert matches(final(bars), vendor) == (882, 883)


def held_back(ticks: list[Tick], minute: int, deliver_after: int) -> tuple[list[Tick], Tick]:
    """The ticks with the last trade of ``minute`` arriving after the first at ``deliver_after``."""
    last = max(i for i, t in enumerate(ticks) if minute <= t.ts_event < minute + NS_PER_MINUTE)
    late = ticks[last]
    rest = ticks[:last] + ticks[last + 1 :]
    at = next(i for i, tick in enumerate(rest) if tick.ts_event >= deliver_after) + 1
    return [*rest[:at], late, *rest[at:]], late


def test_a_late_trade_revises_its_bar(ticks: list[Tick], vendor: dict[int, TradeBar]) -> None:
    stream, late = held_back(ticks, TEN, TEN + NS_PER_MINUTE)
    assert TradeRules().classify(late.condition, late.suspicious) == PrintUse(True, True)
    bars, aggregator = run(stream)
    versions = [bar for bar in bars if bar.ts_event == TEN]
    assert [bar.revision for bar in versions] == [0, 1]
    first, revised = versions
    assert key(revised) == key(vendor[TEN])
    assert first.volume == vendor[TEN].volume - late.size
    assert aggregator.statistics().revisions == 2  # this one and the closing cross
    assert matches(final(bars), vendor) == (883, 883)


def test_a_trade_later_than_the_window_is_dropped(
    ticks: list[Tick], vendor: dict[int, TradeBar]
) -> None:
    stream, _ = held_back(ticks, TEN, TEN + 2 * NS_PER_MINUTE)
    bars, aggregator = run(stream, revision_window=1)
    assert aggregator.statistics().late_dropped == 1
    assert [bar.revision for bar in bars if bar.ts_event == TEN] == [0]
    assert matches(final(bars), vendor) == (882, 883)
    bars, aggregator = run(stream)  # the default window keeps 64 bars
    assert [bar.revision for bar in bars if bar.ts_event == TEN] == [0, 1]
    assert matches(final(bars), vendor) == (883, 883)


# --- tick-count and volume bars -----------------------------------------------------

PLAIN = TradeRules(auctions=False)  # no cross logic: the oracles below stay simple


def uses(ticks: list[Tick], rules: TradeRules = PLAIN) -> list[PrintUse]:
    """How the rules use each tick (classified once per distinct condition)."""
    known: dict[tuple[str, bool], PrintUse] = {}
    out = []
    for tick in ticks:
        use = known.get((tick.condition, tick.suspicious))
        if use is None:
            use = known[tick.condition, tick.suspicious] = rules.classify(
                tick.condition, tick.suspicious
            )
        out.append(use)
    return out


def test_tick_count_bars_hold_n_price_setting_prints(ticks: list[Tick]) -> None:
    aggregator = TickCountBarAggregator("SPY", 1000, rules=PLAIN)
    bars = aggregator.update_many(ticks)
    expected: list[tuple[int, int, int, int, int, float]] = []
    prices: list[int] = []
    volume: list[float] = []
    opened: int | None = None
    for tick, use in zip(ticks, uses(ticks), strict=True):
        if opened is None:
            opened = tick.ts_event
        if use.volume:
            volume.append(tick.size)
        if use.price:
            prices.append(round(tick.price * 10_000))
            if len(prices) == 1000:
                bar = (prices[0], max(prices), min(prices), prices[-1], math.fsum(volume))
                expected.append((opened, *bar))
                prices, volume, opened = [], [], None
    assert [(bar.ts_event, *key(bar)) for bar in bars] == expected
    assert len(bars) == 251
    assert all(bar.resolution is Resolution.TICK and bar.closed for bar in bars)
    (rest,) = aggregator.flush()
    assert (rest.ts_event, rest.volume) == (opened, math.fsum(volume))
    assert aggregator.statistics() == AggregatorStatistics(trades=460_032, bars=252)


def volume_oracle(ticks: list[Tick], target: float, rules: TradeRules) -> list[Key]:
    """Volume bars from cumulative volume: print i covers [C(i-1), C(i)) of the tape."""
    bars: dict[int, list[int]] = {}
    filled = 0.0
    for tick, use in zip(ticks, uses(ticks, rules), strict=True):
        size = tick.size if use.volume else 0.0
        first = int(filled // target)
        filled += size
        last = max(first, math.ceil(filled / target) - 1)
        if use.price:
            for index in range(first, last + 1):
                bars.setdefault(index, []).append(round(tick.price * 10_000))
    out: list[Key] = []
    close = 0
    for index in range(int(filled // target)):
        prices = bars.get(index) or [close]
        close = prices[-1]
        out.append((prices[0], max(prices), min(prices), close, target))
    return out


def test_volume_bars_split_the_straddling_trade(ticks: list[Tick]) -> None:
    aggregator = VolumeBarAggregator("SPY", 100_000, rules=PLAIN)
    bars = aggregator.update_many(ticks)
    assert [key(bar) for bar in bars] == volume_oracle(ticks, 100_000.0, PLAIN)
    assert len(bars) == 1956
    assert {bar.volume for bar in bars} == {100_000.0}
    total = math.fsum(t.size for t, use in zip(ticks, uses(ticks), strict=True) if use.volume)
    (rest,) = aggregator.flush()
    assert rest.volume == total - 1956 * 100_000
    # the largest suspicious block (3 006 663 shares at 165.59, after hours) sets no price:
    # the 29 bars it fills alone are flat at the close of the bar before it
    block = max((tick for tick in ticks if tick.suspicious), key=lambda tick: tick.size)
    assert (block.price, block.size) == (165.59, 3_006_663.0)
    at_block = [i for i, bar in enumerate(bars) if bar.ts_event == block.ts_event]
    before = bars[at_block[0] - 1].close
    flat = [bars[i] for i in at_block if bars[i].high == bars[i].low]
    assert (len(at_block), len(flat)) == (30, 29)
    assert {(bar.open, bar.close) for bar in flat} == {(before, before)}
    assert bars[at_block[-1]].open == before


def test_volume_bars_default_rules_agree_with_minute_volume(
    ticks: list[Tick], default_bars: list[TradeBar]
) -> None:
    aggregator = VolumeBarAggregator("SPY", 100_000)
    bars = aggregator.update_many(ticks)
    (rest,) = aggregator.flush()
    day_volume = math.fsum(bar.volume for bar in final(default_bars).values())
    assert len(bars) == 1909
    assert len(bars) * 100_000 + rest.volume == day_volume


def test_volume_bars_without_split_keep_the_trade_whole(ticks: list[Tick]) -> None:
    aggregator = VolumeBarAggregator("SPY", 100_000, rules=PLAIN, split=False)
    bars = aggregator.update_many(ticks) + aggregator.flush()
    total = math.fsum(t.size for t, use in zip(ticks, uses(ticks), strict=True) if use.volume)
    assert math.fsum(bar.volume for bar in bars) == total
    assert all(bar.volume >= 100_000 for bar in bars[:-1])
    assert bars[-1].volume < 100_000
    assert aggregator.statistics().bars == len(bars) == 1628


# --- fractional crypto sizes ------------------------------------------------------


def kraken_ticks() -> list[Tick]:
    path = FIXTURES / "freqtrade/kraken/trades_csv/BCHEUR.csv"
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    return [Tick("BCH/EUR", int(s) * NS_PER_SECOND, float(p), float(v)) for s, p, v in rows]


def test_fractional_volumes_do_not_drift() -> None:
    trades = kraken_ticks()
    assert len(trades) == 148
    aggregator = TimeBarAggregator("BCH/EUR", "1h")
    bars = aggregator.update_many(trades) + aggregator.flush()
    by_hour: dict[int, list[float]] = {}
    for trade in trades:
        by_hour.setdefault(trade.ts_event - trade.ts_event % NS_PER_HOUR, []).append(trade.size)
    assert {bar.ts_event: bar.volume for bar in bars} == {
        hour: math.fsum(sizes) for hour, sizes in by_hour.items()
    }
    naive = {hour: sum(sizes) for hour, sizes in by_hour.items()}  # left-to-right floats
    assert sum(naive[bar.ts_event] != bar.volume for bar in bars) == 4  # they would drift
    naive_rules = TimeBarAggregator("BCH/EUR", "1h", rules=TradeRules.every_trade())
    assert naive_rules.update_many(trades) + naive_rules.flush() == bars  # no conditions


# --- input checks -----------------------------------------------------------------


def test_ticks_of_other_kinds_and_symbols(ticks: list[Tick]) -> None:
    row = next(iter(load_file(LEAN / "minute/spy/20131010_quote.zip")))
    quote = Tick(
        "SPY", row.ts_event, 166.48, 0.0, TickType.QUOTE, bid_price=166.5, bid_size=30300.0,
        ask_price=166.51, ask_size=100.0,
    )  # fmt: skip
    aggregator = TimeBarAggregator("SPY", "1m")
    assert aggregator.update_many([quote, ticks[0]]) == []
    assert aggregator.update(quote) == []
    assert aggregator.statistics() == AggregatorStatistics(trades=1, ignored=2)
    ibm = load_file(LEAN / "tick/ibm/20131011_trade.zip")[0]
    assert isinstance(ibm, Tick)
    with pytest.raises(ValueError, match="builds 'SPY' bars, got a tick for 'IBM'"):
        aggregator.update(ibm)
    with pytest.raises(ValueError, match="got a tick for 'IBM'"):
        aggregator.update_many([ticks[1], ibm])
    assert aggregator.statistics().trades == 2
    for other in (TickCountBarAggregator("SPY", 5), VolumeBarAggregator("SPY", 500)):
        with pytest.raises(ValueError, match="got a tick for 'IBM'"):
            other.update(ibm)
        assert other.update(quote) == []
    # a batch that fails on a foreign tick keeps the bars its earlier ticks completed
    counter, reference = TickCountBarAggregator("SPY", 2), TickCountBarAggregator("SPY", 2)
    completed = [bar for tick in ticks[:5] for bar in reference.update(tick)]
    assert completed  # two-print bars over five real prints
    with pytest.raises(ForeignTickError, match="got a tick for 'IBM'") as caught:
        counter.update_many([*ticks[:5], ibm, *ticks[5:]])
    assert caught.value.bars == completed
    assert counter.statistics() == reference.statistics()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TimeBarAggregator("SPY", "tick"), "needs a period"),
        (lambda: TimeBarAggregator("SPY", "7x"), "bad resolution '7x'"),
        (lambda: TimeBarAggregator("SPY", "1m", late="keep"), "'revise' or 'drop', got 'keep'"),  # type: ignore[arg-type]
        (lambda: TimeBarAggregator("SPY", "1m", revision_window=0), "at least 1, got 0"),
        (lambda: TimeBarAggregator("", "1m"), "needs a symbol"),
        (lambda: TimeBarAggregator("SPY", "1m", rules="lean"), "must be a TradeRules"),  # type: ignore[arg-type]
        (lambda: TickCountBarAggregator("SPY", 0), "n >= 1 prints, got 0"),
        (lambda: VolumeBarAggregator("SPY", 0), "positive finite volume, got 0"),
        (lambda: VolumeBarAggregator("SPY", math.nan), "positive finite volume, got nan"),
        (lambda: TradeRules(price_flags=-1), "price_flags must be 32-bit flags, got -1"),
        (lambda: TradeRules(closing_cross_boundary=0), "positive ns count, got 0"),
    ],
)
def test_bad_arguments_raise_config_error(make: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()  # type: ignore[operator]
