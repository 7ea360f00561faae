"""QualityTracker: exact counts, scores, gaps, latencies, filters; and on a real file."""

from __future__ import annotations

from pathlib import Path

import pytest

from lean_data.errors import ConfigError
from lean_data.loaders import iter_file
from lean_data.models import NS_PER_DAY, NS_PER_MINUTE, QuoteBar, Resolution, Tick, TradeBar
from lean_data.quality.levels import CLEAN, DataQualityLevel, Verdict
from lean_data.quality.validator import DataValidator, QualityTracker

T0 = 1_381_392_000_000_000_000  # 2013-10-10 08:00 UTC
MS = 1_000_000


def bar(minute: int, close: float = 10.0, **fields: object) -> TradeBar:
    ts = T0 + minute * NS_PER_MINUTE
    return TradeBar("AAPL", ts, 10.0, 10.5, 9.5, close, 100.0, **fields)  # type: ignore[arg-type]


def tick(ms: int, **fields: object) -> Tick:
    return Tick("SPY", T0 + ms * MS, 169.0, 100.0, **fields)  # type: ignore[arg-type]


def verdict(level: DataQualityLevel, *reasons: str) -> Verdict:
    return Verdict(level, reasons, "x")


def test_report_counts_scores_gaps_and_latency() -> None:
    tracker = QualityTracker(window=4)
    record = tracker.record
    record("alpaca", "AAPL", bar(0), CLEAN, 10 * MS)
    record("alpaca", "AAPL", bar(1), verdict(DataQualityLevel.FAIR, "nan_volume"), 30 * MS)
    poor = verdict(DataQualityLevel.POOR, "extreme_range", "extreme_move")
    record("alpaca", "AAPL", bar(3), poor, 20 * MS)  # a gap: minute 2 missing
    record("alpaca", "AAPL", bar(3), CLEAN)  # same open time, same revision: duplicate
    record("alpaca", "AAPL", bar(3, 10.1, revision=1), verdict(DataQualityLevel.GOOD, "x"))
    bad = verdict(DataQualityLevel.INVALID, "ohlc_inconsistent")
    record("alpaca", "AAPL", bar(2), bad)  # INVALID: counted, but its time moves nothing
    record("alpaca", "AAPL", bar(8), CLEAN)  # a gap of 4 missing minutes
    assert tracker.report() == {
        "alpaca": {
            "AAPL": {
                "messages": 7,
                "average_score": (10 + 6 + 3 + 10 + 8 + 0 + 10) / 70,
                "rolling_score": (8 + 0 + 10 + 10) / 40,
                "levels": {"EXCELLENT": 3, "GOOD": 1, "FAIR": 1, "POOR": 1, "INVALID": 1},
                "reasons": {
                    "nan_volume": 1,
                    "extreme_range": 1,
                    "extreme_move": 1,
                    "x": 1,
                    "ohlc_inconsistent": 1,
                },
                "gaps": 2,
                "missing_bars": 5,
                "duplicates": 1,
                "out_of_order": 0,
                "latency_ms": {"avg": 20.0, "p50": 20.0, "p99": 30.0},
                "first_ts": T0,
                "last_ts": T0 + 8 * NS_PER_MINUTE,
            }
        }
    }


def test_an_invalid_item_moves_no_clock() -> None:
    """A bar the screen found in 2100 must not make the bars after it out of order."""
    tracker = QualityTracker()
    invalid = verdict(DataQualityLevel.INVALID, "future_timestamp")
    tracker.record("f", "AAPL", bar(0, ts_recv=T0 + NS_PER_MINUTE + MS), CLEAN)
    year_2100 = TradeBar("AAPL", 4_102_444_800 * 10**9, 10.0, 10.5, 9.5, 10.0, 1.0)
    tracker.record("f", "AAPL", year_2100, invalid)
    float_time = TradeBar("AAPL", 1.5, 10.0, 10.5, 9.5, 10.0, 1.0)  # type: ignore[arg-type]
    tracker.record("f", "AAPL", float_time, invalid)
    tracker.record("f", "AAPL", bar(1), CLEAN)
    tracker.record("f", "AAPL", bar(0), CLEAN)  # older than the last valid bar: out of order
    stats = tracker.report()["f"]["AAPL"]
    assert stats["messages"] == 5
    assert stats["levels"]["INVALID"] == 2
    assert stats["reasons"] == {"future_timestamp": 2}
    assert (stats["out_of_order"], stats["gaps"], stats["duplicates"]) == (1, 0, 0)
    assert (stats["first_ts"], stats["last_ts"]) == (T0, T0 + NS_PER_MINUTE)
    assert stats["latency_ms"]["avg"] == 1.0


