"""``import lean_data`` loads the core only (figure 7's budget is 100 ms).

The file loaders (and msgspec, with the Binance and depth formats) load with the first file
a ReplayFeed or a loader reads; venue SDKs, dataframes, pyarrow, asyncpg and nats-py with the
feature that needs them. Checked in a fresh interpreter, so earlier tests cannot hide it.
"""

from __future__ import annotations

import subprocess
import sys

LAZY = (
    "lean_data.storage.sqlite",  # the SQLite store: with the first engine that stores
    "aiosqlite",
    "sqlite3",
    "lean_data.depth",  # the books: with the first engine
    "lean_data.storage.cache_disk",  # the disk cache tier: with a cache_dir
    "orjson",  # with the first JSON written
    "tomllib",  # a config file
    "lean_data.feeds.streaming",  # StreamingFeed, on first access
    "lean_data.analytics.transform",  # DataTransformer, on first access
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


def fresh_interpreter(code: str) -> str:
    """Run ``code`` in a new interpreter (nothing imported yet); return what it printed."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


def test_import_lean_data_loads_no_optional_module() -> None:
    code = f"import sys, lean_data\nprint(','.join(m for m in {LAZY!r} if m in sys.modules))\n"
    assert fresh_interpreter(code).strip() == ""


def test_a_replay_feed_loads_the_loaders_with_its_first_file() -> None:
    """The lazy import still works: a fresh interpreter replays a real bundled file."""
    code = (
        "import sys, pathlib, lean_data\n"
        "demo = pathlib.Path(lean_data.__file__).parent / 'demo_data/lean/equity/usa'\n"
        "symbol = lean_data.ReplayFeed().add_source(demo / 'minute/spy/20131007_trade.zip')\n"
        "print('lean_data.loaders' in sys.modules, symbol)\n"
    )
    assert fresh_interpreter(code).split() == ["True", "SPY"]


def test_every_public_name_resolves_with_what_it_needs() -> None:
    """The names loaded on first access still import, and an engine then loads its store,
    its books and the disk tier when it needs them. (The Alpaca and ccxt feeds are left out:
    they import their venue SDKs, and test_import_lean_data_loads_no_optional_module keeps
    those lazy.)"""
    code = (
        "import sys, tempfile, asyncio, lean_data\n"
        "missing = [n for n in lean_data.__all__ if n not in ('AlpacaDataFeed', 'CcxtDataFeed')"
        " and getattr(lean_data, n, None) is None]\n"
        "folder = tempfile.mkdtemp()\n"
        "async def main():\n"
        "    engine = lean_data.DataEngine(lean_data.Config(db_path=folder + '/x.db',"
        " cache_dir=folder + '/cache'))\n"
        "    await engine.start()\n"
        "    await engine.stop()\n"
        "asyncio.run(main())\n"
        "loaded = [m for m in ('lean_data.storage.sqlite', 'lean_data.depth',"
        " 'lean_data.storage.cache_disk') if m in sys.modules]\n"
        "print(missing, loaded)\n"
    )
    assert fresh_interpreter(code).strip() == (
        "[] ['lean_data.storage.sqlite', 'lean_data.depth', 'lean_data.storage.cache_disk']"
    )
