"""Read the real order-book captures into records, and replay them through BookKeepers.

Shared by the ``tests/test_depth*.py`` files. Every capture is a real recording (see
``tests/fixtures/PROVENANCE.md``); nothing here invents data except where a test says so.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lean_data.book import BookLevel, OrderBookDelta, OrderBookSnapshot
from lean_data.depth import BookKeeper, Decision, OrderBook, Sequencer
from lean_data.loaders.capture import read_capture, seconds_to_ns
from lean_data.wire.bybit import parse_orderbook_message
from lean_data.wire.depth_binance import BookTop, parse_depth_frame, parse_depth_snapshot
from lean_data.wire.kraken_book import KrakenBookMessage, parse_book_message

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = (Path(__file__).parents[1] / ".." / "shared" / "data").resolve()

_HTTP = re.compile(r"^(?P<url>\S+) -> (?P<ts>\d+(?:\.\d+)?): (?P<body>.*)$")


@dataclass
class BinanceSession:
    """One Binance capture: frames in arrival order and the REST snapshots by symbol."""

    frames: list[OrderBookDelta | BookTop]
    snapshots: dict[str, OrderBookSnapshot] = field(default_factory=dict)

    def deltas(self, symbol: str) -> list[OrderBookDelta]:
        return [f for f in self.frames if isinstance(f, OrderBookDelta) and f.symbol == symbol]

    def tops(self) -> list[BookTop]:
        return [f for f in self.frames if isinstance(f, BookTop)]


def delivery_symbols(path: Path) -> dict[str, str]:
    """COIN-M names (``BCHUSD_PERP``) are not ``BASE+QUOTE``; keep the venue's name."""
    names = re.findall(r'"s":"([A-Z0-9_]+)"', path.read_text(encoding="utf-8"))
    return {name: name for name in names}


def binance_session(
    ws: Path, http: Path | None = None, symbols: dict[str, str] | None = None
) -> BinanceSession:
    """Parse a Binance websocket capture (and its REST depth capture, when there is one)."""
    frames = [
        item
        for ts, body in read_capture(ws).received
        if (item := parse_depth_frame(body, ts, symbols=symbols)) is not None
    ]
    session = BinanceSession(frames)
    if http is not None:
        for line in http.read_text(encoding="utf-8").splitlines():
            match = _HTTP.match(line)
            if match is None:
                continue
            venue = re.search(r"symbol=(\w+)", match["url"])
            assert venue is not None, line[:120]
            symbol = next(f.symbol for f in frames if f.symbol.replace("/", "") == venue[1])
            snapshot = parse_depth_snapshot(match["body"], symbol, seconds_to_ns(match["ts"]))
            session.snapshots[symbol] = snapshot
    return session


@dataclass
class Replay:
    """What replaying one symbol's deltas did."""

    keeper: BookKeeper
    decisions: list[Decision]
    tops: dict[int, tuple[BookLevel | None, BookLevel | None]]  # update id -> top of book


def replay(
    deltas: Iterable[OrderBookDelta],
    keeper: BookKeeper,
    snapshot_before: Callable[[int, OrderBookDelta], OrderBookSnapshot | None],
) -> Replay:
    """Feed ``deltas`` to ``keeper``; before delta ``i``, load ``snapshot_before(i, delta)``
    when it returns one. Records the top of book at every update id the book reached."""
    result = Replay(keeper, [], {})
    book = keeper.book
    for index, delta in enumerate(deltas):
        snapshot = snapshot_before(index, delta)
        if snapshot is not None:
            keeper.on_snapshot(snapshot)
            if book.valid:
                result.tops[book.sequence] = (book.best_bid, book.best_ask)
        result.decisions.append(keeper.on_delta(delta))
        if book.valid:
            result.tops[book.sequence] = (book.best_bid, book.best_ask)
    return result


def at_receive_time(
    snapshot: OrderBookSnapshot,
) -> Callable[[int, OrderBookDelta], OrderBookSnapshot | None]:
    """Load ``snapshot`` before the first delta received after it (the recorded timing)."""
    done = False

    def before(index: int, delta: OrderBookDelta) -> OrderBookSnapshot | None:
        nonlocal done
        if done or delta.ts_recv < snapshot.ts_recv:
            return None
        done = True
        return snapshot

    return before


def frozen_state(book: OrderBook) -> tuple[list[BookLevel], list[BookLevel], int, bool]:
    """Everything that defines the book's state, for equality checks."""
    return book.bids(), book.asks(), book.sequence, book.valid


def derived_snapshot(book: OrderBook, ts_recv: int) -> OrderBookSnapshot:
    """A snapshot of ``book`` as it is now (*derived*: the venue never sent it)."""
    return OrderBookSnapshot(
        book.symbol, tuple(book.bids()), tuple(book.asks()), book.sequence, book.ts_event, ts_recv
    )


def bybit_messages(path: Path | None = None) -> list[OrderBookSnapshot | OrderBookDelta]:
    """The 50 raw Bybit v5 ``orderbook.500.XRPUSDT`` messages (1 snapshot, 49 deltas)."""
    path = path or FIXTURES / "nautilus_trader/bybit/xrpusdt-ob500.data.zip"
    with zipfile.ZipFile(path) as archive:
        lines = archive.read(archive.namelist()[0]).splitlines()
    return [parse_orderbook_message(line, index) for index, line in enumerate(lines)]


def bybit_raw_lines() -> list[bytes]:
    with zipfile.ZipFile(FIXTURES / "nautilus_trader/bybit/xrpusdt-ob500.data.zip") as archive:
        return archive.read(archive.namelist()[0]).splitlines()


def kraken_messages() -> tuple[list[str], list[KrakenBookMessage]]:
    """The raw book frames of ``KRAKEN.ws.50.0`` and their parses, in arrival order."""
    raws: list[str] = []
    parsed: list[KrakenBookMessage] = []
    for ts, body in read_capture(FIXTURES / "cryptofeed/KRAKEN.ws.50.0").received:
        message = parse_book_message(body, ts)
        if message is not None:
            raws.append(body)
            parsed.append(message)
    return raws, parsed


def keeper_for(sequencer: Sequencer, symbol: str, max_depth: int | None = None) -> BookKeeper:
    return BookKeeper(OrderBook(symbol, max_depth=max_depth), sequencer)
