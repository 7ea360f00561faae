"""A resampler's buckets: each one's source bars and running aggregate, per target.

A :class:`Bucket` holds the source bars of one ``[start, end)`` bucket of a coarser bar, in
time order, and folds them with the rules of
:meth:`lean_data.analytics.transform.DataTransformer.resample_bars` (first open, max high,
min low, last close, the same comparisons in the same order so NaN and zero ties agree;
volumes summed exactly by :class:`ExactSum`, which equals ``math.fsum``). A
:class:`TargetBuckets` is one target resolution's open bucket and the completed ones kept
for revisions and late bars.

Bucket bounds come from ``resample_bars``' own bucket code (``_Buckets`` of
:mod:`lean_data.analytics.transform`: aligned to an origin, or local calendar days of a
zone), so a live bucket and a resampled one can never disagree on where a bucket starts.
That code stays in ``analytics``, the lower stage, which both use.

Pure: no asyncio, no clock reads. :class:`~lean_data.series.resample.BarResampler` decides
what to do with each source bar; this module only keeps and folds them.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from operator import attrgetter

from lean_data.analytics.transform import _Buckets
from lean_data.models import Resolution, TradeBar

__all__ = ["NEVER", "Bucket", "ExactSum", "TargetBuckets"]

NEVER = -(1 << 62)
"""Before any timestamp."""
_by_ts = attrgetter("ts_event")
_by_start = attrgetter("start")


class ExactSum:
    """A running sum equal to ``math.fsum`` of every value added.

    Each finite float is an exact binary fraction (``as_integer_ratio``), so the sum is
    kept exactly as an integer over a power of two; ``int / int`` rounds correctly, as
    ``math.fsum`` does, so both give the float nearest the exact sum. Non-finite values
    follow ``math.fsum``: their plain sum wins; ``inf`` plus ``-inf`` gives ``nan`` (where
    ``math.fsum`` raises ``ValueError``: a live bar must not raise).
    """

    __slots__ = ("_den", "_num", "_special")

    def __init__(self) -> None:
        self._num = 0
        self._den = 1  # a power of two
        self._special = 0.0

    def add(self, x: float) -> None:
        try:
            num, den = x.as_integer_ratio()
        except (OverflowError, ValueError):  # inf, nan
            self._special += x
            return
        if den == self._den:
            self._num += num
        elif den < self._den:
            self._num += num * (self._den // den)
        else:
            self._num = self._num * (den // self._den) + num
            self._den = den

    def value(self) -> float:
        if self._special != 0.0:  # also true for nan
            return self._special  # nan for inf + -inf
        return self._num / self._den


class Bucket:
    """One bucket's source bars (in time order) and their running aggregate."""

    __slots__ = (
        "backfilled",
        "bars",
        "close",
        "closed",
        "emitted",
        "end",
        "high",
        "low",
        "open",
        "start",
        "ts_recv",
        "volume",
    )

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end
        self.bars: list[TradeBar] = []
        self.emitted: TradeBar | None = None  # the last version returned once complete
        self._reset()

    def _reset(self) -> None:
        self.open = self.high = self.low = self.close = math.nan
        self.volume = ExactSum()
        self.ts_recv = 0
        self.backfilled = False
        self.closed = True

    def add(self, bar: TradeBar) -> None:
        """Append ``bar``, which opens after every bar kept, and fold it in."""
        if self.bars:
            # the same comparisons, in the same order, as resample_bars (NaN ties alike)
            if bar.high > self.high:
                self.high = bar.high
            if bar.low < self.low:
                self.low = bar.low
        else:
            self.open, self.high, self.low = bar.open, bar.high, bar.low
        self.close = bar.close
        self.volume.add(bar.volume)
        if bar.ts_recv > self.ts_recv:
            self.ts_recv = bar.ts_recv
        self.backfilled = self.backfilled or bar.backfilled
        self.closed = self.closed and bar.closed
        self.bars.append(bar)

    def find(self, ts: int) -> TradeBar | None:
        bars = self.bars
        i = bisect_left(bars, ts, key=_by_ts)
        return bars[i] if i < len(bars) and bars[i].ts_event == ts else None

    def put(self, bar: TradeBar) -> None:
        """Insert ``bar`` in time order, replacing the bar of its open time, and refold.

        A new bar is folded in O(1) (plus the list insert): max, min, exact sum, any and
        all do not depend on order. A replacement, or a zero or NaN high/low (where
        ``resample_bars``'s first-wins ties or NaN comparisons depend on order), refolds
        the bucket.
        """
        bars = self.bars
        i = bisect_left(bars, bar.ts_event, key=_by_ts)
        if i == len(bars):
            self.add(bar)
            return
        if bars[i].ts_event != bar.ts_event and self._plain(bar):
            bars.insert(i, bar)
            if i == 0:
                self.open = bar.open
            if bar.high > self.high:
                self.high = bar.high
            if bar.low < self.low:
                self.low = bar.low
            self.volume.add(bar.volume)
            if bar.ts_recv > self.ts_recv:
                self.ts_recv = bar.ts_recv
            self.backfilled = self.backfilled or bar.backfilled
            self.closed = self.closed and bar.closed
            return
        if bars[i].ts_event == bar.ts_event:
            bars[i] = bar
        else:
            bars.insert(i, bar)
        self.bars = []
        self._reset()
        for kept in bars:
            self.add(kept)

    def _plain(self, bar: TradeBar) -> bool:
        """True when no high or low of ``bar`` or the bucket is zero or NaN."""
        return bool(bar.high and bar.low and self.high and self.low) and not (
            math.isnan(bar.high)
            or math.isnan(bar.low)
            or math.isnan(self.high)
            or math.isnan(self.low)
        )

    def make(self, symbol: str, target: Resolution, closed: bool, revision: int) -> TradeBar:
        return TradeBar(
            symbol=symbol,
            ts_event=self.start,
            open=self.open,
            high=self.high,
            low=self.low,
            close=self.close,
            volume=self.volume.value(),
            resolution=target,
            ts_recv=self.ts_recv,
            closed=closed,
            revision=revision,
            backfilled=self.backfilled,
        )


class TargetBuckets:
    """State of one target resolution: the open bucket and the completed ones kept."""

    __slots__ = ("buckets", "current", "done", "done_end", "resolution")

    def __init__(self, resolution: Resolution, buckets: _Buckets) -> None:
        self.resolution = resolution
        self.buckets = buckets
        self.current: Bucket | None = None
        self.done: list[Bucket] = []  # completed buckets kept, by start
        self.done_end = NEVER  # end of the newest completed bucket

    def span(self, ts: int, step: int) -> tuple[int, int]:
        """Return the bounds of ``ts``'s bucket; raise if a bar at ``ts`` straddles them."""
        current = self.current
        if current is not None and current.start <= ts < current.end:
            start, end = current.start, current.end
        else:
            start, end = self.buckets.bounds(ts)
        if ts + step > end:
            raise ValueError(
                f"a bar opening at {ts} straddles the {self.resolution} bucket boundary "
                f"at {end}: expected bars aligned so that each lies inside one bucket"
            )
        return start, end

    def bucket(self, start: int) -> Bucket | None:
        current = self.current
        if current is not None and current.start == start:
            return current
        done = self.done
        i = bisect_left(done, start, key=_by_start)
        return done[i] if i < len(done) and done[i].start == start else None

    def add_done(self, start: int, end: int) -> Bucket:
        """Return a new empty completed bucket ``[start, end)``, kept in start order."""
        bucket = Bucket(start, end)
        self.done.insert(bisect_left(self.done, start, key=_by_start), bucket)
        return bucket
