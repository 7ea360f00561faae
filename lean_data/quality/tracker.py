"""Rolling data-quality statistics per (feed, symbol): :class:`QualityTracker`.

The engine records every item with its :class:`~lean_data.quality.levels.Verdict`; ``report()``
returns plain dicts (JSON-ready) for dashboards, logs and
``DataEngine.get_data_quality_report``.

Gaps are counted per series (feed, symbol, item kind, resolution) from consecutive bar open
times: a jump of more than one period is one gap, and the number of skipped period slots
(``ceil(jump / period) - 1``) is added to ``missing_bars``. This is **calendar-unaware**:
nights, weekends and holidays of markets that close count as gaps, and so do minutes without
trades in sources that skip empty bars. Ticks have no gaps.

An INVALID item counts in ``messages``, the scores, ``levels`` and ``reasons`` only: its event
and receive times may be the impossible values the screen found (a bar in 2100 would make
every later bar of its series look out of order), so it moves no series clock, no
``first_ts``/``last_ts`` and no latency.

A bar with the open time of the previous bar of its series is a duplicate unless its
``revision`` increased or the previous bar was still in progress (``closed`` False). An
item older than the previous item of its series is out of order and leaves the gap
tracking where it was. Equal tick timestamps are normal and are not duplicates.
"""

from __future__ import annotations

from array import array
from typing import Any, Final

from lean_data.errors import ConfigError
from lean_data.models import MarketData, Tick
from lean_data.native import twin
from lean_data.quality.levels import DataQualityLevel, Verdict, level_index
from lean_data.quality.screen import kind_of
from lean_data.slots import BAR_CLOSED, BAR_REVISION, BAR_TS_EVENT

__all__ = ["NO_TS", "Counters", "QualityTracker", "SeriesClock"]

_LEVELS: Final = tuple(DataQualityLevel)
_INF: Final = float("inf")
_NO_TS: Final = -(2**62)  # no event time yet: below any time (the smallest C int)
NO_TS: Final = _NO_TS
"""The time that stands for none (no event time yet; :meth:`QualityTracker.record_in`'s
``ts_event`` not given): below any time."""
_INVALID: Final = DataQualityLevel.INVALID
# A level's score x 10, exact integer sums. Keyed by the member's ``_value_`` (a float, a
# plain attribute): ``hash(level)`` and ``level.value`` are Python-level calls, too slow
# for the hot path. The tenths (0..10) are also the index of the level's count.
_TENTHS: Final[dict[float, int]] = {level._value_: round(level.value * 10) for level in _LEVELS}
_LEVEL_SLOTS: Final = tuple((level.name, _TENTHS[level._value_]) for level in _LEVELS)
_EXCELLENT_NAME: Final = DataQualityLevel.EXCELLENT.name
# by level_index(): a float-keyed lookup per item would box the score first
_TENTHS_BY_INDEX: Final[tuple[int, ...]] = tuple(_TENTHS[level._value_] for level in _LEVELS)


class SeriesClock:
    """Timing state of one series, for gaps, duplicates and out-of-order items."""

    __slots__ = ("closed", "period", "revision", "ts")

    def __init__(self, period: int) -> None:
        self.period = period
        self.ts = _NO_TS  # the series' latest event time (a C int: no box per store)
        self.closed = True
        self.revision = 0


def _put_int64(values: array[int] | list[int], index: int, value: int) -> None:
    """``values[index] = value`` (OverflowError beyond int64 for an array)."""
    values[index] = value


_PUT_INT64: Final = twin("lean_data._rows", "put_int64", _put_int64)


class Counters:
    """Counters and rolling windows of one (feed, symbol)."""

    __slots__ = (
        "duplicates",
        "first_ts",
        "gaps",
        "idx",
        "last_ts",
        "lat_idx",
        "lat_n",
        "lat_sum",
        "latencies",
        "levels",
        "messages",
        "missing",
        "out_of_order",
        "reasons",
        "scores",
        "series",
        "tenths",
        "window_tenths",
    )

    def __init__(self, window: int) -> None:
        self.messages = 0
        self.tenths = 0  # lifetime sum of scores x 10
        # the last ``window`` scores x 10; a list of small ints (shared objects): compiled,
        # a list index is a C operation, an array's a generic call with a boxed int
        self.scores = [0] * window
        self.window_tenths = 0
        self.idx = 0
        # count per level, indexed by the level's tenths; EXCELLENT's (10) is not kept
        # here but is what the others leave of ``messages``: a clean item updates no list
        self.levels = [0] * 11
        self.reasons: dict[str, int] = {}
        self.gaps = 0
        self.missing = 0
        self.duplicates = 0
        self.out_of_order = 0
        # int64 ns; becomes a list of ints if a latency does not fit (see _latency)
        self.latencies: array[int] | list[int] = array("q", bytes(8 * window))
        self.lat_idx = 0
        self.lat_n = 0
        # a float: a constant cost per item whatever the latencies (an int sum of large
        # ones, such as replayed data's, leaves C ints for long arithmetic); exact while
        # the sum stays below 2**53 ns (104 days), within a part in 1e16 beyond
        self.lat_sum = 0.0
        self.first_ts = _NO_TS  # reported as None while no item counted (C ints: no box
        self.last_ts = _NO_TS  # per store, where an ``int | None`` holds an object)
        self.series: dict[object, SeriesClock] = {}


