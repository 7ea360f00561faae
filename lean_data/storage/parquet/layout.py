"""Where a Parquet catalog keeps each series: directories, escaped names, date partitions.

Pure path arithmetic (no pyarrow)::

    <root>/bars/<symbol>/<resolution>/date=YYYY-MM-DD/part-<feed>.parquet
    <root>/quote_bars/<symbol>/<resolution>/date=YYYY-MM-DD/part-<feed>.parquet
    <root>/ticks/<symbol>/date=YYYY-MM-DD/part-<feed>.parquet

``<symbol>`` and ``<feed>`` are escaped reversibly (:func:`escape`): ``BTC/USD:USD`` is
``BTC%2FUSD%3AUSD``. The date is the UTC date of the event time (``ts_event``); one file
holds one feed's rows of one day, so feeds exported apart never overwrite each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Final
from urllib.parse import unquote

from lean_data.errors import ConfigError
from lean_data.models import NS_PER_DAY, Resolution, datetime_to_ns
from lean_data.storage.rows import resolution_from_text

__all__ = [
    "KINDS",
    "KIND_DIRS",
    "MAX_NS",
    "MIN_NS",
    "CatalogSeries",
    "bounds",
    "dataset_dir",
    "day_of",
    "day_partitions",
    "days_between",
    "escape",
    "list_series",
    "locate",
    "parse_kind",
    "part_name",
    "partition_dir",
    "unescape",
]

KIND_DIRS: dict[str, str] = {"bar": "bars", "quote": "quote_bars", "tick": "ticks"}
"""The top-level directory of each kind of item (the model's ``kind``)."""

KINDS: tuple[str, ...] = tuple(KIND_DIRS)

_KIND_NAMES = {"bar": "bar", "bars": "bar", "trade_bar": "bar", "tradebar": "bar"}
_KIND_NAMES |= {"quote": "quote", "quotes": "quote", "quote_bar": "quote", "quote_bars": "quote"}
_KIND_NAMES |= {"quotebar": "quote", "tick": "tick", "ticks": "tick"}
_SAFE = re.compile(r"[A-Za-z0-9._-]")
_DATE_DIR = re.compile(r"^date=(\d{4})-(\d{2})-(\d{2})$")
_EPOCH_DAY = date(1970, 1, 1)
MIN_NS: Final = -(2**63)
MAX_NS: Final = 2**63 - 1


def parse_kind(kind: str) -> str:
    """Return ``"bar"``, ``"quote"`` or ``"tick"`` for a kind name (``"bars"``, ``"ticks"``...).

    Raises:
        ConfigError: the name is no kind of item.
    """
    found = _KIND_NAMES.get(kind.strip().lower())
    if found is None:
        raise ConfigError(f"catalog kind: expected one of bar, quote, tick, got {kind!r}")
    return found


def escape(name: str) -> str:
    """Return ``name`` as one safe path segment, reversibly (:func:`unescape`).

    ASCII letters, digits, ``-``, ``_`` and ``.`` stay; every other character is ``%XX``
    per UTF-8 byte, and so is a leading ``.`` or ``_`` (readers skip such files as hidden).

    Raises:
        ConfigError: ``name`` is empty.
    """
    if not name:
        raise ConfigError("a catalog path needs a non-empty symbol")
    out = []
    for index, char in enumerate(name):
        if _SAFE.match(char) and not (index == 0 and char in "._"):
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    return "".join(out)


def unescape(segment: str) -> str:
    """Return the name :func:`escape` turned into ``segment``."""
    return unquote(segment, errors="surrogatepass")


def dataset_dir(root: Path, kind: str, symbol: str, resolution: Resolution | None) -> Path:
    """Return the directory of one series (ticks have no resolution level)."""
    base = root / KIND_DIRS[kind] / escape(symbol)
    if kind == "tick":
        return base
    if resolution is None:
        raise ConfigError(f"a catalog {kind} series needs a resolution")
    return base / resolution.name


def day_of(ts_event: int) -> int:
    """Return the UTC day number (days since 1970-01-01) of a time in ns."""
    return ts_event // NS_PER_DAY


def bounds(start: int | datetime | None, end: int | datetime | None) -> tuple[int, int]:
    """Return ``[start, end)`` in ns; an open side is the int64 limit (naive datetime = UTC)."""
    lo = MIN_NS if start is None else _ns(start)
    hi = MAX_NS if end is None else _ns(end)
    return lo, hi


def days_between(lo: int, hi: int) -> tuple[int, int]:
    """Return the first and last day number holding times in ``[lo, hi)`` (empty: last < first)."""
    first = day_of(lo)
    return first, (day_of(hi - 1) if hi > lo else first - 1)


def _ns(value: int | datetime) -> int:
    return datetime_to_ns(value) if isinstance(value, datetime) else int(value)


def partition_dir(dataset: Path, day: int) -> Path:
    """Return the ``date=YYYY-MM-DD`` directory of day number ``day`` in ``dataset``."""
    return dataset / f"date={(_EPOCH_DAY + timedelta(days=day)).isoformat()}"


def part_name(feed: str) -> str:
    """Return the file name of one feed's rows in a date partition (``part-<feed>.parquet``)."""
    return f"part-{escape(feed) if feed else ''}.parquet"


def day_partitions(dataset: Path) -> list[tuple[int, Path]]:
    """Return ``(day number, directory)`` of every date partition of ``dataset``, by date."""
    if not dataset.is_dir():
        return []
    found = []
    for child in dataset.iterdir():
        match = _DATE_DIR.match(child.name)
        if match is not None and child.is_dir():
            day = date(*map(int, match.groups()))
            found.append(((day - _EPOCH_DAY).days, child))
    found.sort()
    return found


@dataclass(frozen=True)
class CatalogSeries:
    """One series of a catalog: its kind, symbol, resolution and directory.

    Attributes:
        kind: ``"bar"``, ``"quote"`` or ``"tick"``.
        symbol: the real symbol (unescaped).
        resolution: the bar period (``Resolution.TICK`` for ticks).
        path: the series' directory, holding its ``date=`` partitions.
    """

    kind: str
    symbol: str
    resolution: Resolution
    path: Path


def list_series(root: Path, kinds: tuple[str, ...] = KINDS) -> list[CatalogSeries]:
    """Return every series stored under ``root`` of the given kinds, by kind then name."""
    found: list[CatalogSeries] = []
    for kind in kinds:
        top = root / KIND_DIRS[kind]
        if not top.is_dir():
            continue
        for sym_dir in sorted(p for p in top.iterdir() if p.is_dir()):
            symbol = unescape(sym_dir.name)
            if kind == "tick":
                found.append(CatalogSeries(kind, symbol, Resolution.TICK, sym_dir))
                continue
            for res_dir in sorted(p for p in sym_dir.iterdir() if p.is_dir()):
                resolution = _resolution(res_dir)
                if resolution is not None:
                    found.append(CatalogSeries(kind, symbol, resolution, res_dir))
    return found


def _resolution(res_dir: Path) -> Resolution | None:
    try:
        return resolution_from_text(res_dir.name)
    except ValueError:
        return None  # not a series directory (a user's file or folder)


def locate(
    path: Path, kind: str | None, symbol: str | None, resolution: Resolution | None
) -> CatalogSeries:
    """Return the series that ``path`` (a catalog root or a series' directory) names.

    Parts the path does not fix come from the arguments; a missing symbol or resolution is
    taken when the catalog holds exactly one.

    Raises:
        ConfigError: the path is no catalog, or the series is missing or ambiguous.
    """
    parent, grand = path.parent.name, path.parent.parent.name
    if _kinds_in(path):  # a catalog root (whatever its own parents are called)
        root = path
    elif parent in KIND_DIRS.values():  # <root>/<kind>/<symbol>
        root, kind, symbol = path.parent.parent, _kind_of_dir(parent), unescape(path.name)
    elif grand in KIND_DIRS.values() and _resolution(path) is not None:  # .../<symbol>/<res>
        root, kind, symbol = path.parent.parent.parent, _kind_of_dir(grand), unescape(parent)
        resolution = _resolution(path)
    else:
        root = path
    kind = parse_kind(kind) if kind is not None else _only_kind(root)
    candidates = [
        s
        for s in list_series(root, (kind,))
        if (symbol is None or s.symbol == symbol)
        and (resolution is None or kind == "tick" or s.resolution is resolution)
    ]
    if len(candidates) == 1:
        return candidates[0]
    what = f"{kind} series" + (f" of {symbol!r}" if symbol else "")
    if not candidates:
        raise ConfigError(f"no {what} in the catalog {root}" + _at(resolution))
    names = ", ".join(f"{s.symbol} {s.resolution}" for s in candidates[:10])
    raise ConfigError(f"{len(candidates)} {what} in the catalog {root} ({names}); name one")


def _kind_of_dir(name: str) -> str:
    return next(kind for kind, dir_name in KIND_DIRS.items() if dir_name == name)


def _kinds_in(root: Path) -> list[str]:
    return [kind for kind, name in KIND_DIRS.items() if (root / name).is_dir()]


def _only_kind(root: Path) -> str:
    present = _kinds_in(root)
    if not present:
        raise ConfigError(
            f"{root} is not a Parquet catalog (no bars/, quote_bars/ or ticks/ directory)"
        )
    if len(present) > 1 and "bar" not in present:
        raise ConfigError(f"the catalog {root} holds {' and '.join(present)}: name a kind")
    return present[0]  # trade bars when there are several kinds


def _at(resolution: Resolution | None) -> str:
    return f" at {resolution}" if resolution is not None else ""
