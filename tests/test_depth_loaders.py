"""The real depth captures through the loaders and the ReplayFeed into the engine's books."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lean_data import Config, DataEngine, DataQualityLevel, ReplayFeed
from lean_data.book import OrderBookDelta, OrderBookSnapshot
from lean_data.depth import (
    BinanceFuturesSequencer,
    BinanceSpotSequencer,
    BybitSequencer,
    KrakenChecksumSequencer,
    OrderBook,
)
from lean_data.errors import DataFormatError
from lean_data.loaders import describe_file, load_file, sequencer_for
from lean_data.models import MarketData
from tests.depth_helpers import (
    FIXTURES,
    at_receive_time,
    binance_session,
    bybit_messages,
    frozen_state,
    keeper_for,
    kraken_messages,
    replay,
)

CF = FIXTURES / "cryptofeed"
BYBIT = FIXTURES / "nautilus_trader/bybit/xrpusdt-ob500.data.zip"
NAUTILUS = FIXTURES / "nautilus_trader/binance"
TARDIS_5 = FIXTURES / "nautilus_trader/tardis/binance-futures_book_snapshot_5_BTCUSDT.csv"
TARDIS_25 = FIXTURES / "tardis/binance-futures_book_snapshot_25_BTCUSDT.csv"
DERIBIT = FIXTURES / "nautilus_trader/tardis/deribit_incremental_book_L2_BTC-PERPETUAL.csv"
FTX = FIXTURES / "nautilus_trader/btc-perp-20211231-20220201_1m.csv"


def _counts(path: Path) -> tuple[int, int]:
    records = load_file(path)
    snapshots = sum(isinstance(r, OrderBookSnapshot) for r in records)
    return snapshots, sum(isinstance(r, OrderBookDelta) for r in records)


@pytest.mark.parametrize(
    ("path", "fmt", "venue", "symbols", "counts"),
    [
        (CF / "BINANCE.ws.1.0", "cryptofeed_binance", "binance_spot", 4, (4, 177)),
        (CF / "BINANCE_FUTURES.ws.1.0", "cryptofeed_binance", "binance_futures", 4, (4, 764)),
        (CF / "KRAKEN.ws.50.0", "cryptofeed_kraken", "kraken", 10, (10, 4269)),
        (BYBIT, "bybit_orderbook", "bybit", 1, (1, 49)),
        (
            NAUTILUS / "btcusdt-depth-snap.csv",
            "nautilus_binance_depth",
            "binance_futures",
            1,
            (1, 0),
        ),
        (
            NAUTILUS / "btcusdt-depth-update.csv",
            "nautilus_binance_depth",
            "binance_futures",
            1,
            (0, 1),
        ),
        (TARDIS_5, "tardis_book_snapshot", None, 1, (10, 0)),
        (TARDIS_25, "tardis_book_snapshot", None, 1, (10, 0)),
        (DERIBIT, "tardis_incremental_book", None, 1, (1, 0)),
    ],
)
def test_every_capture_loads_with_its_exact_counts_and_venue(
    path: Path, fmt: str, venue: str | None, symbols: int, counts: tuple[int, int]
) -> None:
    spec = describe_file(path)
    assert (spec.format, spec.kind, spec.venue, len(spec.symbols)) == (fmt, "book", venue, symbols)
    assert _counts(path) == counts
    records = load_file(path)
    for symbol in spec.symbols:  # each symbol's records in receive order
        stamps = [r.ts_recv for r in records if r.symbol == symbol]
        assert stamps == sorted(stamps)


def test_sequencers_follow_the_venue() -> None:
    assert type(sequencer_for(describe_file(CF / "BINANCE.ws.1.0"))) is BinanceSpotSequencer
    futures = describe_file(CF / "BINANCE_FUTURES.ws.1.0")
    assert type(sequencer_for(futures)) is BinanceFuturesSequencer
    assert type(sequencer_for(describe_file(BYBIT))) is BybitSequencer
    kraken = sequencer_for(describe_file(CF / "KRAKEN.ws.50.0"), "BTC/CHF")
    assert type(kraken) is KrakenChecksumSequencer


def test_binance_loader_equals_the_helpers_parse() -> None:
    session = binance_session(CF / "BINANCE.ws.1.0", CF / "BINANCE.http.0.0")
    loaded = load_file(CF / "BINANCE.ws.1.0", symbol="NKN/USDT")
    assert [r for r in loaded if isinstance(r, OrderBookDelta)] == session.deltas("NKN/USDT")
    assert [r for r in loaded if isinstance(r, OrderBookSnapshot)] == [
        session.snapshots["NKN/USDT"]
    ]
    bare = load_file(CF / "BINANCE.ws.1.0", symbol="NKN/USDT", snapshots=None)
    assert not any(isinstance(r, OrderBookSnapshot) for r in bare)


async def _engine_books(feed: ReplayFeed, symbols: list[str]) -> dict[str, OrderBook]:
    levels: dict[str, list[DataQualityLevel]] = {}

    def on_book(symbol: str, book: OrderBook, level: DataQualityLevel) -> None:
        levels.setdefault(symbol, []).append(level)

    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        engine.add_book_callback(on_book)
        for symbol in symbols:
            await engine.subscribe_symbol(symbol, data=("book",))
        await feed.wait_finished()
        await feed.delivered()
        await engine.wait_idle()
        books = {s: b for s in symbols if (b := engine.get_book(s)) is not None}
    for symbol in symbols:
        assert DataQualityLevel.INVALID not in levels[symbol], symbol
    return books


@pytest.mark.parametrize("name", ["BINANCE", "BINANCE_FUTURES"])
async def test_binance_replayed_through_the_engine_equals_the_offline_replay(name: str) -> None:
    session = binance_session(CF / f"{name}.ws.1.0", CF / f"{name}.http.0.0")
    feed = ReplayFeed("replay", [CF / f"{name}.ws.1.0"])
    symbols = sorted(session.snapshots)
    assert sorted(feed.symbols) == symbols
    books = await _engine_books(feed, symbols)
    sequencer = BinanceSpotSequencer if name == "BINANCE" else BinanceFuturesSequencer
    for symbol in symbols:
        keeper = keeper_for(sequencer(), symbol)
        replay(session.deltas(symbol), keeper, at_receive_time(session.snapshots[symbol]))
        assert keeper.book.valid
        assert frozen_state(books[symbol]) == frozen_state(keeper.book), symbol


async def test_bybit_replayed_through_the_engine_equals_the_offline_replay() -> None:
    messages = bybit_messages()
    keeper = keeper_for(BybitSequencer(), "XRP/USDT")
    keeper.on_snapshot(messages[0])  # type: ignore[arg-type]  # the first is the snapshot
    for delta in messages[1:]:
        assert isinstance(delta, OrderBookDelta)
        keeper.on_delta(delta)
    books = await _engine_books(ReplayFeed("replay", [BYBIT]), ["XRP/USDT"])
    assert keeper.book.valid
    assert frozen_state(books["XRP/USDT"]) == frozen_state(keeper.book)


async def test_kraken_replayed_through_the_engine_verifies_every_checksum() -> None:
    _, parsed = kraken_messages()
    offline: dict[str, OrderBook] = {}
    keepers = {}
    for message in parsed:
        symbol = message.record.symbol
        if symbol not in keepers:
            sequencer = KrakenChecksumSequencer(message.price_decimals, message.size_decimals)
            keepers[symbol] = keeper_for(sequencer, symbol)
        record = message.record
        if isinstance(record, OrderBookSnapshot):
            keepers[symbol].on_snapshot(record)
        else:
            assert keepers[symbol].on_delta(record).verdict.is_valid
    offline = {symbol: keeper.book for symbol, keeper in keepers.items()}
    feed = ReplayFeed("replay", [CF / "KRAKEN.ws.50.0"])
    books = await _engine_books(feed, sorted(offline))
    for symbol, book in offline.items():
        assert book.valid
        assert frozen_state(books[symbol]) == frozen_state(book), symbol


@pytest.mark.parametrize("path", [TARDIS_5, TARDIS_25])
def test_tardis_snapshots_round_trip_exactly(path: Path) -> None:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    snapshots = load_file(path)
    assert len(snapshots) == len(rows) == 10
    for row, snapshot in zip(rows, snapshots, strict=True):
        assert isinstance(snapshot, OrderBookSnapshot)
        back = [row[0], row[1], str(snapshot.ts_event // 1000), str(snapshot.ts_recv // 1000)]
        for (ask_price, ask_size), (bid_price, bid_size) in zip(
            snapshot.asks, snapshot.bids, strict=True
        ):
            back += [repr(ask_price), repr(ask_size), repr(bid_price), repr(bid_size)]
        assert [float(v) for v in back[4:]] == [float(v) for v in row[4:]]
        assert back[:4] == row[:4]
        assert snapshot.symbol == "BTC/USDT"


def test_deribit_incremental_rows_become_one_snapshot() -> None:
    (snapshot,) = load_file(DERIBIT)
    assert isinstance(snapshot, OrderBookSnapshot)
    assert snapshot.symbol == "BTC-PERPETUAL"
    assert snapshot.asks[:2] == ((6421.5, 18640.0), (6422.0, 1190.0))
    assert (len(snapshot.asks), snapshot.bids, snapshot.ts_event) == (
        15, (), 1585699200245000 * 1000,
    )  # fmt: skip


def test_a_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    lines = (NAUTILUS / "btcusdt-depth-update.csv").read_text().splitlines()
    lines[5] = lines[5].replace("20473.", "x20473.")
    bad = tmp_path / "btcusdt-depth-update.csv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=rf"^{bad}:6: could not convert"):
        load_file(bad)
    capture = (CF / "BINANCE.ws.1.0").read_text().splitlines()
    number = next(i for i, line in enumerate(capture) if "depthUpdate" in line)
    capture[number] = capture[number].replace('"U":', '"U":"x", "V":')
    session = tmp_path / "BINANCE.ws.1.0"
    session.write_text("\n".join(capture) + "\n")
    with pytest.raises(DataFormatError, match=rf"^{session}:{number + 1}: depthUpdate"):
        load_file(session, snapshots=None)


async def test_bars_and_books_replayed_together_reach_their_own_callbacks() -> None:
    bars: list[str] = []
    books: list[str] = []

    def on_bar(symbol: str, bar: MarketData, level: DataQualityLevel) -> None:
        bars.append(symbol)

    def on_book(symbol: str, book: OrderBook, level: DataQualityLevel) -> None:
        books.append(symbol)

    feed = ReplayFeed("replay", [FTX, BYBIT])
    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(on_bar)
        engine.add_book_callback(on_book)
        await engine.subscribe_symbol("BTC-PERP")
        await engine.subscribe_symbol("XRP/USDT", data=("book",))
        await feed.wait_finished()
        await feed.delivered()
        await engine.wait_idle()
    assert bars == ["BTC-PERP"] * 45_031
    assert books == ["XRP/USDT"] * 50


def test_lean_data_replay_of_a_depth_capture_reports_its_books(tmp_path: Path) -> None:
    """``lean-data replay`` subscribes what each file holds (books here) and says what
    became of them: nothing replayed goes unreported."""
    import subprocess
    import sys

    bybit = FIXTURES / "nautilus_trader" / "bybit" / "xrpusdt-ob500.data.zip"
    done = subprocess.run(
        [sys.executable, "-m", "lean_data.cli", "replay", str(bybit), "--no-progress",
         "--output", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Order books: 50 messages, 50 applied, 0 invalid, 0 re-syncs" in done.stdout
    assert "XRP/USDT       valid" in done.stdout
