"""The `lean-data` command: the demo, and replays of real files (asset class, calendar)."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lean_data.cli import main

from .test_asset_classes import holed_csv


def _demo(out: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "lean_data.cli", "demo", "--output", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _report(text: str) -> str:
    """The quality report and outcome counts: what must not change on a second run."""
    quality = text[text.index("Data quality per symbol") : text.index("Metrics")]
    outcomes = re.search(r"what became of each item: .*", text)
    assert outcomes is not None, text
    return quality + outcomes.group(0)


def test_demo_runs_offline_and_prints_the_report(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    text = _demo(out)
    assert "what became of each item: delivered 11,537" in text
    assert _report(_demo(out)) == _report(text)  # day two: the same report, nothing "late"
    db = out / "lean_data.db"
    assert f"SQLite database: {db.resolve()}" in text
    assert "Data quality per symbol" in text
    # The real defects in the bundled data are reported:
    assert "2014-06-09 08:00 UTC" in text  # AAPL 04:00 New York bar with the pre-split open
    assert "2017-04-15 00:00 UTC" in text  # Coinbase BTC-USD daily low of 0.06
    with sqlite3.connect(db) as conn:
        symbols = dict(conn.execute("select symbol, count(*) from bars group by symbol"))
    assert set(symbols) == {"SPY", "AAPL", "BTC/USD", "BTC/BUSD"}
    assert symbols["BTC/BUSD"] == 1440


def replay(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, int]:
    """Run ``lean-data replay`` in-process; return its output and the gaps it reported.

    Each run writes to a new directory, so each run's database holds that run only.
    """
    out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
    assert main(["replay", *args, "--output", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    match = re.search(r"gaps (\d+) \((\d+) bars missing", text)
    assert match is not None, text
    assert match.group(1) == match.group(2)  # single-bar holes
    return text, int(match.group(1))


def test_replay_reports_the_same_btc_gaps_whatever_the_file_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the first 5,000 real FTX BTC-PERP minutes (New Year 2022, a weekend), 100 bars removed
    holes = holed_csv(tmp_path / "btcusdt_holes.csv")
    holed_csv(tmp_path / "btcusdt.csv")
    holed_csv(tmp_path / "spy.csv")
    text, named_holes = replay(tmp_path, capsys, str(tmp_path / "btcusdt_holes.csv"))
    assert named_holes == holes == 100
    assert "warning: no asset class for 'BTCUSDT_HOLES'" in text
    text, pair = replay(tmp_path, capsys, str(tmp_path / "btcusdt.csv"))
    assert pair == holes
    assert "warning:" not in text
    _, forced = replay(tmp_path, capsys, str(tmp_path / "spy.csv"), "--asset-class", "crypto")
    _, calendar = replay(tmp_path, capsys, str(tmp_path / "spy.csv"), "--calendar", "24/7")
    _, equity = replay(tmp_path, capsys, str(tmp_path / "spy.csv"))  # judged on NYSE hours
    assert (forced, calendar) == (holes, holes)
    assert 0 < equity < holes // 4


def test_a_calendar_that_cannot_load_is_a_visible_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    holes = holed_csv(tmp_path / "spy.csv")
    text, gaps = replay(tmp_path, capsys, str(tmp_path / "spy.csv"), "--calendar", "XXXX")
    assert "warning: no trading calendar 'XXXX': expected an exchange_calendars code" in text
    assert text.index("warning:") < text.index("Replayed")
    assert 0 < gaps < holes // 4  # fell back to SPY's own class: NYSE hours
