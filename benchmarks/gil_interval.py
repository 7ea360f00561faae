"""Figure 4's engine runs at several GIL switch intervals: rows to disk, how long a call
waits for SQLite's worker thread to start it, and a ``to_thread`` round trip with no storage.

A study, not a figure (no target): ``Config.switch_interval_s`` must be shorter than
a busy event loop's turn, or a worker thread (aiosqlite's, ``asyncio.to_thread``'s) waits
for the GIL until the loop runs dry (``lean_data.gil``). This runs figure 1's in-memory path
(``fig_1_kline.engine_run``: real kline frames replicated, one frame a read) without
storage, then with a fresh SQLite file at each interval given, per round, and prints the
medians as ratios to the no-storage rate. "worker start" is the time between the event
loop queueing a call on the store's connection and the worker thread starting it, its mean
and 90th percentile over every call of the interval's runs (read by
wrapping ``aiosqlite.Connection._execute``, this script's only change to the engine's
path; a call queued behind another counts that one's run too). "to_thread" is a run with
no storage at the same interval, beside which a task calls ``asyncio.to_thread`` with a
function that returns at once, every 2 ms: the median and the longest round trip (a
history read, a cache read or a backfill through a blocking client waits like it).

    python benchmarks/gil_interval.py [--intervals 50e-6 5e-6] [--rounds 3] [--uvloop]

Reads the shared data corpus as figure 1 does; says so and exits 2 when it is absent.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosqlite
from _common import Context, DataMissing
from fig_1_kline import FULL_FRAMES, WARMUP_FRAMES, Workload, engine_run, kline_workload

_STARTS: list[float] = []
_execute = aiosqlite.Connection._execute


async def _timed_execute(self: aiosqlite.Connection, fn: Callable[..., Any], *args: Any) -> Any:
    queued = time.perf_counter()

    def started(*inner: Any) -> Any:
        _STARTS.append(time.perf_counter() - queued)
        return fn(*inner)

    return await _execute(self, started, *args)


async def _measure(frames: int, rounds: int, intervals: list[float]) -> None:
    workload = kline_workload(Context(), frames)
    folder = Path(tempfile.mkdtemp(prefix="lean_data_gil_"))
    await engine_run(workload, workload.frames[:WARMUP_FRAMES])
    await engine_run(workload, workload.frames[:WARMUP_FRAMES], db_path=folder / "warm.db")
    plain: list[float] = []
    stored: dict[float, list[tuple[float, float]]] = {i: [] for i in intervals}
    starts: dict[float, list[float]] = {i: [] for i in intervals}
    trips: dict[float, list[float]] = {i: [] for i in intervals}
    for n in range(rounds):
        plain.append((await engine_run(workload)).rate)
        for interval in intervals:
            _STARTS.clear()
            run = await engine_run(
                workload, db_path=folder / f"{n}-{interval}.db", switch_interval_s=interval,
            )  # fmt: skip
            assert run.rows is not None
            assert run.stored_seconds is not None
            starts[interval] += _STARTS
            stored[interval].append((run.rate, run.rows / run.stored_seconds))
            trips[interval] += await _round_trips(workload, interval)
    base = statistics.median(plain)
    print(f"no storage: {base:,.0f} msg/s (median of {rounds})")
    for interval, runs in stored.items():
        delivered = statistics.median(r[0] for r in runs)
        to_disk = statistics.median(r[1] for r in runs)
        waits = sorted(starts[interval]) or [0.0]
        mean_ms, p90_ms = statistics.fmean(waits) * 1e3, waits[len(waits) * 9 // 10] * 1e3
        each = ", ".join(f"{r[1] / base:.2f}" for r in runs)
        trip = sorted(trips[interval]) or [0.0]
        print(
            f"interval {interval * 1e6:6.1f} us: delivered {delivered / base:.2f}x, "
            f"rows to disk {to_disk / base:.2f}x ({each}); worker start: mean {mean_ms:.2f} ms, "
            f"p90 {p90_ms:.2f} ms; to_thread: median {trip[len(trip) // 2] * 1e3:.2f} ms, "
            f"max {trip[-1] * 1e3:.1f} ms ({len(trip)} calls)"
        )


async def _round_trips(workload: Workload, interval: float) -> list[float]:
    """``to_thread`` round trips, one every 2 ms, during a run without storage."""
    trips: list[float] = []
    running = True

    async def probe() -> None:
        while running:
            sent = time.perf_counter()
            await asyncio.to_thread(time.perf_counter)
            trips.append(time.perf_counter() - sent)
            await asyncio.sleep(0.002)

    prober = asyncio.create_task(probe())
    try:
        await engine_run(workload, switch_interval_s=interval)
    finally:
        running = False
        await prober
    return trips


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=FULL_FRAMES)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--intervals", type=float, nargs="+", default=[5e-3, 50e-6, 5e-6])
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop's loop")
    args = parser.parse_args()
    aiosqlite.Connection._execute = _timed_execute  # type: ignore[method-assign]
    measure = _measure(args.frames, args.rounds, args.intervals)
    try:
        if args.uvloop:
            import uvloop

            uvloop.run(measure)
        else:
            asyncio.run(measure)
    except DataMissing as exc:
        print(f"gil_interval.py: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
