"""Read order-book CSV files into snapshots and deltas, in file order.

- ``nautilus_binance_depth``: nautilus_trader's Binance depth rows
  (``symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu``):
  the rows of one message (same time, ids and ``update_type``) become one record, a
  snapshot for ``snap``, a delta (``U``, ``u``, ``pu``) for ``set``.
- ``tardis_book_snapshot``: Tardis.dev ``book_snapshot_N`` rows
  (``exchange,symbol,timestamp,local_timestamp,asks[0].price,asks[0].amount,bids[0]...``):
  one snapshot a row (empty levels left out).
- ``tardis_incremental_book``: Tardis.dev ``incremental_book_L2`` rows
  (``exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount``): the
  consecutive rows of one time and ``is_snapshot`` become one snapshot (``true``) or one
  delta (``false``; amount 0 removes the level). Tardis numbers nothing: ids are -1.

Times: nautilus ms, Tardis µs (``timestamp`` -> ``ts_event``, ``local_timestamp`` ->
``ts_recv``). A malformed row raises ``DataFormatError`` naming the file and line.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from lean_data.book import Level, OrderBookDelta, OrderBookSnapshot
from lean_data.errors import DataFormatError
from lean_data.loaders._common import open_text
from lean_data.wire.binance import binance_symbol

__all__ = [
    "NAUTILUS_HEADER",
    "TARDIS_INCREMENTAL_HEADER",
    "nautilus_records",
    "tardis_incremental_records",
    "tardis_snapshot_records",
    "venue_symbol",
]

NAUTILUS_HEADER = "symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu"
TARDIS_INCREMENTAL_HEADER = (
    "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
)
TARDIS_SNAPSHOT_PREFIX = "exchange,symbol,timestamp,local_timestamp,asks[0].price"

_MS = 1_000_000
_US = 1_000

BookRecord = OrderBookSnapshot | OrderBookDelta


def venue_symbol(exchange: str, symbol: str) -> str:
    """Binance symbols become ``BASE/QUOTE``; other venues' names are kept as they are."""
    return binance_symbol(symbol) if exchange.startswith("binance") else symbol


