"""Read recorded market-data files into TradeBar, QuoteBar and Tick objects (and records).

Pure, synchronous and streaming: :func:`iter_file` yields items in file order without
loading the whole file (JSON and feather files excepted), so the ReplayFeed can pace them.

Formats (the ``format=`` names):

- ``"csv"``: generic OHLCV CSV with a header (:mod:`lean_data.loaders.csv_ohlcv`).
- ``"binance_klines"``: Binance 12-column klines, CSV or REST JSON
  (:mod:`lean_data.loaders.binance`).
- ``"lean"``: QuantConnect LEAN zipped CSVs (:mod:`lean_data.loaders.lean`).
- ``"freqtrade_json"`` / ``"freqtrade_feather"``: freqtrade candles, and freqtrade
  funding-rate files as :class:`~lean_data.derivatives.FundingRate` records
  (:mod:`lean_data.loaders.freqtrade`).
- order-book captures (``kind == "book"``: OrderBookSnapshot / OrderBookDelta records, read
  by :func:`iter_records` and :func:`load_file`; :func:`sequencer_for` gives the venue's
  integrity rules): ``"cryptofeed_binance"`` (option ``snapshots=``),
  ``"cryptofeed_kraken"``, ``"bybit_orderbook"``, ``"nautilus_binance_depth"``,
  ``"tardis_book_snapshot"``, ``"tardis_incremental_book"`` (:mod:`lean_data.loaders.depth`).
- ``"parquet_catalog"``: one series of a Parquet catalog, a directory, not a file
  (:mod:`lean_data.loaders.parquet_catalog`; detected for a directory).

:func:`iter_file` streams bars, quote bars and ticks (what the ReplayFeed and the engine
take) and refuses a file of derivatives records with one line saying so;
:func:`iter_records` and :func:`load_file` read any file, derivatives records included.

Every item has ``ts_recv = 0`` (the replaying feed stamps receive time); bars are
``closed=True, revision=0``. Anything malformed raises :class:`DataFormatError` naming the
file and the 1-based line (the record number for JSON and feather files); a bad option
raises :class:`ConfigError`.

Example::

    from lean_data.loaders import describe_file, iter_file

    spec = describe_file("data/lean/equity/usa/minute/aapl/20140609_trade.zip")
    for bar in iter_file(spec.path):
        ...
"""

from __future__ import annotations

import gzip
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias, TypeVar, cast

from lean_data.book import OrderBookDelta, OrderBookSnapshot
from lean_data.derivatives import DerivativesData
from lean_data.errors import ConfigError, DataFormatError
from lean_data.loaders import binance, csv_ohlcv, depth, freqtrade, lean, parquet_catalog
from lean_data.loaders._common import FileSpec, check_options, parse_resolution_arg
from lean_data.loaders.depth import sequencer_for
from lean_data.loaders.detect import detect_format
from lean_data.models import MarketData, Resolution

__all__ = [
    "FORMATS",
    "MARKET_KINDS",
    "FileSpec",
    "LoadedItem",
    "describe_file",
    "detect_format",
    "iter_file",
    "iter_records",
    "load_file",
    "sequencer_for",
]

LoadedItem: TypeAlias = MarketData | DerivativesData | OrderBookSnapshot | OrderBookDelta
"""What a loader yields: a bar, quote bar or tick, a derivatives or an order-book record."""

MARKET_KINDS = ("bar", "quote", "tick")
"""The :attr:`FileSpec.kind` of files :func:`iter_file` streams."""

_T = TypeVar("_T")
_READ_ERRORS = (UnicodeDecodeError, EOFError, zlib.error, zipfile.BadZipFile, gzip.BadGzipFile)


@dataclass(frozen=True)
class _Handler:
    describe: Callable[[Path, str | None, Resolution | None, dict[str, Any]], FileSpec]
    iterate: Callable[[FileSpec, dict[str, Any]], Iterator[LoadedItem]]
    options: tuple[str, ...]


_HANDLERS: dict[str, _Handler] = {
    "csv": _Handler(csv_ohlcv.describe, csv_ohlcv.iterate, csv_ohlcv.OPTIONS),
    "binance_klines": _Handler(binance.describe, binance.iterate, binance.OPTIONS),
    "lean": _Handler(lean.describe, lean.iterate, lean.OPTIONS),
    "freqtrade_json": _Handler(freqtrade.describe, freqtrade.iterate, freqtrade.OPTIONS),
    "freqtrade_feather": _Handler(freqtrade.describe, freqtrade.iterate, freqtrade.OPTIONS),
    parquet_catalog.FORMAT: _Handler(
        parquet_catalog.describe, parquet_catalog.iterate, parquet_catalog.OPTIONS
    ),
}


def _depth_handler(fmt: str) -> _Handler:
    def describe(
        path: Path, symbol: str | None, _: Resolution | None, options: dict[str, Any]
    ) -> FileSpec:
        return depth.describe(fmt, path, symbol, options)

    return _Handler(describe, depth.iterate, depth.OPTIONS if fmt == "cryptofeed_binance" else ())


_HANDLERS.update({fmt: _depth_handler(fmt) for fmt in depth.FORMATS})

FORMATS: tuple[str, ...] = tuple(_HANDLERS)
"""The format names :func:`iter_file` accepts."""


