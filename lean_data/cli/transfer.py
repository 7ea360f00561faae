"""``lean-data export`` and ``lean-data import``: stored bars to a file, and files into a store.

``export [SYMBOL...] --to PATH`` writes the stored trade bars a selection names (symbols,
``--feed``, ``--resolution``, an event-time range ``--start``/``--end``) into ONE file with
``feed``, ``symbol`` and ``resolution`` columns (:mod:`lean_data.cli.export_formats`: CSV,
JSONL or Parquet), reading each series in windows of :data:`WINDOW` rows so a big store is
never loaded at once. Quote bars and ticks are not exported.

``import FILE...`` reads market-data files (every loader format, and the files ``export``
writes, whose ``feed``/``symbol``/``resolution`` columns say where each row belongs) and
stores them through a :class:`~lean_data.engine.DataEngine`: every bar is validated and
scored exactly as ``lean-data replay`` would (INVALID bars are counted, not stored). A row
an export file holds unscored (a bar a history query once fetched) goes the engine's
history path again, so it is stored unscored as before. Every file is read whole first: a
malformed row stops the command before anything is written. The store's keys (feed,
symbol, resolution, open time) dedupe: importing a file twice adds no rows, and the summary
says how many were new.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from lean_data.cli.export_formats import (
    EXPORT_FORMATS,
    detect_export,
    format_from_suffix,
    iso_ns,
    open_writer,
    pyarrow_parquet,
    read_rows,
)
from lean_data.cli.messages import check_input, naming
from lean_data.cli.run import Storing, storing_of
from lean_data.cli.transfer_engine import (
    TABLES,
    ExportFileFeed,
    SeriesKey,
    count_rows,
    ingest,
    read_series,
)
from lean_data.engine import DataEngine, runner
from lean_data.errors import DataFormatError, LeanDataError
from lean_data.feeds.replay import ReplayFeed, ReplaySource
from lean_data.loaders import FORMATS, describe_file
from lean_data.models import MarketData, QuoteBar, Resolution, Tick, TradeBar
from lean_data.storage.factory import storage_location

__all__ = ["COMMANDS", "TransferError", "add_parsers", "run"]

COMMANDS = ("export", "import")
WINDOW: Final = 50_000
"""Rows read from storage per query while exporting."""

_FAR_PAST: Final = -(2**63)
_FAR_FUTURE: Final = 2**63 - 1


class TransferError(LeanDataError):
    """What ``export``/``import`` cannot do, printed as one line."""


def add_parsers(sub: Any, common_options: Callable[[argparse.ArgumentParser, str], None]) -> None:
    """Add the ``export`` and ``import`` subcommands to ``lean-data``'s subparsers."""
    export = sub.add_parser("export", help="write stored bars to one CSV, Parquet or JSONL file")
    export.add_argument(
        "symbols", nargs="*", metavar="SYMBOL", help="only these symbols (default: every one)"
    )
    export.add_argument(
        "--to", type=Path, required=True, metavar="PATH", help="the file to write (replaced)"
    )
    export.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default=None,
        help="the file's format (default: from the name: .csv, .parquet, .jsonl)",
    )
    export.add_argument("--start", default=None, metavar="ISO", help="first open time (UTC)")
    export.add_argument("--end", default=None, metavar="ISO", help="open times before this")
    export.add_argument("--resolution", default=None, help="only this bar period, e.g. 1m")
    export.add_argument("--feed", default=None, help="only bars this feed stored")
    common_options(export, "lean_data_demo")
    imp = sub.add_parser(
        "import", help="store files (any loader format, or export's) through the engine"
    )
    imp.add_argument("files", nargs="+", type=Path, metavar="FILE", help="files to import")
    imp.add_argument(
        "--format",
        choices=(*FORMATS, "export"),
        default=None,
        help="the files' format; export: a file lean-data export wrote (default: detected)",
    )
    imp.add_argument("--symbol", default=None, help="the symbol of every (loader) file")
    imp.add_argument("--resolution", default=None, help="the bar period of every (loader) file")
    imp.add_argument(
        "--feed",
        default=None,
        help="store under this feed name (default: an export file's feed column, else replay)",
    )
    common_options(imp, "lean_data_import")


