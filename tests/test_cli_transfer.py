"""``lean-data export`` / ``import`` on the demo's real stored data (no mocks).

The demo replays the bundled real files (LEAN zips of SPY, AAPL, BTC/USD, BTC/BUSD) into a
real SQLite store; the tests export it, import the files into fresh stores and compare.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import sqlite3
import struct
from pathlib import Path
from typing import Any

import pytest

from lean_data.cli import main
from lean_data.cli.commands import demo_files
from tests.backends import PostgresBackend

pq = pytest.importorskip("pyarrow.parquet")

PRICES = ("open", "high", "low", "close", "volume")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--output", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def demo_csv(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "demo.csv"
    assert main(["export", "--output", str(demo_dir), "--to", str(path)]) == 0
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


def _stored(db: Path, where: str = "", params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The bars table as export orders it: by feed, symbol, bar period, open time."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT feed, symbol, resolution, ts_event, open, high, low, close, volume, "
            f"quality_score, quality_level, reasons FROM bars {where}",
            params,
        ).fetchall()
    period = {"1m": 60, "1h": 3600, "1d": 86400}
    return sorted(rows, key=lambda r: (r[0], r[1], period[r[2]], r[3]))


def _catalog(capsys: pytest.CaptureFixture[str], out_dir: Path) -> list[list[str]]:
    """The catalog's table rows: feed, symbol, res, first, last, rows, coverage, gaps."""
    code, out, err = _run(capsys, "catalog", "--output", str(out_dir))
    assert (code, err) == (0, "")
    lines = out.split("\n\n")[0].splitlines()
    return [line.split()[:8] for line in lines]


def _gaps(capsys: pytest.CaptureFixture[str], out_dir: Path) -> str:
    texts = []
    for symbol in ("AAPL", "BTC/BUSD", "BTC/USD", "SPY"):
        code, out, err = _run(capsys, "gaps", symbol, "--output", str(out_dir))
        assert (code, err) == (0, "")
        texts.append(out)
    return "".join(texts)


def test_csv_round_trip_is_byte_identical_and_catalog_and_gaps_match(
    demo_dir: Path, demo_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "import", str(demo_csv), "--output", str(tmp_path / "again"))
    assert (code, err) == (0, "")
    assert "10,645 new, 0 already stored, 0 invalid" in out
    again = tmp_path / "again.csv"
    assert main(["export", "--output", str(tmp_path / "again"), "--to", str(again)]) == 0
    assert again.read_bytes() == demo_csv.read_bytes()
    assert _stored(tmp_path / "again" / "lean_data.db") == _stored(demo_dir / "lean_data.db")
    assert _catalog(capsys, tmp_path / "again") == _catalog(capsys, demo_dir)
    assert _gaps(capsys, tmp_path / "again") == _gaps(capsys, demo_dir)
    assert "8 gaps, 34 bars missing" in _gaps(capsys, tmp_path / "again")


