"""DataValidator rules on hand-built items: impossible, suspicious, and real behaviour."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lean_data.config import ValidationConfig
from lean_data.models import (
    NS_PER_DAY,
    NS_PER_MINUTE,
    QuoteBar,
    Resolution,
    Tick,
    TickType,
    TradeBar,
)
from lean_data.quality.levels import CLEAN, DataQualityLevel, Verdict
from lean_data.quality.state import Series
from lean_data.quality.validator import DataValidator, match_split

T0 = 1_402_300_800_000_000_000  # 2014-06-09 08:00 UTC
INVALID = DataQualityLevel.INVALID
POOR = DataQualityLevel.POOR
FAIR = DataQualityLevel.FAIR
GOOD = DataQualityLevel.GOOD


def bar(
    i: int,
    o: float,
    h: float,
    low: float,
    c: float,
    v: float = 100.0,
    *,
    symbol: str = "AAPL",
    resolution: Resolution = Resolution.MINUTE,
    **fields: object,
) -> TradeBar:
    """Return the ``i``-th bar of a series (open time T0 + i periods)."""
    ts = T0 + i * resolution.nanos
    return TradeBar(symbol, ts, o, h, low, c, v, resolution, **fields)  # type: ignore[arg-type]


def flat(i: int, price: float) -> TradeBar:
    """Return a minute bar that opens at ``price`` and closes 0.1 % higher (a quiet bar)."""
    c = price * 1.001
    return bar(i, price, c * 1.0005, price * 0.9995, c)


def warm(validator: DataValidator, n: int = 30, price: float = 100.0) -> float:
    """Feed ``n`` quiet, alternating bars; return the last close."""
    for i in range(n):
        b = (
            flat(i, price)
            if i % 2 == 0
            else bar(i, price * 1.001, price * 1.0015, price * 0.9995, price)
        )
        assert validator.check(b) is CLEAN
    return price


def quote(
    i: int,
    bid: float,
    ask: float,
    *,
    bid_size: float = 1.0,
    ask_size: float = 1.0,
    **fields: object,
) -> QuoteBar:
    ts = T0 + i * NS_PER_MINUTE
    return QuoteBar(
        "EUR/USD",
        ts,
        bid,
        bid,
        bid,
        bid,
        bid_size,
        ask,
        ask,
        ask,
        ask,
        ask_size,
        **fields,  # type: ignore[arg-type]
    )


def trade(ms: int, price: float, size: float = 100.0, **fields: object) -> Tick:
    return Tick("SPY", T0 + ms * 1_000_000, price, size, **fields)  # type: ignore[arg-type]


# ------------------------------------------------------------------ impossible -> INVALID


@pytest.mark.parametrize(
    ("ohlc", "reason", "message"),
    [
        ((10.0, 9.0, 9.5, 9.8), "ohlc_inconsistent", "high 9 is below low 9.5"),
        ((10.0, 9.9, 9.0, 9.5), "ohlc_inconsistent", "high 9.9 is below max(open, close) 10"),
        ((10.0, 11.0, 9.9, 9.8), "ohlc_inconsistent", "low 9.9 is above min(open, close) 9.8"),
        ((0.0, 11.0, 0.0, 9.8), "non_positive_price", "open 0 is not positive"),
        ((10.0, 11.0, -1.0, 9.8), "non_positive_price", "low -1 is not positive"),
        ((10.0, math.nan, 9.0, 9.8), "non_finite_price", "high nan is not a finite price"),
        ((10.0, math.inf, 9.0, 9.8), "non_finite_price", "high inf is not a finite price"),
        ((10.0, 11.0, 9.0, -math.inf), "non_finite_price", "close -inf is not a finite price"),
    ],
)
def test_impossible_bar_prices_are_invalid(
    ohlc: tuple[float, float, float, float], reason: str, message: str
) -> None:
    verdict = DataValidator().check(bar(0, *ohlc))
    assert verdict == Verdict(INVALID, (reason,), message)
    assert not verdict.is_valid


@pytest.mark.parametrize(
    ("volume", "reason"), [(-1.0, "negative_volume"), (math.inf, "non_finite_volume")]
)
def test_impossible_volume_is_invalid(volume: float, reason: str) -> None:
    verdict = DataValidator().check(bar(0, 10.0, 10.2, 9.9, 10.1, volume))
    assert verdict == Verdict(INVALID, (reason,), f"volume {volume:g} is impossible")


def test_invalid_bar_leaves_the_series_state_alone() -> None:
    validator = DataValidator()
    warm(validator)
    assert validator.check(bar(30, 100.0, 99.0, 98.0, 98.5)).level is INVALID
    # judged against the close before the invalid bar, and a normal open time sequence
    assert validator.check(flat(30, 100.0)) is CLEAN


def test_crossed_quote_bar_is_invalid() -> None:
    verdict = DataValidator().check(quote(0, 1.1010, 1.1000))
    assert verdict == Verdict(INVALID, ("crossed_quote",), "bid_close 1.101 is above ask_close 1.1")


def test_quote_bar_side_inconsistent_is_invalid() -> None:
    q = QuoteBar("EUR/USD", T0, 1.10, 1.09, 1.095, 1.10, 1.0, 1.11, 1.11, 1.11, 1.11, 1.0)
    verdict = DataValidator().check(q)
    assert verdict == Verdict(
        INVALID, ("ohlc_inconsistent",), "bid_high 1.09 is below bid_low 1.095"
    )


@pytest.mark.parametrize(
    ("item", "reason", "message"),
    [
        (trade(0, 100.0, -5.0), "negative_size", "trade size -5 is impossible"),
        (trade(0, -1.0), "non_positive_price", "price -1 is impossible"),
        (trade(0, math.nan), "non_finite_price", "price nan is impossible"),
        (quote(0, 1.10, 1.11, ask_size=-1.0), "negative_size", "quote size -1 is impossible"),
        (
            Tick("X", T0, 0.0, 0.0, TickType.QUOTE, bid_price=10.1, ask_price=10.0, bid_size=1),
            "crossed_quote",
            "bid 10.1 is above ask 10",
        ),
        (
            Tick("X", T0, 0.0, 0.0, TickType.QUOTE, bid_price=0.0, ask_price=10.0),
            "non_positive_price",
            "bid 0 is impossible",
        ),
    ],
)
def test_impossible_ticks_and_quotes_are_invalid(
    item: Tick | QuoteBar, reason: str, message: str
) -> None:
    assert DataValidator().check(item) == Verdict(INVALID, (reason,), message)


# ------------------------------------------------------------------ clean data


def test_clean_items_get_the_shared_clean_verdict() -> None:
    validator = DataValidator()
    assert validator.check(bar(0, 10.0, 10.2, 9.9, 10.1)) is CLEAN
    assert validator.check(quote(0, 1.1000, 1.1002)) is CLEAN
    assert validator.check(trade(0, 100.0)) is CLEAN


def test_contract_forms_return_tuples() -> None:
    validator = DataValidator()
    assert validator.validate_trade_bar(bar(0, 10.0, 10.2, 9.9, 10.1)) == (
        True,
        DataQualityLevel.EXCELLENT,
        "",
    )
    assert validator.validate_trade_bar(bar(1, 10.0, 9.0, 9.5, 9.8)) == (
        False,
        INVALID,
        "high 9 is below low 9.5",
    )
    assert validator.validate_quote_bar(quote(0, 1.1, 1.1)) == (
        True,
        GOOD,
        "bid equals ask (1.1)",
    )
    assert validator.validate_tick(trade(0, 50.0, suspicious=True)) == (
        True,
        POOR,
        "the vendor flagged this print (price 50, size 100)",
    )


def test_check_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="expected a TradeBar, QuoteBar or Tick, got str"):
        DataValidator().check("AAPL")  # type: ignore[arg-type]


# ------------------------------------------------------------------ volume


def test_nan_volume_is_fair_and_keeps_flowing() -> None:
    verdict = DataValidator().check(bar(0, 10.0, 10.2, 9.9, 10.1, math.nan))
    assert verdict == Verdict(FAIR, ("nan_volume",), "volume is NaN (unknown)")


def test_range_without_volume_only_after_the_series_traded() -> None:
    validator = DataValidator()
    assert validator.check(bar(0, 10.0, 10.2, 9.9, 10.1, 0.0)) is CLEAN  # never traded yet
    assert validator.check(bar(1, 10.5, 11.0, 10.0, 10.6, 5.0)) is CLEAN
    assert validator.check(bar(2, 10.6, 10.6, 10.6, 10.6, 0.0)) is CLEAN  # flat, no trades
    assert validator.check(bar(3, 10.6, 10.8, 10.5, 10.7, 0.0)) == Verdict(
        FAIR,
        ("range_without_volume",),
        "range 10.5..10.8 with volume 0 in a series that has traded",
    )


def test_index_with_zero_volume_everywhere_is_never_flagged() -> None:
    validator = DataValidator()
    price = 3578.73
    for i in range(200):
        c = price * (1.002 if i % 3 else 0.997)
        verdict = validator.check(bar(i, price, max(price, c) + 1, min(price, c) - 1, c, 0.0))
        assert verdict is CLEAN
        price = c


# ------------------------------------------------------------------ moves


def test_move_beyond_hard_limit_is_flagged_before_history() -> None:
    validator = DataValidator()
    assert validator.check(flat(0, 100.0)) is CLEAN
    assert validator.check(flat(1, 112.0)) is CLEAN  # +11.9 %: within the 15 % minute limit
    verdict = validator.check(flat(2, 135.0))
    assert verdict.level is FAIR
    assert verdict.reasons == ("extreme_move",)
    assert verdict.message == (
        "close 135.135 is 20.54% above the reference close 112.112 (limit 16.18%)"
    )


def test_extreme_move_against_recent_behaviour_then_level_shift() -> None:
    validator = DataValidator()
    warm(validator)  # quiet: mean |move| about 0.1 %, limit the 2 % floor
    verdict = validator.check(flat(30, 103.0))
    assert verdict.reasons == ("extreme_move",)
    assert verdict.message.startswith("close 103.103 is 3.10% above the reference close 100 ")
    # the new level holds: a level shift, the confirming bar is not flagged
    assert validator.check(flat(31, 103.103)) is CLEAN
    assert validator.check(flat(32, 103.2)) is CLEAN


def test_isolated_bad_close_does_not_move_the_reference() -> None:
    validator = DataValidator()
    warm(validator)
    assert validator.check(bar(30, 100.0, 110.0, 100.0, 110.0)).reasons == (
        "extreme_range",
        "extreme_move",
    )
    assert validator.check(flat(31, 100.0)) is CLEAN  # back to normal: not flagged


def test_limits_widen_over_a_quiet_spell() -> None:
    validator = DataValidator()
    warm(validator)
    # 4 % after 100 minutes without a bar: the 2 % limit widens by sqrt(101)
    assert validator.check(flat(130, 104.0)) is CLEAN


def test_real_48_percent_day_is_fair_not_invalid() -> None:
    validator = DataValidator()
    price = 19.0
    for i in range(30):
        c = price * (1.02 if i % 2 else 0.98)
        validator.check(bar(i, price, max(price, c), min(price, c), c, resolution=Resolution.DAILY))
        price = c
    verdict = validator.check(bar(30, 28.6, 29.5, 27.0, 28.38, resolution=Resolution.DAILY))
    assert verdict.level is FAIR
    assert verdict.reasons == ("extreme_move",)


def test_extreme_wick_is_poor_when_it_halves_the_price() -> None:
    validator = DataValidator()
    price = warm(validator)
    verdict = validator.check(bar(30, price, price * 1.001, 0.06, price * 1.0005))
    assert verdict == Verdict(
        POOR,
        ("extreme_range",),
        "low 0.06 is 99.94% below min(open, close) 100 (range limit 3.04%)",
    )
    assert validator.check(flat(31, 100.0)) is CLEAN


def test_moderate_extreme_wick_is_fair() -> None:
    validator = DataValidator()
    warm(validator)
    verdict = validator.check(bar(30, 100.0, 100.2, 90.0, 100.1))
    assert verdict == Verdict(
        FAIR,
        ("extreme_range",),
        "low 90 is 10.00% below min(open, close) 100 (range limit 3.04%)",
    )


# ------------------------------------------------------------------ splits


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (645.57, 92.69, "7:1"),
        (499.23, 127.67, "4:1"),
        (150.69, 100.5, "3:2"),
        (101.0, 50.5, "2:1"),
        (200.0, 10.1, "20:1"),
        (1.13, 19.7, "1:20"),
        (3.0, 29.0, "1:10"),
        (100.0, 75.0, None),  # -25 %: too far from 3:2
        (100.0, 60.0, None),  # between 3:2 and 2:1
        (1.0, 70.0, None),  # beyond 1:50
    ],
)
def test_match_split(old: float, new: float, expected: str | None) -> None:
    assert match_split(math.log(new / old)) == expected


def test_probable_split_on_the_open_resets_the_reference() -> None:
    validator = DataValidator()
    price = warm(validator, price=645.57)
    verdict = validator.check(flat(30, 92.69))
    assert verdict == Verdict(
        FAIR,
        ("probable_split",),
        f"probable corporate action: 7:1 split (open 92.69 vs previous close {price:g})",
    )
    for i in range(31, 40):
        assert validator.check(flat(i, 92.8)) is CLEAN


def test_probable_reverse_split() -> None:
    validator = DataValidator()
    daily = Resolution.DAILY
    for i in range(25):
        p = 1.14 if i % 2 else 1.13
        validator.check(bar(i, p, p + 0.02, p - 0.02, p, resolution=daily))
    verdict = validator.check(bar(25, 19.70, 22.96, 17.55, 18.08, resolution=daily))
    assert verdict == Verdict(
        FAIR,
        ("probable_split",),
        "probable corporate action: 1:20 reverse split (open 19.7 vs previous close 1.13)",
    )
    assert validator.check(bar(26, 17.89, 19.57, 17.65, 18.32, resolution=daily)) is CLEAN


def test_split_inside_the_first_bar() -> None:
    validator = DataValidator()
    verdict = validator.check(bar(0, 645.57, 645.57, 92.23, 92.42, 600.0))
    assert verdict == Verdict(
        POOR,
        ("split_inside_bar",),
        "open 645.57 and close 92.42 differ by a 7:1 split ratio: "
        "the pre-split price leaked into this bar",
    )
    assert validator.check(bar(1, 92.46, 92.46, 92.46, 92.46, 59.0)) is CLEAN


def test_split_inside_a_bar_after_history() -> None:
    validator = DataValidator()
    warm(validator, price=645.57)
    verdict = validator.check(bar(30, 645.57, 645.57, 92.23, 92.42, 600.0))
    assert verdict.reasons == ("split_inside_bar",)
    assert validator.check(bar(31, 92.46, 92.5, 92.4, 92.46)) is CLEAN


def test_crash_whose_open_gaps_is_not_a_split_inside_the_bar() -> None:
    validator = DataValidator()
    warm(validator, price=4.76)
    # opens far from the reference, so the open is not a leaked pre-split price
    verdict = validator.check(bar(30, 1.75, 4.15, 1.25, 3.94))
    assert "split_inside_bar" not in verdict.reasons
    assert verdict.level is FAIR


# ------------------------------------------------------------------ time


def test_future_timestamp_vs_receive_time() -> None:
    validator = DataValidator(ValidationConfig(clock_skew_ns=5_000_000_000))
    late = bar(0, 10.0, 10.2, 9.9, 10.1, ts_recv=T0 - 6_000_000_000)
    assert validator.check(late) == Verdict(
        INVALID,
        ("future_timestamp",),
        f"event time {T0} is 6.000 s after the receive time {T0 - 6_000_000_000}",
    )
    ok = bar(1, 10.1, 10.2, 9.9, 10.1, ts_recv=T0 + NS_PER_MINUTE - 4_000_000_000)
    assert validator.check(ok) is CLEAN


def test_future_timestamp_vs_clock_when_no_receive_time() -> None:
    now = [T0]
    validator = DataValidator(clock=lambda: now[0])
    assert validator.check(bar(0, 10.0, 10.2, 9.9, 10.1)) is CLEAN  # T0 == now
    verdict = validator.check(bar(1, 10.1, 10.2, 9.9, 10.1))  # one minute ahead of the clock
    assert verdict == Verdict(
        INVALID,
        ("future_timestamp",),
        f"event time {T0 + NS_PER_MINUTE} is 60.000 s after the clock {T0}",
    )
    now[0] = T0 + 2 * NS_PER_MINUTE
    assert validator.check(bar(2, 10.1, 10.2, 9.9, 10.1)) is CLEAN


def test_stale_only_when_enabled() -> None:
    recv = T0 + NS_PER_MINUTE + 3_000_000_000  # 3 s after the bar's end
    item = bar(0, 10.0, 10.2, 9.9, 10.1, ts_recv=recv)
    assert DataValidator().check(item) is CLEAN
    strict = DataValidator(ValidationConfig(stale_after_ns=2_000_000_000))
    assert strict.check(item) == Verdict(
        FAIR, ("stale",), "received 3.000 s after the event (limit 2 s)"
    )


# ------------------------------------------------------------------ sequence


def test_duplicate_bars() -> None:
    validator = DataValidator()
    first = bar(0, 10.0, 10.2, 9.9, 10.1)
    assert validator.check(first) is CLEAN
    assert validator.check(bar(0, 10.0, 10.2, 9.9, 10.1)) == Verdict(
        FAIR, ("duplicate_timestamp",), f"repeats the bar at {T0}"
    )
    assert validator.check(bar(0, 10.0, 10.2, 9.9, 10.15)) == Verdict(
        POOR,
        ("duplicate_timestamp",),
        f"differs from the bar already received for {T0} (revision 0) without a new revision",
    )
    assert validator.check(bar(0, 10.0, 10.2, 9.9, 10.12, revision=1)) is CLEAN


def test_duplicate_nan_volume_bars_and_quote_bars() -> None:
    validator = DataValidator()
    mark = bar(0, 10.0, 10.2, 9.9, 10.1, math.nan)
    assert validator.check(mark).reasons == ("nan_volume",)
    assert validator.check(bar(0, 10.0, 10.2, 9.9, 10.1, math.nan)) == Verdict(
        FAIR,
        ("nan_volume", "duplicate_timestamp"),
        f"volume is NaN (unknown); repeats the bar at {T0}",
    )
    assert validator.check(quote(0, 1.1000, 1.1002)) is CLEAN
    assert validator.check(quote(0, 1.1000, 1.1002)).reasons == ("duplicate_timestamp",)
    assert validator.check(quote(0, 1.1000, 1.1003)).level is POOR
    assert validator.check(quote(0, 1.1000, 1.1004, revision=1)) is CLEAN


def test_in_progress_updates_are_not_duplicates_and_not_self_compared() -> None:
    validator = DataValidator()
    warm(validator)
    # a forming bar: every version is judged against the close before it, not its own
    for close in (100.1, 100.3, 100.2):
        forming = bar(30, 100.0, 100.4, 99.9, close, closed=False)
        assert validator.check(forming) is CLEAN
    assert validator.check(bar(30, 100.0, 100.4, 99.9, 100.25)) is CLEAN  # final version
    assert validator.check(bar(30, 100.0, 100.4, 99.9, 100.25)).reasons == ("duplicate_timestamp",)


def test_out_of_order_bars() -> None:
    validator = DataValidator()
    validator.check(bar(5, 10.0, 10.2, 9.9, 10.1))
    assert validator.check(bar(4, 10.0, 10.2, 9.9, 10.1)) == Verdict(
        POOR,
        ("out_of_order",),
        f"open time {T0 + 4 * NS_PER_MINUTE} is before the previous bar's {T0 + 5 * NS_PER_MINUTE}",
    )
    assert validator.check(bar(3, 10.0, 10.2, 9.9, 10.1, backfilled=True)) is CLEAN


def test_series_are_kept_per_feed_symbol_and_resolution() -> None:
    validator = DataValidator()
    validator.check(bar(5, 10.0, 10.2, 9.9, 10.1), feed="a")
    assert validator.check(bar(4, 10.0, 10.2, 9.9, 10.1), feed="b") is CLEAN
    assert validator.check(bar(4, 10.0, 10.2, 9.9, 10.1, symbol="MSFT"), feed="a") is CLEAN
    hourly = bar(0, 10.0, 10.2, 9.9, 10.1, resolution=Resolution.HOUR)
    assert validator.check(hourly, feed="a") is CLEAN


def test_reset_forgets_one_symbol_or_all() -> None:
    validator = DataValidator()
    validator.check(bar(5, 10.0, 10.2, 9.9, 10.1), feed="a")
    validator.check(bar(5, 10.0, 10.2, 9.9, 10.1, symbol="MSFT"), feed="a")
    validator.reset("AAPL")
    assert validator.check(bar(4, 10.0, 10.2, 9.9, 10.1), feed="a") is CLEAN
    assert validator.check(bar(4, 10.0, 10.2, 9.9, 10.1, symbol="MSFT"), feed="a").reasons == (
        "out_of_order",
    )
    validator.reset()
    assert validator.check(bar(3, 10.0, 10.2, 9.9, 10.1, symbol="MSFT"), feed="a") is CLEAN


def test_state_is_bounded_per_series() -> None:
    config = ValidationConfig(window=50)
    validator = DataValidator(config)
    for i in range(5_000):
        validator.check(flat(i, 100.0 + (i % 7) * 0.01))
    (series,) = validator._bars.values()
    assert (len(series.moves), len(series.ranges), series.n) == (50, 50, 50)


def test_rolling_windows_hold_exact_values_and_are_re_summed_every_8_windows() -> None:
    series = Series(4, NS_PER_MINUTE)
    # big and small moves: the running sums drift from the exact ones until the re-sum
    moves = [1e16 if k % 3 == 0 else 1.0 + k / 7 for k in range(32)]
    for k, move in enumerate(moves, 1):
        series.new_bar(k)
        series.record(move, 2 * move)
        exact = math.fsum(moves[max(0, k - 4) : k])
        if k == 31:
            assert series.msum != exact  # drifted
        if k == 32:  # 8 windows of updates: re-summed
            assert (series.msum, series.rsum) == (exact, math.fsum(2 * m for m in moves[28:]))
    assert (list(series.moves), series.idx, series.n) == (moves[28:], 0, 4)
    # a later version of the current bar replaces its value (slot 3: the index wrapped)
    series.record(0.5, 1.5)
    assert (list(series.moves), list(series.ranges), series.n) == (
        [*moves[28:31], 0.5],
        [2 * m for m in moves[28:31]] + [1.5],
        4,
    )


# ------------------------------------------------------------------ ticks and quotes


def test_trades_sharing_a_millisecond_are_clean() -> None:
    validator = DataValidator()
    for price in (169.0, 169.01, 169.0, 168.99, 169.0):
        assert validator.check(trade(10, price)) is CLEAN


def test_out_of_order_tick_is_fair() -> None:
    validator = DataValidator()
    validator.check(trade(10, 169.0))
    assert validator.check(trade(9, 169.0)) == Verdict(
        FAIR,
        ("out_of_order",),
        f"event time {T0 + 9_000_000} is before the previous tick's {T0 + 10_000_000}",
    )


def test_vendor_suspicious_tick_is_poor_and_ignored_as_reference() -> None:
    validator = DataValidator()
    validator.check(trade(0, 169.0))
    verdict = validator.check(trade(1, 165.59, 250_629.0, suspicious=True))
    assert verdict == Verdict(
        POOR,
        ("vendor_suspicious",),
        "the vendor flagged this print (price 165.59, size 250629)",
    )
    assert validator.check(trade(2, 169.01)) is CLEAN


def test_off_market_print_is_an_outlier_and_needs_three_ticks_to_shift() -> None:
    validator = DataValidator()
    for ms in range(30):
        validator.check(trade(ms, 169.0 + (ms % 3) * 0.01))
    verdict = validator.check(trade(30, 165.59, 501_259.0))
    assert verdict == Verdict(
        POOR,
        ("price_outlier",),
        "price 165.59 is 2.03% below the reference 169.02 (limit 1.00%)",
    )
    assert validator.check(trade(31, 165.59, 501_259.0)).reasons == ("price_outlier",)
    assert validator.check(trade(32, 169.02)) is CLEAN  # back to the market: not flagged
    # a real jump: three trades at the new level make it the reference
    assert validator.check(trade(33, 172.0)).reasons == ("price_outlier",)
    assert validator.check(trade(34, 172.01)).reasons == ("price_outlier",)
    assert validator.check(trade(35, 172.0)) is CLEAN
    assert validator.check(trade(36, 172.02)) is CLEAN


def test_quote_spreads() -> None:
    validator = DataValidator()
    assert validator.check(quote(0, 1.1000, 1.1000)) == Verdict(
        GOOD, ("locked_quote",), "bid equals ask (1.1)"
    )
    assert validator.check(quote(1, 1.0000, 1.1000)) == Verdict(
        FAIR,
        ("wide_spread",),
        "spread 0.1 is 9.52% of the mid (bid 1, ask 1.1; limit 5.00%)",
    )
    ticks = DataValidator()
    locked = Tick("X", T0, 0.0, 0.0, TickType.QUOTE, bid_price=10.0, ask_price=10.0)
    assert ticks.check(locked).reasons == ("locked_quote",)


def test_nan_size_is_fair() -> None:
    assert DataValidator().check(trade(0, 10.0, math.nan)) == Verdict(
        FAIR, ("nan_size",), "trade size is NaN (unknown)"
    )


def test_quote_bar_mid_moves_are_checked() -> None:
    validator = DataValidator()
    for i in range(30):
        assert validator.check(quote(i, 1.1000 + (i % 2) * 0.0001, 1.1002)) is CLEAN
    verdict = validator.check(quote(30, 1.2000, 1.2002))
    assert verdict.reasons == ("extreme_move",)
    assert verdict.message.startswith("mid 1.2001 is 9.09% above the reference 1.10015")


# ------------------------------------------------------------------ properties

prices = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)


@st.composite
def consistent_bars(draw: st.DrawFn) -> list[TradeBar]:
    n = draw(st.integers(min_value=1, max_value=40))
    out = []
    for i in range(n):
        o, c, a, b = (draw(prices) for _ in range(4))
        high, low = max(o, c, a, b), min(o, c, a, b)
        volume = draw(st.one_of(st.just(math.nan), st.floats(0.0, 1e12)))
        res = draw(st.sampled_from([Resolution.TICK, Resolution.MINUTE, Resolution.DAILY]))
        step = draw(st.integers(min_value=-2, max_value=3))
        out.append(TradeBar("P", T0 + (i + step) * NS_PER_DAY, o, high, low, c, volume, res))
    return out


@settings(max_examples=300, deadline=None)
@given(consistent_bars())
def test_consistent_positive_bars_are_never_invalid(bars: list[TradeBar]) -> None:
    validator = DataValidator(clock=lambda: T0 + 10**18)
    for b in bars:
        assert validator.check(b).is_valid


@settings(max_examples=200, deadline=None)
@given(prices, prices, prices, prices)
def test_high_below_low_is_always_invalid(a: float, b: float, o: float, c: float) -> None:
    high, low = min(a, b), max(a, b)
    if high == low:
        low = high * 2
    verdict = DataValidator().check(TradeBar("P", T0, o, high, low, c, 1.0))
    assert verdict.level is INVALID
    assert verdict.reasons == ("ohlc_inconsistent",)


@settings(max_examples=200, deadline=None)
@given(st.lists(prices, min_size=1, max_size=60), st.lists(st.booleans(), min_size=60, max_size=60))
def test_positive_trades_are_never_invalid(values: list[float], same_ms: list[bool]) -> None:
    validator = DataValidator(clock=lambda: T0 + 10**18)
    ms = 0
    for price, same in zip(values, same_ms, strict=False):
        ms += 0 if same else 1
        assert validator.check(trade(ms, price)).is_valid


@settings(max_examples=200, deadline=None)
@given(prices, prices)
def test_quote_bar_is_invalid_exactly_when_crossed(bid: float, ask: float) -> None:
    verdict = DataValidator().check(quote(0, bid, ask))
    assert (verdict.level is INVALID) == (bid > ask)


def test_tick_jump_by_a_split_ratio_across_sessions() -> None:
    validator = DataValidator()
    for ms in range(30):
        validator.check(trade(ms, 645.57))
    next_morning = 3 * NS_PER_DAY // 1_000_000
    verdict = validator.check(trade(next_morning, 92.23))
    assert verdict == Verdict(
        FAIR,
        ("probable_split",),
        "probable corporate action: 7:1 split (price 92.23 vs previous 645.57)",
    )
    assert validator.check(trade(next_morning + 1, 92.25)) is CLEAN


def test_quote_bar_out_of_order_and_backfill() -> None:
    validator = DataValidator()
    validator.check(quote(5, 1.1000, 1.1002))
    assert validator.check(quote(4, 1.1000, 1.1002)).reasons == ("out_of_order",)
    assert validator.check(quote(3, 1.1000, 1.1002, backfilled=True)) is CLEAN


def test_level_index_and_score_are_each_levels_own() -> None:
    from lean_data.quality.levels import level_index, level_score

    for index, level in enumerate(DataQualityLevel):
        assert level_index(level) == index
        assert level_score(level) == level.value
        assert Verdict(level).score == level.value
    assert CLEAN.score == 1.0


def test_a_levels_value_is_its_score_read_from_the_member_itself() -> None:
    """``level.value`` is each level's score, kept in the member's own attributes (one dict
    lookup per read, not Enum's two Python-level calls), and the levels still pickle and
    copy as the singletons they are."""
    import copy
    import pickle

    from lean_data.quality.levels import DataQualityLevel

    scores = {"EXCELLENT": 1.0, "GOOD": 0.8, "FAIR": 0.6, "POOR": 0.3, "INVALID": 0.0}
    for level in DataQualityLevel:
        assert level.value == scores[level.name] == level._value_
        assert vars(level)["value"] == level.value
        assert pickle.loads(pickle.dumps(level)) is level
        assert copy.deepcopy(level) is level
    assert DataQualityLevel(0.6) is DataQualityLevel.FAIR
