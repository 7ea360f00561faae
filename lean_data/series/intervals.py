"""Half-open integer intervals ``[start, end)``: merging, set difference and intersection.

Pure functions on lists of ``(start, end)`` tuples (ns since the epoch in this project, but
any ints work). An interval with ``start == end`` is empty and disappears from every result;
one with ``start > end`` is a caller's bug and raises :class:`ValueError`.

Every function returns a *normal* list: sorted by start, pairwise disjoint and with no two
intervals touching (``[0, 5)`` and ``[5, 9)`` come back as ``[0, 9)``), so results compare
with ``==``.

Coverage (see :meth:`lean_data.storage.sqlite.DataPersistence.record_coverage`) layers two such
sets: intervals covered by stored bars and intervals the source reported empty.
:func:`overlay` resolves them into one sorted partition where covered wins.

Example::

    >>> subtract((0, 10), [(2, 4), (4, 5), (8, 12)])
    [(0, 2), (5, 8)]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias

__all__ = [
    "Interval",
    "clip",
    "difference",
    "intersect",
    "merge",
    "overlay",
    "subtract",
    "total",
    "union",
]

Interval: TypeAlias = tuple[int, int]


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Return the union of ``intervals`` as a normal list (sorted, overlaps and touches merged).

    Raises:
        ValueError: an interval ends before it starts.
    """
    ordered = sorted(_checked(intervals))
    merged: list[Interval] = []
    for start, end in ordered:
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def union(*sets: Iterable[Interval]) -> list[Interval]:
    """Return the union of several interval sets as a normal list."""
    return merge(interval for intervals in sets for interval in intervals)


def difference(intervals: Iterable[Interval], removed: Iterable[Interval]) -> list[Interval]:
    """Return the parts of ``intervals`` not in ``removed``, as a normal list.

    Raises:
        ValueError: an interval ends before it starts.
    """
    cuts = merge(removed)
    result: list[Interval] = []
    i = 0
    for start, end in merge(intervals):
        while i < len(cuts) and cuts[i][1] <= start:
            i += 1  # cuts wholly before this interval can't touch later ones either
        j = i
        while j < len(cuts) and cuts[j][0] < end:
            cut_start, cut_end = cuts[j]
            if cut_start > start:
                result.append((start, cut_start))
            start = max(start, cut_end)
            j += 1
        if start < end:
            result.append((start, end))
    return result


def subtract(span: Interval, covered: Iterable[Interval]) -> list[Interval]:
    """Return the missing parts of ``span``: what ``covered`` leaves uncovered, sorted.

    Raises:
        ValueError: an interval ends before it starts.
    """
    return difference([span], covered)


def intersect(a: Iterable[Interval], b: Iterable[Interval]) -> list[Interval]:
    """Return the parts of ``a`` that are also in ``b``, as a normal list.

    Raises:
        ValueError: an interval ends before it starts.
    """
    left, right = merge(a), merge(b)
    result: list[Interval] = []
    i = j = 0
    while i < len(left) and j < len(right):
        start = max(left[i][0], right[j][0])
        end = min(left[i][1], right[j][1])
        if start < end:
            result.append((start, end))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return result


def clip(intervals: Iterable[Interval], span: Interval) -> list[Interval]:
    """Return ``intervals`` cut to ``span``, as a normal list."""
    return intersect(intervals, [span])


def total(intervals: Iterable[Interval]) -> int:
    """Return the length of the union of ``intervals``."""
    return sum(end - start for start, end in merge(intervals))


def overlay(covered: Iterable[Interval], empty: Iterable[Interval]) -> list[tuple[int, int, bool]]:
    """Resolve covered and known-empty intervals into one partition, covered winning.

    Returns:
        ``(start, end, is_empty)`` triples sorted by start and pairwise disjoint: the union
        of ``covered`` (``is_empty`` False) and the parts of ``empty`` outside it (True).
        Neighbours with the same flag never touch (they are merged); a covered and an
        empty interval may.

    Raises:
        ValueError: an interval ends before it starts.
    """
    full = merge(covered)
    rest = difference(empty, full)
    layered = [(start, end, False) for start, end in full]
    layered += [(start, end, True) for start, end in rest]
    layered.sort()
    return layered


def _checked(intervals: Iterable[Interval]) -> Iterable[Interval]:
    for start, end in intervals:
        if start > end:
            raise ValueError(f"an interval must have start <= end, got [{start}, {end})")
        if start < end:
            yield (start, end)
