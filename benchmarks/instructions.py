"""Instructions per message of figure 1's and 2's in-memory path, counted by callgrind.

    python benchmarks/instructions.py                      # this checkout, klines and aggTrades
    python benchmarks/instructions.py --before ../before   # and another checkout, with ratios
    python benchmarks/instructions.py --peer               # and cryptofeed's handler, same frames

Wall-clock rates on a shared 2-core machine move by 5-10% between runs of the same code,
more than most single changes are worth; ``valgrind --tool=callgrind`` counts executed
instructions instead, which repeat to the instruction for the same code, inputs and hash
seed. The path is figure 1's (``fig_1_kline.engine_run``: a BinanceDataFeed reading
pre-loaded real frames, one a read, validation, scoring, continuity, the ring buffer and
three sync callbacks; no storage). Each side runs twice under callgrind, with ``SMALL``
and ``LARGE`` frames, and the difference divided by ``LARGE - SMALL`` is the cost of one
message without the imports and setup. ``PYTHONHASHSEED=0`` fixes str hashing (dict probe
lengths). Instructions are not seconds (a cache miss costs more than an add), but fewer
instructions on the same path is a change that cannot be noise. Needs valgrind; reads the
captures of ../shared/data (``--data``).

``--peer`` counts cryptofeed's side of figures 1 and 2 the same way (``Binance.message_handler``
with one async callback, ``fig_1_kline.cryptofeed_driver``'s loop, driven with the same
frames read from the same in-memory connection; no engine, no teardown) and prints
lean_data's advantage in instructions: a measure of the same-run wall-clock ratio that does
not move with the machine's load. The engine's count includes what scales with the frames
outside figure 1's timed span (the metrics' latency percentiles sorted at the end, the ring
buffers freed at stop: ~3,500 an aggTrade),
so its ratio is a conservative one.

Not measured here: the storage writer (its thread is serialised by callgrind, which
changes how bars wait for a seed answer) and anything with a socket.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SMALL, LARGE = 2_000, 12_000
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")

_DRIVER = """
import asyncio, sys
tree, event, count, data, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:]
sys.path[:0] = [tree + "/benchmarks", tree]
from pathlib import Path
from _common import Context
import fig_1_kline as f1
build = f1.agg_trade_workload if event == "aggTrade" else f1.kline_workload
workload = build(Context(data=Path(data)), int(size))
asyncio.run(f1.engine_run(workload, workload.frames[:count]))
"""

_PEER_DRIVER = """
import asyncio, sys, time
tree, event, count, data, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:]
sys.path[:0] = [tree + "/benchmarks", tree]
from pathlib import Path
from _common import Context
import fig_1_kline as f1
from cryptofeed.defines import BINANCE, CANDLES, TRADES
from cryptofeed.exchanges import Binance
from cryptofeed.symbols import Symbols
build = f1.agg_trade_workload if event == "aggTrade" else f1.kline_workload
workload = build(Context(data=Path(data)), int(size))
listing = {"symbols": [
    {"symbol": venue, "baseAsset": canonical.split("/")[0],
     "quoteAsset": canonical.split("/")[1], "filters": [{"tickSize": "0.00000001"}]}
    for venue, canonical in workload.symbols.items()
]}
mapping, info = Binance._parse_symbol_data(listing)
Symbols.set(BINANCE, mapping, info)
channel = CANDLES if event == "kline" else TRADES
delivered = 0

async def on_item(item, receipt_timestamp):
    global delivered
    delivered += 1

async def drive(frames):
    feed = Binance(symbols=list(mapping), channels=[channel], callbacks={channel: on_item})
    handler, now = feed.message_handler, time.time
    go = asyncio.Event()
    go.set()
    connection = f1._MemoryConnection(frames, go)  # the engine's stand-in, one frame a read
    take_ready, recv_batch = connection.take_ready, connection.recv_batch
    for _ in range(len(frames)):
        for frame in take_ready() or await recv_batch():
            await handler(frame, None, now())

asyncio.run(drive(workload.frames[:count]))
assert delivered == count, (delivered, count)
"""


def count(tree: Path, event: str, frames: int, data: Path, driver: Path) -> int:
    """Instructions callgrind counts for one run of ``frames`` frames through ``tree``."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, str(driver), str(tree), event, str(frames), str(data), str(LARGE)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode or found is None:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"callgrind run of {tree} ({event}, {frames} frames) failed: {tail}")
    return int(found.group(1))


def per_message(tree: Path, event: str, data: Path, driver: Path) -> float:
    """Instructions of one message: (LARGE run - SMALL run) / (LARGE - SMALL)."""
    large = count(tree, event, LARGE, data, driver)
    return (large - count(tree, event, SMALL, data, driver)) / (LARGE - SMALL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, help="another checkout to count as well")
    parser.add_argument("--events", nargs="*", default=["kline", "aggTrade"])
    parser.add_argument("--peer", action="store_true", help="count cryptofeed's handler too")
    parser.add_argument(
        "--data", type=Path, default=HERE.parent.parent / "shared" / "data",
        help="the real-data corpus (default ../shared/data)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("instructions: error: valgrind is not installed (apt-get install -y valgrind)")
        return 2
    if not (args.data / "cryptofeed").is_dir():
        print(f"instructions: error: {args.data}/cryptofeed is absent; give --data")
        return 2
    trees = {"after": HERE.parent}
    if args.before is not None:
        if not (args.before / "benchmarks" / "fig_1_kline.py").exists():
            print(f"instructions: error: {args.before} is not a lean_data checkout")
            return 2
        trees = {"before": args.before.resolve(), **trees}
    if args.peer and importlib.util.find_spec("cryptofeed") is None:
        print("instructions: error: --peer needs cryptofeed (benchmarks/requirements-peers.txt)")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        driver, peer = Path(tmp) / "driver.py", Path(tmp) / "peer.py"
        driver.write_text(_DRIVER)
        peer.write_text(_PEER_DRIVER)
        for event in args.events:
            counts = {
                side: per_message(tree, event, args.data, driver) for side, tree in trees.items()
            }
            line = "  ".join(f"{side} {value:,.0f}" for side, value in counts.items())
            if "before" in counts:
                line += f"  after/before {counts['after'] / counts['before']:.3f}"
            if args.peer:
                theirs = per_message(HERE.parent, event, args.data, peer)
                ratio = theirs / counts["after"]
                line += f"  cryptofeed {theirs:,.0f}  cryptofeed/after {ratio:.2f}x"
            print(f"{event}: instructions per message: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