def run(args: argparse.Namespace) -> int:
    """Run ``export`` or ``import`` as ``args`` say; return the exit status."""
    storing = storing_of(args)  # --output, --database-url/--database-schema, --config FILE
    if args.command == "export":
        return runner.run(_export(args, storing), config=storing.base)
    plan = _plan(args)  # every file read whole: a malformed row stops here, nothing written
    _make_output(storing.output)  # the SQLite file and the disk cache, or the cache alone
    return runner.run(_import(plan, storing), config=storing.base)


# ------------------------------------------------------------------------------ export


def _export_format(args: argparse.Namespace) -> str:
    if args.to.is_dir():
        raise TransferError(f"--to {args.to}: is a directory; pass a file name in it")
    fmt: str | None = args.format or format_from_suffix(args.to)
    if fmt is None:
        raise TransferError(
            f"--to {args.to}: cannot tell the format from the name; pass --format "
            f"{'|'.join(EXPORT_FORMATS)} or name it .csv, .parquet or .jsonl"
        )
    if fmt == "parquet":
        pyarrow_parquet()  # say the extra is missing before reading anything
    return fmt


def _instant(text: str | None, option: str, default: int) -> int:
    if text is None:
        return default
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise TransferError(
            f"{option} {text}: not an ISO time; pass e.g. 2014-06-06 or 2014-06-06T14:30:00Z"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp()) * 10**9 + stamp.microsecond * 1_000


async def _export(args: argparse.Namespace, storing: Storing) -> int:
    fmt = _export_format(args)
    start = _instant(args.start, "--start", _FAR_PAST)
    end = _instant(args.end, "--end", _FAR_FUTURE)
    if end <= start:
        raise TransferError(f"--end {args.end}: not after --start {args.start}; swap them")
    storage, where = storing.open_existing()
    started = time.perf_counter()
    written: list[tuple[tuple[str, str, Resolution], int, int, int]] = []
    async with storage:
        keys = _choose(await storage.bar_series_keys(), args, where)
        args.to.parent.mkdir(parents=True, exist_ok=True)
        writer = open_writer(fmt, args.to)
        try:
            for key in keys:
                rows, first, last = 0, 0, 0
                async for window in read_series(storage, key, start, end, WINDOW):
                    writer.write(window)
                    first = first if rows else window[0].bar.ts_event
                    rows += len(window)
                    last = window[-1].bar.ts_event
                if rows:
                    written.append((key, rows, first, last))
            writer.commit()
        except BaseException:
            writer.abort()
            raise
    _print_export(written, args.to, fmt, where, time.perf_counter() - started)
    return 0


def _squash(symbol: str) -> str:
    return "".join(ch for ch in symbol.upper() if ch.isalnum())


def _choose(
    keys: list[tuple[str, str, Resolution]], args: argparse.Namespace, where: str
) -> list[tuple[str, str, Resolution]]:
    """The stored series the symbols, --feed and --resolution select, in a stable order."""
    stored = sorted({k[1] for k in keys})
    chosen = keys
    if args.symbols:
        wanted: set[str] = set()
        for symbol in args.symbols:
            found = {s for s in stored if s == symbol} or {
                s for s in stored if _squash(s) == _squash(symbol)
            }
            if not found:
                raise TransferError(
                    f"{symbol}: no stored bars of this symbol in {where} (stored: "
                    f"{', '.join(stored) or 'none'}); see lean-data catalog"
                )
            wanted |= found
        chosen = [k for k in chosen if k[1] in wanted]
    if args.feed is not None:
        feeds = sorted({k[0] for k in chosen})
        chosen = [k for k in chosen if k[0] == args.feed]
        if not chosen:
            raise TransferError(
                f"--feed {args.feed}: no such bars stored (feeds: {', '.join(feeds) or 'none'})"
            )
    if args.resolution is not None:
        try:
            nanos = Resolution.parse(args.resolution).nanos
        except ValueError:
            raise TransferError(
                f"--resolution {args.resolution}: not a bar period; pass e.g. 1m, 1h or 1d"
            ) from None
        periods = sorted({str(k[2]) for k in chosen})
        chosen = [k for k in chosen if k[2].nanos == nanos]
        if not chosen:
            raise TransferError(
                f"--resolution {args.resolution}: no such bars stored (stored: "
                f"{', '.join(periods) or 'none'})"
            )
    return sorted(chosen, key=lambda k: (k[0], k[1], k[2].nanos))


