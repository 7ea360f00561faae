"""The checks behind :class:`lean_data.quality.validator.DataValidator`, per item kind.

:class:`ValidatorCore` holds the thresholds and the per-series tables and judges trade
bars, quote bars and ticks; :class:`~lean_data.quality.validator.DataValidator` adds the public
entry points on top of it. Rules and messages are in :mod:`lean_data.quality.rules`,
the rolling state in :mod:`lean_data.quality.state`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Final

from mypy_extensions import mypyc_attr

from lean_data.config import ValidationConfig
from lean_data.errors import ConfigError
from lean_data.models import QuoteBar, Resolution, Tick, TickType, TradeBar
from lean_data.quality.levels import CLEAN, Verdict
from lean_data.quality.rules import (
    FAIR,
    GOOD,
    POOR,
    SIGMA_PER_MEAN_ABS,
    Issues,
    add,
    direction,
    fmt,
    match_split,
    out_of_order,
    pct,
    range_issue,
    size_issue,
    split_words,
    verdict,
)
from lean_data.quality.screen import kind_of
from lean_data.quality.state import Series, level_shift, repeat, widened
from lean_data.slots import (
    BAR,
    BAR_BACKFILLED,
    BAR_CLOSE,
    BAR_CLOSED,
    BAR_HIGH,
    BAR_LOW,
    BAR_OPEN,
    BAR_RESOLUTION,
    BAR_REVISION,
    BAR_TS_EVENT,
    BAR_TS_RECV,
    BAR_VOLUME,
    TICK,
    TICK_ASK_PRICE,
    TICK_ASK_SIZE,
    TICK_BID_PRICE,
    TICK_BID_SIZE,
    TICK_PRICE,
    TICK_SIZE,
    TICK_SUSPICIOUS,
    TICK_TS_EVENT,
    TICK_TS_RECV,
    TICK_TYPE,
)

# compiled, a member of an enum defined in a pure module is an attribute lookup through
# its metaclass (~60 ns); a Final module constant is a C static
_TRADE: Final = TickType.TRADE
_BAR: Final = BAR  # a C static, not a module-dict lookup per use (see quality/screen.py)
_TICK_FIELDS: Final = TICK


def _number(name: str, value: float, floor: float, floor_ok: bool) -> float:
    """Return ``value`` when it is a finite number above ``floor`` (or at it, when
    ``floor_ok``); TypeError for no number (the compiled build refuses one at the call),
    ConfigError for one out of range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (floor <= value if floor_ok else floor < value) or not math.isfinite(value):
        bound = f">= {floor}" if floor_ok else f"> {floor}"
        raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


