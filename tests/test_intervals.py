"""lean_data.series.intervals against a brute-force reference: intervals as sets of minutes."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lean_data.series.intervals import (
    Interval,
    clip,
    difference,
    intersect,
    merge,
    overlay,
    subtract,
    total,
    union,
)

DOMAIN = 40  # minutes 0..39; small enough for sets, big enough for every arrangement


@st.composite
def intervals(draw: st.DrawFn) -> Interval:
    start = draw(st.integers(0, DOMAIN))
    return (start, draw(st.integers(start, DOMAIN)))  # zero-length included


interval_lists = st.lists(intervals(), max_size=8)


def minutes(items: list[Interval]) -> set[int]:
    return {m for start, end in items for m in range(start, end)}


def runs(points: set[int]) -> list[Interval]:
    """The normal form of a set of minutes, built the slow way."""
    found: list[Interval] = []
    for m in sorted(points):
        if found and found[-1][1] == m:
            found[-1] = (found[-1][0], m + 1)
        else:
            found.append((m, m + 1))
    return found


@given(interval_lists)
def test_merge_is_the_normal_form_of_the_union(items: list[Interval]) -> None:
    assert merge(items) == runs(minutes(items))


@given(interval_lists, interval_lists)
def test_union_intersect_difference_match_set_algebra(a: list[Interval], b: list[Interval]) -> None:
    assert union(a, b) == runs(minutes(a) | minutes(b))
    assert intersect(a, b) == runs(minutes(a) & minutes(b))
    assert difference(a, b) == runs(minutes(a) - minutes(b))
    assert total(a) == len(minutes(a))


@given(intervals(), interval_lists)
def test_subtract_and_clip_against_a_span(span: Interval, covered: list[Interval]) -> None:
    assert subtract(span, covered) == runs(minutes([span]) - minutes(covered))
    assert clip(covered, span) == runs(minutes(covered) & minutes([span]))


@given(interval_lists, interval_lists)
def test_overlay_is_a_partition_where_covered_wins(
    covered: list[Interval], empty: list[Interval]
) -> None:
    layered = overlay(covered, empty)
    assert [(s, e) for s, e, is_empty in layered if not is_empty] == runs(minutes(covered))
    assert [(s, e) for s, e, is_empty in layered if is_empty] == runs(
        minutes(empty) - minutes(covered)
    )
    assert layered == sorted(layered)
    for (_, end, flag), (start, _, next_flag) in pairwise(layered):
        assert end < start or (end == start and flag != next_flag)


def test_touching_intervals_merge_and_zero_length_ones_vanish() -> None:
    assert merge([(5, 9), (0, 5), (3, 3), (20, 20)]) == [(0, 9)]
    assert subtract((0, 10), [(2, 4), (4, 5), (8, 12)]) == [(0, 2), (5, 8)]
    assert subtract((0, 10), []) == [(0, 10)]
    assert subtract((0, 10), [(-5, 15)]) == []
    assert overlay([(2, 4)], [(0, 10)]) == [(0, 2, True), (2, 4, False), (4, 10, True)]


def test_reversed_interval_raises_value_error() -> None:
    with pytest.raises(ValueError, match=r"start <= end, got \[7, 3\)"):
        merge([(0, 1), (7, 3)])
    with pytest.raises(ValueError, match="start <= end"):
        subtract((5, 4), [])
