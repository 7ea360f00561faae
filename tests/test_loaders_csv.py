"""Generic OHLCV CSV loader: real FTX, CME, Yahoo and Euro Stoxx files, plus options."""

from __future__ import annotations

import itertools
import math
from datetime import datetime
from pathlib import Path

import pytest

from lean_data.errors import ConfigError, DataFormatError
from lean_data.loaders import FileSpec, describe_file, iter_file, load_file
from lean_data.models import Resolution, TradeBar, datetime_to_ns

HEADER = "timestamp,open,high,low,close,volume\n"


def utc(text: str) -> int:
    """Return ns for a naive ISO time read as UTC."""
    return datetime_to_ns(datetime.fromisoformat(text))


@pytest.mark.slow
def test_ftx_btc_perp_minute_file(fixtures: Path) -> None:
    path = fixtures / "nautilus_trader/btc-perp-20211231-20220201_1m.csv"
    assert describe_file(path) == FileSpec(path, "csv", "BTC-PERP", Resolution.MINUTE, "bar")
    bars = load_file(path)
    assert len(bars) == 45_031
    assert bars[0] == TradeBar(
        "BTC-PERP", utc("2021-12-31 23:01"), 46319.0, 46385.0, 46319.0, 46377.0, 2300413.7295
    )
    assert bars[-1] == TradeBar(
        "BTC-PERP", utc("2022-02-01 05:31"), 38525.0, 38546.0, 38525.0, 38544.0, 685906.9735
    )
    assert all(b.ts_event - a.ts_event == 60_000_000_000 for a, b in itertools.pairwise(bars))


def test_gzipped_cme_future_minute_bars(fixtures: Path) -> None:
    path = fixtures / "nautilus_trader/xcme/6EH4.XCME_1min_bars_20240101_20240131.csv.gz"
    assert describe_file(path) == FileSpec(path, "csv", "6EH4.XCME", Resolution.MINUTE, "bar")
    bars = load_file(path, symbol="6E/H4")
    assert len(bars) == 29_996
    assert bars[0] == TradeBar(
        "6E/H4", utc("2024-01-01 23:01"), 1.1076, 1.10785, 1.1076, 1.1078, 205.0
    )
    assert bars[-1] == TradeBar(
        "6E/H4", utc("2024-01-31 23:59"), 1.08225, 1.0824, 1.08225, 1.0823, 36.0
    )


def test_yahoo_daily_file(fixtures: Path) -> None:
    path = fixtures / "backtrader/yhoo-1996-2015.txt"
    assert describe_file(path) == FileSpec(path, "csv", "YHOO", Resolution.DAILY, "bar")
    bars = load_file(path)
    assert len(bars) == 4965
    first = TradeBar(
        "YHOO", utc("1996-04-12"), 1.052083, 1.791667, 1.020833, 1.375, 408720000.0,
        Resolution.DAILY,
    )  # fmt: skip
    assert bars[0] == first
    assert (bars[-1].ts_event, bars[-1].low, bars[-1].close) == (
        utc("2015-12-31"),
        33.18,
        33.259998,
    )


def test_close_is_never_adj_close(tmp_path: Path) -> None:
    path = tmp_path / "nvda-1999-2014.txt"
    # the first real rows of backtrader's nvda-1999-2014.txt (Yahoo, split-adjusted)
    path.write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "1999-01-22,1.750000,1.953125,1.552083,1.640625,1.518424,67867200\n"
        "1999-01-25,1.770833,1.833333,1.640625,1.812500,1.677496,12762000\n"
    )
    bars = load_file(path)
    assert [(bar.symbol, bar.close, bar.volume) for bar in bars] == [
        ("NVDA", 1.640625, 67867200.0),
        ("NVDA", 1.8125, 12762000.0),
    ]


def test_separate_date_and_time_columns(fixtures: Path) -> None:
    path = fixtures / "backtrader/2006-min-005.txt"
    spec = describe_file(path, symbol="STOXX50E")
    assert spec == FileSpec(path, "csv", "STOXX50E", Resolution(5 * 60_000_000_000), "bar")
    bars = load_file(path, symbol="STOXX50E")
    assert len(bars) == 2142
    assert bars[0] == TradeBar(
        "STOXX50E",
        utc("2006-01-02 09:05"),
        3578.73,
        3587.88,
        3578.73,
        3582.99,
        0.0,
        spec.resolution,
    )
    assert bars[-1] == TradeBar(
        "STOXX50E", utc("2006-01-30 17:30"), 3679.29, 3679.4, 3676.31, 3677.52, 0.0, spec.resolution
    )


VOLUME_MIN_HEAD = (
    "Date,Open,High,Low,Close,Volume,OpenInterest\n"
    "2006-01-02,09:01:00,3602.00,3603.00,3597.00,3599.00,5699,0\n"
    "2006-01-02,09:02:00,3600.00,3601.00,3598.00,3599.00,894,0\n"
)


