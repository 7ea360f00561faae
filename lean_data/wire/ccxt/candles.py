"""Closing ccxt candles: rows without a closed flag in, each final bar once out.

Pure: no I/O, no asyncio, no clock reads (the caller passes the time in).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

from lean_data.models import NS_PER_DAY, NS_PER_SECOND, Resolution, TradeBar
from lean_data.wire.ccxt.rows import Values, make_bar, parse_ohlcv_row

__all__ = ["DEFAULT_SKEW_NS", "MIN_PLAUSIBLE_NS", "CandleCloser", "RecentKeys", "plausible"]

MIN_PLAUSIBLE_NS = 365 * NS_PER_DAY
"""1971-01-01: an earlier open time is a unit mistake (seconds read as ms), not a candle."""
DEFAULT_SKEW_NS = 5 * NS_PER_SECOND
"""How far ahead of our clock a venue's clock may run (the engine's ``clock_skew_ns``)."""


class RecentKeys:
    """Remember the last ``size`` keys seen; :meth:`add` says whether a key is new."""

    __slots__ = ("_order", "_seen", "size")

    def __init__(self, size: int = 10_000) -> None:
        if size < 1:
            raise ValueError(f"size: expected >= 1, found {size}")
        self.size = size
        self._seen: set[Hashable] = set()
        self._order: deque[Hashable] = deque()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, key: Hashable) -> bool:
        """Record ``key``; return False when it was already among the recent keys."""
        if key in self._seen:
            return False
        self._seen.add(key)
        self._order.append(key)
        if len(self._order) > self.size:
            self._seen.discard(self._order.popleft())
        return True


def _same(a: Values, b: Values) -> bool:
    """Compare candle values, NaN equal to NaN (an unknown volume is not a change)."""
    return all(x == y or (x != x and y != y) for x, y in zip(a, b, strict=True))


def plausible(ts_ns: int, now_ns: int, *, skew_ns: int = DEFAULT_SKEW_NS) -> bool:
    """Return True when an open time can be real: from 1971 on, not ahead of ``now_ns + skew``.

    A candle cannot open after the venue's clock, which runs at most ``skew_ns`` ahead of
    ours; a timestamp in µs or ns read as ms lands centuries ahead, one in seconds in 1970.
    """
    return MIN_PLAUSIBLE_NS <= ts_ns <= now_ns + skew_ns


class CandleCloser:
    """Turn ccxt OHLCV rows of one symbol into final bars: each candle once, then revisions.

    ``watch_ohlcv`` returns ``[ts_ms, o, h, l, c, v]`` rows that include the candle still
    forming and carry no closed flag, so the venue's clock decides: a candle is final once
    a newer candle is seen (the venue's clock passed its end), or once its period plus
    ``grace_ns`` has ended by the clock (the caller passes the time in; nothing here reads
    a clock). A final candle is returned once with ``closed=True, revision=0``; a later row
    for it with different values is returned as ``revision + 1`` (the engine's continuity
    numbers revisions in the end); an identical row is ignored, so rows replayed after a
    reconnect never duplicate a bar. A row for a candle older than the newest one seen and
    never seen before is final at once.

    Only a row whose open time is :func:`plausible` by the time it is received takes part.
    Any other (a far-future or unit-confused timestamp) is returned once per open time as a
    ``closed=True`` bar, for the engine's validator to judge, and changes nothing else: it
    neither closes the forming candle nor becomes the newest candle seen.

    Args:
        symbol: the symbol put on the bars.
        resolution: the candle period.
        grace_ns: how long after a period's end the venue may still send its final update.
        emit_partial: also return the forming candle (``closed=False``) whenever it changes.
        keep: final candles remembered for revisions and duplicate checks; rows for
            candles older than the forgotten ones are ignored (counted in :attr:`ignored`).
        skew_ns: how far ahead of the caller's clock the venue's clock may run.

    Attributes:
        revisions: revised bars returned so far.
        ignored: rows ignored because their candle was already forgotten.
        implausible: rows with an implausible open time (each open time returned once).
    """

    __slots__ = (
        "_bogus",
        "_closed",
        "_floor",
        "_grace",
        "_latest",
        "_open",
        "_partial",
        "_skew",
        "emit_partial",
        "ignored",
        "implausible",
        "keep",
        "resolution",
        "revisions",
        "symbol",
    )

    def __init__(
        self,
        symbol: str,
        resolution: Resolution | str,
        *,
        grace_ns: int = 2 * NS_PER_SECOND,
        emit_partial: bool = False,
        keep: int = 1000,
        skew_ns: int = DEFAULT_SKEW_NS,
    ) -> None:
        res = Resolution.parse(resolution)
        if res.is_tick:
            raise ValueError("a CandleCloser needs a bar period, found 'tick'")
        if grace_ns < 0:
            raise ValueError(f"grace_ns: expected >= 0, found {grace_ns}")
        if keep < 1:
            raise ValueError(f"keep: expected >= 1, found {keep}")
        if skew_ns < 0:
            raise ValueError(f"skew_ns: expected >= 0, found {skew_ns}")
        self.symbol, self.resolution = symbol, res
        self._grace, self.emit_partial, self.keep = grace_ns, emit_partial, keep
        self._skew = skew_ns
        self._open: tuple[int, Values] | None = None
        self._partial: Values | None = None
        self._closed: dict[int, tuple[Values, int]] = {}
        self._latest = -1  # newest open time seen, ns
        self._floor = -1  # open times at or below this were forgotten
        self._bogus = RecentKeys(64)  # implausible open times already returned
        self.revisions = 0
        self.ignored = 0
        self.implausible = 0

    @property
    def open_time(self) -> int | None:
        """Open time (ns) of the candle still forming, or None."""
        return None if self._open is None else self._open[0]

    @property
    def latest(self) -> int | None:
        """Open time (ns) of the newest candle seen, or None."""
        return None if self._latest < 0 else self._latest

    def deadline(self) -> int | None:
        """Return when (ns) the forming candle is final by the clock, or None."""
        if self._open is None:
            return None
        return self._open[0] + self.resolution.nanos + self._grace

    def update(self, row: object, now_ns: int) -> list[TradeBar]:
        """Take one ccxt row received at ``now_ns``; return the bars it made final.

        Raises:
            FeedProtocolError: the row is malformed (the closer's state is unchanged).
        """
        ts, values = parse_ohlcv_row(row)
        return self.apply(ts, values, now_ns)

    def apply(self, ts: int, values: Values, now_ns: int) -> list[TradeBar]:
        """Take one candle (open time ns and values); return the bars it made final."""
        if not plausible(ts, now_ns, skew_ns=self._skew):
            self.implausible += 1
            if not self._bogus.add(ts):
                return []
            return [make_bar(self.symbol, ts, values, self.resolution)]
        if ts in self._closed:
            return self._revise(ts, values)
        if ts <= self._floor:
            self.ignored += 1
            return []
        if ts < self._latest:  # older than the newest candle seen: final at once
            return [self._record(ts, values)]
        out = []
        if self._open is not None and ts > self._open[0]:
            out.append(self._close_open())
        self._latest = ts
        self._open = (ts, values)
        if ts + self.resolution.nanos + self._grace <= now_ns:
            out.append(self._close_open())
        elif self.emit_partial and (self._partial is None or not _same(values, self._partial)):
            self._partial = values
            out.append(make_bar(self.symbol, ts, values, self.resolution, closed=False))
        return out

    def due(self, now_ns: int) -> list[TradeBar]:
        """Return the forming candle as final when its period plus grace ended by ``now_ns``."""
        deadline = self.deadline()
        if deadline is None or deadline > now_ns:
            return []
        return [self._close_open()]

    def drop_open(self) -> None:
        """Forget the forming candle without returning it (the symbol was unsubscribed)."""
        self._open = self._partial = None

    def _close_open(self) -> TradeBar:
        assert self._open is not None
        ts, values = self._open
        self._open = self._partial = None
        return self._record(ts, values)

    def _record(self, ts: int, values: Values) -> TradeBar:
        self._closed[ts] = (values, 0)
        while len(self._closed) > self.keep:
            oldest = next(iter(self._closed))
            del self._closed[oldest]
            self._floor = max(self._floor, oldest)
        return make_bar(self.symbol, ts, values, self.resolution)

    def _revise(self, ts: int, values: Values) -> list[TradeBar]:
        previous, revision = self._closed[ts]
        if _same(values, previous):
            return []
        self._closed[ts] = (values, revision + 1)
        self.revisions += 1
        return [make_bar(self.symbol, ts, values, self.resolution, revision=revision + 1)]
