"""Engine and per-feed counters: messages, rates, latency percentiles, errors, drops, quality.

Recording is cheap and allocation-free per message: counters are integers, the message
rate is kept in per-second buckets (one small tuple per second, not per message, in a
bounded deque), and latency samples go into a bounded ring of int64 values (the last N
samples, ``Samples``) that is only sorted when :meth:`DataMetrics.to_dict` asks for
percentiles.

Definitions:

- ``messages_per_second``: messages counted in the last ``window_s`` *complete* seconds,
  divided by the number of those seconds (fewer than ``window_s`` right after start). The
  current, partial second is left out, so the rate does not jump at each second boundary.
- ``latency_ms``: over the last ``latency_samples`` samples: mean, nearest-rank p50 and
  p99 (always a recorded value), and max; all 0.0 when ``samples`` is 0.
- ``quality``: mean of every recorded score since start (or reset).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from lean_data.models import MarketData, Resolution, Tick, TradeBar
from lean_data.native import time_ns, twin
from lean_data.quality.screen import kind_of
from lean_data.slots import BAR, BAR_CLOSED, BAR_RESOLUTION, BAR_TS_EVENT, BAR_TS_RECV

# C statics for classes of pure modules, used per item (see lean_data.quality.screen)
_TICK: Final = Tick
_TRADE_BAR: Final = TradeBar
_BAR: Final = BAR  # a C static, not a module-dict lookup per use (see quality/screen.py)
_time_ns: Final = time_ns  # a module attribute is a dict lookup per use, too

__all__ = ["OUTCOMES", "DataMetrics", "Outcomes", "delivery_latency_ns", "tick_latency_ns"]

_NS_PER_MS: Final = 1_000_000


OUTCOMES: Final = (
    "delivered", "backfilled", "late", "invalid", "duplicate", "partial", "standby", "error",
)  # fmt: skip
"""What became of each item the pipeline took (``get_metrics()["engine"]["outcomes"]``).

