"""Small SVG building blocks for the HTML report: elements, scales, axis ticks, downsampling.

Plain strings: every attribute value and text goes through :func:`html.escape`, so a
symbol or a reason from storage can never break the markup. Times are ns since the epoch,
UTC, and axis labels are ISO 8601.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

__all__ = [
    "Scale",
    "element",
    "line_path",
    "minmax_columns",
    "nice_ticks",
    "padded",
    "time_label",
    "time_ticks",
    "title",
]

_NS_PER_DAY = 86_400 * 10**9
_TIME_STEPS_NS = tuple(
    s * 10**9
    for s in (
        60,
        300,
        900,
        1800,
        3600,
        3 * 3600,
        6 * 3600,
        12 * 3600,
        86_400,
        2 * 86_400,
        7 * 86_400,
        14 * 86_400,
    )
)
_MONTH_STEPS = (1, 2, 3, 6, 12, 24, 60, 120)  # beyond two weeks: ticks on the 1st of a month


def _value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def element(tag: str, body: str = "", /, **attributes: object) -> str:
    """``<tag a="v">body</tag>`` (self-closing without a body); ``class_`` is ``class``,
    ``data_time`` is ``data-time``; a None attribute is left out."""
    parts = [tag]
    for name, value in attributes.items():
        if value is None:
            continue
        key = name.rstrip("_").replace("_", "-")
        parts.append(f'{key}="{escape(_value(value), quote=True)}"')
    head = " ".join(parts)
    return f"<{head}>{body}</{tag}>" if body else f"<{head}/>"


def title(text: str) -> str:
    """A ``<title>`` child: the tooltip of its parent shape."""
    return f"<title>{escape(text, quote=False)}</title>"


@dataclass(frozen=True, slots=True)
class Scale:
    """A linear map from ``[lo, hi]`` onto the pixels ``[start, end]`` (end may be < start)."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        """The pixel of ``value``."""
        span = self.hi - self.lo
        if span <= 0:
            return (self.start + self.end) / 2
        return self.start + (value - self.lo) / span * (self.end - self.start)


def padded(lo: float, hi: float, fraction: float = 0.05) -> tuple[float, float]:
    """``[lo, hi]`` widened by ``fraction`` of its span on each side (1 around a point)."""
    span = hi - lo
    if span <= 0:
        pad = abs(lo) * fraction or 1.0
        return lo - pad, hi + pad
    return lo - span * fraction, hi + span * fraction


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round values (1, 2 or 5 times a power of ten apart) in ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    ticks: list[float] = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def time_label(ns: int, span_ns: int) -> str:
    """ISO 8601 UTC for an axis: the date alone over long spans, else date and minute."""
    stamp = datetime.fromtimestamp(ns // 10**9, tz=UTC)
    if span_ns > 4 * _NS_PER_DAY:
        return stamp.strftime("%Y-%m-%d")
    return stamp.strftime("%Y-%m-%dT%H:%MZ")


def time_ticks(lo_ns: int, hi_ns: int, count: int = 6) -> list[tuple[int, str]]:
    """Up to about ``count`` round times in ``[lo_ns, hi_ns]`` with their ISO labels
    (whole minutes, hours or days apart; over long spans, the 1st of every few months)."""
    span = hi_ns - lo_ns
    if span <= 0:
        return [(lo_ns, time_label(lo_ns, span))]
    wanted = span / max(count, 1)
    step = next((s for s in _TIME_STEPS_NS if s >= wanted), None)
    if step is not None:
        first = -(-lo_ns // step) * step
        return [(t, time_label(t, span)) for t in range(first, hi_ns + 1, step)]
    months = next((m for m in _MONTH_STEPS if m * 30 * _NS_PER_DAY >= wanted), _MONTH_STEPS[-1])
    start = datetime.fromtimestamp(lo_ns // 10**9, tz=UTC)
    index = start.year * 12 + start.month - 1
    index += -index % months  # the first month on the step's grid
    ticks: list[tuple[int, str]] = []
    while True:
        stamp = datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
        t = int(stamp.timestamp()) * 10**9
        if t > hi_ns:
            return ticks
        if t >= lo_ns:
            ticks.append((t, time_label(t, span)))
        index += months


def minmax_columns(
    times: Sequence[int], values: Sequence[float], x: Scale, keep: Iterable[int] = ()
) -> list[tuple[float, float]]:
    """The ``(pixel x, value)`` points of a line through ``values``, thinned to what ``x``'s
    pixels can show.

    Per pixel column it keeps the first, lowest, highest and last point, in time order
    (so every spike stays visible), plus the points at the times in ``keep`` (never
    dropped). Few points are returned as they are; non-finite values are left out.
    """
    points = [(t, x(t), v) for t, v in zip(times, values, strict=True) if math.isfinite(v)]
    if len(points) <= 4 * abs(x.end - x.start):
        return [(px, v) for _, px, v in points]
    kept = set(keep)
    out: list[tuple[float, float]] = []
    column: list[tuple[int, float, float]] = []  # (time, px, value) of one pixel column
    for point in points:
        if column and math.floor(point[1]) != math.floor(column[0][1]):
            out.extend(_column_points(column, kept))
            column = []
        column.append(point)
    if column:
        out.extend(_column_points(column, kept))
    return out


def _column_points(
    column: list[tuple[int, float, float]], kept: set[int]
) -> list[tuple[float, float]]:
    low = min(column, key=lambda p: p[2])
    high = max(column, key=lambda p: p[2])
    chosen = {column[0], low, high, column[-1], *(p for p in column if p[0] in kept)}
    return [(px, value) for _, px, value in sorted(chosen)]


def line_path(points: Sequence[tuple[float, float]]) -> str:
    """The ``d`` of a path through ``points`` (a lone point: a 1px dash, so it shows)."""
    if not points:
        return ""
    head = f"M{points[0][0]:.1f},{points[0][1]:.1f}"
    if len(points) == 1:
        return f"{head}h1"
    return head + "".join(f"L{px:.1f},{py:.1f}" for px, py in points[1:])
