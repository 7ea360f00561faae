"""A process whose disk fills up while it stores real ticks, for the storage failure test.

Run as ``python -m tests.storage_full_child DB LIMIT_BYTES N_TICKS``: starts an engine on
DB, then lowers RLIMIT_FSIZE to LIMIT_BYTES (SIGXFSZ ignored, so a write past it fails
with EFBIG, which SQLite reports as "database or disk is full") and replays N_TICKS real
SPY ticks. Prints ``hook <kind> <rows_lost>`` from the storage-failure hook,
``degraded <bool>`` from get_metrics() after the replay, then either
``stop_raised <kind> <rows_lost> <state>`` and the message (exit code 3) or ``stop_ok``
(exit code 0).
"""

from __future__ import annotations

import asyncio
import itertools
import resource
import signal
import sys

from lean_data import Config, DataEngine
from lean_data.errors import StorageFailedError
from lean_data.loaders import iter_file
from lean_data.models import Tick
from lean_data.storage.sqlite import StorageFailure
from tests.conftest import FIXTURES
from tests.helpers import ListFeed

SPY_TICKS = FIXTURES / "lean/equity/usa/tick/spy/20131010_trade.zip"
STORAGE_FAILED = 3


async def main(db: str, limit: int, count: int) -> int:
    ticks = [t for t in itertools.islice(iter_file(SPY_TICKS), count) if isinstance(t, Tick)]
    feed = ListFeed("lean", {"SPY": ticks})
    engine = DataEngine(Config(db_path=db, cache_dir=None, metrics_interval_s=0))
    engine.add_feed(feed)

    def hook(failure: StorageFailure) -> None:
        print(f"hook {failure.kind} {failure.rows_lost}", flush=True)

    engine.on_storage_failed(hook)
    await engine.start()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    await engine.subscribe_symbol("SPY")
    await feed.wait_pumped()
    await engine.wait_idle()
    assert engine.persistence is not None
    await engine.persistence._barrier(strict=False)  # every tick handled by the writer
    print(f"degraded {engine.get_metrics()['engine']['degraded']}", flush=True)
    try:
        await engine.stop()
    except StorageFailedError as exc:
        print(f"stop_raised {exc.kind} {exc.rows_lost} {engine.state.value}", flush=True)
        print(exc, flush=True)
        return STORAGE_FAILED
    print("stop_ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
