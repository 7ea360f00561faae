"""Validate market data and grade its quality: :class:`DataValidator`.

The validator judges every bar, quote and trade the engine receives and returns a
:class:`~lean_data.quality.Verdict`: a :class:`~lean_data.quality.DataQualityLevel`, short
reason codes and a human-readable message that names the values. Clean items get the shared
:data:`~lean_data.quality.CLEAN` verdict (EXCELLENT, no reasons): no verdict, list or
string is built for them, and a clean bar costs about 1.5 us.

Only the physically impossible is INVALID. Everything else that looks wrong but could be
real keeps flowing with a lower level and a reason, because real markets do surprising
things: many trades share a millisecond, stocks gain 48 % in a day, bitcoin lost 29 % in an
hour on 2013-10-02, and raw (unadjusted) series jump 7:1 on a split day.

State is kept per series, keyed by (feed, symbol, item kind, resolution) for bars and quote
bars and by (feed, symbol, tick type) for ticks, in fixed-size rolling windows: O(1) memory
per series. An INVALID item never changes the state.

Reason codes and levels
-----------------------

Impossible (INVALID, not delivered):

=======================  ===========================================================
``ohlc_inconsistent``    high < max(open, close), low > min(open, close) or high < low
                         (for quote bars, on either side)
``non_positive_price``   a price (or bid/ask) is zero or negative
``non_finite_price``     a price is NaN or infinite
``negative_volume``      a bar's volume is negative
``non_finite_volume``    a bar's volume is infinite
``negative_size``        a trade size or quote size is negative or infinite
``crossed_quote``        bid > ask (closing bid/ask of a quote bar, or a quote tick)
=======================  ===========================================================

Suspicious (delivered with the level shown):

========================  =========  ======================================================
``nan_volume``            FAIR       volume is NaN (unknown), e.g. mark-price candles
``nan_size``              FAIR       a trade or quote size is NaN (unknown)
``extreme_move``          FAIR       close-to-close (bar) or mid (quote bar) move beyond the
                                     series' limit (see *Move limits*)
``price_outlier``         POOR       a trade or quote tick beyond the limit vs. the last
                                     accepted price (a probable bad print)
``extreme_range``         FAIR/POOR  high/low range beyond the range limit; POOR when the
                                     largest wick alone halves or doubles the price (a
                                     bad print such as a low of 0.06 in a 1 173 market)
``probable_split``        FAIR       an extreme close->open gap (or tick-to-tick jump) that
                                     becomes ordinary once a split ratio is undone; forward
                                     3:2, 2, 3, 4, 5, 7, 8, 10, 20 for falls, reverse 1:2 ..
                                     1:50 (2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50)
                                     for rises. The price reference is reset.
``split_inside_bar``      POOR       open and close of one bar differ by a split ratio
                                     while the open is still at the reference price (or
                                     there is no reference yet): the pre-split price leaked
                                     into a post-split bar. The reference is reset.
``future_timestamp``      POOR       event time (a bar's open time) later than the
                                     receive time (or, when the receive time is 0, the
                                     wall clock) by more than ``clock_skew_ns``
``stale``                 FAIR       received more than ``stale_after_ns`` after the event
                                     (for bars: after the bar's end); only when enabled and
                                     the receive time is known
``duplicate_timestamp``   FAIR/POOR  a bar with the same open time as the previous bar of
                                     its series, neither a revision (``revision``
                                     increased) nor an update of an in-progress bar: FAIR
                                     when identical, POOR when the values differ
``out_of_order``          POOR/FAIR  event time earlier than the previous item of the
                                     series (bars POOR unless ``backfilled``; ticks FAIR)
``crossed_quote``         INVALID    see above
``locked_quote``          GOOD       bid == ask (common and real on fragmented markets);
                                     quote bars are judged on their closing bid and ask
``wide_spread``           FAIR       (ask - bid) / mid > ``wide_spread_ratio``
``range_without_volume``  FAIR       high > low with volume 0, in a series that has shown
                                     volume before (an index, always volume 0, is never
                                     flagged)
``vendor_suspicious``     POOR       the vendor flagged the trade (``Tick.suspicious``)
========================  =========  ======================================================

Equal timestamps of ticks are never a fault (many trades share a millisecond).

Move limits
-----------

A move is the absolute log return against the series' price reference (the last accepted
close, mid or trade price). With at least ``min_history`` observations the limit is
``extreme_move_sigma`` x sigma, where sigma = 1.2533 x the mean absolute log return over
the last ``window`` observations (the normal-distribution factor turning a mean absolute
deviation into a standard deviation); every observation enters the window winsorized at the
limit in force, so a bad print cannot blow the scale up. The limit never goes below a floor
that depends on the resolution, and before ``min_history`` observations a hard limit is
used instead:

==================  ==========  =====
resolution          hard limit  floor
==================  ==========  =====
tick, up to 1 s     0.10        0.01
up to 1 minute      0.15        0.02
up to 1 hour        0.25        0.05
longer              0.50        0.10
==================  ==========  =====

(log-return units: 0.50 is a factor of e^0.5 = 1.65, i.e. +65 % or -39 %). When more time
than one period (one minute for ticks) has passed since the reference, the limit grows with
the square root of the elapsed periods, so session and weekend gaps are not flagged as
moves. Ranges (log(high / low)) use the same scheme with their own rolling mean and
``range_multiple`` (a keyword argument of :class:`DataValidator`).

A flagged price does not move the reference, so the item after an isolated bad print is
not flagged. When the flagged level is confirmed (by the next bar, or by the next two ticks
within the limit of it) it is a level shift: the reference moves there and the confirming
item is not flagged. A new version of a bar (same open time: an in-progress update or a
revision) is judged against the state from before that bar's first version.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Final

from lean_data.config import ValidationConfig
from lean_data.models import (
    NS_PER_HOUR,
    NS_PER_MINUTE,
    NS_PER_SECOND,
    MarketData,
    QuoteBar,
    Tick,
    TickType,
    TradeBar,
)
from lean_data.quality import CLEAN, DataQualityLevel, Verdict
from lean_data.quality_tracker import QualityTracker

__all__ = ["FORWARD_SPLITS", "REVERSE_SPLITS", "DataValidator", "QualityTracker", "match_split"]

_INF: Final = math.inf
_LOG: Final = math.log
_LOG_TWO: Final = math.log(2.0)
_SIGMA_PER_MEAN_ABS: Final = 1.2533  # sqrt(pi / 2): sigma of a normal / its mean |x|
_TICK_PERIOD: Final = NS_PER_MINUTE  # time unit for widening tick limits over quiet spells
_NO_TS: Final = -(2**63)

_GOOD: Final = DataQualityLevel.GOOD
_FAIR: Final = DataQualityLevel.FAIR
_POOR: Final = DataQualityLevel.POOR
_INVALID: Final = DataQualityLevel.INVALID

FORWARD_SPLITS: Final = (1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 8.0, 10.0, 20.0)
"""Split ratios (new shares per old share) looked for when a price falls."""

REVERSE_SPLITS: Final = (2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50)
"""Reverse-split ratios (old shares per new share) looked for when a price rises."""

Issue = tuple[str, DataQualityLevel, str]
Issues = list[Issue] | None


def _tier(period_ns: int) -> tuple[float, float]:
    """Return (hard limit, floor) in log-return units for a resolution period."""
    if period_ns <= NS_PER_SECOND:
        return 0.10, 0.01
    if period_ns <= NS_PER_MINUTE:
        return 0.15, 0.02
    if period_ns <= NS_PER_HOUR:
        return 0.25, 0.05
    return 0.50, 0.10


def match_split(log_move: float, tolerance: float = 0.2) -> str | None:
    """Return the split that explains a price jump (``"7:1"``, ``"3:2"``, ``"1:20"``), or None.

    Args:
        log_move: log(new price / old price); falls are matched against
            :data:`FORWARD_SPLITS`, rises against :data:`REVERSE_SPLITS`.
        tolerance: the largest log residual left once the ratio is undone; for small ratios
            it shrinks to a fifth of log(ratio), so a 25 % fall is not called a 3:2 split.
    """
    size = abs(log_move)
    best = 0.0
    best_residual = _INF
    for ratio in FORWARD_SPLITS if log_move < 0 else REVERSE_SPLITS:
        log_ratio = _LOG(ratio)
        residual = abs(size - log_ratio)
        if residual < best_residual and residual <= min(tolerance, 0.2 * log_ratio):
            best, best_residual = ratio, residual
    if best == 0.0:
        return None
    if log_move > 0:
        return f"1:{best:g}"
    return "3:2" if best == 1.5 else f"{best:g}:1"


class _Series:
    """Rolling state of one series: price reference, last timestamp, windows of moves."""

    __slots__ = (
        "base_confirm",
        "base_pending",
        "base_ref",
        "base_ref_ts",
        "closed",
        "confirm",
        "floor",
        "hard",
        "has_volume",
        "idx",
        "last",
        "moves",
        "msum",
        "n",
        "needed",
        "pending",
        "period",
        "pushed",
        "ranges",
        "ref",
        "ref_ts",
        "revision",
        "rsum",
        "ts",
        "updates",
    )

    def __init__(self, window: int, period_ns: int) -> None:
        self.ts = _NO_TS
        self.ref = 0.0  # price reference: the last accepted price (0: none yet)
        self.ref_ts = 0
        self.pending = 0.0  # a flagged new level awaiting confirmation (0: none)
        self.confirm = 0  # how many items have been seen at the pending level
        self.needed = 2 if period_ns else 3  # items at a new level that make it a shift
        self.base_ref = 0.0  # the reference state from before the current bar
        self.base_ref_ts = 0
        self.base_pending = 0.0
        self.base_confirm = 0
        self.closed = True
        self.revision = 0
        self.last: MarketData | None = None
        self.has_volume = False
        self.period = period_ns or _TICK_PERIOD
        self.hard, self.floor = _tier(period_ns)
        self.moves = [0.0] * window
        self.ranges = [0.0] * window
        self.msum = 0.0
        self.rsum = 0.0
        self.n = 0
        self.idx = 0
        self.pushed = False  # whether the current bar already put a value in the windows
        self.updates = 0

    def accept(self, price: float, ts: int) -> None:
        """Make ``price`` the reference and drop any pending level."""
        self.ref = price
        self.ref_ts = ts
        self.pending = 0.0
        self.confirm = 0

    def new_bar(self, ts: int) -> None:
        """Start a new bar: remember the state its later versions are judged against."""
        self.ts = ts
        self.pushed = False
        self.base_ref = self.ref
        self.base_ref_ts = self.ref_ts
        self.base_pending = self.pending
        self.base_confirm = self.confirm

    def same_bar(self) -> None:
        """Go back to the state from before the current bar's first version."""
        self.ref = self.base_ref
        self.ref_ts = self.base_ref_ts
        self.pending = self.base_pending
        self.confirm = self.base_confirm

    def record(self, move: float, rng: float) -> None:
        """Put an observation in the windows (replacing the current bar's earlier one)."""
        i = self.idx
        if self.pushed:
            i = i - 1 if i else len(self.moves) - 1
        else:
            self.idx = i + 1 if i + 1 < len(self.moves) else 0
            self.pushed = True
            if self.n < len(self.moves):
                self.n += 1
        self.msum += move - self.moves[i]
        self.rsum += rng - self.ranges[i]
        self.moves[i] = move
        self.ranges[i] = rng
        self.updates += 1
        if self.updates >= 8 * len(self.moves):  # re-sum now and then: no float drift
            self.updates = 0
            self.msum = math.fsum(self.moves)
            self.rsum = math.fsum(self.ranges)


