"""Series records: one per (feed, symbol, kind, resolution), holding each stage's own state.

The pipeline finds an item's record with one lookup and hands the stages the state the
record holds (``judge_in``, ``record_in``, ``admit_in``). These tests hold that state to be
the very objects the stages keep in their own tables (so the keyed methods and the record
path share the state and the code), the keyed and handle methods to give the same answers,
and a validator reset to drop the records of the symbol it forgets.
"""

from __future__ import annotations

from lean_data import Config, DataEngine, DataValidator, Resolution, TradeBar
from lean_data.engine.series_record import SeriesRecord, SeriesRecords, record_key
from lean_data.models import NS_PER_MINUTE, MarketData, QuoteBar, Tick, TickType
from lean_data.quality.levels import Verdict
from lean_data.quality.tracker import QualityTracker
from lean_data.series.continuity import Continuity
from lean_data.slots import TICK, TICK_TYPE

from .helpers import ListFeed, received

T0 = 1_640_995_200 * 10**9  # 2022-01-01 00:00 UTC


def _bars(symbol: str, n: int, resolution: Resolution = Resolution.MINUTE) -> list[MarketData]:
    out: list[MarketData] = []
    price = 100.0
    step = resolution.nanos
    for i in range(n):
        nxt = price * (1.0005 if i % 2 else 0.9996)
        high, low = max(price, nxt) * 1.0001, min(price, nxt) * 0.9999
        bar = TradeBar(symbol, T0 + i * step, price, high, low, nxt, 10.0 + i % 7, resolution)
        out.append(bar)
        price = nxt
    if n > 5:  # a jump, a repeat and an older bar: the non-trivial branches too
        last = out[-1]
        assert isinstance(last, TradeBar)
        out.append(
            TradeBar(symbol, last.ts_event + step, 150.0, 151.0, 149.0, 150.0, 1.0, resolution)
        )
        out.append(out[-1])
        out.append(out[2])
    return received(out)


def _ticks(symbol: str, n: int) -> list[MarketData]:
    out: list[MarketData] = [
        Tick(symbol, T0 + i * 10**6, 100.0 + (i % 3) * 0.01, 1.0, TickType.TRADE) for i in range(n)
    ]
    out += [
        Tick(symbol, T0 + i * 10**6, 0.0, 0.0, TickType.QUOTE, bid_price=99.9, bid_size=1.0,
             ask_price=100.1, ask_size=2.0)
        for i in range(n)
    ]  # fmt: skip
    return received(out)


def _quotes(symbol: str, n: int) -> list[MarketData]:
    bid, ask = (99.0, 99.5, 98.5, 99.2, 3.0), (99.2, 99.7, 98.7, 99.4, 4.0)
    return received([QuoteBar(symbol, T0 + i * NS_PER_MINUTE, *bid, *ask) for i in range(n)])


def test_keyed_and_handle_methods_answer_alike() -> None:
    items = _bars("A", 30) + _bars("A", 10, Resolution.HOUR) + _ticks("A", 20) + _quotes("B", 10)
    keyed, held = DataValidator(), DataValidator()
    keyed_q, held_q = QualityTracker(), QualityTracker()
    records: dict[tuple[object, ...], SeriesRecord] = {}
    for item in items:
        key = record_key("f", item)
        assert key is not None
        record = records.setdefault(key, SeriesRecord())
        if record.validation is None:
            record.validation = held.series_of(item, "f")  # type: ignore[arg-type]
        if record.counters is None:
            record.counters = held_q.stats_of("f", item.symbol)
            record.clock = held_q.clock_of(record.counters, item)
        verdict: Verdict = keyed.judge(item, feed="f")
        assert held.judge_in(record.validation, item) == verdict
        keyed_q.record("f", item.symbol, item, verdict, 5)
        held_q.record_in(record.counters, record.clock, item, verdict, 5)
    assert held_q.report() == keyed_q.report()
    assert len(records) == 5  # A 1m, A 1h, A trade ticks, A quote ticks, B quote bars


