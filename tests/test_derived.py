"""BarResampler: coarser bars derived live equal DataTransformer.resample_bars afterwards.

Real data only (tests/fixtures, see PROVENANCE.md): FTX BTC-PERP 1m bars (45 031, complete),
SPY 1m bars 2013-10-07/08/09 (04:00-20:00 New York), an alt/BTC 1m series across the US DST
change of 2017-11-05 (freqtrade ``UNITTEST_BTC-8m.json.gz``, 1m data despite its name, with
gaps), Binance XRP mark-price 1h bars (NaN volume), and the Alpaca minute bars derived
from SPY's 2013-10-10 prints and vendor bars as ``lean_data.testing.lean_timeline`` derives
them (``b`` live bars from every print, ``u`` revisions with the vendor's bar 30 s later).
Revised or duplicated bars are real bars re-delivered; the only values made up are the
in-progress source bars of one test (Binance-style: O=H=L=C = the bar's open, volume 0),
as the kline tests of the feeds do.

"Live" means: bars fed one at a time, with the clock (``on_clock``) ticking at each bar's
arrival (its close) minus a grace of 2 s, as the engine's timer would.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import random
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import cache
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lean_data.analytics.transform import DataTransformer
from lean_data.errors import ConfigError
from lean_data.loaders import load_file
from lean_data.models import (
    NS_PER_HOUR,
    NS_PER_SECOND,
    Resolution,
    TradeBar,
    datetime_to_ns,
)
from lean_data.series.buckets import ExactSum
from lean_data.series.resample import BarResampler, ResamplerStatistics

FIXTURES = Path(__file__).parent / "fixtures"
SPY_MINUTES = FIXTURES / "lean/equity/usa/minute/spy"
NY = "America/New_York"
NEW_YORK = ZoneInfo(NY)
TARGETS = ("5m", "15m", "1h", "1d")
GRACE = 2 * NS_PER_SECOND
MINUTE = Resolution.MINUTE
FIVE, FIFTEEN, HOUR, DAY = (Resolution.parse(t) for t in TARGETS)


def bars_of(path: Path, **kwargs: str) -> list[TradeBar]:
    bars = [bar for bar in load_file(path, **kwargs) if isinstance(bar, TradeBar)]
    assert bars
    return bars


@cache
def btc() -> tuple[TradeBar, ...]:
    path = FIXTURES / "nautilus_trader/btc-perp-20211231-20220201_1m.csv"
    return tuple(bars_of(path, symbol="BTC-PERP"))


@cache
def spy(day: str) -> tuple[TradeBar, ...]:
    return tuple(bars_of(SPY_MINUTES / f"{day}_trade.zip"))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return datetime_to_ns(datetime(year, month, day, hour, minute, tzinfo=UTC))


def ny(day: date, hour: int = 0, minute: int = 0) -> int:
    return datetime_to_ns(datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK))


def feed(
    resampler: BarResampler, bars: Iterable[TradeBar], *, clock: bool = True
) -> list[TradeBar]:
    """Feed ``bars``; with ``clock``, tick the clock at each arrival minus the grace first."""
    out: list[TradeBar] = []
    for bar in bars:
        if clock:
            out += resampler.on_clock(bar.ts_event + bar.resolution.nanos - GRACE)
        out += resampler.update(bar)
    return out


def of(bars: Iterable[TradeBar], target: Resolution) -> list[TradeBar]:
    return [bar for bar in bars if bar.resolution is target]


def latest(bars: Iterable[TradeBar], target: Resolution) -> list[TradeBar]:
    """The last version of each derived bar, by open time."""
    versions = {bar.ts_event: bar for bar in of(bars, target)}
    return [versions[ts] for ts in sorted(versions)]


def final_clock(expected: list[TradeBar]) -> list[TradeBar]:
    """``expected`` with its last bar closed, as the clock completes it."""
    return [*expected[:-1], dataclasses.replace(expected[-1], closed=True)]


def unrevised(bars: Iterable[TradeBar]) -> list[TradeBar]:
    return [dataclasses.replace(bar, revision=0) for bar in bars]


def upsert(bars: Iterable[TradeBar]) -> list[TradeBar]:
    """The stored series: one row per open time, the last version received."""
    rows = {bar.ts_event: bar for bar in bars}
    return [rows[ts] for ts in sorted(rows)]


# --------------------------------------------------------------------- equality, real data


def test_btc_perp_live_bars_equal_resample_bars_for_every_target() -> None:
    bars = btc()
    resampler = BarResampler(TARGETS)
    out = feed(resampler, bars)
    expected = {t: resampler.resample(bars, t) for t in (FIVE, FIFTEEN, HOUR, DAY)}
    # the file ends at 2022-02-01 05:31: every target's last bucket is still open
    for target, want in expected.items():
        assert [*of(out, target), resampler.snapshot(target)] == want
        assert want[-1].closed is False
    assert resampler.next_close_ns() == utc(2022, 2, 1, 5, 35)
    assert resampler.on_clock(utc(2022, 2, 1, 5, 35) - 1) == []
    out += resampler.on_clock(utc(2022, 2, 1, 5, 35))
    assert resampler.next_close_ns() == utc(2022, 2, 1, 5, 45)
    out += resampler.on_clock(utc(2022, 2, 2))
    assert resampler.next_close_ns() is None
    for target, want in expected.items():
        assert of(out, target) == final_clock(want)
    sizes = {t: len(of(out, t)) for t in expected}
    assert sizes == {FIVE: 9_007, FIFTEEN: 3_003, HOUR: 751, DAY: 33}
    # the series starts at 2021-12-31 23:01 UTC: the first day holds 59 minutes
    first_day = of(out, DAY)[0]
    assert (first_day.ts_event, first_day.open) == (utc(2021, 12, 31), bars[0].open)
    assert first_day.volume == math.fsum(b.volume for b in bars[:59])
    assert resampler.statistics() == ResamplerStatistics(
        bars=45_031, duplicates=0, stale=0, corrections=0, late=0, dropped=0,
        completed=12_794, revised=0,
    )  # fmt: skip


def test_spy_days_in_new_york_and_the_clock_completing_the_day() -> None:
    oct7, oct8, oct9 = spy("20131007"), spy("20131008"), spy("20131009")
    stored = [*oct7, *oct8]
    resampler = BarResampler(TARGETS, tz=NY)
    out: list[TradeBar] = []
    by_clock: list[TradeBar] = []
    for bar in stored:
        ticked = resampler.on_clock(bar.ts_event + MINUTE.nanos - GRACE)
        by_clock += ticked
        out += ticked + resampler.update(bar)
    # each session ends with its 19:59 bar, which completes the 19:55, 19:45 and 19:00 bars
    for target in (FIVE, FIFTEEN, HOUR):
        assert of(out, target) == resampler.resample(stored, target)
        assert resampler.snapshot(target) is None
    # Pre- and post-market minutes are sparse: the clock completed each bucket whose last
    # minute has no bar (before the next bar arrived), the bars completed the others.
    minutes = {bar.ts_event for bar in stored}
    for target in (FIVE, FIFTEEN, HOUR):
        no_last_minute = [
            bar.ts_event for bar in resampler.resample(stored, target)
            if bar.ts_event + target.nanos - MINUTE.nanos not in minutes
        ]  # fmt: skip
        assert [bar.ts_event for bar in of(by_clock, target)] == no_last_minute
    assert (len(of(by_clock, FIVE)), len(of(by_clock, HOUR))) == (49, 3)
    # 04:00-20:00 New York: 16 hour bars a day, every hour traded
    assert [bar.ts_event for bar in of(out, HOUR)] == [
        ny(day, hour) for day in (date(2013, 10, 7), date(2013, 10, 8)) for hour in range(4, 20)
    ]
    # The clock completed the 7th (its New York midnight is 04:00 UTC) before the first bar
    # of the 8th (08:00 UTC) arrived; the 8th is held until the clock passes its midnight.
    (day7,) = of(by_clock, DAY)
    assert (day7.ts_event, day7.closed) == (ny(date(2013, 10, 7)), True)
    assert resampler.next_close_ns() == ny(date(2013, 10, 9))
    assert resampler.on_clock(ny(date(2013, 10, 9)) - 1) == []
    (day8,) = resampler.on_clock(ny(date(2013, 10, 9)))
    resampled = resampler.resample(stored, DAY)
    assert [day7, day8] == final_clock(resampled)
    assert resampled[-1].closed is False  # resample_bars cannot know the data stopped
    # once the stored data goes past the 8th, resample_bars builds the clock's bar
    assert resampler.resample([*stored, *oct9], DAY)[:2] == [day7, day8]
    assert day8 == TradeBar(
        "SPY", ny(date(2013, 10, 8)), oct8[0].open, max(b.high for b in oct8),
        min(b.low for b in oct8), oct8[-1].close, math.fsum(b.volume for b in oct8), DAY,
    )  # fmt: skip


def test_hour_bars_from_a_half_hour_origin() -> None:
    stored = [*spy("20131007"), *spy("20131008")]
    origin = ny(date(2013, 10, 7), 9, 30)
    resampler = BarResampler(["30m", "1h", "1d"], origin_ns=origin, tz=NY)
    out = feed(resampler, stored)
    out += resampler.on_clock(ny(date(2013, 10, 9)))
    hours = of(out, HOUR)
    assert hours == final_clock(resampler.resample(stored, HOUR))
    assert resampler.resample(stored, HOUR) == DataTransformer.resample_bars(
        stored, "1h", origin_ns=origin
    )
    # 03:30-04:30 holds the session's first half hour, 19:30-20:30 its last
    assert hours[0].ts_event == ny(date(2013, 10, 7), 3, 30)
    assert hours[16].ts_event == ny(date(2013, 10, 7), 19, 30)
    assert len(hours) == 34
    assert of(out, Resolution.parse("30m")) == resampler.resample(stored, "30m")
    assert len(of(out, DAY)) == 2


def test_new_york_days_across_the_end_of_daylight_saving_time() -> None:
    path = FIXTURES / "freqtrade/UNITTEST_BTC-8m.json.gz"  # 1-minute bars, see PROVENANCE
    bars = bars_of(path, resolution="1m")
    assert len(bars) == 13_681
    resampler = BarResampler(["1h", "4h", "1d"], tz=NY)
    out = feed(resampler, bars)
    out += resampler.on_clock(bars[-1].ts_event + DAY.nanos)
    days = of(out, DAY)
    assert days == final_clock(resampler.resample(bars, DAY))
    first = date(2017, 11, 4)  # the data starts 2017-11-04 23:02 UTC = 19:02 New York
    assert [bar.ts_event for bar in days] == [ny(first + timedelta(d)) for d in range(11)]
    lengths = Counter(b.ts_event - a.ts_event for a, b in pairwise(days))
    assert lengths == {24 * NS_PER_HOUR: 9, 25 * NS_PER_HOUR: 1}  # 2017-11-05 has 25 hours
    assert (days[1].ts_event, days[2].ts_event) == (utc(2017, 11, 5, 4), utc(2017, 11, 6, 5))
    for target in ("1h", "4h"):
        assert of(out, Resolution.parse(target)) == final_clock(resampler.resample(bars, target))
    assert resampler.resample(bars, "1h")[-1].closed  # the last bar (22:59 UTC) ends the hour
    # 538 gaps (717 missing minutes), so some hours are missing too: count them naively
    hours = {bar.ts_event - bar.ts_event % NS_PER_HOUR for bar in bars}
    assert len(of(out, HOUR)) == len(hours)
    utc_days = BarResampler(["1d"])  # UTC days: other buckets
    starts = [bar.ts_event for bar in feed(utc_days, bars)]
    assert starts == [utc(2017, 11, 4 + d) for d in range(10)]


def test_nan_volumes_stay_nan() -> None:
    path = FIXTURES / "freqtrade/futures/XRP_USDT_USDT-1h-mark.feather"
    marks = bars_of(path)
    assert all(math.isnan(bar.volume) for bar in marks)
    resampler = BarResampler(["4h", "1d"])
    out = feed(resampler, marks)
    out += resampler.on_clock(marks[-1].ts_event + DAY.nanos)

    def rows(bars: Sequence[TradeBar]) -> list[tuple[object, ...]]:
        # NaN != NaN: compare every field, NaN as a string
        return [
            tuple("nan" if isinstance(v, float) and v != v else v for v in dataclasses.astuple(b))
            for b in bars
        ]

    for target in ("4h", "1d"):
        want = final_clock(resampler.resample(marks, target))
        got = of(out, Resolution.parse(target))
        assert rows(got) == rows(want)
        assert all(math.isnan(bar.volume) for bar in got)
    assert len(of(out, DAY)) == 5


# ----------------------------------------------------------- revisions, duplicates, late


@cache
def alpaca_spy_20131010() -> tuple[TradeBar, ...]:
    """The minute bars an Alpaca stream sends for SPY on 2013-10-10, in arrival order.

    Derived as ``lean_data.testing.lean_timeline`` derives them (read here directly from
    the zip, which is several times faster than building every print's message): at each
    minute's close the ``b`` bar a live aggregator builds from *every* print of the
    minute; 30 s later a ``u`` (revision 1) with the vendor's final minute bar wherever
    its OHLCV differs. ``ts_recv`` is the arrival time.
    """
    midnight = ny(date(2013, 10, 10))
    prints: dict[int, list[tuple[float, float]]] = {}
    with zipfile.ZipFile(FIXTURES / "lean/equity/usa/tick/spy/20131010_trade.zip") as archive:
        (name,) = archive.namelist()
        with archive.open(name) as raw:
            for row in csv.reader(io.TextIOWrapper(raw, "ascii")):
                ts = midnight + int(row[0]) * 1_000_000
                minute = ts - ts % MINUTE.nanos
                prints.setdefault(minute, []).append((float(row[1]) / 10_000, float(row[2])))
    vendor = {bar.ts_event: bar for bar in spy("20131010")}
    assert sorted(prints) == sorted(vendor)
    out = []
    for minute, trades in sorted(prints.items()):
        prices = [price for price, _ in trades]
        close = minute + MINUTE.nanos
        live = TradeBar(
            "SPY", minute, prices[0], max(prices), min(prices), prices[-1],
            math.fsum(size for _, size in trades), ts_recv=close,
        )  # fmt: skip
        out.append(live)
        final = vendor[minute]
        if ohlcv(final) != ohlcv(live):
            out.append(dataclasses.replace(final, ts_recv=close + 30 * NS_PER_SECOND, revision=1))
    return tuple(out)


def ohlcv(bar: TradeBar) -> tuple[float, ...]:
    return (bar.open, bar.high, bar.low, bar.close, bar.volume)


def test_alpaca_updated_bars_revise_the_derived_bars() -> None:
    arrivals = alpaca_spy_20131010()
    updates = [bar for bar in arrivals if bar.revision]
    assert (len(arrivals), len(updates)) == (883 + 146, 146)  # as lean_timeline sends
    resampler = BarResampler(TARGETS, tz=NY)
    out: list[TradeBar] = []
    for bar in arrivals:
        out += resampler.on_clock(bar.ts_recv - GRACE)
        out += resampler.update(bar)
    out += resampler.on_clock(ny(date(2013, 10, 11)))
    stored = upsert(arrivals)
    vendor = spy("20131010")
    assert [(b.ts_event, *ohlcv(b)) for b in stored] == [(b.ts_event, *ohlcv(b)) for b in vendor]
    completed: dict[Resolution, int] = {}
    revisions: dict[Resolution, int] = {}
    for target in (FIVE, FIFTEEN, HOUR, DAY):
        want = resampler.resample(stored, target)
        if target is DAY:
            want = final_clock(want)
        assert unrevised(latest(out, target)) == want
        # A `u` arrives 30 s after its minute's `b`: it revises a derived bar already
        # returned exactly when that minute completed it (the bucket's last minute);
        # otherwise the bucket is still open and the `u` just updates it.
        ends = [u.ts_event + MINUTE.nanos for u in updates]
        opens = [end - target.nanos for end in ends if end % target.nanos == 0]
        revised = [(b.ts_event, b.revision) for b in of(out, target) if b.revision]
        assert revised == ([(ts, 1) for ts in opens] if target is not DAY else [])
        completed[target], revisions[target] = len(want), len(revised)
    assert (completed, revisions) == (
        {FIVE: 190, FIFTEEN: 64, HOUR: 16, DAY: 1},
        {FIVE: 29, FIFTEEN: 10, HOUR: 3, DAY: 0},
    )
    assert resampler.statistics() == ResamplerStatistics(
        bars=1_029, duplicates=0, stale=0, corrections=146, late=0, dropped=0,
        completed=sum(completed.values()), revised=sum(revisions.values()),
    )  # fmt: skip


def test_a_revision_of_a_completed_and_of_an_open_bucket_and_a_stale_one() -> None:
    bars = list(alpaca_spy_20131010())
    # 2013-10-10 09:34 New York, the last minute of a 5m bucket: the live `b`, its `u`
    at = ny(date(2013, 10, 10), 9, 34)
    i = next(i for i, bar in enumerate(bars) if bar.ts_event == at and not bar.revision)
    live, update = bars[i], bars[i + 1]
    assert (update.ts_event, update.revision) == (at, 1)
    assert dataclasses.replace(update, revision=0, ts_recv=live.ts_recv) != live
    resampler = BarResampler(["5m", "15m"], tz=NY)
    feed(resampler, bars[:i], clock=False)
    before = resampler.statistics()
    # the four stored minutes 09:30-09:33 (last versions), as the resampler holds them
    stored = [bar for bar in upsert(bars[:i]) if bar.ts_event >= at - 4 * MINUTE.nanos]
    assert [bar.ts_event for bar in stored] == [at - k * MINUTE.nanos for k in (4, 3, 2, 1)]
    # the live 09:34 bar completes the 09:30 five-minute bar; the quarter stays open
    (five,) = resampler.update(live)
    assert five == DataTransformer.resample_bars([*stored, live], "5m")[0]
    assert (five.ts_event, five.closed, five.revision) == (at - 4 * MINUTE.nanos, True, 0)
    # the `u` revises the returned five-minute bar and updates the open quarter
    (revised,) = resampler.update(update)
    assert revised == dataclasses.replace(
        DataTransformer.resample_bars([*stored, update], "5m")[0], revision=1
    )
    assert revised.ts_recv == update.ts_recv
    quarter = resampler.snapshot("15m")
    assert quarter == DataTransformer.resample_bars([*stored, update], "15m")[0]
    # the live bar again (revision 0 < 1) is stale; the `u` again is a duplicate
    assert resampler.update(live) == []
    assert resampler.update(dataclasses.replace(update, ts_recv=1, backfilled=True)) == []
    assert resampler.snapshot("15m") == quarter
    after = resampler.statistics()
    assert (
        after.stale - before.stale,
        after.duplicates - before.duplicates,
        after.corrections - before.corrections,
        after.revised - before.revised,
        after.completed - before.completed,
    ) == (1, 1, 1, 1, 1)


def test_duplicates_are_ignored() -> None:
    bars = btc()[:3_000]
    once = BarResampler(TARGETS)
    expected = feed(once, bars, clock=False)
    twice = BarResampler(TARGETS)
    out: list[TradeBar] = []
    for i, bar in enumerate(bars):
        out += twice.update(bar)
        out += twice.update(dataclasses.replace(bar, ts_recv=i + 1, backfilled=True))
        if i >= 10:  # and an older one, whose 5m bucket may be complete already
            out += twice.update(bars[i - 10])
    assert out == expected
    assert all(not bar.backfilled and bar.ts_recv == 0 for bar in out)
    assert twice.statistics().duplicates == 3_000 + 2_990
    assert [twice.snapshot(t) for t in TARGETS] == [once.snapshot(t) for t in TARGETS]


def test_a_seven_minute_outage_backfilled_after_the_clock() -> None:
    start = next(i for i, bar in enumerate(btc()) if bar.ts_event == utc(2022, 1, 10, 10, 1))
    bars = list(btc()[: start + 67])  # up to 2022-01-10 11:07
    missing = bars[start : start + 7]  # 10:01-10:07, delivered late as backfill
    backfill = [dataclasses.replace(bar, backfilled=True) for bar in missing]
    late = next(i for i, bar in enumerate(bars) if bar.ts_event == utc(2022, 1, 10, 8, 3))
    resampler = BarResampler(TARGETS)
    out = feed(resampler, [bar for bar in bars[:start] if bar is not bars[late]])
    # the outage: the clock keeps ticking each minute; the feed reconnects at 10:09
    for minute in range(2, 10):
        out += resampler.on_clock(utc(2022, 1, 10, 10, minute) - GRACE)
    five_00 = of(out, FIVE)[-1]
    assert (five_00.ts_event, five_00.volume) == (utc(2022, 1, 10, 10), bars[start - 1].volume)
    out += feed(resampler, backfill, clock=False)
    out += feed(resampler, bars[start + 7 :])
    # the 08:03 bar, two hours late: only the open day bucket still takes it
    assert resampler.update(bars[late]) == []
    stats = resampler.statistics()
    assert (stats.late, stats.dropped, stats.revised) == (4 + 1, 3, 4)
    stored = [*bars[:start], *backfill, *bars[start + 7 :]]
    without_0803 = [bar for bar in stored if bar is not bars[late]]
    for target in (FIVE, FIFTEEN, HOUR):
        current = resampler.snapshot(target)
        assert current is not None
        got = [*unrevised(latest(out, target)), current]
        assert got == resampler.resample(without_0803, target)
    assert resampler.snapshot(DAY) == resampler.resample(stored, DAY)[-1]
    # the 10:00 five-minute bar: returned by the clock with one minute, then once per
    # backfilled minute 10:01-10:04 (revisions 1-4, backfilled)
    versions = [b for b in of(out, FIVE) if b.ts_event == utc(2022, 1, 10, 10)]
    assert [(b.revision, b.backfilled) for b in versions] == [
        (0, False), (1, True), (2, True), (3, True), (4, True)
    ]  # fmt: skip
    backfilled = [b.ts_event for b in of(out, FIVE) if b.backfilled]
    assert backfilled == [utc(2022, 1, 10, 10)] * 4 + [utc(2022, 1, 10, 10, 5)]


def test_in_progress_source_bars_complete_only_when_final() -> None:
    bars = btc()[:603]  # 2021-12-31 23:01 - 2022-01-01 09:03
    resampler = BarResampler(TARGETS)
    out: list[TradeBar] = []
    for bar in bars:  # Binance-style: an in-progress kline, then the final one
        out += resampler.update(forming(bar))
        out += resampler.update(bar)
    assert out == feed(BarResampler(TARGETS), bars, clock=False)
    assert (resampler.statistics().corrections, resampler.statistics().revised) == (603, 0)
    # stopped after an in-progress 09:04 bar: the 09:00 five-minute bucket stays open and
    # not closed, as resample_bars says of such a series
    last = forming(btc()[603])
    assert resampler.update(last) == []
    for target in TARGETS:
        want = resampler.resample([*bars, last], target)
        assert [*of(out, Resolution.parse(target)), resampler.snapshot(target)] == want
    # a bar of the next bucket completes it anyway, not closed; the final 09:04 closes it
    (five,) = resampler.update(btc()[605])
    assert (five.ts_event, five.closed, five.revision) == (utc(2022, 1, 1, 9), False, 0)
    (final,) = resampler.update(btc()[603])
    assert final == resampler.resample([*bars, btc()[603], btc()[605]], FIVE)[-2]
    assert (final.closed, final.revision) == (True, 0)


def forming(bar: TradeBar) -> TradeBar:
    price = bar.open
    return dataclasses.replace(bar, high=price, low=price, close=price, volume=0.0, closed=False)


def test_partial_mode_returns_the_open_bucket_on_every_bar() -> None:
    bars = spy("20131007")  # sparse before and after the session: buckets end without bar
    resampler = BarResampler(["5m", "1h"], partial=True)
    buckets: dict[Resolution, list[TradeBar]] = {FIVE: [], HOUR: []}
    for bar in bars:
        want = []
        for target, bucket in buckets.items():
            if bucket and bucket[0].ts_event // target.nanos != bar.ts_event // target.nanos:
                if (bucket[-1].ts_event + MINUTE.nanos) % target.nanos:  # not completed yet
                    want.append(dataclasses.replace(resample(bucket, target), closed=True))
                bucket.clear()
            bucket.append(bar)
            want.append(resample(bucket, target))  # closed when the bar ends the bucket
        assert resampler.update(bar) == want
    completed = len(resample_all(bars, FIVE)) + len(resample_all(bars, HOUR))
    assert resampler.statistics().completed == completed


def resample(bucket: list[TradeBar], target: Resolution) -> TradeBar:
    (bar,) = DataTransformer.resample_bars(bucket, target)
    return bar


def resample_all(bars: Sequence[TradeBar], target: Resolution) -> list[TradeBar]:
    return DataTransformer.resample_bars(bars, target)


# ----------------------------------------------------------------------------- properties


@given(
    seed=st.integers(0, 2**32),
    keep=st.floats(0.05, 1.0),
    holes=st.lists(st.tuples(st.integers(0, 2_999), st.integers(1, 240)), max_size=4),
    offset=st.integers(0, 40_000),
)
@settings(max_examples=40, deadline=None)
def test_random_subsets_of_a_real_series_still_equal_resample(
    seed: int, keep: float, holes: list[tuple[int, int]], offset: int
) -> None:
    draw = random.Random(seed).random
    window = btc()[offset : offset + 3_000]
    dropped = {i for start, length in holes for i in range(start, start + length)}
    subset = [b for i, b in enumerate(window) if i not in dropped and draw() < keep]
    if not subset:
        return
    resampler = BarResampler(TARGETS, tz=NY)
    out = feed(resampler, subset)
    for target in TARGETS:
        want = resampler.resample(subset, target)
        got = of(out, Resolution.parse(target))
        current = resampler.snapshot(target)
        assert got + ([current] if current else []) == want
    out += resampler.on_clock(subset[-1].ts_event + DAY.nanos + 2 * NS_PER_HOUR)
    for target in TARGETS:
        want = resampler.resample(subset, target)
        assert of(out, Resolution.parse(target)) == final_clock(want)
    assert resampler.statistics().revised == 0


@given(
    seed=st.integers(0, 2**32),
    delay=st.floats(0.0, 90.0),
    offset=st.integers(0, 43_000),
)
@settings(max_examples=25, deadline=None)
def test_bars_delivered_out_of_order_end_in_the_same_bars(
    seed: int, delay: float, offset: int
) -> None:
    """Each bar delivered up to ``delay`` bars late (slow backfill, reordering)."""
    draw = random.Random(seed).random
    subset = [bar for bar in btc()[offset : offset + 2_000] if draw() < 0.9]
    order = sorted(subset, key=lambda bar: bar.ts_event + draw() * delay * MINUTE.nanos)
    delivery = [dataclasses.replace(bar, ts_recv=i + 1) for i, bar in enumerate(order)]
    subset = sorted(delivery, key=lambda bar: bar.ts_event)
    resampler = BarResampler(TARGETS, tz=NY, late_window_ns=3 * NS_PER_HOUR)
    out = feed(resampler, delivery, clock=False)
    for target in TARGETS:
        got = unrevised(latest(out, Resolution.parse(target)))
        current = resampler.snapshot(target)
        assert got + ([current] if current else []) == resampler.resample(subset, target)
    newest, late = 0, 0
    for bar in delivery:
        late += bar.ts_event < newest
        newest = max(newest, bar.ts_event)
    stats = resampler.statistics()
    assert (stats.late, stats.dropped, stats.duplicates, stats.corrections) == (late, 0, 0, 0)


@given(
    st.lists(
        st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)
        | st.sampled_from([0.1, 1e16, 1.0, -0.0, 2300413.7295]),
        max_size=60,
    )
)
def test_the_running_sum_is_math_fsum(values: list[float]) -> None:
    running = ExactSum()
    for value in values:
        running.add(value)
    assert running.value() == math.fsum(values)
    assert math.copysign(1.0, running.value()) == math.copysign(1.0, math.fsum(values))


def test_the_running_sum_of_special_values_is_math_fsum() -> None:
    for values in ([1.0, math.nan, 2.0], [math.inf, 1.0], [-math.inf, 5.0, -math.inf]):
        running = ExactSum()
        for value in values:
            running.add(value)
        assert repr(running.value()) == repr(math.fsum(values))
    running = ExactSum()  # where math.fsum raises, a live bar gets a NaN volume
    for value in (math.inf, 1.0, -math.inf):
        running.add(value)
    assert math.isnan(running.value())
    with pytest.raises(ValueError, match="inf"):
        math.fsum([math.inf, 1.0, -math.inf])


# --------------------------------------------------------------------------------- errors


def test_invalid_input_raises_and_changes_nothing() -> None:
    bars = spy("20131007")[:40]
    # a bar in the last minute of a 5m bucket, moved by 30 s, straddles the boundary
    i = next(i for i in range(7, 40) if (bars[i].ts_event + MINUTE.nanos) % FIVE.nanos == 0)
    half = dataclasses.replace(bars[i], ts_event=bars[i].ts_event + 30 * NS_PER_SECOND)
    resampler = BarResampler(["5m", "1h"])
    first = feed(resampler, bars[:7], clock=False)
    with pytest.raises(ValueError, match="expected a bar of 'SPY', got one of 'QQQ'"):
        resampler.update(dataclasses.replace(bars[7], symbol="QQQ"))
    with pytest.raises(ValueError, match="expected a 1m bar of 'SPY', got a 5m bar"):
        resampler.update(dataclasses.replace(bars[7], resolution=FIVE))
    with pytest.raises(ValueError, match="straddles the 5m bucket boundary"):
        resampler.update(half)
    rest = feed(resampler, bars[7:], clock=False)
    again = BarResampler(["5m", "1h"])
    assert first + rest == feed(again, bars, clock=False)
    assert resampler.statistics().bars == 40


@pytest.mark.parametrize(
    ("targets", "kwargs", "message"),
    [
        ([], {}, "at least one target"),
        (["5m", "5m"], {}, "distinct targets"),
        (["tick"], {}, "tick"),
        (["fortnight"], {}, "resolution such as"),
        (["1d"], {"tz": "Mars/Olympus_Mons"}, "unknown time zone"),
        (["5m"], {"late_window_ns": -1}, "late_window_ns must be >= 0"),
        (["5m"], {"late_window_ns": 1.5}, "late_window_ns must be an int"),
        (["5m"], {"source": "fortnight"}, "resolution such as"),
        (["90s"], {"source": "1m"}, "finer than 90s and divide it, got 1m"),
        (["1m"], {"source": "1m"}, "finer than 1m"),
    ],
)
def test_invalid_configuration(targets: list[str], kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BarResampler(targets, **kwargs)  # type: ignore[arg-type]


def test_a_source_that_cannot_make_a_target_is_refused_at_the_first_bar() -> None:
    resampler = BarResampler(["1h"])
    hourly = dataclasses.replace(spy("20131007")[0], resolution=HOUR)
    with pytest.raises(ConfigError, match="finer than 1h and divide it, got 1h"):
        resampler.update(hourly)
    assert (resampler.source, resampler.symbol) == (None, None)
    with pytest.raises(ValueError, match=r"expected one of the targets \['1h'\], got 5m"):
        resampler.snapshot("5m")
    assert resampler.targets == (HOUR,)