def _verdict(issues: list[Issue]) -> Verdict:
    level = DataQualityLevel.EXCELLENT
    for _, lvl, _ in issues:
        if lvl.value < level.value:
            level = lvl
    reasons = tuple(reason for reason, _, _ in issues)
    return Verdict(level, reasons, "; ".join(message for _, _, message in issues))


def _add(issues: Issues, code: str, level: DataQualityLevel, message: str) -> list[Issue]:
    if issues is None:
        return [(code, level, message)]
    issues.append((code, level, message))
    return issues


class DataValidator:
    """Judge bars, quotes and trades against physics and each series' recent behaviour.

    Args:
        config: thresholds; defaults to ``ValidationConfig()``.
        clock: returns the wall-clock time in ns (default ``time.time_ns``); used only to
            catch event times in the future when an item carries no receive time.
        range_multiple: a bar's log(high / low) beyond this many rolling mean ranges (or,
            before ``min_history`` bars, the hard limit) is an extreme range.
        split_tolerance: how far (log units) a jump may be from a split ratio to be
            called a probable split (see :func:`match_split`).
    """

    def __init__(
        self,
        config: ValidationConfig | None = None,
        *,
        clock: Callable[[], int] | None = None,
        range_multiple: float = 15.0,
        split_tolerance: float = 0.2,
    ) -> None:
        self.config = config if config is not None else ValidationConfig()
        self._clock = clock if clock is not None else time.time_ns
        self._skew = self.config.clock_skew_ns
        self._stale = self.config.stale_after_ns
        self._wide = self.config.wide_spread_ratio
        self._move_mult = self.config.extreme_move_sigma * _SIGMA_PER_MEAN_ABS
        self._range_mult = range_multiple
        self._split_tol = split_tolerance
        self._min_history = max(1, self.config.min_history)
        self._window = max(self._min_history, self.config.window)
        self._now_limit = _NO_TS  # cached wall clock + skew: nothing at or below is future
        self._bars: dict[tuple[str, str, int], _Series] = {}
        self._quotes: dict[tuple[str, str, int], _Series] = {}
        self._ticks: dict[tuple[str, str, TickType], _Series] = {}

    def check(self, item: MarketData, *, feed: str = "") -> Verdict:
        """Judge one item and update its series' state (an INVALID item leaves it alone).

        Args:
            item: a TradeBar, QuoteBar or Tick.
            feed: the feed the item came from; series of different feeds are kept apart.

        Returns:
            The shared ``CLEAN`` verdict for a clean item, else a Verdict with reasons.

        Raises:
            TypeError: ``item`` is not a TradeBar, QuoteBar or Tick.
        """
        kind = type(item)
        if kind is TradeBar:
            return self._check_bar(item, feed)  # type: ignore[arg-type]  # checked just above
        if kind is Tick:
            return self._check_tick(item, feed)  # type: ignore[arg-type]  # checked just above
        if kind is QuoteBar:
            return self._check_quote_bar(item, feed)  # type: ignore[arg-type]  # checked above
        raise TypeError(f"expected a TradeBar, QuoteBar or Tick, got {kind.__name__}")

    def validate_trade_bar(self, bar: TradeBar) -> tuple[bool, DataQualityLevel, str]:
        """Judge a trade bar (stateful, feed ``""``); return (is_valid, level, message)."""
        verdict = self._check_bar(bar, "")
        return verdict.is_valid, verdict.level, verdict.message

    def validate_quote_bar(self, quote: QuoteBar) -> tuple[bool, DataQualityLevel, str]:
        """Judge a quote bar (stateful, feed ``""``); return (is_valid, level, message)."""
        verdict = self._check_quote_bar(quote, "")
        return verdict.is_valid, verdict.level, verdict.message

    def validate_tick(self, tick: Tick) -> tuple[bool, DataQualityLevel, str]:
        """Judge a tick (stateful, feed ``""``); return (is_valid, level, message)."""
        verdict = self._check_tick(tick, "")
        return verdict.is_valid, verdict.level, verdict.message

    def reset(self, symbol: str | None = None) -> None:
        """Forget the state of every series, or of ``symbol``'s series on every feed."""
        for table in (self._bars, self._quotes, self._ticks):
            _forget(table, symbol)

    # ---------------------------------------------------------------- trade bars

    def _check_bar(self, bar: TradeBar, feed: str) -> Verdict:
        o, h, low, c = bar.open, bar.high, bar.low, bar.close
        if not (0.0 < low <= o <= h < _INF and low <= c <= h):
            bad = _ohlc_problem("", o, h, low, c)
            if bad is not None:
                return Verdict(_INVALID, (bad[0],), bad[1])
        v = bar.volume
        issues: Issues = None
        if not 0.0 <= v < _INF:
            if v == v:
                code = "negative_volume" if v < 0.0 else "non_finite_volume"
                return Verdict(_INVALID, (code,), f"volume {_fmt(v)} is impossible")
            issues = [("nan_volume", _FAIR, "volume is NaN (unknown)")]
        period = bar.resolution.nanos
        issues = self._timing(bar.ts_event, bar.ts_recv, period, issues)
        key = (feed, bar.symbol, period)
        st = self._bars.get(key)
        if st is None:
            st = self._bars[key] = _Series(self._window, period)
        if v > 0.0:
            st.has_volume = True
        elif v == 0.0 and h > low and st.has_volume:
            msg = f"range {_fmt(low)}..{_fmt(h)} with volume 0 in a series that has traded"
            issues = _add(issues, "range_without_volume", _FAIR, msg)
        ts = bar.ts_event
        if ts < st.ts:
            return _out_of_order(ts, st.ts, bar.backfilled, issues)
        if ts == st.ts:
            issues = _repeat(st, bar, issues)
            st.same_bar()
        else:
            st.new_bar(ts)
        st.closed, st.revision, st.last = bar.closed, bar.revision, bar
        issues = self._bar_prices(st, ts, o, h, low, c, issues)
        return CLEAN if issues is None else _verdict(issues)

    def _bar_prices(
        self, st: _Series, ts: int, o: float, h: float, low: float, c: float, issues: Issues
    ) -> Issues:
        """Check the bar's range, then its close against the series' reference."""
        rng = _LOG(h / low)
        rlim = self._range_limit(st)
        lim = self._base_limit(st)
        if rng > rlim:
            split = self._split_inside(st, o, c, lim)
            if split is not None:
                st.accept(c, ts)
                msg = (
                    f"open {_fmt(o)} and close {_fmt(c)} differ by a {split} split ratio: "
                    "the pre-split price leaked into this bar"
                )
                return _add(issues, "split_inside_bar", _POOR, msg)
            issues = _add(issues, *_range_issue(o, h, low, c, rlim))
            rng = rlim
        ref = st.ref
        if ref == 0.0:
            st.accept(c, ts)
            st.record(0.0, rng)
            return issues
        lim = _widened(st, ts, lim)
        move = _LOG(c / ref)
        if -lim <= move <= lim:
            st.accept(c, ts)
            st.record(-move if move < 0.0 else move, rng)
            return issues
        return self._extreme_close(st, ts, o, c, (move, lim, rng), issues)

    def _extreme_close(
        self,
        st: _Series,
        ts: int,
        o: float,
        c: float,
        sizes: tuple[float, float, float],
        issues: Issues,
    ) -> Issues:
        """Explain a close beyond the limit: a split on the open, a level shift, or a move.

        ``sizes`` is (log move of the close vs the reference, the limit, the bar's range).
        """
        move, lim, rng = sizes
        ref = st.ref
        gap = _LOG(o / ref)
        split = match_split(gap, self._split_tol) if abs(gap) > lim else None
        if split is not None:
            st.accept(c, ts)
            msg = f"{_split_words(split)} (open {_fmt(o)} vs previous close {_fmt(ref)})"
            return _add(issues, "probable_split", _FAIR, msg)
        if _level_shift(st, c, ts, lim, rng):
            return issues
        msg = f"close {_fmt(c)} is {_pct(move)} {_dir(move)} the reference close {_fmt(ref)}"
        return _add(issues, "extreme_move", _FAIR, f"{msg} (limit {_pct(lim, move)})")

    def _split_inside(self, st: _Series, o: float, c: float, lim: float) -> str | None:
        """Return the split ratio when the open is the old price and the close the new one.

        The open must still be at the reference (it is the stale pre-split price) or there
        is no reference yet, and open -> close must be extreme and match a split ratio.
        """
        body = _LOG(c / o)
        if -lim <= body <= lim:
            return None
        if st.ref != 0.0 and abs(_LOG(o / st.ref)) > lim:
            return None
        return match_split(body, self._split_tol)

    # ---------------------------------------------------------------- quote bars

    def _check_quote_bar(self, q: QuoteBar, feed: str) -> Verdict:
        for side, o, h, low, c in (
            ("bid_", q.bid_open, q.bid_high, q.bid_low, q.bid_close),
            ("ask_", q.ask_open, q.ask_high, q.ask_low, q.ask_close),
        ):
            if not (0.0 < low <= o <= h < _INF and low <= c <= h):
                bad = _ohlc_problem(side, o, h, low, c)
                if bad is not None:
                    return Verdict(_INVALID, (bad[0],), bad[1])
        bad_size = _bad_size(q.bid_size, q.ask_size, "quote size")
        if bad_size is not None and bad_size[1] is _INVALID:
            return _verdict([bad_size])
        bid, ask = q.bid_close, q.ask_close
        if bid > ask:
            msg = f"bid_close {_fmt(bid)} is above ask_close {_fmt(ask)}"
            return Verdict(_INVALID, ("crossed_quote",), msg)
        issues = None if bad_size is None else [bad_size]
        issues = self._spread(bid, ask, issues)
        period = q.resolution.nanos
        ts = q.ts_event
        issues = self._timing(ts, q.ts_recv, period, issues)
        key = (feed, q.symbol, period)
        st = self._quotes.get(key)
        if st is None:
            st = self._quotes[key] = _Series(self._window, period)
        if ts < st.ts:
            return _out_of_order(ts, st.ts, q.backfilled, issues)
        if ts == st.ts:
            issues = _repeat(st, q, issues)
            st.same_bar()
        else:
            st.new_bar(ts)
        st.closed, st.revision, st.last = q.closed, q.revision, q
        issues = self._price_move(st, ts, (bid + ask) * 0.5, "mid", "extreme_move", issues)
        return CLEAN if issues is None else _verdict(issues)

    # ---------------------------------------------------------------- ticks

    def _check_tick(self, t: Tick, feed: str) -> Verdict:
        if t.tick_type is TickType.TRADE:
            price = t.price
            if not 0.0 < price < _INF:
                return _bad_price("price", price)
            bad_size = _bad_size(t.size, 0.0, "trade size")
            issues: Issues = None
        else:
            bid, ask = t.bid_price, t.ask_price
            if not 0.0 < bid < _INF:
                return _bad_price("bid", bid)
            if not 0.0 < ask < _INF:
                return _bad_price("ask", ask)
            if bid > ask:
                return Verdict(
                    _INVALID, ("crossed_quote",), f"bid {_fmt(bid)} is above ask {_fmt(ask)}"
                )
            bad_size = _bad_size(t.bid_size, t.ask_size, "quote size")
            issues = self._spread(bid, ask, None)
            price = (bid + ask) * 0.5
        if bad_size is not None:
            if bad_size[1] is _INVALID:
                return _verdict([bad_size])
            issues = _add(issues, *bad_size)
        return self._tick_series(t, feed, price, issues)

    def _tick_series(self, t: Tick, feed: str, price: float, issues: Issues) -> Verdict:
        ts = t.ts_event
        issues = self._timing(ts, t.ts_recv, 0, issues)
        key = (feed, t.symbol, t.tick_type)
        st = self._ticks.get(key)
        if st is None:
            st = self._ticks[key] = _Series(self._window, 0)
        if ts < st.ts:
            msg = f"event time {ts} is before the previous tick's {st.ts}"
            issues = _add(issues, "out_of_order", _FAIR, msg)
        else:
            st.ts = ts
        if t.suspicious:
            msg = f"the vendor flagged this print (price {_fmt(t.price)}, size {_fmt(t.size)})"
            return _verdict(_add(issues, "vendor_suspicious", _POOR, msg))
        st.pushed = False
        what = "price" if t.tick_type is TickType.TRADE else "mid"
        issues = self._price_move(st, ts, price, what, "price_outlier", issues)
        return CLEAN if issues is None else _verdict(issues)

    # ---------------------------------------------------------------- shared checks

    def _price_move(
        self, st: _Series, ts: int, price: float, what: str, code: str, issues: Issues
    ) -> Issues:
        """Check one price (a trade, a mid) against the series' reference."""
        ref = st.ref
        if ref == 0.0:
            st.accept(price, ts)
            st.record(0.0, 0.0)
            return issues
        lim = _widened(st, ts, self._base_limit(st))
        move = _LOG(price / ref)
        if -lim <= move <= lim:
            st.accept(price, ts)
            st.record(-move if move < 0.0 else move, 0.0)
            return issues
        split = match_split(move, self._split_tol)
        if split is not None:
            st.accept(price, ts)
            msg = f"{_split_words(split)} ({what} {_fmt(price)} vs previous {_fmt(ref)})"
            return _add(issues, "probable_split", _FAIR, msg)
        if _level_shift(st, price, ts, lim, 0.0):
            return issues
        level = _POOR if code == "price_outlier" else _FAIR
        msg = f"{what} {_fmt(price)} is {_pct(move)} {_dir(move)} the reference {_fmt(ref)}"
        return _add(issues, code, level, f"{msg} (limit {_pct(lim, move)})")

    def _base_limit(self, st: _Series) -> float:
        """Return the move limit over one period: rolling and floored, or the hard limit."""
        n = st.n
        if n < self._min_history:
            return st.hard
        lim = self._move_mult * st.msum / n
        return lim if lim > st.floor else st.floor

    def _range_limit(self, st: _Series) -> float:
        n = st.n
        if n < self._min_history:
            return st.hard
        lim = self._range_mult * st.rsum / n
        return lim if lim > st.floor else st.floor

    def _timing(self, ts: int, recv: int, period: int, issues: Issues) -> Issues:
        """Flag event times in the future and (when enabled) stale items."""
        if recv:
            if ts - recv > self._skew:
                ahead = (ts - recv) / 1e9
                msg = f"event time {ts} is {ahead:.3f} s after the receive time {recv}"
                return _add(issues, "future_timestamp", _POOR, msg)
            lag = recv - ts - period
            if self._stale and lag > self._stale:
                msg = f"received {lag / 1e9:.3f} s after the event (limit {self._stale / 1e9:g} s)"
                return _add(issues, "stale", _FAIR, msg)
        elif ts > self._now_limit:
            self._now_limit = self._clock() + self._skew
            if ts > self._now_limit:
                ahead = (ts - self._now_limit + self._skew) / 1e9
                msg = f"event time {ts} is {ahead:.3f} s ahead of the clock"
                return _add(issues, "future_timestamp", _POOR, msg)
        return issues

    def _spread(self, bid: float, ask: float, issues: Issues) -> Issues:
        if bid == ask:
            return _add(issues, "locked_quote", _GOOD, f"bid equals ask ({_fmt(bid)})")
        ratio = (ask - bid) * 2.0 / (ask + bid)
        if ratio > self._wide:
            msg = (
                f"spread {_fmt(ask - bid)} is {ratio * 100:.2f}% of the mid (bid {_fmt(bid)},"
                f" ask {_fmt(ask)}; limit {self._wide * 100:.2f}%)"
            )
            return _add(issues, "wide_spread", _FAIR, msg)
        return issues


