"""freqtrade candle files: JSON arrays (``.json``/``.json.gz``) and feather tables.

Names follow freqtrade: ``<PAIR>-<timeframe>[-<candle type>]`` where the pair's ``/`` and
``:`` became ``_``: ``ETH_BTC-5m.feather`` is ``ETH/BTC`` 5-minute bars and
``XRP_USDT_USDT-1h-futures.json.gz`` is ``XRP/USDT:USDT`` hourly bars. Mark, index and
premium-index candles are TradeBars too (their OHLC kept exactly; a mark candle's volume is
NaN) and keep the pair's symbol: the candle type is not encoded in it, so the spec says it
(:attr:`FileSpec.price_type` ``"mark"``, ``"index"``, ``"premium_index"``) and ``symbol=``
keeps them apart from trade candles in storage. A funding-rate file
(``XRP_USDT_USDT-8h-funding_rate.feather``) holds :class:`~lean_data.derivatives.FundingRate`
records: freqtrade stores the rate in the ``open`` column (the other columns are 0), at the
venue's funding times to the millisecond (kept exactly; not checked against the name's
interval, which becomes each record's ``funding_interval``). Trade files are not candles
and are refused. A file named otherwise (``candles.json``) needs ``symbol=``; its
resolution is then inferred from the spacing of its rows.

JSON candles are ``[[ms, open, high, low, close, volume], ...]``, or the pandas "columns"
layout ``{"date": {"0": ms, ...}, "open": {...}, ...}``. Feather tables have the columns
``date, open, high, low, close, volume`` and are read with pyarrow (the ``feather`` extra).
A null or NaN volume (mark candles) stays NaN; rows are never dropped.

The name's timeframe is checked against the rows' spacing: ``UNITTEST_BTC-8m.json.gz``
holds 1-minute rows, so it raises :class:`DataFormatError` unless ``check_spacing=False``
(then the name's, or the caller's, resolution is used as given).

Options:
    check_spacing: raise when the rows contradict the resolution (default True).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from lean_data.derivatives import FundingRate
from lean_data.errors import ConfigError, DataFormatError
from lean_data.loaders._common import (
    SPACING_ROWS,
    FileSpec,
    choose_resolution,
    epoch_to_ns,
    file_stem,
    load_json,
)
from lean_data.models import (
    NS_PER_DAY,
    NS_PER_HOUR,
    NS_PER_MINUTE,
    AssetClass,
    Resolution,
    TradeBar,
)

__all__ = ["OPTIONS", "describe", "iterate", "parse_name"]

OPTIONS = ("check_spacing",)
_NAME = re.compile(
    r"^(?P<pair>[A-Za-z0-9]+(?:_[A-Za-z0-9]+){1,2})-(?P<tf>\d+[smhdwM])(?:-(?P<type>\w+))?$"
)
_UNITS = {"s": 1_000_000_000, "m": NS_PER_MINUTE, "h": NS_PER_HOUR, "d": NS_PER_DAY}
_UNITS["w"] = 7 * NS_PER_DAY
_CANDLE_TYPES = ("spot", "futures", "mark", "index", "premiumIndex")
_PRICE_TYPES = {"mark": "mark", "index": "index", "premiumIndex": "premium_index"}
_FUNDING = "funding_rate"
_COLUMNS = ("date", "open", "high", "low", "close", "volume")
_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_NAN = math.nan


def parse_name(path: Path) -> tuple[str, Resolution] | None:
    """Return (symbol, resolution) from a freqtrade file name, or None if it is not one.

    Raises:
        DataFormatError: the name is a freqtrade name for something other than candles or
            funding rates.
    """
    parts = _name_parts(path)
    return None if parts is None else (parts[0], parts[1])


def _name_parts(path: Path) -> tuple[str, Resolution, str] | None:
    """Return (symbol, resolution, candle type) from a freqtrade file name, or None."""
    stem = file_stem(path)
    if stem.lower().endswith("-trades"):
        raise DataFormatError("freqtrade trade files are not candles", source=str(path))
    match = _NAME.match(stem)
    if match is None:
        return None
    candle_type = match.group("type") or "spot"
    if candle_type not in _CANDLE_TYPES and candle_type != _FUNDING:
        raise DataFormatError(
            f"{candle_type!r} files are not price candles nor funding rates "
            f"(expected one of {', '.join((*_CANDLE_TYPES, _FUNDING))})",
            source=str(path),
        )
    timeframe = match.group("tf")
    if timeframe.endswith("M"):
        raise DataFormatError("monthly candles have no fixed period", source=str(path))
    resolution = Resolution(int(timeframe[:-1]) * _UNITS[timeframe[-1]])
    parts = match.group("pair").upper().split("_")
    settle = f":{parts[2]}" if len(parts) == 3 else ""
    return f"{parts[0]}/{parts[1]}{settle}", resolution, candle_type


def _identity(path: Path, symbol: str | None) -> tuple[str, Resolution | None, str]:
    parsed = _name_parts(path)
    if parsed is not None:
        return symbol or parsed[0], parsed[1], parsed[2]
    if symbol is None:
        raise ConfigError(
            f"cannot infer the pair from the name {path.name!r} "
            "(expected e.g. ETH_BTC-5m.json); pass symbol="
        )
    return symbol, None, "spot"


def _json_rows(path: Path) -> list[Sequence[Any]]:
    """Return the candle rows of a JSON file in either freqtrade layout."""
    data = load_json(path)
    if isinstance(data, dict):
        data = _from_columns(data, path)
    if not isinstance(data, list) or not data:
        raise DataFormatError(
            "expected a non-empty array of [ms, open, high, low, close, volume] candles",
            source=str(path),
            line=1,
        )
    return data


def _from_columns(table: dict[str, Any], path: Path) -> list[Sequence[Any]]:
    """Turn pandas' "columns" JSON ({"date": {"0": ms}, ...}) into candle rows."""
    if not all(isinstance(table.get(name), dict) for name in _COLUMNS[:5]):
        raise DataFormatError(
            f"expected a pandas columns table with {', '.join(_COLUMNS)}; "
            f"found keys {', '.join(map(str, table)) or 'none'}",
            source=str(path),
            line=1,
        )
    keys = sorted(table["date"], key=lambda key: (len(key), key))
    columns = [table.get(name) or {} for name in _COLUMNS]
    return [[column.get(key) for column in columns] for key in keys]


