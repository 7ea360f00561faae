"""Binance kline and freqtrade candle loaders on real files."""

from __future__ import annotations

import gzip
import json
import math
import sys
from datetime import datetime
from pathlib import Path

import pytest

from lean_data.errors import ConfigError, DataFormatError
from lean_data.loaders import FileSpec, describe_file, iter_file, load_file
from lean_data.models import AssetClass, Resolution, TradeBar, datetime_to_ns

HOUR = Resolution.HOUR
FIVE_MINUTES = Resolution.parse("5m")

# the first two real klines of nautilus_trader's ADABTC-1m-2021-11-27.csv, as the
# REST /api/v3/klines body carries them (prices as strings)
ADABTC_REST = [
    [1637971200000, "0.00002853", "0.00002854", "0.00002851", "0.00002854", "36304.20000000",
     1637971259999, "1.03547608", 79, "19523.00000000", "0.55694227", "0"],
    [1637971260000, "0.00002854", "0.00002860", "0.00002854", "0.00002859", "89196.60000000",
     1637971319999, "2.54751330", 98, "59004.20000000", "1.68545512", "0"],
]  # fmt: skip


def utc(text: str) -> int:
    """Return ns for a naive ISO time read as UTC."""
    return datetime_to_ns(datetime.fromisoformat(text))


def test_binance_kline_csv(fixtures: Path) -> None:
    path = fixtures / "nautilus_trader/ADABTC-1m-2021-11-27.csv"
    assert describe_file(path) == FileSpec(
        path, "binance_klines", "ADA/BTC", Resolution.MINUTE, "bar", AssetClass.CRYPTO
    )
    bars = load_file(path)
    assert len(bars) == 10
    assert bars[0] == TradeBar(
        "ADA/BTC", utc("2021-11-27 00:00"), 2.853e-05, 2.854e-05, 2.851e-05, 2.854e-05, 36304.2
    )
    assert bars[-1] == TradeBar(
        "ADA/BTC", utc("2021-11-27 00:09"), 2.863e-05, 2.865e-05, 2.863e-05, 2.865e-05, 8160.5
    )


def test_binance_rest_json_takes_resolution_from_close_time(tmp_path: Path) -> None:
    path = tmp_path / "klines.json"
    path.write_text(json.dumps(ADABTC_REST))
    with pytest.raises(ConfigError, match="pass symbol="):
        describe_file(path)
    spec = describe_file(path, symbol="ADA/BTC")
    assert spec == FileSpec(
        path, "binance_klines", "ADA/BTC", Resolution.MINUTE, "bar", AssetClass.CRYPTO
    )
    assert load_file(path, symbol="ADA/BTC") == [
        TradeBar("ADA/BTC", utc("2021-11-27 00:00"), 2.853e-05, 2.854e-05, 2.851e-05, 2.854e-05,
                 36304.2),
        TradeBar("ADA/BTC", utc("2021-11-27 00:01"), 2.854e-05, 2.86e-05, 2.854e-05, 2.859e-05,
                 89196.6),
    ]  # fmt: skip


