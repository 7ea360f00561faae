"""Nothing silently withheld: one hostile value in real data costs that item only.

Real SPY minute trade bars and quote bars of 2013-10-07 (regular session) and real IBM
trades of 2013-10-11 (LEAN, AlgoSeek; tests/fixtures/PROVENANCE.md). One item is corrupted
(an impossible time, revision, magnitude or string) at any position, with storage on and
off, through a replay, a live feed, and a live feed restarted on the database of a first
run. Every other item must reach every callback exactly once and in order and be stored;
the corrupted one reaches the callbacks as INVALID with the documented reason; nothing is
left parked; the counts of what became of each item add up.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lean_data import Config, DataEngine, DataQualityLevel, QuoteBar, Tick, TradeBar
from lean_data.loaders import load_file
from lean_data.models import MarketData

from .conftest import FIXTURES
from .helpers import ListFeed, received

USA = FIXTURES / "lean/equity/usa"
NOW_PLUS_400_DAYS = time.time_ns() + 400 * 86_400 * 10**9


def _session(items: Sequence[MarketData], n: int) -> list[MarketData]:
    # 09:30 New York on 2013-10-07 is 13:30 UTC
    start = 1381152600 * 10**9
    return [x for x in items if x.ts_event >= start][:n]


TRADE_BARS = _session(load_file(USA / "minute/spy/20131007_trade.zip"), 60)
QUOTE_BARS = _session(load_file(USA / "minute/spy/20131007_quote.zip"), 60)
TICKS = load_file(USA / "tick/ibm/20131011_trade.zip")[:60]
SERIES: dict[str, list[MarketData]] = {"bars": TRADE_BARS, "quotes": QUOTE_BARS, "ticks": TICKS}
TABLES = {"bars": "bars", "quotes": "quote_bars", "ticks": "ticks"}


def _set(field: str, value: Callable[[Any], Any]) -> Callable[[MarketData], MarketData]:
    def corrupt(item: MarketData) -> MarketData:
        copy = dataclasses.replace(item)
        object.__setattr__(copy, field, value(getattr(item, field)))
        return copy

    return corrupt


def _price_field(item: MarketData) -> str:
    return {"TradeBar": "close", "QuoteBar": "ask_close", "Tick": "price"}[type(item).__name__]


def _size_field(item: MarketData) -> str:
    return {"TradeBar": "volume", "QuoteBar": "bid_size", "Tick": "size"}[type(item).__name__]


def _on(field: Callable[[MarketData], str], value: Any) -> Callable[[MarketData], MarketData]:
    return lambda item: _set(field(item), lambda _: value)(item)


# corruption -> (how, the reason the screen gives, which kinds it applies to)
CORRUPTIONS: dict[str, tuple[Callable[[MarketData], MarketData], str, str]] = {
    "far_future": (_set("ts_event", lambda _: NOW_PLUS_400_DAYS), "future_timestamp", "bqt"),
    "year_2100": (_set("ts_event", lambda _: 4_102_444_800 * 10**9), "future_timestamp", "bqt"),
    "milliseconds": (_set("ts_event", lambda ts: ts // 10**6), "timestamp_unit", "bqt"),
    "microseconds": (_set("ts_event", lambda ts: ts // 10**3), "timestamp_unit", "bqt"),
    "seconds": (_set("ts_event", lambda ts: ts // 10**9), "timestamp_unit", "bqt"),
    "negative": (_set("ts_event", lambda ts: -ts), "bad_timestamp", "bqt"),
    "float_time": (_set("ts_event", float), "bad_timestamp", "bqt"),
    "nan_time": (_set("ts_event", lambda _: float("nan")), "bad_timestamp", "bqt"),
    "beyond_int64": (_set("ts_event", lambda _: 2**63 + 5), "bad_timestamp", "bqt"),
    "nan_revision": (_set("revision", lambda _: float("nan")), "bad_revision", "bq"),
    "float_revision": (_set("revision", lambda _: 1.0), "bad_revision", "bq"),
    "text_resolution": (_set("resolution", lambda _: "1m"), "bad_field", "bq"),
    "int_closed": (_set("closed", lambda _: 1), "bad_field", "bq"),
    "text_backfilled": (_set("backfilled", lambda _: "no"), "bad_field", "bq"),
    "text_tick_type": (_set("tick_type", lambda _: "trade"), "bad_field", "t"),
    "huge_int_size": (_on(_size_field, 2**64), "absurd_value", "bqt"),
    "huge_size": (_on(_size_field, 1e308), "absurd_value", "bqt"),
    "huge_price": (_on(_price_field, 1e308), "absurd_value", "bqt"),
    "none_price": (_on(_price_field, None), "absurd_value", "bqt"),
    "text_size": (_on(_size_field, "1"), "absurd_value", "bqt"),
    "nan_price": (_on(_price_field, float("nan")), "non_finite_price", "bt"),
    "inf_price": (_on(_price_field, float("inf")), "non_finite_price", "bt"),
    "surrogate_symbol": (_set("symbol", lambda s: s + "\ud800"), "bad_text", "bqt"),
    "surrogate_condition": (_set("condition", lambda s: "\udcff" + s), "bad_text", "t"),
    "surrogate_exchange": (_set("exchange", lambda _: "\ud83d"), "bad_text", "t"),
}


class LiveListFeed(ListFeed):
    """The same list feed, but live: series resume from storage after a restart."""

    live = True


async def _run(
    feed: ListFeed, symbol: str, db: Path | None
) -> tuple[list[tuple[MarketData, DataQualityLevel]], list[MarketData], dict[str, Any]]:
    sync_seen: list[tuple[MarketData, DataQualityLevel]] = []
    async_seen: list[MarketData] = []

    async def on_async(s: str, item: MarketData, q: DataQualityLevel) -> None:
        async_seen.append(item)

    async with DataEngine(Config(db_path=db, metrics_interval_s=0)) as engine:
        engine.add_feed(feed)
        engine.add_data_callback(lambda s, item, q: sync_seen.append((item, q)))
        engine.add_data_callback(on_async)
        await engine.subscribe_symbol(symbol, feed.name)
        await feed.wait_pumped()
        await engine.wait_idle()
    metrics = engine.get_metrics()
    metrics["quality_report"] = engine.quality.report(feed=feed.name)  # for the test only
    assert engine.state.value == "closed"
    return sync_seen, async_seen, metrics


def _stored(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"select count(*) from {table}").fetchone()[0])


def _errors(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return [(k, m) for k, m in conn.execute("select kind, message from errors")]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    kind=st.sampled_from(sorted(SERIES)),
    corruption=st.sampled_from(sorted(CORRUPTIONS)),
    position=st.integers(0, 59),
    storage=st.booleans(),
    mode=st.sampled_from(["replay", "live", "restarted"]),
)
async def test_one_hostile_item_costs_only_itself(
    tmp_path_factory: pytest.TempPathFactory,
    kind: str,
    corruption: str,
    position: int,
    storage: bool,
    mode: str,
) -> None:
    corrupt, _, applies = CORRUPTIONS[corruption]
    if kind[0] not in applies:  # e.g. a revision on a tick: corrupt its price instead
        corrupt = CORRUPTIONS["huge_price"][0]
    items = SERIES[kind]
    symbol = items[0].symbol
    db = tmp_path_factory.mktemp("db") / "x.db" if storage or mode == "restarted" else None
    feed_type = ListFeed if mode == "replay" else LiveListFeed
    if mode == "restarted":  # a first run stores the day's earlier bars, then a restart
        assert db is not None
        earlier = [x for x in load_file(USA / "minute/spy/20131007_trade.zip")
                   if x.ts_event < items[0].ts_event][-30:] if kind == "bars" else []  # fmt: skip
        await _run(feed_type("f", {symbol: earlier}), symbol, db)
    sent = received([*items[:position], corrupt(items[position]), *items[position + 1 :]])
    bad = sent[position]
    sync_seen, async_seen, metrics = await _run(feed_type("f", {symbol: sent}), symbol, db)

    good = [x for x in sent if x is not bad]
    assert [x for x, _ in sync_seen if x is not bad] == good  # exactly once, in order
    assert [x for x in async_seen if x is not bad] == good
    assert [q for x, q in sync_seen if x is bad] == [DataQualityLevel.INVALID]
    assert async_seen.count(bad) == 1
    assert all(q is not DataQualityLevel.INVALID for x, q in sync_seen if x is not bad)
    engine = metrics["engine"]
    assert engine["outcomes"]["invalid"] == 1
    assert engine["outcomes"]["error"] == 0
    outcomes = sum(engine["outcomes"].values()) - engine["outcomes"]["backfilled"]
    assert outcomes == engine["accepted"] + engine["built"]
    assert metrics["continuity"]["parked"] == 0
    # the quality report counts it as INVALID; its impossible time moves no series clock
    quality = [stats for per_symbol in metrics["quality_report"].values()
               for stats in per_symbol.values()]  # fmt: skip
    assert sum(stats["levels"]["INVALID"] for stats in quality) == 1
    assert sum(stats["messages"] for stats in quality) == len(sent)
    assert sum(stats["out_of_order"] for stats in quality) == 0
    last = max(stats["last_ts"] or 0 for stats in quality)  # None: only the bad one's symbol
    assert last == max(x.ts_event for x in good)
    if db is not None:
        before = 30 if mode == "restarted" and kind == "bars" else 0
        assert _stored(db, TABLES[kind]) == before + len(good)
        invalid = [m for k, m in _errors(db) if k == "invalid_data"]
        assert len(invalid) == 1


def test_the_screen_names_each_corruption() -> None:
    from lean_data import DataValidator

    validator = DataValidator()
    for name, (corrupt, reason, applies) in CORRUPTIONS.items():
        for kind in applies:
            item = SERIES[{"b": "bars", "q": "quotes", "t": "ticks"}[kind]][5]
            verdict = validator.check(corrupt(item))
            assert verdict.level is DataQualityLevel.INVALID, name
            assert verdict.reasons == (reason,), (name, kind, verdict)


def test_the_screen_passes_sane_values_of_any_number_type() -> None:
    """Its fast path takes exact floats only; ints and float subclasses (NumPy's float64 is
    one) take the full walk, which passes them alike, and both walks agree on real data."""
    from lean_data.quality.screen import _screen, screen

    class Price(float):  # a float subclass, as NumPy's float64 is
        pass

    now = time.time_ns
    for kind, items in SERIES.items():
        for item in items:
            assert screen(item, 10**9, now) is None, (kind, item)
            assert _screen(item, 10**9, now) is None, (kind, item)
    bar, tick = SERIES["bars"][5], SERIES["ticks"][5]
    assert isinstance(bar, TradeBar)
    assert isinstance(tick, Tick)
    low = int(bar.low)
    as_ints = dataclasses.replace(
        bar, open=low + 1, high=low + 2, low=low, close=low + 1, volume=int(bar.volume)
    )
    assert screen(as_ints, 10**9, now) is None
    assert screen(dataclasses.replace(bar, close=Price(bar.close)), 10**9, now) is None
    assert screen(dataclasses.replace(tick, size=int(tick.size) + 1), 10**9, now) is None
    assert screen(dataclasses.replace(tick, price=Price(tick.price)), 10**9, now) is None
    # times and revisions from 2**62 to int64's end take the full walk: still judged alike
    late = dataclasses.replace(bar, ts_event=2**62, ts_recv=2**62 + 10, revision=2**63 - 1)
    assert screen(late, 10**9, now) is None
    assert _screen(late, 10**9, now) is None
    beyond = screen(dataclasses.replace(late, revision=2**63), 10**9, now)
    assert beyond is not None
    assert beyond.reasons == ("bad_revision",)
    # and an impossible value of another number type is still caught
    bad = screen(dataclasses.replace(as_ints, low=low + 3), 10**9, now)
    assert bad is not None
    assert bad.reasons == ("ohlc_inconsistent",)


# integral values exactly representable as floats (the rules' bounds among them), and NaN
_EDGES = (0, -1, 1, 10**12, 10**12 + 1, 10**18, 2 * 10**18)
_VALUES = st.one_of(st.sampled_from(_EDGES), st.integers(-(2**53), 2**53), st.just(float("nan")))


def _as_int(value: float | int) -> float | int:
    return value if isinstance(value, float) else int(value)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(_VALUES, min_size=6, max_size=6), at=st.integers(0, 5), quote=st.booleans())
def test_the_screens_typed_and_generic_value_rules_agree(
    values: list[float | int], at: int, quote: bool
) -> None:
    """The fast path holds each value rule twice: compared as C doubles when every value is
    an exact float, as the numbers are otherwise (an int here). An item of floats and the
    same item with one value an equal int must get the same answer (the full walk, where
    either rule sends an item, takes ints and floats alike)."""
    from lean_data.models import TickType
    from lean_data.quality.screen import screen

    now = time.time_ns
    bar, tick = SERIES["bars"][5], SERIES["ticks"][5]
    assert isinstance(bar, TradeBar)
    assert isinstance(tick, Tick)
    floats: list[Any] = [float(v) for v in values]
    mixed: list[Any] = list(floats)
    mixed[at] = _as_int(values[at])
    ohlcv = ("open", "high", "low", "close", "volume")
    typed = dataclasses.replace(bar, **dict(zip(ohlcv, floats[:5], strict=True)))
    generic = dataclasses.replace(bar, **dict(zip(ohlcv, mixed[:5], strict=True)))
    assert (screen(typed, 10**9, now) is None) == (screen(generic, 10**9, now) is None)
    kind = TickType.QUOTE if quote else TickType.TRADE
    names = ("price", "size", "bid_price", "ask_price", "bid_size", "ask_size")
    typed_tick = dataclasses.replace(tick, tick_type=kind, **dict(zip(names, floats, strict=True)))
    generic_tick = dataclasses.replace(tick, tick_type=kind, **dict(zip(names, mixed, strict=True)))
    assert (screen(typed_tick, 10**9, now) is None) == (screen(generic_tick, 10**9, now) is None)


def test_hostile_values_are_judged_in_bounded_time_and_memory() -> None:
    """A bar in 2100 or at int64's end costs no calendar listing and no history request."""
    import tracemalloc

    from lean_data.series.continuity import Continuity

    tracker = Continuity()
    first = TRADE_BARS[0]
    assert isinstance(first, TradeBar)
    tracker.admit("f", first)
    tracemalloc.start()
    far = dataclasses.replace(first, ts_event=first.ts_event + 10**17)  # ~3 years later
    decision = tracker.admit("f", far)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5 * 2**20
    assert decision.request is not None
    step = first.resolution.nanos
    assert decision.request.end - decision.request.start == tracker.max_backfill_bars * step


