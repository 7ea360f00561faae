"""Format detection and malformed input: every failure is a LeanDataError naming file and line."""

from __future__ import annotations

import gc
import gzip
import json
import zipfile
from pathlib import Path

import pytest

from lean_data.errors import ConfigError, DataFormatError
from lean_data.loaders import FORMATS, describe_file, detect_format, iter_file, load_file

FTX = "nautilus_trader/btc-perp-20211231-20220201_1m.csv"
AAPL_MINUTE = "lean/equity/usa/minute/aapl/20140609_trade.zip"
ADABTC = "nautilus_trader/ADABTC-1m-2021-11-27.csv"


def real_lines(fixtures: Path, relative: str, count: int) -> list[str]:
    """Return the first ``count`` lines of a fixture (unzipping a LEAN zip)."""
    path = fixtures / relative
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            text = archive.read(archive.namelist()[0]).decode()
    else:
        text = path.read_text()
    return text.splitlines()[:count]


def write_zip(path: Path, entries: dict[str, str]) -> Path:
    """Write a zip holding ``entries`` (name to text) in a LEAN-layout folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in entries.items():
            archive.writestr(name, text)
    return path


def fails_at(path: Path, line: int | None, match: str, **kwargs: object) -> DataFormatError:
    """Assert that reading ``path`` fully raises DataFormatError at ``line``."""
    with pytest.raises(DataFormatError, match=match) as caught:
        load_file(path, **kwargs)  # type: ignore[arg-type]
    error = caught.value
    assert (error.source, error.line) == (str(path), line)
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    assert str(error).startswith(where)
    return error


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        (FTX, "csv"),
        ("nautilus_trader/xcme/6EH4.XCME_1min_bars_20240101_20240131.csv.gz", "csv"),
        ("backtrader/yhoo-1996-2015.txt", "csv"),
        ("backtrader/2006-min-005.txt", "csv"),
        (ADABTC, "binance_klines"),
        (AAPL_MINUTE, "lean"),
        ("lean/equity/usa/tick/spy/20131010_trade.zip", "lean"),
        ("lean/equity/usa/daily/spy.zip", "lean"),
        ("lean/equity/usa/hour/spy.zip", "lean"),
        ("lean/crypto/binance/hour/btcusdt_trade.zip", "lean"),
        ("lean/cryptofuture/bybit/minute/btcusdt/20221213_quote.zip", "lean"),
        ("freqtrade/futures/XRP_USDT_USDT-1h-futures.json.gz", "freqtrade_json"),
        ("freqtrade/UNITTEST_BTC-8m.json.gz", "freqtrade_json"),
        ("freqtrade/futures/XRP_USDT_USDT-1h-mark.feather", "freqtrade_feather"),
        ("freqtrade/ETH_BTC-5m.feather", "freqtrade_feather"),
    ],
)
def test_detects_each_corpus_layout(fixtures: Path, relative: str, expected: str) -> None:
    assert detect_format(fixtures / relative) == expected
    assert expected in FORMATS


def test_detects_rest_and_pandas_json(tmp_path: Path) -> None:
    klines = tmp_path / "klines.json"
    klines.write_text('[[1637971200000,"0.00002853","0.00002854","0.00002851","0.00002854",'
                      '"36304.2",1637971259999,"1.03",79,"19523.0","0.55","0"]]')  # fmt: skip
    assert detect_format(klines) == "binance_klines"
    table = tmp_path / "candles.json"
    table.write_text(json.dumps({"date": {"0": 1672677900000}, "open": {"0": 16727.3}}))
    assert detect_format(table) == "freqtrade_json"


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("book.parquet", b"PAR1", "unknown file extension"),
        ("http_ohlc.json", b'{"error": [], "result": {}}', "unknown JSON layout"),
        ("trades.csv", b"exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n", "CSV"),
        ("BCHEUR.csv", b"1672531436,90.540000,1.10448420\n", "unknown CSV layout"),
        ("empty.csv", b"", "empty"),
        ("empty.json", b"  \n", "empty"),
        ("xrpusdt-ob500.data.zip", b"PK\x05\x06" + bytes(18), "not a LEAN data path"),
    ],
)
def test_unknown_files_are_refused(tmp_path: Path, name: str, content: bytes, match: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=match) as caught:
        iter_file(path)
    assert caught.value.source == str(path)


def test_csv_bad_number_on_line_37(fixtures: Path, tmp_path: Path) -> None:
    lines = real_lines(fixtures, FTX, 40)
    lines[36] = lines[36].replace(",46", ",4x6", 1)  # line 37: the open price
    path = tmp_path / "btc-perp_1m.csv"
    path.write_text("\n".join(lines) + "\n")
    fails_at(path, 37, r"bad number '4x6475\.0' for open: '2021-12-31 23:36:00")
    with pytest.raises(DataFormatError, match="bad number"):
        describe_file(path)  # line 37 is within the head that describe_file reads


def test_csv_row_with_missing_fields(fixtures: Path, tmp_path: Path) -> None:
    lines = real_lines(fixtures, FTX, 10)
    lines[5] = lines[5].rsplit(",", 1)[0]
    path = tmp_path / "short_1m.csv"
    path.write_text("\n".join(lines))
    fails_at(path, 6, "header names 6 columns.*this row has 5 fields")


def test_csv_bad_time(tmp_path: Path) -> None:
    path = tmp_path / "bad_time_1m.csv"
    path.write_text("timestamp,open,high,low,close,volume\n2021-12-31 23:01:00,1,1,1,1,1\n"
                    "2021-13-45 23:02:00,1,1,1,1,1\n")  # fmt: skip
    fails_at(path, 3, "bad time '2021-13-45 23:02:00'")


def test_csv_without_a_header_needs_columns(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("1640991660,1,2,0.5,1.5,10\n1640991720,1,2,0.5,1.5,11\n")
    fails_at(path, 1, "no time/open/high/low/close column in first row", format="csv")
    columns = {"time": 0, "open": 1, "high": 2, "low": 3, "close": 4, "volume": 5}
    assert [bar.volume for bar in load_file(path, symbol="X", columns=columns)] == [10.0, 11.0]


def test_empty_files(tmp_path: Path) -> None:
    csv_path = tmp_path / "empty_1m.csv"
    csv_path.write_text("")
    fails_at(csv_path, 1, "empty", format="csv")
    json_path = tmp_path / "ETH_BTC-5m.json"
    json_path.write_text("")
    fails_at(json_path, 1, "empty", format="freqtrade_json")
    lean_path = write_zip(tmp_path / "equity/usa/minute/spy/20131010_trade.zip", {"a.csv": ""})
    fails_at(lean_path, 1, "a.csv is empty")


def test_lean_zip_without_one_csv(tmp_path: Path) -> None:
    none = write_zip(tmp_path / "equity/usa/minute/spy/20131010_trade.zip", {"readme.txt": "x"})
    fails_at(none, None, "expected one CSV inside the zip, found readme.txt")
    two = write_zip(
        tmp_path / "equity/usa/minute/ibm/20131010_trade.zip", {"a.csv": "", "b.csv": ""}
    )
    fails_at(two, None, "found a.csv, b.csv")
    broken = tmp_path / "equity/usa/minute/bac/20131010_trade.zip"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a zip at all")
    fails_at(broken, None, "cannot open the zip")


def test_lean_bad_number_and_wrong_field_count(fixtures: Path, tmp_path: Path) -> None:
    lines = real_lines(fixtures, AAPL_MINUTE, 12)
    bad = list(lines)
    bad[4] = bad[4].replace(",", ",x", 2).replace(",x", ",", 1)  # line 5: the high
    path = write_zip(
        tmp_path / "equity/usa/minute/aapl/20140609_trade.zip", {"a.csv": "\n".join(bad)}
    )
    error = fails_at(path, 5, r"bad number 'x\d+' for high in a\.csv")
    assert "expected" not in str(error)
    short = list(lines)
    short[8] += ",7"
    path = write_zip(
        tmp_path / "equity/usa/minute/aapl/20140606_trade.zip", {"b.csv": "\n".join(short)}
    )
    fails_at(path, 9, r"expected 6 fields \(time,open,high,low,close,volume\) in b\.csv, found 7")


def test_lean_tick_bad_suspicious_flag(tmp_path: Path) -> None:
    path = tmp_path / "equity/usa/tick/spy/20131010_trade.zip"
    write_zip(
        path, {"t.csv": "14400795,1664300,200,P,20002000,0\n14400795,1664300,100,P,20002000,y"}
    )
    fails_at(path, 2, "bad number 'y' for suspicious")


def test_binance_wrong_field_count_and_bad_json_value(fixtures: Path, tmp_path: Path) -> None:
    lines = real_lines(fixtures, ADABTC, 6)
    lines[3] = ",".join(lines[3].split(",")[:11])
    path = tmp_path / "ADABTC-1m-2021-11-27.csv"
    path.write_text("\n".join(lines))
    fails_at(path, 4, "bad kline line 4 .expected 12 fields, found 11")
    body = [[1637971200000, "0.1", "0.1", "0.1", "0.1", "1", 1637971259999, "1", 1, "1", "1", "0"]]
    body.append(
        [1637971260000, "0.1", "n/a", "0.1", "0.1", "1", 1637971319999, "1", 1, "1", "1", "0"]
    )
    json_path = tmp_path / "ADABTC-1m.json"
    json_path.write_text(json.dumps(body))
    fails_at(json_path, 2, "bad kline record 2 .could not convert string to float: 'n/a'")


def test_freqtrade_bad_record(tmp_path: Path) -> None:
    path = tmp_path / "ETH_BTC-5m.json"
    path.write_text("[[1515560100000, 0.0984, 0.0995, 0.0983, 0.0995, 1820.5],\n"
                    " [1515560400000, 0.0995, 0.0997, 0.099, 0.0997]]")  # fmt: skip
    fails_at(path, 2, r"bad candle record 2 \(expected 6 values")
    path.write_text("[[1515560100000, 0.0984, 0.0995, 0.0983, 0.0995")
    fails_at(path, 1, "invalid JSON", format="freqtrade_json")


def test_truncated_gzip(fixtures: Path, tmp_path: Path) -> None:
    whole = (fixtures / "freqtrade/UNITTEST_BTC-8m.json.gz").read_bytes()
    path = tmp_path / "UNITTEST_BTC-1m.json.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataFormatError, match="unreadable file") as caught:
        load_file(path, format="freqtrade_json")
    assert caught.value.source == str(path)
    csv_gz = tmp_path / "6E_1m.csv.gz"
    csv_gz.write_bytes(
        gzip.compress(b"timestamp,open,high,low,close,volume\n" + b"1,2,3\n" * 5000)[:900]
    )
    with pytest.raises(DataFormatError, match=str(csv_gz)):
        load_file(csv_gz, resolution="1m")


def test_bad_arguments_are_config_errors(fixtures: Path, tmp_path: Path) -> None:
    path = fixtures / ADABTC
    with pytest.raises(ConfigError, match="no such file"):
        iter_file(tmp_path / "missing.csv")
    with pytest.raises(ConfigError, match="unknown format 'parquet'"):
        iter_file(path, format="parquet")
    with pytest.raises(
        ConfigError, match=r"unknown option\(s\) colums for format 'binance_klines'"
    ):
        iter_file(path, colums={"time": 0})
    with pytest.raises(ConfigError, match="expected a resolution"):
        iter_file(path, resolution="fortnightly")
    with pytest.raises(
        DataFormatError, match="this is a freqtrade_feather file, not freqtrade_json"
    ):
        iter_file(fixtures / "freqtrade/ETH_BTC-5m.feather", format="freqtrade_json")


def test_abandoned_iterators_close_their_files(fixtures: Path) -> None:
    for relative in (
        FTX,
        AAPL_MINUTE,
        "nautilus_trader/xcme/6EH4.XCME_1min_bars_20240101_20240131.csv.gz",
    ):
        items = iter_file(fixtures / relative)
        first = next(items)
        assert first.ts_recv == 0
        del items
    gc.collect()  # an unclosed file would surface here as a ResourceWarning (an error)
