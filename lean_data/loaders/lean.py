"""QuantConnect LEAN zipped CSV files (equity, crypto, cryptofuture).

Layout (``<root>/`` may be anything)::

    <root>/<equity|crypto|cryptofuture>/<market>/<tick|second|minute>/<ticker>/<YYYYMMDD>_<trade|quote>.zip
    <root>/equity/<market>/<hour|daily>/<ticker>.zip
    <root>/<crypto|cryptofuture>/<market>/<hour|daily>/<ticker>_<trade|quote>.zip

Each zip holds one headerless CSV. Equity prices are integers in deci-cents (divided by
10 000) and times are America/New_York wall clock; crypto prices are plain decimals and
times are UTC. Minute, second and tick rows start with milliseconds since the file date's
midnight; hour and daily rows with ``YYYYMMDD HH:MM``.

Symbols: equity tickers upper-cased (``SPY``); crypto pairs split on a known quote
currency (``btcusd`` gives ``BTC/USD``). Perpetuals (``cryptofuture``) follow ccxt and carry
the settlement currency: linear stablecoin-margined contracts ``BTC/USDT:USDT``, inverse
USD contracts ``BTC/USD:BTC``, so a perpetual never shares a symbol with the spot pair.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from lean_data.errors import ConfigError, DataFormatError
from lean_data.loaders import _lean_rows as rows
from lean_data.loaders._clock import LocalClock, days_from_civil
from lean_data.loaders._common import FileSpec, split_pair
from lean_data.models import NS_PER_DAY, AssetClass, MarketData, Resolution

__all__ = ["OPTIONS", "LeanLayout", "describe", "iterate", "parse_layout"]

OPTIONS: tuple[str, ...] = ()
_SECURITY_TYPES = ("equity", "crypto", "cryptofuture")
_RESOLUTIONS = {
    "tick": Resolution.TICK,
    "second": Resolution.SECOND,
    "minute": Resolution.MINUTE,
    "hour": Resolution.HOUR,
    "daily": Resolution.DAILY,
}
_DATED = re.compile(r"^(\d{4})(\d{2})(\d{2})_(trade|quote)\.zip$", re.IGNORECASE)
_UNDATED = re.compile(r"^([a-z0-9.\-]+?)(?:_(trade|quote))?\.zip$", re.IGNORECASE)
_NEW_YORK = ZoneInfo("America/New_York")
_LINEAR_SETTLE = ("USDT", "USDC", "BUSD", "FDUSD")


@dataclass(frozen=True)
class LeanLayout:
    """What a LEAN file's path says about it.

    Attributes:
        security_type: ``equity``, ``crypto`` or ``cryptofuture``.
        resolution: the bar period (TICK for tick files).
        ticker: lower-case ticker from the path.
        tick_type: ``trade`` or ``quote``.
        day: days since the epoch of the file's date (minute/second/tick files), else None.
    """

    security_type: str
    resolution: Resolution
    ticker: str
    tick_type: str
    day: int | None


def _bad_layout(path: Path, why: str) -> DataFormatError:
    return DataFormatError(
        f"not a LEAN data path ({why}); expected .../<equity|crypto|cryptofuture>/<market>/"
        "<tick|second|minute>/<ticker>/<YYYYMMDD>_<trade|quote>.zip or "
        ".../<hour|daily>/<ticker>[_<trade|quote>].zip",
        source=str(path),
    )


def parse_layout(path: Path) -> LeanLayout:
    """Read security type, resolution, ticker, tick type and date from a LEAN path.

    Raises:
        DataFormatError: the path does not follow the LEAN layout.
    """
    parts = path.parts
    for index in range(len(parts) - 3, -1, -1):
        kind = parts[index].lower()
        if kind in _SECURITY_TYPES and parts[index + 2].lower() in _RESOLUTIONS:
            break
    else:
        raise _bad_layout(path, "no <security type>/<market>/<resolution> folders")
    resolution = _RESOLUTIONS[parts[index + 2].lower()]
    rest = parts[index + 3 :]
    if resolution >= Resolution.HOUR:
        return _undated_layout(path, kind, resolution, rest)
    dated = _DATED.match(rest[-1]) if len(rest) == 2 else None
    if dated is None:
        raise _bad_layout(path, f"expected <ticker>/<YYYYMMDD>_<trade|quote>.zip, got {rest}")
    year, month, mday, tick_type = dated.groups()
    try:
        day = days_from_civil(int(year), int(month), int(mday))
    except ValueError as exc:
        raise _bad_layout(path, f"bad date in {rest[-1]!r}") from exc
    return LeanLayout(kind, resolution, rest[0].lower(), tick_type.lower(), day)


def _undated_layout(
    path: Path, kind: str, resolution: Resolution, rest: tuple[str, ...]
) -> LeanLayout:
    match = _UNDATED.match(rest[-1]) if len(rest) == 1 else None
    if match is None:
        raise _bad_layout(path, f"expected <ticker>[_<trade|quote>].zip, got {rest}")
    ticker, tick_type = match.groups()
    if tick_type is None and kind != "equity":
        raise _bad_layout(path, "crypto hour/daily files are named <ticker>_<trade|quote>.zip")
    return LeanLayout(kind, resolution, ticker.lower(), (tick_type or "trade").lower(), None)


def lean_symbol(security_type: str, ticker: str) -> str:
    """Return the canonical symbol for a LEAN ticker (see the module docstring)."""
    if security_type == "equity":
        return ticker.upper()
    pair = split_pair(ticker)
    if pair is None:
        return ticker.upper()
    base, quote = pair
    if security_type == "cryptofuture":
        settle = quote if quote in _LINEAR_SETTLE else base
        return f"{base}/{quote}:{settle}"
    return f"{base}/{quote}"


def _kind(layout: LeanLayout) -> str:
    if layout.resolution.is_tick:
        return "tick"
    return "quote" if layout.tick_type == "quote" else "bar"


def describe(
    path: Path, symbol: str | None, resolution: Resolution | None, options: dict[str, Any]
) -> FileSpec:
    """Return the spec of a LEAN file from its path alone (the caller may rename it).

    Raises:
        DataFormatError: the path does not follow the LEAN layout.
        ConfigError: ``resolution`` differs from the one the folder names.
    """
    del options  # a LEAN file takes no options
    layout = parse_layout(path)
    if resolution is not None and resolution != layout.resolution:
        raise ConfigError(
            f"{path} holds {layout.resolution} data (its folder says so), not {resolution}"
        )
    with _open_zip(path) as archive:
        _single_csv(archive, str(path))
    name = symbol or lean_symbol(layout.security_type, layout.ticker)
    asset_class = AssetClass.EQUITY if layout.security_type == "equity" else AssetClass.CRYPTO
    return FileSpec(path, "lean", name, layout.resolution, _kind(layout), asset_class)


def iterate(spec: FileSpec, options: dict[str, Any]) -> Iterator[MarketData]:
    """Stream the items of a LEAN zip in file order.

    Raises:
        DataFormatError: the zip is unreadable, holds no single CSV, or a row is malformed.
    """
    del options
    layout = parse_layout(spec.path)
    source = str(spec.path)
    with _open_zip(spec.path) as archive:
        entry = _single_csv(archive, source)
        with archive.open(entry) as raw:
            lines = io.TextIOWrapper(raw, encoding="utf-8", newline=None)
            context = rows.RowContext(
                spec.symbol, spec.resolution, source, entry, _scale(layout), 0
            )
            yield from _rows_for(layout, context, lines)


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError as exc:
        raise ConfigError(f"cannot open {path}: {exc.strerror or exc}") from exc
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataFormatError(f"cannot open the zip: {exc}", source=str(path)) from exc


def _single_csv(archive: zipfile.ZipFile, source: str) -> str:
    names = [name for name in archive.namelist() if name.lower().endswith(".csv")]
    if len(names) != 1:
        found = ", ".join(archive.namelist()) or "nothing"
        raise DataFormatError(f"expected one CSV inside the zip, found {found}", source=source)
    return names[0]


def _scale(layout: LeanLayout) -> float:
    return 10_000.0 if layout.security_type == "equity" else 1.0


def _rows_for(
    layout: LeanLayout, context: rows.RowContext, lines: io.TextIOWrapper
) -> Iterator[MarketData]:
    clock = LocalClock(_NEW_YORK if layout.security_type == "equity" else None)
    if layout.day is None:
        stamp = rows.DateTimeStamper(clock)
        if layout.tick_type == "quote":
            return rows.quote_bars(lines, context, stamp)
        return rows.trade_bars(lines, context, stamp)
    offset = clock.day_offset(layout.day)
    naive_midnight = layout.day * NS_PER_DAY
    context.base = naive_midnight - (offset or 0)
    parser = _ms_parser(layout)
    items = parser(lines, context, None)
    if offset is None:  # a DST transition inside this day: convert row by row
        return _shift(items, clock)
    return items


def _ms_parser(
    layout: LeanLayout,
) -> Callable[[io.TextIOWrapper, rows.RowContext, rows.DateTimeStamper | None], Iterator[Any]]:
    if not layout.resolution.is_tick:
        return rows.quote_bars if layout.tick_type == "quote" else rows.trade_bars
    if layout.security_type == "equity":
        return rows.equity_quote_ticks if layout.tick_type == "quote" else rows.equity_trade_ticks
    return rows.crypto_quote_ticks if layout.tick_type == "quote" else rows.crypto_trade_ticks


def _shift(items: Iterator[MarketData], clock: LocalClock) -> Iterator[MarketData]:
    """Convert wall-clock event times to UTC one by one (days with a DST transition)."""
    for item in items:
        yield replace(item, ts_event=clock.to_utc(item.ts_event))
