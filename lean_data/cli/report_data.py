"""What ``lean-data report`` shows, read from a store: series, quality per bar, feed disagreement.

Everything here reads through the store and computes plain values; the terminal tables
(:mod:`lean_data.cli.report`) and the HTML page (:mod:`lean_data.cli.report_html`) only
format them. Gaps and coverage are the catalog's (:func:`lean_data.cli.catalog.summarize`).

A bar is *flagged* when its stored quality level is below GOOD (FAIR, POOR or INVALID). Two
feeds *disagree* at a shared open time when their closes differ; the difference is told in
basis points of the first feed's close.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field

from lean_data.cli.catalog import Series, summarize
from lean_data.errors import LeanDataError
from lean_data.models import Resolution, TradeBar
from lean_data.quality.levels import DataQualityLevel
from lean_data.storage.base import Storage

__all__ = [
    "FLAGGED_LEVELS",
    "LEVELS",
    "Disagreement",
    "Flagged",
    "Rejected",
    "ReportError",
    "SeriesReport",
    "SymbolReport",
    "gather",
    "number",
    "runs",
    "select_symbols",
]

LEVELS = (*(level.name for level in DataQualityLevel), "UNSCORED")
"""Every level a stored bar can have, best first (UNSCORED: saved without a verdict)."""
FLAGGED_LEVELS = frozenset(
    level.name for level in DataQualityLevel if level.value < DataQualityLevel.GOOD.value
)
_FAR_PAST = -(2**63)
_MAX_ERRORS = 1_000_000  # invalid_data rows read per report (newest first)
_FAR_FUTURE = 2**63 - 1
_TOP_DIFFERENCES = 10


class ReportError(LeanDataError):
    """What ``lean-data report`` cannot do, printed as one line."""


@dataclass(frozen=True, slots=True)
class Flagged:
    """A stored bar whose quality level is below GOOD, with the reasons the scorer gave."""

    feed: str
    bar: TradeBar
    level: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class SeriesReport:
    """One (feed, symbol, resolution) series: the catalog's summary, its bars and levels.

    ``levels[i]`` is the stored quality level of ``bars[i]`` (``UNSCORED`` without one).
    """

    series: Series
    bars: list[TradeBar]
    levels: list[str]
    flagged: list[Flagged]

    @property
    def level_counts(self) -> dict[str, int]:
        """Bars per quality level, every level present (0 when none)."""
        counts = Counter(self.levels)
        return {level: counts[level] for level in LEVELS}

    @property
    def key(self) -> str:
        """``feed/resolution``, unique within a symbol."""
        return f"{self.series.feed}/{self.series.resolution}"


@dataclass(frozen=True)
class Disagreement:
    """How two feeds' closes of one symbol and resolution differ at their shared open times.

    ``largest`` holds up to ten ``(ts_event, bps, first close, second close)``, the largest
    differences first; ``differing`` counts every shared time whose closes are not equal.
    """

    resolution: Resolution
    first: str
    second: str
    shared: int
    differing: int
    largest: list[tuple[int, float, float, float]]

    @property
    def max_bps(self) -> float:
        """The largest difference in basis points (0 when the closes all agree)."""
        return self.largest[0][1] if self.largest else 0.0


@dataclass(frozen=True)
class Rejected:
    """An INVALID item of the symbol that was not stored: its errors-table row
    (``invalid_data``: received at ``ts_ns`` from ``feed``; the message says why)."""

    ts_ns: int
    feed: str
    message: str


@dataclass(frozen=True)
class SymbolReport:
    """Everything the report says about one symbol."""

    symbol: str
    series: list[SeriesReport]
    comparisons: list[Disagreement]
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def feeds(self) -> list[str]:
        """The feeds that stored bars of the symbol, sorted."""
        return sorted({s.series.feed for s in self.series})

    @property
    def flagged(self) -> list[Flagged]:
        """Every flagged bar of the symbol, by time then feed."""
        found = [f for s in self.series for f in s.flagged]
        return sorted(found, key=lambda f: (f.bar.ts_event, f.feed, f.bar.resolution.nanos))


def _squash(symbol: str) -> str:
    return "".join(ch for ch in symbol.upper() if ch.isalnum())


def select_symbols(
    keys: list[tuple[str, str, Resolution]], symbols: list[str], where: str
) -> dict[str, list[tuple[str, str, Resolution]]]:
    """The stored series of each asked symbol (exact, else ignoring case and separators).

    Raises:
        ReportError: a symbol has no stored bars (naming every such one, and what is stored).
    """
    chosen: dict[str, list[tuple[str, str, Resolution]]] = {}
    unknown: list[str] = []
    for symbol in symbols:
        found = [k for k in keys if k[1] == symbol] or [
            k for k in keys if _squash(k[1]) == _squash(symbol)
        ]
        if not found:
            unknown.append(symbol)
            continue
        for key in found:
            series = chosen.setdefault(key[1], [])
            if key not in series:
                series.append(key)
    if unknown:
        stored = ", ".join(sorted({k[1] for k in keys})) or "none"
        names = ", ".join(unknown)
        raise ReportError(
            f"{names}: no stored bars of {'this symbol' if len(unknown) == 1 else 'these symbols'}"
            f" in {where} (stored: {stored}); pass stored symbols, see lean-data catalog"
        )
    return chosen


async def gather(
    storage: Storage, chosen: dict[str, list[tuple[str, str, Resolution]]]
) -> list[SymbolReport]:
    """Read every chosen series and compare the feeds of each symbol."""
    reports: list[SymbolReport] = []
    invalid = await storage.get_errors(kind="invalid_data", limit=_MAX_ERRORS)
    for symbol, keys in chosen.items():
        series = [await _series_report(storage, *key) for key in sorted(keys, key=_order)]
        rejected = [  # oldest first; INVALID bars are stored only with Config.store_invalid
            Rejected(e["ts_ns"], e["feed"], e["message"])
            for e in reversed(invalid)
            if e["symbol"] == symbol
        ]
        reports.append(SymbolReport(symbol, series, compare_feeds(series), rejected))
    return reports


def _order(key: tuple[str, str, Resolution]) -> tuple[int, str]:
    return (key[2].nanos, key[0])


async def _series_report(
    storage: Storage, feed: str, symbol: str, resolution: Resolution
) -> SeriesReport:
    series = await summarize(storage, feed, symbol, resolution)
    scored = await storage.get_scored_bars(
        symbol, _FAR_PAST, _FAR_FUTURE, resolution=resolution, feed=feed
    )
    levels: list[str] = []
    flagged: list[Flagged] = []
    for row in scored:
        name = row.level or "UNSCORED"
        levels.append(name)
        if name in FLAGGED_LEVELS:
            flagged.append(
                Flagged(feed, row.bar, name, tuple(r for r in row.reasons.split(",") if r))
            )
    return SeriesReport(series, [row.bar for row in scored], levels, flagged)


def compare_feeds(series: list[SeriesReport]) -> list[Disagreement]:
    """Each pair of feeds with bars of the same resolution: where their closes differ."""
    by_resolution: dict[int, list[SeriesReport]] = {}
    for report in series:
        by_resolution.setdefault(report.series.resolution.nanos, []).append(report)
    found: list[Disagreement] = []
    for group in by_resolution.values():
        for a, b in itertools.combinations(sorted(group, key=lambda s: s.series.feed), 2):
            found.append(disagreement(a, b))
    return found


def disagreement(a: SeriesReport, b: SeriesReport) -> Disagreement:
    """Compare the closes of ``a`` and ``b`` (one symbol and resolution) at shared times."""
    closes = {bar.ts_event: bar.close for bar in b.bars}
    shared = 0
    differences: list[tuple[int, float, float, float]] = []
    for bar in a.bars:
        other = closes.get(bar.ts_event)
        if other is None or math.isnan(other) or math.isnan(bar.close):
            continue  # not shared, or a close the source did not have
        shared += 1
        if other != bar.close:
            base = abs(bar.close) or abs(other) or 1.0
            differences.append(
                (bar.ts_event, abs(other - bar.close) / base * 1e4, bar.close, other)
            )
    largest = sorted(differences, key=lambda d: (-d[1], d[0]))[:_TOP_DIFFERENCES]
    return Disagreement(
        a.series.resolution, a.series.feed, b.series.feed, shared, len(differences), largest
    )


def number(value: float) -> str:
    """A price or size as stored, shortest exact form (``600`` for 600.0, ``nan`` for none)."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def runs(times: list[int], step: int) -> list[tuple[int, int]]:
    """``[start, end)`` of each run of bars spaced exactly ``step`` apart (end: last + step)."""
    found: list[tuple[int, int]] = []
    for t in times:
        if found and t - found[-1][1] <= 0:
            found[-1] = (found[-1][0], t + step)
        else:
            found.append((t, t + step))
    return found
