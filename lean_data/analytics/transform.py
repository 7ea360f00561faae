"""Resampling, normalisation and technical indicators over bars (pure, no numpy/pandas).

Resampling rules (``DataTransformer.resample_bars`` and ``resample_quote_bars``):

- **Buckets.** A bucket is ``[open, open + resolution)``; buckets are aligned to
  ``origin_ns`` (the Unix epoch by default), so 1h buckets start on the UTC hour and 1d
  buckets at UTC midnight. With ``tz`` (daily or coarser only) buckets are local calendar
  days of that zone instead: a New York day runs from local midnight to local midnight,
  23 or 25 hours on DST changes. Each output bar is stamped with its bucket's **open**
  time and carries the target resolution. Empty buckets produce no bar.
- **Input.** All bars share one symbol and one resolution that is finer than the target
  and divides it; they are strictly increasing in ``ts_event`` and each lies inside one
  bucket. Anything else raises ``ValueError`` naming the offending index.
- **Aggregation.** Trade bars: first open, max high, min low, last close, volumes summed
  exactly (``math.fsum``, so a thousand volumes of 0.1 sum to 100.0). Quote bars: the same
  OHLC rule on each side, sizes from the last bar (a quote bar's sizes are last-seen).
  ``ts_recv`` is the latest of the inputs', ``backfilled`` is true if any input was,
  ``revision`` is 0 (the aggregate is a new bar). Resampling in two steps (1m to 5m to
  15m) equals one step exactly when the partial volume sums are exact (share counts,
  binary fractions); for volumes such as 0.1 each step rounds once.
- **closed.** An output bar is final (``closed=True``) only if every input bar in it is
  closed **and** the data reaches the bucket's end in time: the end of the last input bar
  (its ``ts_event`` plus its resolution) is at or after the bucket's end. Every bucket but
  the last one passes that test; the last one passes it only when the input ends exactly
  on (or past) its boundary. A session that stops before the bucket ends (an equity day's
  last hour bar ends at 16:00, the New York day at midnight) therefore yields
  ``closed=False`` for the last bucket: without a trading calendar the resampler cannot
  know that no more data is coming.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lean_data.analytics.indicators import atr, bollinger_bands, ema, macd, rsi, sma, true_range
from lean_data.models import NS_PER_DAY, QuoteBar, Resolution, TradeBar, datetime_to_ns
from lean_data.models import ns_to_datetime as _ns_to_datetime

__all__ = [
    "DataTransformer",
    "atr",
    "bollinger_bands",
    "ema",
    "macd",
    "rsi",
    "sma",
    "true_range",
]

_BarT = TypeVar("_BarT", TradeBar, QuoteBar)

NORMALIZE_METHODS = ("minmax", "zscore", "log")
DEFAULT_INDICATORS = ("sma", "ema", "rsi", "bb", "macd", "atr")
_DEFAULT_PARAMS: dict[str, float] = {
    "sma_period": 20,
    "ema_period": 20,
    "rsi_period": 14,
    "bb_period": 20,
    "bb_std": 2.0,
    "macd_fast": 12,
    "macd_slow": 26,
    "macd_signal": 9,
    "atr_period": 14,
}
_PERIOD_PARAM = {
    "sma": "sma_period",
    "ema": "ema_period",
    "rsi": "rsi_period",
    "bb": "bb_period",
    "atr": "atr_period",
}


class _Buckets:
    """Maps a timestamp to the ``[open, end)`` bounds of its bucket."""

    def __init__(self, target: Resolution, origin_ns: int, tz: str | None) -> None:
        self._step = target.nanos
        self._origin = origin_ns
        self._zone: ZoneInfo | None = None
        if tz is not None:
            if target.nanos % NS_PER_DAY:
                raise ValueError(
                    f"tz applies to whole-day resolutions only, got {target}; "
                    "use origin_ns to shift intraday buckets"
                )
            try:
                self._zone = ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {tz!r}") from exc
            self._days = target.nanos // NS_PER_DAY
            self._origin_day = self._local_date(origin_ns)

    def bounds(self, ts: int) -> tuple[int, int]:
        if self._zone is None:
            start = ts - (ts - self._origin) % self._step
            return start, start + self._step
        offset = (self._local_date(ts) - self._origin_day).days
        first = self._origin_day + timedelta(days=offset - offset % self._days)
        return self._midnight(first), self._midnight(first + timedelta(days=self._days))

    def _local_date(self, ts: int) -> date:
        return _ns_to_datetime(ts).astimezone(self._zone).date()

    def _midnight(self, day: date) -> int:
        # A nonexistent local midnight (DST gap) resolves, per PEP 495 fold=0, to the
        # instant of the transition: still the first instant of that local day.
        return datetime_to_ns(datetime(day.year, day.month, day.day, tzinfo=self._zone))


def _target(resolution: Resolution | str) -> Resolution:
    target = Resolution.parse(resolution)
    if target.is_tick:
        raise ValueError("cannot resample to tick resolution")
    return target


def _check_source(bars: Sequence[_BarT], target: Resolution) -> Resolution:
    source = bars[0].resolution
    if source.is_tick or not source < target or target.nanos % source.nanos:
        raise ValueError(
            f"input resolution must be finer than {target} and divide it, got {source} (index 0)"
        )
    return source


def _spans(
    bars: Sequence[_BarT], target: Resolution, origin_ns: int, tz: str | None
) -> Iterator[tuple[int, int, int, int]]:
    """Check ``bars`` and yield ``(first, stop, open, end)`` for each non-empty bucket."""
    buckets = _Buckets(target, origin_ns, tz)
    if not bars:
        return
    source = _check_source(bars, target)
    i = 0
    while i < len(bars):
        start, end = buckets.bounds(bars[i].ts_event)
        j = _bucket_stop(bars, i, end, source)
        yield i, j, start, end
        i = j


def _bucket_stop(bars: Sequence[_BarT], i: int, end: int, source: Resolution) -> int:
    """Return the index after the last bar opening before ``end``, checking each bar."""
    step, symbol = source.nanos, bars[0].symbol
    prev = bars[i - 1].ts_event if i else bars[0].ts_event - 1
    j, n = i, len(bars)
    while j < n:
        bar = bars[j]
        ts = bar.ts_event
        if ts >= end:
            break
        if ts <= prev:
            raise ValueError(
                f"bars must be strictly increasing in ts_event: index {j} ({ts}) "
                f"is not after index {j - 1} ({prev})"
            )
        if bar.resolution is not source or bar.symbol != symbol:
            raise ValueError(
                f"bars must share symbol {symbol!r} and resolution {source}: index {j} "
                f"has {bar.symbol!r} at {bar.resolution}"
            )
        if ts + step > end:
            raise ValueError(f"index {j} ({ts}, {source}) straddles the bucket boundary at {end}")
        prev = ts
        j += 1
    return j


def _flags(bars: Sequence[_BarT], i: int, j: int) -> tuple[int, bool, bool]:
    """Return ``(latest ts_recv, any backfilled, all closed)`` over ``bars[i:j]``."""
    ts_recv, backfilled, closed = 0, False, True
    for k in range(i, j):
        bar = bars[k]
        ts_recv = max(ts_recv, bar.ts_recv)
        backfilled = backfilled or bar.backfilled
        closed = closed and bar.closed
    return ts_recv, backfilled, closed


def _merge_trades(
    bars: Sequence[TradeBar], i: int, j: int, start: int, target: Resolution, done: bool
) -> TradeBar:
    part = bars[i:j]
    first, last = part[0], part[-1]
    high, low = first.high, first.low
    ts_recv, backfilled, closed = 0, False, True
    for bar in part:  # one pass: what _flags gives, with the high and the low
        if bar.high > high:
            high = bar.high
        if bar.low < low:
            low = bar.low
        if bar.ts_recv > ts_recv:
            ts_recv = bar.ts_recv
        backfilled = backfilled or bar.backfilled
        closed = closed and bar.closed
    return TradeBar(
        symbol=first.symbol,
        ts_event=start,
        open=first.open,
        high=high,
        low=low,
        close=last.close,
        volume=math.fsum([bar.volume for bar in part]),
        resolution=target,
        ts_recv=ts_recv,
        closed=closed and done,
        backfilled=backfilled,
    )


def _merge_quotes(
    quotes: Sequence[QuoteBar], i: int, j: int, start: int, target: Resolution, done: bool
) -> QuoteBar:
    first, last = quotes[i], quotes[j - 1]
    bid_high, bid_low = first.bid_high, first.bid_low
    ask_high, ask_low = first.ask_high, first.ask_low
    for k in range(i + 1, j):
        q = quotes[k]
        bid_high, bid_low = max(bid_high, q.bid_high), min(bid_low, q.bid_low)
        ask_high, ask_low = max(ask_high, q.ask_high), min(ask_low, q.ask_low)
    ts_recv, backfilled, closed = _flags(quotes, i, j)
    return QuoteBar(
        symbol=first.symbol,
        ts_event=start,
        bid_open=first.bid_open,
        bid_high=bid_high,
        bid_low=bid_low,
        bid_close=last.bid_close,
        bid_size=last.bid_size,
        ask_open=first.ask_open,
        ask_high=ask_high,
        ask_low=ask_low,
        ask_close=last.ask_close,
        ask_size=last.ask_size,
        resolution=target,
        ts_recv=ts_recv,
        closed=closed and done,
        backfilled=backfilled,
    )


def _data_end(bars: Sequence[_BarT]) -> int:
    last = bars[-1]
    return last.ts_event + last.resolution.nanos


def _minmax(data: list[float]) -> list[float]:
    low, high = min(data), max(data)
    span = high - low
    if span == 0.0:
        return [0.0] * len(data)
    return [(x - low) / span for x in data]


def _zscore(data: list[float]) -> list[float]:
    mean = math.fsum(data) / len(data)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in data) / len(data))
    if std == 0.0:
        return [0.0] * len(data)
    return [(x - mean) / std for x in data]


def _log(data: list[float]) -> list[float]:
    for i, x in enumerate(data):
        if x <= 0.0:
            raise ValueError(f"log normalisation needs positive values: index {i} is {x!r}")
    return [math.log(x) for x in data]


_NORMALIZERS = {"minmax": _minmax, "zscore": _zscore, "log": _log}


def _indicator_plan(names: Iterable[str], params: dict[str, float]) -> list[tuple[str, int]]:
    """Resolve names such as ``"sma"`` or ``"sma_50"`` to ``(kind, period)`` pairs."""
    plan: list[tuple[str, int]] = []
    for name in names:
        kind, _, suffix = name.strip().lower().partition("_")
        if kind == "bollinger":
            kind = "bb"
        if kind == "macd" and not suffix:
            plan.append((kind, 0))
            continue
        if kind not in _PERIOD_PARAM or (suffix and not suffix.isdigit()):
            raise ValueError(
                f"unknown indicator {name!r}: expected one of {', '.join(DEFAULT_INDICATORS)}"
                " (optionally with a period, e.g. 'sma_50')"
            )
        param = _PERIOD_PARAM[kind]
        plan.append((kind, int(suffix) if suffix else _as_int(params[param], param)))
    return plan


def _as_int(value: float, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return value


def _compute(
    kind: str, period: int, bars: Sequence[TradeBar], closes: list[float], p: dict[str, float]
) -> dict[str, list[float]]:
    if kind == "sma":
        return {f"sma_{period}": sma(closes, period)}
    if kind == "ema":
        return {f"ema_{period}": ema(closes, period)}
    if kind == "rsi":
        return {f"rsi_{period}": rsi(closes, period)}
    if kind == "atr":
        return {f"atr_{period}": atr(bars, period)}
    if kind == "bb":
        middle, upper, lower = bollinger_bands(closes, period, p["bb_std"])
        return {
            f"bb_upper_{period}": upper,
            f"bb_middle_{period}": middle,
            f"bb_lower_{period}": lower,
        }
    fast, slow = _as_int(p["macd_fast"], "macd_fast"), _as_int(p["macd_slow"], "macd_slow")
    line, signal_line, hist = macd(closes, fast, slow, _as_int(p["macd_signal"], "macd_signal"))
    return {"macd": line, "macd_signal": signal_line, "macd_hist": hist}


class DataTransformer:
    """Pure transformations of bar series: resampling, normalisation, indicators."""

    @staticmethod
    def resample_bars(
        bars: Sequence[TradeBar],
        resolution: Resolution | str,
        *,
        origin_ns: int = 0,
        tz: str | None = None,
        data_end_ns: int | None = None,
    ) -> list[TradeBar]:
        """Aggregate trade bars into coarser bars (rules in the module docstring).

        Args:
            bars: bars of one symbol and one resolution, strictly increasing in time.
            resolution: the target, e.g. ``"5m"``, ``"1h"``, ``Resolution.DAILY``.
            origin_ns: a bucket boundary (ns since the epoch); buckets repeat from it.
            tz: an IANA zone (e.g. ``"America/New_York"``) for calendar-day buckets; only
                for whole-day resolutions.
            data_end_ns: where the series' data ends when ``bars`` is a part of a longer
                series (the ``closed`` rule's "data reaches the bucket's end"); by default
                the end of the last bar. Resampling a part with the series' own end gives
                the same bars as resampling the whole series and keeping that part's.

        Returns:
            One bar per non-empty bucket, stamped with the bucket's open time.

        Raises:
            ValueError: the input is unsorted, mixed, not finer than or not dividing the
                target, straddles a bucket, or ``tz``/``resolution`` is invalid.
        """
        target = _target(resolution)
        spans = list(_spans(bars, target, origin_ns, tz))
        end_of_data = _data_end(bars) if bars else 0
        if data_end_ns is not None:
            end_of_data = data_end_ns
        return [
            _merge_trades(bars, i, j, start, target, end_of_data >= end)
            for i, j, start, end in spans
        ]

    @staticmethod
    def resample_quote_bars(
        quotes: Sequence[QuoteBar],
        resolution: Resolution | str,
        *,
        origin_ns: int = 0,
        tz: str | None = None,
    ) -> list[QuoteBar]:
        """Aggregate quote bars into coarser bars; same rules as :meth:`resample_bars`.

        Each side gets first open, max high, min low, last close; sizes come from the last
        quote bar of the bucket.

        Raises:
            ValueError: as for :meth:`resample_bars`.
        """
        target = _target(resolution)
        spans = list(_spans(quotes, target, origin_ns, tz))
        end_of_data = _data_end(quotes) if quotes else 0
        return [
            _merge_quotes(quotes, i, j, start, target, end_of_data >= end)
            for i, j, start, end in spans
        ]

    @staticmethod
    def normalize_data(values: Sequence[float], method: str = "minmax") -> list[float]:
        """Return ``values`` rescaled by ``method``.

        Methods: ``"minmax"`` maps to [0, 1] by ``(x - min) / (max - min)``; ``"zscore"``
        gives ``(x - mean) / std`` with the population standard deviation; ``"log"`` is
        the natural logarithm of each value (not log returns). A constant series gives
        all zeros for ``minmax`` and ``zscore``; an empty input gives ``[]``.

        Raises:
            ValueError: unknown method, a value that is not finite, or (``log``) a value
                that is zero or negative.
        """
        normalizer = _NORMALIZERS.get(method)
        if normalizer is None:
            raise ValueError(
                f"unknown normalisation method {method!r}: expected one of "
                f"{', '.join(NORMALIZE_METHODS)}"
            )
        data = [float(v) for v in values]
        for i, x in enumerate(data):
            if not math.isfinite(x):
                raise ValueError(f"values must be finite: index {i} is {x!r}")
        return normalizer(data) if data else []

    @staticmethod
    def calculate_technical_indicators(
        bars: Sequence[TradeBar], indicators: Iterable[str] | None = None, **params: float
    ) -> dict[str, list[float]]:
        """Compute indicators on the bars' closes (ATR on their high/low/close).

        Args:
            bars: the bar series, oldest first.
            indicators: names among ``sma``, ``ema``, ``rsi``, ``bb`` (or ``bollinger``),
                ``macd``, ``atr``; a name may carry its period (``"sma_50"``). ``None``
                computes all six with the default periods.
            **params: ``sma_period`` (20), ``ema_period`` (20), ``rsi_period`` (14),
                ``bb_period`` (20), ``bb_std`` (2.0), ``macd_fast`` (12), ``macd_slow``
                (26), ``macd_signal`` (9), ``atr_period`` (14).

        Returns:
            Lists aligned with ``bars`` (``nan`` during warm-up) keyed ``sma_20``,
            ``ema_20``, ``rsi_14``, ``bb_upper_20``, ``bb_middle_20``, ``bb_lower_20``,
            ``macd``, ``macd_signal``, ``macd_hist``, ``atr_14`` (periods as used).

        Raises:
            ValueError: an unknown indicator or parameter, or an invalid period.
        """
        unknown = sorted(set(params) - set(_DEFAULT_PARAMS))
        if unknown:
            raise ValueError(
                f"unknown indicator parameter(s) {', '.join(unknown)}: expected "
                f"{', '.join(_DEFAULT_PARAMS)}"
            )
        merged = _DEFAULT_PARAMS | params
        plan = _indicator_plan(DEFAULT_INDICATORS if indicators is None else indicators, merged)
        closes = [bar.close for bar in bars]
        result: dict[str, list[float]] = {}
        for kind, period in plan:
            result.update(_compute(kind, period, bars, closes, merged))
        return result