# -------------------------------------------------------------------- helpers


def _forget(table: dict[Any, _Series], symbol: str | None) -> None:
    if symbol is None:
        table.clear()
        return
    for key in [key for key in table if key[1] == symbol]:
        del table[key]


def _widened(st: _Series, ts: int, lim: float) -> float:
    """Widen ``lim`` by sqrt(elapsed periods) when the reference is older than a period."""
    elapsed = ts - st.ref_ts
    if elapsed > st.period:
        return lim * math.sqrt(elapsed / st.period)
    return lim


def _level_shift(st: _Series, price: float, ts: int, lim: float, rng: float) -> bool:
    """Track a flagged level; return True (and accept it) once enough items confirm it."""
    pending = st.pending
    if pending > 0.0:
        move = abs(_LOG(price / pending))
        if move <= lim:
            st.confirm += 1
            if st.confirm >= st.needed:
                st.accept(price, ts)
                st.record(move, rng)
                return True
            st.record(lim, rng)
            return False
    st.pending = price
    st.confirm = 1
    st.record(lim, rng)
    return False


def _repeat(st: _Series, bar: TradeBar | QuoteBar, issues: Issues) -> Issues:
    """Judge a bar with the open time of the previous one: an update, or a duplicate."""
    if bar.revision > st.revision or not st.closed:
        return issues
    if _values(st.last) == _values(bar):
        return _add(issues, "duplicate_timestamp", _FAIR, f"repeats the bar at {bar.ts_event}")
    msg = (
        f"differs from the bar already received for {bar.ts_event} (revision "
        f"{bar.revision}) without a new revision"
    )
    return _add(issues, "duplicate_timestamp", _POOR, msg)


