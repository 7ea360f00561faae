"""Figure 9: ``lean-data demo`` wall time.

Each sample runs the ``lean-data demo --no-progress --output <new temp dir>`` command (the
console script next to the interpreter running the suite; ``python -c "from lean_data.cli
import main; ..."`` when the package is not installed there) in a subprocess with
``PYTHONPATH`` set to this checkout, and measures its wall time from start to exit: start-up,
import, replaying the bundled real data through the whole pipeline (validate, score, buffer,
callbacks, cache, SQLite), the report. Median of 3 after an excluded warm-up run (one run,
no warm-up, with ``--quick``). The demo's output is checked (exit 0, "Replayed N real messages").

Baseline, same run: the wall time of ``python -c "import lean_data"`` (median of 3).
No peer has an equivalent command.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, Context, Result

NAME = "lean-data demo wall time"

_TARGET_S = 20.0
_REPLAYED = re.compile(r"Replayed ([\d,]+) real messages in ([\d.]+) s")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(ROOT) if not path else f"{ROOT}{os.pathsep}{path}"
    return env


def demo_command() -> tuple[list[str], str]:
    """The command that runs ``lean-data``, and how it was found."""
    script = Path(sys.executable).with_name("lean-data")
    if script.is_file():
        return [str(script)], str(script)
    code = "import sys; from lean_data.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code], "python -c 'lean_data.cli.main()'"


def _run(args: list[str], cwd: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"{args!r} exited {done.returncode}, expected 0; stderr: {done.stderr[-2000:]}"
        )
    return elapsed, done.stdout


def time_demo(
    runs: int, cwd: str, warm_up: bool = True
) -> tuple[list[float], list[tuple[int, float]]]:
    """Wall seconds of ``runs`` demos (after a warm-up) and each one's own replay figures."""
    command, _ = demo_command()
    walls, replays = [], []
    for index in range(runs + warm_up):
        output = tempfile.mkdtemp(prefix="demo_", dir=cwd)
        elapsed, stdout = _run([*command, "demo", "--no-progress", "--output", output], cwd)
        found = _REPLAYED.search(stdout)
        if found is None:
            raise RuntimeError(f"the demo printed no 'Replayed N real messages': {stdout[:500]!r}")
        if index >= warm_up:
            walls.append(elapsed)
            replays.append((int(found[1].replace(",", "")), float(found[2])))
    return walls, replays


def run(ctx: Context) -> list[Result]:
    """Measure figure 9 (see the module docstring).

    Raises:
        RuntimeError: the demo or the baseline failed.
    """
    runs = ctx.scale(3, 1)
    with tempfile.TemporaryDirectory(prefix="lean_data_fig9_") as cwd:
        walls, replays = time_demo(runs, cwd, warm_up=not ctx.quick)
        if not ctx.quick:
            _run([sys.executable, "-c", "import lean_data"], cwd)  # warm-up
        base = [_run([sys.executable, "-c", "import lean_data"], cwd)[0] for _ in range(runs)]
    wall = statistics.median(walls)
    messages, replay_s = replays[0]
    return [
        Result(
            figure="9 lean-data demo",
            metric="wall s",
            value=wall,
            baseline="python -c 'import lean_data'",
            baseline_value=statistics.median(base),
            higher_is_better=False,
            target="<= 20 s",
            met=None if ctx.quick else wall <= _TARGET_S,
            notes=(
                f"median of {runs}{'' if ctx.quick else ' after a warm-up'}; the demo "
                f"replays {messages:,} real messages (its own replay clock: {replay_s:.2f} s)"
            ),
            extra={
                "command": demo_command()[1],
                "wall_s": [round(w, 3) for w in walls],
                "replay": [{"messages": m, "seconds": s} for m, s in replays],
                "import_wall_s": [round(b, 3) for b in base],
            },
        )
    ]
