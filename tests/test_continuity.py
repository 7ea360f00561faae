"""The continuity tracker (pure) on real FTX BTC-PERP minute bars.

tests/fixtures/nautilus_trader/btc-perp-20211231-20220201_1m.csv (see PROVENANCE.md).
"""

from __future__ import annotations

import math
import tracemalloc
import weakref
from dataclasses import fields, replace

import pytest

from lean_data.loaders import load_file
from lean_data.models import TradeBar
from lean_data.series.calendars import COUNT_HORIZON_NS, calendar_for
from lean_data.series.continuity import Action, Continuity

from .conftest import FIXTURES

FTX = FIXTURES / "nautilus_trader/btc-perp-20211231-20220201_1m.csv"


@pytest.fixture(scope="module")
def bars() -> list[TradeBar]:
    series = [b for b in load_file(FTX, symbol="BTC-PERP") if isinstance(b, TradeBar)]
    return series[:600]


def test_a_contiguous_series_is_delivered_as_it_comes(bars: list[TradeBar]) -> None:
    tracker = Continuity()
    decisions = [tracker.admit("ftx", bar) for bar in bars]
    assert all(
        d.action is Action.DELIVER and d.bar is bar for d, bar in zip(decisions, bars, strict=True)
    )
    assert tracker.statistics()["delivered"] == 600
    assert tracker.next_open("BTC-PERP", bars[0].resolution) == bars[-1].ts_event + 60 * 10**9


def test_duplicates_and_revisions(bars: list[TradeBar]) -> None:
    tracker = Continuity()
    for bar in bars[:10]:
        tracker.admit("ftx", bar)
    again = tracker.admit("ftx", replace(bars[5]))
    assert again.action is Action.DUPLICATE
    other_feed = tracker.admit("backup", replace(bars[6], close=bars[6].close + 1))
    assert other_feed.action is Action.DUPLICATE  # the first feed's bar wins at a seam
    revised = tracker.admit("ftx", replace(bars[7], close=bars[7].close + 1))
    assert revised.action is Action.DELIVER
    assert revised.bar is not None
    assert revised.bar.revision == 1
    assert revised.bar.close == bars[7].close + 1
    again_revised = tracker.admit("ftx", replace(bars[7], close=bars[7].close + 2))
    assert again_revised.bar is not None
    assert again_revised.bar.revision == 2
    stale_revision = tracker.admit("ftx", replace(bars[7], close=bars[7].close + 2, revision=1))
    assert stale_revision.action is Action.DUPLICATE
    stats = tracker.statistics()
    assert (stats["duplicates"], stats["revisions"]) == (3, 2)


def test_a_correction_flag_from_the_source_is_numbered_by_continuity(
    bars: list[TradeBar],
) -> None:
    """Alpaca's ``updatedBars`` arrive flagged ``revision=1`` (the fact "a correction").

    Continuity owns the numbering: the first correction is revision 1, a later one with
    other values revision 2, and one repeating the values already delivered a duplicate.
    """
    tracker = Continuity()
    for bar in bars[:10]:
        tracker.admit("alpaca", bar)
    first = replace(bars[4], close=bars[4].close + 1, revision=1)
    second = replace(bars[4], close=bars[4].close + 2, revision=1)
    assert tracker.admit("alpaca", first).bar == first
    assert tracker.admit("alpaca", second).bar == replace(second, revision=2)
    assert tracker.admit("alpaca", second).action is Action.DUPLICATE
    stats = tracker.statistics()
    assert (stats["delivered"], stats["revisions"], stats["duplicates"]) == (10, 2, 1)


def test_duplicates_parked_behind_a_seed_are_counted_for_the_engine(
    bars: list[TradeBar],
) -> None:
    """A venue re-sending a closed candle while the series waits: decided on resume."""
    tracker = Continuity(seed_from_storage=True)
    parked = [*bars[:5], replace(bars[3]), bars[5], replace(bars[5])]
    assert [tracker.admit("binance", b).action for b in parked] == [
        Action.FETCH,
        *[Action.PARKED] * 7,
    ]
    tracker.seed("BTC-PERP", bars[0].resolution, None)
    out, again = tracker.resume("BTC-PERP", bars[0].resolution, [])
    assert again is None
    assert [bar for _, bar in out] == bars[:6]
    assert tracker.take_resumed_duplicates() == 2
    assert tracker.take_resumed_duplicates() == 0  # taken once
    assert tracker.statistics()["duplicates"] == 2