def _print_export(
    written: list[tuple[tuple[str, str, Resolution], int, int, int]],
    path: Path,
    fmt: str,
    where: str,
    seconds: float,
) -> None:
    total = sum(rows for _, rows, _, _ in written)
    header = ("feed", "symbol", "res", "first bar (UTC)", "last bar (UTC)", "rows")
    table = [header] + [
        (feed, symbol, str(res), iso_ns(first), iso_ns(last), f"{rows:,}")
        for (feed, symbol, res), rows, first, last in written
    ]
    out = sys.stdout.write
    out(_aligned(table, right={5}))
    out(
        f"exported {total:,} bars of {len(written)} series from {where} to {path} "
        f"({fmt}) in {seconds:.2f} s\n"
    )


def _aligned(table: Sequence[Sequence[str]], right: set[int]) -> str:
    if len(table) == 1:
        return ""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = [
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in table
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ import


@dataclass
class _Plan:
    """What the files hold (each read whole once) and which feed stores what."""

    feed: str | None  # --feed: every row is stored under this name
    loader_files: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)
    export_files: list[tuple[Path, str]] = field(default_factory=list)
    per_file: list[tuple[Path, int, int]] = field(default_factory=list)  # rows, series
    read: Counter[SeriesKey] = field(default_factory=Counter)
    scored: dict[str, set[str]] = field(default_factory=dict)  # export feed -> symbols
    unscored: dict[tuple[str, str, str], list[TradeBar]] = field(default_factory=dict)


def _plan(args: argparse.Namespace) -> _Plan:
    plan = _Plan(args.feed)
    for path in args.files:
        check_input(path)
        fmt = detect_export(path) if args.format in (None, "export") else None
        if args.format == "export" and fmt is None:
            raise TransferError(
                f"{path}: not a file lean-data export writes (.csv with feed, symbol and "
                "resolution columns, .parquet, .jsonl); pass its loader's --format"
            )
        try:
            if fmt is None:
                _plan_loader_file(plan, path, args)
            else:
                _plan_export_file(plan, path, fmt, args)
        except DataFormatError as exc:
            raise TransferError(
                f"{naming(path, exc)}; fix or remove that row: nothing was imported"
            ) from exc
    return plan


def _plan_loader_file(plan: _Plan, path: Path, args: argparse.Namespace) -> None:
    try:
        resolution = Resolution.parse(args.resolution) if args.resolution else None
    except ValueError:
        raise TransferError(
            f"--resolution {args.resolution}: not a bar period; pass e.g. 1m, 1h or 1d"
        ) from None
    options: dict[str, Any] = {
        "format": args.format,
        "symbol": args.symbol,
        "resolution": resolution,
    }
    spec = describe_file(path, **options)
    source = ReplaySource(path, spec.symbol, spec.format, spec.resolution)
    feed = plan.feed or "replay"
    counted = Counter(_key_of(feed, item) for item in _market_items(source.items()))
    plan.read.update(counted)
    plan.per_file.append((path, sum(counted.values()), len(counted)))
    plan.loader_files.append((path, options))


def _market_items(items: Iterable[Any]) -> Iterator[MarketData]:
    return (item for item in items if isinstance(item, TradeBar | QuoteBar | Tick))


def _key_of(feed: str, item: MarketData) -> SeriesKey:
    resolution = getattr(item, "resolution", None)
    name = "-" if resolution is None else resolution.name
    return (TABLES[type(item)], feed, item.symbol, name)


def _plan_export_file(plan: _Plan, path: Path, fmt: str, args: argparse.Namespace) -> None:
    for option in ("symbol", "resolution"):
        if getattr(args, option) is not None:
            raise TransferError(
                f"{path}: --{option} does not apply to a lean-data export file (its columns "
                "name each row's symbol and resolution); drop it"
            )
    counted: Counter[SeriesKey] = Counter()
    for row in read_rows(path, fmt):
        feed = plan.feed or row.feed
        bar = row.bar
        counted[("bars", feed, bar.symbol, bar.resolution.name)] += 1
        if row.level:
            plan.scored.setdefault(feed, set()).add(bar.symbol)
            continue
        plan.unscored.setdefault((feed, bar.symbol, bar.resolution.name), []).append(bar)
    plan.read.update(counted)
    plan.per_file.append((path, sum(counted.values()), len(counted)))
    plan.export_files.append((path, fmt))


