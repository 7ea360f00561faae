"""OrderBook and the book records: properties against a plain dict model, exact analytics.

The hypothesis properties drive the book with random level changes (prices on a small grid
so levels collide, sizes including 0 = remove) and compare it with a ``dict`` model sorted
afresh each time: the sorted price lists, top of book, depth views and truncation must
agree after every change.
"""

from __future__ import annotations

import dataclasses
import math
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lean_data.book import BookLevel, BookSide, OrderBookDelta, OrderBookSnapshot
from lean_data.depth import BookKeeper, BookState, BybitSequencer, OrderBook, Sequencer

PRICES = st.integers(min_value=1, max_value=60).map(lambda n: n / 4)
SIZES = st.sampled_from([0.0, 0.5, 1.0, 2.0, 7.25])
CHANGES = st.lists(st.tuples(st.sampled_from(list(BookSide)), PRICES, SIZES), max_size=200)


def _delta(
    bids: tuple[BookLevel, ...] = (), asks: tuple[BookLevel, ...] = (), u: int = 2
) -> OrderBookDelta:
    return OrderBookDelta("X/USD", bids, asks, u, u, -1, None, 1, 1)


def _snapshot(
    bids: list[tuple[float, float]], asks: list[tuple[float, float]]
) -> OrderBookSnapshot:
    return OrderBookSnapshot(
        "X/USD",
        tuple(BookLevel(p, s) for p, s in bids),
        tuple(BookLevel(p, s) for p, s in asks),
        1,
        1,
        1,
    )


@given(CHANGES, st.none() | st.integers(min_value=1, max_value=8))
def test_the_book_agrees_with_a_dict_model(
    changes: list[tuple[BookSide, float, float]], max_depth: int | None
) -> None:
    book = OrderBook("X/USD", max_depth=max_depth)
    book.load(_snapshot([], []))
    model: dict[BookSide, dict[float, float]] = {BookSide.BID: {}, BookSide.ASK: {}}
    for side, price, size in changes:
        levels = (BookLevel(price, size),)
        book.apply(_delta(levels, ()) if side is BookSide.BID else _delta((), levels))
        if size == 0.0:
            model[side].pop(price, None)
        else:
            model[side][price] = size
        if max_depth is not None:  # truncation: keep the best max_depth a side
            for s, reverse in ((BookSide.BID, True), (BookSide.ASK, False)):
                keep = sorted(model[s], reverse=reverse)[:max_depth]
                model[s] = {p: model[s][p] for p in keep}
        bids = [
            BookLevel(p, model[BookSide.BID][p]) for p in sorted(model[BookSide.BID], reverse=True)
        ]
        asks = [BookLevel(p, model[BookSide.ASK][p]) for p in sorted(model[BookSide.ASK])]
        assert book.bids() == bids
        assert book.asks() == asks
        assert book.bids(3) == bids[:3]
        assert book.asks(3) == asks[:3]
        assert book.best_bid == (bids[0] if bids else None)
        assert book.best_ask == (asks[0] if asks else None)
        assert len(book) == len(bids) + len(asks)


@given(st.lists(st.tuples(PRICES, SIZES.filter(bool)), max_size=30), st.floats(0.1, 50))
def test_cost_to_take_walks_the_asks_in_price_order(
    levels: list[tuple[float, float]], size: float
) -> None:
    book = OrderBook("X/USD")
    book.load(_snapshot([], levels))
    cost = book.cost_to_take(BookSide.BID, size)
    total = math.fsum(book.size_at(BookSide.ASK, p) for p, _ in book.asks())
    assert cost.filled == pytest.approx(min(size, total))
    assert cost.complete is (total >= size)
    if cost.filled > 0:
        asks = book.asks()
        assert asks[0].price * (1 - 1e-12) <= cost.vwap <= cost.worst_price * (1 + 1e-12)
        assert cost.levels <= len(asks)


def test_analytics_on_a_small_book() -> None:
    book = OrderBook("X/USD")
    book.load(_snapshot([(99.0, 3.0), (98.0, 1.0)], [(101.0, 1.0), (102.0, 4.0)]))
    assert book.mid == 100.0
    assert book.spread == 2.0
    assert book.microprice == (99.0 * 1.0 + 101.0 * 3.0) / 4.0  # leans to the thin ask
    assert book.imbalance(1) == (3.0 - 1.0) / 4.0
    assert book.imbalance(2) == (4.0 - 5.0) / 9.0
    cost = book.cost_to_take(BookSide.BID, 3.0)
    assert (cost.filled, cost.notional, cost.levels, cost.worst_price) == (3.0, 305.0, 2, 102.0)
    assert cost.vwap == 305.0 / 3.0
    thin = book.cost_to_take(BookSide.ASK, 10.0)
    assert (thin.complete, thin.filled, thin.shortfall, thin.notional) == (False, 4.0, 6.0, 395.0)
    assert book.state is BookState.NORMAL
    book.set_level(BookSide.BID, 101.0, 1.0)
    assert book.state is BookState.LOCKED
    book.set_level(BookSide.BID, 101.5, 1.0)
    assert book.state is BookState.CROSSED
    empty = OrderBook("X/USD")
    assert math.isnan(empty.mid)
    assert math.isnan(empty.microprice)
    assert math.isnan(empty.cost_to_take(BookSide.BID, 1.0).vwap)
    assert not empty.valid
    assert empty.invalid_reason == "no snapshot yet"


