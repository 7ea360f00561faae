"""Seeded faults on the real captures are caught at the exact message, and a fresh snapshot
plus the buffered deltas re-synchronises the book to the unfaulted replay's state.

Each case takes one symbol's real deltas, seeds one fault (a dropped delta, two swapped
deltas, a crossed update, a corrupted checksum) at message ``i`` and replays them. It
asserts the index and reason of the first decision that invalidates the book, that the book
stays invalid (every later delta BUFFERed) until a snapshot comes, then loads a snapshot
taken from the unfaulted replay three messages later (*derived*: the venue's REST answer at
that moment was not recorded) and replays the rest: the final book must equal the
unfaulted replay's final book, level for level.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from lean_data.book import BookLevel, OrderBookDelta, OrderBookSnapshot
from lean_data.depth import (
    Action,
    BinanceFuturesSequencer,
    BinanceSpotSequencer,
    BookKeeper,
    BybitSequencer,
    KrakenChecksumSequencer,
)
from tests.depth_helpers import (
    FIXTURES,
    at_receive_time,
    binance_session,
    bybit_messages,
    derived_snapshot,
    frozen_state,
    keeper_for,
    kraken_messages,
)

AT = 40  # the faulted message (after the sync in every stream below)
FRESH = AT + 3  # the unfaulted message after which the fresh snapshot is taken


@dataclasses.dataclass
class Stream:
    """One symbol's real deltas, how to start its book, and how to make a keeper."""

    name: str
    deltas: list[OrderBookDelta]
    start: OrderBookSnapshot
    make: Callable[[], BookKeeper]
    before: Callable[[OrderBookSnapshot], Callable[[int, OrderBookDelta], OrderBookSnapshot | None]]


def _at_start(
    snapshot: OrderBookSnapshot,
) -> Callable[[int, OrderBookDelta], OrderBookSnapshot | None]:
    return lambda index, delta: snapshot if index == 0 else None


def _streams() -> list[Stream]:
    cryptofeed = FIXTURES / "cryptofeed"
    spot = binance_session(cryptofeed / "BINANCE.ws.1.0", cryptofeed / "BINANCE.http.0.0")
    usdm = binance_session(
        cryptofeed / "BINANCE_FUTURES.ws.1.0", cryptofeed / "BINANCE_FUTURES.http.0.0"
    )
    bybit = bybit_messages()
    _, kraken = kraken_messages()
    xmr = [m for m in kraken if m.pair == "XMR/USD"]
    assert isinstance(bybit[0], OrderBookSnapshot)
    assert isinstance(xmr[0].record, OrderBookSnapshot)
    decimals = (xmr[0].price_decimals, xmr[0].size_decimals)
    return [
        Stream(
            "binance-spot NKN/USDT",
            spot.deltas("NKN/USDT"),
            spot.snapshots["NKN/USDT"],
            lambda: keeper_for(BinanceSpotSequencer(), "NKN/USDT"),
            at_receive_time,
        ),
        Stream(
            "binance-usdm SUSHI/USDT",
            usdm.deltas("SUSHI/USDT"),
            usdm.snapshots["SUSHI/USDT"],
            lambda: keeper_for(BinanceFuturesSequencer(), "SUSHI/USDT"),
            at_receive_time,
        ),
        Stream(
            "bybit XRP/USDT",
            [m for m in bybit[1:] if isinstance(m, OrderBookDelta)],
            bybit[0],
            lambda: keeper_for(BybitSequencer(), "XRP/USDT"),
            _at_start,
        ),
        Stream(
            "kraken XMR/USD",
            [m.record for m in xmr[1:] if isinstance(m.record, OrderBookDelta)],
            xmr[0].record,
            lambda: keeper_for(KrakenChecksumSequencer(*decimals), "XMR/USD", max_depth=1000),
            _at_start,
        ),
    ]


STREAMS = {stream.name: stream for stream in _streams()}


def _run(
    stream: Stream, deltas: list[OrderBookDelta], resync: tuple[int, OrderBookSnapshot] | None
) -> tuple[BookKeeper, list[Action], list[str]]:
    keeper = stream.make()
    before = stream.before(stream.start)
    actions: list[Action] = []
    reasons: list[str] = []
    for index, delta in enumerate(deltas):
        snapshot = before(index, delta)
        if snapshot is not None:
            keeper.on_snapshot(snapshot)
        if resync is not None and index == resync[0]:
            assert keeper.on_snapshot(resync[1]).action is Action.APPLY
        decision = keeper.on_delta(delta)
        actions.append(decision.action)
        reasons.append(decision.message)
    return keeper, actions, reasons


def _unfaulted(stream: Stream) -> tuple[BookKeeper, OrderBookSnapshot]:
    """The clean replay's final keeper and a snapshot of its book after message FRESH."""
    keeper = stream.make()
    before = stream.before(stream.start)
    fresh = None
    for index, delta in enumerate(stream.deltas):
        snapshot = before(index, delta)
        if snapshot is not None:
            keeper.on_snapshot(snapshot)
        assert keeper.on_delta(delta).action in (Action.APPLY, Action.SKIP, Action.BUFFER)
        if index == FRESH:
            fresh = derived_snapshot(keeper.book, delta.ts_recv)
    assert fresh is not None
    assert keeper.book.valid
    return keeper, fresh


