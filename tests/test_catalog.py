"""The Parquet catalog: real stored series out to Parquet, read back by pyarrow, pandas and
DuckDB, imported into a fresh store, exported again without duplicates.

Data: the first 3 000 FTX BTC-PERP minute bars (2021-12-31 23:01 → 2022-01-03 01:00 UTC,
four UTC dates), SPY quote bars of 2013-10-07 and every IBM trade of 2013-10-11 (19 264
ticks, many sharing a millisecond), all from tests/fixtures (see its PROVENANCE.md).
"""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import astuple, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import lean_data
from lean_data import ConfigError, DataFormatError, DataPersistence, Resolution, TradeBar
from lean_data.loaders import iter_file, load_file
from lean_data.models import NS_PER_DAY, NS_PER_MINUTE, MarketData
from lean_data.storage.parquet import (
    catalog_series,
    export_catalog,
    import_catalog,
    read_catalog,
)
from lean_data.storage.parquet.layout import escape, unescape

from .conftest import FIXTURES

FTX = FIXTURES / "nautilus_trader/btc-perp-20211231-20220201_1m.csv"
SPY_QUOTES = FIXTURES / "lean/equity/usa/minute/spy/20131007_quote.zip"
IBM_TICKS = FIXTURES / "lean/equity/usa/tick/ibm/20131011_trade.zip"
SYMBOL = "BTC-PERP"
ALL_TIME = (0, 2**62)


def ftx_bars(count: int = 3000, symbol: str = SYMBOL) -> list[TradeBar]:
    bars = itertools.islice(iter_file(FTX, symbol=symbol), count)
    return [b for b in bars if isinstance(b, TradeBar)]


def flagged(bars: list[TradeBar]) -> list[TradeBar]:
    """The real bars with every model field varied (derived flags, real prices)."""
    return [
        replace(
            b,
            ts_recv=b.ts_event + NS_PER_MINUTE + 1_234_567 + i,  # received after the close
            closed=i != len(bars) - 1,  # the last one still forming
            revision=2 if i % 11 == 0 else 0,
            backfilled=i % 7 == 0,
        )
        for i, b in enumerate(bars)
    ]


async def stored(path: Path, items: list[MarketData], feed: str) -> DataPersistence:
    db = DataPersistence(path)
    await db.open()
    for item in items:
        await db.save_market_data(item, feed=feed)
    await db.flush()
    return db


def key(item: MarketData) -> tuple[Any, ...]:
    """Every field of ``item``, with NaN made comparable."""
    return tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in astuple(item))


def keys(items: list[Any]) -> list[tuple[Any, ...]]:
    return [key(item) for item in items]


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