async def test_subscribe_symbol_refuses_text_that_is_not_a_symbol() -> None:
    from lean_data.errors import SubscriptionError

    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(ListFeed("f"))
        for symbol in ("SPY\ud800", "", 42):
            with pytest.raises(SubscriptionError, match="symbol"):
                await engine.subscribe_symbol(symbol)


def test_series_are_real() -> None:
    assert [type(x) for x in (TRADE_BARS[0], QUOTE_BARS[0], TICKS[0])] == [
        TradeBar,
        QuoteBar,
        Tick,
    ]
    assert len(TRADE_BARS) == len(QUOTE_BARS) == len(TICKS) == 60


async def test_a_stored_future_bar_never_seeds_a_restarted_series(tmp_path: Path) -> None:
    """A bogus bar kept by ``store_invalid`` must not make the next run's bars late."""
    db = tmp_path / "x.db"
    bars = received([x for x in TRADE_BARS if isinstance(x, TradeBar)])
    bogus = dataclasses.replace(bars[29], ts_event=NOW_PLUS_400_DAYS)
    first = LiveListFeed("f", {"SPY": [*bars[:29], bogus]})
    async with DataEngine(Config(db_path=db, store_invalid=True)) as engine:
        engine.add_feed(first)
        await engine.subscribe_symbol("SPY")
        await first.wait_pumped()
        await engine.wait_idle()
    assert _stored(db, "bars") == 30  # the bogus one too, flagged INVALID
    second = LiveListFeed("f", {"SPY": bars[30:]})
    seen: list[tuple[MarketData, DataQualityLevel]] = []
    async with DataEngine(Config(db_path=db)) as engine:
        engine.add_feed(second)
        engine.add_data_callback(lambda s, item, q: seen.append((item, q)))
        await engine.subscribe_symbol("SPY")
        await second.wait_pumped()
        await engine.wait_idle()
        outcomes = engine.get_metrics()["engine"]["outcomes"]
    assert [x for x, _ in seen] == bars[30:]
    assert outcomes["late"] == 0
    assert outcomes["delivered"] == len(bars) - 30
    # seeded from the newest sane stored bar (28): the hole where 29 should be is found
    gaps = [m for k, m in _errors(db) if k == "gap"]
    assert gaps == [f"SPY 1m: [{bars[29].ts_event}, {bars[30].ts_event}) expected 1 bars, "
                    "backfilled 0 (known empty)"]  # fmt: skip


