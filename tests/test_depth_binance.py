"""Binance depth on the real cryptofeed captures: REST snapshot + diff depth rebuild books
whose top matches the venue's own bookTicker at the same update id.

bookTicker is pushed for every change of the top (one update id each); ``depth@100ms``
batches 100 ms of update ids into one message. So the rebuilt book's state is known at the
last id ``u`` of each batch (and at the snapshot's ``lastUpdateId``), and a bookTicker can
be compared exactly only when its ``u`` is one of those ids. Those comparisons must all
agree; the others (bookTicker ids inside a batch) have no book state to compare with.
"""

from __future__ import annotations

import pytest

from lean_data.book import BookLevel, OrderBookDelta, OrderBookSnapshot
from lean_data.depth import (
    Action,
    BinanceFuturesSequencer,
    BinanceSpotSequencer,
    OrderBook,
    Sequencer,
)
from lean_data.errors import FeedProtocolError, SubscriptionError
from lean_data.wire.depth_binance import parse_depth_frame, parse_depth_snapshot
from tests.depth_helpers import (
    FIXTURES,
    SHARED,
    BinanceSession,
    at_receive_time,
    binance_session,
    delivery_symbols,
    keeper_for,
    replay,
)

CRYPTOFEED = FIXTURES / "cryptofeed"


def _match_tops(
    session: BinanceSession, sequencer: type[Sequencer]
) -> dict[str, tuple[int, int, int]]:
    """Per symbol: (bookTickers compared, of which equal, bookTickers in all)."""
    result: dict[str, tuple[int, int, int]] = {}
    for symbol, snapshot in session.snapshots.items():
        run = replay(
            session.deltas(symbol), keeper_for(sequencer(), symbol), at_receive_time(snapshot)
        )
        assert all(d.action in (Action.APPLY, Action.SKIP, Action.BUFFER) for d in run.decisions)
        assert run.keeper.book.valid, run.keeper.book.invalid_reason
        start = OrderBook(symbol)
        start.load(snapshot)
        run.tops[snapshot.sequence] = (start.best_bid, start.best_ask)
        tops = [t for t in session.tops() if t.symbol == symbol]
        compared = [t for t in tops if t.update_id in run.tops]
        equal = [t for t in compared if run.tops[t.update_id] == (t.bid, t.ask)]
        result[symbol] = (len(compared), len(equal), len(tops))
    return result


def test_spot_books_match_the_book_ticker_at_every_shared_update_id() -> None:
    session = binance_session(CRYPTOFEED / "BINANCE.ws.1.0", CRYPTOFEED / "BINANCE.http.0.0")
    found = _match_tops(session, BinanceSpotSequencer)
    print("Binance spot bookTicker match (compared, equal, total):", found)
    assert found == {
        "NKN/USDT": (19, 19, 74),
        "BLZ/ETH": (1, 1, 1),
        "LRC/BTC": (6, 6, 9),
        "RUNE/EUR": (0, 0, 0),  # no bookTicker frame for RUNEEUR in the 30 s
    }


def test_usdm_futures_books_match_the_book_ticker_at_every_shared_update_id() -> None:
    session = binance_session(
        CRYPTOFEED / "BINANCE_FUTURES.ws.1.0", CRYPTOFEED / "BINANCE_FUTURES.http.0.0"
    )
    found = _match_tops(session, BinanceFuturesSequencer)
    print("Binance USD-M bookTicker match (compared, equal, total):", found)
    assert found == {
        "SUSHI/USDT": (12, 12, 305),
        "AKRO/USDT": (7, 7, 88),
        "KEEP/USDT": (13, 13, 75),
        "CTK/USDT": (18, 18, 145),
    }


def test_the_first_delta_after_each_snapshot_bridges_it() -> None:
    """Spot: U <= lastUpdateId+1 <= u; futures: U <= lastUpdateId <= u (and pu chains on)."""
    for ws, http, sequencer, bridge in (
        ("BINANCE.ws.1.0", "BINANCE.http.0.0", BinanceSpotSequencer, 1),
        ("BINANCE_FUTURES.ws.1.0", "BINANCE_FUTURES.http.0.0", BinanceFuturesSequencer, 0),
    ):
        session = binance_session(CRYPTOFEED / ws, CRYPTOFEED / http)
        for symbol, snapshot in session.snapshots.items():
            deltas = session.deltas(symbol)
            run = replay(deltas, keeper_for(sequencer(), symbol), at_receive_time(snapshot))
            first = next(
                d
                for d, dec in zip(deltas, run.decisions, strict=True)
                if dec.action is Action.APPLY
            )
            target = snapshot.sequence + bridge
            assert first.first_sequence <= target <= first.last_sequence, symbol