@mypyc_attr(allow_interpreted_subclasses=True)  # so that DataValidator can
class ValidatorCore:
    """Thresholds, per-series tables and the checks behind each item kind.

    The arguments are documented on :class:`~lean_data.quality.validator.DataValidator`.
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
        # the int object as it is (compiled, an int attribute is boxed at each use): the
        # screen hands it to its C check
        self._skew: Any = self.config.clock_skew_ns
        self._stale = self.config.stale_after_ns
        self._wide = self.config.wide_spread_ratio
        self._move_mult = self.config.extreme_move_sigma * SIGMA_PER_MEAN_ABS
        self._range_mult = _number("range_multiple", range_multiple, 0.0, False)
        self._split_tol = _number("split_tolerance", split_tolerance, 0.0, True)
        self._min_history = max(1, self.config.min_history)
        self._window = max(self._min_history, self.config.window)
        self._bars: dict[tuple[str, str, int], Series] = {}
        self._quotes: dict[tuple[str, str, int], Series] = {}
        self._ticks: dict[tuple[str, str, TickType], Series] = {}
        self._reset_listeners: list[Callable[[str | None], None]] = []

    # ---------------------------------------------------------------- trade bars

    # Each check below judges an item the screen passed (lean_data.quality.screen): the
    # impossible (INVALID) was decided there, before continuity; these keep series state.

    def series_of(self, item: TradeBar | QuoteBar | Tick, feed: str) -> Series:
        """Return the rolling state ``item``'s series keeps (made on its first item).

        Raises:
            TypeError: ``item`` is not a TradeBar, QuoteBar or Tick.
        """
        kind = kind_of(item)  # a subclass of a model takes its base model's path
        if kind is Tick:
            tick_key = (feed, item.symbol, item.tick_type)  # type: ignore[union-attr]
            st = self._ticks.get(tick_key)
            if st is None:
                st = self._ticks[tick_key] = Series(self._window, 0)
            return st
        if kind is TradeBar:
            table = self._bars
        elif kind is QuoteBar:
            table = self._quotes
        else:
            raise TypeError(f"expected a TradeBar, QuoteBar or Tick, got {type(item).__name__}")
        period = item.resolution.nanos  # type: ignore[union-attr]  # a bar
        key = (feed, item.symbol, period)
        st = table.get(key)
        if st is None:
            st = table[key] = Series(self._window, period)
        return st

    def _check_bar(self, st: Series, bar: TradeBar) -> Verdict:
        f = _BAR(bar)  # every field in one call (lean_data.slots)
        o: float = f[BAR_OPEN]
        h: float = f[BAR_HIGH]
        low: float = f[BAR_LOW]
        c: float = f[BAR_CLOSE]
        v: float = f[BAR_VOLUME]
        ts: int = f[BAR_TS_EVENT]
        resolution: Resolution = f[BAR_RESOLUTION]
        issues: Issues = None
        if v != v:
            issues = [("nan_volume", FAIR, "volume is NaN (unknown)")]
        issues = self._timing(ts, f[BAR_TS_RECV], resolution.nanos, issues)
        if v > 0.0:
            st.has_volume = True
        elif v == 0.0 and h > low and st.has_volume:
            msg = f"range {fmt(low)}..{fmt(h)} with volume 0 in a series that has traded"
            issues = add(issues, "range_without_volume", FAIR, msg)
        if ts < st.ts:
            return out_of_order(ts, st.ts, f[BAR_BACKFILLED], issues)
        if ts == st.ts:
            issues = repeat(st, bar, issues)
            st.same_bar()
        else:
            st.new_bar(ts)
        st.closed, st.revision, st.last = f[BAR_CLOSED], f[BAR_REVISION], bar
        issues = self._bar_prices(st, ts, o, h, low, c, issues)
        return CLEAN if issues is None else verdict(issues)

    def _bar_prices(
        self, st: Series, ts: int, o: float, h: float, low: float, c: float, issues: Issues
    ) -> Issues:
        """Check the bar's range, then its close against the series' reference."""
        rng = math.log(h / low)
        rlim = self._range_limit(st)
        lim = self._base_limit(st)
        if rng > rlim:
            split = self._split_inside(st, o, c, lim)
            if split is not None:
                st.accept(c, ts)
                msg = (
                    f"open {fmt(o)} and close {fmt(c)} differ by a {split} split ratio: "
                    "the pre-split price leaked into this bar"
                )
                return add(issues, "split_inside_bar", POOR, msg)
            issues = add(issues, *range_issue(o, h, low, c, rlim))
            rng = rlim
        ref = st.ref
        if ref == 0.0:
            st.accept(c, ts)
            st.record(0.0, rng)
            return issues
        if ts - st.ref_ts > st.period:  # an old reference (the test skips a call when not)
            lim = widened(st, ts, lim)
        move = math.log(c / ref)
        if -lim <= move <= lim:
            st.accept(c, ts)
            st.record(-move if move < 0.0 else move, rng)
            return issues
        return self._extreme_close(st, ts, o, c, (move, lim, rng), issues)

    def _extreme_close(
        self,
        st: Series,
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
        gap = math.log(o / ref)
        split = match_split(gap, self._split_tol) if abs(gap) > lim else None
        if split is not None:
            st.accept(c, ts)
            msg = f"{split_words(split)} (open {fmt(o)} vs previous close {fmt(ref)})"
            return add(issues, "probable_split", FAIR, msg)
        if level_shift(st, c, ts, lim, rng):
            return issues
        msg = f"close {fmt(c)} is {pct(move)} {direction(move)} the reference close {fmt(ref)}"
        return add(issues, "extreme_move", FAIR, f"{msg} (limit {pct(lim, move)})")

    def _split_inside(self, st: Series, o: float, c: float, lim: float) -> str | None:
        """Return the split ratio when the open is the old price and the close the new one.

        The open must still be at the reference (it is the stale pre-split price) or there
        is no reference yet, and open -> close must be extreme and match a split ratio.
        """
        body = math.log(c / o)
        if -lim <= body <= lim:
            return None
        if st.ref != 0.0 and abs(math.log(o / st.ref)) > lim:
            return None
        return match_split(body, self._split_tol)

    # ---------------------------------------------------------------- quote bars

    def _check_quote_bar(self, st: Series, q: QuoteBar) -> Verdict:
        bad_size = size_issue(q.bid_size, q.ask_size, "quote size")  # NaN: FAIR
        bid, ask = q.bid_close, q.ask_close
        issues = None if bad_size is None else [bad_size]
        issues = self._spread(bid, ask, issues)
        ts = q.ts_event
        issues = self._timing(ts, q.ts_recv, q.resolution.nanos, issues)
        if ts < st.ts:
            return out_of_order(ts, st.ts, q.backfilled, issues)
        if ts == st.ts:
            issues = repeat(st, q, issues)
            st.same_bar()
        else:
            st.new_bar(ts)
        st.closed, st.revision, st.last = q.closed, q.revision, q
        issues = self._price_move(st, ts, (bid + ask) * 0.5, "mid", "extreme_move", issues)
        return CLEAN if issues is None else verdict(issues)

    # ---------------------------------------------------------------- ticks

    def _check_tick(self, st: Series, t: Tick) -> Verdict:
        f = _TICK_FIELDS(t)  # every field in one call (lean_data.slots)
        trade = f[TICK_TYPE] is _TRADE
        if trade:
            price: float = f[TICK_PRICE]
            bad_size = size_issue(f[TICK_SIZE], 0.0, "trade size")  # NaN: FAIR
            issues: Issues = None
        else:
            bid: float = f[TICK_BID_PRICE]
            ask: float = f[TICK_ASK_PRICE]
            bad_size = size_issue(f[TICK_BID_SIZE], f[TICK_ASK_SIZE], "quote size")
            issues = self._spread(bid, ask, None)
            price = (bid + ask) * 0.5
        if bad_size is not None:
            issues = add(issues, *bad_size)
        ts: int = f[TICK_TS_EVENT]
        issues = self._timing(ts, f[TICK_TS_RECV], 0, issues)
        if ts < st.ts:
            msg = f"event time {ts} is before the previous tick's {st.ts}"
            issues = add(issues, "out_of_order", FAIR, msg)
        else:
            st.ts = ts
        if f[TICK_SUSPICIOUS]:  # untyped: compiled, a typed read of a NaN flag is a TypeError
            shown = f"price {fmt(f[TICK_PRICE])}, size {fmt(f[TICK_SIZE])}"
            return verdict(
                add(issues, "vendor_suspicious", POOR, f"the vendor flagged this print ({shown})")
            )
        st.pushed = False
        what = "price" if trade else "mid"
        issues = self._price_move(st, ts, price, what, "price_outlier", issues)
        return CLEAN if issues is None else verdict(issues)

    # ---------------------------------------------------------------- shared checks

    def _price_move(
        self, st: Series, ts: int, price: float, what: str, code: str, issues: Issues
    ) -> Issues:
        """Check one price (a trade, a mid) against the series' reference."""
        ref = st.ref
        if ref == 0.0:
            st.accept(price, ts)
            st.record(0.0, 0.0)
            return issues
        lim = self._base_limit(st)
        if ts - st.ref_ts > st.period:  # an old reference (the test skips a call when not)
            lim = widened(st, ts, lim)
        move = math.log(price / ref)
        if -lim <= move <= lim:
            st.accept(price, ts)
            st.record(-move if move < 0.0 else move, 0.0)
            return issues
        split = match_split(move, self._split_tol)
        if split is not None:
            st.accept(price, ts)
            msg = f"{split_words(split)} ({what} {fmt(price)} vs previous {fmt(ref)})"
            return add(issues, "probable_split", FAIR, msg)
        if level_shift(st, price, ts, lim, 0.0):
            return issues
        level = POOR if code == "price_outlier" else FAIR
        msg = f"{what} {fmt(price)} is {pct(move)} {direction(move)} the reference {fmt(ref)}"
        return add(issues, code, level, f"{msg} (limit {pct(lim, move)})")

    def _base_limit(self, st: Series) -> float:
        """Return the move limit over one period: rolling and floored, or the hard limit."""
        n = st.n
        if n < self._min_history:
            return st.hard
        lim = self._move_mult * st.msum / n
        return lim if lim > st.floor else st.floor

    def _range_limit(self, st: Series) -> float:
        n = st.n
        if n < self._min_history:
            return st.hard
        lim = self._range_mult * st.rsum / n
        return lim if lim > st.floor else st.floor

    def _timing(self, ts: int, recv: int, period: int, issues: Issues) -> Issues:
        """Flag stale items (when enabled); future times were screened out before."""
        if recv:
            lag = recv - ts - period
            if self._stale and lag > self._stale:
                msg = f"received {lag / 1e9:.3f} s after the event (limit {self._stale / 1e9:g} s)"
                return add(issues, "stale", FAIR, msg)
        return issues

    def _spread(self, bid: float, ask: float, issues: Issues) -> Issues:
        if bid == ask:
            return add(issues, "locked_quote", GOOD, f"bid equals ask ({fmt(bid)})")
        ratio = (ask - bid) * 2.0 / (ask + bid)
        if ratio > self._wide:
            msg = (
                f"spread {fmt(ask - bid)} is {ratio * 100:.2f}% of the mid (bid {fmt(bid)},"
                f" ask {fmt(ask)}; limit {self._wide * 100:.2f}%)"
            )
            return add(issues, "wide_spread", FAIR, msg)
        return issues
