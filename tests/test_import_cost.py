"""``import lean_data`` loads the core only (figure 7's budget is 100 ms).

The file loaders (and msgspec, with the Binance and depth formats) load with the first file
a ReplayFeed or a loader reads; venue SDKs, dataframes, pyarrow, asyncpg and nats-py with the
feature that needs them. Checked in a fresh interpreter, so earlier tests cannot hide it.
"""

from __future__ import annotations

import subprocess
import sys

LAZY = (
    "lean_data.loaders",
    "lean_data.wire.binance",
    "msgspec",
    "pandas",
    "polars",
    "pyarrow",
    "alpaca",
    "ccxt",
    "asyncpg",
    "nats",
    "picows",
)


def test_import_lean_data_loads_no_optional_module() -> None:
    code = f"import sys, lean_data\nprint(','.join(m for m in {LAZY!r} if m in sys.modules))\n"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == ""


def test_a_replay_feed_loads_the_loaders_with_its_first_file() -> None:
    """The lazy import still works: a fresh interpreter replays a real bundled file."""
    code = (
        "import sys, pathlib, lean_data\n"
        "demo = pathlib.Path(lean_data.__file__).parent / 'demo_data/lean/equity/usa'\n"
        "symbol = lean_data.ReplayFeed().add_source(demo / 'minute/spy/20131007_trade.zip')\n"
        "print('lean_data.loaders' in sys.modules, symbol)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["True", "SPY"]
