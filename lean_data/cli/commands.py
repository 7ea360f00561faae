"""The ``lean-data`` command.

``lean-data demo`` replays the bundled real data through the whole pipeline (validate,
score, buffer, callbacks, cache, SQLite) with a progress bar, then prints the quality
report and the metrics and says where the SQLite file is. No network, no credentials.

``lean-data replay FILE... [--asset-class crypto] [--calendar XNYS]`` does the same with
your files (``--format``, ``--columns``, ``--symbol``, ``--resolution`` and
``--no-check-spacing`` when a file needs telling how to read it).

Every error is one line on stderr, ``lean-data: error: <file>: <problem>; <what to do>``,
with exit status 1 (2 for a bad command line); ``--debug`` shows the traceback instead.
Inputs are checked before the output directory is created. Ctrl-C stops the replay and
prints ``interrupted: N items replayed`` (exit status 130).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from lean_data import __version__
from lean_data.cli import backfill, catalog, distribute, report, transfer
from lean_data.cli.jobfile import read_jobfile
from lean_data.cli.messages import (
    CliError,
    check_input,
    naming,
    one_line,
    prepare_output,
)
from lean_data.cli.run import Progress, Unset, named_calendar, run_replay, storing_of
from lean_data.compiled import variant
from lean_data.engine import runner
from lean_data.errors import LeanDataError
from lean_data.feeds.replay import ReplayFeed
from lean_data.loaders import FORMATS
from lean_data.models import AssetClass

__all__ = ["DEMO_DATA", "demo_files", "main"]

DEMO_DATA = Path(__file__).resolve().parent.parent / "demo_data"
PROG = "lean-data"
INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a Ctrl-C

log = logging.getLogger(__name__)

_TOOLS = (catalog, backfill, transfer, report)  # each: COMMANDS, add_parsers(), run(args)


def demo_files() -> list[Path]:
    """Return the bundled real data files, in a stable order."""
    return sorted(p for p in DEMO_DATA.rglob("*.zip"))


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line too (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see {self.prog} --help)\n")


def _positive_speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"must be > 0, got {text!r} (1 is real time, 60 a minute per second; "
            "leave it out to replay as fast as possible)"
        )
    return value


def _columns(text: str) -> dict[str, int | str]:
    """Parse ``time=0,open=Open,...`` into the csv loader's ``columns`` mapping."""
    mapping: dict[str, int | str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise argparse.ArgumentTypeError(
                f"expected NAME=COLUMN pairs such as time=0,open=1,high=2,low=3,close=4 "
                f"(COLUMN a header name or a 0-based position), got {part!r}"
            )
        value = value.strip()
        mapping[key.strip()] = int(value) if value.isdigit() else value
    return mapping


def _common_options(parser: argparse.ArgumentParser, default_output: str) -> None:
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(default_output),
        help=f"directory for the SQLite file and the disk cache, created if missing "
        f"(default: {default_output})",
    )
    parser.add_argument(
        "--speed",
        type=_positive_speed,
        default=None,
        help="replay speed factor by event time, > 0: 1 is real time, 60 a minute per "
        "second (default: as fast as possible)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("LEAN_DATA_DATABASE_URL") or None,
        metavar="URL",
        help="store in PostgreSQL (postgresql://user@host:5432/db; needs the postgres extra) "
        "instead of the SQLite file (default: $LEAN_DATA_DATABASE_URL, else SQLite)",
    )
    parser.add_argument(
        "--database-schema",
        default=Unset(os.environ.get("LEAN_DATA_DATABASE_SCHEMA") or "lean_data"),
        metavar="NAME",
        help="the PostgreSQL schema of the tables, created if missing "
        "(default: $LEAN_DATA_DATABASE_SCHEMA, else lean_data)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="start from the settings of this TOML file (then LEAN_DATA_* variables; the "
        "options given here win; see docs/configuration.md#config-file)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log more: -v for INFO, -vv for DEBUG (default: warnings and errors)",
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        type=str.upper,
        default=None,
        help="log level of the engine's messages on stderr (overrides -v)",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def build_parser() -> argparse.ArgumentParser:
    """Return the ``lean-data`` argument parser."""
    parser = _Parser(prog=PROG, description=__doc__.splitlines()[0])
    version = f"%(prog)s {__version__} ({variant().describe()})"  # compiled or pure Python
    parser.add_argument("--version", action="version", version=version)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    demo = sub.add_parser("demo", help="replay bundled real data through the whole pipeline")
    _common_options(demo, "lean_data_demo")
    replay = sub.add_parser(
        "replay", help="replay your own files (CSV, LEAN zip, Binance, freqtrade)"
    )
    replay.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="FILE",
        help="market-data files to replay (default: the [replay] table of --config)",
    )
    _common_options(replay, "lean_data_replay")
    replay.add_argument(
        "--asset-class",
        choices=[kind.value for kind in AssetClass],
        default=None,
        help="what the files' symbols are (default: from the file format, else the name)",
    )
    replay.add_argument(
        "--calendar",
        default=None,
        help="trading calendar for every symbol: 24/7, forex, cme, cme-equity or an "
        "exchange_calendars code such as XNYS (default: from the asset class)",
    )
    replay.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="the files' format (default: detected from each file's name and content)",
    )
    replay.add_argument(
        "--columns",
        type=_columns,
        default=None,
        metavar="NAME=COLUMN,...",
        help="CSV columns by header name or 0-based position, e.g. "
        "time=0,open=1,high=2,low=3,close=4,volume=5 (names: time, date, open, high, low, "
        "close, volume); implies --format csv",
    )
    replay.add_argument(
        "--symbol", default=None, help="the symbol of every file (default: from each file name)"
    )
    replay.add_argument(
        "--resolution",
        default=None,
        help="the bar period, e.g. 1m, 1h, 1d (default: from the path, name or row spacing)",
    )
    replay.add_argument(
        "--no-check-spacing",
        action="store_true",
        help="load bars whose spacing contradicts the resolution instead of stopping",
    )
    distribute.add_parsers(sub, _common_options)
    for module in _TOOLS:
        module.add_parsers(sub, _common_options)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lean-data`` command line; return the exit status."""
    args = build_parser().parse_args(argv)
    _configure_logging(args)
    progress = Progress()
    try:
        for module in _TOOLS:
            if args.command in module.COMMANDS:
                status: int = module.run(args)
                return status
        if args.command in ("collect", "serve"):
            sources = _build_sources(args, progress)
            storing = storing_of(args)  # a bad --config file: before any output
            prepare_output(args.output)
            return distribute.run(args, sources, storing)
        feed = _build_feed(args, progress)
        storage = storing_of(args)
        prepare_output(args.output)
        return runner.run(
            run_replay(feed, storage, progress, show_progress=not args.no_progress),
            config=storage.base,
        )
    except KeyboardInterrupt:
        if args.debug:
            raise
        sys.stdout.flush()
        sys.stderr.write(
            f"{PROG}: interrupted: {progress.replayed:,} of {progress.total:,} items replayed\n"
        )
        return INTERRUPTED
    except (LeanDataError, CliError, OSError) as exc:
        if args.debug:
            raise
        sys.stdout.flush()
        sys.stderr.write(f"{PROG}: error: {one_line(exc)}\n")
        return 1
    except Exception as exc:  # a bug of ours: still one line, the traceback on request
        if args.debug:
            raise
        sys.stdout.flush()
        sys.stderr.write(
            f"{PROG}: error: unexpected {type(exc).__name__}: {one_line(exc)}; rerun with "
            "--debug for the traceback and report it\n"
        )
        return 1


def _configure_logging(args: argparse.Namespace) -> None:
    level = args.log_level or ("WARNING", "INFO", "DEBUG")[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _build_feed(args: argparse.Namespace, progress: Progress) -> ReplayFeed:
    """Check every input and return the feed that replays them (nothing written yet)."""
    if args.command == "demo":
        return _counted(ReplayFeed("replay", demo_files(), speed=args.speed), progress)
    _from_jobfile(args)
    calendar, progress.warnings = named_calendar(args.calendar)
    feed = ReplayFeed("replay", speed=args.speed, asset_class=args.asset_class, calendar=calendar)
    options = _loader_options(args)
    for path in args.files:
        check_input(path)
        try:
            feed.add_source(path, **options)
        except LeanDataError as exc:
            raise CliError(naming(path, exc)) from exc
    return _counted(feed, progress)


def _from_jobfile(args: argparse.Namespace) -> None:
    """Fill what the command line left out of a replay from the --config file's [replay]."""
    job = read_jobfile(args.config).replay if args.config is not None else None
    if job is None:
        if not args.files:
            where = f"{args.config} has no [replay] table" if args.config else "no --config"
            raise CliError(
                f"no FILE to replay and {where}; pass the files (lean-data replay data/*.csv) "
                "or a config file with a [replay] table (docs/cli.md#replay)"
            )
        return
    if not args.files:  # the files come as one set, from the command line or the table
        args.files = list(job.files)
    for key in ("asset_class", "calendar", "format", "symbol", "resolution", "columns", "speed"):
        if getattr(args, key) is None:
            setattr(args, key, getattr(job, key))
    if not job.check_spacing:
        args.no_check_spacing = True


def _build_sources(args: argparse.Namespace, progress: Progress) -> ReplayFeed | None:
    """The replay feed of ``collect``/``serve`` (files, or --demo), or None without any."""
    if args.demo:
        return _counted(ReplayFeed("replay", demo_files(), speed=args.speed), progress)
    if not args.files:
        return None
    feed = ReplayFeed("replay", speed=args.speed)
    for path in args.files:
        check_input(path)
        try:
            feed.add_source(path)
        except LeanDataError as exc:
            raise CliError(naming(path, exc)) from exc
    return _counted(feed, progress)


def _loader_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {
        "format": args.format or ("csv" if args.columns else None),
        "symbol": args.symbol,
        "resolution": args.resolution,
    }
    if args.columns:
        options["columns"] = args.columns
    if args.no_check_spacing:
        options["check_spacing"] = False
    return options


def _counted(feed: ReplayFeed, progress: Progress) -> ReplayFeed:
    """Read every file once (a malformed row anywhere fails here, before any output)."""
    for symbol in feed.symbols:
        progress.total += feed.count(symbol)
    return feed
