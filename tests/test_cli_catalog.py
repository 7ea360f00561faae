"""``lean-data catalog`` and ``lean-data gaps`` on the demo's real stored data (no mocks)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import pytest

from lean_data.cli import main
from tests.backends import PostgresBackend

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"

# The 8 gaps of Coinbase's BTC-USD daily bars the demo reports (its errors rows of kind gap).
BTC_GAPS = [
    ("2014-12-05T00:00:00Z", "2014-12-06T00:00:00Z", 1),
    ("2014-12-07T00:00:00Z", "2014-12-08T00:00:00Z", 1),
    ("2014-12-09T00:00:00Z", "2014-12-10T00:00:00Z", 1),
    ("2014-12-11T00:00:00Z", "2014-12-12T00:00:00Z", 1),
    ("2014-12-13T00:00:00Z", "2014-12-18T00:00:00Z", 5),
    ("2014-12-19T00:00:00Z", "2015-01-08T00:00:00Z", 20),
    ("2015-01-09T00:00:00Z", "2015-01-13T00:00:00Z", 4),
    ("2015-01-18T00:00:00Z", "2015-01-19T00:00:00Z", 1),
]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--output", str(out), "--no-progress"]) == 0
    return out


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _table(text: str) -> dict[tuple[str, str, str], list[str]]:
    """The catalog's rows by (feed, symbol, resolution)."""
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["feed", "symbol", "res"]
    rows = {}
    for line in lines[1:]:
        if not line.strip():
            break
        cells = line.split()
        rows[(cells[0], cells[1], cells[2])] = cells[3:]
    return rows


def test_catalog_lists_every_series_with_the_stored_row_counts(
    demo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "catalog", "--output", str(demo_dir))
    assert (code, err) == (0, "")
    rows = _table(out)
    with sqlite3.connect(demo_dir / "lean_data.db") as conn:
        counts = {
            (feed, symbol, res): (n, lo, hi)
            for feed, symbol, res, n, lo, hi in conn.execute(
                "select feed, symbol, resolution, count(*), min(ts_event), max(ts_event) "
                "from bars group by 1, 2, 3"
            )
        }
    assert set(rows) == set(counts)
    assert {symbol for _, symbol, _ in rows} == {"SPY", "AAPL", "BTC/USD", "BTC/BUSD"}
    for key, (n, _, _) in counts.items():
        first, last, stored, coverage, gaps, quality = rows[key][:6]
        assert re.fullmatch(ISO, first)
        assert re.fullmatch(ISO, last)
        assert int(stored.replace(",", "")) == n
        assert coverage.endswith("%")
        assert 0 < float(coverage[:-1]) <= 100
        assert int(gaps) >= 0
        assert quality == "-" or 0 <= float(quality) <= 1
    btc = rows[("replay", "BTC/USD", "1d")]
    assert btc[:2] == ["2014-12-01T00:00:00Z", "2018-08-13T00:00:00Z"]
    assert btc[4] == "8"  # the demo's 8 real gaps
    assert float(btc[3][:-1]) == pytest.approx(100 * 1318 / (1318 + 34), abs=0.01)
    assert rows[("replay", "SPY", "1m")][4] == "0"  # nights and the weekend are no gaps (XNYS)


def test_gaps_lists_the_eight_real_btc_gaps(
    demo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(
        capsys, "gaps", "BTC-USD", "--output", str(demo_dir), "--resolution", "1d"
    )
    assert (code, err) == (0, "")
    heading, *lines = out.splitlines()
    assert heading == "replay BTC/USD 1d: 8 gaps, 34 bars missing (24/7 calendar)"
    found = [(s, e, int(n)) for s, e, n, _ in (line.split(maxsplit=3) for line in lines)]
    assert found == BTC_GAPS
    with sqlite3.connect(demo_dir / "lean_data.db") as conn:
        logged = conn.execute(
            "select count(*) from errors where kind = 'gap' and symbol = 'BTC/USD'"
        ).fetchone()[0]
    assert logged == len(found)  # what the engine logged during the demo


def test_gaps_without_a_resolution_covers_every_series_of_the_symbol(
    demo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "gaps", "BTC/USD", "--output", str(demo_dir), "--feed", "replay")
    assert code == 0
    headings = [line for line in out.splitlines() if not line.startswith("  ")]
    assert headings == [
        "replay BTC/USD 1m: 0 gaps, 0 bars missing (24/7 calendar)",
        "replay BTC/USD 1d: 8 gaps, 34 bars missing (24/7 calendar)",
    ]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["gaps", "NOPE"], "NOPE: no stored bars of this symbol in"),
        (["gaps", "SPY", "--feed", "binance"], "--feed binance: no bars of SPY from this feed"),
        (["gaps", "SPY", "--resolution", "1d"], "--resolution 1d: no 1d bars of SPY"),
        (["gaps", "SPY", "--resolution", "soon"], "--resolution soon: not a bar period"),
    ],
)
def test_a_wrong_symbol_or_filter_is_one_line(
    demo_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    code, out, err = _run(capsys, *argv, "--output", str(demo_dir))
    assert (code, out) == (1, "")
    assert err.startswith(f"lean-data: error: {expected}")
    assert err.count("\n") == 1


@pytest.mark.parametrize("command", [["catalog"], ["gaps", "SPY"]])
def test_no_database_is_one_line_saying_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    code, out, err = _run(capsys, *command, "--output", str(tmp_path / "empty"))
    assert (code, out) == (1, "")
    assert err == (
        f"lean-data: error: {tmp_path / 'empty' / 'lean_data.db'}: no database there; run "
        "lean-data demo first, or pass --output DIR (the directory of a run) or "
        "--database-url URL\n"
    )
    assert not (tmp_path / "empty").exists()  # nothing created


async def test_catalog_reads_postgresql_like_sqlite(
    tmp_path: Path, pg: PostgresBackend, demo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    more = ["--database-url", pg.url, "--database-schema", pg.schema]
    demo = ["demo", "--output", str(tmp_path), "--no-progress", *more]
    assert await asyncio.to_thread(main, demo) == 0
    code, out, err = await asyncio.to_thread(_run, capsys, "catalog", *more)
    assert (code, err) == (0, "")
    _, sqlite_out, _ = await asyncio.to_thread(_run, capsys, "catalog", "--output", str(demo_dir))
    tables = _table(out), _table(sqlite_out)
    assert tables[0] == tables[1]  # same series, times, rows, coverage, gaps, quality
    assert f"#{pg.schema}:" in out
