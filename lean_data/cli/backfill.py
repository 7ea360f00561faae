"""``lean-data backfill FEED SYMBOL... --start --end --resolution``: fetch history into the store.

Only what the store does not cover is fetched: per symbol, the store's missing intervals
(neither stored nor known to be empty, :meth:`Storage.missing_intervals`) are split into
chunks of ``--chunk-bars`` bar periods, aligned to the epoch, and each chunk is asked of a
:class:`~lean_data.engine.DataEngine` (``get_historical_data``), the one owner of "read
what is missing, ask the feed, save, record coverage (empty when the feed had nothing)".
A chunk is durable with its coverage once it returns, so an interrupted run (Ctrl-C, a
kill) resumes with the next chunk and ends with the same rows as an uninterrupted one.

The feed's history only is used (:class:`~lean_data.cli.feeds.HistoryOnly`: no live
stream is opened). Its retries of rate-limited requests (``Retry-After``) are counted in
the summary; a chunk that still fails is reported (summary, an errors row of kind
``backfill_failed``, exit status 1) and its range stays missing for the next run. Bad
credentials stop the run; an unknown symbol stops that symbol.

With ``--config FILE`` the file's ``[feeds.NAME]`` tables define feeds and its
``[backfill]`` table the job; FEED, SYMBOL..., ``--start``, ``--end`` and ``--resolution``
given on the command line win over it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lean_data.cli.feeds import (
    FeedSpec,
    HistoryOnly,
    build_feed,
    merge_options,
    parse_option,
    spec_for,
)
from lean_data.cli.run import Storing, storing_of
from lean_data.config import Config
from lean_data.engine import runner
from lean_data.errors import FeedAuthError, FeedError, LeanDataError, SubscriptionError
from lean_data.models import Resolution, datetime_to_ns

__all__ = ["COMMANDS", "BackfillError", "Job", "SymbolRun", "add_parsers", "chunks", "run"]

COMMANDS: tuple[str, ...] = ("backfill",)
CHUNK_BARS = 1440  # a day of minutes per chunk: each finished chunk is stored with its coverage
INTERRUPTED = 130  # 128 + SIGINT
PROG = "lean-data"


class BackfillError(LeanDataError):
    """What ``backfill`` cannot do, printed as one line."""


@dataclass(frozen=True)
class Job:
    """A checked backfill: which feed, symbols, range (ns, ``[start, end)``) and period."""

    spec: FeedSpec
    symbols: tuple[str, ...]
    start_ns: int
    end_ns: int
    resolution: Resolution
    chunk_bars: int = CHUNK_BARS


@dataclass
class SymbolRun:
    """What a backfill did for one symbol (readable after an interruption)."""

    symbol: str
    stored: int = 0  # bars already stored in the range before the run (not fetched)
    planned: list[tuple[int, int]] = field(default_factory=list)  # the chunks to fetch
    fetched: int = 0
    chunks: int = 0
    empty: int = 0
    failed: int = 0
    retries: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def add_parsers(sub: Any, common_options: Callable[[argparse.ArgumentParser, str], None]) -> None:
    """Add the ``backfill`` subcommand to ``lean-data``'s subparsers."""
    parser = sub.add_parser(
        "backfill", help="fetch a feed's history into the store (only what it lacks)"
    )
    parser.add_argument(
        "feed",
        nargs="?",
        metavar="FEED",
        help="alpaca, binance, a ccxt exchange id (kraken, okx, ...) or a [feeds.NAME] of "
        "the --config file",
    )
    parser.add_argument("symbols", nargs="*", metavar="SYMBOL", help="e.g. AAPL or BTC/USDT")
    common_options(parser, "lean_data_backfill")
    parser.add_argument("--start", help="first bar's time, ISO 8601 UTC: 2024-01-02[T09:30]")
    parser.add_argument("--end", help="end of the range, exclusive, ISO 8601 UTC (default: now)")
    parser.add_argument("--resolution", help="bar period: 1m, 5m, 1h, 1d (default: 1m)")
    parser.add_argument(
        "--feed-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a constructor option of the feed (TOML value), e.g. rest_url=http://host:port, "
        "request_attempts=20, backoff.base_s=0.1; repeatable",
    )
    parser.add_argument(
        "--chunk-bars",
        type=int,
        default=CHUNK_BARS,
        metavar="N",
        help=f"bar periods per request chunk, stored as each one ends (default: {CHUNK_BARS})",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``backfill`` as ``args`` say; return the exit status (130 when interrupted)."""
    job = job_of(args)  # every input checked before anything is created
    storing = storing_of(args)
    credentials = (storing.base or Config.from_env()).credentials
    feed = HistoryOnly(build_feed(job.spec, credentials))
    _prepare(storing)
    runs = [SymbolRun(symbol) for symbol in job.symbols]
    try:
        failed = runner.run(
            _backfill(job, feed, storing, runs, not args.no_progress), config=storing.base
        )
    except KeyboardInterrupt:
        if args.debug:
            raise
        sys.stdout.write(format_summary(job, runs, storing))
        sys.stdout.flush()
        done = sum(r.chunks for r in runs)
        total = sum(len(r.planned) for r in runs)
        sys.stderr.write(
            f"{PROG}: interrupted: {done} of {total} chunks stored; run the same command "
            "again to fetch the rest\n"
        )
        return INTERRUPTED
    sys.stdout.write(format_summary(job, runs, storing))
    sys.stdout.flush()
    if failed:
        first = next(e for r in runs for e in r.errors)
        sys.stderr.write(
            f"{PROG}: error: {failed} chunks failed (first: {first}); run the same command "
            "again to fetch them (their ranges stay missing; errors table, kind "
            "backfill_failed)\n"
        )
        return 1
    return 0


# ------------------------------------------------------------------------ the inputs
def job_of(args: argparse.Namespace) -> Job:
    """The backfill ``args`` ask for: the command line over the ``--config`` file's job.

    Raises:
        LeanDataError: one line naming the bad input and what to pass instead.
    """
    defined: dict[str, FeedSpec] = {}
    table: Any = None
    if args.config is not None:
        from lean_data.cli.jobfile import read_jobfile

        jobfile = read_jobfile(args.config)
        defined, table = jobfile.feeds, jobfile.backfill

    def given(name: str) -> Any:
        value = getattr(args, name)
        return value if value else getattr(table, name, None)

    feed = given("feed")
    if feed is None:
        raise BackfillError(
            "no FEED; pass one (alpaca, binance or a ccxt exchange id), or --config FILE "
            "with a [backfill] table"
        )
    symbols = tuple(given("symbols") or ())
    if not symbols:
        raise BackfillError(f"no SYMBOL; pass one or more after {feed}, e.g. {feed} BTC/USDT")
    try:
        resolution = Resolution.parse(given("resolution") or "1m")
    except ValueError as exc:
        raise BackfillError(f"--resolution: {exc}") from None
    if resolution.is_tick:
        raise BackfillError("--resolution tick: backfill fetches bars; pass 1m, 1h, 1d, ...")
    start_text = given("start")
    if start_text is None:
        raise BackfillError("no --start; pass the first bar's time, e.g. --start 2024-01-02")
    start = instant(start_text, "--start")
    end_text = given("end")
    now = time.time_ns()
    end = instant(end_text, "--end") if end_text else resolution.floor(now)
    if start >= end:
        raise BackfillError(
            f"--start {iso(start)} is not before --end {iso(end)}; pass a start before the end"
        )
    if args.chunk_bars < 1:
        raise BackfillError(f"--chunk-bars {args.chunk_bars}: expected 1 or more")
    cli_options = merge_options([parse_option(text) for text in args.feed_option])
    spec = spec_for(feed, defined, cli_options)
    _check_period(spec.type, resolution)
    return Job(spec, symbols, start, end, resolution, args.chunk_bars)


def instant(text: str, option: str) -> int:
    """Parse an ISO 8601 date or date-time (UTC unless it names an offset) to ns."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BackfillError(
            f"{option} {text!r}: not a date or time; use ISO 8601, e.g. 2024-01-02 or "
            "2024-01-02T09:30 (UTC unless it ends in Z or +HH:MM)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return datetime_to_ns(when)


def _check_period(kind: str, resolution: Resolution) -> None:
    """Refuse a bar period the venue has no bars of, before anything is fetched."""
    if kind == "alpaca":
        from lean_data.wire.alpaca.rest import timeframe_of as check
    elif kind == "binance":
        from lean_data.wire.binance import kline_channel as check
    else:
        from lean_data.wire.ccxt.rows import timeframe_of as check
    try:
        check(resolution)
    except ValueError as exc:
        raise BackfillError(
            f"--resolution {resolution.name}: {kind} has no such bars ({exc}); pass another"
        ) from None


def _prepare(storing: Storing) -> None:
    output = storing.output
    if output.exists() and not output.is_dir():
        raise BackfillError(
            f"--output {output}: exists and is not a directory; pass a directory "
            "(it is created if missing)"
        )
    if storing.database_url is None:
        output.mkdir(parents=True, exist_ok=True)


# ------------------------------------------------------------------------ the run
def chunks(start: int, end: int, span: int) -> list[tuple[int, int]]:
    """Split ``[start, end)`` at the multiples of ``span`` (so reruns cut the same chunks)."""
    out = []
    while start < end:
        cut = min(end, (start // span + 1) * span)
        out.append((start, cut))
        start = cut
    return out


async def _backfill(
    job: Job, feed: HistoryOnly, storing: Storing, runs: list[SymbolRun], show: bool
) -> int:
    """Plan every symbol, then fetch its chunks in order; return the chunks that failed."""
    from tqdm import tqdm

    from lean_data.engine import DataEngine

    config = dataclasses.replace(storing.config(), cache_dir=None)  # no second copy on disk
    engine = DataEngine(config)
    engine.add_feed(feed)
    async with engine:
        storage = engine.persistence
        assert storage is not None  # Storing always names a database
        span = job.chunk_bars * job.resolution.nanos
        for r in runs:
            stored = await storage.get_market_data(
                r.symbol, job.start_ns, job.end_ns, resolution=job.resolution, feed=feed.name
            )
            r.stored = len(stored)
            missing = await storage.missing_intervals(
                feed.name, r.symbol, job.resolution, job.start_ns, job.end_ns
            )
            r.planned = [c for s, e in missing for c in chunks(s, e, span)]
        slots = [sum(e - s for s, e in r.planned) // job.resolution.nanos for r in runs]
        bars = [
            tqdm(total=n, desc=r.symbol, unit="bar", position=i, disable=not show,
                 file=sys.stderr, leave=True, dynamic_ncols=True)
            for i, (r, n) in enumerate(zip(runs, slots, strict=True))
        ]  # fmt: skip
        overall = tqdm(total=sum(slots), desc="all symbols", unit="bar", position=len(runs),
                       disable=not show, file=sys.stderr, dynamic_ncols=True)  # fmt: skip
        try:
            for r, bar in zip(runs, bars, strict=True):
                await _fetch_symbol(engine, feed, job, r, (bar, overall))
        finally:
            for bar in (*bars, overall):
                bar.close()
    return sum(r.failed for r in runs)


async def _fetch_symbol(
    engine: Any, feed: HistoryOnly, job: Job, r: SymbolRun, bars: Sequence[Any]
) -> None:
    started, retries = time.perf_counter(), feed.request_retries
    storage = engine.persistence
    for number, (start, end) in enumerate(r.planned):
        try:
            got = await engine.get_historical_data(
                r.symbol, start, end, job.resolution, feed_name=feed.name
            )
        except FeedError as exc:
            if isinstance(exc, FeedAuthError):
                raise  # every request would be refused the same way: one line, exit 1
            left = r.planned[number:] if isinstance(exc, SubscriptionError) else [(start, end)]
            r.failed += len(left)
            message = f"{r.symbol} {iso(start)}..{iso(end)}: {exc}"
            r.errors.append(message)
            await storage.save_error("backfill_failed", message, feed=feed.name, symbol=r.symbol)
            if len(left) > 1:  # an unknown symbol: its other chunks would fail too
                break
        else:
            r.chunks += 1
            r.fetched += len(got)
            r.empty += not got
        step = (end - start) // job.resolution.nanos
        for bar in bars:
            bar.update(step)
        bars[0].set_postfix(fetched=r.fetched, refresh=False)
        r.retries = feed.request_retries - retries
        r.seconds = time.perf_counter() - started
    r.seconds = time.perf_counter() - started


# ------------------------------------------------------------------------ the report
def iso(ns: int) -> str:
    """``ns`` since the epoch as ISO 8601 UTC (``2024-01-02T09:30:00Z``)."""
    return datetime.fromtimestamp(ns // 10**9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_summary(job: Job, runs: list[SymbolRun], storing: Storing) -> str:
    """The summary table (aligned columns, ISO times) and a closing line."""
    header = ("symbol", "requested (UTC)", "stored before", "fetched", "chunks", "empty",
              "failed", "retries", "seconds")  # fmt: skip
    span = f"{iso(job.start_ns)}..{iso(job.end_ns)}"
    table = [header] + [
        (r.symbol, span, f"{r.stored:,}", f"{r.fetched:,}", f"{r.chunks}/{len(r.planned)}",
         str(r.empty), str(r.failed), str(r.retries), f"{r.seconds:.2f}")
        for r in runs
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(row))
        for row in table
    ]
    planned = sum(len(r.planned) for r in runs)
    where = storing.lines()[0]
    feed = f"{job.spec.name} {job.resolution.name}"
    if planned == 0:
        tail = (
            f"nothing to fetch: the store already holds (or knows empty) every {feed} bar "
            f"of {len(runs)} symbols in {span}; no request was made"
        )
    else:
        fetched = sum(r.fetched for r in runs)
        done = sum(r.chunks for r in runs)
        tail = (
            f"{feed}: fetched {fetched:,} bars in {done} of {planned} chunks "
            f"({sum(r.empty for r in runs)} empty, {sum(r.failed for r in runs)} failed, "
            f"{sum(r.retries for r in runs)} retries)"
        )
    return "\n".join(line.rstrip() for line in lines) + f"\n\n{tail}\n{where}\n"