``delivered``: live items, buffered, called back, stored; ``backfilled``: history bars that
filled a gap or a warm-up; ``late``: bars older than their series' head, never delivered
before, called back flagged and stored; ``invalid``: judged INVALID, called back (callbacks
with no ``min_quality``), stored only with ``store_invalid``; ``duplicate``: a repeat of a
bar already delivered; ``partial``: in-progress bars (callbacks that asked for them);
``standby``: bars of a failover's standby feed while the primary delivers; ``error``: an
item the pipeline could not process (in the errors table as ``pipeline_error``).
"""


class Outcomes:
    """The pipeline's counts: items processed, judged INVALID and built, and each of
    :data:`OUTCOMES`; native ints (compiled, a dict's count is boxed anew on every
    increment), read as dicts by :meth:`as_dict` and :meth:`counts`."""

    def __init__(self) -> None:
        self.built = 0  # bars built from trades, derived or closed by the clock: never accepted
        self.delivered = 0
        self.backfilled = 0
        self.late = 0
        self.invalid = 0
        self.duplicate = 0
        self.partial = 0
        self.standby = 0
        self.error = 0

    def as_dict(self) -> dict[str, int]:
        """Every outcome's count, in :data:`OUTCOMES`' order (a new dict)."""
        return {name: getattr(self, name) for name in OUTCOMES}

    def counts(self) -> dict[str, Any]:
        """The items processed, invalid, built and the outcome counts (new dicts)."""
        return {
            # every item that reached delivery ends in exactly one of these four
            "processed": self.delivered + self.backfilled + self.late + self.invalid,
            "invalid": self.invalid,  # judged INVALID: the outcome's count
            "built": self.built,
            "outcomes": self.as_dict(),
        }


_I64_MAX: Final = 2**63 - 1  # a latency sample is clamped to +-_I64_MAX


class _Samples:
    """The last ``size`` ints appended (the latency samples of a scope), oldest first from
    :meth:`values`; a value beyond int64 is clamped to +-(2**63 - 1). The C twin
    (``lean_data._rows.Samples``) keeps them as int64 values, not as int objects: a full
    ring of objects frees, for every new sample, one allocated ``size`` samples before,
    memory long out of the caches."""

    __slots__ = ("_next", "_values", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"Samples: size must be >= 1, got {size}")
        self.size = size
        self._values: list[int] = []
        self._next = 0  # the slot the next sample overwrites once the ring is full

    def append(self, value: int, /) -> None:
        """Keep ``value``; the oldest sample goes once the ring is full."""
        if not isinstance(value, int):
            raise TypeError(f"Samples.append() takes an int, got {type(value).__name__}")
        value = max(-_I64_MAX, min(_I64_MAX, value))
        values = self._values
        if len(values) < self.size:
            values.append(value)
            return
        i = self._next
        values[i] = value
        self._next = i + 1 if i + 1 < self.size else 0

    def values(self) -> list[int]:
        """The samples kept, oldest first."""
        return self._values[self._next :] + self._values[: self._next]

    def __len__(self) -> int:
        return len(self._values)


# the metrics' clock: monotonic seconds, read for every delivered item to find its second;
# with the C module, the kernel's coarse clock (its last tick, ~4 ms, no time-stamp counter
# read: ~30 ns less a read), whose resolution the whole-second windows do not need
_CLOCK: Final[Callable[[], float]] = twin("lean_data._rows", "coarse_clock", time.monotonic)

# the C type where built: typed Any, not _Samples (compiled, an attribute of a class type is
# checked to be one on every store)
_SAMPLES: Final[Callable[[int], Any]] = twin("lean_data._rows", "Samples", _Samples)


class _Scope:
    """Counters of one scope: the whole engine or one feed."""

    __slots__ = (
        "add_latency",
        "buckets",
        "errors",
        "errors_by_kind",
        "latency",
        "messages",
        "quality_count",
        "quality_sum",
        "sec",
        "sec_count",
        "sec_end",
        "start",
    )

    def __init__(self, samples: int, window: int, now: float) -> None:
        self.messages = 0
        self.errors = 0
        self.errors_by_kind: dict[str, int] = {}
        self.latency = _SAMPLES(samples)
        # bound once: compiled, latency.append() is a method lookup by name on every sample
        self.add_latency: Callable[[Any], None] = self.latency.append
        self.quality_sum = 0.0
        self.quality_count = 0
        self.start = now
        self.sec = math.floor(now)  # the second being counted now, ...
        self.sec_end = self.sec + 1  # ... where it ends ...
        self.sec_count = 0  # ... and its count so far
        self.buckets: deque[tuple[int, int]] = deque(maxlen=window + 1)  # completed seconds

    def roll(self, now: float, n: int) -> None:
        """Close the current second (kept if it counted anything) and start the one of ``now``."""
        if self.sec_count:
            self.buckets.append((self.sec, self.sec_count))
        self.sec = math.floor(now)
        self.sec_end = self.sec + 1
        self.sec_count = n

    def rate(self, now: float, window: int) -> float:
        now_sec = math.floor(now)
        first = max(now_sec - window, math.ceil(self.start))
        seconds = now_sec - first
        if seconds <= 0:
            return 0.0
        total = sum(c for s, c in self.buckets if first <= s < now_sec)
        if first <= self.sec < now_sec:
            total += self.sec_count
        return total / seconds

    def add_error(self, n: int, kind: str | None) -> None:
        self.errors += n
        key = kind or "other"
        self.errors_by_kind[key] = self.errors_by_kind.get(key, 0) + n

    def as_dict(self, now: float, window: int) -> dict[str, Any]:
        average = self.quality_sum / self.quality_count if self.quality_count else 0.0
        return {
            "messages": self.messages,
            "messages_per_second": self.rate(now, window),
            "errors": self.errors,
            "errors_by_kind": dict(self.errors_by_kind),
            "latency_ms": _latency_summary(self.latency.values()),
            "quality": {"average": average, "count": self.quality_count},
        }


def _latency_summary(samples: list[int]) -> dict[str, float | int]:
    """Return avg, nearest-rank p50/p99 and max in ms, and the sample count."""
    n = len(samples)
    if n == 0:
        return {"avg": 0.0, "p50": 0.0, "p99": 0.0, "max": 0.0, "samples": 0}
    ordered = sorted(samples)
    return {
        "avg": sum(ordered) / n / _NS_PER_MS,
        "p50": ordered[math.ceil(0.50 * n) - 1] / _NS_PER_MS,
        "p99": ordered[math.ceil(0.99 * n) - 1] / _NS_PER_MS,
        "max": ordered[-1] / _NS_PER_MS,
        "samples": n,
    }


class DataMetrics:
    """Count what the engine does, overall and per feed, and report it as a dict or JSON.

    Args:
        window_s: the message-rate window, in whole seconds (at least 1).
        latency_samples: how many recent latency samples each scope keeps.
        clock: monotonic seconds (injectable for tests); by default time.monotonic, or
            with the compiled package the same clock to the kernel's last tick (Linux:
            a few ms), which is all whole-second windows and an uptime need.
    """

    def __init__(
        self,
        *,
        window_s: float = 60.0,
        latency_samples: int = 10_000,
        clock: Callable[[], float] = _CLOCK,
    ) -> None:
        if window_s < 1 or latency_samples < 1:
            raise ValueError(
                f"window_s must be >= 1 and latency_samples >= 1, "
                f"got {window_s!r} and {latency_samples!r}"
            )
        self._window = int(window_s)
        self._samples = latency_samples
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        """Forget every count, sample and gauge, and restart the uptime."""
        now = self._clock()
        self._engine = _Scope(self._samples, self._window, now)
        self._feeds: dict[str, _Scope] = {}
        self._drops = 0
        self._drops_by_source: dict[str, int] = {}
        self._gauges: dict[str, float] = {}

    def _feed(self, name: str) -> _Scope:
        scope = self._feeds.get(name)
        if scope is None:
            scope = self._feeds[name] = _Scope(self._samples, self._window, self._clock())
        return scope

    def increment_messages(self, n: int = 1, *, feed: str | None = None) -> None:
        """Count ``n`` messages, for the engine and for ``feed`` when given."""
        now = self._clock()
        engine = self._engine
        engine.messages += n
        if now < engine.sec_end:
            engine.sec_count += n
        else:
            engine.roll(now, n)
        if feed is not None:
            scope = self._feeds.get(feed) or self._feed(feed)
            scope.messages += n
            if now < scope.sec_end:
                scope.sec_count += n
            else:
                scope.roll(now, n)

    def record_delivery(self, feed: str, latency_ns: object, score: float) -> None:
        """Count one delivered message of ``feed`` with its latency and quality score.

        The same as :meth:`increment_messages`, :meth:`record_latency_ns` and
        :meth:`record_quality` for one message, with one clock read and one scope lookup
        (the engine calls it for every item it delivers). ``latency_ns`` is an int, taken
        as the object it is (compiled, an int parameter is boxed again for each ring's
        append): the pipeline's, which the quality tracker got too.
        """
        now = self._clock()
        engine = self._engine
        scope = self._feeds.get(feed) or self._feed(feed)
        engine.messages += 1
        scope.messages += 1
        if now < engine.sec_end:
            engine.sec_count += 1
        else:
            engine.roll(now, 1)
        if now < scope.sec_end:
            scope.sec_count += 1
        else:
            scope.roll(now, 1)
        engine.add_latency(latency_ns)
        scope.add_latency(latency_ns)
        if score == score:  # NaN is ignored
            engine.quality_sum += score
            engine.quality_count += 1
            scope.quality_sum += score
            scope.quality_count += 1

    def record_latency_ns(self, ns: int, *, feed: str | None = None) -> None:
        """Record one latency sample in nanoseconds (the hot-path form)."""
        self._engine.add_latency(ns)
        if feed is not None:
            (self._feeds.get(feed) or self._feed(feed)).add_latency(ns)

    def update_latency(self, ms: float, *, feed: str | None = None) -> None:
        """Record one latency sample in milliseconds; NaN and infinities are ignored."""
        if math.isfinite(ms):
            self.record_latency_ns(round(ms * _NS_PER_MS), feed=feed)

    def increment_errors(
        self, n: int = 1, *, feed: str | None = None, kind: str | None = None
    ) -> None:
        """Count ``n`` errors of ``kind`` (``"other"`` when not given)."""
        self._engine.add_error(n, kind)
        if feed is not None:
            self._feed(feed).add_error(n, kind)

    def increment_drops(self, n: int = 1, *, source: str = "") -> None:
        """Count ``n`` items dropped by ``source`` (a queue or subscriber name)."""
        self._drops += n
        key = source or "other"
        self._drops_by_source[key] = self._drops_by_source.get(key, 0) + n

    def record_quality(self, score: float, *, feed: str | None = None) -> None:
        """Record one quality score in [0, 1]; NaN is ignored."""
        if score != score:  # NaN, without a function call on the hot path
            return
        engine = self._engine
        engine.quality_sum += score
        engine.quality_count += 1
        if feed is not None:
            scope = self._feeds.get(feed) or self._feed(feed)
            scope.quality_sum += score
            scope.quality_count += 1

    def set_gauge(self, name: str, value: float) -> None:
        """Set a point-in-time value such as ``cache_hit_rate`` or a queue depth."""
        self._gauges[name] = float(value)

    def messages_per_second(self, feed: str | None = None) -> float:
        """Return the message rate over the last ``window_s`` complete seconds."""
        scope = self._engine if feed is None else self._feeds.get(feed)
        return 0.0 if scope is None else scope.rate(self._clock(), self._window)

    def to_dict(self) -> dict[str, Any]:
        """Return a snapshot: ``{"engine": {...}, "feeds": {name: {...}}}``.

        ``engine`` holds ``messages``, ``messages_per_second``, ``errors``,
        ``errors_by_kind``, ``drops``, ``drops_by_source``, ``latency_ms`` (``avg``,
        ``p50``, ``p99``, ``max``, ``samples``), ``quality`` (``average``, ``count``),
        ``uptime_s`` and ``gauges``; each feed holds the same minus drops, uptime, gauges.
        """
        now = self._clock()
        engine = self._engine.as_dict(now, self._window)
        engine["drops"] = self._drops
        engine["drops_by_source"] = dict(self._drops_by_source)
        engine["uptime_s"] = now - self._engine.start
        engine["gauges"] = dict(self._gauges)
        feeds = {name: scope.as_dict(now, self._window) for name, scope in self._feeds.items()}
        return {"engine": engine, "feeds": feeds}

    def to_json(self) -> str:
        """Return :meth:`to_dict` as JSON (orjson; NaN and infinities become null)."""
        import orjson  # loaded on first use: import lean_data stays light

        return orjson.dumps(self.to_dict()).decode()


def delivery_latency_ns(live: bool, item: MarketData, fields: tuple[Any, ...] | None = None) -> int:
    """Nanoseconds from the item's event (a live bar's close) until now, or from its receipt
    when its feed is not live (a replay) or not registered.

    ``fields``: a TradeBar's fields (:data:`lean_data.slots.BAR`'s tuple) when the caller
    has them; a TradeBar's are otherwise read here in one call.
    """
    now = _time_ns()
    # by kind_of (compiled: identity checks for the models themselves), not isinstance (a
    # generic call for a class of a pure module); no getattr default either (compiled, a
    # miss raises and clears an AttributeError, ~0.35 µs)
    if fields is None and kind_of(item) is _TRADE_BAR:
        fields = _BAR(item)
    if fields is not None:  # a TradeBar: its close time while live (its open if not closed)
        if not live:
            received: int = fields[BAR_TS_RECV]
            return now - received
        opened: int = fields[BAR_TS_EVENT]
        if not fields[BAR_CLOSED]:
            return now - opened
        resolution: Resolution = fields[BAR_RESOLUTION]
        return now - opened - resolution.nanos
    if kind_of(item) is _TICK:
        return tick_latency_ns(live, item.ts_event, item.ts_recv, now)
    if not live:
        return now - item.ts_recv
    return now - item.ts_event - item.resolution.nanos  # type: ignore[union-attr]  # a QuoteBar


def tick_latency_ns(live: bool, ts_event: int, ts_recv: int, now: int = 0) -> int:
    """:func:`delivery_latency_ns` of a tick from its times (the pipeline has them from the
    tick's fields): from its event until ``now`` (0: the clock now) while its feed is live,
    else from its receipt (a tick has no period)."""
    if not now:
        now = _time_ns()
    return now - (ts_event if live else ts_recv)


def symbol_quality(
    per_feed: dict[str, dict[str, Any]], symbol: str, hours: float
) -> dict[str, Any]:
    """Sum a quality tracker's per-feed report of ``symbol`` over its feeds.

    Args:
        per_feed: ``QualityTracker.report(symbol=symbol)``: feed → symbol → statistics.
        symbol: the symbol.
        hours: the storage window the caller adds (repeated in the report).
    """
    from lean_data.quality.levels import DataQualityLevel

    feeds = {feed: stats[symbol] for feed, stats in per_feed.items() if symbol in stats}
    messages = sum(stats["messages"] for stats in feeds.values())
    levels = {
        level.name: sum(stats["levels"][level.name] for stats in feeds.values())
        for level in DataQualityLevel
    }
    scored = sum(stats["average_score"] * stats["messages"] for stats in feeds.values())
    return {
        "symbol": symbol,
        "hours": hours,
        "messages": messages,
        "average_quality_score": scored / messages if messages else None,
        "levels": levels,
        "feeds": feeds,
    }