def _prepare(
    path: str | Path,
    format: str | None,
    symbol: str | None,
    resolution: Resolution | str | None,
    options: dict[str, Any],
) -> tuple[FileSpec, _Handler]:
    path = Path(path)
    if path.is_dir():
        fmt = format or _detect_directory(path)
        if fmt != parquet_catalog.FORMAT:
            raise ConfigError(
                f"{path} is a directory; format {fmt!r} reads a file "
                f"({parquet_catalog.FORMAT!r} is the one format read from a directory)"
            )
    elif not path.is_file():
        raise ConfigError(f"no such file: {path}")
    else:
        fmt = format or _detect(path, options)
    handler = _HANDLERS.get(fmt)
    if handler is None:
        raise ConfigError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    check_options(fmt, options, handler.options)
    wanted = parse_resolution_arg(resolution)
    try:
        spec = handler.describe(path, symbol, wanted, options)
    except _READ_ERRORS as exc:
        raise DataFormatError(f"unreadable file: {exc}", source=str(path)) from exc
    if spec.format != fmt:  # freqtrade's two formats share a handler: keep the asked one
        raise DataFormatError(f"this is a {spec.format} file, not {fmt}", source=str(path))
    return spec, handler


def _detect_directory(path: Path) -> str:
    """Return the format of a directory: a Parquet catalog, or raise ConfigError."""
    if parquet_catalog.looks_like_catalog(path):
        return parquet_catalog.FORMAT
    raise ConfigError(
        f"{path} is a directory but not a Parquet catalog (no bars/, quote_bars/ or ticks/)"
    )


def _detect(path: Path, options: dict[str, Any]) -> str:
    """Detect the format; a ``columns`` mapping means a CSV the detector cannot read alone."""
    try:
        return detect_format(path)
    except DataFormatError:
        if "columns" in options:
            return "csv"
        raise


def describe_file(
    path: str | Path,
    *,
    format: str | None = None,
    symbol: str | None = None,
    resolution: Resolution | str | None = None,
    **options: Any,
) -> FileSpec:
    """Return what :func:`iter_file` would produce from ``path``, reading only its head.

    Args:
        path: the file.
        format: a name from :data:`FORMATS`; ``None`` detects it.
        symbol: the symbol to give every item; ``None`` infers it from the path.
        resolution: the bar period; ``None`` takes it from the path, name or spacing.
        **options: format options (``columns``, ``tz``, ``check_spacing``, ...), as for
            :func:`iter_file`; they can change the answer.

    Raises:
        DataFormatError: the format is unknown or the file's head is malformed.
        ConfigError: no such file, an unknown format or option, or no symbol inferable.
    """
    spec, _ = _prepare(path, format, symbol, resolution, options)
    return spec


def iter_file(
    path: str | Path,
    *,
    format: str | None = None,
    symbol: str | None = None,
    resolution: Resolution | str | None = None,
    **options: Any,
) -> Iterator[MarketData]:
    """Stream the items of a market-data file in file order.

    The file's format, symbol and resolution are settled (and its head checked) before
    this returns; rows are parsed as the iterator is consumed.

    Args:
        path: the file (a directory for ``parquet_catalog``).
        format: a name from :data:`FORMATS`; ``None`` detects it from path and content.
        symbol: the symbol to give every item; ``None`` infers it from the path.
        resolution: the bar period; ``None`` takes it from the path, name or spacing.
        **options: format options: ``columns``, ``tz``, ``delimiter``, ``header`` (csv);
            ``check_spacing`` (csv, binance_klines, freqtrade_*; default True).

    Returns:
        An iterator of TradeBar, QuoteBar or Tick (one kind per file, see
        :attr:`FileSpec.kind`).

    Raises:
        DataFormatError: unknown format or malformed content (names file and line), or a
            file of derivatives records (read those with :func:`iter_records`).
        ConfigError: no such file, an unknown format or option, or no symbol inferable.
    """
    spec, handler = _prepare(path, format, symbol, resolution, options)
    if spec.kind not in MARKET_KINDS:
        raise DataFormatError(
            f"the file holds {spec.kind} records, not bars, quotes or ticks; "
            "read it with lean_data.loaders.load_file() or iter_records()",
            source=str(spec.path),
        )
    items = cast(Iterator[MarketData], handler.iterate(spec, options))  # a market kind
    return _guarded(items, str(spec.path))


def iter_records(
    path: str | Path,
    *,
    format: str | None = None,
    symbol: str | None = None,
    resolution: Resolution | str | None = None,
    **options: Any,
) -> Iterator[LoadedItem]:
    """Stream the items of any file :func:`iter_file` reads, or of derivatives records.

    The same as :func:`iter_file` (same arguments and errors), but a freqtrade
    funding-rate file yields :class:`~lean_data.derivatives.FundingRate` records.
    """
    spec, handler = _prepare(path, format, symbol, resolution, options)
    return _guarded(handler.iterate(spec, options), str(spec.path))


def load_file(
    path: str | Path,
    *,
    format: str | None = None,
    symbol: str | None = None,
    resolution: Resolution | str | None = None,
    **options: Any,
) -> list[LoadedItem]:
    """Return every item of a file as a list: bars, quotes, ticks or derivatives records
    (see :func:`iter_records`)."""
    items = iter_records(path, format=format, symbol=symbol, resolution=resolution, **options)
    return list(items)


def _guarded(items: Iterator[_T], source: str) -> Iterator[_T]:
    """Turn decoding and decompression failures met while streaming into DataFormatError."""
    try:
        yield from items
    except _READ_ERRORS as exc:
        raise DataFormatError(f"unreadable file: {exc}", source=source) from exc