def test_in_progress_updates_are_not_duplicates() -> None:
    tracker = QualityTracker()
    tracker.record("f", "AAPL", bar(0, closed=False), CLEAN)
    tracker.record("f", "AAPL", bar(0, 10.2, closed=False), CLEAN)
    tracker.record("f", "AAPL", bar(0, 10.1), CLEAN)  # the final version
    tracker.record("f", "AAPL", bar(0, 10.1), CLEAN)  # a repeat of a closed bar
    stats = tracker.report()["f"]["AAPL"]
    assert (stats["messages"], stats["duplicates"], stats["gaps"]) == (4, 1, 0)


def test_ticks_sharing_a_millisecond_are_not_duplicates() -> None:
    tracker = QualityTracker()
    for ms in (5, 5, 5, 6, 4, 7):
        tracker.record("f", "SPY", tick(ms), CLEAN)
    stats = tracker.report()["f"]["SPY"]
    assert (stats["duplicates"], stats["out_of_order"], stats["gaps"]) == (0, 1, 0)
    assert (stats["first_ts"], stats["last_ts"]) == (T0 + 4 * MS, T0 + 7 * MS)


def test_latency_is_derived_from_receive_time() -> None:
    tracker = QualityTracker()
    tracker.record("f", "SPY", tick(0, ts_recv=T0 + 3 * MS), CLEAN)  # 3 ms
    tracker.record("f", "SPY", tick(1, ts_recv=T0 + 8 * MS), CLEAN)  # 7 ms
    # a closed bar: from its end; a forming bar: no latency
    tracker.record("f", "AAPL", bar(0, ts_recv=T0 + NS_PER_MINUTE + 250 * MS), CLEAN)
    tracker.record("f", "AAPL", bar(1, closed=False, ts_recv=T0 + 61 * MS), CLEAN)
    report = tracker.report(feed="f")
    assert report["f"]["SPY"]["latency_ms"] == {"avg": 5.0, "p50": 3.0, "p99": 7.0}
    assert report["f"]["AAPL"]["latency_ms"] == {"avg": 250.0, "p50": 250.0, "p99": 250.0}


def test_series_of_one_symbol_are_tracked_apart() -> None:
    tracker = QualityTracker()
    tracker.record("f", "AAPL", bar(0), CLEAN)
    quote = QuoteBar(
        "AAPL", T0 + NS_PER_MINUTE, 9.9, 9.9, 9.9, 9.9, 1.0, 10.0, 10.0, 10.0, 10.0, 1.0
    )
    tracker.record("f", "AAPL", quote, CLEAN)
    tracker.record("f", "AAPL", bar(1), CLEAN)
    hourly = TradeBar("AAPL", T0, 10.0, 10.5, 9.5, 10.0, 1.0, Resolution.HOUR)
    tracker.record("f", "AAPL", hourly, CLEAN)
    stats = tracker.report()["f"]["AAPL"]
    assert (stats["messages"], stats["gaps"], stats["out_of_order"]) == (4, 0, 0)


def test_report_filters_by_symbol_and_feed() -> None:
    tracker = QualityTracker()
    for feed, symbol in (("a", "AAPL"), ("a", "SPY"), ("b", "AAPL")):
        tracker.record(feed, symbol, bar(0), CLEAN)
    assert set(tracker.report()) == {"a", "b"}
    assert {f: set(s) for f, s in tracker.report(symbol="AAPL").items()} == {
        "a": {"AAPL"},
        "b": {"AAPL"},
    }
    assert {f: set(s) for f, s in tracker.report(feed="a").items()} == {"a": {"AAPL", "SPY"}}
    assert list(tracker.report(symbol="AAPL", feed="b")) == ["b"]
    assert tracker.report(symbol="MSFT") == {}


def test_rolling_score_covers_the_last_window_only() -> None:
    tracker = QualityTracker(window=3)
    poor = verdict(DataQualityLevel.POOR, "price_outlier")
    for i, v in enumerate([poor, poor, CLEAN, CLEAN, CLEAN]):
        tracker.record("f", "AAPL", bar(i), v)
    stats = tracker.report()["f"]["AAPL"]
    assert (stats["average_score"], stats["rolling_score"]) == (36 / 50, 1.0)


def test_window_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="window must be a positive integer, got 0"):
        QualityTracker(window=0)


