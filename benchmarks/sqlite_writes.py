"""Figure 4's rows written to SQLite alone, one thread: what each way of writing costs.

A study, not a figure (no target): figure 4 asks how fast the engine's rows reach disk;
this takes SQLite's side of it apart. The rows are figure 4's (``fig_4_persistence._rows``:
real kline frames replicated, 7 series interleaved, the engine's own row builder, schema,
pragmas and upsert), stored under their ``bar_series`` ids, each variant on a fresh file
in transactions of 1,000 or 4,000 rows:

- ``sqlite3``: ``executemany`` of the one-row upsert (sqlite3 binds, the GIL held);
- ``multi``: sqlite3's execute of one multi-row upsert per transaction (up to 2,048 rows a
  statement: the SQLite sink's path when sqlite3 binds);
- ``C``: ``lean_data._sqlite_rows.write`` (32-row statements, bound without the GIL), the
  path the SQLite sink takes in the compiled build;

each with ``temp_store`` at SQLite's default (a statement journal past 64 KiB goes to a
temporary file) and at ``MEMORY`` (what the store sets). It prints µs a row and the write
system calls a row (``syscw`` of ``/proc/self/io``, Linux).

    python benchmarks/sqlite_writes.py [--frames 200000] [--rounds 2]

Reads the shared data corpus as figure 1 does; says so and exits 2 when it is absent.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fig_4_persistence as fig4
from _common import Context, DataMissing
from fig_1_kline import FULL_FRAMES, kline_workload

from lean_data.storage import schema as sch

BLOCK_ROWS = 32


def _write_calls() -> int:
    with open("/proc/self/io") as io:
        for line in io:
            if line.startswith("syscw:"):
                return int(line.split()[1])
    return 0


def _flat(chunk: Sequence[sch.Row]) -> list[Any]:
    return [int(v) if type(v) is bool else v for row in chunk for v in row]


def _measure(rows: list[sch.Row], ids: dict[Any, int], way: str, txn: int, memory: bool) -> str:
    from lean_data._sqlite_rows import write

    folder = Path(tempfile.mkdtemp(prefix="lean_data_sqlite_writes_"))
    connection = sqlite3.connect(folder / "rows.db")
    pragmas = [*fig4._PRAGMAS, *(["PRAGMA temp_store=MEMORY"] if memory else [])]
    for statement in (*pragmas, *sch.DDL):
        connection.execute(statement)
    connection.executemany(fig4._ADD_SERIES, [(n, *key) for key, n in ids.items()])
    connection.commit()
    stored = fig4._stored(rows, ids)
    chunks = [stored[i : i + txn] for i in range(0, len(stored), txn)]
    flats = [_flat(chunk) for chunk in chunks] if way == "multi" else []
    one, block = sch.WRITE_SQL[sch.BARS], sch.write_sql(sch.BARS, BLOCK_ROWS)
    columns = len(stored[0])
    calls = _write_calls()
    started = time.perf_counter()
    for n, chunk in enumerate(chunks):
        if way == "C":
            if not write(connection, list(chunk), None, block, BLOCK_ROWS, one):
                raise RuntimeError("lean_data._sqlite_rows declined figure 4's rows")
        elif way == "multi":
            per = 2048 * columns
            for start in range(0, len(flats[n]), per):
                part = flats[n][start : start + per]
                connection.execute(sch.write_sql(sch.BARS, len(part) // columns), part)
        else:
            connection.executemany(one, chunk)
        connection.commit()
    seconds = time.perf_counter() - started
    calls = _write_calls() - calls
    (count,) = connection.execute("SELECT COUNT(*) FROM bar_rows").fetchone()
    connection.close()
    if count != len(rows):
        raise RuntimeError(f"{way} stored {count} rows of {len(rows)}")
    store = "MEMORY" if memory else "default"
    return (
        f"{way:8} txn {txn:5,}  temp_store {store:8}  {seconds / len(rows) * 1e6:5.2f} us a row  "
        f"{calls / len(rows):5.2f} write calls a row"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=FULL_FRAMES)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    try:
        import lean_data._sqlite_rows  # noqa: F401
    except ImportError:
        print("sqlite_writes.py: needs the compiled build with lean_data._sqlite_rows")
        return 2
    try:
        workload = kline_workload(Context(), args.frames)
    except DataMissing as exc:
        print(f"sqlite_writes.py: {exc}", file=sys.stderr)
        return 2
    rows = fig4._rows(workload)
    ids = fig4._series_ids(rows)
    for _ in range(args.rounds):
        for memory in (False, True):
            for way in ("sqlite3", "multi", "C"):
                for txn in (1_000, 4_000):
                    print(_measure(rows, ids, way, txn, memory), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