def _values(item: MarketData | None) -> tuple[object, ...]:
    """Return a bar's prices and sizes (NaN as None, so that NaN equals NaN)."""
    if isinstance(item, TradeBar):
        values: tuple[float, ...] = (item.open, item.high, item.low, item.close, item.volume)
    elif isinstance(item, QuoteBar):
        values = (
            item.bid_open, item.bid_high, item.bid_low, item.bid_close, item.bid_size,
            item.ask_open, item.ask_high, item.ask_low, item.ask_close, item.ask_size,
        )  # fmt: skip
    else:
        return ()
    return tuple(None if v != v else v for v in values)


def _out_of_order(ts: int, previous: int, backfilled: bool, issues: Issues) -> Verdict:
    if not backfilled:
        msg = f"open time {ts} is before the previous bar's {previous}"
        issues = _add(issues, "out_of_order", _POOR, msg)
    return CLEAN if issues is None else _verdict(issues)


def _ohlc_problem(side: str, o: float, h: float, low: float, c: float) -> tuple[str, str] | None:
    """Return (reason, message) for impossible OHLC values, or None when they are fine."""
    named = tuple(
        zip(
            (f"{side}open", f"{side}high", f"{side}low", f"{side}close"),
            (o, h, low, c),
            strict=True,
        )
    )
    for name, value in named:
        if not math.isfinite(value):
            return "non_finite_price", f"{name} {_fmt(value)} is not a finite price"
    for name, value in named:
        if value <= 0.0:
            return "non_positive_price", f"{name} {_fmt(value)} is not positive"
    if h < low:
        return "ohlc_inconsistent", f"{side}high {_fmt(h)} is below {side}low {_fmt(low)}"
    top, bottom = max(o, c), min(o, c)
    if h < top:
        return "ohlc_inconsistent", (
            f"{side}high {_fmt(h)} is below max({side}open, {side}close) {_fmt(top)}"
        )
    if low > bottom:
        return "ohlc_inconsistent", (
            f"{side}low {_fmt(low)} is above min({side}open, {side}close) {_fmt(bottom)}"
        )
    return None


