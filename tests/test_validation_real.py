"""DataValidator on real recorded data: exact sets of flagged items, with the reason for each.

Every fixture is a byte-for-byte copy from the shared corpus (see tests/fixtures/PROVENANCE.md).
Each test replays a whole file through one validator and asserts the complete list of
flagged items, so a new false positive or a lost detection fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lean_data.loaders import iter_file
from lean_data.models import MarketData, Tick
from lean_data.quality.levels import CLEAN, DataQualityLevel, Verdict
from lean_data.quality.validator import DataValidator

FAIR = DataQualityLevel.FAIR
POOR = DataQualityLevel.POOR

Flag = tuple[str, str, tuple[str, ...]]  # (event time ISO, level name, reasons)


def judged(path: Path) -> Iterator[tuple[MarketData, Verdict]]:
    validator = DataValidator()
    for item in iter_file(path):
        yield item, validator.check(item)


def flags(path: Path) -> list[Flag]:
    """Return (time, level, reasons) of every flagged item; assert none is INVALID."""
    out = []
    for item, verdict in judged(path):
        assert verdict.is_valid, (item, verdict)
        if verdict is not CLEAN:
            out.append((item.time.isoformat(), verdict.level.name, verdict.reasons))
    return out


def messages(path: Path) -> dict[str, str]:
    return {item.time.isoformat(): v.message for item, v in judged(path) if v is not CLEAN}


def test_aapl_split_day_minute_bars(fixtures: Path) -> None:
    path = fixtures / "lean/equity/usa/minute/aapl/20140609_trade.zip"
    # 04:00 New York: O 645.57 H 645.57 L 92.23 C 92.42, the pre-split price in the open
    assert flags(path) == [("2014-06-09T08:00:00+00:00", "POOR", ("split_inside_bar",))]
    assert messages(path)["2014-06-09T08:00:00+00:00"] == (
        "open 645.57 and close 92.42 differ by a 7:1 split ratio: "
        "the pre-split price leaked into this bar"
    )


def test_coinbase_daily_bad_print(fixtures: Path) -> None:
    path = fixtures / "lean/crypto/coinbase/daily/btcusd_trade.zip"
    assert flags(path) == [
        # pre-launch, illiquid: O 200 H 221 L 109.87 C 130 after a close of 260, within
        # the first 20 bars (hard limits): a real -50 % day in a 0.01-BTC market
        ("2015-01-14T00:00:00+00:00", "FAIR", ("extreme_range", "extreme_move")),
        # the bad print: low 0.06 with open/close 1173.13/1178.85
        ("2017-04-15T00:00:00+00:00", "POOR", ("extreme_range",)),
    ]
    assert messages(path)["2017-04-15T00:00:00+00:00"] == (
        "low 0.06 is 99.99% below min(open, close) 1173.13 (range limit 141.31%)"
    )


@pytest.mark.slow
def test_spy_ticks_block_prints(fixtures: Path) -> None:
    path = fixtures / "lean/equity/usa/tick/spy/20131010_trade.zip"
    vendor, outliers = [], []
    trades = same_ms = 0
    previous_ts = -1
    for tick, verdict in judged(path):
        assert isinstance(tick, Tick)
        trades += 1
        same_ms += tick.ts_event == previous_ts
        previous_ts = tick.ts_event
        assert verdict.is_valid
        key = (tick.time.strftime("%H:%M:%S.%f")[:-3], tick.price, tick.size)
        if verdict.reasons == ("vendor_suspicious",):
            assert verdict.level is POOR
            vendor.append(key)
        elif verdict is not CLEAN:
            assert (verdict.level, verdict.reasons) == (POOR, ("price_outlier",))
            outliers.append(key)
    assert (trades, same_ms) == (460_032, 252_023)  # over half repeat the previous millisecond
    # exactly the vendor's 10 flagged block prints (times UTC; 16:02-17:41 New York)
    assert vendor == [
        ("20:02:29.465", 165.59, 250_629.0),
        ("20:10:28.137", 165.59, 250_629.0),
        ("20:21:49.061", 165.59, 1_002_518.0),
        ("20:23:04.436", 165.59, 1_503_447.0),
        ("20:25:55.928", 165.59, 3_006_663.0),
        ("20:36:56.089", 165.59, 501_300.0),
        ("20:48:28.240", 165.59, 500_898.0),
        ("21:03:03.690", 165.59, 2_002_608.0),
        ("21:39:07.612", 165.59, 1_002_493.0),
        ("21:40:40.926", 165.59, 501_060.0),
    ]
    # 17 more prints at the same 165.59 block price, venue D, sale conditions
    # 20100000/20104800, which the vendor did not flag: 1.6-2.1 % below a market at
    # 168.2-169.1 during regular hours. They are the same off-market block trades, and
    # a "last price" would be wrong with them, so they are outliers too.
    assert outliers == [
        ("17:50:33.174", 165.59, 501_259.0),
        ("17:50:33.212", 165.59, 501_259.0),
        ("18:31:11.401", 165.59, 501_259.0),
        ("19:05:00.160", 165.59, 751_888.0),
        ("19:16:15.279", 165.59, 501_259.0),
        ("19:19:52.836", 165.59, 501_259.0),
        ("19:30:02.869", 165.59, 501_259.0),
        ("19:30:02.921", 165.59, 501_259.0),
        ("19:34:07.410", 165.59, 501_259.0),
        ("19:35:42.620", 165.59, 250_629.0),
        ("19:37:05.184", 165.59, 250_629.0),
        ("19:42:17.521", 165.59, 250_629.0),
        ("19:43:42.280", 165.59, 250_629.0),
        ("20:13:07.896", 165.59, 250_629.0),
        ("20:16:30.633", 165.59, 250_629.0),
        ("20:18:54.011", 165.59, 250_654.0),
        ("21:04:24.535", 165.59, 250_654.0),
    ]


def test_mark_price_candles_have_unknown_volume(fixtures: Path) -> None:
    path = fixtures / "freqtrade/futures/XRP_USDT_USDT-1h-mark.feather"
    verdicts = [verdict for _, verdict in judged(path)]
    assert len(verdicts) == 100
    assert set(verdicts) == {Verdict(FAIR, ("nan_volume",), "volume is NaN (unknown)")}


@pytest.mark.parametrize("name", ["backtrader/2006-min-005.txt", "backtrader/2006-day-001.txt"])
def test_index_without_volume_is_not_flagged(fixtures: Path, name: str) -> None:
    assert flags(fixtures / name) == []


def test_yhoo_real_48_percent_day(fixtures: Path) -> None:
    path = fixtures / "backtrader/yhoo-1996-2015.txt"
    assert flags(path) == [
        # IPO day, the first bar: O 1.05 H 1.79 L 1.02 C 1.375, beyond the 50 % hard limit
        ("1996-04-12T00:00:00+00:00", "FAIR", ("extreme_range",)),
        # real earnings drop of -22 %
        ("2006-07-19T00:00:00+00:00", "FAIR", ("extreme_move",)),
        # the real +48 % day (Microsoft's bid); the next days hold the level: not flagged
        ("2008-02-01T00:00:00+00:00", "FAIR", ("extreme_move",)),
    ]


def test_aapl_daily_splits(fixtures: Path) -> None:
    path = fixtures / "lean/equity/usa/daily/aapl.zip"
    assert flags(path) == [
        ("2000-06-21T04:00:00+00:00", "FAIR", ("probable_split",)),  # real 2:1
        # a real -52 % crash (profit warning) that lands 5 % from a 2:1 ratio: without
        # corporate-action data it reads as a split; FAIR either way
        ("2000-09-29T04:00:00+00:00", "FAIR", ("probable_split",)),
        ("2005-02-28T05:00:00+00:00", "FAIR", ("probable_split",)),  # real 2:1
        # vendor bad prints in the raw daily lows (AAPL never traded there)
        ("2009-09-21T04:00:00+00:00", "POOR", ("extreme_range",)),  # low 10.59 vs 184
        ("2010-08-31T04:00:00+00:00", "POOR", ("extreme_range",)),  # low 25.30 vs 242
        ("2011-01-03T05:00:00+00:00", "POOR", ("extreme_range",)),  # low 32.65 vs 326
        ("2014-06-09T04:00:00+00:00", "FAIR", ("probable_split",)),  # real 7:1
        ("2020-08-31T04:00:00+00:00", "FAIR", ("probable_split",)),  # real 4:1
    ]
    found = messages(path)
    assert found["2014-06-09T04:00:00+00:00"] == (
        "probable corporate action: 7:1 split (open 92.69 vs previous close 645.57)"
    )
    assert found["2020-08-31T04:00:00+00:00"] == (
        "probable corporate action: 4:1 split (open 127.67 vs previous close 499.23)"
    )


def test_aig_daily_reverse_split(fixtures: Path) -> None:
    path = fixtures / "lean/equity/usa/daily/aig.zip"
    assert flags(path) == [
        ("1998-08-03T04:00:00+00:00", "FAIR", ("probable_split",)),  # real 3:2
        ("2003-11-04T05:00:00+00:00", "FAIR", ("extreme_range",)),  # low 44.70 vs 61.23
        # the bailout day: opened -63 % at 1.75, closed 3.94; real
        ("2008-09-16T04:00:00+00:00", "FAIR", ("extreme_range",)),
        ("2009-05-05T04:00:00+00:00", "POOR", ("extreme_range",)),  # bad high 20.98 vs 1.72
        ("2009-07-01T04:00:00+00:00", "FAIR", ("probable_split",)),  # real 1:20 reverse
        ("2020-03-12T04:00:00+00:00", "FAIR", ("extreme_move",)),  # Covid crash, -21 %
    ]
    assert messages(path)["2009-07-01T04:00:00+00:00"] == (
        "probable corporate action: 1:20 reverse split (open 19.7 vs previous close 1.13)"
    )


def test_bitfinex_crash_is_not_invalid(fixtures: Path) -> None:
    path = fixtures / "lean/crypto/bitfinex/hour/btcusd_trade.zip"
    # the real Silk Road crash of 2013-10-02 and a -14 % hour later in the month
    assert flags(path) == [
        ("2013-10-02T14:00:00+00:00", "FAIR", ("extreme_move",)),
        ("2013-10-02T15:00:00+00:00", "FAIR", ("extreme_range", "extreme_move")),  # low 83.26
        ("2013-10-02T16:00:00+00:00", "FAIR", ("extreme_range",)),  # the rebound hour
        ("2013-10-24T05:00:00+00:00", "FAIR", ("extreme_move",)),
    ]
