"""Validate market data and grade its quality: :class:`DataValidator`.

The validator judges every bar, quote and trade the engine receives and returns a
:class:`~lean_data.quality.levels.Verdict`: a
:class:`~lean_data.quality.levels.DataQualityLevel`, short reason codes and a human-readable
message that names the values. Clean items get the shared
:data:`~lean_data.quality.levels.CLEAN` verdict (EXCELLENT, no reasons): no verdict, list or
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

Impossible (INVALID: delivered to callbacks that take INVALID, never buffered, stored only
with ``store_invalid``). First the screen (:meth:`DataValidator.screen`, stateless; the
engine runs it before continuity, buffering, storage and calendar arithmetic):
``bad_timestamp``, ``timestamp_unit``, ``future_timestamp`` (event time beyond the receive
time, or the clock, plus ``clock_skew_ns``), ``bad_revision``, ``absurd_value``,
``bad_text`` (see :mod:`lean_data.quality.screen`). Then, still in the screen, the
values:

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
``stale``                 FAIR       received more than ``stale_after_ns`` after the event
                                     (for bars: after the bar's end); only when enabled and
                                     the receive time is known
``duplicate_timestamp``   FAIR/POOR  a bar with the same open time as the previous bar of
                                     its series, neither a revision (``revision``
                                     increased) nor an update of an in-progress bar: FAIR
                                     when identical, POOR when the values differ. A grade,
                                     not a decision: in the engine, continuity decides
                                     repeats of closed trade bars before they are judged
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

from collections.abc import Callable
from typing import Final

from mypy_extensions import mypyc_attr

from lean_data.models import MarketData, QuoteBar, Tick, TradeBar
from lean_data.quality.checks import ValidatorCore
from lean_data.quality.levels import DataQualityLevel, Verdict
from lean_data.quality.rules import FORWARD_SPLITS, REVERSE_SPLITS, match_split
from lean_data.quality.screen import kind_of, screen
from lean_data.quality.state import Series, forget
from lean_data.quality.tracker import QualityTracker

__all__ = ["FORWARD_SPLITS", "REVERSE_SPLITS", "DataValidator", "QualityTracker", "match_split"]

# C statics for classes of pure modules, used per item (see lean_data.quality.screen)
_TRADE_BAR: Final = TradeBar
_TICK: Final = Tick
_QUOTE_BAR: Final = QuoteBar


# Users subclass it (their own judge()): the compiled class must allow that.
@mypyc_attr(allow_interpreted_subclasses=True)
class DataValidator(ValidatorCore):
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
        screened = self.screen(item)
        if screened is not None:
            return screened
        return self.judge(item, feed=feed)

    def screen(self, item: MarketData) -> Verdict | None:
        """Return the INVALID verdict of an item with an impossible value, else None.

        Stateless, and the engine's first step: see :mod:`lean_data.quality.screen`
        (non-int or out-of-range times, times in 1970 or beyond the clock skew, bad
        revisions, absurd magnitudes, text that is not valid Unicode).
        """
        return screen(item, self._skew, self._clock)

    def judge(self, item: MarketData, *, feed: str = "") -> Verdict:
        """Judge an item :meth:`screen` passed, against its series; update the series.

        Raises:
            TypeError: ``item`` is not a TradeBar, QuoteBar or Tick.
        """
        return self.judge_in(self.series_of(item, feed), item)

    def judge_in(self, series: Series, item: MarketData) -> Verdict:
        """Like :meth:`judge`, with the item's series state (:meth:`series_of`) at hand.

        The engine keeps each series' state in its series record and so skips the lookup.

        Raises:
            TypeError: ``item`` is not a TradeBar, QuoteBar or Tick.
        """
        kind = kind_of(item)  # a subclass of a model takes its base model's path
        if kind is _TRADE_BAR:
            return self._check_bar(series, item)  # type: ignore[arg-type]  # checked above
        if kind is _TICK:
            return self._check_tick(series, item)  # type: ignore[arg-type]  # checked above
        if kind is _QUOTE_BAR:
            return self._check_quote_bar(series, item)  # type: ignore[arg-type]  # checked
        raise TypeError(f"expected a TradeBar, QuoteBar or Tick, got {type(item).__name__}")

    def on_reset(self, listener: Callable[[str | None], None]) -> None:
        """Call ``listener(symbol)`` after each :meth:`reset` (None: every symbol).

        Whoever holds series states from :meth:`series_of` drops them there.
        """
        self._reset_listeners.append(listener)

    def validate_trade_bar(self, bar: TradeBar) -> tuple[bool, DataQualityLevel, str]:
        """Judge a trade bar (stateful, feed ``""``); return (is_valid, level, message)."""
        verdict = self.check(bar)
        return verdict.is_valid, verdict.level, verdict.message

    def validate_quote_bar(self, quote: QuoteBar) -> tuple[bool, DataQualityLevel, str]:
        """Judge a quote bar (stateful, feed ``""``); return (is_valid, level, message)."""
        verdict = self.check(quote)
        return verdict.is_valid, verdict.level, verdict.message

    def validate_tick(self, tick: Tick) -> tuple[bool, DataQualityLevel, str]:
        """Judge a tick (stateful, feed ``""``); return (is_valid, level, message)."""
        verdict = self.check(tick)
        return verdict.is_valid, verdict.level, verdict.message

    def reset(self, symbol: str | None = None) -> None:
        """Forget the state of every series, or of ``symbol``'s series on every feed."""
        for table in (self._bars, self._quotes, self._ticks):
            forget(table, symbol)
        for listener in self._reset_listeners:
            listener(symbol)