def test_parquet_round_trip_gives_equal_tables_and_the_same_catalog(
    demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "demo.parquet", tmp_path / "again.parquet"
    assert main(["export", "--output", str(demo_dir), "--to", str(first)]) == 0
    code, out, err = _run(capsys, "import", str(first), "--output", str(tmp_path / "store"))
    assert (code, err) == (0, "")
    assert "10,645 new, 0 already stored, 0 invalid" in out
    assert main(["export", "--output", str(tmp_path / "store"), "--to", str(second)]) == 0
    original, again = pq.read_table(first), pq.read_table(second)
    assert original.num_rows == 10_645
    assert again.equals(original)
    assert _catalog(capsys, tmp_path / "store") == _catalog(capsys, demo_dir)
    assert _gaps(capsys, tmp_path / "store") == _gaps(capsys, demo_dir)


def test_exported_values_are_the_stored_ones_bit_for_bit(demo_dir: Path, demo_csv: Path) -> None:
    with demo_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    stored = _stored(demo_dir / "lean_data.db")
    assert len(rows) == len(stored) == 10_645
    for row, (feed, symbol, res, ts, *rest) in zip(rows, stored, strict=True):
        prices, (score, level, reasons) = rest[:5], rest[5:]
        assert (row["feed"], row["symbol"], row["resolution"]) == (feed, symbol, res)
        assert int(row["ts_event"]) == ts
        assert row["time"].endswith("Z")
        assert [_bits(float(row[name])) for name in PRICES] == [_bits(p) for p in prices]
        assert row["quality_score"] == ("" if score is None else repr(score))
        assert (row["quality_level"], row["reasons"]) == (level or "", reasons)
    flagged = {(r["symbol"], r["time"]): r["reasons"] for r in rows if r["reasons"]}
    assert flagged[("AAPL", "2014-06-09T08:00:00Z")] == "split_inside_bar"
    assert flagged[("BTC/USD", "2015-01-14T00:00:00Z")] == "extreme_range,extreme_move"


def test_jsonl_export_parses_with_json_and_matches_the_csv(
    demo_dir: Path, demo_csv: Path, tmp_path: Path
) -> None:
    path = tmp_path / "demo.jsonl"
    assert main(["export", "--output", str(demo_dir), "--to", str(path)]) == 0
    records = [json.loads(line) for line in path.read_text().splitlines()]
    with demo_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(records) == len(rows) == 10_645
    for record, row in zip(records, rows, strict=True):
        assert list(record) == list(row)
        assert record["ts_event"] == int(row["ts_event"])
        assert [record[n] for n in PRICES] == [float(row[n]) for n in PRICES]
        assert record["quality_level"] == (row["quality_level"] or None)


def test_symbol_range_resolution_and_feed_select_exactly_the_stored_rows(
    demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spy.csv"
    argv = ["export", "spy", "--resolution", "1m", "--start", "2013-10-08"]
    argv += ["--end", "2013-10-09T14:30:00Z", "--feed", "replay"]
    code, out, err = _run(capsys, *argv, "--output", str(demo_dir), "--to", str(path))
    assert (code, err) == (0, "")
    lo, hi = 1381190400 * 10**9, 1381329000 * 10**9  # 2013-10-08, 2013-10-09T14:30Z
    where = "WHERE symbol = 'SPY' AND resolution = '1m' AND ts_event >= ? AND ts_event < ?"
    expected = _stored(demo_dir / "lean_data.db", where, (lo, hi))
    with path.open(newline="") as handle:
        got = [(r["symbol"], r["resolution"], int(r["ts_event"])) for r in csv.DictReader(handle)]
    assert got == [(r[1], r[2], r[3]) for r in expected]
    assert len(got) > 1000
    assert got[0][2] >= lo
    assert got[-1][2] < hi
    assert f"exported {len(got):,} bars of 1 series" in out

    both = tmp_path / "btc.csv"
    code, out, err = _run(capsys, "export", "BTC-USD", "--output", str(demo_dir), "--to", str(both))
    assert (code, err) == (0, "")
    with both.open(newline="") as handle:
        series = {(r["symbol"], r["resolution"]) for r in csv.DictReader(handle)}
    assert series == {("BTC/USD", "1m"), ("BTC/USD", "1d")}
    assert "exported 2,758 bars of 2 series" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["export", "XYZ", "--to", "x.csv"], "XYZ: no stored bars of this symbol"),
        (["export", "--feed", "kraken", "--to", "x.csv"], "--feed kraken: no such bars"),
        (["export", "--resolution", "soon", "--to", "x.csv"], "--resolution soon: not a bar"),
        (["export", "--to", "x.txt"], "--to x.txt: cannot tell the format from the name"),
        (["export", "--start", "yesterday", "--to", "x.csv"], "--start yesterday: not an ISO"),
    ],
)
def test_a_wrong_export_request_is_one_line_and_writes_no_file(
    demo_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    expected: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, *argv, "--output", str(demo_dir))
    assert (code, out) == (1, "")
    assert err.startswith(f"lean-data: error: {expected}")
    assert err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_importing_the_same_file_twice_adds_nothing_and_says_so(
    demo_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ["--output", str(tmp_path)]
    assert _run(capsys, "import", str(demo_csv), *store)[0] == 0
    code, out, err = _run(capsys, "import", str(demo_csv), *store)
    assert (code, err) == (0, "")
    assert "0 new, 10,645 already stored, 0 invalid (not stored)" in out
    assert "nothing new: every row was already stored" in out
    with sqlite3.connect(tmp_path / "lean_data.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM bars").fetchone() == (10_645,)


def test_importing_the_demo_files_scores_them_exactly_like_the_demo_replay(
    demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [str(path) for path in demo_files()]
    code, out, err = _run(capsys, "import", *files, "--output", str(tmp_path))
    assert (code, err) == (0, "")
    assert re.search(r"replay\s+SPY\s+quotes\s+1m\s+908\s+0\s+908\s+0", out)
    demo = _stored(demo_dir / "lean_data.db", "WHERE NOT (symbol = 'SPY' AND resolution = '1h')")
    assert _stored(tmp_path / "lean_data.db") == demo  # 1h: the demo's history query, not files
    with sqlite3.connect(tmp_path / "lean_data.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM quote_bars").fetchone() == (908,)


def _hostile(source: Path, path: Path, *, loader: bool) -> list[str]:
    """The real BTC/BUSD bars with the 700th made impossible (high below low)."""
    with source.open(newline="") as handle:
        rows = [r for r in csv.reader(handle) if r[1] in ("symbol", "BTC/BUSD")]
    rows[700][6] = "1.0"  # high
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerows([[r[3], *r[5:10]] for r in rows] if loader else rows)
    return rows[700]


@pytest.mark.parametrize("loader", [False, True], ids=["export-csv", "ohlcv-csv"])
def test_an_impossible_bar_is_counted_invalid_and_the_good_rows_are_stored(
    demo_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], loader: bool
) -> None:
    path = tmp_path / "btcbusd.csv"
    bad = _hostile(demo_csv, path, loader=loader)
    argv = ["import", str(path), "--output", str(tmp_path / "store")]
    code, out, err = _run(capsys, *argv, *(["--symbol", "BTC/BUSD"] if loader else []))
    assert (code, err) == (0, "")
    assert re.search(r"replay\s+BTC/BUSD\s+bars\s+1m\s+1,440\s+1\s+1,439\s+0", out)
    assert "1,439 new, 0 already stored, 1 invalid (not stored)" in out
    assert f"invalid, not stored: replay BTC/BUSD 1m {bad[3]} O {bad[5]} H 1.0" in out
    with sqlite3.connect(tmp_path / "store" / "lean_data.db") as conn:
        times = [t for (t,) in conn.execute("SELECT ts_event FROM bars ORDER BY ts_event")]
    assert len(times) == 1_439
    assert int(bad[4]) not in times


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_a_malformed_row_stops_the_import_before_anything_is_written(
    demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    path = tmp_path / f"demo.{suffix}"
    assert main(["export", "AAPL", "--output", str(demo_dir), "--to", str(path)]) == 0
    lines = path.read_text().splitlines()
    if suffix == "csv":
        cells = lines[1500].split(",")
        lines[1500] = ",".join([*cells[:5], "6x5", *cells[6:]])
    else:
        lines[1500] = re.sub(r'"open":[0-9.]+', '"open":"6x5"', lines[1500])
    path.write_text("\n".join(lines) + "\n")
    store = tmp_path / "store"
    code, out, err = _run(capsys, "import", str(path), "--output", str(store))
    assert (code, out) == (1, "")
    assert err.startswith(f"lean-data: error: {path}:1501: ")
    assert "open: expected a number, found '6x5'" in err
    assert err.endswith("; fix or remove that row: nothing was imported\n")
    assert err.count("\n") == 1
    assert not store.exists()


async def test_export_and_import_work_on_postgresql_like_sqlite(
    pg: PostgresBackend, demo_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    more = ["--database-url", pg.url, "--database-schema", pg.schema]
    code, out, err = await asyncio.to_thread(
        _run, capsys, "import", str(demo_csv), "--output", str(tmp_path), *more
    )
    assert (code, err) == (0, "")
    assert f"#{pg.schema} through the engine" in out
    again = tmp_path / "again.csv"
    argv = ["export", "--to", str(again), *more]
    assert await asyncio.to_thread(main, argv) == 0
    assert await asyncio.to_thread(again.read_bytes) == demo_csv.read_bytes()  # noqa: ASYNC240
    unscored = "SUM(CASE WHEN quality_level IS NULL THEN 1 END)"
    rows = await pg.rows(f'SELECT COUNT(*), {unscored} FROM "{pg.schema}".bars')
    assert rows == [(10_645, 16)]  # the demo's 16 SPY 1h bars stay unscored