def test_the_keeper_rejects_negative_sizes_and_flags_a_locked_book() -> None:
    keeper = BookKeeper(OrderBook("X/USD"), BybitSequencer())
    keeper.on_snapshot(_snapshot([(99.0, 3.0)], [(101.0, 1.0)]))
    locked = keeper.on_delta(_delta((BookLevel(101.0, 1.0),), (), u=2))
    assert locked.verdict.level.name == "POOR"
    assert locked.verdict.reasons == ("book_locked",)
    assert keeper.book.valid
    negative = keeper.on_delta(_delta((BookLevel(98.0, -1.0),), (), u=3))
    assert negative.verdict.reasons == ("book_negative_size",)
    assert not negative.verdict.is_valid
    assert not keeper.book.valid
    assert keeper.statistics().rejected == 1


def test_a_full_buffer_drops_the_oldest_and_counts_it() -> None:
    keeper = BookKeeper(OrderBook("X/USD"), Sequencer(), buffer_size=2)
    for u in range(5):
        keeper.on_delta(_delta((BookLevel(1.0, 1.0),), (), u=u))
    assert keeper.buffered == 2
    assert keeper.statistics().buffer_dropped == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bids": ((1.0,),)}, r"bids\[0\]: expected a \(price, size\) pair"),
        ({"bids": ((1, 1.0),)}, r"bids\[0\]: expected float price and size"),
        ({"bids": [BookLevel(1.0, 1.0)]}, r"bids: expected a tuple of \(price, size\)"),
        ({"asks": (BookLevel(math.nan, 1.0),)}, r"asks\[0\]: expected a finite price > 0"),
        ({"asks": (BookLevel(1.0, math.inf),)}, r"asks\[0\]: expected a finite size"),
        ({"first_sequence": 5, "last_sequence": 4}, "first_sequence <= last_sequence"),
        ({"checksum": 2**32}, "unsigned 32-bit"),
        ({"ts_event": 1.5}, "ts_event: expected int nanoseconds"),
        ({"symbol": ""}, "symbol: expected a non-empty string"),
    ],
)
def test_records_refuse_what_a_book_cannot_hold(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "symbol": "X/USD", "bids": (), "asks": (), "first_sequence": 1, "last_sequence": 1,
        "prev_sequence": -1, "checksum": None, "ts_event": 1, "ts_recv": 1,
    }  # fmt: skip
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        OrderBookDelta(**fields)  # type: ignore[arg-type]  # deliberately wrong values


def test_records_stay_checked_frozen_and_picklable() -> None:
    delta = _delta((BookLevel(1.0, 2.0),), (), u=5)
    assert pickle.loads(pickle.dumps(delta)) == delta
    assert delta.with_ts_recv(9).ts_recv == 9
    with pytest.raises(ValueError, match="first_sequence <= last_sequence"):
        dataclasses.replace(delta, first_sequence=6)
    with pytest.raises(ValueError, match="ts_recv: expected int nanoseconds"):
        delta.with_ts_recv(-1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        delta.symbol = "Y/USD"  # type: ignore[misc]  # frozen on purpose
    snapshot = _snapshot([(1.0, 1.0)], [])
    assert pickle.loads(pickle.dumps(snapshot)) == snapshot
    with pytest.raises(ValueError, match="sequence: expected an int >= -1"):
        dataclasses.replace(snapshot, sequence=-2)


def test_a_crossed_snapshot_leaves_the_book_invalid_and_drops_the_buffer() -> None:
    keeper = BookKeeper(OrderBook("X/USD"), BybitSequencer())
    assert keeper.on_delta(_delta((BookLevel(1.0, 1.0),), (), u=2)).reason == "book_unsynced"
    decision = keeper.on_snapshot(_snapshot([(102.0, 1.0)], [(101.0, 1.0)]))
    assert decision.verdict.reasons == ("book_crossed",)
    assert decision.message == "expected best bid < best ask, got bid 102.0 > ask 101.0"
    assert not keeper.book.valid
    assert keeper.buffered == 0
    assert keeper.on_snapshot(_snapshot([(99.0, 1.0)], [(101.0, 1.0)])).reason == ""
    assert keeper.book.valid
