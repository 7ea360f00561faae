"""Generic OHLCV CSV files with a header (``.csv``, ``.txt``, optionally ``.gz``).

Columns are found by header name, case-insensitively (``timestamp``/``time``/``date``/
``datetime``/``open_time``..., ``open``/``o``, ``high``/``h``, ``low``/``l``, ``close``/``c``,
``volume``/``vol``/``v``), or given by the ``columns`` option as header names or 0-based
positions. ``Adj Close`` is never taken for ``close``. A ``Date`` plus ``Time`` pair is
joined. Times are epoch integers (s/ms/us/ns by magnitude) or ``YYYY-MM-DD[ HH:MM:SS[.f]]``
text (``T`` or ``/`` accepted, ``Z``/``+HH:MM`` honoured); naive times are in ``tz``
(default UTC). A missing volume column gives NaN volumes.

Options:
    columns: ``{"time"|"date"|"open"|"high"|"low"|"close"|"volume": name or position}``.
    tz: IANA zone of naive times (``"America/New_York"``); default UTC.
    delimiter: field separator (default ``,``; ``\\t`` for ``.tsv``).
    header: True/False to say whether line 1 is a header (default: detect).
    check_spacing: raise when the rows contradict the resolution (default True).
    stamped: ``"open"`` (default) when a row's time is its bar's open time, ``"close"`` when
        it is the close time (e.g. Databento/nautilus CME bars: the 6E file has a bar at
        16:00 CT, the start of the daily halt, and none at 17:00, the reopen); bars are
        always keyed by open time, so ``"close"`` moves each back by one period.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lean_data.errors import ConfigError, DataFormatError
from lean_data.loaders._clock import LocalClock, parse_datetime_text, zone
from lean_data.loaders._common import (
    SPACING_ROWS,
    FileSpec,
    choose_resolution,
    epoch_to_ns,
    epoch_unit,
    file_stem,
    name_prefix,
    open_text,
    resolution_from_name,
)
from lean_data.models import Resolution, TradeBar

__all__ = ["OPTIONS", "default_delimiter", "describe", "iterate", "looks_like_ohlcv_header"]

OPTIONS = ("columns", "tz", "delimiter", "header", "check_spacing", "stamped")
_FIELDS = ("time", "date", "open", "high", "low", "close", "volume")
_ALIASES: dict[str, tuple[str, ...]] = {
    "time": (
        "timestamp",
        "datetime",
        "date_time",
        "open_time",
        "opentime",
        "timestamp_utc",
        "datetime_utc",
        "time_utc",
        "ts_event",
        "ts",
        "time",
        "date",
        "t",
    ),
    "open": ("open", "o", "open_price"),
    "high": ("high", "h", "high_price"),
    "low": ("low", "l", "low_price"),
    "close": ("close", "c", "close_price", "last"),
    "volume": ("volume", "vol", "v", "base_volume"),
}
_KNOWN_NAMES = frozenset(name for names in _ALIASES.values() for name in names)
_NAN = math.nan


@dataclass(frozen=True)
class _Layout:
    """Where each value sits in a row, and where the data starts."""

    header: tuple[str, ...] | None
    width: int | None
    time: int
    date: int | None
    open: int
    high: int
    low: int
    close: int
    volume: int | None

    def names(self) -> dict[int, str]:
        """Map positions to the names used in messages."""
        found = {self.time: "time", self.open: "open", self.high: "high", self.low: "low"}
        found[self.close] = "close"
        if self.date is not None:
            found[self.date] = "date"
        if self.volume is not None:
            found[self.volume] = "volume"
        return found


def _normalise(name: str) -> str:
    return name.strip().strip('"').lower().replace(" ", "_").replace("-", "_")


def _rows(path: Path, options: Mapping[str, Any]) -> Generator[tuple[int, list[str]], None, None]:
    """Yield ``(line, fields)`` for every non-blank row."""
    delimiter = options.get("delimiter", default_delimiter(path))
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ConfigError(f"delimiter must be one character, got {delimiter!r}")
    with open_text(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            for fields in reader:
                if fields and any(field.strip() for field in fields):
                    yield reader.line_num, fields
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataFormatError(f"unreadable CSV: {exc}", source=str(path)) from exc


def default_delimiter(path: Path) -> str:
    """Return the field separator a file's name implies: tab for ``.tsv``, else comma."""
    return "\t" if ".tsv" in (suffix.lower() for suffix in path.suffixes) else ","


def _is_header(fields: list[str]) -> bool:
    if any(_normalise(field) in _KNOWN_NAMES for field in fields):
        return True
    for field in fields:
        try:
            float(field)
            return False
        except ValueError:
            continue
    return True


