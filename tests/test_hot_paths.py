"""Hot paths against their reference paths, by property tests on real data (issue 12, item 6).

- ``DataBuffer``: one ``_put`` serves every item (the packing code exists once: a bar whose
  row is not allocated yet grows the rows and goes through the same code again). The
  property: after any sequence of adds, extends and clears of real bars, mixed with items
  that take the other branches (flags that change the shared key, a field that does not fit
  a row, a NaN price, a TradeBar subclass, a tick), the buffer holds exactly the tail of
  everything added, in order, with the same counters as a plain list. Small capacities make
  rows grow and wrap around many times per example.
- ``TimeBarAggregator.update_many`` (the batch hot path, with ``_Bar.add`` inlined) against
  the same trades fed one by one to ``update`` (the reference path): the same bars emitted,
  chunk by chunk, and the same state (counters, the bar in progress, what the clock and a
  flush close, and the kept bars a late trade revises), on real trades shuffled,
  duplicated, delayed and interleaved with non-trade ticks and other symbols' ticks.
  A tick of another symbol later in a batch makes ``update_many`` raise
  :class:`ForeignTickError` carrying the bars the batch closed before it, the ones
  ``update`` per trade returned.

Real data (``tests/fixtures/PROVENANCE.md``): the FTX BTC-PERP 1-minute bars of
``nautilus_trader/btc-perp-20211231-20220201_1m.csv``; IBM's 19,264 trades of 2013-10-11
(``lean/equity/usa/tick/ibm/20131011_trade.zip``: AlgoSeek sale conditions, volume-only
prints, ignored reports, the opening and closing crosses); Kraken BCH/EUR trades with
fractional sizes (``freqtrade/kraken/trades_csv/BCHEUR.csv``); and the Binance aggTrade
frames of the cryptofeed captures (``cryptofeed/BINANCE_US.ws.1.0``,
``BINANCE_FUTURES.ws.1.0``).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import random
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lean_data.loaders import load_file
from lean_data.loaders.capture import read_capture
from lean_data.models import NS_PER_SECOND, Resolution, Tick, TickType, TradeBar
from lean_data.series.aggregation import ForeignTickError, TimeBarAggregator, TradeRules
from lean_data.series.buffer import DataBuffer
from lean_data.wire.binance import parse_message
from tests.conftest import FIXTURES

FIVE_MINUTES = Resolution.parse("5m")
UNFIT = 2**63  # a ts_recv beyond int64: the bar cannot be packed into a row


# ------------------------------------------------------------------------ DataBuffer


class _SubBar(TradeBar):
    """A TradeBar subclass: held as the object, never packed."""


@pytest.fixture(scope="module")
def btc() -> list[TradeBar]:
    """The first 500 real FTX BTC-PERP 1-minute bars."""
    bars = load_file(FIXTURES / "nautilus_trader/btc-perp-20211231-20220201_1m.csv")[:500]
    assert all(type(b) is TradeBar for b in bars)
    return bars  # type: ignore[return-value]  # checked just above


def _variant(bar: TradeBar, how: int) -> object:
    """``bar`` itself or a hostile variant of it (each takes another branch of ``_put``)."""
    if how == 0:
        return bar
    if how == 1:  # a new shared key: another series or flags
        return dataclasses.replace(bar, closed=False, revision=1)
    if how == 2:
        return dataclasses.replace(bar, symbol="ETH-PERP", resolution=FIVE_MINUTES)
    if how == 3:
        return dataclasses.replace(bar, backfilled=True)
    if how == 4:  # does not fit a row: held as the object
        return dataclasses.replace(bar, ts_recv=UNFIT)
    if how == 5:  # packs; comes back with math.nan
        return dataclasses.replace(bar, high=math.nan)
    if how == 6:
        return _SubBar(*(getattr(bar, f.name) for f in dataclasses.fields(TradeBar)))
    return Tick(bar.symbol, bar.ts_event, bar.close, bar.volume)


def _kept_as_object(item: object) -> bool:
    return not isinstance(item, TradeBar) or type(item) is not TradeBar or item.ts_recv == UNFIT


def _assert_same_items(got: Sequence[object], kept: Sequence[object]) -> None:
    assert [repr(x) for x in got] == [repr(x) for x in kept]  # NaN, -0.0 and int vs float
    for a, b in zip(got, kept, strict=True):
        assert (a is b) is _kept_as_object(b)


_BUFFER_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 499), st.integers(0, 7)),
        st.tuples(st.just("add"), st.integers(0, 499), st.just(0)),  # mostly plain bars
        st.tuples(st.just("extend"), st.integers(0, 499), st.integers(0, 60)),
        st.tuples(st.just("clear"), st.just(0), st.just(0)),
    ),
    max_size=40,
)


@given(capacity=st.integers(1, 40), ops=_BUFFER_OPS, hostile=st.randoms(use_true_random=False))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_buffer_holds_the_tail_of_everything_added_on_real_bars(
    btc: list[TradeBar], capacity: int, ops: list[tuple[str, int, int]], hostile: random.Random
) -> None:
    buffer: DataBuffer[object] = DataBuffer(capacity)
    reference: list[object] = []
    added = 0
    for op, index, arg in ops:
        if op == "add":
            item = _variant(btc[index], arg)
            buffer.add(item)
            reference.append(item)
            added += 1
        elif op == "extend":
            batch = [_variant(b, hostile.choice((0, 0, 0, 1, 4, 5))) for b in btc[index:][:arg]]
            buffer.extend(iter(batch))
            reference.extend(batch)
            added += len(batch)
        else:
            buffer.clear()
            reference.clear()
        kept = reference[-capacity:]
        _assert_same_items(buffer.get_latest(capacity), kept)
        assert len(buffer) == len(kept)
        assert buffer.total_added == added
        assert buffer.utilization == len(kept) * 100.0 / capacity
        assert repr(buffer.latest) == repr(kept[-1] if kept else None)


# ----------------------------------------------------------------- TimeBarAggregator


def _ibm() -> list[Tick]:
    ticks = load_file(FIXTURES / "lean/equity/usa/tick/ibm/20131011_trade.zip")
    assert all(type(t) is Tick for t in ticks)
    return ticks  # type: ignore[return-value]  # checked just above


def _kraken() -> list[Tick]:
    with (FIXTURES / "freqtrade/kraken/trades_csv/BCHEUR.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    return [Tick("BCH/EUR", int(s) * NS_PER_SECOND, float(p), float(v)) for s, p, v in rows]


def _binance(capture: str, symbol: str) -> list[Tick]:
    frames = read_capture(FIXTURES / "cryptofeed" / capture).received
    parsed = (parse_message(raw, ts) for ts, raw in frames)
    items = [m.item for m in parsed if m.kind == "agg_trade"]
    return [t for t in items if isinstance(t, Tick) and t.symbol == symbol]


@pytest.fixture(scope="module")
def trades() -> dict[str, list[Tick]]:
    """Real trades by symbol, each in the order the venue or vendor gave them."""
    found = {
        "IBM": _ibm(),
        "BCH/EUR": _kraken(),
        "SUSHI/USDT": _binance("BINANCE_FUTURES.ws.1.0", "SUSHI/USDT"),
        "CTK/USDT": _binance("BINANCE_FUTURES.ws.1.0", "CTK/USDT"),
        "OMG/BUSD": _binance("BINANCE_US.ws.1.0", "OMG/BUSD"),
    }
    assert {s: len(t) for s, t in found.items()} == {
        "IBM": 19_264, "BCH/EUR": 148, "SUSHI/USDT": 40, "CTK/USDT": 38, "OMG/BUSD": 11,
    }  # fmt: skip
    return found


# IBM windows start near these: the first trade, the opening cross, the closing cross.
IBM_ANCHORS = (0, 158, 19_244)
RESOLUTIONS = {
    "IBM": ("1s", "1m", "5m"),
    "BCH/EUR": ("1m", "1h"),
    "SUSHI/USDT": ("1s", "5s"),
    "CTK/USDT": ("1s", "5s"),
    "OMG/BUSD": ("1s", "1m"),
}


@st.composite
def _scenario(draw: st.DrawFn, trades: dict[str, list[Tick]]) -> dict[str, Any]:
    symbol = draw(st.sampled_from(["IBM", "IBM", "BCH/EUR", "SUSHI/USDT", "CTK/USDT", "OMG/BUSD"]))
    source = trades[symbol]
    size = draw(st.integers(1, 300))
    if symbol == "IBM":
        anchor = draw(st.sampled_from(IBM_ANCHORS) | st.integers(0, len(source) - 1))
        start = max(0, min(anchor - draw(st.integers(0, 150)), len(source) - 1))
    else:
        start = draw(st.integers(0, len(source) - 1))
    stream = list(source[start : start + size])
    rng = draw(st.randoms(use_true_random=False))
    for _ in range(draw(st.integers(0, 6))):  # hostile edits of real trades
        i = rng.randrange(len(stream))
        edit = rng.randrange(6)
        if edit == 0:  # duplicate
            stream.insert(rng.randrange(len(stream) + 1), stream[i])
        elif edit == 1:  # delay: delivered later than trades after it
            stream.insert(rng.randrange(i, len(stream)), stream.pop(i))
        elif edit == 2:  # shuffle a run
            j = min(len(stream), i + rng.randrange(2, 40))
            run = stream[i:j]
            rng.shuffle(run)
            stream[i:j] = run
        elif edit == 3:  # a quote tick of the same symbol
            stream.insert(i, dataclasses.replace(stream[i], tick_type=TickType.QUOTE))
        elif edit == 4:  # flagged suspicious by the vendor
            stream[i] = dataclasses.replace(stream[i], suspicious=True)
        else:  # far out of order: a trade from much earlier in the day
            stream.insert(i, source[rng.randrange(0, start + 1)])
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    return {
        "symbol": symbol,
        "resolution": draw(st.sampled_from(RESOLUTIONS[symbol])),
        "rules": draw(st.sampled_from([TradeRules(), TradeRules.every_trade()])),
        "emit_empty": draw(st.booleans()),
        "late": draw(st.sampled_from(["revise", "drop"])),
        "revision_window": draw(st.sampled_from([1, 2, 8, 64])),
        "chunks": chunks,
        # per chunk: a foreign tick first (both paths raise on it), a clock offset or None
        "foreign": [draw(st.integers(0, 9)) == 0 for _ in chunks],
        "clock": [draw(st.none() | st.integers(-2, 3)) for _ in chunks],
        "probe": stream[: draw(st.integers(0, 30))],
    }


def _same(a: object, b: object) -> None:
    assert repr(a) == repr(b)  # repr: NaN prices of flat bars compare equal


def _state(aggregator: TimeBarAggregator) -> tuple[object, ...]:
    return aggregator.statistics(), repr(aggregator.snapshot(7))


@given(data=st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_update_many_equals_update_per_trade_on_hostile_real_trades(
    trades: dict[str, list[Tick]], data: st.DataObject
) -> None:
    s = data.draw(_scenario(trades))
    options = {k: s[k] for k in ("rules", "emit_empty", "late", "revision_window")}
    fast = TimeBarAggregator(s["symbol"], s["resolution"], **options)
    slow = TimeBarAggregator(s["symbol"], s["resolution"], **options)
    step = fast.resolution.nanos
    foreign = Tick("OTHER", 0, 1.0, 1.0)
    last_ts = 0
    for chunk, with_foreign, clock in zip(s["chunks"], s["foreign"], s["clock"], strict=True):
        if with_foreign:
            chunk = [dataclasses.replace(foreign, ts_event=last_ts), *chunk]
        fast_out: list[TradeBar] = []
        try:
            fast_out = fast.update_many(iter(chunk))
        except ValueError:
            assert with_foreign
        slow_out: list[TradeBar] = []
        try:
            for tick in chunk:
                slow_out += slow.update(tick)
        except ValueError:
            assert with_foreign
        _same(fast_out, slow_out)
        _same(_state(fast), _state(slow))
        if chunk:
            last_ts = max(last_ts, max(t.ts_event for t in chunk))
        if clock is not None:
            now = last_ts + clock * step
            _same(fast.on_clock(now), slow.on_clock(now))
    for tick in s["probe"]:  # late trades: the kept bars they revise are the same
        _same(fast.update(tick), slow.update(tick))
    _same(_state(fast), _state(slow))
    end = last_ts + 3 * step
    _same(fast.on_clock(end), slow.on_clock(end))
    _same(fast.flush(end), slow.flush(end))
    _same(_state(fast), _state(slow))


def _update_each(aggregator: TimeBarAggregator, ticks: list[Tick], out: list[TradeBar]) -> None:
    for tick in ticks:
        out += aggregator.update(tick)


@given(
    start=st.integers(0, 19_263),
    size=st.integers(1, 400),
    position=st.integers(0, 400),
    resolution=st.sampled_from(["1s", "1m"]),
)
@example(start=0, size=400, position=400, resolution="1m")  # 20 closed bars lost
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_update_many_returns_the_bars_closed_before_a_foreign_tick(
    trades: dict[str, list[Tick]], start: int, size: int, position: int, resolution: str
) -> None:
    stream = list(trades["IBM"][start : start + size])
    stream.insert(min(position, len(stream)), Tick("OTHER", stream[-1].ts_event, 1.0, 1.0))
    fast = TimeBarAggregator("IBM", resolution)
    slow = TimeBarAggregator("IBM", resolution)
    with pytest.raises(ForeignTickError, match="got a tick for 'OTHER'") as caught:
        fast.update_many(stream)
    slow_out: list[TradeBar] = []
    with pytest.raises(ValueError, match="got a tick for 'OTHER'"):
        _update_each(slow, stream, slow_out)
    _same(_state(fast), _state(slow))  # the same trades were applied
    _same(caught.value.bars, slow_out)  # and the bars they closed are not lost
