"""Let the engine's worker threads have the GIL while the event loop is busy.

The engine reaches some things through threads: SQLite (aiosqlite's worker, every call
into SQLite gives the GIL up and must take it back), and ``asyncio.to_thread`` for history
reads, the disk cache, backfill through alpaca-py's blocking client, the trading calendar.
CPython hands the GIL to a waiting thread when the holder has kept it for a whole switch
interval (5 ms by default) *without letting it go*; but a busy asyncio loop lets it go on
every turn (its ``select`` with a zero timeout) and takes it straight back, and each of
those releases restarts the waiting thread's timer. So under load a thread waits until the
loop runs dry: measured with a flood of kline frames, a one-row SELECT for a restart seed
took ~380 ms instead of ~1 ms, every batch of rows stalled like it (the storage queue then
fills and holds the pipeline back), and with no storage at all a ``to_thread`` call that
does nothing took up to ~600 ms.

A switch interval shorter than a loop turn (:data:`INTERVAL_S`) lets the waiting thread's
timer run out, so it asks for the GIL and gets it. A turn gets shorter as the engine gets
faster: with the compiled package a busy turn is a few tens of microseconds, so the
interval is a few microseconds. Only a thread that waits for the GIL makes the holder give
it up; with none waiting a short interval costs nothing.

One owner: a running :class:`~lean_data.DataEngine` (``Config.switch_interval_s``, from
``start()`` to ``stop()``), or a :class:`~lean_data.storage.sqlite.DataPersistence` used on
its own (while open). :func:`share` keeps the interpreter's interval at most the given one
while at least one holder is in; when the last one leaves, :func:`unshare` puts back the
interval it found, unless someone changed it meanwhile. ``Config(switch_interval_s=None)``
leaves the interpreter alone.
"""

from __future__ import annotations

import sys
import threading

__all__ = ["INTERVAL_S", "share", "unshare"]

INTERVAL_S = 0.000001
"""1 µs, the shortest CPython keeps (it counts the interval in whole microseconds): shorter
than a busy loop's turn. 200 µs was not (figure 4's rows to disk 0.53-0.55x of figure 1
then); 50 µs was, until the compiled engine's turns got shorter: a 4,000-row batch then
waited ~10 ms for the worker to start, the writer fell behind and the queue filled (rows to
disk 0.52-0.54x; 0.77-0.79x at 5 µs, on asyncio's loop and on uvloop;
``benchmarks/results/2026-12-06-gil-interval-session14.txt``). 5 µs was, until the turns
with one frame a read got shorter than that: rows to disk 0.74x at 5 µs, 0.77x at 1 µs
(uvloop: 0.71x, 0.78x), the worker's start 0.26 -> 0.20 ms (mean) and a ``to_thread`` round
trip 1.98 -> 0.58 ms (median;
``benchmarks/results/2026-12-07-gil-interval-session18.txt``). Two CPU-bound threads lose
no more to switching at 1 µs than at 5 µs (both ~5% more than at 5 ms)."""

_lock = threading.Lock()
_holders = 0
_found: float | None = None  # the interval before the first share(), if it was lowered
_set: float | None = None  # the interval share() set


def share(interval_s: float = INTERVAL_S) -> None:
    """Keep the switch interval at most ``interval_s`` until the matching :func:`unshare`."""
    global _holders, _found, _set
    with _lock:
        current = sys.getswitchinterval()
        if current > interval_s:  # a later holder may ask for a shorter one than the first
            sys.setswitchinterval(interval_s)
            if _found is None:
                _found = current
            _set = sys.getswitchinterval()
        _holders += 1


def unshare() -> None:
    """Undo one :func:`share`; the last one restores the interval found, if still ours."""
    global _holders, _found, _set
    with _lock:
        if _holders == 0:
            return
        _holders -= 1
        if _holders == 0:
            if _found is not None and sys.getswitchinterval() == _set:
                sys.setswitchinterval(_found)
            _found = _set = None