def test_binance_microsecond_open_times(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-1s-2025-01-01.csv"
    path.write_text(
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
        "taker_buy_volume,taker_buy_quote_volume,ignore\n"
        "1735689600000000,93576.00,93576.01,93576.00,93576.01,0.5,1735689600999999,1,2,0.1,1,0\n"
    )
    (bar,) = load_file(path)
    assert (bar.symbol, bar.ts_event, bar.resolution) == (
        "BTC/USDT",
        utc("2025-01-01"),
        Resolution.SECOND,
    )


def test_freqtrade_json_and_feather_hold_the_same_futures_candles(fixtures: Path) -> None:
    json_path = fixtures / "freqtrade/futures/XRP_USDT_USDT-1h-futures.json.gz"
    feather_path = fixtures / "freqtrade/futures/XRP_USDT_USDT-1h-futures.feather"
    assert describe_file(json_path) == FileSpec(
        json_path, "freqtrade_json", "XRP/USDT:USDT", HOUR, "bar", AssetClass.CRYPTO
    )
    assert describe_file(feather_path).format == "freqtrade_feather"
    bars = load_file(json_path)
    assert len(bars) == 100
    assert bars[0] == TradeBar(
        "XRP/USDT:USDT", utc("2021-11-17 01:00"), 1.0801, 1.09758, 1.07654, 1.07925,
        3153694.607359, HOUR,
    )  # fmt: skip
    assert bars[-1] == TradeBar(
        "XRP/USDT:USDT", utc("2021-11-21 04:00"), 1.07685, 1.08229, 1.07552, 1.0765,
        1153357.274076, HOUR,
    )  # fmt: skip
    feather = load_file(feather_path)
    assert [bar.ts_event for bar in feather] == [bar.ts_event for bar in bars]
    # the feather copy went through pandas floats: 1.0854300000000001 where JSON has 1.08543
    assert [bar.close for bar in feather] == pytest.approx([bar.close for bar in bars], rel=1e-15)
    assert (feather[0], feather[-1]) == (bars[0], bars[-1])


def test_feather_mark_candles_keep_nan_volume(fixtures: Path) -> None:
    path = fixtures / "freqtrade/futures/XRP_USDT_USDT-1h-mark.feather"
    bars = load_file(path)
    assert len(bars) == 100
    first = bars[0]
    assert (first.symbol, first.ts_event, first.open, first.high, first.low, first.close) == (
        "XRP/USDT:USDT",
        utc("2021-11-15 06:00"),
        1.20932,
        1.21787,
        1.20763,
        1.21431,
    )
    assert all(math.isnan(bar.volume) for bar in bars)
    assert (bars[-1].ts_event, bars[-1].close) == (utc("2021-11-19 09:00"), 1.06051)


def test_feather_spot_candles(fixtures: Path) -> None:
    path = fixtures / "freqtrade/ETH_BTC-5m.feather"
    assert describe_file(path) == FileSpec(
        path, "freqtrade_feather", "ETH/BTC", FIVE_MINUTES, "bar", AssetClass.CRYPTO
    )
    bars = load_file(path)
    assert len(bars) == 5760
    assert bars[0] == TradeBar(
        "ETH/BTC", utc("2018-01-10 04:55"), 0.0984, 0.0994766, 0.09828605, 0.0994766,
        1820.54447418, FIVE_MINUTES,
    )  # fmt: skip
    assert bars[-1] == TradeBar(
        "ETH/BTC", utc("2018-01-30 04:50"), 0.10440995, 0.10441058, 0.10400025,
        0.10441057000000001, 31.94851561, FIVE_MINUTES,
    )  # fmt: skip


def test_mislabelled_8m_file_is_refused_unless_told(fixtures: Path) -> None:
    path = fixtures / "freqtrade/UNITTEST_BTC-8m.json.gz"
    with pytest.raises(DataFormatError, match="1m apart but the file name says 8m") as caught:
        iter_file(path)
    assert (caught.value.source, caught.value.line) == (str(path), 2)
    loose = load_file(path, check_spacing=False)
    assert (len(loose), loose[0].resolution) == (13_681, Resolution.parse("8m"))
    bars = load_file(path, resolution="1m")
    assert len(bars) == 13_681
    assert bars[0] == TradeBar(
        "UNITTEST/BTC", utc("2017-11-04 23:02"), 0.00162008, 0.00162008, 0.00162008, 0.00162008,
        108.14853839,
    )  # fmt: skip
    assert bars[-1] == TradeBar(
        "UNITTEST/BTC", utc("2017-11-14 22:59"), 0.00270001, 0.00270002, 0.00270001, 0.00270002,
        1.94577668,
    )  # fmt: skip


def test_pandas_columns_json_needs_a_symbol(tmp_path: Path) -> None:
    # the first real rows of freqtrade's orderflow/candles.json (BTC/USDT 5m)
    table = {
        "date": {"0": 1672677900000, "1": 1672678200000, "2": 1672678500000},
        "open": {"0": 16727.3, "1": 16726.0, "2": 16707.4},
        "high": {"0": 16728.8, "1": 16726.8, "2": 16711.8},
        "low": {"0": 16726.0, "1": 16705.0, "2": 16704.0},
        "close": {"0": 16726.1, "1": 16707.5, "2": 16704.1},
        "volume": {"0": 691.508, "1": 1301.173, "2": 566.041},
    }
    path = tmp_path / "candles.json"
    path.write_text(json.dumps(table))
    with pytest.raises(ConfigError, match="pass symbol="):
        describe_file(path)
    spec = describe_file(path, symbol="BTC/USDT")
    assert spec == FileSpec(
        path, "freqtrade_json", "BTC/USDT", FIVE_MINUTES, "bar", AssetClass.CRYPTO
    )
    bars = load_file(path, symbol="BTC/USDT")
    assert bars[2] == TradeBar(
        "BTC/USDT", utc("2023-01-02 16:55"), 16707.4, 16711.8, 16704.0, 16704.1, 566.041,
        FIVE_MINUTES,
    )  # fmt: skip


def test_freqtrade_files_that_are_not_candles(tmp_path: Path) -> None:
    other = tmp_path / "XRP_USDT_USDT-8h-trades_agg.feather"  # funding rates load now
    other.write_bytes(b"")
    with pytest.raises(DataFormatError, match="'trades_agg' files are not price candles"):
        describe_file(other)
    trades = tmp_path / "XRP_ETH-trades.json.gz"
    trades.write_bytes(gzip.compress(b'[[1570752011620,"13519807",null,"sell",0.001,23.0,0.03]]'))
    with pytest.raises(DataFormatError, match="arrays of 7 values"):
        describe_file(trades)
    with pytest.raises(DataFormatError, match="trade files are not candles"):
        describe_file(trades, format="freqtrade_json")


def test_feather_without_pyarrow_asks_for_the_extra(
    fixtures: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow.feather", None)
    with pytest.raises(ConfigError, match=r"pip install 'lean-data\[feather\]'"):
        load_file(fixtures / "freqtrade/ETH_BTC-5m.feather")
