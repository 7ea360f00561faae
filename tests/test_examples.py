"""The examples that run offline keep running (each starts its own loopback servers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_failover_example_switches_over_and_back() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "failover.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[-2:] == [
        "switch primary -> backup: primary: stale",
        "switch backup -> primary: home feed recovered",
    ]
    stamps = [int(line.split()[1]) for line in lines if line.startswith("BTC/BUSD ")]
    # 40 candles, each once and in order: the ones the switch skipped were backfilled
    assert stamps == [1670889600000000000 + i * 60_000_000_000 for i in range(40)]


def test_custom_feed_example_runs_twice_with_the_same_output(tmp_path: Path) -> None:
    runs = [
        subprocess.run(
            [sys.executable, str(EXAMPLES / "custom_feed.py")],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
            cwd=tmp_path,
        ).stdout
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    assert "received 829 trades, last 2013-10-08 00:00:00 SPY 168.0 x 1" in runs[0]