async def seed_run(db: Path, part: list[TradeBar]) -> tuple[list[Any], list[MarketData]]:
    """Run a live feed of ``part`` into an engine storing to ``db``; return the seed lookups
    the store was asked for (``last_bar``'s arguments) and what reached the callback."""
    feed = LiveListFeed("f", {"SPY": part})
    lookups: list[Any] = []
    seen: list[MarketData] = []
    async with DataEngine(Config(db_path=db)) as engine:
        store: Any = engine.persistence
        real = store.last_bar

        async def spy(*args: Any, **kwargs: Any) -> Any:
            lookups.append(args)
            return await real(*args, **kwargs)

        store.last_bar = spy
        engine.add_feed(feed)
        engine.add_data_callback(lambda s, item, q: seen.append(item))
        await engine.subscribe_symbol("SPY")
        await feed.wait_pumped()
        await engine.wait_idle()
    return lookups, seen


async def test_only_a_series_the_store_held_at_start_is_looked_up_to_seed(tmp_path: Path) -> None:
    """A live series new to the store starts from live data at once (no lookup, no bar
    parked behind one); after a restart, the series it stored is looked up as before."""
    db = tmp_path / "x.db"
    bars = received([x for x in TRADE_BARS if isinstance(x, TradeBar)])
    lookups, seen = await seed_run(db, bars[:20])
    assert lookups == []
    assert seen == bars[:20]
    lookups, seen = await seed_run(db, bars[20:])
    assert lookups == [("f", "SPY", bars[0].resolution)]
    assert seen == bars[20:]


