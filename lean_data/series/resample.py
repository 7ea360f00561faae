"""Coarser bars maintained live from source bars (multi-timeframe), pure and O(1) per bar.

A :class:`BarResampler` takes the bars of one symbol and one source resolution (e.g. 1m)
as they arrive and returns the bars of one or more coarser targets (5m, 15m, 1h, 1d, ...)
as soon as each is complete. No asyncio, no clock reads: the caller passes the time to
:meth:`BarResampler.on_clock`.

**Equality with resampling afterwards.** Buckets, aggregation and the ``closed`` flag are
those of :meth:`lean_data.analytics.transform.DataTransformer.resample_bars` (same bucket code, same
tie rules for high/low, volumes summed exactly like ``math.fsum``), called with this
resampler's ``origin_ns`` and, for whole-day targets only, its ``tz``
(:meth:`BarResampler.resample` makes that call). Let ``S`` be the stored source series
(the last version of each open time). Feed its bars in time order; then, per target, the
bars returned followed by :meth:`BarResampler.snapshot` (the bucket still open, if any)
equal ``resample_bars(S, target, ...)`` exactly. Fed with revisions, duplicates and
out-of-order bars as well, the last version returned for each open time, ``revision``
set to 0, followed by ``snapshot`` equals it too, unless a bar came later than
``late_window_ns`` (below).

The one difference the clock makes: a bucket completed by
:meth:`~BarResampler.on_clock` is final (``closed=True`` when its inputs are) while
``resample_bars`` cannot know that the data stopped and marks the *last* bucket
``closed=False`` when ``S`` ends before that bucket's end. The bar the clock completes is
the one ``resample_bars`` builds once the stored data goes past the bucket.

**When a bucket completes.**

- A closed source bar whose end (open time plus source resolution) reaches the bucket's
  end completes it at once: the 09:59 minute bar completes the 09:00 hour bar. (An
  in-progress one does not: the bucket completes when its closed version arrives.)
- A source bar in a later bucket completes it (the bucket had no bar in its last slot).
- ``on_clock(now_ns)`` completes every bucket whose end is at or before ``now_ns``, so
  the last hour of a session or a day of a sparse source is not held until the next bar.
  Pass ``now`` minus the source's delivery delay (a grace of a few seconds): a source bar
  that arrives for a bucket the clock already completed is a late bar (below).

A completed bar has ``revision=0`` and ``closed`` true if every input bar is closed.
Empty buckets give no bar. With ``partial=True`` every source bar that changes an open
bucket also returns that bucket's in-progress bar (``closed=False``).

**Versions of a source bar.** Source bars are keyed by open time; the latest version wins.

- A *duplicate* (same open time, OHLCV, ``closed`` and ``revision`` as the kept version;
  ``ts_recv`` and ``backfilled`` may differ) is ignored: the kept version stays.
- A version with a lower ``revision`` than the kept one is *stale* and ignored.
- Any other version (a revision such as Alpaca's ``u``, a closed bar after its
  in-progress one) replaces the kept one. In an open bucket it updates that bucket; in a
  completed one the derived bar is rebuilt from the kept source bars and returned again,
  ``revision`` + 1 (the same revision when the previous version was not closed).

**Out-of-order bars.** A source bar older than the newest one that is not a version of a
kept bar (a backfilled bar delivered late, a bar the clock overtook) is inserted in time
order: into the open bucket, or into its completed bucket, which is rebuilt and returned
again as above, or into a bucket that was empty, which is returned then (revision 0).

**Memory.** Per target, the open bucket's source bars plus the completed buckets that end
less than ``late_window_ns`` before the newest time seen (the latest source bar's end or
clock) are kept; older ones are forgotten, and a bar or revision for them is dropped and
counted (:meth:`BarResampler.statistics`). ``late_window_ns=0`` keeps no completed bucket.

**Cost.** A source bar in time order costs O(1) per target (a few comparisons and an exact
add of its volume); bucket bounds are computed once per bucket. An out-of-order bar is
folded in O(1) too (plus a list insert); a revision rebuilds its bucket, O(bucket size).

**Errors.** As ``resample_bars`` would reject the series, a bar of another symbol or
resolution, or one that straddles a bucket boundary, raises ``ValueError``; a source not
finer than a target or not dividing it (given, or the first bar's) raises
:class:`~lean_data.errors.ConfigError`. A bar that raises changes nothing.
(Volumes of ``+inf`` and ``-inf`` in one bucket, where ``resample_bars`` raises, give a
``nan`` volume instead.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter

from lean_data.analytics.transform import DataTransformer, _Buckets
from lean_data.errors import ConfigError
from lean_data.models import NS_PER_DAY, NS_PER_HOUR, Resolution, TradeBar
from lean_data.series.buckets import NEVER, Bucket, TargetBuckets

__all__ = ["BarResampler", "ResamplerStatistics"]

_FOREVER = 1 << 62  # after any timestamp


@dataclass(frozen=True, slots=True)
class ResamplerStatistics:
    """Counters of a :class:`BarResampler` since it was created.

    Attributes:
        bars: source bars passed to ``update`` (including those ignored).
        duplicates: source bars ignored as duplicates of the kept version.
        stale: source bars ignored because the kept version has a higher revision.
        corrections: source bars that replaced a kept version (revisions).
        late: source bars inserted out of time order (older than the newest bar, or in a
            bucket the clock completed).
        dropped: (source bar, target) pairs not applied because the bucket was forgotten
            (older than ``late_window_ns``).
        completed: derived bars returned when their bucket completed.
        revised: derived bars returned again because a completed bucket changed.
    """

    bars: int
    duplicates: int
    stale: int
    corrections: int
    late: int
    dropped: int
    completed: int
    revised: int


def _same(a: TradeBar, b: TradeBar) -> bool:
    """True when ``b`` repeats ``a`` (OHLCV, closed, revision; NaN equals NaN)."""
    return (
        a.closed == b.closed
        and a.revision == b.revision
        and _eq(a.open, b.open)
        and _eq(a.high, b.high)
        and _eq(a.low, b.low)
        and _eq(a.close, b.close)
        and _eq(a.volume, b.volume)
    )


def _eq(x: float, y: float) -> bool:
    return x == y or (x != x and y != y)


class BarResampler:
    """Maintain coarser bars of one symbol live from its source bars (rules: module doc).

    Example::

        resampler = BarResampler(["5m", "1h", "1d"], tz="America/New_York")
        for bar in minute_bars:                 # closed 1m bars, in time order
            for derived in resampler.update(bar):
                ...                             # a 5m, 1h or 1d bar, complete
        resampler.on_clock(now_ns - grace)   # from a timer: end of session, gaps
    """

    __slots__ = (
        "_bars",
        "_completed",
        "_corrections",
        "_dropped",
        "_duplicates",
        "_frontier",
        "_last_ts",
        "_late",
        "_oldest_end",
        "_origin",
        "_partial",
        "_revised",
        "_source",
        "_stale",
        "_step",
        "_symbol",
        "_targets",
        "_tz",
        "_window",
    )

    def __init__(
        self,
        targets: Iterable[Resolution | str],
        *,
        source: Resolution | str | None = None,
        symbol: str | None = None,
        origin_ns: int = 0,
        tz: str | None = None,
        partial: bool = False,
        late_window_ns: int = NS_PER_HOUR,
    ) -> None:
        """Create a resampler for ``targets``.

        Args:
            targets: the derived resolutions, e.g. ``["5m", "15m", "1h", "1d"]``.
            source: the source bars' resolution; ``None`` takes the first bar's.
            symbol: the source bars' symbol; ``None`` takes the first bar's.
            origin_ns: a bucket boundary (ns since the epoch), as for ``resample_bars``.
            tz: an IANA zone for the whole-day targets' calendar days (e.g.
                ``"America/New_York"`` for equities); intraday targets ignore it.
                ``None``: days start at ``origin_ns`` (UTC midnight by default).
            partial: also return the open bucket's in-progress bar on every change.
            late_window_ns: how long after its end a completed bucket is kept for
                revisions and late bars (default one hour).

        Raises:
            ConfigError: no target, a repeated, tick or unknown target, an unknown zone, a
                negative window, or a ``source`` not finer than a target or not dividing it.
        """
        try:
            parsed = [Resolution.parse(target) for target in targets]
            if tz is not None:
                _Buckets(Resolution.DAILY, origin_ns, tz)  # validates the zone
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if not parsed:
            raise ConfigError("expected at least one target resolution, got none")
        if len(set(parsed)) != len(parsed):
            raise ConfigError(f"expected distinct targets, got {[str(t) for t in parsed]}")
        if any(target.is_tick for target in parsed):
            raise ConfigError("cannot resample to tick resolution")
        if isinstance(late_window_ns, bool) or not isinstance(late_window_ns, int):
            raise ConfigError(f"late_window_ns must be an int (ns), got {late_window_ns!r}")
        if late_window_ns < 0:
            raise ConfigError(f"late_window_ns must be >= 0, got {late_window_ns}")
        self._targets = [
            TargetBuckets(t, _Buckets(t, origin_ns, tz if t.nanos % NS_PER_DAY == 0 else None))
            for t in sorted(parsed, key=attrgetter("nanos"))
        ]
        self._origin = origin_ns
        self._tz = tz
        self._partial = partial
        self._window = late_window_ns
        self._symbol = symbol
        self._source: Resolution | None = None
        self._step = 0
        if source is not None:
            try:
                self._source = Resolution.parse(source)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            self._check_source(self._source)
            self._step = self._source.nanos
        self._last_ts = NEVER
        self._frontier = NEVER  # newest time seen: latest source bar's end or clock
        self._oldest_end = _FOREVER  # earliest end of a completed bucket kept
        self._bars = self._duplicates = self._stale = self._corrections = 0
        self._late = self._dropped = self._completed = self._revised = 0

    # --- public -------------------------------------------------------------------------

    @property
    def targets(self) -> tuple[Resolution, ...]:
        """The target resolutions, finest first (the order of returned bars)."""
        return tuple(t.resolution for t in self._targets)

    @property
    def source(self) -> Resolution | None:
        """The source resolution (``None`` until given or taken from the first bar)."""
        return self._source

    @property
    def symbol(self) -> str | None:
        """The symbol (``None`` until given or taken from the first bar)."""
        return self._symbol

    def update(self, bar: TradeBar) -> list[TradeBar]:
        """Add a source bar; return the derived bars it completes, revises or updates.

        Bars come grouped by target (finest first), each group in time order.

        Raises:
            ValueError: the bar's symbol or resolution differs from the first bar's, or it
                straddles a bucket boundary.
            ConfigError: (first bar) its resolution cannot make every target.
        """
        ts = bar.ts_event
        source = self._source
        if bar.symbol != self._symbol and self._symbol is not None:
            raise ValueError(f"expected a bar of {self._symbol!r}, got one of {bar.symbol!r}")
        if bar.resolution is not source:
            if source is not None:
                raise ValueError(
                    f"expected a {source} bar of {bar.symbol!r}, got a {bar.resolution} bar"
                )
            self._check_source(bar.resolution)
        step = bar.resolution.nanos
        spans = [target.span(ts, step) for target in self._targets]  # raises before changes
        if source is None:
            self._source, self._step = bar.resolution, step
        self._symbol = bar.symbol
        self._bars += 1
        if ts > self._last_ts:
            return self._forward(bar, spans)
        return self._revise(bar, spans)

    def on_clock(self, now_ns: int) -> list[TradeBar]:
        """Complete every open bucket that ends at or before ``now_ns``; return their bars.

        Call it from a timer with the current time minus the source's delivery delay.
        """
        if now_ns > self._frontier:
            self._frontier = now_ns
        out: list[TradeBar] = []
        for target in self._targets:
            current = target.current
            if current is not None and now_ns >= current.end:
                self._complete(target, current, out)
        self._prune()
        return out

    def next_close_ns(self) -> int | None:
        """Return the earliest end of an open bucket (when to call ``on_clock``)."""
        ends = [t.current.end for t in self._targets if t.current is not None]
        return min(ends) if ends else None

    def snapshot(self, target: Resolution | str) -> TradeBar | None:
        """Return ``target``'s open bucket as an in-progress bar (``closed=False``), or None.

        Raises:
            ValueError: ``target`` is not one of this resampler's targets.
        """
        state = self._target(Resolution.parse(target))
        bucket = state.current
        if bucket is None or self._symbol is None:
            return None
        return bucket.make(self._symbol, state.resolution, False, 0)

    def resample(self, bars: Sequence[TradeBar], target: Resolution | str) -> list[TradeBar]:
        """Return ``resample_bars`` of a stored series with this resampler's buckets.

        Raises:
            ValueError: as :meth:`DataTransformer.resample_bars`, or ``target`` is not one
                of this resampler's targets.
        """
        state = self._target(Resolution.parse(target))
        daily = state.resolution.nanos % NS_PER_DAY == 0
        return DataTransformer.resample_bars(
            bars, state.resolution, origin_ns=self._origin, tz=self._tz if daily else None
        )

    def statistics(self) -> ResamplerStatistics:
        """Return a snapshot of the counters."""
        return ResamplerStatistics(
            bars=self._bars,
            duplicates=self._duplicates,
            stale=self._stale,
            corrections=self._corrections,
            late=self._late,
            dropped=self._dropped,
            completed=self._completed,
            revised=self._revised,
        )

    # --- internals ----------------------------------------------------------------------

    def _target(self, resolution: Resolution) -> TargetBuckets:
        for target in self._targets:
            if target.resolution is resolution:
                return target
        names = [str(r) for r in self.targets]
        raise ValueError(f"expected one of the targets {names}, got {resolution}")

    def _check_source(self, source: Resolution) -> None:
        for target in self._targets:
            t = target.resolution
            if source.is_tick or not source < t or t.nanos % source.nanos:
                raise ConfigError(
                    f"source resolution must be finer than {t} and divide it, got {source}"
                )

    def _forward(self, bar: TradeBar, spans: list[tuple[int, int]]) -> list[TradeBar]:
        """A bar newer than every bar seen: the hot path."""
        ts = bar.ts_event
        self._last_ts = ts
        bar_end = ts + self._step
        if bar_end > self._frontier:
            self._frontier = bar_end
        out: list[TradeBar] = []
        late = False
        for target, (start, end) in zip(self._targets, spans, strict=True):
            current = target.current
            if current is not None and current.start == start:
                current.add(bar)
            elif start >= target.done_end:
                if current is not None:
                    self._complete(target, current, out)
                current = target.current = Bucket(start, end)
                current.add(bar)
            else:  # its bucket was completed by the clock before it arrived
                late = True
                self._apply_late(target, bar, start, end, out)
                continue
            if bar_end >= end and bar.closed:
                self._complete(target, current, out)
            elif self._partial:
                out.append(current.make(bar.symbol, target.resolution, False, 0))
        self._late += late
        self._prune()
        return out

    def _revise(self, bar: TradeBar, spans: list[tuple[int, int]]) -> list[TradeBar]:
        """A bar not newer than the newest: a duplicate, a revision or a late bar."""
        ts = bar.ts_event
        kept = self._kept(ts, spans)
        if kept is None:
            self._late += 1
        elif _same(kept, bar):
            self._duplicates += 1
            return []
        elif bar.revision < kept.revision:
            self._stale += 1
            return []
        else:
            self._corrections += 1
        out: list[TradeBar] = []
        for target, (start, end) in zip(self._targets, spans, strict=True):
            self._apply_late(target, bar, start, end, out)
        self._prune()
        return out

    def _kept(self, ts: int, spans: list[tuple[int, int]]) -> TradeBar | None:
        for target, (start, _) in zip(self._targets, spans, strict=True):
            bucket = target.bucket(start)
            kept = None if bucket is None else bucket.find(ts)
            if kept is not None:
                return kept
        return None

    def _apply_late(
        self, target: TargetBuckets, bar: TradeBar, start: int, end: int, out: list[TradeBar]
    ) -> None:
        bucket = target.bucket(start)
        if bucket is target.current and bucket is not None:
            bucket.put(bar)
            last = bucket.bars[-1]
            if last.closed and last.ts_event + self._step >= end:
                self._complete(target, bucket, out)
            elif self._partial:
                out.append(bucket.make(bar.symbol, target.resolution, False, 0))
            return
        if bucket is None:
            if end <= self._frontier - self._window:
                self._dropped += 1
                return
            bucket = target.add_done(start, end)
            self._oldest_end = min(self._oldest_end, end)
            target.done_end = max(target.done_end, end)
        bucket.put(bar)
        previous = bucket.emitted
        if previous is None:
            revision = 0
            self._completed += 1
        else:
            revision = previous.revision + 1 if previous.closed else previous.revision
            self._revised += 1
        derived = bucket.make(bar.symbol, target.resolution, bucket.closed, revision)
        bucket.emitted = derived
        out.append(derived)

    def _complete(self, target: TargetBuckets, bucket: Bucket, out: list[TradeBar]) -> None:
        symbol = self._symbol
        assert symbol is not None  # a bucket exists only after a bar set it
        derived = bucket.make(symbol, target.resolution, bucket.closed, 0)
        bucket.emitted = derived
        target.done.append(bucket)
        if bucket.end < self._oldest_end:
            self._oldest_end = bucket.end
        target.done_end = bucket.end
        target.current = None
        self._completed += 1
        out.append(derived)

    def _prune(self) -> None:
        """Forget the completed buckets that ended ``late_window_ns`` before the frontier."""
        cutoff = self._frontier - self._window
        if cutoff < self._oldest_end:
            return
        oldest = _FOREVER
        for target in self._targets:
            done = target.done
            k = 0
            while k < len(done) and done[k].end <= cutoff:
                k += 1
            del done[:k]
            if done and done[0].end < oldest:
                oldest = done[0].end
        self._oldest_end = oldest
