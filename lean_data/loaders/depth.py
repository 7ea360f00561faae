"""Order-book capture formats: detection, the file spec (with the venue's rules) and reading.

Formats (``kind == "book"``; items are :class:`~lean_data.book.OrderBookSnapshot` and
:class:`~lean_data.book.OrderBookDelta`): ``cryptofeed_binance``, ``cryptofeed_kraken``,
``bybit_orderbook`` (:mod:`lean_data.loaders.depth_captures`), ``nautilus_binance_depth``,
``tardis_book_snapshot``, ``tardis_incremental_book`` (:mod:`lean_data.loaders.depth_csv`).

A file may hold several symbols (a cryptofeed session): ``symbol=`` keeps one, otherwise
every record is read and :attr:`FileSpec.symbols` lists them. :attr:`FileSpec.venue` names
the integrity rules; :func:`sequencer_for` builds them for one symbol.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lean_data.depth.sequencers import (
    BinanceFuturesSequencer,
    BinanceSpotSequencer,
    BybitSequencer,
    KrakenChecksumSequencer,
    Sequencer,
)
from lean_data.errors import ConfigError
from lean_data.loaders import depth_captures, depth_csv
from lean_data.loaders._common import FileSpec, open_text
from lean_data.models import AssetClass, Resolution

__all__ = [
    "FORMATS",
    "OPTIONS",
    "BookRecord",
    "describe",
    "detect_depth",
    "iterate",
    "sequencer_for",
]

_KRAKEN_DEPTH = re.compile(r'"channelName":"book-(\d+)"')  # the subscribed depth

BookRecord = depth_captures.BookRecord
OPTIONS = ("snapshots",)
FORMATS = (
    "cryptofeed_binance",
    "cryptofeed_kraken",
    "bybit_orderbook",
    "nautilus_binance_depth",
    "tardis_book_snapshot",
    "tardis_incremental_book",
)
_VENUE = {
    "cryptofeed_kraken": "kraken",
    "bybit_orderbook": "bybit",
    "nautilus_binance_depth": "binance_futures",
}
_BINANCE_SESSION = re.compile(r"^BINANCE(_US|_FUTURES|_DELIVERY)?\.ws\.\d+\.\d+$")
_KRAKEN_SESSION = re.compile(r"^KRAKEN\.ws\.\d+\.\d+$")


def detect_depth(path: Path) -> str | None:
    """Return the depth format of ``path`` from its name and head, or None."""
    name = path.name
    if _BINANCE_SESSION.match(name):
        return "cryptofeed_binance"
    if _KRAKEN_SESSION.match(name):
        return "cryptofeed_kraken"
    lower = name.lower()
    if lower.endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as archive:
                members = archive.namelist()
                head = archive.open(members[0]).read(200) if len(members) == 1 else b""
        except (zipfile.BadZipFile, OSError):
            return None
        return "bybit_orderbook" if b'"topic":"orderbook.' in head else None
    if lower.endswith(".data"):
        with path.open("rb") as handle:
            return "bybit_orderbook" if b'"topic":"orderbook.' in handle.read(200) else None
    if lower.removesuffix(".gz").endswith(".csv"):
        try:
            with open_text(path) as handle:
                header = handle.readline().strip()
        except (UnicodeDecodeError, OSError, EOFError):  # not text: the other loaders say why
            return None
        if header == depth_csv.NAUTILUS_HEADER:
            return "nautilus_binance_depth"
        if header == depth_csv.TARDIS_INCREMENTAL_HEADER:
            return "tardis_incremental_book"
        if header.startswith(depth_csv.TARDIS_SNAPSHOT_PREFIX):
            return "tardis_book_snapshot"
    return None


def _all(path: Path, fmt: str, options: dict[str, Any]) -> Iterator[BookRecord]:
    if fmt == "cryptofeed_binance":
        return depth_captures.binance_records(path, options.get("snapshots", "auto"))
    if fmt == "cryptofeed_kraken":
        return (message.record for message in depth_captures.kraken_messages(path))
    if fmt == "bybit_orderbook":
        return depth_captures.bybit_records(path)
    if fmt == "nautilus_binance_depth":
        return depth_csv.nautilus_records(path)
    if fmt == "tardis_book_snapshot":
        return depth_csv.tardis_snapshot_records(path)
    return depth_csv.tardis_incremental_records(path)


def describe(fmt: str, path: Path, symbol: str | None, options: dict[str, Any]) -> FileSpec:
    """Read the file once for its symbols; return its spec (``kind`` ``"book"``).

    Raises:
        ConfigError: ``symbol`` is not in the file, or the file holds no book records.
        DataFormatError: a record does not parse.
    """
    found = tuple(dict.fromkeys(record.symbol for record in _all(path, fmt, options)))
    if not found:
        raise ConfigError(f"{path}: no order-book records in the file")
    if symbol is not None and symbol not in found:
        raise ConfigError(f"{path}: no book records of {symbol}; the file has {', '.join(found)}")
    venue = depth_captures.binance_venue(path) if fmt == "cryptofeed_binance" else _VENUE.get(fmt)
    return FileSpec(
        path, fmt, symbol or found[0], Resolution.TICK, "book", AssetClass.CRYPTO,
        venue=venue, symbols=(symbol,) if symbol else found,
    )  # fmt: skip


def iterate(spec: FileSpec, options: dict[str, Any]) -> Iterator[BookRecord]:
    """Yield the records of ``spec.symbols`` in file (receive) order."""
    wanted = set(spec.symbols)
    for record in _all(spec.path, spec.format, options):
        if record.symbol in wanted:
            yield record


def sequencer_for(spec: FileSpec, symbol: str | None = None) -> Sequencer:
    """Return fresh integrity rules for ``symbol``'s book from the file of ``spec``.

    Binance spot and US: :class:`BinanceSpotSequencer`; USD-M, COIN-M and nautilus'
    depth rows: :class:`BinanceFuturesSequencer`; Bybit: :class:`BybitSequencer`;
    Kraken: :class:`KrakenChecksumSequencer` with the pair's decimals as first seen in the
    file and the subscribed depth (``book-1000``); Tardis (no ids): the base
    :class:`Sequencer` (apply everything).

    Raises:
        ConfigError: a Kraken file without a priced message of ``symbol``.
    """
    symbol = symbol or spec.symbol
    if spec.venue == "binance_spot":
        return BinanceSpotSequencer()
    if spec.venue == "binance_futures":
        return BinanceFuturesSequencer()
    if spec.venue == "bybit":
        return BybitSequencer()
    if spec.venue == "kraken":
        depth = _KRAKEN_DEPTH.search(spec.path.read_text(encoding="utf-8", errors="replace"))
        for message in depth_captures.kraken_messages(spec.path):
            if message.record.symbol == symbol and message.price_decimals >= 0:
                return KrakenChecksumSequencer(
                    message.price_decimals,
                    message.size_decimals,
                    int(depth[1]) if depth is not None else None,
                )
        raise ConfigError(f"{spec.path}: no Kraken book message of {symbol} with levels")
    return Sequencer()
