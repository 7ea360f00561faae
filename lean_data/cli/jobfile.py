"""The job tables of a ``lean-data.toml``: ``[feeds.NAME]``, ``[backfill]`` and ``[replay]``.

One file holds a desk's setup. Its top-level keys and ``[validation]`` are the engine's
settings, read by :meth:`~lean_data.config.Config.from_file` (which skips the tables named
here); this module reads the rest for the ``lean-data`` command::

    buffer_size = 20000                 # a Config field

    [feeds.alpaca]                      # a feed: its type, then its constructor's options
    type = "alpaca"
    source = "iex"

    [backfill]                          # what `lean-data backfill --config FILE` fetches
    feed = "alpaca"
    symbols = ["AAPL", "MSFT", "SPY"]
    start = "2024-01-02"
    end = "2024-01-03"
    resolution = "1m"

    [replay]                            # what `lean-data replay --config FILE` replays
    files = ["data/*.zip"]              # paths or globs, relative to this file
    calendar = "XNYS"

Every problem is one line ``<file>:<line>: <key>: <problem>`` (a :class:`ConfigError`):
an unknown table or key (with the closest known one), a value of the wrong type, a feed of
an unknown type, a glob that matches nothing. A feed's options are checked against its
class when the feed is built (:func:`lean_data.cli.feeds.build_feed`), at the line of the
option.
"""

from __future__ import annotations

import difflib
import glob
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lean_data.cli.feeds import FeedSpec
from lean_data.config import read_toml, toml_repr
from lean_data.errors import ConfigError
from lean_data.models import AssetClass

__all__ = ["FEED_TYPES", "BackfillJob", "JobFile", "ReplayJob", "read_jobfile"]

FEED_TYPES = ("alpaca", "binance", "ccxt")
"""What ``type =`` of a ``[feeds.NAME]`` table may say."""


@dataclass(frozen=True)
class BackfillJob:
    """The ``[backfill]`` table: which feed, symbols, range and bar period to fetch."""

    feed: str | None
    symbols: tuple[str, ...]
    start: str | None
    end: str | None
    resolution: str | None
    where: str = ""


@dataclass(frozen=True)
class ReplayJob:
    """The ``[replay]`` table: the files to replay and how to read them."""

    files: tuple[Path, ...]
    asset_class: str | None = None
    calendar: str | None = None
    format: str | None = None
    symbol: str | None = None
    resolution: str | None = None
    columns: dict[str, int | str] | None = None
    check_spacing: bool = True
    speed: float | None = None
    where: str = ""


@dataclass(frozen=True)
class JobFile:
    """What a ``lean-data.toml`` says beyond the engine's settings."""

    path: Path
    feeds: dict[str, FeedSpec] = field(default_factory=dict)
    backfill: BackfillJob | None = None
    replay: ReplayJob | None = None


Where = Callable[..., str]


def read_jobfile(path: str | Path) -> JobFile:
    """Read the ``[feeds.*]``, ``[backfill]`` and ``[replay]`` tables of ``path``.

    The engine's settings in the same file are :meth:`Config.from_file`'s to check; a
    file without job tables gives an empty :class:`JobFile`.

    Raises:
        ConfigError: one line naming the file, the line and the key.
    """
    source = Path(path)
    table, where = read_toml(source)
    feeds = _feeds(table.get("feeds"), where)
    backfill = _backfill(table.get("backfill"), where)
    replay = _replay(table.get("replay"), source.parent, where)
    return JobFile(source, feeds, backfill, replay)


def _table(value: object, name: str, where: Where, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where(name)}: {name} = {toml_repr(value)} is not valid: expected a table "
            f"([{name}]) {what}"
        )
    return value


def _check_keys(
    table: Mapping[str, object], inside: str, known: tuple[str, ...], where: Where
) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {inside}.{close[0]}?" if close else ""
            raise ConfigError(
                f"{where(inside, key)}: unknown key {inside}.{key!r} (known: "
                f"{', '.join(known)}){hint}"
            )


def _feeds(value: object, where: Where) -> dict[str, FeedSpec]:
    if value is None:
        return {}
    feeds = _table(value, "feeds", where, "of [feeds.NAME] tables")
    specs: dict[str, FeedSpec] = {}
    for name, spec in feeds.items():
        options = dict(_table(spec, f"feeds.{name}", where, "with type = and the options"))
        kind = options.pop("type", None)
        if kind is None:
            raise ConfigError(
                f"{where('feeds', name)}: feeds.{name}: no type; add type = one of "
                f"{', '.join(repr(t) for t in FEED_TYPES)}"
            )
        if kind not in FEED_TYPES:
            close = difflib.get_close_matches(str(kind), FEED_TYPES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{where('feeds', name, 'type')}: feeds.{name}.type = {toml_repr(kind)} is "
                f"not valid: expected one of {', '.join(repr(t) for t in FEED_TYPES)}{hint}"
            )
        specs[name] = FeedSpec(name, kind, options, where("feeds", name))
    return specs