def _bar(symbol: str, resolution: Resolution, row: Sequence[Any]) -> TradeBar:
    if len(row) != 6:
        raise ValueError(
            f"expected 6 values [ms, open, high, low, close, volume], found {len(row)}"
        )
    ms, open_, high, low, close, volume = row
    if isinstance(ms, bool) or not isinstance(ms, int | float | str):
        raise ValueError(f"bad time {ms!r}")
    return TradeBar(
        symbol,
        int(ms) * 1_000_000,
        float(open_),
        float(high),
        float(low),
        float(close),
        _NAN if volume is None else float(volume),
        resolution,
    )


def _row_error(source: str, number: int, row: Any, exc: Exception) -> DataFormatError:
    shown = repr(row)
    shown = shown if len(shown) <= 160 else shown[:157] + "..."
    return DataFormatError(
        f"bad candle record {number} ({exc}): {shown}", source=source, line=number
    )


def _json_bars(path: Path, symbol: str, resolution: Resolution) -> Iterator[TradeBar]:
    source = str(path)
    for number, row in enumerate(_json_rows(path), 1):
        try:
            bar = _bar(symbol, resolution, row)
        except (ValueError, TypeError, OverflowError) as exc:
            raise _row_error(source, number, row, exc) from None
        yield bar


def _is_feather(path: Path) -> bool:
    return path.suffix.lower() == ".feather"


def describe(
    path: Path, symbol: str | None, resolution: Resolution | None, options: dict[str, Any]
) -> FileSpec:
    """Return the spec of a freqtrade candle file (JSON or feather).

    Raises:
        DataFormatError: not candles, malformed rows, or a spacing that contradicts the name.
        ConfigError: no symbol given and none in the name; pyarrow missing for feather.
    """
    name, declared, candle_type = _identity(path, symbol)
    fmt = "freqtrade_feather" if _is_feather(path) else "freqtrade_json"
    if candle_type == _FUNDING:
        interval = resolution or declared or Resolution.HOUR  # declared: the name has it
        _funding_head(path, name, interval)  # the file and its first records are readable
        return FileSpec(path, fmt, name, interval, _FUNDING, AssetClass.CRYPTO)
    if _is_feather(path):
        times = _feather_times(path, _arrow_table(path, ("date",)))[:SPACING_ROWS]
    else:
        bars = _json_bars(path, name, Resolution.MINUTE)
        times = [bar.ts_event for bar in islice(bars, SPACING_ROWS)]
    head = list(enumerate(times, 1))
    check = bool(options.get("check_spacing", True))
    chosen = choose_resolution(resolution, declared, head, source=str(path), check_spacing=check)
    price_type = _PRICE_TYPES.get(candle_type, "trade")
    return FileSpec(path, fmt, name, chosen, "bar", AssetClass.CRYPTO, price_type)  # crypto only


