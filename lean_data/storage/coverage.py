"""Coverage bookkeeping: which event-time intervals of each trade-bar series storage holds.

The ``coverage`` table (see :mod:`lean_data.storage.schema`) keeps the rows of one
(feed, symbol, resolution) series in normal form: pairwise disjoint, covered winning over
known-empty, same-flag neighbours merged. :func:`merge_coverage` folds new intervals in and
cuts removed ones out, in the caller's transaction (any backend's
:class:`~lean_data.storage.sink.BatchTx`).

Coverage is never durable before the bars it covers. The writer commits a coverage record
in the same transaction as, or a later one than, every bar queued before it; and it
remembers the open-time spans of bars it lost (:data:`LostSpans`, kept by
:func:`with_spans`) and cuts them out of every coverage record it writes later
(:func:`write_coverage`), until bars with those open times are stored again.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
from typing import TypeAlias

from lean_data.series import intervals as iv
from lean_data.storage.rows import resolution_from_text
from lean_data.storage.sanitize import INT64_MAX, INT64_MIN
from lean_data.storage.schema import Row, SeriesKey
from lean_data.storage.sink import BatchTx

__all__ = ["LostSpans", "merge_coverage", "series_of", "with_spans", "write_coverage"]

LostSpans: TypeAlias = dict[SeriesKey, list[iv.Interval]]
"""Open-time intervals of bars dropped after a retry, per series (normal lists)."""

series_of = itemgetter(0, 1, 2)
"""(feed, symbol, resolution) of a ``bars`` row."""


async def merge_coverage(
    tx: BatchTx,
    key: SeriesKey,
    covered: list[iv.Interval],
    empty: list[iv.Interval],
    removed: list[iv.Interval] = [],  # noqa: B006  # never mutated
) -> None:
    """Fold new intervals into the stored coverage of one series, in the open transaction.

    The stored rows near the new intervals are read, combined (covered wins over empty),
    ``removed`` is cut out of the covered rows (the known-empty ones stay), and the rows
    that changed are rewritten, keeping the series in normal form. The caller holds the
    series (:meth:`~lean_data.storage.sink.BatchTx.lock_series`).
    """
    touched = iv.union(covered, empty, removed)
    if not touched:
        return
    old = await tx.coverage_near(key, touched[0][0], touched[-1][1])
    old_covered = [(s, e) for s, e, flag in old if not flag]
    old_empty = [(s, e) for s, e, flag in old if flag]
    new = iv.overlay(
        iv.union(iv.difference(old_covered, removed), covered), iv.union(old_empty, empty)
    )
    if new == old:
        return
    await tx.replace_coverage(key, [s for s, _, _ in old], new)


async def write_coverage(tx: BatchTx, records: list[Row], lost: LostSpans) -> None:
    """Merge a batch's coverage records into the table, minus the spans of lost bars."""
    by_series: dict[SeriesKey, tuple[list[iv.Interval], list[iv.Interval]]] = {}
    for feed, symbol, resolution, start, end, empty in records:
        covered, empties = by_series.setdefault((feed, symbol, resolution), ([], []))
        (empties if empty else covered).append((start, end))
    await tx.lock_series(list(by_series))
    for key, (covered, empties) in by_series.items():
        if cut := lost.get(key):
            covered, empties = iv.difference(covered, cut), iv.difference(empties, cut)
        await merge_coverage(tx, key, covered, empties)


def _bar_span(row: Row) -> iv.Interval | None:
    """The open-time span of a bars row, or None when its key cannot be trusted."""
    ts = row[3]
    if type(ts) is not int or not INT64_MIN <= ts <= INT64_MAX:
        return None
    if not all(type(text) is str for text in series_of(row)):
        return None  # no series key to file the span under
    try:
        nanos = resolution_from_text(row[2]).nanos
    except (ValueError, TypeError):
        return None
    return (ts, ts + max(nanos, 1))


def with_spans(lost: LostSpans, bars: Iterable[Row], *, add: bool) -> LostSpans:
    """Return a copy of ``lost`` with the open-time spans of ``bars`` rows added or removed.

    A row whose open time or resolution is not valid has no span and is skipped.
    """
    spans: dict[SeriesKey, list[iv.Interval]] = {}
    for row in bars:
        span = _bar_span(row)
        if span is not None:
            spans.setdefault(series_of(row), []).append(span)
    result = dict(lost)
    for key, found in spans.items():
        if add:
            result[key] = iv.union(result.get(key, ()), found)
        elif key in result:
            remaining = iv.difference(result[key], found)
            if remaining:
                result[key] = remaining
            else:
                del result[key]
    return result
