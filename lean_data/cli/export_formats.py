"""The files ``lean-data export`` writes and ``lean-data import`` reads back: CSV, JSONL, Parquet.

One file holds every exported series, one row per stored trade bar, in :data:`COLUMNS`
order: ``feed, symbol, resolution, time, ts_event, open, high, low, close, volume,
quality_score, quality_level, reasons``. ``ts_event`` (int ns, the bar's open time) is the
key; ``time`` is the same instant as ISO 8601 UTC for people. Floats are written as their
shortest ``repr`` (CSV), JSON numbers (JSONL, orjson) or float64 (Parquet), so they read
back bit-exact; a stored NULL price (nan) is ``nan`` in CSV and ``null`` in JSONL. A row
the engine never scored (a bar a history query fetched) has an empty ``quality_level``.

Writing goes to ``PATH.partial`` and is renamed over ``PATH`` only when complete. Reading
checks every row: a malformed one raises :class:`~lean_data.errors.DataFormatError` naming
the file and its line (CSV, JSONL: the header is line 1) or row (Parquet, 1-based).
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final, Protocol

import orjson

from lean_data.errors import ConfigError, DataFormatError
from lean_data.models import Resolution, TradeBar
from lean_data.storage.rows import ScoredBar

__all__ = [
    "COLUMNS",
    "EXPORT_FORMATS",
    "detect_export",
    "iso_ns",
    "open_writer",
    "read_rows",
]

COLUMNS: Final = (
    *("feed", "symbol", "resolution", "time", "ts_event"),
    *("open", "high", "low", "close", "volume"),
    *("quality_score", "quality_level", "reasons"),
)
EXPORT_FORMATS: Final = ("csv", "parquet", "jsonl")
_SUFFIXES: Final = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_REQUIRED: Final = ("feed", "symbol", "resolution", "open", "high", "low", "close", "volume")
_PRICES: Final = ("open", "high", "low", "close", "volume")
_MISSING_PYARROW: Final = "Parquet files need pyarrow: pip install 'lean-data[parquet]'"


def iso_ns(ns: int) -> str:
    """``ns`` since the epoch as ISO 8601 UTC, with the fraction of a second only when any."""
    seconds, fraction = divmod(ns, 10**9)
    text = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{fraction:09d}".rstrip("0") + "Z" if fraction else f"{text}Z"


def format_from_suffix(path: Path) -> str | None:
    """The export format a file name says (``.csv``, ``.parquet``, ``.jsonl``), else None."""
    return _SUFFIXES.get(path.suffix.lower())


def pyarrow_parquet() -> tuple[Any, Any]:
    """Return ``(pyarrow, pyarrow.parquet)``; ConfigError naming the extra when missing."""
    try:
        import pyarrow as pa  # optional: the parquet extra
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(_MISSING_PYARROW) from None
    return pa, pq


def _values(row: ScoredBar) -> tuple[Any, ...]:
    b = row.bar
    return (
        *(row.feed, b.symbol, b.resolution.name, iso_ns(b.ts_event), b.ts_event),
        *(b.open, b.high, b.low, b.close, b.volume),
        *(row.score, row.level, row.reasons),
    )


# ----------------------------------------------------------------------------- writing


class Writer(Protocol):
    """Where exported rows go: ``write`` windows of rows, then ``commit`` or ``abort``."""

    def write(self, rows: Sequence[ScoredBar]) -> None:
        """Append ``rows``."""

    def commit(self) -> None:
        """Finish the file and put it in place."""

    def abort(self) -> None:
        """Remove the partial file."""


class _FileWriter:
    """Write to ``PATH.partial``; rename it over ``PATH`` on :meth:`commit`."""

    def __init__(self, path: Path, binary: bool) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.handle: IO[Any] = (  # closed by commit or abort
            open(self.partial, "wb")  # noqa: SIM115
            if binary
            else open(self.partial, "w", newline="", encoding="utf-8")  # noqa: SIM115
        )

    def commit(self) -> None:
        self.handle.close()
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        self.handle.close()
        with contextlib.suppress(FileNotFoundError):
            self.partial.unlink()


def _csv_float(value: float) -> str:
    return repr(value)  # shortest text that reads back to the same float; nan, inf


class _CsvWriter(_FileWriter):
    def __init__(self, path: Path) -> None:
        super().__init__(path, binary=False)
        self.csv = csv.writer(self.handle, lineterminator="\n")
        self.csv.writerow(COLUMNS)

    def write(self, rows: Sequence[ScoredBar]) -> None:
        out = []
        for row in rows:
            b = row.bar
            score = "" if row.score is None else _csv_float(row.score)
            out.append(
                (
                    *(row.feed, b.symbol, b.resolution.name, iso_ns(b.ts_event), b.ts_event),
                    *(_csv_float(v) for v in (b.open, b.high, b.low, b.close, b.volume)),
                    *(score, row.level or "", row.reasons),
                )
            )
        self.csv.writerows(out)


class _JsonlWriter(_FileWriter):
    def __init__(self, path: Path) -> None:
        super().__init__(path, binary=True)

    def write(self, rows: Sequence[ScoredBar]) -> None:
        option = orjson.OPT_APPEND_NEWLINE  # nan is written as null
        self.handle.write(
            b"".join(orjson.dumps(dict(zip(COLUMNS, _values(r), strict=True)), option=option)
                     for r in rows)
        )  # fmt: skip


class _ParquetWriter:
    def __init__(self, path: Path) -> None:
        self.pa, pq = pyarrow_parquet()
        pa = self.pa
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        text, number = pa.string(), pa.float64()
        self.schema = pa.schema(
            [
                *(("feed", text), ("symbol", text), ("resolution", text)),
                ("time", pa.timestamp("ns", tz="UTC")),
                ("ts_event", pa.int64()),
                *((name, number) for name in _PRICES),
                *(("quality_score", number), ("quality_level", text), ("reasons", text)),
            ]
        )
        self.writer = pq.ParquetWriter(self.partial, self.schema)

    def write(self, rows: Sequence[ScoredBar]) -> None:
        if not rows:
            return
        columns = list(zip(*(_values(r) for r in rows), strict=True))
        columns[3] = columns[4]  # time: the same ns, as a UTC timestamp
        arrays = [
            self.pa.array(values, type=field.type)
            for values, field in zip(columns, self.schema, strict=True)
        ]
        self.writer.write_table(self.pa.Table.from_arrays(arrays, schema=self.schema))

    def commit(self) -> None:
        self.writer.close()
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        self.writer.close()
        with contextlib.suppress(FileNotFoundError):
            self.partial.unlink()


def open_writer(fmt: str, path: Path) -> Writer:
    """Start writing an export file of ``fmt`` (``csv``, ``parquet``, ``jsonl``) to ``path``.

    Raises:
        ConfigError: Parquet without pyarrow installed.
        OSError: the file cannot be created.
    """
    if fmt == "parquet":
        return _ParquetWriter(path)
    return _JsonlWriter(path) if fmt == "jsonl" else _CsvWriter(path)


# ----------------------------------------------------------------------------- reading


def detect_export(path: Path) -> str | None:
    """The export format of ``path`` when it is a file ``lean-data export`` wrote, else None.

    A ``.parquet`` or ``.jsonl`` file is one; a ``.csv`` file is one when its header names
    the ``feed``, ``symbol`` and ``resolution`` columns (else a loader reads it).
    """
    fmt = format_from_suffix(path)
    if fmt != "csv":
        return fmt
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            header = next(csv.reader([handle.readline()]), [])
    except (OSError, UnicodeDecodeError):
        return None  # the loader says what is wrong with it
    return "csv" if {"feed", "symbol", "resolution"} <= set(header) else None


def read_rows(path: Path, fmt: str) -> Iterator[ScoredBar]:
    """Stream the rows of an export file, each checked.

    Raises:
        DataFormatError: a missing column or a malformed row (file and line or row named).
        ConfigError: a Parquet file without pyarrow installed.
    """
    if fmt == "parquet":
        return _parquet_rows(path)
    return _jsonl_rows(path) if fmt == "jsonl" else _csv_rows(path)


def _csv_rows(path: Path) -> Iterator[ScoredBar]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise DataFormatError("the file is empty", source=str(path), line=1)
        index = _header_index(header, path)
        for number, cells in enumerate(reader, 2):
            if not cells:
                continue
            if len(cells) != len(header):
                raise DataFormatError(
                    f"expected {len(header)} fields as the header names, found {len(cells)}",
                    source=str(path),
                    line=number,
                )
            yield _row({name: cells[i] for name, i in index.items()}, path, number)


def _jsonl_rows(path: Path) -> Iterator[ScoredBar]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise DataFormatError(
                    f"not a JSON object: {exc}", source=str(path), line=number
                ) from None
            if not isinstance(record, dict):
                raise DataFormatError(
                    f"expected a JSON object, found {type(record).__name__}",
                    source=str(path),
                    line=number,
                )
            _header_index(list(record), path, number)
            yield _row(record, path, number)


def _parquet_rows(path: Path) -> Iterator[ScoredBar]:
    _, pq = pyarrow_parquet()
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid and friends, no common root
        raise DataFormatError(f"unreadable Parquet file: {exc}", source=str(path)) from None
    _header_index(parquet.schema_arrow.names, path)
    number = 0
    for batch in parquet.iter_batches(batch_size=65_536):
        for record in batch.to_pylist():
            number += 1
            yield _row(record, path, number)


def _header_index(names: Sequence[str], path: Path, line: int = 1) -> dict[str, int]:
    missing = [name for name in _REQUIRED if name not in names]
    if "ts_event" not in names and "time" not in names:
        missing.append("ts_event")
    if missing:
        raise DataFormatError(
            f"not a lean-data export file: no column {', '.join(missing)} (expected "
            f"{','.join(COLUMNS)}); pass --format for another layout",
            source=str(path),
            line=line,
        )
    return {name: i for i, name in enumerate(names)}


def _row(record: dict[str, Any], path: Path, number: int) -> ScoredBar:
    try:
        return _parse(record)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataFormatError(str(exc), source=str(path), line=number) from None


def _text(record: dict[str, Any], name: str) -> str:
    value = record[name]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}: expected a non-empty text, found {value!r}")
    return value


def _number(record: dict[str, Any], name: str) -> float:
    value = record[name]
    if value is None:  # JSON null: a stored NULL price
        return math.nan
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{name}: expected a number, found {value!r}")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name}: expected a number, found {value!r}") from None


def _ts_event(record: dict[str, Any]) -> int:
    value = record.get("ts_event")
    if value is None or value == "":
        value = record.get("time")
        if isinstance(value, datetime):
            return _datetime_ns(value)
        if not isinstance(value, str) or not value:
            raise ValueError("ts_event: expected ns since the epoch, found none")
        return _datetime_ns(datetime.fromisoformat(value))
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"ts_event: expected an integer of ns, found {value!r}")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"ts_event: expected an integer of ns, found {value!r}") from None


def _datetime_ns(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1_000


def _parse(record: dict[str, Any]) -> ScoredBar:
    resolution_text = _text(record, "resolution")
    try:
        resolution = Resolution.parse(resolution_text)
    except ValueError:
        raise ValueError(
            f"resolution: expected a bar period such as 1m, 1h or 1d, found {resolution_text!r}"
        ) from None
    open_, high, low, close, volume = (_number(record, name) for name in _PRICES)
    bar = TradeBar(
        _text(record, "symbol"), _ts_event(record), open_, high, low, close, volume, resolution
    )
    score_value = record.get("quality_score")
    score = None if score_value is None or score_value == "" else _number(record, "quality_score")
    level = record.get("quality_level") or None
    reasons = record.get("reasons") or ""
    if not isinstance(level, str | None) or not isinstance(reasons, str):
        raise ValueError(f"quality_level, reasons: expected text, found {level!r}, {reasons!r}")
    return ScoredBar(_text(record, "feed"), bar, score, level, reasons)
