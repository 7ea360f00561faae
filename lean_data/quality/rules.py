"""Pure, stateless rules of :mod:`lean_data.quality.validator`: limits, split ratios, messages.

Nothing here keeps state: the move/range limit tiers, split matching, the checks of
impossible values (OHLC, prices, sizes) and the helpers that build reason codes, messages
and verdicts. The public names are re-exported by :mod:`lean_data.quality.validator`.
"""

from __future__ import annotations

import math
from typing import Final

from lean_data.models import NS_PER_HOUR, NS_PER_MINUTE, NS_PER_SECOND
from lean_data.quality.levels import CLEAN, DataQualityLevel, Verdict

INF: Final = math.inf
LOG_TWO: Final = math.log(2.0)
SIGMA_PER_MEAN_ABS: Final = 1.2533  # sqrt(pi / 2): sigma of a normal / its mean |x|

GOOD: Final = DataQualityLevel.GOOD
FAIR: Final = DataQualityLevel.FAIR
POOR: Final = DataQualityLevel.POOR
INVALID: Final = DataQualityLevel.INVALID

# Typed as variable-length tuples: mypyc (2.4) leaves a fixed-length Final tuple of floats
# unset when a loop iterates over it ("value for final name ... was not set").
FORWARD_SPLITS: Final[tuple[float, ...]] = (1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 8.0, 10.0, 20.0)
"""Split ratios (new shares per old share) looked for when a price falls."""

REVERSE_SPLITS: Final[tuple[int, ...]] = (2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50)
"""Reverse-split ratios (old shares per new share) looked for when a price rises."""

Issue = tuple[str, DataQualityLevel, str]
Issues = list[Issue] | None


def tier(period_ns: int) -> tuple[float, float]:
    """Return (hard limit, floor) in log-return units for a resolution period."""
    if period_ns <= NS_PER_SECOND:
        return 0.10, 0.01
    if period_ns <= NS_PER_MINUTE:
        return 0.15, 0.02
    if period_ns <= NS_PER_HOUR:
        return 0.25, 0.05
    return 0.50, 0.10


def match_split(log_move: float, tolerance: float = 0.2) -> str | None:
    """Return the split that explains a price jump (``"7:1"``, ``"3:2"``, ``"1:20"``), or None.

    Args:
        log_move: log(new price / old price); falls are matched against
            :data:`FORWARD_SPLITS`, rises against :data:`REVERSE_SPLITS`.
        tolerance: the largest log residual left once the ratio is undone; for small ratios
            it shrinks to a fifth of log(ratio), so a 25 % fall is not called a 3:2 split.
    """
    size = abs(log_move)
    best = 0.0
    best_residual = INF
    for ratio in FORWARD_SPLITS if log_move < 0 else REVERSE_SPLITS:
        log_ratio = math.log(ratio)
        residual = abs(size - log_ratio)
        if residual < best_residual and residual <= min(tolerance, 0.2 * log_ratio):
            best, best_residual = ratio, residual
    if best == 0.0:
        return None
    if log_move > 0:
        return f"1:{best:g}"
    return "3:2" if best == 1.5 else f"{best:g}:1"


def verdict(issues: list[Issue]) -> Verdict:
    """Build the verdict of a non-empty issue list: its lowest level, all reasons and messages."""
    level = DataQualityLevel.EXCELLENT
    for _, lvl, _ in issues:
        if lvl.value < level.value:
            level = lvl
    reasons = tuple(reason for reason, _, _ in issues)
    return Verdict(level, reasons, "; ".join(message for _, _, message in issues))


def add(issues: Issues, code: str, level: DataQualityLevel, message: str) -> list[Issue]:
    """Append an issue, creating the list on the first one (clean items build no list)."""
    if issues is None:
        return [(code, level, message)]
    issues.append((code, level, message))
    return issues


def out_of_order(ts: int, previous: int, backfilled: bool, issues: Issues) -> Verdict:
    """Judge a bar older than its series' last one (POOR unless it is backfilled)."""
    if not backfilled:
        msg = f"open time {ts} is before the previous bar's {previous}"
        issues = add(issues, "out_of_order", POOR, msg)
    return CLEAN if issues is None else verdict(issues)


def ohlc_problem(side: str, o: float, h: float, low: float, c: float) -> tuple[str, str] | None:
    """Return (reason, message) for impossible OHLC values, or None when they are fine."""
    named = tuple(
        zip(
            (f"{side}open", f"{side}high", f"{side}low", f"{side}close"),
            (o, h, low, c),
            strict=True,
        )
    )
    for name, value in named:
        if not math.isfinite(value):
            return "non_finite_price", f"{name} {fmt(value)} is not a finite price"
    for name, value in named:
        if value <= 0.0:
            return "non_positive_price", f"{name} {fmt(value)} is not positive"
    if h < low:
        return "ohlc_inconsistent", f"{side}high {fmt(h)} is below {side}low {fmt(low)}"
    top, bottom = max(o, c), min(o, c)
    if h < top:
        return "ohlc_inconsistent", (
            f"{side}high {fmt(h)} is below max({side}open, {side}close) {fmt(top)}"
        )
    if low > bottom:
        return "ohlc_inconsistent", (
            f"{side}low {fmt(low)} is above min({side}open, {side}close) {fmt(bottom)}"
        )
    return None


def bad_price(name: str, value: float) -> Verdict:
    """Return the INVALID verdict of a tick price that is not positive or not finite."""
    code = "non_positive_price" if value <= 0.0 else "non_finite_price"
    return Verdict(INVALID, (code,), f"{name} {fmt(value)} is impossible")


def size_issue(first: float, second: float, what: str) -> Issue | None:
    """Return an INVALID issue for a negative or infinite size, a FAIR one for NaN."""
    if 0.0 <= first < INF and 0.0 <= second < INF:  # every sane item: no tuple to walk
        return None
    for size in (first, second):
        if not 0.0 <= size < INF:
            if size != size:
                return "nan_size", FAIR, f"{what} is NaN (unknown)"
            return "negative_size", INVALID, f"{what} {fmt(size)} is impossible"
    return None


def range_issue(o: float, h: float, low: float, c: float, lim: float) -> Issue:
    """Describe an extreme range by its largest part: upper wick, lower wick or body."""
    top, bottom = max(o, c), min(o, c)
    up, down, body = math.log(h / top), math.log(bottom / low), math.log(top / bottom)
    level = POOR if max(up, down) > LOG_TWO else FAIR
    if up >= down and up >= body:
        msg = f"high {fmt(h)} is {pct(up)} above max(open, close) {fmt(top)}"
    elif down >= body:
        msg = f"low {fmt(low)} is {pct(-down)} below min(open, close) {fmt(bottom)}"
    else:
        msg = f"open {fmt(o)} and close {fmt(c)} are {pct(body)} apart"
    return "extreme_range", level, f"{msg} (range limit {pct(lim)})"


def split_words(split: str) -> str:
    """Describe a split ratio from :func:`match_split` for a message."""
    kind = "reverse split" if split.startswith("1:") else "split"
    return f"probable corporate action: {split} {kind}"


def fmt(value: float) -> str:
    """Format a price or size for a message (10 significant digits)."""
    return f"{value:.10g}"


def pct(log_move: float, sign: float = 1.0) -> str:
    """Format a log move as a percentage change; ``sign`` < 0 reads it as a fall."""
    return f"{abs(math.expm1(log_move if sign >= 0 else -log_move)) * 100:.2f}%"


def direction(move: float) -> str:
    """Return where a move went: ``above`` or ``below`` the reference."""
    return "above" if move > 0 else "below"