_BACKFILL_KEYS = ("feed", "symbols", "start", "end", "resolution")


def _backfill(value: object, where: Where) -> BackfillJob | None:
    if value is None:
        return None
    job = _table(value, "backfill", where, "with feed, symbols, start, end, resolution")
    _check_keys(job, "backfill", _BACKFILL_KEYS, where)
    text = _texts(job, "backfill", where)
    return BackfillJob(
        feed=text("feed"),
        symbols=_strings(job, "backfill", "symbols", where, '["AAPL", "MSFT"]'),
        start=_when(job, "start", where),
        end=_when(job, "end", where),
        resolution=text("resolution"),
        where=where("backfill"),
    )


_REPLAY_KEYS = (
    "files",
    "asset_class",
    "calendar",
    "format",
    "symbol",
    "resolution",
    "columns",
    "check_spacing",
    "speed",
)


def _replay(value: object, base: Path, where: Where) -> ReplayJob | None:
    if value is None:
        return None
    job = _table(value, "replay", where, "with files = [...] and how to read them")
    _check_keys(job, "replay", _REPLAY_KEYS, where)
    text = _texts(job, "replay", where)
    asset_class = text("asset_class")
    kinds = [kind.value for kind in AssetClass]
    if asset_class is not None and asset_class not in kinds:
        raise _invalid(where, "replay", "asset_class", asset_class, f"one of {', '.join(kinds)}")
    check_spacing = job.get("check_spacing", True)
    if not isinstance(check_spacing, bool):
        raise _invalid(where, "replay", "check_spacing", check_spacing, "true or false")
    speed = job.get("speed")
    if speed is not None and (
        isinstance(speed, bool)
        or not isinstance(speed, int | float)
        or not (speed > 0 and math.isfinite(speed))
    ):
        raise _invalid(where, "replay", "speed", speed, "a number > 0 (1 is real time)")
    return ReplayJob(
        files=_files(job, base, where),
        asset_class=asset_class,
        calendar=text("calendar"),
        format=text("format"),
        symbol=text("symbol"),
        resolution=text("resolution"),
        columns=_columns(job, where),
        check_spacing=check_spacing,
        speed=None if speed is None else float(speed),
        where=where("replay"),
    )


def _invalid(where: Where, table: str, key: str, value: object, expected: str) -> ConfigError:
    return ConfigError(
        f"{where(table, key)}: {table}.{key} = {toml_repr(value)} is not valid: expected {expected}"
    )


def _texts(job: Mapping[str, object], table: str, where: Where) -> Callable[[str], str | None]:
    def text(key: str) -> str | None:
        value = job.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise _invalid(where, table, key, value, "a non-empty string")
        return value

    return text


def _strings(
    job: Mapping[str, object], table: str, key: str, where: Where, example: str
) -> tuple[str, ...]:
    value = job.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _invalid(where, table, key, value, f"an array of strings, e.g. {example}")
    return tuple(value)


def _when(job: Mapping[str, object], key: str, where: Where) -> str | None:
    """A date or date-time: a TOML date/datetime or an ISO string (checked by the command)."""
    value = job.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.strip():
        return value
    if hasattr(value, "isoformat"):  # an unquoted TOML date or date-time
        return str(value.isoformat())
    raise _invalid(where, "backfill", key, value, 'a date or date-time, e.g. "2024-01-02"')


def _files(job: Mapping[str, object], base: Path, where: Where) -> tuple[Path, ...]:
    patterns = _strings(job, "replay", "files", where, '["data/*.zip"]')
    if not patterns:
        raise ConfigError(
            f"{where('replay', 'files')}: replay.files: no files; list them, e.g. "
            'files = ["data/*.zip"] (relative to the config file)'
        )
    found: list[Path] = []
    for pattern in patterns:
        full = Path(pattern).expanduser()
        full = full if full.is_absolute() else base / full
        if glob.has_magic(str(full)):
            matches = sorted(Path(p) for p in glob.glob(str(full), recursive=True))
            if not matches:
                raise ConfigError(
                    f"{where('replay', 'files')}: replay.files: {pattern!r} matches no file "
                    f"(looked in {full.parent}); check the pattern"
                )
            found += matches
        else:
            found.append(full)
    return tuple(found)


def _columns(job: Mapping[str, object], where: Where) -> dict[str, int | str] | None:
    value = job.get("columns")
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
        for v in value.values()
    ):
        raise _invalid(
            where,
            "replay",
            "columns",
            value,
            "a table of NAME = header name or 0-based position, e.g. "
            "{ time = 0, open = 1, high = 2, low = 3, close = 4 }",
        )
    return dict(value)
