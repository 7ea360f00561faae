"""Trading calendars judged against real bars: SPY minutes/hours/days (LEAN), CME 6E minutes.

The gap question the engine asks is ``calendar.missing(prev_open, next_open, resolution)``
for two consecutive bars; these tests walk real series with it.
"""

from __future__ import annotations

import itertools
import json
import logging
import subprocess
import sys
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lean_data.errors import ConfigError
from lean_data.loaders import load_file
from lean_data.models import NS_PER_DAY, NS_PER_HOUR, NS_PER_MINUTE, AssetClass, Resolution
from lean_data.models import datetime_to_ns as to_ns
from lean_data.series.calendars import (
    COUNT_HORIZON_NS,
    AlwaysOpen,
    CmeGlobexCalendar,
    ExchangeCalendar,
    Forex24x5,
    TradingCalendar,
    calendar_for,
)
from lean_data.series.continuity import EveryInterval

NEW_YORK = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")
SPY_DAYS = ("20131004", "20131007", "20131008", "20131009", "20131010", "20131011")
MINUTE = Resolution.MINUTE


def ny(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    """ns of a New York wall-clock time."""
    return to_ns(datetime(year, month, day, hour, minute, tzinfo=NEW_YORK))


def chicago(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    """ns of a Chicago wall-clock time."""
    return to_ns(datetime(year, month, day, hour, minute, tzinfo=CHICAGO))


def walk(calendar: TradingCalendar, opens: Sequence[int], resolution: Resolution) -> list[int]:
    """Report every missing open between consecutive bars, as the engine does."""
    step = resolution.nanos
    return [
        missing
        for prev, nxt in itertools.pairwise(opens)
        if nxt != prev + step
        for missing in calendar.missing(prev, nxt, resolution)
    ]


@pytest.fixture(scope="module")
def spy_minutes() -> list[int]:
    """Open times of the real SPY minute trade bars, Friday 2013-10-04 to Friday 10-11."""
    root = Path(__file__).parent / "fixtures/lean/equity/usa/minute/spy"
    return [bar.ts_event for day in SPY_DAYS for bar in load_file(root / f"{day}_trade.zip")]


@pytest.fixture(scope="module")
def cme_6e_opens() -> list[int]:
    """Open times of the real CME 6E (March 2024) minute bars of January 2024.

    The file (Nautilus) stamps each bar at its *close*: a bar stamped 16:00 CT exists every
    trading day and none is stamped 17:00 CT, while Globex halts 16:00-17:00 CT (proved
    in ``test_cme_file_is_stamped_at_bar_close``). One minute earlier is the open.
    """
    path = Path(__file__).parent / "fixtures/nautilus_trader/xcme"
    bars = load_file(path / "6EH4.XCME_1min_bars_20240101_20240131.csv.gz")
    return [bar.ts_event - NS_PER_MINUTE for bar in bars]


# --- US equities: XNYS ---------------------------------------------------------------------


def test_spy_regular_hours_week_has_no_gap_across_the_weekend(spy_minutes: list[int]) -> None:
    xnys = calendar_for("SPY")
    regular = [ts for ts in spy_minutes if xnys.is_open(ts)]
    assert len(spy_minutes) == 4839
    assert len(regular) == 6 * 390  # every regular minute of six days has a bar
    assert walk(xnys, regular, MINUTE) == []
    # the weekend jump itself, Friday 15:59 → Monday 09:30 New York
    assert regular[389:391] == [ny(2013, 10, 4, 15, 59), ny(2013, 10, 7, 9, 30)]
    assert xnys.missing(regular[389], regular[390], MINUTE) == []
    assert xnys.sessions(ny(2013, 10, 4, 12), ny(2013, 10, 7, 12)) == [
        (ny(2013, 10, 4, 9, 30), ny(2013, 10, 4, 16)),
        (ny(2013, 10, 7, 9, 30), ny(2013, 10, 7, 16)),
    ]


def test_three_removed_spy_bars_are_exactly_the_missing_ones(spy_minutes: list[int]) -> None:
    xnys = calendar_for("SPY")
    regular = [ts for ts in spy_minutes if xnys.is_open(ts)]
    removed = [ny(2013, 10, 8, 10, 15), ny(2013, 10, 8, 12, 0), ny(2013, 10, 8, 12, 1)]
    kept = [ts for ts in regular if ts not in removed]
    assert len(kept) == len(regular) - 3
    assert walk(xnys, kept, MINUTE) == removed
    # a whole missing day is 390 minutes: Wednesday 2013-10-09 is an exchange day
    without_wednesday = [ts for ts in regular if not ny(2013, 10, 9) <= ts < ny(2013, 10, 10)]
    gap = walk(xnys, without_wednesday, MINUTE)
    assert (len(gap), gap[0], gap[-1]) == (390, ny(2013, 10, 9, 9, 30), ny(2013, 10, 9, 15, 59))


def test_spy_extended_hours_are_sparse_outside_the_regular_session(
    spy_minutes: list[int],
) -> None:
    extended = calendar_for("SPY", extended_hours=True)
    regular = calendar_for("SPY")
    assert extended.name == "XNYS extended"
    assert extended.sessions(ny(2013, 10, 7, 12), ny(2013, 10, 7, 13)) == [
        (ny(2013, 10, 7, 4), ny(2013, 10, 7, 20))
    ]
    assert all(extended.is_open(ts) for ts in spy_minutes)  # the files hold 04:00-19:59
    expected = extended.expected_opens(spy_minutes[0], spy_minutes[-1] + NS_PER_MINUTE, MINUTE)
    gaps = walk(extended, spy_minutes, MINUTE)
    # AlgoSeek writes no bar for a minute without a trade. The regular session always
    # trades; 915 pre-/post-market minutes of the 5754 between the first bar (Friday 04:06)
    # and the last (Friday 19:59) had none: sparse minutes, not a feed failure.
    assert (len(expected), len(gaps)) == (5754, 915)
    assert len(spy_minutes) + len(gaps) == len(expected)
    assert not any(regular.is_open(ts) for ts in gaps)
    by_part = Counter("pre" if ns_local_hour(ts) < 12 else "post" for ts in gaps)
    assert by_part == {"pre": 566, "post": 349}


def ns_local_hour(ts: int) -> int:
    return datetime.fromtimestamp(ts / 1e9, NEW_YORK).hour


def test_thanksgiving_holiday_and_early_close() -> None:
    xnys = calendar_for("AAPL")
    assert xnys.sessions(ny(2013, 11, 27, 12), ny(2013, 12, 2, 12)) == [
        (ny(2013, 11, 27, 9, 30), ny(2013, 11, 27, 16)),
        (ny(2013, 11, 29, 9, 30), ny(2013, 11, 29, 13)),  # the day after closes at 13:00
        (ny(2013, 12, 2, 9, 30), ny(2013, 12, 2, 16)),
    ]
    assert not xnys.is_open(ny(2013, 11, 28, 12))  # Thanksgiving
    assert not xnys.is_open(ny(2013, 11, 29, 13))
    assert xnys.is_open(ny(2013, 11, 29, 12, 59))
    assert xnys.missing(ny(2013, 11, 27, 15, 59), ny(2013, 11, 29, 9, 30), MINUTE) == []
    assert xnys.missing(ny(2013, 11, 29, 12, 59), ny(2013, 12, 2, 9, 30), MINUTE) == []
    assert xnys.missing(ny(2013, 11, 29, 12, 58), ny(2013, 12, 2, 9, 32), MINUTE) == [
        ny(2013, 11, 29, 12, 59),
        ny(2013, 12, 2, 9, 30),
        ny(2013, 12, 2, 9, 31),
    ]
    day = xnys.expected_opens(ny(2013, 11, 29), ny(2013, 11, 30), MINUTE)
    assert (len(day), day[0], day[-1]) == (210, ny(2013, 11, 29, 9, 30), ny(2013, 11, 29, 12, 59))
    # extended hours end four hours after an early close
    extended = calendar_for("AAPL", extended_hours=True)
    assert extended.sessions(ny(2013, 11, 28), ny(2013, 11, 30)) == [
        (ny(2013, 11, 29, 4), ny(2013, 11, 29, 17))
    ]


def test_independence_day_2014() -> None:
    xnys = calendar_for("SPY")
    # Thursday 3 July closes at 13:00, Friday 4 July is closed, Monday 7 July is normal
    assert xnys.missing(ny(2014, 7, 3, 12, 59), ny(2014, 7, 7, 9, 30), MINUTE) == []
    assert xnys.missing(ny(2014, 7, 3, 12, 59), ny(2014, 7, 7, 9, 30), Resolution.HOUR) == []
    assert not xnys.is_open(ny(2014, 7, 4, 11))
    assert xnys.expected_opens(ny(2014, 7, 4), ny(2014, 7, 5), MINUTE) == []


def test_spy_hour_bars_partial_first_hour_and_23_years() -> None:
    xnys = calendar_for("SPY")
    # the 09:30 open falls inside the hour bar stamped 09:00, which is expected
    assert xnys.expected_opens(ny(2013, 10, 7), ny(2013, 10, 8), Resolution.HOUR) == [
        ny(2013, 10, 7, hour) for hour in range(9, 16)
    ]
    path = Path(__file__).parent / "fixtures/lean/equity/usa/hour/spy.zip"
    opens = [bar.ts_event for bar in load_file(path)]
    assert len(opens) == 40_832
    # LEAN's hour bars, 1998-01-02 → 2021-03-31: the only gap the calendar sees is the late
    # open of 2002-09-11 (trading began after 11:00), which exchange_calendars does not know
    assert walk(xnys, opens, Resolution.HOUR) == [ny(2002, 9, 11, 9), ny(2002, 9, 11, 10)]
    # before 2009 the file holds bars after early closes (13:00-15:00 on 24 days): outside
    # any session, harmless to gap detection (a bar that arrives is never a gap)
    after_close = [ts for ts in opens if not xnys.sessions(ts, ts + NS_PER_HOUR)]
    assert len(after_close) == 47
    assert {datetime.fromtimestamp(ts / 1e9, NEW_YORK).year for ts in after_close} <= set(
        range(1998, 2009)
    )


def test_spy_daily_bars_at_local_midnight_across_dst_and_holidays() -> None:
    xnys = calendar_for("SPY")
    path = Path(__file__).parent / "fixtures/lean/equity/usa/daily/spy.zip"
    opens = [bar.ts_event for bar in load_file(path)]
    assert len(opens) == 5849
    # stamped at New York midnight, so the UTC grid shifts at each DST change: the part of a
    # bar interval that the next bar covers never counts, so no false gap appears
    assert walk(xnys, opens, Resolution.DAILY) == []
    friday, monday = ny(2013, 11, 1), ny(2013, 11, 4)  # DST ended on Sunday 3 November
    assert monday - friday == 3 * NS_PER_DAY + NS_PER_HOUR
    assert xnys.missing(friday, monday, Resolution.DAILY) == []
    assert xnys.missing(friday, ny(2013, 11, 5), Resolution.DAILY) == [friday + 3 * NS_PER_DAY]


# --- CME Globex futures: 6E -----------------------------------------------------------------


def test_cme_file_is_stamped_at_bar_close(cme_6e_opens: list[int]) -> None:
    fx = calendar_for("6EH4.XCME")
    stamps = [ts + NS_PER_MINUTE for ts in cme_6e_opens]  # as the file and loader give them
    outside = [ts for ts in stamps if not fx.is_open(ts)]
    assert len(outside) == 22  # one per trading day, each exactly at the 16:00 CT halt
    assert {datetime.fromtimestamp(ts / 1e9, CHICAGO).strftime("%H:%M") for ts in outside} == {
        "16:00"
    }
    # read as open times, every session reopen at 17:00 CT would look missing
    spurious = walk(fx, stamps, MINUTE)
    at_reopen = [ts for ts in spurious if fx.is_open(ts) and not fx.is_open(ts - 1)]
    assert (len(spurious), len(at_reopen)) == (445, 22)


def test_cme_6e_month_has_no_gap_at_breaks_weekends_or_new_year(
    cme_6e_opens: list[int],
) -> None:
    fx = calendar_for("6EH4.XCME")
    assert fx.name == "CME Globex fx"
    assert len(cme_6e_opens) == 29_996
    assert cme_6e_opens[0] == chicago(2024, 1, 1, 17)  # Globex reopens after New Year's Day
    assert all(fx.is_open(ts) for ts in cme_6e_opens)
    naive = sum((nxt - prev) // NS_PER_MINUTE - 1 for prev, nxt in itertools.pairwise(cme_6e_opens))
    missing = walk(fx, cme_6e_opens, MINUTE)
    # 13 263 minutes lie between bars; all but 423 are halts, weekends and the holiday. The
    # 423 are in-session minutes without a trade (6E minute bars are sparse).
    assert (naive, len(missing)) == (13_263, 423)
    expected = fx.expected_opens(cme_6e_opens[0], cme_6e_opens[-1] + NS_PER_MINUTE, MINUTE)
    assert len(expected) == len(cme_6e_opens) + len(missing) == 30_419
    assert all(fx.is_open(ts) for ts in missing)
    local = [datetime.fromtimestamp(ts / 1e9, CHICAGO) for ts in missing]
    assert not [t for t in local if t.hour == 16]  # nothing in the daily halt
    assert not [t for t in local if t.weekday() == 5]  # nor on a Saturday
    assert not [t for t in local if t.weekday() == 4 and t.hour >= 16]
    assert not [t for t in local if t.weekday() == 6 and t.hour < 17]
    # the breaks themselves
    assert fx.missing(chicago(2024, 1, 8, 15, 59), chicago(2024, 1, 8, 17), MINUTE) == []
    assert fx.missing(chicago(2024, 1, 5, 15, 59), chicago(2024, 1, 7, 17), MINUTE) == []
    assert fx.sessions(chicago(2023, 12, 29, 12), chicago(2024, 1, 2, 12)) == [
        (chicago(2023, 12, 28, 17), chicago(2023, 12, 29, 16)),
        (chicago(2024, 1, 1, 17), chicago(2024, 1, 2, 16)),  # closed on 1 January
    ]


def test_three_removed_6e_bars_are_reported(cme_6e_opens: list[int]) -> None:
    fx = calendar_for("6EH4.XCME")
    removed = [chicago(2024, 1, 11, 5, 13), chicago(2024, 1, 22, 19, 49), chicago(2024, 1, 30, 9)]
    for ts in removed:  # each has a bar the minute before and the minute after
        assert {ts - NS_PER_MINUTE, ts, ts + NS_PER_MINUTE} <= set(cme_6e_opens)
    before = walk(fx, cme_6e_opens, MINUTE)
    after = walk(fx, [ts for ts in cme_6e_opens if ts not in removed], MINUTE)
    assert len(after) == len(before) + 3
    assert sorted(set(after) - set(before)) == removed


def test_cme_fx_trades_through_mlk_day_but_equity_halts_at_noon(
    cme_6e_opens: list[int],
) -> None:
    fx, equity = calendar_for("6EH4.XCME"), CmeGlobexCalendar("equity")
    assert fx.sessions(chicago(2024, 1, 15, 10), chicago(2024, 1, 15, 11)) == [
        (chicago(2024, 1, 14, 17), chicago(2024, 1, 15, 16))
    ]
    assert equity.sessions(chicago(2024, 1, 15, 10), chicago(2024, 1, 15, 11)) == [
        (chicago(2024, 1, 14, 17), chicago(2024, 1, 15, 12))
    ]
    # real 6E traded 12:00-15:59 CT on Martin Luther King Day 2024: 155 minute bars that the
    # equity schedule (exchange_calendars' CMES noon close) would put outside any session
    outside = [ts for ts in cme_6e_opens if not equity.is_open(ts)]
    assert (len(outside), outside[0], outside[-1]) == (
        155,
        chicago(2024, 1, 15, 12),
        chicago(2024, 1, 15, 15, 59),
    )


def test_cme_sessions_across_a_decade_block_boundary() -> None:
    fx = CmeGlobexCalendar()  # fresh: loads the 2020s first, then prepends the 2010s
    assert fx.is_open(chicago(2024, 6, 3, 10))
    assert fx.sessions(chicago(2019, 12, 31, 12), chicago(2020, 1, 2, 12)) == [
        (chicago(2019, 12, 30, 17), chicago(2019, 12, 31, 16)),
        (chicago(2020, 1, 1, 17), chicago(2020, 1, 2, 16)),
    ]
    assert fx.missing(chicago(2019, 12, 31, 15, 59), chicago(2020, 1, 1, 17), MINUTE) == []
    assert fx.is_open(chicago(2024, 6, 3, 10))


# --- built-in calendars ---------------------------------------------------------------------


def test_always_open_expects_every_minute() -> None:
    crypto = calendar_for("BTC/USDT")
    assert isinstance(crypto, AlwaysOpen)
    saturday = to_ns(datetime(2024, 1, 6))
    day = crypto.expected_opens(saturday, saturday + NS_PER_DAY, MINUTE)
    assert day == list(range(saturday, saturday + NS_PER_DAY, NS_PER_MINUTE))
    assert crypto.is_open(saturday + 17)
    assert crypto.sessions(saturday, saturday + NS_PER_DAY) == [(saturday, saturday + NS_PER_DAY)]
    assert len(crypto.missing(saturday, saturday + 2 * NS_PER_DAY, MINUTE)) == 2 * 1440 - 1
    # a bar series off the epoch grid keeps its own phase
    assert crypto.missing(saturday + 7, saturday + 7 + 3 * NS_PER_MINUTE, MINUTE) == [
        saturday + 7 + NS_PER_MINUTE,
        saturday + 7 + 2 * NS_PER_MINUTE,
    ]


def test_always_open_on_a_real_continuous_crypto_series() -> None:
    path = Path(__file__).parent / "fixtures/nautilus_trader/btc-perp-20211231-20220201_1m.csv"
    opens = [bar.ts_event for bar in load_file(path)]
    crypto = calendar_for("BTC/USD:USD")
    assert walk(crypto, opens, MINUTE) == []
    removed = opens[100:103] + opens[40_000:40_004]
    assert walk(crypto, [ts for ts in opens if ts not in removed], MINUTE) == removed


def test_forex_trades_sunday_evening_to_friday_evening_new_york() -> None:
    fx = calendar_for("EUR/USD")
    assert isinstance(fx, Forex24x5)
    assert fx.sessions(ny(2024, 3, 8, 12), ny(2024, 3, 11, 12)) == [
        (ny(2024, 3, 3, 17), ny(2024, 3, 8, 17)),
        (ny(2024, 3, 10, 17), ny(2024, 3, 15, 17)),  # DST began that Sunday morning
    ]
    assert fx.missing(ny(2024, 3, 8, 16, 59), ny(2024, 3, 10, 17), MINUTE) == []
    assert not fx.is_open(ny(2024, 3, 9, 12))


def test_routing_and_shared_instances(caplog: pytest.LogCaptureFixture) -> None:
    assert calendar_for("AAPL") is calendar_for("SPY")
    assert calendar_for("AAPL").name == "XNYS"
    assert calendar_for("^GSPC", extended_hours=True).name == "XNYS"  # index: regular hours
    assert calendar_for("ETH/USDT", extended_hours=True).name == "24/7"
    assert calendar_for("6E/H4", AssetClass.FUTURE) is calendar_for("6EH4.XCME")
    assert calendar_for("ESH4", AssetClass.FUTURE).name == "CME Globex fx"
    with caplog.at_level(logging.WARNING, logger="lean_data.series.calendars"):
        assert calendar_for("not a symbol!").name == "24/7"
    assert "no asset class for symbol 'not a symbol!'" in caplog.text


def test_lunch_break_splits_a_library_session() -> None:
    hong_kong = ExchangeCalendar("XHKG")
    hkt = ZoneInfo("Asia/Hong_Kong")
    day = [to_ns(datetime(2024, 1, 8, h, m, tzinfo=hkt)) for h, m in ((9, 30), (12, 0), (13, 0))]
    assert hong_kong.sessions(day[0], day[0] + 8 * NS_PER_HOUR) == [
        (day[0], day[1]),
        (day[2], to_ns(datetime(2024, 1, 8, 16, tzinfo=hkt))),
    ]
    assert hong_kong.missing(day[1] - NS_PER_MINUTE, day[2], MINUTE) == []


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="expected a bar resolution"):
        calendar_for("SPY").missing(0, NS_PER_DAY, Resolution.TICK)
    with pytest.raises(ConfigError, match="exchange_calendars code"):
        ExchangeCalendar("NOPE")
    with pytest.raises(ConfigError, match="extended hours"):
        ExchangeCalendar("XLON", extended_hours=True)
    with pytest.raises(ConfigError, match="'fx' or 'equity'"):
        CmeGlobexCalendar("grains")  # type: ignore[arg-type]
    assert calendar_for("SPY").missing(ny(2013, 10, 7, 10), ny(2013, 10, 7, 10), MINUTE) == []


# --- optional dependency ----------------------------------------------------------------------

_PROBE = """
import json, sys
if sys.argv[1] == "absent":
    sys.modules["exchange_calendars"] = None  # what an install without the extra looks like
def heavy():
    loaded = {name for name, module in sys.modules.items() if module is not None}
    return sorted({"pandas", "exchange_calendars"} & loaded)
import lean_data, lean_data.series.calendars
from lean_data.series.calendars import calendar_for
from lean_data.errors import ConfigError
result = {"after_import": heavy(),
          "crypto": len(calendar_for("BTC/USDT").missing(0, 10 * 60 * 10**9, "1m")),
          "forex": calendar_for("EUR/USD").is_open(1704729600 * 10**9)}
result["after_builtins"] = heavy()
try:
    result["spy"] = calendar_for("SPY").is_open(1381152600 * 10**9)
except ConfigError as exc:
    result["spy"] = str(exc)
result["after_exchange"] = heavy()
print(json.dumps(result))
"""


def _probe(mode: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", _PROBE, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_import_loads_neither_pandas_nor_exchange_calendars() -> None:
    assert _probe("present") == {
        "after_import": [],
        "crypto": 9,
        "forex": True,
        "after_builtins": [],
        "spy": True,  # Monday 2013-10-07 13:30 UTC, the 09:30 New York open
        "after_exchange": ["exchange_calendars", "pandas"],
    }


def test_missing_library_is_a_config_error_naming_the_extra() -> None:
    assert _probe("absent") == {
        "after_import": [],
        "crypto": 9,
        "forex": True,
        "after_builtins": [],
        "spy": "an exchange trading calendar needs the exchange_calendars library, which is "
        "not installed; install the calendars extra: pip install 'lean-data[calendars]'",
        "after_exchange": [],
    }


# --- counting: count_missing equals len(missing), at a cost independent of the jump ----------


def count_walk(calendar: TradingCalendar, opens: Sequence[int], resolution: Resolution) -> int:
    """Count every missing open between consecutive bars with count_missing, as continuity."""
    return sum(calendar.count_missing(p, n, resolution) for p, n in itertools.pairwise(opens))


def test_count_missing_equals_the_listed_gaps_of_the_real_spy_week(
    spy_minutes: list[int],
) -> None:
    extended = calendar_for("SPY", extended_hours=True)
    xnys = calendar_for("SPY")
    assert count_walk(extended, spy_minutes, MINUTE) == len(walk(extended, spy_minutes, MINUTE))
    assert count_walk(extended, spy_minutes, MINUTE) == 915  # the sparse extended minutes
    regular = [ts for ts in spy_minutes if xnys.is_open(ts)]
    assert count_walk(xnys, regular, MINUTE) == 0  # across the weekend too
    removed = {ny(2013, 10, 8, 10, 15), ny(2013, 10, 8, 12, 0), ny(2013, 10, 8, 12, 1)}
    assert count_walk(xnys, [ts for ts in regular if ts not in removed], MINUTE) == 3
    without_wednesday = [ts for ts in regular if not ny(2013, 10, 9) <= ts < ny(2013, 10, 10)]
    assert count_walk(xnys, without_wednesday, MINUTE) == 390  # one regular NYSE day


def test_count_missing_over_a_holiday_week_with_an_early_close() -> None:
    xnys = calendar_for("AAPL")
    cases = [
        # Tuesday close → Monday open over Wednesday, Thanksgiving and the 13:00 early close
        (ny(2013, 11, 26, 15, 59), ny(2013, 12, 2, 9, 30), MINUTE, 390 + 210),
        (ny(2013, 11, 27, 15, 59), ny(2013, 12, 2, 9, 30), MINUTE, 210),  # Friday only
        (ny(2013, 11, 29, 12, 58), ny(2013, 12, 2, 9, 32), MINUTE, 3),
        (ny(2013, 11, 27, 15, 59), ny(2013, 11, 29, 9, 30), MINUTE, 0),  # Thanksgiving
        (ny(2013, 10, 4, 15, 59), ny(2013, 10, 7, 9, 30), MINUTE, 0),  # a weekend
        (ny(2014, 7, 3, 12, 59), ny(2014, 7, 7, 9, 30), Resolution.HOUR, 0),  # July 4th
        (ny(2013, 10, 4, 9), ny(2013, 10, 8, 9), Resolution.HOUR, 6 + 7),  # Fri 10-15, Mon 9-15
        (ny(2013, 11, 1), ny(2013, 11, 5), Resolution.DAILY, 1),  # Monday, across DST
    ]
    for prev, nxt, resolution, facts in cases:
        assert xnys.count_missing(prev, nxt, resolution) == facts
        assert len(xnys.missing(prev, nxt, resolution)) == facts


def test_count_missing_of_crypto_is_arithmetic_on_the_series_grid() -> None:
    crypto = calendar_for("BTC/USDT")
    saturday = to_ns(datetime(2024, 1, 6))
    assert crypto.count_missing(saturday, saturday + 2 * NS_PER_DAY, MINUTE) == 2 * 1440 - 1
    assert crypto.count_missing(saturday + 7, saturday + 7 + 3 * NS_PER_MINUTE, MINUTE) == 2
    assert crypto.count_missing(saturday, saturday + 150 * 10**9, MINUTE) == 2  # off-grid next
    assert crypto.count_missing(saturday, saturday + NS_PER_MINUTE, MINUTE) == 0
    assert crypto.count_missing(saturday, saturday - NS_PER_MINUTE, MINUTE) == 0
    every = EveryInterval()
    for gap in (0, 1, NS_PER_MINUTE, NS_PER_MINUTE + 1, 150 * 10**9, 2 * NS_PER_DAY):
        listed = len(range(saturday + NS_PER_MINUTE, saturday + gap, NS_PER_MINUTE))
        assert every.count_missing(saturday, saturday + gap, MINUTE) == listed
        assert crypto.count_missing(saturday, saturday + gap, MINUTE) == listed


_COUNTED = {
    "XNYS": calendar_for("SPY"),
    "XNYS extended": calendar_for("SPY", extended_hours=True),
    "CME fx": calendar_for("6EH4.XCME"),
    "FX 24x5": calendar_for("EUR/USD"),
    "24/7": calendar_for("BTC/USDT"),
}


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(_COUNTED)),
    resolution=st.sampled_from([MINUTE, Resolution.parse("5m"), Resolution.HOUR, Resolution.DAILY]),
    prev=st.integers(to_ns(datetime(2013, 1, 1)), to_ns(datetime(2024, 12, 1))),
    span=st.integers(-NS_PER_DAY, 12 * NS_PER_DAY),
)
def test_count_missing_equals_len_missing(
    name: str, resolution: Resolution, prev: int, span: int
) -> None:
    calendar = _COUNTED[name]
    listed = calendar.missing(prev, prev + span, resolution)
    assert calendar.count_missing(prev, prev + span, resolution) == len(listed)
    end = prev + span
    expected = calendar.expected_opens(prev, end, resolution, anchor_ns=prev // 3)
    assert calendar.count_expected(prev, end, resolution, anchor_ns=prev // 3) == len(expected)


class RecordingXnys(ExchangeCalendar):
    """XNYS that records the years it computes sessions for (a real subclass, not a mock)."""

    def __init__(self) -> None:
        super().__init__("XNYS")
        self.computed: list[tuple[int, int]] = []

    def _compute(self, first_year: int, last_year: int) -> list[tuple[int, int]]:
        self.computed.append((first_year, last_year))
        return super()._compute(first_year, last_year)


def years_computed(calendar: RecordingXnys) -> int:
    return sum(last - first + 1 for first, last in calendar.computed)


def test_a_jump_to_2100_year_9999_or_microseconds_is_counted_in_bounded_memory() -> None:
    xnys = RecordingXnys()
    prev = ny(2024, 3, 1, 15, 59)
    xnys.sessions(ny(2024, 1, 1), ny(2025, 1, 1))  # what the engine preloads: 2020-2029
    assert xnys.computed == [(2020, 2029)]
    ten_years = xnys.count_expected(ny(2024, 3, 4), prev + COUNT_HORIZON_NS, MINUTE)
    assert 2450 * 390 < ten_years < 2530 * 390  # about 251 sessions a year, a few early closes
    jumps = {
        "2100": to_ns(datetime(2100, 1, 1)),
        "9999": to_ns(datetime(9999, 12, 31)),
        "µs read as ns": prev * 1000,  # far past year 9999 and int64
    }
    for label, nxt in jumps.items():
        tracemalloc.start()
        try:
            counted = xnys.count_missing(prev, nxt, MINUTE)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert counted == ten_years, label  # a lower bound: the first ten years
        assert peak < 50 * 2**20, (label, peak)
    assert xnys.computed == [(2020, 2029), (2030, 2039)]  # one more decade, once
    # a series whose previous bar was stamped in µs (read as ns: January 1970)
    tracemalloc.start()
    try:
        counted = xnys.count_missing(prev // 1000, prev, MINUTE)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert counted > 2400 * 390
    assert peak < 50 * 2**20
    assert years_computed(xnys) <= 60  # 1960-1989 replaced the run: nothing in between
    for always in (calendar_for("BTC/USDT"), EveryInterval()):
        for nxt in jumps.values():
            assert always.count_missing(prev, nxt, MINUTE) == (nxt - prev - 1) // NS_PER_MINUTE


def test_listing_or_tabling_an_absurd_span_is_refused_before_any_work() -> None:
    xnys = RecordingXnys()
    crypto = calendar_for("BTC/USDT")
    prev = ny(2024, 3, 1, 15, 59)
    with pytest.raises(ValueError, match="use count_missing"):
        crypto.missing(prev, to_ns(datetime(2100, 1, 1)), MINUTE)
    with pytest.raises(ValueError, match="use count_missing"):
        xnys.missing(prev, prev * 1000, MINUTE)
    with pytest.raises(ValueError, match="years 1678-2261"):
        xnys.sessions(to_ns(datetime(9999, 1, 1)), to_ns(datetime(9999, 1, 2)))
    with pytest.raises(ValueError, match="years 1678-2261"):
        xnys.count_missing(prev * 1000, prev * 1000 + NS_PER_DAY, MINUTE)
    assert xnys.computed == []
    # a span far from the loaded decades replaces them instead of filling the years between
    assert xnys.sessions(ny(2150, 3, 2), ny(2150, 3, 3)) == [
        (ny(2150, 3, 2, 9, 30), ny(2150, 3, 2, 16))
    ]
    xnys.sessions(ny(2024, 3, 1), ny(2024, 3, 2))
    assert xnys.computed == [(2140, 2159), (2020, 2029)]
