"""Run the benchmark suite and print one table; write the results as JSON.

    python benchmarks/run.py                 # every figure, full size (several minutes)
    python benchmarks/run.py --quick         # tiny inputs: checks every figure runs
    python benchmarks/run.py --only 1 3      # some figures
    python benchmarks/run.py --json out.json # where to write the results (default
                                             # benchmarks/results/latest.json)
    python benchmarks/run.py --data DIR      # the real-data corpus (default ../shared/data);
                                             # figures whose files are absent are skipped

Figures live in ``benchmarks/fig_*.py``; each compares itself with a baseline measured in
the same run (and with peers, cryptofeed and nautilus_trader, when they are installed:
``pip install -r benchmarks/requirements-peers.txt``). Each figure runs in a fresh child
interpreter, so none inherits what an earlier one left in the process: nautilus_trader's
runtime threads (alive after figure 3, they lowered figure 4's rows to disk from 0.75-0.78x
to 0.65-0.73x of figure 1 in the same process), an event loop policy, a grown heap.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import SHARED_DATA, Context, DataMissing, Result, table, to_json

HERE = Path(__file__).resolve().parent


def figures() -> list[str]:
    """The figure modules, in order of their number."""
    return sorted((p.stem for p in HERE.glob("fig_*.py")), key=lambda s: int(s.split("_")[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny inputs (smoke test)")
    parser.add_argument("--only", nargs="*", default=None, help="figure numbers to run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--soak", type=float, default=600.0, help="soak seconds (figure 6)")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="real-data corpus")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # run one figure, write its results
    args = parser.parse_args(argv)
    ctx = Context(
        quick=args.quick,
        repeats=1 if args.quick else args.repeats,
        soak_s=args.soak,
        data=args.data.resolve(),
    )
    if args.child is not None:
        return run_child(args.child, ctx, args.json)
    results: list[Result] = []
    skipped: dict[str, str] = {}
    for name in figures():
        number = name.split("_")[1]
        if args.only is not None and number not in args.only:
            continue
        title = getattr(importlib.import_module(name), "NAME", name)
        print(f"running figure {number}: {title} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        found, why = run_in_child(name, ctx)
        results.extend(found)
        if why is not None:
            skipped[name] = why
        print(f"  {time.perf_counter() - started:.1f}s", file=sys.stderr)
    print(table(results))
    for name, why in skipped.items():
        print(f"skipped {name}: {why.strip().splitlines()[-1]}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    to_json(results, skipped, args.json)
    print(f"\nresults written to {args.json}")
    return 1 if any("Traceback" in why for why in skipped.values()) else 0


def run_child(name: str, ctx: Context, out: Path) -> int:
    """Run figure ``name`` in this (child) interpreter and write its results to ``out``:
    ``{"results": [...], "skipped": why or null}``."""
    why: str | None = None
    results: list[Result] = []
    try:
        results = importlib.import_module(name).run(ctx)
    except DataMissing as exc:
        why = str(exc)
        print(f"  skipped: {exc}", file=sys.stderr)
    except Exception:  # a broken figure is reported, the others still run
        why = traceback.format_exc(limit=3)
        print(f"  FAILED:\n{why}", file=sys.stderr)
    rows = [dataclasses.asdict(result) for result in results]
    out.write_text(json.dumps({"results": rows, "skipped": why}))
    return 0


def run_in_child(name: str, ctx: Context) -> tuple[list[Result], str | None]:
    """Run figure ``name`` in a fresh interpreter; its results, and why it was skipped (or
    None). A child that dies without writing them is a failed figure, with its exit code."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        command = [
            sys.executable, str(HERE / "run.py"), "--child", name, "--json", str(out),
            "--repeats", str(ctx.repeats), "--soak", str(ctx.soak_s), "--data", str(ctx.data),
        ]  # fmt: skip
        if ctx.quick:
            command.append("--quick")
        done = subprocess.run(command, check=False)
        if not out.exists():
            return [], f"Traceback: the figure's interpreter exited with {done.returncode}"
        payload = json.loads(out.read_text())
    results = [Result(**row) for row in payload["results"]]
    return results, payload["skipped"]


if __name__ == "__main__":
    sys.exit(main())
