"""``lean-data report SYMBOL... [--html FILE]``: what storage holds of some symbols, and how good.

Per symbol and stored series (feed, bar period): rows, first and last bar, coverage and
gaps (judged as ``lean-data catalog`` judges them), bars per quality level, then whether
the symbol's feeds disagree (closes at shared open times, in basis points) and every
flagged bar (stored level below GOOD) with its reasons and OHLCV. Times are ISO 8601 UTC.

``--html FILE`` also writes one self-contained page (:mod:`lean_data.cli.report_html`):
price charts with the flagged bars marked, coverage timelines, quality histograms over
time, the feeds' disagreement and the flagged bars. It opens offline.

Reads through the store only (the SQLite file of a run's ``--output DIR``, or
``--database-url``); writes nothing to it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lean_data.cli.report_data import (
    LEVELS,
    Disagreement,
    ReportError,
    SymbolReport,
    gather,
    number,
    select_symbols,
)
from lean_data.cli.report_html import render
from lean_data.cli.run import Storing, storing_of
from lean_data.cli.tables import aligned, iso
from lean_data.engine import runner

__all__ = ["COMMANDS", "add_parsers", "format_report", "run"]

COMMANDS: tuple[str, ...] = ("report",)


def add_parsers(sub: Any, common_options: Callable[[argparse.ArgumentParser, str], None]) -> None:
    """Add the ``report`` subcommand to ``lean-data``'s subparsers."""
    report = sub.add_parser(
        "report",
        help="report stored symbols: coverage, gaps, quality levels, flagged bars, feeds' "
        "disagreement; --html for charts",
    )
    report.add_argument(
        "symbols", nargs="+", metavar="SYMBOL", help="symbols to report, e.g. AAPL BTC/USD"
    )
    common_options(report, "lean_data_demo")
    report.add_argument(
        "--html",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write the report as one self-contained HTML page (charts inline; opens offline)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``report`` as ``args`` say; return the exit status."""
    storing = storing_of(args)  # --output, --database-url/--database-schema, --config FILE
    if args.html is not None:
        _check_writable(args.html)
    return runner.run(_run(args.symbols, storing, args.html), config=storing.base)


async def _run(symbols: Sequence[str], storing: Storing, html: Path | None) -> int:
    started = time.perf_counter()
    storage, where = storing.open_existing()
    async with storage:
        chosen = select_symbols(await storage.bar_series_keys(), list(symbols), where)
        reports = await gather(storage, chosen)
    sys.stdout.write(format_report(reports, where))
    if html is not None:
        page = render(reports, where)
        _write(html, page)
        elapsed = time.perf_counter() - started
        sys.stdout.write(f"HTML report: {html} ({len(page.encode()):,} bytes, {elapsed:.2f} s)\n")
    return 0


def _check_writable(path: Path) -> None:
    """Refuse an --html path that cannot be written, before reading anything."""
    if path.is_dir():
        raise ReportError(
            f"--html {path}: is a directory; pass a file name, e.g. {path}/report.html"
        )
    parent = path.parent
    if not parent.is_dir():
        raise ReportError(f"--html {path}: no directory {parent}; create it or pass another path")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ReportError(f"--html {path}: not writable; pass a path you may write to")


def _write(path: Path, page: str) -> None:
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ReportError(
            f"--html {path}: cannot write it ({exc.strerror or exc}); pass a path you may write to"
        ) from exc


_SHOWN = 10  # INVALID items listed per symbol


def format_report(reports: list[SymbolReport], where: str) -> str:
    """The terminal report: per symbol its series, feeds' disagreement and flagged bars."""
    out: list[str] = []
    for report in reports:
        out.append(report.symbol)
        out.extend(_series_table(report))
        out.extend(_comparison_lines(report))
        out.extend(_flagged_lines(report))
        out.extend(_rejected_lines(report))
        out.append("")
    out.append(
        f"{where}: coverage and gaps as lean-data catalog judges them (each symbol's trading "
        "calendar); flagged = stored quality level below GOOD"
    )
    return "\n".join(out) + "\n"


def _series_table(report: SymbolReport) -> list[str]:
    header = ("feed", "res", "rows", "first bar (UTC)", "last bar (UTC)", "coverage", "gaps")
    rows: list[tuple[str, ...]] = []
    for s in report.series:
        summary = s.series
        rows.append(
            (
                summary.feed,
                str(summary.resolution),
                f"{summary.rows:,}",
                iso(summary.first_ns),
                iso(summary.last_ns),
                f"{summary.coverage:.2f}%",
                str(len(summary.gaps)),
                *(f"{n:,}" for n in s.level_counts.values()),
            )
        )
    right = {2, 5, 6, *range(len(header), len(header) + len(LEVELS))}
    return aligned((*header, *LEVELS), rows, right=right, indent="  ")


def _comparison_lines(report: SymbolReport) -> list[str]:
    feeds = report.feeds
    if len(feeds) < 2:
        return [f"  feeds: one ({', '.join(feeds)}): nothing to compare"]
    if not report.comparisons:
        return [f"  feeds: {', '.join(feeds)} store different bar periods: nothing to compare"]
    out: list[str] = []
    for d in report.comparisons:
        out.append(f"  feeds: {_disagreement_line(d)}")
        if d.largest:
            header = ("time (UTC)", f"{d.first} close", f"{d.second} close", "bps")
            rows = [(iso(t), number(a), number(b), f"{bps:,.2f}") for t, bps, a, b in d.largest]
            out.extend(aligned(header, rows, right={1, 2, 3}, indent="    "))
    return out


def _disagreement_line(d: Disagreement) -> str:
    line = (
        f"{d.first} vs {d.second} ({d.resolution}): {d.shared:,} shared open times, closes "
        f"differ at {d.differing:,}"
    )
    if d.largest:
        line += f"; largest {d.max_bps:,.2f} bps at {iso(d.largest[0][0])}"
    return line


def _flagged_lines(report: SymbolReport) -> list[str]:
    flagged = report.flagged
    out = [f"  flagged bars (level below GOOD): {len(flagged)}"]
    if not flagged:
        return out
    header = ("time (UTC)", "feed", "res", "level", "reasons")
    rows: list[tuple[str, ...]] = []
    for f in flagged:
        bar = f.bar
        rows.append(
            (
                iso(bar.ts_event),
                f.feed,
                str(bar.resolution),
                f.level,
                ",".join(f.reasons) or "-",
                *(number(v) for v in (bar.open, bar.high, bar.low, bar.close, bar.volume)),
            )
        )
    prices = ("open", "high", "low", "close", "volume")
    return out + aligned((*header, *prices), rows, right=range(5, 10), indent="    ")


def _rejected_lines(report: SymbolReport) -> list[str]:
    """INVALID items that were not stored: from the errors table, so they stay visible."""
    rejected = report.rejected
    if not rejected:
        return []
    out = [f"  INVALID items not stored (errors table, kind invalid_data): {len(rejected):,}"]
    rows = [(iso(r.ts_ns), r.feed, r.message) for r in rejected[:_SHOWN]]
    out.extend(aligned(("received (UTC)", "feed", "why"), rows, indent="    "))
    if len(rejected) > _SHOWN:
        out.append(f"    ... {len(rejected) - _SHOWN:,} more")
    return out
