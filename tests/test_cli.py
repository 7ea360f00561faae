"""The `lean-data demo` command: replays the bundled real data offline and reports."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path


def test_demo_runs_offline_and_prints_the_report(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "lean_data.cli", "demo", "--output", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
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