@pytest.mark.parametrize(
    ("name", "sequencer", "expected"),
    [
        ("BINANCE.ws.1.0", BinanceSpotSequencer, 177),
        ("BINANCE_US.ws.1.0", BinanceSpotSequencer, 336),
        ("BINANCE_FUTURES.ws.1.0", BinanceFuturesSequencer, 764),
        ("BINANCE_DELIVERY.ws.1.0", BinanceFuturesSequencer, 2047),
    ],
)
def test_every_depth_stream_is_contiguous(
    name: str, sequencer: type[Sequencer], expected: int
) -> None:
    """Binance.US and COIN-M have no REST snapshot in the corpus, so no book to compare:
    their sequence is checked from each symbol's first message on (every later one applies)."""
    path = CRYPTOFEED / name
    if not path.exists():
        path = SHARED / "cryptofeed" / name
        if not path.exists():
            pytest.skip(f"{name} is not in tests/fixtures nor ../shared/data")
    symbols = delivery_symbols(path) if "DELIVERY" in name else None
    session = binance_session(path, symbols=symbols)
    by_symbol: dict[str, list[OrderBookDelta]] = {}
    for frame in session.frames:
        if isinstance(frame, OrderBookDelta):
            by_symbol.setdefault(frame.symbol, []).append(frame)
    assert sum(map(len, by_symbol.values())) == expected
    for symbol, deltas in by_symbol.items():
        seq = sequencer()
        first = deltas[0]
        start = (
            first.first_sequence - 1 if sequencer is BinanceSpotSequencer else first.first_sequence
        )
        seq.reset(_empty(symbol, start))
        actions = [seq.check(d).action for d in deltas]
        assert actions == [Action.APPLY] * len(deltas), symbol


def _empty(symbol: str, sequence: int) -> OrderBookSnapshot:
    return OrderBookSnapshot(symbol, (), (), sequence, 0, 0)


def test_a_snapshot_ten_minutes_older_than_the_diffs_is_a_gap() -> None:
    """nautilus' real USD-M BTCUSDT rows: the snapshot (lastUpdateId 2098021528332, 23:49)
    and the diff (U 2098041693435, 23:59) cannot be bridged; the sequencer says exactly why."""
    rows = {}
    for name in ("snap", "update"):
        text = (FIXTURES / f"nautilus_trader/binance/btcusdt-depth-{name}.csv").read_text()
        rows[name] = [line.split(",") for line in text.splitlines()[1:]]
    snap, update = rows["snap"], rows["update"]

    def levels(part: list[list[str]], side: str) -> tuple[BookLevel, ...]:
        return tuple(BookLevel(float(r[6]), float(r[7])) for r in part if r[4] == side)

    snapshot = OrderBookSnapshot(
        "BTC/USDT:USDT", levels(snap, "b"), levels(snap, "a"), int(snap[0][3]),
        int(snap[0][1]) * 1_000_000, int(snap[0][1]) * 1_000_000,
    )  # fmt: skip
    first, last, prev = int(update[0][2]), int(update[0][3]), int(update[0][8])
    delta = OrderBookDelta(
        "BTC/USDT:USDT", levels(update, "b"), levels(update, "a"), first, last, prev, None,
        int(update[0][1]) * 1_000_000, int(update[0][1]) * 1_000_000,
    )  # fmt: skip
    keeper = keeper_for(BinanceFuturesSequencer(), "BTC/USDT:USDT")
    assert keeper.on_snapshot(snapshot).action is Action.APPLY
    assert keeper.book.best_bid == BookLevel(20377.0, 1.77)
    decision = keeper.on_delta(delta)
    assert decision.action is Action.GAP
    assert decision.verdict.reasons == ("book_gap",)
    assert decision.message == (
        "first update after the snapshot must have U <= 2098021528332 <= u, "
        "got U=2098041693435, u=2098041696700"
    )
    assert not keeper.book.valid
    assert keeper.buffered == 1


def test_parsers_name_the_bad_field() -> None:
    frame = (
        '{"stream":"nknusdt@depth@100ms","data":{"e":"depthUpdate","E":1633998512068,'
        '"s":"NKNUSDT","U":499869750,"u":499869752,"b":[["0.35130000","x"]],"a":[]}}'
    )
    with pytest.raises(FeedProtocolError, match=r"depthUpdate\.b\[0\]\.size: expected a decimal"):
        parse_depth_frame(frame, 0)
    with pytest.raises(FeedProtocolError, match=r"depthUpdate\.u: expected an integer"):
        parse_depth_frame(frame.replace('"u":499869752', '"u":"499869752"'), 0)
    with pytest.raises(FeedProtocolError, match=r"first_sequence <= last_sequence"):
        parse_depth_frame(frame.replace('"x"', '"1"').replace('"U":499869750', '"U":499869753'), 0)
    with pytest.raises(FeedProtocolError, match=r"finite price > 0"):
        parse_depth_frame(frame.replace('["0.35130000","x"]', '["0","1"]'), 0)
    with pytest.raises(SubscriptionError, match="Binance error -1121"):
        parse_depth_snapshot('{"code":-1121,"msg":"Invalid symbol."}', "X/USDT", 0)
    parsed = parse_depth_frame(frame.replace('"x"', '"6195.00000000"'), 7)
    assert parsed == OrderBookDelta(
        "NKN/USDT", (BookLevel(0.3513, 6195.0),), (), 499869750, 499869752, -1, None,
        1633998512068 * 1_000_000, 7,
    )  # fmt: skip