class QualityTracker:
    """Keep lifetime and rolling quality statistics per (feed, symbol).

    Args:
        window: how many recent items the rolling score and the latency percentiles cover.

    Raises:
        ConfigError: ``window`` is not a positive integer.
    """

    def __init__(self, window: int = 1000) -> None:
        if not isinstance(window, int) or window <= 0:
            raise ConfigError(f"QualityTracker window must be a positive integer, got {window!r}")
        self._window = window
        self._stats: dict[tuple[str, str], Counters] = {}

    def record(
        self,
        feed: str,
        symbol: str,
        item: MarketData,
        verdict: Verdict,
        latency_ns: int | None = None,
    ) -> None:
        """Count one item with its verdict.

        Args:
            feed: the feed the item came from.
            symbol: the item's symbol.
            item: the bar, quote bar or tick.
            verdict: what the validator said about it.
            latency_ns: delivery latency; when None it is derived from ``ts_recv`` (a
                tick: receive - event time; a closed bar: receive - bar end), and nothing
                is recorded when ``ts_recv`` is 0.
        """
        self.record_in(self.stats_of(feed, symbol), None, item, verdict, latency_ns)

    def stats_of(self, feed: str, symbol: str) -> Counters:
        """Return the counters of (``feed``, ``symbol``), made on first use."""
        st = self._stats.get((feed, symbol))
        if st is None:
            st = self._stats[(feed, symbol)] = Counters(self._window)
        return st

    def clock_of(self, st: Counters, item: MarketData) -> SeriesClock:
        """Return the timing state of ``item``'s series within ``st``, made on first use."""
        kind = kind_of(item)  # a subclass of a model takes its base model's path
        if kind is Tick:
            key: object = item.tick_type  # type: ignore[union-attr]  # a Tick
            period = 0
        else:
            period = item.resolution.nanos  # type: ignore[union-attr]  # not a Tick: a bar
            key = (kind, period)
        clock = st.series.get(key)
        if clock is None:
            clock = st.series[key] = SeriesClock(period)
        return clock

    def record_in(
        self,
        st: Counters,
        clock: SeriesClock | None,
        item: MarketData,
        verdict: Verdict,
        latency_ns: int | None = None,
        fields: tuple[Any, ...] | None = None,
        ts_event: int = _NO_TS,
    ) -> None:
        """Like :meth:`record`, with the counters (:meth:`stats_of`) and, when known, the
        series' timing state (:meth:`clock_of`) at hand: the engine keeps both in its
        series record and so skips the lookups. ``fields``: a TradeBar's fields
        (:data:`lean_data.slots.BAR`'s tuple) when the caller has them; ``ts_event``: the
        item's event time when the caller has it (a tick's, from its fields), else it is
        read from ``fields`` or the item."""
        st.messages += 1
        level = verdict.level
        index = level_index(level)
        tenths = _TENTHS_BY_INDEX[index]
        st.tenths += tenths
        idx = st.idx
        st.window_tenths += tenths - st.scores[idx]
        st.scores[idx] = tenths
        st.idx = idx + 1 if idx + 1 < self._window else 0
        if index:  # not EXCELLENT: _summary derives EXCELLENT's count from the others
            st.levels[tenths] += 1
        if verdict.reasons:
            reasons = st.reasons
            for reason in verdict.reasons:
                reasons[reason] = reasons.get(reason, 0) + 1
        if level is _INVALID:  # its times may be the impossible values: they count nowhere
            return
        ts = ts_event
        if ts == _NO_TS:
            ts = item.ts_event if fields is None else fields[BAR_TS_EVENT]
        if ts < st.first_ts or st.first_ts == _NO_TS:
            st.first_ts = ts
        if ts > st.last_ts:
            st.last_ts = ts
        # timing: gaps, duplicates and out-of-order counts of the series
        if clock is None:
            clock = self.clock_of(st, item)
        period = clock.period
        prev = clock.ts
        if ts < prev:  # never for the first: no time is below _NO_TS
            st.out_of_order += 1
        elif not period:  # a tick: no gaps to count, no versions
            clock.ts = ts
        else:  # a bar: its flag and revision from the fields when the caller has them
            if fields is None:
                closed, revision = item.closed, item.revision  # type: ignore[union-attr]
            else:
                closed, revision = fields[BAR_CLOSED], fields[BAR_REVISION]
            if ts > prev:
                if prev != _NO_TS and ts - prev > period:
                    st.gaps += 1
                    st.missing += (ts - prev - 1) // period
                clock.ts = ts
            elif revision <= clock.revision and clock.closed:
                st.duplicates += 1
            clock.closed = bool(closed)
            clock.revision = revision
        if latency_ns is None and (recv := item.ts_recv):
            if period == 0:
                latency_ns = recv - ts
            elif item.closed:  # type: ignore[union-attr]  # period > 0: a bar
                latency_ns = recv - ts - period
        if latency_ns is not None:
            try:
                st.lat_sum += latency_ns
            except OverflowError:  # an int beyond any float: the sum is infinite
                st.lat_sum += _INF if latency_ns > 0 else -_INF
            i = st.lat_idx
            try:
                _PUT_INT64(st.latencies, i, latency_ns)
            except (OverflowError, TypeError):  # beyond int64, or not an int: keep it exactly
                st.latencies = list(st.latencies)
                st.latencies[i] = latency_ns
            st.lat_idx = i + 1 if i + 1 < self._window else 0
            st.lat_n += 1

    def report(self, symbol: str | None = None, feed: str | None = None) -> dict[str, Any]:
        """Return ``{feed: {symbol: stats}}``, optionally for one symbol and/or one feed.

        Each ``stats`` dict holds: ``messages``; ``average_score`` (lifetime) and
        ``rolling_score`` (last ``window`` items), scores in [0, 1]; ``levels`` (count per
        level name, all five present); ``reasons`` (count per reason code); ``gaps``,
        ``missing_bars``, ``duplicates``, ``out_of_order``; ``latency_ms`` with ``avg``
        (lifetime), ``p50`` and ``p99`` (nearest rank over the last ``window`` latencies),
        None when no latency was seen; ``first_ts`` / ``last_ts``, the earliest and latest
        event times in ns.
        """
        out: dict[str, Any] = {}
        for (f, s), st in self._stats.items():
            if (feed is None or f == feed) and (symbol is None or s == symbol):
                out.setdefault(f, {})[s] = self._summary(st)
        return out

    def _summary(self, st: Counters) -> dict[str, Any]:
        in_window = min(st.messages, self._window)
        return {
            "messages": st.messages,
            "average_score": st.tenths / (10 * st.messages),
            "rolling_score": st.window_tenths / (10 * in_window),
            "levels": self._levels(st),
            "reasons": dict(st.reasons),
            "gaps": st.gaps,
            "missing_bars": st.missing,
            "duplicates": st.duplicates,
            "out_of_order": st.out_of_order,
            "latency_ms": self._latency_summary(st),
            "first_ts": None if st.first_ts == _NO_TS else st.first_ts,
            "last_ts": None if st.last_ts == _NO_TS else st.last_ts,
        }

    @staticmethod
    def _levels(st: Counters) -> dict[str, int]:
        """The count per level name; EXCELLENT's is what the other levels leave of the
        messages (record_in counts the others only)."""
        counts = {name: st.levels[tenths] for name, tenths in _LEVEL_SLOTS}
        counts[_EXCELLENT_NAME] = st.messages - sum(st.levels)
        return counts

    def _latency_summary(self, st: Counters) -> dict[str, float | None]:
        if st.lat_n == 0:
            return {"avg": None, "p50": None, "p99": None}
        recent = sorted(st.latencies[: min(st.lat_n, self._window)])
        return {
            "avg": st.lat_sum / st.lat_n / 1e6,
            "p50": _nearest_rank(recent, 50) / 1e6,
            "p99": _nearest_rank(recent, 99) / 1e6,
        }


def _nearest_rank(ordered: list[int], percent: int) -> int:
    rank = -(-percent * len(ordered) // 100)  # ceil(percent * n / 100), in integers
    return ordered[max(rank, 1) - 1]