async def test_a_failed_read_of_the_stored_series_looks_every_series_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not knowing which series the store holds costs a lookup per series, not a start."""
    from lean_data.storage.queries import Queries

    async def broken(self: Any) -> Any:
        raise OSError("disk I/O error")

    monkeypatch.setattr(Queries, "bar_series_keys", broken)
    db = tmp_path / "x.db"
    bars = received([x for x in TRADE_BARS if isinstance(x, TradeBar)])
    lookups, seen = await seed_run(db, bars[:10])
    assert seen == bars[:10]
    assert lookups == [("f", "SPY", bars[0].resolution)]
    assert [m for k, m in _errors(db) if k == "backfill_failed"] == [
        "reading which bar series storage holds failed (OSError('disk I/O error')): every "
        "live series' first bar waits for a lookup of its newest stored bar"
    ]


# The screen's one-expression checks: C (lean_data._slots, the compiled build) and the pure
# twins (lean_data.quality.screen) must give the same answer wherever C answers (None: a
# value it does not read, the twin answers), and C must answer for plain values.
_INT64 = 2**63
_TIMES = st.one_of(
    st.sampled_from([0, 1, 365 * 86_400 * 10**9 - 1, 365 * 86_400 * 10**9, 2**62 - 1, 2**62,
                     _INT64 - 1, _INT64, -1, 1.7e18, True, None, "1"]),
    st.integers(1_600_000_000 * 10**9, 1_800_000_000 * 10**9),
)  # fmt: skip
_NUMBERS = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e12, 1e12 + 1e-3, 1e18, 2e18, float("nan"),
                     float("inf"), float("-inf"), 5, True, None]),
    st.floats(-1e13, 1e13),
)  # fmt: skip
_TEXTS = st.one_of(st.sampled_from(["BTC/USDT", "", "é", "\ud800", b"x", None, 7]), st.text())


def _plain_checks() -> tuple[Any, Any, Any, Any]:
    from lean_data.quality import screen as module

    if module._PLAIN_TICK is module._plain_tick:
        pytest.skip("the C checks are built with the compiled package")
    return module._PLAIN_TICK, module._plain_tick, module._PLAIN_BAR, module._plain_bar


def _read_in_c(times: Sequence[Any], numbers: Sequence[Any], skew: Any) -> bool:
    """Whether the C checks read every value (numbers that are exact floats, ints of 64
    bits) and so must answer, not leave it to the pure twin."""
    ints = all(type(t) is int and -_INT64 <= t < _INT64 for t in (*times, skew))
    return ints and all(type(n) is float for n in numbers)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    times=st.tuples(_TIMES, _TIMES),
    numbers=st.lists(_NUMBERS, min_size=6, max_size=6),
    texts=st.lists(_TEXTS, min_size=4, max_size=4),
    kind=st.sampled_from(["trade", "quote", "other"]),
    skew=st.sampled_from([10**9, 0, -(10**9), 2**64]),
    clock=st.sampled_from([1_700_000_000 * 10**9, 0, 2**64, "x"]),
)
@example(  # a clock the C check does not read, with values it would judge not plain
    times=(365 * 86_400 * 10**9, 0),
    numbers=[0.0] * 6,
    texts=["BTC/USDT"] * 4,
    kind="trade",
    skew=10**9,
    clock="x",
)
def test_the_c_plain_tick_answers_as_the_pure_twin(
    times: tuple[Any, Any], numbers: list[Any], texts: list[Any], kind: str, skew: int, clock: Any
) -> None:
    from lean_data.models import TickType
    from lean_data.slots import TICK

    c_check, pure_check, _, _ = _plain_checks()
    tick_type = {"trade": TickType.TRADE, "quote": TickType.QUOTE, "other": "trade"}[kind]
    base = Tick("A", 1_700_000_000 * 10**9, 1.0, 1.0, TickType.TRADE, ts_recv=1)
    fields = list(TICK(base))
    from lean_data import slots as s

    for index, value in zip(
        (s.TICK_TS_EVENT, s.TICK_TS_RECV, s.TICK_PRICE, s.TICK_SIZE, s.TICK_BID_PRICE,
         s.TICK_ASK_PRICE, s.TICK_BID_SIZE, s.TICK_ASK_SIZE, s.TICK_SYMBOL, s.TICK_EXCHANGE,
         s.TICK_CONDITION, s.TICK_TRADE_ID, s.TICK_TYPE),
        (*times, *numbers, *texts, tick_type),
        strict=True,
    ):  # fmt: skip
        fields[index] = value
    f = tuple(fields)

    def now() -> Any:
        return clock

    try:
        pure = pure_check(f, skew, now)
    except TypeError:  # the clock's answer is not a number: the pure twin raises there
        assert clock == "x"
        pure = None
    answer = c_check(f, skew, now)
    assert answer in (True, False, None)
    if answer is not None:  # answered in C: what the pure twin answers
        assert answer is pure, (f, skew, clock)
    if pure is not None and _read_in_c((*times, clock), numbers, skew):
        assert answer is not None, (f, skew, clock)  # plain values are read in C


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    times=st.tuples(_TIMES, _TIMES),
    numbers=st.lists(_NUMBERS, min_size=5, max_size=5),
    symbol=_TEXTS,
    revision=st.sampled_from([0, 3, 2**62 - 1, 2**62, -1, 1.0, True, None]),
    flags=st.tuples(*[st.sampled_from([True, False, 0, 1, None])] * 2),
    resolution=st.sampled_from(["MINUTE", "minute", None]),
    skew=st.sampled_from([10**9, 0, 2**64]),
)
def test_the_c_plain_bar_answers_as_the_pure_twin(
    times: tuple[Any, Any],
    numbers: list[Any],
    symbol: Any,
    revision: Any,
    flags: tuple[Any, Any],
    resolution: Any,
    skew: int,
) -> None:
    from lean_data import slots as s
    from lean_data.models import Resolution

    _, _, c_check, pure_check = _plain_checks()
    base = TradeBar("A", 1_700_000_000 * 10**9, 1.0, 2.0, 0.5, 1.5, 10.0, ts_recv=1)
    fields = list(s.BAR(base))
    kept = Resolution.MINUTE if resolution == "MINUTE" else resolution
    for index, value in zip(
        (s.BAR_TS_EVENT, s.BAR_TS_RECV, s.BAR_OPEN, s.BAR_HIGH, s.BAR_LOW, s.BAR_CLOSE,
         s.BAR_VOLUME, s.BAR_SYMBOL, s.BAR_REVISION, s.BAR_CLOSED, s.BAR_BACKFILLED,
         s.BAR_RESOLUTION),
        (*times, *numbers, symbol, revision, *flags, kept),
        strict=True,
    ):  # fmt: skip
        fields[index] = value
    f = tuple(fields)

    def now() -> int:
        return 1_700_000_000 * 10**9

    pure = pure_check(f, skew, now)
    answer = c_check(f, skew, now)
    if answer is not None:  # answered in C: what the pure twin answers
        assert answer is pure, (f, skew)
    if _read_in_c(times, numbers, skew):
        assert answer is not None, (f, skew)  # plain values are read in C


def test_the_c_plain_bar_leaves_a_clock_it_does_not_read_to_the_twin() -> None:
    from lean_data.slots import BAR

    _, _, c_bar, _ = _plain_checks()
    bar = TradeBar("A", 1_700_000_000 * 10**9, 2.0, 1.0, 0.5, 1.5, 10.0, ts_recv=0)  # o > h
    assert c_bar(BAR(bar), 10**9, lambda: "x") is None
    assert c_bar(BAR(bar), 10**9, lambda: 1_700_000_000 * 10**9) is False


def test_the_c_plain_checks_take_the_real_series() -> None:
    """Every real bar and tick of the fixtures is plain to both, so the fast path is taken."""
    from lean_data.slots import BAR, TICK

    c_tick, pure_tick, c_bar, pure_bar = _plain_checks()
    now = time.time_ns
    for bar in SERIES["bars"]:
        assert c_bar(BAR(bar), 10**9, now) is pure_bar(BAR(bar), 10**9, now) is True
    for tick in SERIES["ticks"]:
        assert c_tick(TICK(tick), 10**9, now) is pure_tick(TICK(tick), 10**9, now) is True