def _crossed(stream: Stream) -> OrderBookDelta:
    """Message AT with one extra bid 5% above the best ask the book has before it."""
    keeper = stream.make()
    before = stream.before(stream.start)
    for index, delta in enumerate(stream.deltas[:AT]):
        snapshot = before(index, delta)
        if snapshot is not None:
            keeper.on_snapshot(snapshot)
        keeper.on_delta(delta)
    ask = keeper.book.best_ask
    assert ask is not None
    delta = stream.deltas[AT]
    return dataclasses.replace(delta, bids=(*delta.bids, BookLevel(ask.price * 1.05, 1.0)))


def _seed(stream: Stream, fault: str) -> tuple[list[OrderBookDelta], int]:
    """The faulted deltas and the position where the fresh snapshot is loaded."""
    deltas = list(stream.deltas)
    if fault == "dropped":
        del deltas[AT]
        return deltas, FRESH  # deltas[FRESH] is the original FRESH + 1
    if fault == "swapped":
        deltas[AT], deltas[AT + 1] = deltas[AT + 1], deltas[AT]
    elif fault == "crossed":
        deltas[AT] = _crossed(stream)
    elif fault == "checksum":
        checksum = deltas[AT].checksum
        assert checksum is not None
        deltas[AT] = dataclasses.replace(deltas[AT], checksum=(checksum + 1) % 2**32)
    return deltas, FRESH + 1


EXPECTED = {
    # (stream, fault): (action at message AT, the exact message)
    ("binance-spot NKN/USDT", "dropped"): (Action.GAP, "expected U={U}, got U={nU} (u={nu})"),
    ("binance-spot NKN/USDT", "swapped"): (Action.GAP, "expected U={U}, got U={nU} (u={nu})"),
    ("binance-spot NKN/USDT", "crossed"): (Action.REJECT, "expected best bid < best ask"),
    ("binance-usdm SUSHI/USDT", "dropped"): (Action.GAP, "expected pu={pu}, got pu={npu}"),
    ("binance-usdm SUSHI/USDT", "swapped"): (Action.GAP, "expected pu={pu}, got pu={npu}"),
    ("binance-usdm SUSHI/USDT", "crossed"): (Action.REJECT, "expected best bid < best ask"),
    ("bybit XRP/USDT", "dropped"): (Action.GAP, "expected u={U}, got u={nu}"),
    ("bybit XRP/USDT", "swapped"): (Action.GAP, "expected u={U}, got u={nu}"),
    ("bybit XRP/USDT", "crossed"): (Action.REJECT, "expected best bid < best ask"),
    ("kraken XMR/USD", "dropped"): (Action.CHECKSUM_MISMATCH, "expected checksum"),
    ("kraken XMR/USD", "crossed"): (Action.REJECT, "expected best bid < best ask"),
    ("kraken XMR/USD", "checksum"): (Action.CHECKSUM_MISMATCH, "expected checksum"),
}


@pytest.mark.parametrize(("name", "fault"), sorted(EXPECTED))
def test_a_seeded_fault_is_caught_at_its_message_and_a_snapshot_resyncs(
    name: str, fault: str
) -> None:
    stream = STREAMS[name]
    clean, fresh = _unfaulted(stream)
    deltas, resync_at = _seed(stream, fault)
    action, message = EXPECTED[(name, fault)]
    previous, arrived = stream.deltas[AT - 1], deltas[AT]
    message = message.format(
        U=previous.last_sequence + 1, nU=arrived.first_sequence, nu=arrived.last_sequence,
        pu=previous.last_sequence, npu=arrived.prev_sequence,
    )  # fmt: skip

    # without a re-sync: caught at message AT, then invalid (buffering) to the end
    keeper, actions, reasons = _run(stream, deltas, None)
    ok = (Action.APPLY, Action.SKIP, Action.BUFFER)  # BUFFER: before the first snapshot
    first_bad = next(i for i, a in enumerate(actions) if a not in ok)
    assert (first_bad, actions[first_bad]) == (AT, action), reasons[first_bad]
    assert reasons[AT].startswith(message), reasons[AT]
    assert set(actions[AT + 1 :]) == {Action.BUFFER}
    assert not keeper.book.valid
    assert keeper.book.invalid_reason.endswith(reasons[AT])

    # with a fresh snapshot after message FRESH: back in sync, same book as the clean replay
    keeper, actions, _ = _run(stream, deltas, (resync_at, fresh))
    assert actions[AT] is action
    assert set(actions[AT + 1 : resync_at]) <= {Action.BUFFER}
    assert set(actions[resync_at:]) <= {Action.APPLY, Action.SKIP}
    assert frozen_state(keeper.book) == frozen_state(clean.book)
    assert keeper.book.valid


def test_kraken_drop_is_visible_because_message_i_changed_the_top_10() -> None:
    """The dropped-delta case on Kraken is only detectable when the dropped update moved
    the top 10; message AT of XMR/USD did (its checksum differs from the one before)."""
    deltas = STREAMS["kraken XMR/USD"].deltas
    assert deltas[AT].checksum != deltas[AT - 1].checksum