def test_a_gap_parks_the_series_until_resumed_with_the_missing_bars(
    bars: list[TradeBar],
) -> None:
    tracker = Continuity()
    for bar in bars[:30]:
        tracker.admit("ftx", bar)
    after_gap = tracker.admit("ftx", bars[37])
    assert after_gap.action is Action.FETCH
    request = after_gap.request
    assert request is not None
    assert (request.start, request.end, request.missing, request.reason) == (
        bars[30].ts_event,
        bars[37].ts_event,
        7,
        "gap",
    )
    # bars arriving while the gap is fetched wait behind it
    assert [tracker.admit("ftx", b).action for b in bars[38:40]] == [Action.PARKED] * 2
    assert tracker.parked("BTC-PERP", bars[0].resolution) == 3
    # the history answer overlaps both sides and repeats a bar: only the hole is used
    fill = [bars[29], *bars[30:37], bars[33], bars[37]]
    out, again = tracker.resume("BTC-PERP", bars[0].resolution, fill)
    assert again is None
    assert [b.ts_event for _, b in out] == [b.ts_event for b in bars[30:40]]
    assert [b.backfilled for _, b in out] == [True] * 7 + [False] * 3
    stats = tracker.statistics()
    assert (stats["gaps"], stats["missing_reported"], stats["backfilled"]) == (1, 7, 7)


def test_a_parked_bar_revealing_a_second_gap_asks_again(bars: list[TradeBar]) -> None:
    tracker = Continuity()
    for bar in bars[:10]:
        tracker.admit("ftx", bar)
    first = tracker.admit("ftx", bars[12]).request
    assert first is not None
    tracker.admit("ftx", bars[20])  # parked behind, itself after a hole
    tracker.admit("ftx", bars[21])
    out, again = tracker.resume("BTC-PERP", bars[0].resolution, bars[10:12])
    assert [b.ts_event for _, b in out] == [b.ts_event for b in bars[10:13]]
    assert again is not None
    assert (again.start, again.end, again.missing) == (bars[13].ts_event, bars[20].ts_event, 7)
    out, again = tracker.resume(
        "BTC-PERP", bars[0].resolution, [], empty=True, through=bars[20].ts_event
    )
    assert again is None
    assert [b.ts_event for _, b in out] == [bars[20].ts_event, bars[21].ts_event]
    assert tracker.statistics()["known_empty"] == 1


def test_a_series_storage_did_not_hold_at_start_is_not_looked_up(bars: list[TradeBar]) -> None:
    tracker = Continuity(seed_from_storage=True)
    resolution = bars[0].resolution
    tracker.stored_series = {("ftx", "ETH-PERP", resolution), ("other", "BTC-PERP", resolution)}
    first = tracker.admit("ftx", bars[100])  # ftx's BTC-PERP was not stored: no lookup
    assert first.action is Action.DELIVER
    assert first.request is None
    assert tracker.admit("ftx", bars[101]).action is Action.DELIVER
    assert tracker.admit("ftx", bars[103]).request is not None  # a gap after it still asks

    tracker.stored_series.add(("ftx", "BTC-PERP", resolution))  # held: looked up as before
    again = Continuity(seed_from_storage=True)
    again.stored_series = tracker.stored_series
    looked_up = again.admit("ftx", bars[100])
    assert looked_up.request is not None
    assert looked_up.request.reason == "seed"


def test_seed_from_storage_and_warmup(bars: list[TradeBar]) -> None:
    tracker = Continuity(seed_from_storage=True)
    first = tracker.admit("ftx", bars[100])
    assert first.request is not None
    assert first.request.reason == "seed"
    tracker.seed("BTC-PERP", bars[0].resolution, bars[95].ts_event)  # last stored bar
    out, again = tracker.resume("BTC-PERP", bars[0].resolution, [])
    assert out == []
    assert again is not None
    assert (again.reason, again.start, again.missing) == ("gap", bars[96].ts_event, 4)

    warm = Continuity()
    warm.hold("BTC-PERP", bars[0].resolution, 20)
    live = warm.admit("ftx", bars[200])
    assert live.request is not None
    assert (live.request.reason, live.request.warmup, live.request.end) == (
        "warmup",
        20,
        bars[200].ts_event,
    )
    assert warm.admit("ftx", bars[201]).action is Action.PARKED
    out, again = warm.resume("BTC-PERP", bars[0].resolution, bars[180:201])  # overlaps seam
    assert again is None
    assert [b.ts_event for _, b in out] == [b.ts_event for b in bars[180:202]]
    assert sum(b.backfilled for _, b in out) == 20


class _Bar(TradeBar):
    """A TradeBar that can be weakly referenced, to see whether the tracker keeps it."""

    __slots__ = ("__weakref__",)


