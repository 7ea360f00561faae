"""Shared pieces of the benchmark suite: results, timing, data location, output.

A figure module (``benchmarks/fig_*.py``) exposes ``NAME`` (a short title) and
``run(ctx: Context) -> list[Result]``. Each result carries its own baseline measured in the
same process run, so the ratio compares like with like on whatever machine runs it.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lean_data import DataFeed
from lean_data.models import AssetClass, MarketData

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()
"""The real-data corpus the large workloads read (../shared/data next to the repository)."""


@dataclass
class Result:
    """One figure: a measured value and the baseline it is compared with.

    Attributes:
        figure: the figure's number and name ("1 kline frames -> engine").
        metric: what was measured ("msg/s", "p99 latency us", "peak RSS MiB", ...).
        value: the measurement.
        baseline: what it is compared with, measured in the same run ("" when none).
        baseline_value: the baseline's measurement (None when none).
        higher_is_better: how to read the ratio.
        target: the issue's target, as text ("ratio >= 1.5 vs cryptofeed"), if any.
        met: whether the target is met (None when not judged here).
        notes: anything a reader needs (data used, peers absent, ...).
        pairs: for runs that alternate with the baseline's (value_i, baseline_i measured
            back to back), each pair's ratio: the ratio is then their median, which a
            machine whose speed drifts between pairs does not skew as it skews the ratio
            of the two medians (``value`` and ``baseline_value`` stay the medians).
    """

    figure: str
    metric: str
    value: float
    baseline: str = ""
    baseline_value: float | None = None
    higher_is_better: bool = True
    target: str = ""
    met: bool | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    pairs: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        """value / baseline for higher-is-better metrics, baseline / value otherwise; the
        median of ``pairs`` when the runs were paired."""
        if self.pairs:
            return statistics.median(self.pairs)
        if not self.baseline_value or not self.value:
            return None
        if self.higher_is_better:
            return self.value / self.baseline_value
        return self.baseline_value / self.value


@dataclass
class Context:
    """What every figure gets: size knobs and where the data is."""

    quick: bool = False
    """Tiny inputs (smoke test): every code path runs, numbers mean nothing."""
    repeats: int = 3
    soak_s: float = 600.0
    data: Path = SHARED_DATA

    def scale(self, full: int, quick: int) -> int:
        """Return the workload size for this run."""
        return quick if self.quick else full

    def require_data(self, relative: str) -> Path:
        """Return a file of the shared corpus, or raise DataMissing saying what is absent."""
        path = self.data / relative
        if not path.exists():
            raise DataMissing(
                f"{path} is absent: this figure reads the real-data corpus in ../shared/data"
            )
        return path


class DataMissing(Exception):
    """A figure's input data is not on this machine; the runner reports and skips it."""


class BarFeed(DataFeed):
    """A feed that emits what a figure hands it (recorded bars: event times are not live)."""

    asset_classes = frozenset({AssetClass.CRYPTO})
    live = False

    async def connect(self) -> bool:
        return True

    async def disconnect(self) -> None:
        return None

    async def subscribe(self, symbol: str) -> bool:
        return True

    async def unsubscribe(self, symbol: str) -> bool:
        return True

    async def get_historical_data(
        self, symbol: str, start_date: object, end_date: object, resolution: object
    ) -> list[MarketData]:
        return []


def best_rate(count: int, fn: Callable[[], object], repeats: int) -> float:
    """Run ``fn`` ``repeats`` times; return the median of count / seconds."""
    rates = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def to_json(results: list[Result], skipped: dict[str, str], path: Path) -> None:
    """Write the run as JSON (results with ratios, skipped figures, machine)."""
    rows = []
    for result in results:
        row = asdict(result)
        row["ratio"] = result.ratio
        rows.append(row)
    payload = {"machine": machine(), "results": rows, "skipped": skipped}
    path.write_text(json.dumps(payload, indent=2) + "\n")


def table(results: list[Result]) -> str:
    """Format the results as one plain-text table."""
    header = ("figure", "metric", "value", "baseline", "ratio", "target", "met")
    rows = [header]
    for r in results:
        ratio = r.ratio
        rows.append(
            (
                r.figure,
                r.metric,
                _num(r.value),
                f"{r.baseline} {_num(r.baseline_value)}" if r.baseline else "",
                f"{ratio:.2f}x" if ratio is not None else "",
                r.target,
                "" if r.met is None else ("yes" if r.met else "NO"),
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _num(value: float | None) -> str:
    if value is None:
        return ""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"
