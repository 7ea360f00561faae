"""Figure 7: ``import lean_data`` time in fresh interpreters.

Each sample is a new ``python`` process (the interpreter running the suite) started in an
empty temporary directory with ``PYTHONPATH`` set to this checkout, so the checkout's
``lean_data`` is the one imported. The figure is ``time.perf_counter()`` around the import
inside the child (interpreter start-up excluded), median of 15 samples after an excluded
warm-up run, which also writes any missing ``.pyc`` (one sample, no warm-up, with ``--quick``).

Baselines, measured the same way in the same run: ``import asyncio`` (which lean_data needs
anyway), and the wall time of ``python -c pass`` against ``python -c "import lean_data"``.
What ``import lean_data`` leaves for first use (the SQLite store and aiosqlite, the order
books, the disk cache tier, the streaming base class) is shown too, in a row with no
target: the import of everything an engine with the default config (SQLite storage) loads
by its first start.
Peers: ``import cryptofeed`` and ``from nautilus_trader.live.data_engine import
LiveDataEngine`` when they are installed.

``extra`` lists the top import costs from ``python -X importtime -c "import lean_data"``
(median over a few runs): by self time (the module's own top-level code) and, for
lean_data's modules, by cumulative time (the module and everything it pulled in first).
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from typing import Any

from _common import ROOT, Context, Result

NAME = "import lean_data"

_TARGET_MS = 100.0
_ENGINE_STMT = (
    "import lean_data; import lean_data.storage.sqlite; "
    "import lean_data.feeds.streaming; lean_data.DataEngine()"
)
_TIMED = "import time; t = time.perf_counter(); {stmt}; print((time.perf_counter() - t) * 1000)"
_PEERS = {
    "cryptofeed": ("cryptofeed", "import cryptofeed"),
    "nautilus_trader": (
        "nautilus_trader",
        "from nautilus_trader.live.data_engine import LiveDataEngine",
    ),
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(ROOT) if not path else f"{ROOT}{os.pathsep}{path}"
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _child(args: list[str], cwd: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{args!r} exited {done.returncode}, expected 0; stderr: {done.stderr[-2000:]}"
        )
    return done


def import_ms(stmt: str, runs: int, cwd: str, warm_up: bool = True) -> float:
    """Median milliseconds of ``stmt`` timed inside ``runs`` fresh interpreters."""
    code = _TIMED.format(stmt=stmt)
    if warm_up:  # .pyc files, OS caches
        _child(["-c", code], cwd)
    return statistics.median(float(_child(["-c", code], cwd).stdout) for _ in range(runs))


def wall_ms(code: str, runs: int, cwd: str, warm_up: bool = True) -> float:
    """Median wall milliseconds of ``python -c code`` over ``runs`` processes."""
    if warm_up:
        _child(["-c", code], cwd)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        _child(["-c", code], cwd)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def import_profile(runs: int, cwd: str) -> dict[str, dict[str, float]]:
    """Module -> median ``self``/``cumulative`` microseconds from ``-X importtime``."""
    samples: dict[str, dict[str, list[int]]] = defaultdict(lambda: {"self": [], "cum": []})
    for _ in range(runs):
        done = _child(["-X", "importtime", "-c", "import lean_data"], cwd)
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, cum_us, name = line[len("import time:") :].split("|")
            entry = samples[name.strip()]
            entry["self"].append(int(self_us))
            entry["cum"].append(int(cum_us))
    return {
        name: {"self": statistics.median(v["self"]), "cum": statistics.median(v["cum"])}
        for name, v in samples.items()
    }


def _top(profile: dict[str, dict[str, float]], key: str, only_ours: bool) -> list[list[Any]]:
    names = [n for n in profile if not only_ours or n.startswith("lean_data.")]
    names.sort(key=lambda n: profile[n][key], reverse=True)
    return [[n, round(profile[n][key] / 1000, 2)] for n in names[:5]]


def run(ctx: Context) -> list[Result]:
    """Measure figure 7 (see the module docstring).

    Raises:
        RuntimeError: a child interpreter failed.
    """
    runs = ctx.scale(15, 1)
    warm = not ctx.quick
    with tempfile.TemporaryDirectory(prefix="lean_data_fig7_") as cwd:
        ours = import_ms("import lean_data", runs, cwd, warm)
        asyncio_ms = import_ms("import asyncio", runs, cwd, warm)
        engine_ms = import_ms(_ENGINE_STMT, runs, cwd, warm)
        wall_pass = wall_ms("pass", runs, cwd, warm)
        wall_ours = wall_ms("import lean_data", runs, cwd, warm)
        profile = import_profile(ctx.scale(5, 1), cwd)
        heavy = _heavy_modules(cwd)
        peers = {
            name: import_ms(stmt, runs, cwd, warm)
            for name, (module, stmt) in _PEERS.items()
            if importlib.util.find_spec(module) is not None
        }
    absent = [name for name in _PEERS if name not in peers]
    extra = {
        "runs": runs,
        "top_self_ms": _top(profile, "self", only_ours=False),
        "top_lean_data_cumulative_ms": _top(profile, "cum", only_ours=True),
        "importtime_total_ms": round(profile.get("lean_data", {"cum": 0.0})["cum"] / 1000, 2),
        "third_party_loaded": heavy,
        "peers_ms": peers,
    }
    note = f"median of {runs} fresh interpreters, start-up excluded"
    if absent:
        note += f"; peers absent: {', '.join(absent)}"
    results = [
        _ms_row(
            "7 import lean_data",
            ours,
            "import asyncio",
            asyncio_ms,
            notes=note,
            extra=extra,
            target="<= 100 ms",
            met=None if ctx.quick else ours <= _TARGET_MS,
        ),
        _ms_row(
            "7 import lean_data + what a first engine loads",
            engine_ms,
            "import asyncio",
            asyncio_ms,
            notes="the SQLite store, the books and the streaming feeds "
            "imported, DataEngine() built",
        ),
        _ms_row(
            "7 python -c 'import lean_data' wall",
            wall_ours,
            "python -c pass",
            wall_pass,
            notes=f"whole process, median of {runs}",
        ),
    ]
    results.extend(
        _ms_row(
            f"7 import lean_data vs {name}",
            ours,
            _PEERS[name][1],
            value,
            notes="peer import measured the same way",
        )
        for name, value in peers.items()
    )
    return results


def _ms_row(
    figure: str, value: float, baseline: str, baseline_value: float, **fields: Any
) -> Result:
    """A row of milliseconds against a baseline measured the same way (lower is better)."""
    return Result(figure=figure, metric="ms", value=value, baseline=baseline,
                  baseline_value=baseline_value, higher_is_better=False, **fields)  # fmt: skip


def _heavy_modules(cwd: str) -> list[str]:
    """Top-level packages ``import lean_data`` loads that are not in the standard library."""
    code = (
        "import sys; before = set(sys.modules); import lean_data; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "print(' '.join(sorted(n for n in new - set(sys.stdlib_module_names) "
        "if not n.startswith('_') and n != 'lean_data')))"
    )
    return _child(["-c", code], cwd).stdout.split()
