"""Binance kline files: 12-column CSV rows (data.binance.vision) or a REST JSON body.

Each row is ``openTime, open, high, low, close, volume, closeTime, quoteVolume, trades,
takerBuyBase, takerBuyQuote, ignore``. Open times are ms (µs in newer spot files, told
apart by magnitude). The symbol comes from the name (``ADABTC-1m-2021-11-27.csv`` gives
``ADA/BTC``) and the resolution from the name's period token, else from
``closeTime + 1 - openTime`` of the first row.

Options:
    check_spacing: raise when the rows contradict the resolution (default True).
"""

from __future__ import annotations

import csv
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

from lean_data.errors import ConfigError, DataFormatError
from lean_data.loaders._common import (
    SPACING_ROWS,
    FileSpec,
    choose_resolution,
    load_json,
    name_prefix,
    open_text,
    resolution_from_name,
    split_pair,
)
from lean_data.models import AssetClass, Resolution, TradeBar

__all__ = ["OPTIONS", "describe", "iterate", "read_json"]

OPTIONS = ("check_spacing",)
_COLUMNS = 12
_NAMES = "openTime,open,high,low,close,volume,closeTime,quoteVolume,trades,..."


def _is_json(path: Path) -> bool:
    return path.name.lower().removesuffix(".gz").endswith(".json")


def _open_ns(value: Any) -> tuple[int, int]:
    """Return (ns, ns per unit) for an open time in ms or µs."""
    number = int(value)
    unit = 1_000 if abs(number) >= 100_000_000_000_000 else 1_000_000
    return number * unit, unit


def _row(symbol: str, resolution: Resolution, fields: Sequence[Any]) -> TradeBar:
    if len(fields) != _COLUMNS:
        raise IndexError(f"expected {_COLUMNS} fields, found {len(fields)}")
    ts, _ = _open_ns(fields[0])
    return TradeBar(
        symbol,
        ts,
        float(fields[1]),
        float(fields[2]),
        float(fields[3]),
        float(fields[4]),
        float(fields[5]),
        resolution,
    )


def _error(source: str, number: int, fields: Any, exc: Exception, unit: str) -> DataFormatError:
    shown = repr(fields)
    if len(shown) > 160:
        shown = shown[:157] + "..."
    return DataFormatError(
        f"bad kline {unit} {number} ({exc}); expected {_COLUMNS} values {_NAMES}: {shown}",
        source=source,
        line=number,
    )


def read_json(path: Path) -> list[Any]:
    """Parse a JSON file (``.gz`` allowed) that must hold an array.

    Raises:
        DataFormatError: not JSON, empty, or not an array.
    """
    data = load_json(path)
    if not isinstance(data, list):
        raise DataFormatError(
            f"expected a JSON array of klines, found {type(data).__name__}",
            source=str(path),
            line=1,
        )
    return data


def _records(path: Path) -> Generator[tuple[int, Sequence[Any]], None, None]:
    """Yield ``(line or record number, fields)``; CSV rows may follow a header line."""
    if _is_json(path):
        yield from enumerate(read_json(path), 1)
        return
    with open_text(path) as handle:
        reader = csv.reader(handle)
        seen = False
        for fields in reader:
            if not fields or not any(field.strip() for field in fields):
                continue
            if not seen and not fields[0].strip().isdigit():  # a header line
                seen = True
                continue
            seen = True
            yield reader.line_num, fields
        if not seen:
            raise DataFormatError("the file is empty", source=str(path), line=1)


def _symbol(path: Path) -> str:
    prefix = name_prefix(path)
    pair = split_pair(prefix) if prefix.isalnum() else None
    if pair is None:
        raise ConfigError(
            f"cannot infer the symbol from the name {path.name!r} (expected e.g. "
            "BTCUSDT-1m-2024-01-01.csv); pass symbol="
        )
    return f"{pair[0]}/{pair[1]}"


def describe(
    path: Path, symbol: str | None, resolution: Resolution | None, options: dict[str, Any]
) -> FileSpec:
    """Return the spec of a Binance kline file from its name and leading rows.

    Raises:
        DataFormatError: malformed leading rows or a spacing that contradicts the name.
        ConfigError: no symbol given and none in the name.
    """
    name = symbol or _symbol(path)
    source = str(path)
    head: list[tuple[int, int]] = []
    declared = resolution_from_name(path)
    records = _records(path)
    for number, fields in records:
        unit = "record" if _is_json(path) else "line"
        try:
            ts = _row(name, Resolution.MINUTE, fields).ts_event
            if declared is None:
                open_ns, per_unit = _open_ns(fields[0])
                declared = Resolution((int(fields[6]) + 1) * per_unit - open_ns)
                if declared.is_tick:
                    raise ValueError("closeTime + 1 equals openTime")
        except (ValueError, IndexError, TypeError) as exc:
            raise _error(source, number, fields, exc, unit) from None
        head.append((number, ts))
        if len(head) >= SPACING_ROWS:
            break
    records.close()
    check = bool(options.get("check_spacing", True))
    chosen = choose_resolution(resolution, declared, head, source=source, check_spacing=check)
    return FileSpec(path, "binance_klines", name, chosen, "bar", AssetClass.CRYPTO)


def iterate(spec: FileSpec, options: dict[str, Any]) -> Iterator[TradeBar]:
    """Stream the bars of a Binance kline file in file order.

    Raises:
        DataFormatError: a row is malformed (names the line, or the record for JSON).
    """
    del options
    unit = "record" if _is_json(spec.path) else "line"
    source = str(spec.path)
    for number, fields in _records(spec.path):
        try:
            bar = _row(spec.symbol, spec.resolution, fields)
        except (ValueError, IndexError, TypeError) as exc:
            raise _error(source, number, fields, exc, unit) from None
        yield bar
