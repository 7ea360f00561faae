"""Compare two checkouts of lean_data on the same figures, in the same run.

    git worktree add --detach ../before <rev>
    python benchmarks/compare.py ../before --only 1 2 3 4 --rounds 3

Runs ``benchmarks/run.py`` of each checkout in turn (before, after, before, after, ...), each
in a fresh interpreter importing that checkout's ``lean_data``, so both see the same machine
load; then prints, for every figure and metric, the median of each side and after/before
(>1 is better for throughput; for latency-like metrics the ratio is inverted so that >1 is
better too). For a row measured against a peer (cryptofeed, nautilus_trader), a second line
gives each side's ratio to the peer measured in the same run, the median over the rounds:
the figure's own target ratio, with the machine's drift between minutes cancelled.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _run(
    tree: Path, only: list[str], quick: bool, repeats: int, data: Path, out: Path
) -> dict[tuple[str, str], dict]:
    command = [sys.executable, str(tree / "benchmarks" / "run.py"), "--json", str(out)]
    command += ["--data", str(data)]
    command += ["--only", *only, "--repeats", str(repeats)]
    if quick:
        command.append("--quick")
    subprocess.run(command, cwd=tree, check=True, stdout=subprocess.DEVNULL)
    rows = json.loads(out.read_text())["results"]
    keyed: dict[tuple[str, str], dict] = {}
    for row in rows:  # the first row of a figure and metric: the one against the peer
        keyed.setdefault((row["figure"], row["metric"]), row)
    return keyed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path, help="the other checkout (e.g. previous main)")
    parser.add_argument("--only", nargs="*", default=["1", "2", "3", "4"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1, help="samples per figure per run")
    parser.add_argument("--quick", action="store_true", help="tiny inputs (smoke test)")
    parser.add_argument(
        "--data", type=Path, default=HERE.parent.parent / "shared" / "data",
        help="the real-data corpus, the same for both sides (default ../shared/data)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    before, after = args.before.resolve(), HERE.parent
    if not (before / "benchmarks" / "run.py").exists():
        print(f"compare: error: {before} has no benchmarks/run.py; give a lean_data checkout")
        return 2
    runs: dict[str, list[dict[tuple[str, str], dict]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for side, tree in (("before", before), ("after", after)):
                print(f"round {round_ + 1}/{args.rounds}: {side} ...", file=sys.stderr)
                out = Path(tmp) / f"{side}-{round_}.json"
                runs[side].append(
                    _run(tree, args.only, args.quick, args.repeats, args.data.resolve(), out)
                )
    keys = [k for k in runs["after"][0] if all(k in r for r in runs["before"] + runs["after"])]
    print(f"{'figure':40} {'metric':28} {'before':>12} {'after':>12} {'after/before':>13}")
    for key in keys:
        old = statistics.median(r[key]["value"] for r in runs["before"])
        new = statistics.median(r[key]["value"] for r in runs["after"])
        higher = runs["after"][0][key].get("higher_is_better", True)
        ratio = (new / old if higher else old / new) if old and new else float("nan")
        print(f"{key[0][:40]:40} {key[1][:28]:28} {old:12.4g} {new:12.4g} {ratio:12.2f}x")
        peer = _peer_ratios(runs, key)
        if peer is not None:
            label = f"same-run ratio vs {peer[0]}"
            print(f"{'':40} {label:41.41} {peer[1]:11.2f}x {peer[2]:12.2f}x")
    return 0


def _peer_ratios(
    runs: dict[str, list[dict[tuple[str, str], dict]]], key: tuple[str, str]
) -> tuple[str, float, float] | None:
    """The median over rounds of each side's same-run ratio to the figure's peer
    (cryptofeed, nautilus_trader), when the row has one; None otherwise."""
    first = runs["after"][0][key]
    name = str(first.get("baseline") or "")
    if not name.startswith(("cryptofeed", "nautilus")):
        return None
    medians = []
    for side in ("before", "after"):
        ratios = [r[key].get("ratio") for r in runs[side]]
        if any(not isinstance(x, int | float) for x in ratios):
            return None
        medians.append(statistics.median(ratios))
    return name.split(" (")[0], medians[0], medians[1]


if __name__ == "__main__":
    raise SystemExit(main())
