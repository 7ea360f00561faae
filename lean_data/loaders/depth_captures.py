"""Read recorded venue depth sessions into order-book records, in receive order.

- ``cryptofeed_binance``: a cryptofeed Binance session (``BINANCE.ws.1.0``,
  ``BINANCE_FUTURES.ws.1.0``, ``BINANCE_US``, ``BINANCE_DELIVERY``): its ``depthUpdate``
  frames become deltas; the REST depth answers of the session's ``http`` file become
  snapshots, placed at their receive time. The http file is found beside the ws file by
  name (``BINANCE.ws.1.0`` -> every ``BINANCE.http.*``), or named with the ``snapshots=``
  option (a path, or ``None`` for none).
- ``cryptofeed_kraken``: a cryptofeed Kraken WS v1 session (``KRAKEN.ws.50.0``): ``book``
  messages become snapshots and deltas (with Kraken's checksum).
- ``bybit_orderbook``: Bybit v5 ``orderbook.<depth>.<symbol>`` messages, one JSON object a
  line (nautilus' ``xrpusdt-ob500.data.zip``; a ``.zip`` of one such file, or plain text).

Records keep the recorded receive time where the file has one (cryptofeed), else 0 (the
replaying feed stamps it). A frame that does not parse raises ``DataFormatError`` naming
the file and line.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lean_data.book import OrderBookDelta, OrderBookSnapshot
from lean_data.errors import ConfigError, DataFormatError, FeedError
from lean_data.loaders.capture import iter_received, seconds_to_ns
from lean_data.wire.binance import binance_symbol
from lean_data.wire.bybit import parse_orderbook_message
from lean_data.wire.depth_binance import parse_depth_frame, parse_depth_snapshot
from lean_data.wire.kraken_book import KrakenBookMessage, parse_book_message

__all__ = [
    "BookRecord",
    "binance_records",
    "binance_venue",
    "bybit_records",
    "kraken_messages",
    "snapshot_files",
]

BookRecord = OrderBookSnapshot | OrderBookDelta

_SESSION = re.compile(r"^(?P<venue>[A-Z_]+)\.ws\.\d+\.\d+$")
_DEPTH_URL = re.compile(r"/depth\?(?:.*&)?symbol=(?P<symbol>[A-Za-z0-9_]+)")
_FUTURES = ("BINANCE_FUTURES", "BINANCE_DELIVERY")


def binance_venue(path: Path) -> str:
    """``"binance_futures"`` for a USD-M or COIN-M session file, else ``"binance_spot"``."""
    match = _SESSION.match(path.name)
    return "binance_futures" if match and match["venue"] in _FUTURES else "binance_spot"


def snapshot_files(path: Path, option: Any) -> list[Path]:
    """The REST depth captures of a Binance session: ``snapshots=`` or the ``http`` files
    beside ``path`` (same exchange prefix).

    Raises:
        ConfigError: ``snapshots=`` names no file.
    """
    if option is None:
        return []
    if option != "auto":
        files = [Path(option)]
        if not files[0].is_file():
            raise ConfigError(f"snapshots: no such file: {files[0]}")
        return files
    match = _SESSION.match(path.name)
    if match is None:
        return []
    return sorted(path.parent.glob(f"{match['venue']}.http.*"))


def _failed(path: Path, line: int, exc: Exception) -> DataFormatError:
    return DataFormatError(str(exc), source=str(path), line=line)


def _http_snapshots(files: list[Path], symbols: dict[str, str]) -> list[tuple[int, BookRecord]]:
    """Every REST depth answer of ``files`` as ``(receive_ns, snapshot)``."""
    found: list[tuple[int, BookRecord]] = []
    for http in files:
        with http.open(encoding="utf-8") as handle:
            for number, text in enumerate(handle, start=1):
                head, arrow, rest = text.partition(" -> ")
                match = _DEPTH_URL.search(head) if arrow else None
                if match is None:
                    continue
                stamp, _, body = rest.rstrip("\r\n").partition(": ")
                venue = match["symbol"].upper()
                try:
                    ts_recv = seconds_to_ns(stamp)
                    symbol = symbols.get(venue) or binance_symbol(venue)
                    snapshot = parse_depth_snapshot(body, symbol, ts_recv)
                except (ValueError, FeedError) as exc:
                    raise _failed(http, number, exc) from None
                found.append((ts_recv, snapshot))
    return found


def binance_records(path: Path, snapshots: Any = "auto") -> Iterator[BookRecord]:
    """Yield a Binance session's snapshots and deltas in receive order (a snapshot before
    a delta received at the same instant).

    Raises:
        DataFormatError: a depth frame or REST answer does not parse (names file and line).
    """
    pending = _http_snapshots(snapshot_files(path, snapshots), {})
    pending.sort(key=lambda pair: pair[0])
    index = 0
    for line, ts_recv, body in iter_received(path):
        while index < len(pending) and pending[index][0] <= ts_recv:
            yield pending[index][1]
            index += 1
        try:
            item = parse_depth_frame(body, ts_recv)
        except (ValueError, FeedError) as exc:
            raise _failed(path, line, exc) from None
        if isinstance(item, OrderBookDelta):
            yield item
    for _, snapshot in pending[index:]:
        yield snapshot


def kraken_messages(path: Path) -> Iterator[KrakenBookMessage]:
    """Yield a Kraken WS v1 session's ``book`` messages in receive order.

    Raises:
        DataFormatError: a book frame does not parse (names file and line).
    """
    for line, ts_recv, body in iter_received(path):
        try:
            message = parse_book_message(body, ts_recv)
        except (ValueError, FeedError) as exc:
            raise _failed(path, line, exc) from None
        if message is not None:
            yield message


def bybit_records(path: Path) -> Iterator[BookRecord]:
    """Yield Bybit v5 ``orderbook`` messages (one JSON object a line) as records.

    Raises:
        DataFormatError: a line is not an orderbook message (names file and line).
    """
    if path.name.lower().endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if not name.endswith("/")]
            if len(names) != 1:
                raise DataFormatError(
                    f"expected one file of orderbook messages in the zip, found {len(names)}",
                    source=str(path),
                )
            lines = archive.read(names[0]).splitlines()
            source = f"{path}!{names[0]}"
    else:
        lines = path.read_bytes().splitlines()
        source = str(path)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield parse_orderbook_message(line, 0)
        except (ValueError, FeedError) as exc:
            raise DataFormatError(str(exc), source=source, line=number) from None