def _make_output(output: Path) -> None:
    if output.exists() and not output.is_dir():
        raise TransferError(
            f"--output {output}: exists and is not a directory; pass a directory "
            "(it is created if missing)"
        )
    output.mkdir(parents=True, exist_ok=True)


async def _import(plan: _Plan, storing: Storing) -> int:
    config = storing.config()
    keys = sorted(plan.read, key=_series_order)
    started = time.perf_counter()
    before = await count_rows(config, keys)
    invalid: Counter[SeriesKey] = Counter()
    examples: list[str] = []
    if plan.loader_files:
        replay = ReplayFeed(plan.feed or "replay")
        for path, options in plan.loader_files:
            replay.add_source(path, **options)
        engine = DataEngine(config)
        found = await ingest(engine, replay, replay.symbols, replay.data_of, replay.wait_finished)
        invalid += found[0]
        examples += found[1]
    export_feeds = set(plan.scored) | {feed for feed, _, _ in plan.unscored}
    for name in sorted(export_feeds):
        symbols = plan.scored.get(name, set())
        unscored = {(s, r): bars for (f, s, r), bars in plan.unscored.items() if f == name}
        history = [
            (s, r, min(b.ts_event for b in bars), max(b.ts_event for b in bars))
            for (s, r), bars in unscored.items()
        ]
        source = None if plan.feed else name
        every = [bar for bars in unscored.values() for bar in bars]
        feed = ExportFileFeed(name, plan.export_files, source, symbols, every)
        engine = DataEngine(config)
        found = await ingest(
            engine, feed, sorted(symbols), _bars_only, feed.wait_finished, sorted(history)
        )
        invalid += found[0]
        examples += found[1]
    after = await count_rows(config, keys)
    seconds = time.perf_counter() - started
    where = storage_location(config)
    _print_import(plan, keys, (before, after), invalid, examples, where, seconds)
    return 0


def _series_order(key: SeriesKey) -> tuple[str, str, str, int]:
    table, feed, symbol, resolution = key
    return (table, feed, symbol, -1 if resolution == "-" else Resolution.parse(resolution).nanos)


def _bars_only(symbol: str) -> tuple[str, ...]:
    return ("bars",)


def _print_import(
    plan: _Plan,
    keys: list[SeriesKey],
    counts: tuple[dict[SeriesKey, int], dict[SeriesKey, int]],
    invalid: Counter[SeriesKey],
    examples: list[str],
    where: str,
    seconds: float,
) -> None:
    out = sys.stdout.write
    before, after = counts
    for path, rows, series in plan.per_file:
        out(f"read {path}: {rows:,} rows of {series} series\n")
    header = ("feed", "symbol", "kind", "res", "read", "invalid", "new", "already stored")
    table: list[tuple[str, ...]] = [header]
    totals = Counter[str]()
    for key in keys:
        table_name, feed, symbol, resolution = key
        new = after[key] - before[key]
        bad = invalid[key]
        kept = max(plan.read[key] - bad - new, 0)
        totals.update(read=plan.read[key], invalid=bad, new=new, kept=kept)
        kind = {"bars": "bars", "quote_bars": "quotes", "ticks": "ticks"}[table_name]
        row = (feed, symbol, kind, resolution, plan.read[key], bad, new, kept)
        table.append(tuple(f"{v:,}" if isinstance(v, int) else v for v in row))
    out(_aligned(table, right={4, 5, 6, 7}))
    for line in examples:
        out(f"  invalid, not stored: {line}\n")
    out(
        f"imported {totals['read']:,} rows into {where} through the engine in {seconds:.2f} s: "
        f"{totals['new']:,} new, {totals['kept']:,} already stored, {totals['invalid']:,} "
        "invalid (not stored)\n"
    )
    if totals["read"] and not totals["new"]:
        out("nothing new: every row was already stored\n")