def test_real_coinbase_daily_gaps(fixtures: Path) -> None:
    validator, tracker = DataValidator(), QualityTracker(window=100)
    for item in iter_file(fixtures / "lean/crypto/coinbase/daily/btcusd_trade.zip"):
        tracker.record("coinbase", item.symbol, item, validator.check(item))
    stats = tracker.report()["coinbase"]["BTC/USD"]
    # Dec 2014 - Jan 2015, before the exchange's launch: jumps of 2, 2, 2, 2, 6, 21, 5 and
    # 2 days, 34 missing days in all (calendar-unaware, but crypto trades every day)
    assert stats == {
        "messages": 1318,
        "average_score": (1316 * 10 + 6 + 3) / 13180,
        "rolling_score": 1.0,
        "levels": {"EXCELLENT": 1316, "GOOD": 0, "FAIR": 1, "POOR": 1, "INVALID": 0},
        "reasons": {"extreme_range": 2, "extreme_move": 1},
        "gaps": 8,
        "missing_bars": 34,
        "duplicates": 0,
        "out_of_order": 0,
        "latency_ms": {"avg": None, "p50": None, "p99": None},
        "first_ts": 1_417_392_000_000_000_000,  # 2014-12-01
        "last_ts": 1_417_392_000_000_000_000 + 1351 * NS_PER_DAY,  # 2018-08-13
    }


def test_report_lists_every_level_by_name_in_order() -> None:
    tracker = QualityTracker()
    names = ["INVALID", "POOR", "POOR", "FAIR", "GOOD", "EXCELLENT", "GOOD"]
    for i, name in enumerate(names):
        tracker.record("f", "AAPL", bar(i), verdict(DataQualityLevel[name], "x"))
    assert list(tracker.report()["f"]["AAPL"]["levels"].items()) == [
        ("EXCELLENT", 1),
        ("GOOD", 2),
        ("FAIR", 1),
        ("POOR", 2),
        ("INVALID", 1),
    ]


def test_latency_percentiles_are_exact_for_large_values() -> None:
    tracker = QualityTracker(window=5)
    big = 2**62 + 1  # 146 years in ns: no float holds it exactly
    latencies = [big + 7, 3, big, -2 * MS, big + 1, big + 2, 2**63 - 1]
    for i, ns in enumerate(latencies):
        tracker.record("f", "AAPL", bar(i), CLEAN, ns)
    # nearest rank over the last 5: the 3rd and the 5th smallest
    # the average is summed in a float (a constant cost per item): within a part in 1e15
    report = tracker.report()["f"]["AAPL"]["latency_ms"]
    assert report["avg"] == pytest.approx(sum(latencies) / 7 / 1e6, rel=1e-15)
    assert report == {
        "avg": report["avg"],
        "p50": (big + 1) / 1e6,
        "p99": (2**63 - 1) / 1e6,
    }
    # beyond 64 bits (absurd clocks) they are still kept exactly
    for i, ns in enumerate([2**64 + 9, -(2**70), 5], 7):
        tracker.record("f", "AAPL", bar(i), CLEAN, ns)
    assert tracker.report()["f"]["AAPL"]["latency_ms"] == {
        "avg": (sum(latencies) + 2**64 + 14 - 2**70) / 10 / 1e6,
        "p50": (big + 2) / 1e6,
        "p99": (2**64 + 9) / 1e6,
    }


def test_the_latency_window_setter_is_the_arrays_own() -> None:
    """lean_data._rows.put_int64 (compiled build) sets an array('q') item as the array does,
    refuses what the array refuses (so the tracker keeps such a latency in a list), and
    sets a list's item."""
    from array import array

    import pytest

    from lean_data.quality import tracker

    put = tracker._PUT_INT64
    values = array("q", bytes(24))
    put(values, 1, 2**63 - 1)
    put(values, 2, -5)
    assert values.tolist() == [0, 2**63 - 1, -5]
    with pytest.raises(OverflowError):
        put(values, 0, 2**63)
    with pytest.raises(TypeError):
        put(values, 0, 1.5)
    with pytest.raises(IndexError):
        put(values, 3, 1)
    assert values.tolist() == [0, 2**63 - 1, -5]
    kept = [0, 0]
    put(kept, 1, 2**80)
    assert kept == [0, 2**80]


def test_a_latency_beyond_any_float_is_counted_not_raised() -> None:
    tracker = QualityTracker(window=5)
    tracker.record("f", "AAPL", bar(0), CLEAN, 10**400)  # not a time any feed can give
    tracker.record("f", "AAPL", bar(1), CLEAN, 3)
    counters = tracker.stats_of("f", "AAPL")
    assert counters.lat_n == 2
    assert counters.lat_sum == float("inf")
    assert counters.latencies[0] == 10**400  # the window keeps it exactly