def _rows(path: Path, header: int) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, fields)`` for each non-blank row after the header."""
    with open_text(path) as handle:
        for number, fields in enumerate(csv.reader(handle), start=1):
            if number > header and fields and any(field.strip() for field in fields):
                yield number, fields


def _bad(path: Path, line: int, fields: list[str], exc: Exception) -> DataFormatError:
    text = ",".join(fields)
    text = text if len(text) <= 120 else text[:117] + "..."
    return DataFormatError(f"{exc} in row {text!r}", source=str(path), line=line)


def nautilus_records(path: Path, symbol: str | None = None) -> Iterator[BookRecord]:
    """Yield nautilus' Binance depth rows as one record per message.

    Raises:
        DataFormatError: a row has the wrong field count or a bad number (names the line).
    """
    key: tuple[str, ...] | None = None
    prev, first_line = "", 0
    bids: list[Level] = []
    asks: list[Level] = []
    for number, fields in _rows(path, 1):
        try:
            if len(fields) != 9:
                raise ValueError(f"expected 9 fields ({NAUTILUS_HEADER}), found {len(fields)}")
            if fields[4] not in ("a", "b") or fields[5] not in ("snap", "set"):
                raise ValueError("expected side 'a' or 'b' and update_type 'snap' or 'set'")
            level = (float(fields[6]), float(fields[7]))
        except ValueError as exc:
            raise _bad(path, number, fields, exc) from None
        row_key = (*fields[:4], fields[5])
        if row_key != key:
            if key is not None:
                yield _nautilus_record(path, first_line, (*key, prev), bids, asks, symbol)
            key, prev, first_line, bids, asks = row_key, fields[8], number, [], []
        (bids if fields[4] == "b" else asks).append(level)
    if key is not None:
        yield _nautilus_record(path, first_line, (*key, prev), bids, asks, symbol)


def _nautilus_record(
    path: Path,
    line: int,
    key: tuple[str, ...],
    bids: list[Level],
    asks: list[Level],
    symbol: str | None,
) -> BookRecord:
    venue, stamp, first, last, kind, prev = key
    try:
        name = symbol or binance_symbol(venue)
        ts = int(stamp) * _MS
        if kind == "snap":
            return OrderBookSnapshot(name, tuple(bids), tuple(asks), int(last), ts, 0)
        return OrderBookDelta(
            name, tuple(bids), tuple(asks), int(first), int(last), int(prev or -1), None, ts, 0
        )
    except ValueError as exc:
        raise DataFormatError(str(exc), source=str(path), line=line) from None


def tardis_snapshot_records(path: Path, symbol: str | None = None) -> Iterator[BookRecord]:
    """Yield one snapshot per Tardis ``book_snapshot_N`` row.

    Raises:
        DataFormatError: the header is not a book_snapshot one, or a row is malformed.
    """
    with open_text(path) as handle:
        header = next(csv.reader(handle), [])
    columns = header[4:]
    if ",".join(header[:5]) != TARDIS_SNAPSHOT_PREFIX or len(columns) % 4:
        raise DataFormatError(
            f"expected a header {TARDIS_SNAPSHOT_PREFIX}...", source=str(path), line=1
        )
    for number, fields in _rows(path, 1):
        try:
            if len(fields) != len(header):
                raise ValueError(f"expected {len(header)} fields, found {len(fields)}")
            asks: list[Level] = []
            bids: list[Level] = []
            for index in range(4, len(fields), 4):
                ask_price, ask_size, bid_price, bid_size = fields[index : index + 4]
                if ask_price:
                    asks.append((float(ask_price), float(ask_size)))
                if bid_price:
                    bids.append((float(bid_price), float(bid_size)))
            name = symbol or venue_symbol(fields[0], fields[1])
            yield OrderBookSnapshot(
                name, tuple(bids), tuple(asks), -1, int(fields[2]) * _US, int(fields[3]) * _US
            )
        except ValueError as exc:
            raise _bad(path, number, fields, exc) from None


def tardis_incremental_records(path: Path, symbol: str | None = None) -> Iterator[BookRecord]:
    """Yield Tardis ``incremental_book_L2`` rows as snapshots and deltas (one per time).

    Raises:
        DataFormatError: a row is malformed (names the line).
    """
    key: tuple[str, ...] | None = None
    bids: list[Level] = []
    asks: list[Level] = []
    first_line = 0
    for number, fields in _rows(path, 1):
        try:
            if len(fields) != 8:
                raise ValueError(f"expected 8 fields ({TARDIS_INCREMENTAL_HEADER})")
            if fields[4] not in ("true", "false") or fields[5] not in ("bid", "ask"):
                raise ValueError("expected is_snapshot true/false and side bid/ask")
            level = (float(fields[6]), float(fields[7]))
        except ValueError as exc:
            raise _bad(path, number, fields, exc) from None
        row_key = (*fields[:5],)
        if row_key != key:
            if key is not None:
                yield _tardis_record(path, first_line, key, bids, asks, symbol)
            key, first_line, bids, asks = row_key, number, [], []
        (bids if fields[5] == "bid" else asks).append(level)
    if key is not None:
        yield _tardis_record(path, first_line, key, bids, asks, symbol)


def _tardis_record(
    path: Path,
    line: int,
    key: tuple[str, ...],
    bids: list[Level],
    asks: list[Level],
    symbol: str | None,
) -> BookRecord:
    exchange, venue, stamp, local, snapshot = key
    try:
        name = symbol or venue_symbol(exchange, venue)
        ts_event, ts_recv = int(stamp) * _US, int(local) * _US
        if snapshot == "true":
            return OrderBookSnapshot(name, tuple(bids), tuple(asks), -1, ts_event, ts_recv)
        return OrderBookDelta(name, tuple(bids), tuple(asks), -1, -1, -1, None, ts_event, ts_recv)
    except ValueError as exc:
        raise DataFormatError(str(exc), source=str(path), line=line) from None