def test_continuity_admit_in_is_admit() -> None:
    keyed, held = Continuity(), Continuity()
    series = held.series_of("A", Resolution.MINUTE)
    for bar in _bars("A", 40):
        assert isinstance(bar, TradeBar)
        assert held.admit_in(series, "f", bar) == keyed.admit_fast("f", bar)
    assert held.statistics() == keyed.statistics()
    assert held.series_of("A", Resolution.MINUTE) is series


async def test_engine_records_hold_the_stages_own_state() -> None:
    feed = ListFeed("f", {"A": _bars("A", 20) + _ticks("A", 5), "B": _quotes("B", 5)})
    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        await engine.subscribe_symbol("A")
        await engine.subscribe_symbol("B")
        await feed.wait_pumped()
        await engine.wait_idle()
        pipeline = engine._pipeline
        records = pipeline.records.table
        assert set(records) == {
            ("f", "A", TradeBar, Resolution.MINUTE),
            ("f", "A", TickType.TRADE.value),  # the value: it hashes in C, the member not
            ("f", "A", TickType.QUOTE.value),
            ("f", "B", QuoteBar, Resolution.MINUTE),
        }
        bars = records[("f", "A", TradeBar, Resolution.MINUTE)]
        validator = engine.validator
        assert bars.validation is validator._bars[("f", "A", NS_PER_MINUTE)]
        assert bars.counters is engine.quality.stats_of("f", "A")
        assert bars.clock is engine.quality.clock_of(bars.counters, _bars("A", 1)[0])
        assert bars.continuity is engine.continuity.series_of("A", Resolution.MINUTE)
        assert bars.buffer is pipeline.buffers["A"]
        trades = records[("f", "A", TickType.TRADE.value)]
        assert trades.buffer is bars.buffer
        assert trades.counters is bars.counters
        assert trades.continuity is None  # ticks have no continuity
        assert trades.validation is validator._ticks[("f", "A", TickType.TRADE)]

        validator.reset("A")  # the validator forgets A: so do the records
        assert set(records) == {("f", "B", QuoteBar, Resolution.MINUTE)}
        validator.reset()
        assert not records


async def test_a_validator_subclass_with_its_own_judge_is_still_asked() -> None:
    asked: list[str] = []

    class Judging(DataValidator):
        def judge(self, item: MarketData, *, feed: str = "") -> Verdict:
            asked.append(item.symbol)
            return super().judge(item, feed=feed)

    feed = ListFeed("f", {"A": _bars("A", 5)})
    async with DataEngine(Config(db_path=None), validator=Judging()) as engine:
        engine.add_feed(feed)
        await engine.subscribe_symbol("A")
        await feed.wait_pumped()
        await engine.wait_idle()
    assert asked == ["A"] * 5


def test_a_tick_finds_the_record_of_its_key_and_forgetting_drops_it_everywhere() -> None:
    validator = DataValidator()
    records = SeriesRecords(validator, QualityTracker())
    trade, quote = _ticks("A", 1)
    other = _ticks("B", 1)[0]
    first = records.of("f", trade)
    assert first is not None
    assert records.of_tick("f", TICK(trade)) is first  # by the index now
    assert records.table[("f", "A", TickType.TRADE.value)] is first
    assert records.of("f", quote) is records.table[("f", "A", TickType.QUOTE.value)]
    assert records.of("f", quote) is not first
    assert records.of("g", trade) is not first  # another feed, another series
    b = records.of("f", other)

    validator.reset("A")  # forgotten in the table and in the index: made anew
    assert set(records.table) == {("f", "B", TickType.TRADE.value)}
    again = records.of("f", trade)
    assert again is not None
    assert again is not first
    assert records.table[("f", "A", TickType.TRADE.value)] is again
    assert records.of("f", other) is b

    validator.reset()
    assert not records.table
    assert records.of("f", other) is not b


def test_a_tick_of_no_tick_type_has_no_record() -> None:
    records = SeriesRecords(DataValidator(), QualityTracker())
    tick = _ticks("A", 1)[0]
    fields = list(TICK(tick))
    fields[TICK_TYPE] = "trade"  # the value, not the TickType
    assert records.of_tick("f", tuple(fields)) is None
    assert not records.table
