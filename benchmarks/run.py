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
``pip install -r benchmarks/requirements-peers.txt``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
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
    args = parser.parse_args(argv)
    ctx = Context(
        quick=args.quick,
        repeats=1 if args.quick else args.repeats,
        soak_s=args.soak,
        data=args.data.resolve(),
    )
    results: list[Result] = []
    skipped: dict[str, str] = {}
    for name in figures():
        number = name.split("_")[1]
        if args.only is not None and number not in args.only:
            continue
        module = importlib.import_module(name)
        title = getattr(module, "NAME", name)
        print(f"running figure {number}: {title} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            results.extend(module.run(ctx))
        except DataMissing as exc:
            skipped[name] = str(exc)
            print(f"  skipped: {exc}", file=sys.stderr)
        except Exception:  # a broken figure is reported, the others still run
            skipped[name] = traceback.format_exc(limit=3)
            print(f"  FAILED:\n{skipped[name]}", file=sys.stderr)
        print(f"  {time.perf_counter() - started:.1f}s", file=sys.stderr)
    print(table(results))
    for name, why in skipped.items():
        print(f"skipped {name}: {why.strip().splitlines()[-1]}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    to_json(results, skipped, args.json)
    print(f"\nresults written to {args.json}")
    return 1 if any("Traceback" in why for why in skipped.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
