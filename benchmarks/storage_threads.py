"""Figure 4's engine runs, with and without SQLite storage: CPU time per message by thread.

A study, not a figure (no target): figure 4 asks why rows reaching disk stay below 0.70x
of figure 1. This runs figure 1's in-memory path (``fig_1_kline.engine_run``, real kline
frames replicated, one frame a read) alternately without storage and with a fresh SQLite
file, and reads every thread's user+system CPU time from ``/proc/self/task`` (Linux only):
the event loop's thread, and the others (the storage writer's thread, plus this script's
sampler, ~0.3 µs a message). A sampler thread reads them every 20 ms, since a thread's
counters vanish when it ends at ``stop()``. Each line also gives the wall time a message
(release to last callback) and how often the loop's thread gave up the CPU of its own
accord (``voluntary_ctxt_switches``: a wait for the GIL another thread holds, or in the
selector with nothing to do); CPU a message below wall time a message is such waiting.

    python benchmarks/storage_threads.py [--frames 200000] [--rounds 2]
    taskset -c 0 python benchmarks/storage_threads.py    # every thread on one core

Reads the shared data corpus as figure 1 does; says so and exits 2 when it is absent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
from pathlib import Path

from _common import Context, DataMissing
from fig_1_kline import FULL_FRAMES, WARMUP_FRAMES, engine_run, kline_workload

_SEEN: dict[int, float] = {}
_DONE = threading.Event()


def _cpu_by_thread() -> dict[int, float]:
    """Thread id -> CPU seconds (user + system) so far, for this process's live threads."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # ended between listdir and open
            continue
        found[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return found


def _switches(tid: int) -> int:
    """Voluntary context switches of thread ``tid`` so far: each a wait off the CPU (for
    the GIL, or in the selector)."""
    with open(f"/proc/self/task/{tid}/status") as status:
        for line in status:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split(":")[1])
    return 0


def _sample() -> None:
    while not _DONE.wait(0.02):
        _SEEN.update(_cpu_by_thread())


async def _measure(frames: int, rounds: int) -> None:
    workload = kline_workload(Context(), frames)
    folder = Path(tempfile.mkdtemp(prefix="lean_data_threads_"))
    loop_thread = threading.get_native_id()
    await engine_run(workload, workload.frames[:WARMUP_FRAMES])
    await engine_run(workload, workload.frames[:WARMUP_FRAMES], db_path=folder / "warm.db")
    for n in range(rounds):
        for db_path in (None, folder / f"run-{n}.db"):
            _SEEN.clear()
            before = _cpu_by_thread()
            switched = _switches(loop_thread)
            run = await engine_run(workload, db_path=db_path)
            switched = _switches(loop_thread) - switched
            after = {**_SEEN, **_cpu_by_thread()}
            spent = {tid: cpu - before.get(tid, 0.0) for tid, cpu in after.items()}
            loop_us = spent.pop(loop_thread, 0.0) / run.messages * 1e6
            other_us = sum(spent.values()) / run.messages * 1e6
            disk = ""
            if run.rows is not None and run.stored_seconds:
                disk = f", rows to disk {run.rows / run.stored_seconds:,.0f}/s"
            print(
                f"{'SQLite    ' if db_path else 'no storage'}: {run.rate:,.0f} msg/s{disk}; "
                f"CPU per message: event loop {loop_us:.2f} us, other threads {other_us:.2f} us; "
                f"wall {1e6 / run.rate:.2f} us; the loop's thread waited off the CPU "
                f"{switched:,} times"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=FULL_FRAMES)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not Path("/proc/self/task").is_dir():
        print("storage_threads.py: needs Linux's /proc/self/task", file=sys.stderr)
        return 2
    sampler = threading.Thread(target=_sample, daemon=True)
    sampler.start()
    try:
        asyncio.run(_measure(args.frames, args.rounds))
    except DataMissing as exc:
        print(f"storage_threads.py: {exc}", file=sys.stderr)
        return 2
    finally:
        _DONE.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
