"""LEAN zipped CSV loader: real AlgoSeek/QuantQuote equity and Coinbase/Binance/Bybit crypto."""

from __future__ import annotations

import zipfile
from datetime import datetime
from pathlib import Path

import pytest

from lean_data.errors import DataFormatError
from lean_data.loaders import FileSpec, describe_file, iter_file, load_file
from lean_data.models import (
    AssetClass,
    QuoteBar,
    Resolution,
    Tick,
    TickType,
    TradeBar,
    datetime_to_ns,
)


def utc(text: str) -> int:
    """Return ns for a naive ISO time read as UTC, e.g. ``2014-06-09 08:00``."""
    return datetime_to_ns(datetime.fromisoformat(text))


def write_zip(path: Path, entry: str, text: str) -> Path:
    """Write a zip holding one CSV named ``entry`` in a LEAN-layout folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(entry, text)
    return path


def test_aapl_split_day_minute_bars(fixtures: Path) -> None:
    path = fixtures / "lean/equity/usa/minute/aapl/20140609_trade.zip"
    bars = load_file(path)
    assert describe_file(path) == FileSpec(
        path, "lean", "AAPL", Resolution.MINUTE, "bar", AssetClass.EQUITY
    )
    assert len(bars) == 834
    # the real bad first bar of the 7:1 split day: pre-split open leaked in; 04:00 EDT
    assert bars[0] == TradeBar("AAPL", utc("2014-06-09 08:00"), 645.57, 645.57, 92.23, 92.42, 600.0)
    assert bars[-1] == TradeBar("AAPL", utc("2014-06-09 23:59"), 93.76, 93.78, 93.76, 93.77, 2067.0)
    assert all(bar.ts_recv == 0 and bar.closed and bar.revision == 0 for bar in bars)


def test_aapl_minute_quote_bars(fixtures: Path) -> None:
    path = fixtures / "lean/equity/usa/minute/aapl/20140609_quote.zip"
    quotes = load_file(path)
    assert describe_file(path).kind == "quote"
    assert len(quotes) == 847
    assert quotes[0] == QuoteBar(
        "AAPL", utc("2014-06-09 08:00"), 1.0, 92.23, 1.0, 92.0, 1000.0,
        92.42, 92.5, 92.42, 92.46, 300.0,
    )  # fmt: skip
    assert quotes[-1].ts_event == utc("2014-06-10 00:00")
    assert (quotes[-1].bid_close, quotes[-1].ask_close, quotes[-1].ask_size) == (93.2, 94.5, 100.0)


def test_spy_tick_trades_with_suspicious_prints(fixtures: Path) -> None:
    path = fixtures / "lean/equity/usa/tick/spy/20131010_trade.zip"
    assert describe_file(path) == FileSpec(
        path, "lean", "SPY", Resolution.TICK, "tick", AssetClass.EQUITY
    )
    ticks = list(iter_file(path))
    assert len(ticks) == 460_032
    assert ticks[0] == Tick(
        "SPY", utc("2013-10-10 08:00:00.795"), 166.43, 200.0, TickType.TRADE,
        exchange="P", condition="20002000",
    )  # fmt: skip
    assert ticks[-1] == Tick(
        "SPY", utc("2013-10-10 23:59:36.983"), 168.75, 200.0, exchange="P", condition="20002020"
    )
    suspicious = [tick for tick in ticks if tick.suspicious]
    assert len(suspicious) == 10
    assert (suspicious[0].ts_event, suspicious[0].price, suspicious[0].size) == (
        utc("2013-10-10 20:02:29.465"),
        165.59,
        250629.0,
    )
    assert (suspicious[0].exchange, suspicious[-1].condition) == ("D", "106000")


def test_equity_daily_bars_convert_new_york_midnight_with_dst(fixtures: Path) -> None:
    path = fixtures / "lean/equity/usa/daily/spy.zip"
    bars = load_file(path)
    assert describe_file(path) == FileSpec(
        path, "lean", "SPY", Resolution.DAILY, "bar", AssetClass.EQUITY
    )
    assert len(bars) == 5849
    assert bars[0] == TradeBar(
        "SPY", utc("1998-01-02 05:00"), 97.31, 97.53, 96.53, 97.36, 2150000.0, Resolution.DAILY
    )
    by_time = {bar.ts_event: bar for bar in bars}
    october = by_time[utc("2013-10-10 04:00")]  # EDT: UTC-4
    assert (october.open, october.close, october.volume) == (167.32, 169.24, 157839488.0)
    january = by_time[utc("2014-01-10 05:00")]  # EST: UTC-5
    assert (january.open, january.close, january.volume) == (183.96, 184.14, 77972574.0)
    assert bars[-1].ts_event == utc("2021-03-31 04:00")
    assert bars[-1].close == 396.33


def test_equity_hour_bars_are_new_york_wall_clock(fixtures: Path) -> None:
    path = fixtures / "lean/equity/usa/hour/spy.zip"
    bars = load_file(path)
    assert describe_file(path).resolution is Resolution.HOUR
    assert len(bars) == 40_832
    assert bars[0] == TradeBar(
        "SPY", utc("1998-01-02 14:00"), 97.31, 97.53, 97.03, 97.03, 384500.0, Resolution.HOUR
    )
    by_time = {bar.ts_event: bar for bar in bars}
    assert by_time[utc("2013-10-10 13:00")].close == 167.82  # 09:00 EDT
    assert by_time[utc("2014-01-10 14:00")].close == 183.68  # 09:00 EST
    assert bars[-1].ts_event == utc("2021-03-31 19:00")  # 15:00 EDT


def test_crypto_minute_bars_are_utc(fixtures: Path) -> None:
    path = fixtures / "lean/crypto/coinbase/minute/btcusd/20161008_trade.zip"
    bars = load_file(path)
    assert describe_file(path).symbol == "BTC/USD"
    assert len(bars) == 1400
    assert bars[0] == TradeBar(
        "BTC/USD", utc("2016-10-08 00:00"), 618.11, 618.11, 618.04, 618.04, 0.66756
    )
    assert bars[-1] == TradeBar(
        "BTC/USD", utc("2016-10-08 23:59"), 619.42, 619.5, 619.42, 619.5, 1.15189
    )


def test_crypto_hour_file_layout(fixtures: Path) -> None:
    path = fixtures / "lean/crypto/binance/hour/btcusdt_trade.zip"
    bars = load_file(path)
    assert describe_file(path) == FileSpec(
        path, "lean", "BTC/USDT", Resolution.HOUR, "bar", AssetClass.CRYPTO
    )
    assert len(bars) == 120
    assert bars[0] == TradeBar(
        "BTC/USDT", utc("2018-05-01 00:00"), 9246.01, 9248.99, 8934.44, 8955.01, 5263.799551,
        Resolution.HOUR,
    )  # fmt: skip
    assert bars[-1].ts_event == utc("2018-05-05 23:00")
    assert (bars[-1].close, bars[-1].volume) == (9864.0, 711.450495)


def test_cryptofuture_symbols_carry_the_settlement_currency(fixtures: Path) -> None:
    inverse = fixtures / "lean/cryptofuture/bybit/minute/btcusd/20221213_trade.zip"
    bars = load_file(inverse)
    assert len(bars) == 721
    assert bars[0] == TradeBar(
        "BTC/USD:BTC", utc("2022-12-13 00:00"), 17199.5, 17210.5, 17199.0, 17210.0, 1110128.0
    )
    linear = fixtures / "lean/cryptofuture/bybit/minute/btcusdt/20221213_quote.zip"
    quotes = load_file(linear)
    assert describe_file(linear) == FileSpec(
        linear, "lean", "BTC/USDT:USDT", Resolution.MINUTE, "quote", AssetClass.CRYPTO
    )
    assert len(quotes) == 460
    assert quotes[0] == QuoteBar(
        "BTC/USDT:USDT", utc("2022-12-13 00:00"), 17193.5, 17199.0, 17193.5, 17199.0, 135.724,
        17194.0, 17199.5, 17194.0, 17199.5, 17.697,
    )  # fmt: skip
    assert quotes[-1].ts_event == utc("2022-12-13 12:00")


def test_caller_symbol_overrides_the_path(fixtures: Path) -> None:
    path = fixtures / "lean/crypto/binance/hour/btcusdt_trade.zip"
    bars = load_file(path, symbol="BTC-USDT")
    assert {bar.symbol for bar in bars} == {"BTC-USDT"}


def test_dst_transition_day_converts_row_by_row(tmp_path: Path) -> None:
    # 2013-11-03: New York falls back from EDT to EST at 02:00 local
    path = tmp_path / "equity/usa/minute/spy/20131103_trade.zip"
    rows = [
        "1800000,1700000,1700000,1700000,1700000,1",
        "5400000,1700000,1700000,1700000,1700000,2",
    ]
    rows.append("10800000,1700000,1700000,1700000,1700000,3")
    write_zip(path, "20131103_spy_minute_trade.csv", "\n".join(rows))
    times = [bar.ts_event for bar in iter_file(path)]
    # 00:30 EDT, 01:30 (ambiguous: the first, EDT), 03:00 EST
    assert times == [utc("2013-11-03 04:30"), utc("2013-11-03 05:30"), utc("2013-11-03 08:00")]


def test_fractional_milliseconds_and_blank_lines_in_ticks(tmp_path: Path) -> None:
    path = tmp_path / "equity/usa/tick/bac/20131008_trade.zip"
    text = "14400009.367,137450,100,D,1,0\n\n14400010,137500,200,T,0,1\n"
    write_zip(path, "20131008_bac_Trade_Tick.csv", text)
    ticks = load_file(path)
    assert ticks == [
        Tick("BAC", utc("2013-10-08 08:00:00.009367"), 13.745, 100.0, exchange="D", condition="1"),
        Tick("BAC", utc("2013-10-08 08:00:00.010"), 13.75, 200.0, exchange="T", condition="0",
             suspicious=True),
    ]  # fmt: skip


def test_equity_quote_ticks_and_crypto_ticks(tmp_path: Path) -> None:
    equity = tmp_path / "equity/usa/tick/spy/20131010_quote.zip"
    write_zip(
        equity, "q.csv", "34200000,1690000,300,1690100,200,P,1,0\n34200001,0,0,1690200,100,T,1,0"
    )
    quotes = load_file(equity)
    mid = (169.0 + 169.01) / 2.0
    assert quotes[0] == Tick(
        "SPY", utc("2013-10-10 13:30"), mid, 0.0, TickType.QUOTE, bid_price=169.0,
        bid_size=300.0, ask_price=169.01, ask_size=200.0, exchange="P", condition="1",
    )  # fmt: skip
    assert (quotes[1].price, quotes[1].bid_price, quotes[1].ask_price) == (169.02, 0.0, 169.02)
    crypto = tmp_path / "crypto/coinbase/tick/btcusd/20161008_trade.zip"
    write_zip(crypto, "t.csv", "1000,618.11,0.5,123,1\n2000,618.12,0.25,124,0\n")
    assert load_file(crypto) == [
        Tick("BTC/USD", utc("2016-10-08 00:00:01"), 618.11, 0.5),
        Tick("BTC/USD", utc("2016-10-08 00:00:02"), 618.12, 0.25),
    ]


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("equity/usa/minute/spy/trade.zip", "YYYYMMDD"),
        ("crypto/coinbase/daily/btcusd.zip", "_<trade|quote>.zip"),
        ("stuff/20131010_trade.zip", "no <security type>"),
    ],
)
def test_paths_outside_the_layout_are_refused(tmp_path: Path, relative: str, message: str) -> None:
    path = write_zip(tmp_path / relative, "x.csv", "0,1,1,1,1,1")
    with pytest.raises(DataFormatError, match=message) as caught:
        describe_file(path, format="lean")
    assert caught.value.source == str(path)
