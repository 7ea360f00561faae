"""Derived bars kept in PostgreSQL: 5m / 15m / 1h / 1d rollups of the stored minute bars.

Without TimescaleDB's continuous aggregates, the store keeps the coarser resolutions itself,
in the table ``bar_rollups`` (the columns of ``bars``, no quality columns filled, keyed like
it). Like a continuous aggregate they are refreshed after the fact, not on the ingest path:

1. each batch transaction that stores 1-minute bars notes, from its staging table (which
   holds exactly the rows it stored), the (feed, symbol) series and UTC hours it touched
   (:func:`touched`); the store adds them to its pending hours once the batch commits;
2. the writer refreshes the pending hours when its queue is empty (before it answers a
   flush), and under a steady load every few batches (so one refresh covers many batches)
   in a background task on a connection of its own, while the writer goes on committing
   batches (one refresh at a time); :meth:`~lean_data.storage.postgres.PostgresStorage.
   get_rollups` and ``close`` wait for it and refresh what is pending first, so a reader
   always sees rollups of every row it wrote;
3. a refresh (:func:`refresh`) is one transaction holding each series' advisory lock
   (sorted, so refreshers never deadlock). For each pending hour, plus the hour of the
   series' last minute before it when the data stopped short of it (that minute's buckets
   may be final now), the hour's stored minutes are read back and resampled by
   :meth:`~lean_data.analytics.transform.DataTransformer.resample_bars`, the one owner of
   the aggregation rule, with the series' own end of data (so a bucket is final exactly as
   when resampling the whole series), into every rollup that divides an hour. A coarser
   bucket (the day) is resampled from its 1-hour rollups with its volume summed exactly
   from its minutes' volumes, which is what ``resample_bars`` of its minutes gives (see
   :func:`_series` for why, and where it falls back to the minutes): a live minute costs
   its hour, not its day. Then one ``DELETE`` and one COPY replace the buckets of every
   refreshed series.

Refreshes of one series are serialised and each runs after the commit that asked for it,
so the last one saw every minute committed before it, in whatever process: after the
last refresh the rollups equal ``resample_bars`` of the stored minutes, late bars and
revisions included.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Final

import asyncpg

from lean_data.analytics.transform import DataTransformer
from lean_data.models import NS_PER_DAY, NS_PER_HOUR, NS_PER_MINUTE, Resolution, TradeBar
from lean_data.storage import schema as sch
from lean_data.storage.postgres.bulk_read import BAR_COLUMNS, copy_bars
from lean_data.storage.postgres.records import to_record
from lean_data.storage.rows import bar_from_row, bar_row

__all__ = [
    "DEFAULT_ROLLUPS",
    "SELECT_ROLLUPS",
    "Failure",
    "Pending",
    "refresh",
    "rollup_targets",
    "touched",
]


DEFAULT_ROLLUPS: Final = ("5m", "15m", "1h", "1d")
"""The resolutions kept from minute bars unless the store is told otherwise."""

_SOURCE: Final = Resolution.MINUTE
_DAY: Final = NS_PER_DAY
_MIN: Final = NS_PER_MINUTE
_HOUR: Final = NS_PER_HOUR
_HOURLY: Final = Resolution.HOUR

SELECT_ROLLUPS: Final = (
    sch.SELECT["bars"].replace(" FROM bars", " FROM bar_rollups")
    + " WHERE symbol = ?1 AND ts_event >= ?2 AND ts_event < ?3 AND resolution = ?4"
)
"""The rollups of one symbol and resolution in ``[?2, ?3)`` (``bar_from_row`` reads them)."""

_TOUCHED: Final = (
    "SELECT feed, symbol, "
    f"array_agg(DISTINCT ts_event - ((ts_event % {_HOUR}) + {_HOUR}) % {_HOUR}) AS hours "
    "FROM lean_stage_bars WHERE resolution = $1 GROUP BY feed, symbol ORDER BY feed, symbol"
)
_LOCK: Final = (
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
    "FROM unnest($1::text[]) WITH ORDINALITY AS u(k, n) ORDER BY n"
)
_SERIES: Final = "symbol = $1 AND resolution = $2 AND feed = $3"
_ENDS: Final = (  # the series' last minute, and for each hour its last minute before it
    f"SELECT (SELECT max(ts_event) FROM bars WHERE {_SERIES}), "
    f"array(SELECT (SELECT max(ts_event) FROM bars WHERE {_SERIES} AND ts_event < h) "
    "FROM unnest($4::bigint[]) WITH ORDINALITY AS u(h, n) ORDER BY n)"
)
_MINUTES: Final = (
    f"SELECT {BAR_COLUMNS} FROM bars WHERE {_SERIES} AND ts_event >= $4 AND ts_event < $5 "
    "ORDER BY ts_event"
)
_VOLUMES: Final = (  # NULL as NaN, as the minutes read back; and the hours they fall in
    "SELECT array_agg(COALESCE(volume, 'NaN'::float8)), "
    f"array_agg(DISTINCT ts_event - ((ts_event % {_HOUR}) + {_HOUR}) % {_HOUR}) FROM bars "
    f"WHERE {_SERIES} AND ts_event >= $4 AND ts_event < $5"
)
_HOURS: Final = (
    f"{sch.SELECT['bars'].replace(' FROM bars', ' FROM bar_rollups')} WHERE {_SERIES} "
    "AND ts_event >= $4 AND ts_event < $5 ORDER BY ts_event"
)
_CLEAR: Final = (  # each (symbol, feed, resolution, [lo, hi)) of the arrays
    "DELETE FROM bar_rollups r USING unnest($1::text[], $2::text[], $3::text[], $4::bigint[], "
    "$5::bigint[]) AS u(symbol, feed, resolution, lo, hi) WHERE r.symbol = u.symbol AND "
    "r.feed = u.feed AND r.resolution = u.resolution AND r.ts_event >= u.lo AND "
    "r.ts_event < u.hi"
)


def rollup_targets(resolutions: Sequence[Resolution | str]) -> tuple[Resolution, ...]:
    """Check and return the rollup resolutions: coarser than a minute, whole minutes, and
    dividing a day (so a day's minutes hold whole buckets).

    Raises:
        ValueError: a resolution that is not one of those.
    """
    out: list[Resolution] = []
    for value in resolutions:
        target = Resolution.parse(value)
        if not target > _SOURCE or target.nanos % _SOURCE.nanos or _DAY % target.nanos:
            raise ValueError(
                f"a rollup resolution must be coarser than 1m, whole minutes and divide a "
                f"day, got {value!r}"
            )
        if target not in out:
            out.append(target)
    return tuple(out)


Pending = dict[tuple[str, str], set[int]]
"""(feed, symbol) -> UTC hours (ns of their start) whose rollups must be recomputed."""


async def touched(conn: asyncpg.Connection) -> Pending:
    """The series and hours of the 1-minute bars this batch staged (inside its transaction)."""
    found: Pending = {}
    for record in await conn.fetch(_TOUCHED, _SOURCE.name):
        found[(record["feed"], record["symbol"])] = set(record["hours"])
    return found


Failure = tuple[str, str, str]
"""(feed, symbol, why) of a series whose stored minutes could not be rolled up."""


async def refresh(
    conn: asyncpg.Connection, schema: str, targets: Sequence[Resolution], pending: Pending
) -> list[Failure]:
    """Recompute the rollups of the pending hours, in the caller's transaction.

    Every series' new rollups are computed first; then one ``DELETE`` clears the buckets
    they replace and one COPY writes them. A series whose stored minutes cannot be
    resampled (``resample_bars`` refuses them, e.g. a "1m" bar not on a minute boundary,
    straddling a bucket) keeps its rollups as they were and is returned with the reason,
    for the caller to report; the others are refreshed.
    """
    failures: list[Failure] = []
    if not targets or not pending:
        return failures
    series = sorted(pending)
    await conn.execute(_LOCK, [f"lean_data.rollup:{schema}\x1f{f}\x1f{s}" for f, s in series])
    cleared: list[tuple[str, str, str, int, int]] = []  # (symbol, feed, resolution, lo, hi)
    rows: list[tuple[object, ...]] = []
    for feed, symbol in series:
        key = (symbol, _SOURCE.name, feed)
        hours = sorted(pending[(feed, symbol)])
        last, befores = await conn.fetchrow(_ENDS, *key, hours)
        if last is None:  # no minutes (left): nothing to roll up
            continue
        redo = set(hours)
        for hour, before in zip(hours, befores, strict=True):
            if before is not None and before + _MIN < hour:  # data stopped short of this hour:
                redo.add(before - before % _HOUR)  # the buckets of that last minute may be
        try:  # final now that later data exists
            spans, bars = await _series(conn, key, sorted(redo), targets, last + _MIN)
        except ValueError as exc:  # the stored minutes themselves: nothing is replaced
            failures.append((feed, symbol, str(exc)))
            continue
        cleared += [(symbol, feed, name, lo, hi) for name, lo, hi in spans]
        rows += [to_record(sch.BARS, bar_row(bar, feed, None, bar.ts_recv)) for bar in bars]
    if cleared:
        await conn.execute(_CLEAR, *(list(column) for column in zip(*cleared, strict=True)))
    if rows:
        await conn.copy_records_to_table(
            "bar_rollups", records=rows, columns=sch.BAR_COLUMNS, schema_name=schema
        )
    return failures


Span = tuple[str, int, int]
"""(resolution, lo, hi): the rollups of one resolution in ``[lo, hi)`` that are replaced."""


async def _series(
    conn: asyncpg.Connection,
    key: tuple[str, str, str],
    hours: list[int],
    targets: Sequence[Resolution],
    data_end: int,
) -> tuple[list[Span], list[TradeBar]]:
    """One series' new rollups in every bucket that overlaps one of ``hours``.

    Targets dividing an hour are resampled from the minutes of those hours. A coarser
    bucket (a day) is resampled from its 1-hour rollups (those just computed, and the
    stored ones of the other hours, which are current) with the volume summed exactly
    (``math.fsum``) from its minutes' volumes: the values ``resample_bars`` of its minutes
    gives (first open, max high, min low and last close compose; the hours' ``closed``
    saw the same end of data), from 24 rollups and one column instead of 1,440 minutes.
    Where that does not hold (no 1-hour rollups kept, a bucket not made of whole hours, an
    hour whose high or low is NaN, which the max and min skip differently, an hour with
    minutes but no 1-hour rollup), the bucket's minutes are resampled.
    """
    fine = [t for t in targets if _HOUR % t.nanos == 0]
    spans: list[Span] = []
    bars: list[TradeBar] = []
    hourly: dict[int, TradeBar] | None = {} if _HOURLY in fine else None
    for lo, hi in _runs(hours, _HOUR):
        minutes = await copy_bars(conn, _MINUTES, (*key, lo, hi), _SOURCE)
        for target in fine:
            spans.append((target.name, lo, hi))
            made = _resample(minutes, target, data_end)
            bars += made
            if hourly is not None and target == _HOURLY:
                hourly.update((bar.ts_event, bar) for bar in made)
    for target in targets:
        size = target.nanos
        if _HOUR % size == 0:
            continue
        starts = sorted({b for h in hours for b in range(h - h % size, h + _HOUR, size)})
        for start in starts:
            spans.append((target.name, start, start + size))
            if hourly is not None and size % _HOUR == 0:
                composed = await _from_hours(conn, key, target, start, data_end, hours, hourly)
                if composed is not None:
                    bars += composed
                    continue
            minutes = await copy_bars(conn, _MINUTES, (*key, start, start + size), _SOURCE)
            bars += _resample(minutes, target, data_end)
    return spans, bars


async def _from_hours(
    conn: asyncpg.Connection,
    key: tuple[str, str, str],
    target: Resolution,
    start: int,
    data_end: int,
    redone: list[int],
    hourly: dict[int, TradeBar],
) -> list[TradeBar] | None:
    """The ``target`` bucket at ``start`` from its hours (see :func:`_series`); None when
    the hours do not stand for the minutes (an hour's high or low is NaN, or the hours with
    minutes are not the hours with rollups): the caller resamples the minutes."""
    symbol, _, feed = key
    end = start + target.nanos
    stored = await conn.fetch(_HOURS, symbol, _HOURLY.name, feed, start, end)
    parts = {bar.ts_event: bar for bar in map(bar_from_row, stored)}
    for hour in redone:  # replaced by what was just computed (or gone: no minutes left)
        if start <= hour < end:
            parts.pop(hour, None)
            if hour in hourly:
                parts[hour] = hourly[hour]
    ordered = [parts[hour] for hour in sorted(parts)]
    if not ordered:
        return []
    if not all(bar.high == bar.high and bar.low == bar.low for bar in ordered):
        return None
    volumes, hours = await conn.fetchrow(_VOLUMES, *key, start, end)
    if hours is None or set(hours) != parts.keys():  # an hour with minutes, no rollup (kept
        return None  # only recently, say), or rollups whose minutes retention removed
    (bar,) = _resample(ordered, target, data_end)
    return [dataclasses.replace(bar, volume=math.fsum(volumes))]


def _resample(bars: list[TradeBar], target: Resolution, data_end: int) -> list[TradeBar]:
    if not bars:
        return []
    return DataTransformer.resample_bars(bars, target, data_end_ns=data_end)


def _runs(starts: Sequence[int], size: int) -> list[tuple[int, int]]:
    """Sorted bucket starts as ``[lo, hi)`` ranges of consecutive buckets."""
    runs: list[tuple[int, int]] = []
    for start in starts:
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], start + size)
        else:
            runs.append((start, start + size))
    return runs