def test_duplicates_and_revisions_across_the_remembered_window(bars: list[TradeBar]) -> None:
    tracker = Continuity()
    live = [_Bar(**{f.name: getattr(b, f.name) for f in fields(b)}) for b in bars[:300]]
    refs = [weakref.ref(b) for b in live]
    first = tracker.admit_fast("ftx", live[0])  # a new series: the slow path
    assert first is not None
    assert first.action is Action.DELIVER
    assert all(tracker.admit_fast("ftx", b) is None for b in live[1:])
    del live, first
    assert [ref() for ref in refs] == [None] * 300  # delivered bars are not kept alive
    # the last 128 delivered bars (172..299) are remembered, exactly
    assert tracker.admit("ftx", replace(bars[172])).action is Action.DUPLICATE
    assert tracker.admit("ftx", replace(bars[298])).action is Action.DUPLICATE
    assert tracker.admit("backup", replace(bars[250], close=1.0)).action is Action.DUPLICATE
    nudged = replace(bars[200], high=math.nextafter(bars[200].high, math.inf))
    revised = tracker.admit("ftx", nudged)  # one ulp apart: a revision
    assert (revised.action, revised.bar) == (Action.DELIVER, replace(nudged, revision=1))
    assert tracker.admit("ftx", replace(nudged, revision=1)).action is Action.DUPLICATE
    again = tracker.admit("ftx", replace(bars[200]))  # back to the first values
    assert again.bar is not None
    assert again.bar.revision == 2
    assert tracker.admit("ftx", replace(bars[172], revision=3)).bar == replace(
        bars[172], revision=3
    )  # a higher revision from the source is delivered as it is
    # older than the window: taken for a late bar (stored, not delivered)
    assert tracker.admit("ftx", replace(bars[171])).action is Action.LATE
    stats = tracker.statistics()
    assert (stats["delivered"], stats["duplicates"], stats["revisions"], stats["late"]) == (
        300,
        4,
        3,
        1,
    )


def test_a_repeated_nan_volume_is_a_duplicate(bars: list[TradeBar]) -> None:
    tracker = Continuity()
    unknown = [replace(b, volume=float("nan")) for b in bars[:5]]  # NaN objects of their own
    for bar in unknown:
        tracker.admit("ftx", bar)
    assert tracker.admit("ftx", replace(unknown[2], volume=float("nan"))).action is (
        Action.DUPLICATE
    )
    assert tracker.admit("ftx", replace(unknown[3], volume=math.nan)).action is Action.DUPLICATE
    known = tracker.admit("ftx", replace(unknown[3], volume=5.0))  # the volume became known
    assert (known.action, known.bar) == (Action.DELIVER, replace(bars[3], volume=5.0, revision=1))
    # values compare as floats: a zero volume repeated as -0.0 is the same bar
    tracker.admit("ftx", replace(bars[5], volume=0.0))
    assert tracker.admit("ftx", replace(bars[5], volume=-0.0)).action is Action.DUPLICATE


def test_late_bars_are_remembered_and_found_behind_the_newest(bars: list[TradeBar]) -> None:
    tracker = Continuity()
    for bar in bars[:10]:
        tracker.admit_fast("ftx", bar)
    assert tracker.admit_fast("ftx", bars[12]) is not None  # a gap: fetch
    out, again = tracker.resume(
        "BTC-PERP", bars[0].resolution, [], through=bars[12].ts_event, answered=False
    )
    assert ([b for _, b in out], again) == ([bars[12]], None)
    assert tracker.admit("ftx", bars[10]).action is Action.LATE  # the hole, filled late
    assert tracker.admit("ftx", bars[10]).action is Action.DUPLICATE
    assert tracker.admit("ftx", replace(bars[11])).action is Action.LATE
    assert tracker.admit("ftx", replace(bars[9])).action is Action.DUPLICATE
    assert tracker.admit("ftx", replace(bars[12])).action is Action.DUPLICATE
    assert tracker.admit_fast("ftx", bars[13]) is None


def test_a_jump_to_2100_or_to_microseconds_read_as_ns_costs_one_count(
    bars: list[TradeBar],
) -> None:
    """The gap check counts expected bars arithmetically; it never lists them."""
    minute = bars[0].resolution.nanos
    year_2100 = 4_102_444_800 * 10**9
    for far in (year_2100, bars[30].ts_event * 1000):
        tracker = Continuity()  # 24/7: EveryInterval
        for bar in bars[:30]:
            tracker.admit("ftx", bar)
        tracemalloc.start()
        try:
            decision = tracker.admit("ftx", replace(bars[30], ts_event=far))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert decision.action is Action.FETCH
        assert decision.request is not None
        assert decision.request.missing == (far - bars[29].ts_event - 1) // minute
        assert peak < 50 * 2**20


def test_a_jump_to_2100_on_an_exchange_calendar_is_counted_over_ten_years() -> None:
    spy = [
        b
        for b in load_file(FIXTURES / "lean/equity/usa/minute/spy/20131007_trade.zip")
        if isinstance(b, TradeBar)
    ]
    xnys = calendar_for("SPY")
    regular = [b for b in spy if xnys.is_open(b.ts_event)]
    assert len(regular) == 390
    tracker = Continuity(calendar_of=lambda symbol: xnys)
    assert all(tracker.admit("lean", b).action is Action.DELIVER for b in regular)
    far = replace(regular[-1], ts_event=4_102_444_800 * 10**9)  # 2100-01-01
    tracemalloc.start()
    try:
        decision = tracker.admit("lean", far)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert decision.request is not None
    last = regular[-1].ts_event
    ten_years = xnys.count_expected(
        last + 60 * 10**9, last + COUNT_HORIZON_NS, "1m", anchor_ns=last
    )
    assert decision.request.missing == ten_years
    assert 2450 * 390 < ten_years < 2530 * 390
    assert peak < 50 * 2**20
