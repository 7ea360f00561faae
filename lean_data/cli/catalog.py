"""``lean-data catalog`` and ``lean-data gaps SYMBOL``: what storage holds, and where bars miss.

Both read a store through the :class:`~lean_data.storage.base.Storage` interface only, so
they work on the SQLite file of a run (``<output>/lean_data.db``) and on PostgreSQL
(``--database-url``) alike.

A gap is judged the way the engine judges it (:mod:`lean_data.series.calendars`): between two
consecutive stored bars of a (feed, symbol, resolution) series, the bars the symbol's trading
calendar expects (crypto 24/7, US equities XNYS, ...; the calendar is chosen from the
symbol's name, as storage keeps no asset class) and storage lacks. A gap the source reported
as having no bars (known-empty coverage) is still a gap, marked ``known empty``.

Coverage % is stored bars / expected bars from the first to the last bar (expected = stored
+ missing), by the bar spacing, not from the coverage table. Quality is the Storage's
``quality_summary`` average score of the symbol's rows from that feed (all resolutions).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lean_data.cli.run import Storing, storing_of
from lean_data.cli.tables import aligned, iso
from lean_data.engine import runner
from lean_data.errors import ConfigError, LeanDataError
from lean_data.models import Resolution
from lean_data.series.calendars import AlwaysOpen, TradingCalendar, calendar_for
from lean_data.storage.base import Storage
from lean_data.symbols import classify_symbol

__all__ = ["COMMANDS", "CatalogError", "Gap", "Series", "add_parsers", "run"]

COMMANDS = ("catalog", "gaps")

_FAR_PAST = -(2**63)
_FAR_FUTURE = 2**63 - 1
_ALL_HOURS = 1_000_000.0  # quality_summary's window: every row ever received (114 years)


class CatalogError(LeanDataError):
    """What ``catalog``/``gaps`` cannot do, printed as one line."""


@dataclass(frozen=True)
class Gap:
    """Bars expected in ``[start_ns, end_ns)`` (between two stored bars) and not stored."""

    start_ns: int
    end_ns: int
    bars: int
    known_empty: bool = False


@dataclass(frozen=True)
class Series:
    """One stored trade-bar series and what is missing in it."""

    feed: str
    symbol: str
    resolution: Resolution
    first_ns: int
    last_ns: int
    rows: int
    gaps: list[Gap]
    calendar: str
    quality: float | None

    @property
    def missing(self) -> int:
        """Bars expected between the first and last bar and not stored."""
        return sum(gap.bars for gap in self.gaps)

    @property
    def coverage(self) -> float:
        """Stored bars as a percentage of the expected bars from the first to the last."""
        return 100.0 * self.rows / (self.rows + self.missing) if self.rows else 0.0


def add_parsers(sub: Any, common_options: Callable[[argparse.ArgumentParser, str], None]) -> None:
    """Add the ``catalog`` and ``gaps`` subcommands to ``lean-data``'s subparsers."""
    catalog = sub.add_parser(
        "catalog", help="list the stored bar series: times, rows, coverage, gaps, quality"
    )
    common_options(catalog, "lean_data_demo")
    gaps = sub.add_parser("gaps", help="list the missing intervals of a symbol's stored bars")
    gaps.add_argument("symbol", metavar="SYMBOL", help="the symbol, e.g. SPY or BTC/USD")
    common_options(gaps, "lean_data_demo")
    gaps.add_argument("--feed", default=None, help="only this feed (default: every feed)")
    gaps.add_argument(
        "--resolution", default=None, help="only this bar period, e.g. 1m (default: every one)"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``catalog`` or ``gaps`` as ``args`` say; return the exit status."""
    storing = storing_of(args)  # --output, --database-url/--database-schema, --config FILE
    return runner.run(_run(args, storing), config=storing.base)


async def _run(args: argparse.Namespace, storing: Storing) -> int:
    storage, where = storing.open_existing()
    async with storage:
        keys = await storage.bar_series_keys()
        if args.command == "catalog":
            series = [await summarize(storage, *key) for key in keys]
            sys.stdout.write(format_catalog(series, where))
            return 0
        chosen = _select(keys, args.symbol, args.feed, args.resolution, where)
        series = [await summarize(storage, *key) for key in chosen]
    sys.stdout.write(format_gaps(series))
    return 0


def _squash(symbol: str) -> str:
    return "".join(ch for ch in symbol.upper() if ch.isalnum())


def _select(
    keys: list[tuple[str, str, Resolution]],
    symbol: str,
    feed: str | None,
    resolution: str | None,
    where: str,
) -> list[tuple[str, str, Resolution]]:
    """The series of ``symbol`` (exact, else ignoring case and separators: BTC-USD = BTC/USD)."""
    found = [k for k in keys if k[1] == symbol] or [
        k for k in keys if _squash(k[1]) == _squash(symbol)
    ]
    if not found:
        stored = ", ".join(sorted({k[1] for k in keys})) or "none"
        raise CatalogError(
            f"{symbol}: no stored bars of this symbol in {where} (stored: {stored}); "
            "see lean-data catalog"
        )
    if feed is not None:
        feeds = sorted({k[0] for k in found})
        found = [k for k in found if k[0] == feed]
        if not found:
            raise CatalogError(
                f"--feed {feed}: no bars of {symbol} from this feed (stored feeds: "
                f"{', '.join(feeds)})"
            )
    if resolution is not None:
        try:
            wanted = Resolution.parse(resolution)
        except ValueError:
            raise CatalogError(
                f"--resolution {resolution}: not a bar period; pass e.g. 1m, 1h or 1d"
            ) from None
        periods = sorted({str(k[2]) for k in found})
        found = [k for k in found if k[2].nanos == wanted.nanos]
        if not found:
            raise CatalogError(
                f"--resolution {resolution}: no {resolution} bars of {symbol} (stored: "
                f"{', '.join(periods)})"
            )
    return found


def _calendar(symbol: str) -> tuple[TradingCalendar, str]:
    """The calendar that judges ``symbol``'s gaps and its label (24/7 when none is known)."""
    if classify_symbol(symbol) is None and not symbol.upper().endswith((".XCME", ".GLBX")):
        return AlwaysOpen(), "24/7 (no asset class)"
    try:
        calendar = calendar_for(symbol)
    except ConfigError:
        return AlwaysOpen(), "24/7 (calendars extra missing)"
    return calendar, calendar.name


async def summarize(storage: Storage, feed: str, symbol: str, resolution: Resolution) -> Series:
    """Read one series' bars and judge its gaps against the symbol's calendar."""
    bars = await storage.get_market_data(
        symbol, _FAR_PAST, _FAR_FUTURE, resolution=resolution, feed=feed
    )
    opens = [bar.ts_event for bar in bars]
    calendar, label = _calendar(symbol)
    step = resolution.nanos
    gaps: list[Gap] = []
    for before, after in itertools.pairwise(opens):
        if after - before <= step:
            continue
        count = calendar.count_missing(before, after, resolution)
        if count:
            gaps.append(Gap(before + step, after, count))
    if gaps:
        gaps = await _mark_known_empty(storage, feed, symbol, resolution, gaps)
    summary = await storage.quality_summary(symbol, hours=_ALL_HOURS)
    quality = summary.get("feeds", {}).get(feed, {}).get("average_score")
    return Series(
        feed,
        symbol,
        resolution,
        opens[0] if opens else 0,
        opens[-1] if opens else 0,
        len(opens),
        gaps,
        label,
        quality,
    )


async def _mark_known_empty(
    storage: Storage, feed: str, symbol: str, resolution: Resolution, gaps: list[Gap]
) -> list[Gap]:
    coverage = await storage.get_coverage(
        feed, symbol, resolution, gaps[0].start_ns, gaps[-1].end_ns
    )
    empty = [(start, end) for start, end, flag in coverage if flag]
    return [
        Gap(g.start_ns, g.end_ns, g.bars, any(s <= g.start_ns and g.end_ns <= e for s, e in empty))
        for g in gaps
    ]


def format_catalog(series: list[Series], where: str) -> str:
    """The catalog table (aligned columns), with a note on how it is computed."""
    if not series:
        return f"{where}: no bars stored\n"
    header = (
        "feed", "symbol", "res", "first bar (UTC)", "last bar (UTC)", "rows", "coverage",
        "gaps", "quality", "gaps judged by",
    )  # fmt: skip
    rows = [
        (
            s.feed,
            s.symbol,
            str(s.resolution),
            iso(s.first_ns),
            iso(s.last_ns),
            f"{s.rows:,}",
            f"{s.coverage:.2f}%",
            str(len(s.gaps)),
            "-" if s.quality is None else f"{s.quality:.3f}",
            s.calendar,
        )
        for s in series
    ]
    lines = aligned(header, rows, right={5, 6, 7, 8})
    note = (
        f"\n{where}: coverage = stored / expected bars from the first to the last bar (by bar "
        "spacing and each symbol's trading calendar); quality = average score of the "
        "symbol's rows from that feed; details: lean-data gaps SYMBOL\n"
    )
    return "\n".join(lines) + "\n" + note


def format_gaps(series: list[Series]) -> str:
    """Per series a heading line, then one indented line per missing interval."""
    out: list[str] = []
    for s in series:
        out.append(
            f"{s.feed} {s.symbol} {s.resolution}: {len(s.gaps)} gaps, {s.missing} bars "
            f"missing ({s.calendar} calendar)\n"
        )
        for gap in s.gaps:
            mark = "  known empty" if gap.known_empty else ""
            plural = "bar" if gap.bars == 1 else "bars"
            out.append(f"  {iso(gap.start_ns)}  {iso(gap.end_ns)}  {gap.bars:>6} {plural}{mark}\n")
    return "".join(out)