async def test_export_reads_back_in_pyarrow_and_pandas_with_every_field(tmp_path: Path) -> None:
    bars = flagged(ftx_bars())
    db = await stored(tmp_path / "s.db", list(bars), "ftx")
    try:
        result = await export_catalog(db, tmp_path / "cat")
        saved = await db.get_market_data(SYMBOL, *ALL_TIME)
    finally:
        await db.close()
    assert keys(saved) == keys(bars)
    assert result.rows == {"bar": 3000, "quote": 0, "tick": 0}
    dates = ["2021-12-31", "2022-01-01", "2022-01-02", "2022-01-03"]
    expected_files = [
        tmp_path / f"cat/bars/BTC-PERP/1m/date={day}/part-ftx.parquet" for day in dates
    ]
    assert result.files == expected_files
    dataset = ds.dataset(tmp_path / "cat/bars", format="parquet", partitioning="hive")
    table = dataset.to_table().sort_by("ts_event")
    assert table.schema.field("time").type == pa.timestamp("ns", tz="UTC")
    assert table.schema.field("ts_event").type == pa.int64()
    assert table.schema.field("closed").type == pa.bool_()
    times = table.column("time").cast(pa.int64()).to_pylist()
    rows = table.drop_columns(["time"]).to_pylist()
    assert times == [b.ts_event for b in bars]
    for bar, row in zip(bars, rows, strict=True):
        day = datetime.fromtimestamp(bar.ts_event // 10**9, UTC).date().isoformat()
        assert row == {
            "symbol": SYMBOL,
            "feed": "ftx",
            "resolution": "1m",
            "ts_event": bar.ts_event,
            "open": bar.open,
            "high": bar.high,
            "low": bar.low,
            "close": bar.close,
            "volume": bar.volume,
            "ts_recv": bar.ts_recv,
            "closed": bar.closed,
            "revision": bar.revision,
            "backfilled": bar.backfilled,
            "date": day,
        }
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_parquet(tmp_path / "cat/bars/BTC-PERP/1m")
    assert str(frame["time"].dtype) == "datetime64[ns, UTC]"
    assert len(frame) == 3000
    assert frame["volume"].sum() == pytest.approx(math.fsum(b.volume for b in bars))


async def test_duckdb_reads_the_catalog_with_hive_dates(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb", reason="duckdb is not installed (the dev extra)")
    bars = flagged(ftx_bars())
    db = await stored(tmp_path / "s.db", list(bars), "ftx")
    try:
        await export_catalog(db, tmp_path / "cat")
    finally:
        await db.close()
    glob = str(tmp_path / "cat/bars/**/*.parquet")
    source = f"read_parquet('{glob}', hive_partitioning=true)"
    con = duckdb.connect()
    types = con.execute(
        f"SELECT typeof(time), typeof(ts_event), typeof(date), typeof(closed) FROM {source} LIMIT 1"
    ).fetchall()[0]
    assert types[1:] == ("BIGINT", "DATE", "BOOLEAN")
    assert types[0] in ("TIMESTAMPTZ_NS", "TIMESTAMP WITH TIME ZONE")  # by DuckDB version
    rows = con.execute(
        "SELECT symbol, feed, resolution, ts_event, open, high, low, close, volume, ts_recv, "
        f"closed, revision, backfilled, strftime(date, '%Y-%m-%d') FROM {source} "
        "ORDER BY ts_event"
    ).fetchall()
    assert len(rows) == 3000
    for bar, row in zip(bars, rows, strict=True):
        day = datetime.fromtimestamp(bar.ts_event // 10**9, UTC).date().isoformat()
        assert row == (
            *(SYMBOL, "ftx", "1m", bar.ts_event, bar.open, bar.high, bar.low, bar.close),
            *(bar.volume, bar.ts_recv, bar.closed, bar.revision, bar.backfilled, day),
        )
    per_day = con.execute(
        f"SELECT count(*) FROM {source} WHERE date = DATE '2022-01-01' "
        "AND time >= TIMESTAMPTZ '2022-01-01 00:00:00+00'"
    ).fetchall()
    con.close()
    assert per_day == [(1440,)]


async def test_import_into_a_fresh_store_gives_identical_rows(tmp_path: Path) -> None:
    bars = flagged(ftx_bars())
    db = await stored(tmp_path / "a.db", list(bars), "ftx")
    try:
        await export_catalog(db, tmp_path / "cat")
        before = await db.get_market_data(SYMBOL, *ALL_TIME)
    finally:
        await db.close()
    async with DataPersistence(tmp_path / "b.db") as fresh:
        counts = await import_catalog(tmp_path / "cat", fresh)
        after = await fresh.get_market_data(SYMBOL, *ALL_TIME, feed="ftx")
        series = await fresh.bar_series_keys()
        assert await fresh.count("bars") == 3000
    assert counts == {"bar": 3000, "quote": 0, "tick": 0}
    assert keys(after) == keys(before)
    assert series == [("ftx", SYMBOL, Resolution.MINUTE)]
    assert keys(list(read_catalog(tmp_path / "cat"))) == keys(before)


async def test_reexport_is_idempotent_and_a_range_rewrites_only_its_whole_days(
    tmp_path: Path,
) -> None:
    bars = ftx_bars()
    db = await stored(tmp_path / "s.db", list(bars), "ftx")
    cat = tmp_path / "cat"
    try:
        await export_catalog(db, cat)
        first = files_of(cat)
        await export_catalog(db, cat)
        assert files_of(cat) == first  # same files, same bytes
        day_file = cat / "bars/BTC-PERP/1m/date=2022-01-01/part-ftx.parquet"
        other_file = cat / "bars/BTC-PERP/1m/date=2022-01-02/part-ftx.parquet"
        other_mtime = other_file.stat().st_mtime_ns
        noon = datetime(2022, 1, 1, 12, tzinfo=UTC)
        result = await export_catalog(db, cat, start=noon, end=datetime(2022, 1, 1, 13))
        assert result.files == [day_file]
        assert result.rows["bar"] == 1440  # the range was widened to the whole UTC day
        assert other_file.stat().st_mtime_ns == other_mtime
        assert files_of(cat) == first
        # a second feed of the same series gets its own files; re-exporting one feed
        # leaves the other's alone
        await db.save_market_data(replace(bars[100], close=bars[100].close + 1), feed="copy")
        await db.flush()
        await export_catalog(db, cat, feeds=["copy"])
        await export_catalog(db, cat, feeds=["ftx"])
    finally:
        await db.close()
    table = ds.dataset(cat / "bars", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 3001
    read = list(read_catalog(cat, SYMBOL, resolution="1m"))
    assert [b.ts_event for b in read] == sorted(b.ts_event for b in read)
    assert sum(b.ts_event == bars[100].ts_event for b in read) == 2
    assert len(list(read_catalog(cat, SYMBOL, feed="copy"))) == 1


async def test_hostile_values_and_symbols_round_trip(tmp_path: Path) -> None:
    real = ftx_bars(200, symbol="BTC/USD:USD")
    hostile = [
        replace(real[0], volume=math.nan),  # a mark-price style bar without volume
        *real[1:],
        replace(real[-1], ts_event=real[-1].ts_event + NS_PER_DAY, high=math.inf),
    ]
    db = await stored(tmp_path / "s.db", list(hostile), "ccxt:binance/usdm")
    try:
        await export_catalog(db, tmp_path / "cat")
        saved = await db.get_market_data("BTC/USD:USD", *ALL_TIME)
    finally:
        await db.close()
    # the store stamps ts_recv = 0 (unknown) with the time it saved the row; all else as given
    assert keys([replace(b, ts_recv=0) for b in saved]) == keys(hostile)
    series = catalog_series(tmp_path / "cat")
    assert [(s.kind, s.symbol, s.resolution) for s in series] == [
        ("bar", "BTC/USD:USD", Resolution.MINUTE)
    ]
    assert series[0].path == tmp_path / "cat/bars/BTC%2FUSD%3AUSD/1m"
    parts = sorted(p.name for p in series[0].path.rglob("*.parquet"))
    assert set(parts) == {"part-ccxt%3Abinance%2Fusdm.parquet"}
    read = list(read_catalog(tmp_path / "cat", "BTC/USD:USD"))
    assert keys(read) == keys(saved)
    assert math.isnan(read[0].volume)
    column = pq.read_table(next(series[0].path.rglob("*.parquet"))).column("symbol")
    assert set(column.to_pylist()) == {"BTC/USD:USD"}
    async with DataPersistence(tmp_path / "b.db") as fresh:
        await import_catalog(tmp_path / "cat", fresh)
        back = await fresh.get_market_data("BTC/USD:USD", *ALL_TIME, feed="ccxt:binance/usdm")
    assert keys(back) == keys(saved)


@pytest.mark.parametrize(
    "name", ["BTC/USDT", "BTC/USD:USD", "EUR/USD", "..", ".hidden", "_x", "a b%c", "é/€", "AAPL"]
)
def test_names_escape_to_one_safe_segment_and_back(name: str) -> None:
    segment = escape(name)
    assert unescape(segment) == name
    assert not {"/", ":", " ", "\\"} & set(segment)
    assert not segment.startswith((".", "_"))  # readers skip those as hidden
    assert segment.isascii()


async def test_quote_bars_round_trip_and_their_feed_is_found(tmp_path: Path) -> None:
    quotes = load_file(SPY_QUOTES)
    assert len(quotes) > 800
    db = await stored(tmp_path / "s.db", quotes, "algoseek")
    try:
        assert await db.stored_symbols("quote_bars") == ["SPY"]
        result = await export_catalog(db, tmp_path / "cat", kinds=["quote"])  # every symbol
        before = await db.get_quote_bars("SPY", *ALL_TIME)
    finally:
        await db.close()
    assert result.rows["quote"] == len(quotes)
    assert {p.name for p in result.files} == {"part-algoseek.parquet"}
    read = list(read_catalog(tmp_path / "cat", "SPY", kind="quote"))
    assert keys(read) == keys(before)
    async with DataPersistence(tmp_path / "b.db") as fresh:
        assert (await import_catalog(tmp_path / "cat", fresh))["quote"] == len(quotes)
        after = await fresh.get_quote_bars("SPY", *ALL_TIME, feed="algoseek")
    assert keys(after) == keys(before)


async def test_ticks_round_trip_in_time_then_save_order(tmp_path: Path) -> None:
    ticks = load_file(IBM_TICKS)
    assert len(ticks) == 19_264
    stamps = [t.ts_event for t in ticks]
    assert len(set(stamps)) < len(stamps)  # many prints share a millisecond
    db = await stored(tmp_path / "s.db", ticks, "algoseek")
    try:
        result = await export_catalog(db, tmp_path / "cat", symbols=["IBM"], kinds=["tick"])
        before = await db.get_ticks("IBM", *ALL_TIME)
    finally:
        await db.close()
    assert result.rows["tick"] == 19_264
    assert [p.relative_to(tmp_path) for p in result.files] == [
        Path("cat/ticks/IBM/date=2013-10-11/part-algoseek.parquet")
    ]
    read = list(read_catalog(tmp_path / "cat", "IBM", kind="tick"))
    assert keys(read) == keys(before)
    half = read[len(read) // 2].ts_event
    assert keys(list(read_catalog(tmp_path / "cat", kind="tick", start=half))) == keys(
        [t for t in before if t.ts_event >= half]
    )
    async with DataPersistence(tmp_path / "b.db") as fresh:
        await import_catalog(tmp_path / "cat", fresh, kinds=["tick"])
        after = await fresh.get_ticks("IBM", *ALL_TIME)
    assert keys(after) == keys(before)


async def test_without_pyarrow_the_catalog_asks_for_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # an install without the extra
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    message = r'^the Parquet catalog needs pyarrow: pip install "lean-data\[parquet\]"$'
    async with DataPersistence(tmp_path / "s.db") as db:
        with pytest.raises(ConfigError, match=message):
            await lean_data.export_catalog(db, tmp_path / "cat")
        with pytest.raises(ConfigError, match=message):
            await lean_data.import_catalog(tmp_path / "cat", db)
    with pytest.raises(ConfigError, match=message):
        lean_data.read_catalog(tmp_path / "cat", "BTC/USDT")


def test_import_lean_data_does_not_import_pyarrow() -> None:
    import subprocess

    code = (
        "import sys, lean_data\n"
        "assert lean_data.export_catalog and lean_data.ReplaySource.catalog\n"
        "print('pyarrow' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"


async def test_what_is_not_a_catalog_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a Parquet catalog"):
        read_catalog(tmp_path, "BTC/USDT")
    bars = ftx_bars(10)
    two = [*bars, *(replace(b, symbol="ETH-PERP") for b in bars)]
    root = tmp_path / "bars"  # a catalog root may itself be called like a kind directory
    db = await stored(tmp_path / "s.db", two, "ftx")
    try:
        await export_catalog(db, root, symbols=[SYMBOL, "ETH-PERP"])
        quotes = load_file(SPY_QUOTES)[:5]
        for quote in quotes:
            await db.save_market_data(quote, feed="algoseek")
        await db.save_market_data(load_file(IBM_TICKS)[0], feed="algoseek")
        await export_catalog(db, tmp_path / "q", symbols=["SPY", "IBM"], kinds=["quote", "tick"])
    finally:
        await db.close()
    assert len(list(read_catalog(root, SYMBOL))) == 10
    with pytest.raises(ConfigError, match=r"2 bar series .*\(BTC-PERP 1m, ETH-PERP 1m\); name one"):
        read_catalog(root)
    with pytest.raises(ConfigError, match="no bar series of 'SOL-PERP'"):
        read_catalog(root, "SOL-PERP")
    with pytest.raises(ConfigError, match="holds quote and tick: name a kind"):
        read_catalog(tmp_path / "q")
    assert len(list(read_catalog(tmp_path / "q", kind="quote"))) == 5
    broken = root / "bars/BTC-PERP/1m/date=2021-12-31/part-ftx.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(DataFormatError, match=r"part-ftx\.parquet: not a readable Parquet"):
        list(read_catalog(root, SYMBOL))