def _bad_price(name: str, value: float) -> Verdict:
    code = "non_positive_price" if value <= 0.0 else "non_finite_price"
    return Verdict(_INVALID, (code,), f"{name} {_fmt(value)} is impossible")


def _bad_size(first: float, second: float, what: str) -> Issue | None:
    """Return an INVALID issue for a negative or infinite size, a FAIR one for NaN."""
    for size in (first, second):
        if not 0.0 <= size < _INF:
            if size != size:
                return "nan_size", _FAIR, f"{what} is NaN (unknown)"
            return "negative_size", _INVALID, f"{what} {_fmt(size)} is impossible"
    return None


def _range_issue(o: float, h: float, low: float, c: float, lim: float) -> Issue:
    """Describe an extreme range by its largest part: upper wick, lower wick or body."""
    top, bottom = max(o, c), min(o, c)
    up, down, body = _LOG(h / top), _LOG(bottom / low), _LOG(top / bottom)
    level = _POOR if max(up, down) > _LOG_TWO else _FAIR
    if up >= down and up >= body:
        msg = f"high {_fmt(h)} is {_pct(up)} above max(open, close) {_fmt(top)}"
    elif down >= body:
        msg = f"low {_fmt(low)} is {_pct(-down)} below min(open, close) {_fmt(bottom)}"
    else:
        msg = f"open {_fmt(o)} and close {_fmt(c)} are {_pct(body)} apart"
    return "extreme_range", level, f"{msg} (range limit {_pct(lim)})"


def _split_words(split: str) -> str:
    kind = "reverse split" if split.startswith("1:") else "split"
    return f"probable corporate action: {split} {kind}"


def _fmt(value: float) -> str:
    return f"{value:.10g}"


def _pct(log_move: float, sign: float = 1.0) -> str:
    """Format a log move as a percentage change; ``sign`` < 0 reads it as a fall."""
    return f"{abs(math.expm1(log_move if sign >= 0 else -log_move)) * 100:.2f}%"


def _dir(move: float) -> str:
    return "above" if move > 0 else "below"