def _column(key: str, value: object, header: tuple[str, ...] | None, source: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ConfigError(f"columns[{key!r}] must be a position >= 0, got {value}")
        return value
    if not isinstance(value, str):
        raise ConfigError(f"columns[{key!r}] must be a header name or a position, got {value!r}")
    if header is None:
        raise ConfigError(f"columns[{key!r}] names {value!r} but {source} has no header")
    try:
        return header.index(_normalise(value))
    except ValueError:
        raise ConfigError(
            f"columns[{key!r}] names {value!r}, not in the header of {source}: {', '.join(header)}"
        ) from None


def _auto_columns(header: tuple[str, ...]) -> dict[str, int]:
    found: dict[str, int] = {}
    if "date" in header and "time" in header:
        found["date"], found["time"] = header.index("date"), header.index("time")
    for key, aliases in _ALIASES.items():
        if key in found:
            continue
        for alias in aliases:
            if alias in header:
                found[key] = header.index(alias)
                break
    return found


def _choose_columns(
    options: Mapping[str, Any], header: tuple[str, ...] | None, source: str
) -> dict[str, int]:
    """Merge the caller's ``columns`` mapping with what the header names."""
    mapping = options.get("columns") or {}
    if not isinstance(mapping, Mapping) or set(mapping) - set(_FIELDS):
        raise ConfigError(f"columns must map some of {', '.join(_FIELDS)} to names or positions")
    chosen = {key: _column(key, value, header, source) for key, value in mapping.items()}
    if "date" in chosen and "time" not in chosen:  # a lone date column is the time
        chosen["time"] = chosen.pop("date")
    if header is not None:
        for key, index in _auto_columns(header).items():
            if key not in chosen and not (key == "date" and "time" in chosen):
                chosen[key] = index
    return chosen


def _layout(first: tuple[int, list[str]], options: Mapping[str, Any], source: str) -> _Layout:
    line, fields = first
    flag = options.get("header")
    has_header = _is_header(fields) if flag is None else bool(flag)
    header = tuple(_normalise(field) for field in fields) if has_header else None
    chosen = _choose_columns(options, header, source)
    missing = [key for key in ("time", "open", "high", "low", "close") if key not in chosen]
    if missing:
        raise DataFormatError(
            f"no {'/'.join(missing)} column in {'header' if header else 'first row'} "
            f"{','.join(fields)!r}; pass columns={{...}} naming them",
            source=source,
            line=line,
        )
    positional = any(isinstance(value, int) for value in (options.get("columns") or {}).values())
    width = len(header) if header is not None and not positional else None
    get = chosen.get
    return _Layout(
        header, width, chosen["time"], get("date"), chosen["open"], chosen["high"],
        chosen["low"], chosen["close"], get("volume"),
    )  # fmt: skip


def _time_parser(sample: str, clock: LocalClock) -> Callable[[str], int]:
    """Choose, from the first row's time text, how to read every row's time."""
    text = sample.strip()
    digits = text.lstrip("-")
    if digits.isdigit() and not _looks_like_yyyymmdd(text):
        return lambda value: epoch_to_ns(int(value))
    whole, dot, frac = digits.partition(".")
    if dot and whole.isdigit() and frac.isdigit():
        return _epoch_decimal
    days: dict[str, int] = {}
    return lambda value: parse_datetime_text(value, clock, days)


def _looks_like_yyyymmdd(text: str) -> bool:
    return len(text) == 8 and "19000101" <= text <= "29991231" and "01" <= text[4:6] <= "12"


def _epoch_decimal(value: str) -> int:
    whole, _, frac = value.strip().partition(".")
    unit = epoch_unit(int(whole))
    return int(whole) * unit + int(frac[:9].ljust(9, "0")) * unit // 1_000_000_000


def _source_symbol(path: Path) -> str:
    prefix = name_prefix(path)
    return prefix.upper() if prefix else file_stem(path)


def _head(
    path: Path, options: Mapping[str, Any], limit: int = SPACING_ROWS
) -> tuple[_Layout, list[tuple[int, list[str]]]]:
    """Read the layout and up to ``limit`` leading data rows."""
    source = str(path)
    rows = _rows(path, options)
    try:
        first = next(rows, None)
        if first is None:
            raise DataFormatError("the file is empty", source=source, line=1)
        layout = _layout(first, options, source)
        head = [] if layout.header is not None else [first]
        while len(head) < limit:
            row = next(rows, None)
            if row is None:
                break
            head.append(row)
    finally:
        rows.close()
    return layout, head


def describe(
    path: Path, symbol: str | None, resolution: Resolution | None, options: dict[str, Any]
) -> FileSpec:
    """Return the spec of a generic OHLCV CSV from its header and leading rows.

    Raises:
        DataFormatError: no usable header, a malformed leading row, or a spacing that
            contradicts the resolution.
    """
    layout, head = _head(path, options)
    parse = _RowParser(layout, LocalClock(zone(options.get("tz"))), "", Resolution.TICK, path)
    times = [(line, parse(line, fields).ts_event) for line, fields in head]
    chosen = choose_resolution(
        resolution,
        resolution_from_name(path),
        times,
        source=str(path),
        check_spacing=bool(options.get("check_spacing", True)),
    )
    return FileSpec(path, "csv", symbol or _source_symbol(path), chosen, "bar")


def iterate(spec: FileSpec, options: dict[str, Any]) -> Iterator[TradeBar]:
    """Stream the bars of a generic OHLCV CSV in file order.

    Raises:
        DataFormatError: a row is malformed (names the line and the field).
    """
    layout, _ = _head(spec.path, options, limit=0)
    clock = LocalClock(zone(options.get("tz")))
    stamped = options.get("stamped", "open")
    if stamped not in ("open", "close"):
        raise ConfigError(f"stamped: expected 'open' or 'close', found {stamped!r}")
    shift = spec.resolution.nanos if stamped == "close" else 0
    parse = _RowParser(layout, clock, spec.symbol, spec.resolution, spec.path, shift)
    rows = _rows(spec.path, options)
    if layout.header is not None:
        next(rows)
    for line, fields in rows:
        yield parse(line, fields)


class _RowParser:
    """Turn one row's fields into a TradeBar, or explain which field is wrong.

    ``shift`` (ns) is taken off each row's time: the period, for rows stamped at the close.
    """

    def __init__(
        self,
        layout: _Layout,
        clock: LocalClock,
        symbol: str,
        resolution: Resolution,
        path: Path,
        shift: int = 0,
    ) -> None:
        self.layout = layout
        self.shift = shift
        self.clock = clock
        self.symbol = symbol
        self.resolution = resolution
        self.source = str(path)
        self._time: Callable[[str], int] | None = None

    def _time_text(self, fields: list[str]) -> str:
        layout = self.layout
        if layout.date is None:
            return fields[layout.time]
        return f"{fields[layout.date].strip()} {fields[layout.time].strip()}"

    def __call__(self, line: int, fields: list[str]) -> TradeBar:
        layout = self.layout
        if layout.width is not None and len(fields) != layout.width:
            raise self._width_error(line, fields)
        try:
            text = self._time_text(fields)
            if self._time is None:
                self._time = _time_parser(text, self.clock)
            volume = _NAN if layout.volume is None else float(fields[layout.volume])
            return TradeBar(
                self.symbol,
                self._time(text) - self.shift,
                float(fields[layout.open]),
                float(fields[layout.high]),
                float(fields[layout.low]),
                float(fields[layout.close]),
                volume,
                self.resolution,
            )
        except (ValueError, IndexError, OverflowError):
            raise self._field_error(line, fields) from None

    def _width_error(self, line: int, fields: list[str]) -> DataFormatError:
        header = self.layout.header or ()
        return DataFormatError(
            f"the header names {len(header)} columns ({','.join(header)}) but this row has "
            f"{len(fields)} fields: {','.join(fields)!r}; pass a positional columns mapping, "
            "e.g. columns={'date': 0, 'time': 1, 'open': 2, ...}, to read such rows",
            source=self.source,
            line=line,
        )

    def _field_error(self, line: int, fields: list[str]) -> DataFormatError:
        row = ",".join(fields)
        names = self.layout.names()
        needed = max(names) + 1
        if len(fields) < needed:
            message = f"expected at least {needed} fields, found {len(fields)}: {row!r}"
            return DataFormatError(message, source=self.source, line=line)
        try:
            self._time = self._time or _time_parser(self._time_text(fields), self.clock)
            self._time(self._time_text(fields))
        except (ValueError, OverflowError):
            text = self._time_text(fields)
            return DataFormatError(f"bad time {text!r}: {row!r}", source=self.source, line=line)
        for index, name in sorted(names.items()):
            if name not in ("time", "date"):
                try:
                    float(fields[index])
                except ValueError:
                    message = f"bad number {fields[index]!r} for {name}: {row!r}"
                    return DataFormatError(message, source=self.source, line=line)
        return DataFormatError(f"cannot parse row {row!r}", source=self.source, line=line)


def looks_like_ohlcv_header(line: str, delimiter: str = ",") -> bool:
    """True when ``line`` is a header naming time, open, high, low and close columns."""
    fields = next(csv.reader([line], delimiter=delimiter), [])
    found = _auto_columns(tuple(_normalise(field) for field in fields))
    return all(key in found for key in ("time", "open", "high", "low", "close"))
