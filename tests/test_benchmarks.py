"""Smoke test of the benchmark suite: every figure runs on a tiny input, none fails.

Runs ``benchmarks/run.py --quick`` twice in subprocesses, at the same time: once on the real
corpus (``../shared/data``) and once with ``--data`` pointing at an empty directory, where
the figures that read the corpus must say they are skipped rather than fail. The figures
are whatever ``benchmarks/fig_<N>_<name>.py`` modules exist. No timing is asserted: quick
numbers mean nothing. Figure 10 also needs PostgreSQL (as the storage tests do, see
``tests/backends.py``); a third run points it at a port where no server listens, where it
must be skipped with one line naming the server, not fail.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()
FIGURE = re.compile(r"\(?(\d+)\b")
TIMEOUT_S = 300

pytestmark = pytest.mark.slow


def figure_modules() -> dict[str, str]:
    """Figure number -> module name, from the files in benchmarks/."""
    return {path.stem.split("_")[1]: path.stem for path in BENCHMARKS.glob("fig_*.py")}


def start(json_path: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    args = [sys.executable, str(BENCHMARKS / "run.py"), "--quick", "--json", str(json_path)]
    return subprocess.Popen(
        [*args, *extra],
        cwd=json_path.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=None if env is None else {**os.environ, **env},
    )


def finish(process: subprocess.Popen[str], json_path: Path) -> dict[str, Any]:
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    assert process.returncode == 0, f"run.py exited {process.returncode}:\n{stdout}\n{stderr}"
    payload: dict[str, Any] = json.loads(json_path.read_text())
    return payload


def numbers_with_results(payload: dict[str, Any]) -> set[str]:
    """The figure numbers that produced at least one result row."""
    found = set()
    for row in payload["results"]:
        match = FIGURE.match(row["figure"])
        assert match, f"a result's figure should start with its number, got {row['figure']!r}"
        found.add(match[1])
    return found


def check_complete(payload: dict[str, Any]) -> None:
    """Every figure module has results or a reason it was skipped, and none failed.

    The modules are those in benchmarks/ when the run started (``payload["modules"]``).
    """
    modules: dict[str, str] = payload["modules"]
    produced = numbers_with_results(payload)
    skipped: dict[str, str] = payload["skipped"]
    failed = {name: why for name, why in skipped.items() if "Traceback" in why}
    assert failed == {}
    for number, module in modules.items():
        assert (number in produced) != (module in skipped), (number, module, skipped)
    now = figure_modules()  # a module may have been added since the run started
    assert produced <= set(now)
    assert set(skipped) <= set(now.values())
    for row in payload["results"]:
        assert isinstance(row["value"], int | float), row
        assert math.isfinite(row["value"]), row
    assert payload["machine"]["python"] == sys.version.split()[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Both quick runs, started together: on the corpus and with the corpus absent.

    Each payload gets ``"modules"``: the figure modules present when the runs started.
    """
    with_data = tmp_path_factory.mktemp("with_data") / "results.json"
    without = tmp_path_factory.mktemp("without_data")
    absent = without / "no-corpus-here"
    modules = figure_modules()
    processes = {
        "with_data": (start(with_data), with_data),
        "without_data": (
            start(without / "results.json", "--data", str(absent)),
            without / "results.json",
        ),
    }
    payloads = {name: finish(process, path) for name, (process, path) in processes.items()}
    for payload in payloads.values():
        payload["modules"] = modules
    return payloads


def test_quick_run_covers_every_figure(runs: dict[str, dict[str, Any]]) -> None:
    payload = runs["with_data"]
    check_complete(payload)
    if SHARED_DATA.is_dir():
        assert {"5", "7", "8", "9", "10"} <= numbers_with_results(payload)
        assert payload["skipped"] == {}


def test_quick_run_without_corpus_skips_instead_of_failing(
    runs: dict[str, dict[str, Any]],
) -> None:
    payload = runs["without_data"]
    check_complete(payload)
    for module, why in payload["skipped"].items():
        assert "no-corpus-here" in why, (module, why)
        assert "absent" in why, (module, why)
    assert {"fig_5_aggregation", "fig_8_history", "fig_10_postgres"} <= set(payload["skipped"])
    assert {"7", "9"} <= numbers_with_results(payload)  # need no corpus


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="figure 10 checks its corpus first")
def test_figure_10_without_postgres_is_skipped_in_one_line(tmp_path: Path) -> None:
    url = f"postgresql://postgres:hunter2@127.0.0.1:{closed_port()}/test"
    json_path = tmp_path / "results.json"
    process = start(json_path, "--only", "10", env={"LEAN_DATA_BENCH_DATABASE_URL": url})
    payload = finish(process, json_path)
    why = payload["skipped"]["fig_10_postgres"]
    assert "Traceback" not in why
    assert len(why.strip().splitlines()) == 1, why
    assert "PostgreSQL" in why, why
    assert "absent" in why, why
    assert "hunter2" not in why  # the URL is named without its password
    assert payload["results"] == []
