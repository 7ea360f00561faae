"""freqtrade's real futures files: funding rates as FundingRate records, mark candles as bars.

Every row is compared with pyarrow's own reading of the same file (the nanosecond times as
pyarrow stores them, so the millisecond offsets of the funding times are checked exactly).
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.feather as feather
import pytest

from lean_data.derivatives import FundingRate
from lean_data.errors import DataFormatError
from lean_data.loaders import FileSpec, describe_file, iter_file, iter_records, load_file
from lean_data.models import AssetClass, Resolution, TradeBar

EIGHT_HOURS = Resolution.parse("8h")
FUTURES = Path(__file__).parent / "fixtures" / "freqtrade" / "futures"
FUNDING = FUTURES / "XRP_USDT_USDT-8h-funding_rate.feather"


def _arrow_rows(path: Path) -> tuple[list[int], dict[str, list[float | None]]]:
    table = feather.read_table(str(path))
    times = table.column("date").cast(pa.int64()).to_pylist()  # timestamp[ns, UTC] → ns
    return times, {name: table.column(name).to_pylist() for name in table.column_names[1:]}


def test_the_funding_rate_file_loads_every_row_exactly() -> None:
    spec = describe_file(FUNDING)
    assert spec == FileSpec(
        FUNDING, "freqtrade_feather", "XRP/USDT:USDT", EIGHT_HOURS, "funding_rate",
        AssetClass.CRYPTO,
    )  # fmt: skip
    rates = load_file(FUNDING)
    times, columns = _arrow_rows(FUNDING)
    assert rates == [
        FundingRate("XRP/USDT:USDT", ts, rate, funding_interval=EIGHT_HOURS.nanos)
        for ts, rate in zip(times, columns["open"], strict=True)
    ]
    assert len(rates) == 91
    # freqtrade's layout: the rate in open, every other column 0
    assert {value for name in ("high", "low", "close", "volume") for value in columns[name]} == {
        0.0
    }
    offsets = [r.ts_event % 1_000_000_000 for r in rates]
    assert sum(1 for offset in offsets if offset) == 59  # real ms offsets, kept
    assert all(offset % 1_000_000 == 0 for offset in offsets)  # whole milliseconds
    assert rates[0].ts_event == 1_637_193_600_017_000_000  # 2021-11-18 00:00:00.017
    assert rates[0].time.isoformat() == "2021-11-18T00:00:00.017000+00:00"
    assert all(type(r.rate) is float and math.isfinite(r.rate) for r in rates)
    assert [r.ts_event for r in rates] == sorted(r.ts_event for r in rates)


def test_funding_rates_keep_a_given_symbol_and_stream_through_iter_records() -> None:
    rates = list(iter_records(FUNDING, symbol="XRP/USDT:USDT-FUNDING"))
    assert {r.symbol for r in rates} == {"XRP/USDT:USDT-FUNDING"}
    assert len(rates) == 91


def test_iter_file_which_feeds_replay_refuses_funding_rates_in_one_line() -> None:
    with pytest.raises(DataFormatError) as caught:
        iter_file(FUNDING)
    message = str(caught.value)
    assert "\n" not in message
    assert str(FUNDING) in message
    assert "holds funding_rate records, not bars, quotes or ticks" in message


@pytest.mark.parametrize("name", ["XRP_USDT_USDT-8h-mark.feather", "XRP_USDT_USDT-1h-mark.feather"])
def test_mark_candles_are_bars_flagged_mark_with_every_row_exact(name: str) -> None:
    path = FUTURES / name
    spec = describe_file(path)
    assert (spec.kind, spec.price_type, spec.symbol) == ("bar", "mark", "XRP/USDT:USDT")
    bars = load_file(path)
    times, columns = _arrow_rows(path)
    volumes = [math.nan if v is None else v for v in columns["volume"]]
    expected = [
        TradeBar("XRP/USDT:USDT", ts, o, h, lo, c, v, spec.resolution)
        for ts, o, h, lo, c, v in zip(
            times, columns["open"], columns["high"], columns["low"], columns["close"], volumes,
            strict=True,
        )
    ]  # fmt: skip
    assert len(bars) == len(expected) == (91 if "8h" in name else 100)
    for got, want in zip(bars, expected, strict=True):
        assert isinstance(got, TradeBar)
        assert (got.ts_event, got.open, got.high, got.low, got.close) == (
            want.ts_event, want.open, want.high, want.low, want.close,
        )  # fmt: skip
        assert got.volume == want.volume or (math.isnan(got.volume) and math.isnan(want.volume))


def test_trade_candles_are_not_flagged() -> None:
    assert describe_file(FUTURES / "XRP_USDT_USDT-1h-futures.feather").price_type == "trade"


def test_a_funding_rate_json_file_loads_and_a_bad_record_is_named(tmp_path: Path) -> None:
    path = tmp_path / "XRP_USDT_USDT-8h-funding_rate.json"
    path.write_text(json.dumps([[1637193600017, 0.0001, 0, 0, 0, 0], [1637222400007, -5e-05]]))
    assert load_file(path) == [
        FundingRate("XRP/USDT:USDT", 1_637_193_600_017_000_000, 0.0001, 0, 0, EIGHT_HOURS.nanos),
        FundingRate("XRP/USDT:USDT", 1_637_222_400_007_000_000, -5e-05, 0, 0, EIGHT_HOURS.nanos),
    ]
    bad = tmp_path / "XRP_USDT_USDT-8h-funding_rate.json.gz"
    bad.write_bytes(
        gzip.compress(b"[[1637193600017, 0.0001, 0, 0, 0, 0], [1637222400007, null, 0, 0, 0, 0]]")
    )
    with pytest.raises(DataFormatError) as caught:
        load_file(bad)
    message = str(caught.value)
    assert "\n" not in message
    assert str(bad) in message
    assert "bad funding-rate record 2: no funding rate (null open)" in message


def test_a_funding_file_that_is_not_feather_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "XRP_USDT_USDT-8h-funding_rate.feather"
    path.write_bytes(b"not arrow")
    with pytest.raises(DataFormatError) as caught:
        load_file(path)
    assert "\n" not in str(caught.value)
    assert f"{path}" in str(caught.value)
    assert "not a readable feather file" in str(caught.value)