def iterate(spec: FileSpec, options: dict[str, Any]) -> Iterator[TradeBar | FundingRate]:
    """Stream the bars (funding rates) of a freqtrade candle (funding-rate) file in file order.

    Raises:
        DataFormatError: a record is malformed (names the record number).
    """
    del options
    if spec.kind == _FUNDING:
        return _funding_rates(spec.path, spec.symbol, spec.resolution)
    if _is_feather(spec.path):
        return _feather_bars(spec)
    return _json_bars(spec.path, spec.symbol, spec.resolution)


def _arrow_table(path: Path, columns: Sequence[str]) -> Any:
    """Read ``columns`` of a feather file with pyarrow, imported only now."""
    try:
        import pyarrow.feather as feather  # optional: imported only when needed
    except ImportError as exc:
        raise ConfigError(
            "reading feather files needs pyarrow: pip install 'lean-data[feather]'"
        ) from exc
    source = str(path)
    try:
        table = feather.read_table(str(path))
    except FileNotFoundError as exc:
        raise ConfigError(f"cannot open {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a bad file
        raise DataFormatError(f"not a readable feather file: {exc}", source=source) from exc
    missing = [name for name in columns if name not in table.column_names]
    if missing:
        raise DataFormatError(
            f"no {', '.join(missing)} column(s); found {', '.join(table.column_names)}",
            source=source,
        )
    return table.select(list(columns))


def _feather_times(path: Path, table: Any) -> list[int]:
    """Return the table's ``date`` column as UTC ns."""
    import pyarrow as pa

    column = table.column("date")
    if column.null_count:
        raise DataFormatError("the date column has null values", source=str(path))
    kind = column.type
    if pa.types.is_timestamp(kind):
        factor = _UNIT_NS[kind.unit]
        return [value * factor for value in column.cast(pa.int64()).to_pylist()]
    if pa.types.is_integer(kind):
        return [epoch_to_ns(value) for value in column.to_pylist()]
    raise DataFormatError(f"the date column holds {kind}, not timestamps", source=str(path))


def _feather_bars(spec: FileSpec) -> Iterator[TradeBar]:
    import pyarrow as pa

    table = _arrow_table(spec.path, _COLUMNS)
    times = _feather_times(spec.path, table)
    try:
        columns = [table.column(name).cast(pa.float64()).to_pylist() for name in _COLUMNS[1:]]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataFormatError(f"non-numeric OHLCV column: {exc}", source=str(spec.path)) from exc
    symbol, resolution, source = spec.symbol, spec.resolution, str(spec.path)
    for number, (ts, open_, high, low, close, volume) in enumerate(
        zip(times, *columns, strict=True), 1
    ):
        if open_ is None or high is None or low is None or close is None:
            raise DataFormatError(f"null price in record {number}", source=source, line=number)
        yield TradeBar(
            symbol, ts, open_, high, low, close, _NAN if volume is None else volume, resolution
        )


def _funding_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield (time ns, rate) of a funding-rate file: ``date`` and the ``open`` column."""
    if _is_feather(path):
        import pyarrow as pa

        table = _arrow_table(path, ("date", "open"))
        times = _feather_times(path, table)
        try:
            rates = table.column("open").cast(pa.float64()).to_pylist()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataFormatError(f"non-numeric open column: {exc}", source=str(path)) from exc
        yield from zip(times, rates, strict=True)
        return
    for number, row in enumerate(_json_rows(path), 1):
        try:
            ms, rate = row[0], row[1]
            if isinstance(ms, bool) or not isinstance(ms, int | float | str):
                raise ValueError(f"bad time {ms!r}")
            yield int(ms) * 1_000_000, rate
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            raise _row_error(str(path), number, row, exc) from None


def _funding_rates(path: Path, symbol: str, interval: Resolution) -> Iterator[FundingRate]:
    source = str(path)
    for number, (ts, rate) in enumerate(_funding_rows(path), 1):
        try:
            if rate is None:
                raise ValueError("no funding rate (null open)")
            if isinstance(rate, bool) or not isinstance(rate, int | float | str):
                raise ValueError(f"bad funding rate {rate!r}")
            record = FundingRate(symbol, ts, float(rate), funding_interval=interval.nanos)
        except (ValueError, TypeError, OverflowError) as exc:
            raise DataFormatError(
                f"bad funding-rate record {number}: {exc}", source=source, line=number
            ) from None
        yield record


def _funding_head(path: Path, symbol: str, interval: Resolution) -> None:
    """Read a funding-rate file's first records, so a bad file fails before streaming."""
    for _ in islice(_funding_rates(path, symbol, interval), SPACING_ROWS):
        pass