def test_header_shorter_than_rows_names_line_2(tmp_path: Path) -> None:
    # the first real lines of backtrader's 2006-01-02-volume-min-001.txt
    path = tmp_path / "2006-01-02-volume-min-001.txt"
    path.write_text(VOLUME_MIN_HEAD)
    with pytest.raises(DataFormatError, match=r"header names 7 columns.*8 fields") as caught:
        describe_file(path)
    assert (caught.value.source, caught.value.line) == (str(path), 2)
    assert str(caught.value).startswith(f"{path}:2: ")


def test_positional_columns_read_the_mismatched_file(tmp_path: Path) -> None:
    path = tmp_path / "2006-01-02-volume-min-001.txt"
    path.write_text(VOLUME_MIN_HEAD)
    columns = {"date": 0, "time": 1, "open": 2, "high": 3, "low": 4, "close": 5, "volume": 6}
    bars = load_file(path, symbol="FESX", columns=columns)
    assert bars == [
        TradeBar("FESX", utc("2006-01-02 09:01"), 3602.0, 3603.0, 3597.0, 3599.0, 5699.0),
        TradeBar("FESX", utc("2006-01-02 09:02"), 3600.0, 3601.0, 3598.0, 3599.0, 894.0),
    ]


def test_column_mapping_by_name_and_missing_volume(tmp_path: Path) -> None:
    path = tmp_path / "custom.csv"
    path.write_text("when,first,max,min,last_price\n1640991660,1.5,2.5,1.0,2.0\n")
    columns = {"time": "When", "open": "first", "high": "max", "low": "min", "close": "last_price"}
    (bar,) = load_file(path, symbol="X", resolution="1m", columns=columns)
    assert (bar.ts_event, bar.open, bar.high, bar.low, bar.close) == (
        utc("2021-12-31 23:01"),
        1.5,
        2.5,
        1.0,
        2.0,
    )
    assert math.isnan(bar.volume)


def test_epoch_units_are_told_apart_by_magnitude(tmp_path: Path) -> None:
    path = tmp_path / "epochs.csv"
    rows = ["1640991660", "1640991720000", "1640991780000000", "1640991840000000000"]
    path.write_text(HEADER + "".join(f"{ts},1,1,1,1,1\n" for ts in rows))
    times = [bar.ts_event for bar in iter_file(path, symbol="X")]
    assert times == [utc("2021-12-31 23:01") + n * 60_000_000_000 for n in range(4)]
    assert describe_file(path).resolution is Resolution.MINUTE


def test_iso_times_with_offsets_and_fractions(tmp_path: Path) -> None:
    path = tmp_path / "iso.csv"
    rows = ["2021-12-31T23:01:00Z", "2021-12-31T18:02:00-05:00", "2021-12-31 23:03:00.250000"]
    path.write_text(HEADER + "".join(f"{ts},1,1,1,1,1\n" for ts in rows))
    times = [bar.ts_event for bar in iter_file(path, symbol="X", resolution="1m")]
    base = utc("2021-12-31 23:01")
    assert times == [base, base + 60_000_000_000, base + 120_250_000_000]


def test_naive_local_times_with_tz_option(tmp_path: Path) -> None:
    path = tmp_path / "spy_local.csv"
    path.write_text(
        "Date,Time,Open,High,Low,Close,Volume\n"
        "2014-01-10,09:30:00,183.96,184.0,183.9,183.95,100\n"
        "2014-06-10,09:30:00,195.0,195.1,194.9,195.05,200\n"
    )
    bars = load_file(path, symbol="SPY", resolution="1m", tz="America/New_York")
    assert [bar.ts_event for bar in bars] == [utc("2014-01-10 14:30"), utc("2014-06-10 13:30")]
    with pytest.raises(ConfigError, match="time zone"):
        load_file(path, symbol="SPY", resolution="1m", tz="Mars/Olympus")


def test_describe_reads_only_the_head(tmp_path: Path) -> None:
    path = tmp_path / "long_1m.csv"
    rows = [f"{1640991660 + 60 * n},1,1,1,1,1\n" for n in range(500)]
    rows[399] = "1641015600,1,1,oops,1,1\n"  # line 401 of the file
    path.write_text(HEADER + "".join(rows))
    assert describe_file(path).resolution is Resolution.MINUTE
    items = iter_file(path)
    assert sum(1 for _, _ in zip(range(399), items, strict=False)) == 399
    with pytest.raises(DataFormatError, match="bad number 'oops' for low") as caught:
        next(items)
    assert caught.value.line == 401


def test_irregular_rows_need_a_resolution(tmp_path: Path) -> None:
    path = tmp_path / "ticksample.csv"
    # the first real rows of backtrader's ticksample.csv (1-tick OHLC rows)
    path.write_text(
        "Datetime,Open,High,Low,Close,Volume,OpenInterest\n"
        "2015-09-23T20:57:42.146,3067.00,3067.00,3067.00,3067.00,180,0\n"
        "2015-09-23T20:57:46.151,3066.00,3066.00,3066.00,3066.00,2,0\n"
    )
    with pytest.raises(DataFormatError, match="pass resolution=") as caught:
        describe_file(path)
    assert caught.value.line == 3
    bars = load_file(path, resolution="tick")
    assert (bars[1].ts_event, bars[1].close) == (utc("2015-09-23 20:57:46.151"), 3066.0)
