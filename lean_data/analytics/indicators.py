"""Technical indicators as pure functions over plain lists of floats.

Every function returns lists aligned with its input: element ``i`` belongs to input ``i``
and is ``nan`` while the indicator is still warming up (and for the whole list when the
input is shorter than the warm-up). Inputs must be finite; a ``nan`` or ``inf`` raises
``ValueError`` naming its index rather than silently poisoning every later value.

Conventions (the ones StockCharts' ChartSchool and most charting packages use):

- **SMA** is the mean of the last ``period`` values. The window sum is kept exactly
  (Shewchuk partials, as ``math.fsum``), so a long series does not drift: each value equals
  ``math.fsum(window) / period``.
- **EMA** uses ``alpha = 2 / (period + 1)`` and is seeded with the SMA of the first
  ``period`` values, so its first value is at index ``period - 1``.
- **RSI** uses Wilder's smoothing (``alpha = 1 / period``), seeded with the simple averages
  of the first ``period`` gains and losses; the first value is at index ``period``. A
  window with neither gains nor losses gives 50 (neutral; some libraries return 0).
- **Bollinger bands** are the SMA plus and minus ``num_std`` *population* standard
  deviations (divide by ``period``, not ``period - 1``), as John Bollinger defines them.
- **MACD** is ``EMA(fast) - EMA(slow)`` (from index ``slow - 1``); the signal line is the
  EMA of the MACD line seeded with the SMA of its first ``signal`` values; the histogram
  is MACD minus signal.
- **ATR** is Wilder's: the true range of the first bar is its high minus low (there is no
  previous close), the first ATR is the mean of the first ``period`` true ranges (index
  ``period - 1``), then ``atr = (atr * (period - 1) + tr) / period``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from lean_data.models import TradeBar

__all__ = ["atr", "bollinger_bands", "ema", "macd", "rsi", "sma", "true_range"]

_NAN = math.nan


class _ExactSum:
    """A running sum kept exactly as non-overlapping partials (Shewchuk's algorithm)."""

    __slots__ = ("_partials",)

    def __init__(self) -> None:
        self._partials: list[float] = []

    def add(self, x: float) -> None:
        partials = self._partials
        i = 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        del partials[i:]
        partials.append(x)

    def value(self) -> float:
        return math.fsum(self._partials)


def _check_period(period: int, name: str = "period") -> None:
    if isinstance(period, bool) or not isinstance(period, int) or period < 1:
        raise ValueError(f"{name} must be a positive integer, got {period!r}")


def _finite(values: Sequence[float], what: str = "values") -> list[float]:
    out = [float(v) for v in values]
    for i, v in enumerate(out):
        if not math.isfinite(v):
            raise ValueError(f"{what} must be finite: index {i} is {v!r}")
    return out


def sma(values: Sequence[float], period: int) -> list[float]:
    """Return the simple moving average of ``values`` over ``period`` values.

    Raises:
        ValueError: ``period`` is not a positive integer, or a value is not finite.
    """
    _check_period(period)
    data = _finite(values)
    out = [_NAN] * len(data)
    window = _ExactSum()
    for i, x in enumerate(data):
        window.add(x)
        if i >= period:
            window.add(-data[i - period])
        if i >= period - 1:
            out[i] = window.value() / period
    return out


def _ema_from(data: list[float], period: int, start: int) -> list[float]:
    """EMA of ``data[start:]`` seeded with its first-``period`` SMA, aligned with ``data``."""
    out = [_NAN] * len(data)
    seed = start + period - 1
    if seed >= len(data):
        return out
    value = math.fsum(data[start : seed + 1]) / period
    out[seed] = value
    alpha = 2.0 / (period + 1)
    for i in range(seed + 1, len(data)):
        value += alpha * (data[i] - value)
        out[i] = value
    return out


def ema(values: Sequence[float], period: int) -> list[float]:
    """Return the exponential moving average (alpha ``2 / (period + 1)``, SMA-seeded).

    Raises:
        ValueError: ``period`` is not a positive integer, or a value is not finite.
    """
    _check_period(period)
    return _ema_from(_finite(values), period, 0)


def rsi(values: Sequence[float], period: int = 14) -> list[float]:
    """Return Wilder's relative strength index (0-100), first value at index ``period``.

    Raises:
        ValueError: ``period`` is not a positive integer, or a value is not finite.
    """
    _check_period(period)
    data = _finite(values)
    out = [_NAN] * len(data)
    if len(data) <= period:
        return out
    changes = [data[i] - data[i - 1] for i in range(1, len(data))]
    gain = math.fsum(c for c in changes[:period] if c > 0) / period
    loss = math.fsum(-c for c in changes[:period] if c < 0) / period
    out[period] = _rsi_value(gain, loss)
    for i in range(period, len(changes)):
        change = changes[i]
        gain = (gain * (period - 1) + max(change, 0.0)) / period
        loss = (loss * (period - 1) + max(-change, 0.0)) / period
        out[i + 1] = _rsi_value(gain, loss)
    return out


def _rsi_value(gain: float, loss: float) -> float:
    total = gain + loss
    return 50.0 if total == 0.0 else 100.0 * gain / total


def bollinger_bands(
    values: Sequence[float], period: int = 20, num_std: float = 2.0
) -> tuple[list[float], list[float], list[float]]:
    """Return ``(middle, upper, lower)``: the SMA and SMA +/- ``num_std`` population sigmas.

    Raises:
        ValueError: ``period`` is not a positive integer, ``num_std`` is negative or not
            finite, or a value is not finite.
    """
    if not math.isfinite(num_std) or num_std < 0:
        raise ValueError(f"num_std must be a finite number >= 0, got {num_std!r}")
    middle = sma(values, period)
    data = [float(v) for v in values]
    upper = [_NAN] * len(data)
    lower = [_NAN] * len(data)
    for i in range(period - 1, len(data)):
        mean = middle[i]
        variance = math.fsum((x - mean) ** 2 for x in data[i - period + 1 : i + 1]) / period
        width = num_std * math.sqrt(variance)
        upper[i] = mean + width
        lower[i] = mean - width
    return middle, upper, lower


def macd(
    values: Sequence[float], fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[list[float], list[float], list[float]]:
    """Return ``(macd, signal, histogram)`` lists aligned with ``values``.

    The MACD line starts at index ``slow - 1``; the signal line and histogram at
    ``slow + signal - 2``.

    Raises:
        ValueError: a period is not a positive integer, ``fast >= slow``, or a value is
            not finite.
    """
    for name, period in (("fast", fast), ("slow", slow), ("signal", signal)):
        _check_period(period, name)
    if fast >= slow:
        raise ValueError(f"fast must be shorter than slow, got fast={fast} slow={slow}")
    data = _finite(values)
    fast_line = _ema_from(data, fast, 0)
    slow_line = _ema_from(data, slow, 0)
    line = [f - s for f, s in zip(fast_line, slow_line, strict=True)]  # nan until slow - 1
    signal_line = _ema_from(line, signal, slow - 1)
    hist = [m - s for m, s in zip(line, signal_line, strict=True)]
    return line, signal_line, hist


def true_range(bars: Sequence[TradeBar]) -> list[float]:
    """Return each bar's true range; the first bar's is its high minus its low."""
    out: list[float] = []
    prev_close = _NAN
    for i, bar in enumerate(bars):
        high, low = bar.high, bar.low
        if not (math.isfinite(high) and math.isfinite(low) and math.isfinite(bar.close)):
            raise ValueError(f"bar prices must be finite: index {i} is {bar!r}")
        tr = high - low
        if i:
            tr = max(tr, abs(high - prev_close), abs(low - prev_close))
        out.append(tr)
        prev_close = bar.close
    return out


def atr(bars: Sequence[TradeBar], period: int = 14) -> list[float]:
    """Return Wilder's average true range, first value at index ``period - 1``.

    Raises:
        ValueError: ``period`` is not a positive integer, or a bar price is not finite.
    """
    _check_period(period)
    ranges = true_range(bars)
    out = [_NAN] * len(ranges)
    if len(ranges) < period:
        return out
    value = math.fsum(ranges[:period]) / period
    out[period - 1] = value
    for i in range(period, len(ranges)):
        value = (value * (period - 1) + ranges[i]) / period
        out[i] = value
    return out
