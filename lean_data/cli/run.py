"""Run a replay for the ``lean-data`` command and print its report.

The command line itself (options, input checks, one-line errors) is :mod:`lean_data.cli`;
this module runs an already-validated :class:`ReplayFeed` through a DataEngine.
A symbol whose class neither its file nor its name tells, and a trading calendar that
cannot be loaded (the ``calendars`` extra missing, an unknown exchange code), are printed as
``warning:`` lines before the replay: their gaps are then judged 24/7.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lean_data.cli.messages import CliError
from lean_data.cli.tables import aligned
from lean_data.config import Config
from lean_data.engine import DataEngine
from lean_data.errors import ConfigError
from lean_data.feeds.replay import ReplayFeed
from lean_data.models import MarketData, TradeBar
from lean_data.quality.levels import DataQualityLevel
from lean_data.storage.base import Storage
from lean_data.storage.factory import create_storage, storage_location
from lean_data.storage.location import describe_url
from lean_data.symbols import classify_symbol

__all__ = ["Progress", "Storing", "Unset", "named_calendar", "run_replay", "storing_of"]


@dataclass
class Progress:
    """How far a replay got, readable after it is interrupted."""

    total: int = 0
    replayed: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Storing:
    """Where a run stores: the SQLite file in ``output``, or a PostgreSQL database.

    ``output`` also holds the disk cache either way.
    """

    output: Path
    database_url: str | None = None
    database_schema: str = "lean_data"
    base: Config | None = None  # from --config FILE (then the environment), when given

    @property
    def db_path(self) -> Path:
        """The SQLite file (when no database URL is given)."""
        return self.output / "lean_data.db"

    def config(self) -> Config:
        """The engine's Config for this run: the --config file's, where the rows go set here."""
        if self.base is not None:
            return dataclasses.replace(
                self.base,
                db_path=self.db_path,
                database_url=self.database_url,
                database_schema=self.database_schema,
                cache_dir=self.output / "cache",
            )
        return Config(
            db_path=self.db_path,
            database_url=self.database_url,
            database_schema=self.database_schema,
            cache_dir=self.output / "cache",
            metrics_interval_s=1.0,
        )

    def open_existing(self) -> tuple[Storage, str]:
        """The store a reading command reads (not open yet) and where it is, for messages.

        Raises:
            CliError: the run's SQLite file does not exist (nothing is created).
        """
        config = self.config()
        if self.database_url is None and not self.db_path.is_file():
            raise CliError(
                f"{self.db_path}: no database there; run lean-data demo first, or pass "
                "--output DIR (the directory of a run) or --database-url URL"
            )
        storage = create_storage(config)
        if storage is None:  # pragma: no cover - a Storing always names a database
            raise CliError("no storage configured; pass --output DIR or --database-url URL")
        return storage, storage_location(config)

    def lines(self) -> list[str]:
        """Where the rows are and how to look at them (never the URL's password)."""
        if self.database_url is None:
            return [
                f"SQLite database: {self.db_path.resolve()}",
                f"  try: sqlite3 {self.db_path} "
                "'select symbol, count(*), avg(quality_score) from bars group by 1'",
            ]
        where = describe_url(self.database_url)
        return [
            f"PostgreSQL database: {where}, schema {self.database_schema}",
            f"  try: psql '{where}' -c 'select symbol, count(*), avg(quality_score) "
            f'from "{self.database_schema}".bars group by 1\'',
        ]


class Unset(str):
    """A string option's default, told apart from the same text given on the command line."""

    __slots__ = ()


def storing_of(args: argparse.Namespace) -> Storing:
    """Where a command stores, and the Config it starts from.

    With ``--config FILE`` the Config is :meth:`Config.from_file` (the file, then the
    environment); ``--database-url`` and ``--database-schema``, when given, win over it,
    and ``--output`` always says where the SQLite file and the disk cache are.
    """
    path = getattr(args, "config", None)
    if path is None:
        return Storing(args.output, args.database_url, args.database_schema)
    base = Config.from_file(path)
    url = args.database_url if args.database_url is not None else base.database_url
    schema = args.database_schema
    if isinstance(schema, Unset):
        schema = base.database_schema
    return Storing(args.output, url, str(schema), base)


async def run_replay(
    feed: ReplayFeed, storing: Storing, progress: Progress, *, show_progress: bool = True
) -> int:
    """Replay ``feed`` through a DataEngine storing as ``storing`` says; print the report.

    ``progress.total`` is the number of items the feed will emit; ``progress.replayed``
    counts those delivered, so an interrupted run can say how far it got.
    """
    from tqdm import tqdm

    config = storing.config()
    warnings = list(progress.warnings)
    if all(feed.calendar(symbol) is None for symbol in feed.symbols):
        for symbol in feed.symbols:  # an exchange calendar loads slowly: off the loop
            warnings += await asyncio.to_thread(_calendar_warnings, feed, symbol)
    for line in warnings:
        sys.stdout.write(f"warning: {line}\n")
    sys.stdout.flush()
    total = progress.total
    flagged: dict[str, list[str]] = {}
    bar = tqdm(total=total, unit="msg", disable=not show_progress, file=sys.stderr, smoothing=0.1)

    def on_data(symbol: str, data: MarketData, quality: DataQualityLevel) -> None:
        progress.replayed += 1
        bar.update(1)
        if quality.value < DataQualityLevel.GOOD.value:
            flagged.setdefault(symbol, []).append(_describe(data, quality))

    def on_book(symbol: str, book: Any, quality: DataQualityLevel) -> None:
        progress.replayed += 1
        bar.update(1)

    engine = DataEngine(config)
    engine.add_feed(feed)
    engine.add_data_callback(on_data)
    engine.add_book_callback(on_book)
    try:
        for symbol in feed.symbols:  # before start: trading calendars load here
            await engine.subscribe_symbol(symbol, data=feed.data_of(symbol))
        started = time.perf_counter()
        async with engine:
            await feed.wait_finished()
            await engine.wait_idle()
            bar.update(total - bar.n)
            elapsed = time.perf_counter() - started
            reports = {s: await engine.get_data_quality_report(s) for s in feed.symbols}
            history = await _history_demo(engine, feed)
            metrics = engine.get_metrics()
            books = {s: engine.get_book(s) for s in feed.symbols if "book" in feed.data_of(s)}
    finally:
        bar.close()
    _print_report(reports, flagged, metrics, history, elapsed, total, storing)
    _print_books(books, metrics)
    return 0


def named_calendar(name: str | None) -> tuple[Any, list[str]]:
    """Return the calendar ``--calendar`` names, or None and a warning when it cannot be loaded."""
    from lean_data.series.calendars import calendar_named

    if name is None:
        return None, []
    try:
        return calendar_named(name), []
    except ConfigError as exc:
        return None, [f"no trading calendar {name!r}: {exc}; using each symbol's asset class"]


def _calendar_warnings(feed: ReplayFeed, symbol: str) -> list[str]:
    """Say why ``symbol``'s gaps will be judged 24/7 when it is not crypto; [] otherwise."""
    from lean_data.series.calendars import calendar_for

    kind = feed.asset_class(symbol) or classify_symbol(symbol)
    if kind is None:
        return [
            f"no asset class for {symbol!r} (neither its file nor its name says one): its "
            "gaps are judged 24/7; pass --asset-class or --calendar"
        ]
    try:
        calendar_for(symbol, kind)
    except ConfigError as exc:
        return [
            f"no trading calendar for {symbol} ({kind.value}): {exc}; every missing bar "
            "counts as a gap"
        ]
    return []


def _print_books(books: dict[str, Any], metrics: dict[str, Any]) -> None:
    """The order books the replay kept (files of order-book captures), one line each."""
    if not books:
        return
    lane = metrics.get("books", {})
    out = sys.stdout.write
    out(
        f"\nOrder books: {lane.get('messages', 0):,} messages, {lane.get('applied', 0):,} "
        f"applied, {lane.get('invalid', 0)} invalid, {lane.get('resyncs', 0)} re-syncs\n"
    )
    for symbol, book in books.items():
        if book is None:
            out(f"  {symbol:<14} no book (no snapshot reached the engine)\n")
            continue
        bid, ask = book.best_bid, book.best_ask
        top = (
            f"bid {bid.price:g} x {bid.size:g}  ask {ask.price:g} x {ask.size:g}"
            if (bid is not None and ask is not None)
            else "one side empty"
        )
        state = "valid" if book.valid else f"INVALID ({book.invalid_reason})"
        out(f"  {symbol:<14} {state:<8} {len(book):>5} levels  {top}\n")


async def _history_demo(engine: DataEngine, feed: ReplayFeed) -> dict[str, Any]:
    symbol = "SPY" if "SPY" in feed.symbols else feed.symbols[0]
    latest = engine.get_latest(symbol, 1)
    if not latest:
        return {}
    end = latest[0].ts_event + 1
    start = end - 86_400 * 10**9
    timings = []
    for _ in range(2):
        t0 = time.perf_counter()
        bars = await engine.get_historical_data(symbol, start, end, "1h")
        timings.append((time.perf_counter() - t0) * 1000)
    return {"symbol": symbol, "bars": len(bars), "first_ms": timings[0], "cached_ms": timings[1]}


def _describe(data: MarketData, quality: DataQualityLevel) -> str:
    if isinstance(data, TradeBar):
        values = (
            f"O {data.open:g} H {data.high:g} L {data.low:g} C {data.close:g} V {data.volume:g}"
        )
    else:
        values = type(data).__name__
    return f"{data.time:%Y-%m-%dT%H:%M:%SZ} {quality.name:<5} {values}"


def _print_report(
    reports: dict[str, dict[str, Any]],
    flagged: dict[str, list[str]],
    metrics: dict[str, Any],
    history: dict[str, Any],
    elapsed: float,
    total: int,
    storing: Storing,
) -> None:
    out = sys.stdout.write
    out(f"\nReplayed {total:,} real messages in {elapsed:.2f} s ({total / elapsed:,.0f} msg/s)\n\n")
    out("Data quality per symbol (items per level; why items lost points)\n")
    levels = [level.name for level in sorted(DataQualityLevel, key=lambda v: -v.value)]
    rows = []
    for symbol, report in reports.items():
        for feed, stats in report["feeds"].items():
            reasons = stats.get("reasons") or {}
            rows.append(
                [symbol, feed, f"{stats['messages']:,}", f"{stats['average_score']:.3f}"]
                + [f"{stats['levels'].get(name, 0):,}" for name in levels]
                + [", ".join(f"{why} {n:,}" for why, n in reasons.items())]
            )
    header = ["symbol", "feed", "items", "avg", *levels, "reasons"]
    numbers = range(2, 4 + len(levels))
    out("\n".join(aligned(header, rows, right=numbers, indent="  ")) + "\n")
    place = {symbol: i for i, symbol in enumerate(reports)}  # the table's order, not the
    for symbol in sorted(flagged, key=lambda s: (place.get(s, len(place)), s)):  # streams'
        items = flagged[symbol]  # interleaving, which depends on scheduling
        out(f"\n  flagged {symbol} ({len(items)}):\n")
        for line in items[:5]:
            out(f"    {line}\n")
        if len(items) > 5:
            out(f"    ... {len(items) - 5} more\n")
    engine = metrics["engine"]
    latency = engine.get("latency_ms", {})
    out("\nMetrics\n")
    out(
        f"  messages {engine.get('messages', 0):,}  invalid {engine.get('invalid', 0)}  "
        f"errors {engine.get('errors', 0)}  drops {engine.get('drops', 0)}\n"
    )
    outcomes = engine.get("outcomes", {})
    if outcomes:
        shown = "  ".join(f"{name} {count:,}" for name, count in outcomes.items() if count)
        out(f"  what became of each item: {shown or 'nothing yet'}\n")
    out(
        f"  pipeline latency ms: avg {latency.get('avg', 0):.3f}  p50 {latency.get('p50', 0):.3f}"
        f"  p99 {latency.get('p99', 0):.3f}\n"
    )
    series = metrics.get("continuity", {})
    out(
        f"  gaps {series.get('gaps', 0)} ({series.get('missing_reported', 0)} bars missing, "
        f"{series.get('backfilled', 0)} backfilled; rows of kind 'gap' in the errors table)"
        f"  duplicates {series.get('duplicates', 0)}\n"
    )
    storage = metrics.get("storage", {})
    backend = "SQLite" if storing.database_url is None else "PostgreSQL"
    out(
        f"  rows written to {backend} {storage.get('rows_written', 0):,} "
        f"in {storage.get('batches', 0)} batches\n"
    )
    if history:
        out(
            f"  history {history['symbol']} 1h over one day: {history['bars']} bars, "
            f"{history['first_ms']:.1f} ms from the files, "
            f"{history['cached_ms']:.2f} ms from cache\n"
        )
    out("\n" + "\n".join(storing.lines()) + "\n")
