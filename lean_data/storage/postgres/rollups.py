"""Derived bars kept in PostgreSQL: 5m / 15m / 1h / 1d rollups of the stored minute bars.

Without TimescaleDB's continuous aggregates, the store keeps the coarser resolutions itself,
in the table ``bar_rollups`` (the columns of ``bars``, no quality columns filled, keyed like
it). Like a continuous aggregate they are refreshed after the fact, not on the ingest path:

1. each batch transaction that writes 1-minute bars notes, from the rows it writes, the
   (feed, symbol) series and UTC hours they fall in (:func:`touched`); the store adds
   them to its pending hours once the batch commits;
2. the writer refreshes the pending hours when its queue is empty (before it answers a
   flush), and under a steady load every few batches (so one refresh covers many batches)
   in a background task on a connection of its own, while the writer goes on committing
   batches (one refresh at a time); :meth:`~lean_data.storage.postgres.PostgresStorage.
   get_rollups` and ``close`` wait for it and refresh what is pending first, so a reader
   always sees rollups of every row it wrote;
3. a refresh (:func:`refresh`) is one transaction holding each series' advisory lock
   (sorted, so refreshers never deadlock), for all pending series together, in a handful
   of statements whatever their number. For each pending hour, plus the hour of the
   series' last minute before it when the data stopped short of it (that minute's buckets
   may be final now), the hour's stored minutes are read back (one binary COPY for all)
   and resampled by :meth:`~lean_data.analytics.transform.DataTransformer.resample_bars`,
   the one owner of the aggregation rule, with the series' own end of data (so a bucket is
   final exactly as when resampling the whole series), into every rollup that divides an
   hour; each 1-hour rollup keeps the exact parts of its minutes' volumes
   (``volume_parts``, :func:`exact_parts`). A coarser bucket (the day) is resampled from
   its 1-hour rollups with its volume summed from their parts, which is what
   ``resample_bars`` of its minutes gives (see :func:`_coarse` for why, and where it falls
   back to the minutes): a live minute costs its hour's minutes and its day's hours, not
   its day's minutes. Then one
   ``DELETE`` and one COPY replace the buckets of every refreshed series.

Refreshes of one series are serialised and each runs after the commit that asked for it,
so the last one saw every minute committed before it, in whatever process: after the
last refresh the rollups equal ``resample_bars`` of the stored minutes, late bars and
revisions included.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Final

import asyncpg

from lean_data.analytics.transform import DataTransformer
from lean_data.models import NS_PER_DAY, NS_PER_HOUR, NS_PER_MINUTE, Resolution, TradeBar
from lean_data.storage import schema as sch
from lean_data.storage.postgres.bulk_read import copy_parts
from lean_data.storage.postgres.records import to_record
from lean_data.storage.rows import bar_from_row, bar_row
from lean_data.storage.schema import Row

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

_LOCK: Final = (
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
    "FROM unnest($1::text[]) WITH ORDINALITY AS u(k, n) ORDER BY n"
)
_SERIES: Final = "symbol = $1 AND resolution = $2 AND feed = $3"
_LASTS: Final = (  # each series' last minute
    "SELECT (SELECT max(ts_event) FROM bars WHERE symbol = u.symbol AND resolution = $3 AND "
    "feed = u.feed) FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(symbol, feed, n) "
    "ORDER BY u.n"
)
_BEFORES: Final = (  # for each (series, hour), the series' last minute before the hour
    "SELECT (SELECT max(ts_event) FROM bars WHERE symbol = u.symbol AND resolution = $4 AND "
    "feed = u.feed AND ts_event < u.hour) FROM unnest($1::text[], $2::text[], $3::int8[]) "
    "WITH ORDINALITY AS u(symbol, feed, hour, n) ORDER BY u.n"
)
_PARTS: Final = (
    "unnest($1::text[], $2::text[], $3::int8[], $4::int8[]) WITH ORDINALITY AS "
    "u(symbol, feed, lo, hi, n)"
)
_IN_PART: Final = (
    "symbol = u.symbol AND resolution = $5 AND feed = u.feed AND ts_event >= u.lo AND "
    "ts_event < u.hi"
)
_HOURS: Final = (  # each part's 1-hour rollups with their volume parts, led by its number
    f"SELECT u.n, r.* FROM {_PARTS} CROSS JOIN LATERAL "
    f"({sch.SELECT['bars'].replace(' FROM bars', ', volume_parts FROM bar_rollups')} "
    f"WHERE {_IN_PART}) AS r ORDER BY u.n, r.ts_event"
)
_FILLED: Final = (  # the hours of each part holding a minute (one index range scan each)
    f"SELECT m.hours FROM {_PARTS} CROSS JOIN LATERAL (SELECT array_agg(DISTINCT ts_event - "
    f"((ts_event % {_HOUR}) + {_HOUR}) % {_HOUR}) AS hours FROM bars WHERE {_IN_PART}) AS m "
    "ORDER BY u.n"
)
_BIG: Final = 2.0**1000  # no sum of a day's volumes below this in size can overflow

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


def exact_parts(volumes: Sequence[float]) -> list[float] | None:
    """Floats whose exact sum is the exact sum of ``volumes``, or None.

    ``math.fsum`` of them, together with the parts of other hours, is ``math.fsum`` of all
    those hours' volumes: fsum is correctly rounded, so it depends only on the exact sum of
    what it adds. Each part is the correctly rounded rest of the sum after the parts before
    it, until the rest is exactly zero (usually one or two parts; none for a zero sum).
    None when a volume is not finite or one is so large (over 2**1000) that sums could
    overflow, where the day is summed from its minutes instead.
    """
    rest = list(volumes)
    if not all(-_BIG < v < _BIG for v in rest):  # also False for NaN
        return None
    parts: list[float] = []
    while (part := math.fsum(rest)) != 0.0:
        parts.append(part)
        rest.append(-part)
    return parts


def touched(found: Pending, records: Sequence[Row]) -> None:
    """Add to ``found`` the series and UTC hours of the 1-minute bars among ``records``
    (``bars`` rows as written)."""
    minute = _SOURCE.name
    for feed, symbol, hour in {
        (r[0], r[1], r[3] - r[3] % _HOUR) for r in records if r[2] == minute
    }:
        found.setdefault((feed, symbol), set()).add(hour)


Failure = tuple[str, str, str]
"""(feed, symbol, why) of a series whose stored minutes could not be rolled up."""


async def refresh(
    conn: asyncpg.Connection, schema: str, targets: Sequence[Resolution], pending: Pending
) -> list[Failure]:
    """Recompute the rollups of the pending hours, in the caller's transaction.

    All series at once, in a few statements whatever their number: their ends, their
    hours' minutes (one binary COPY), their days' hours and volumes; then every new rollup
    is computed, and one ``DELETE`` clears the buckets they replace and one COPY writes
    them. A series whose stored minutes cannot be resampled (``resample_bars`` refuses
    them, e.g. a "1m" bar not on a minute boundary, straddling a bucket) keeps its rollups
    as they were and is returned with the reason, for the caller to report; the others
    are refreshed.
    """
    if not targets or not pending:
        return []
    series = sorted(pending)
    await conn.execute(_LOCK, [f"lean_data.rollup:{schema}\x1f{f}\x1f{s}" for f, s in series])
    plans = await _plans(conn, series, pending)
    await _fine(conn, plans, [t for t in targets if _HOUR % t.nanos == 0])
    await _coarse(conn, plans, [t for t in targets if _HOUR % t.nanos], _HOURLY in targets)
    cleared: list[tuple[str, str, str, int, int]] = []  # (symbol, feed, resolution, lo, hi)
    rows: list[tuple[object, ...]] = []
    for plan in plans:
        if plan.failed is None:
            cleared += [(plan.symbol, plan.feed, name, lo, hi) for name, lo, hi in plan.spans]
            rows += [plan.record(bar) for bar in plan.bars]
    if cleared:
        await conn.execute(_CLEAR, *(list(column) for column in zip(*cleared, strict=True)))
    if rows:
        await conn.copy_records_to_table(
            "bar_rollups", records=rows, columns=_ROLLUP_COLUMNS, schema_name=schema
        )
    return [(p.feed, p.symbol, p.failed) for p in plans if p.failed is not None]


Span = tuple[str, int, int]
"""(resolution, lo, hi): the rollups of one resolution in ``[lo, hi)`` that are replaced."""

_Hour = tuple[TradeBar, list[float] | None]
"""A 1-hour rollup and the exact parts of its minutes' volumes (:func:`exact_parts`)."""

_ROLLUP_COLUMNS: Final = (*sch.BAR_COLUMNS, "volume_parts")


@dataclass
class _Plan:
    """One series' refresh: the hours to redo, its end of data, what it will write."""

    feed: str
    symbol: str
    hours: list[int]  # sorted UTC hour starts
    data_end: int
    spans: list[Span] = field(default_factory=list)
    bars: list[TradeBar] = field(default_factory=list)
    hourly: dict[int, _Hour] = field(default_factory=dict)  # 1h rollups just computed
    failed: str | None = None

    def record(self, bar: TradeBar) -> tuple[object, ...]:
        """The ``bar_rollups`` row of one rollup computed here (an hour's with its parts)."""
        hour = self.hourly.get(bar.ts_event) if bar.resolution is _HOURLY else None
        parts = None if hour is None else hour[1]
        return (*to_record(sch.BARS, bar_row(bar, self.feed, None, bar.ts_recv)), parts)

    def resample(self, bars: list[TradeBar], target: Resolution) -> list[TradeBar]:
        """``resample_bars`` with the series' end of data; a refusal fails the series."""
        if not bars or self.failed is not None:
            return []
        try:
            return DataTransformer.resample_bars(bars, target, data_end_ns=self.data_end)
        except ValueError as exc:  # the stored minutes themselves: nothing is replaced
            self.failed = str(exc)
            return []


async def _plans(
    conn: asyncpg.Connection, series: list[tuple[str, str]], pending: Pending
) -> list[_Plan]:
    """Each series with minutes: its hours to redo (the pending ones, plus the hour of its
    last minute before one when the data stopped short of it: that minute's buckets may
    be final now that later data exists) and its end of data."""
    symbols, feeds = [s for _, s in series], [f for f, _ in series]
    lasts = await conn.fetch(_LASTS, symbols, feeds, _SOURCE.name)
    flat = [(s, f, h) for f, s in series for h in sorted(pending[(f, s)])]
    columns = [list(column) for column in zip(*flat, strict=True)]
    befores = iter(await conn.fetch(_BEFORES, *columns, _SOURCE.name))
    plans: list[_Plan] = []
    for (feed, symbol), (last,) in zip(series, lasts, strict=True):
        redo = set(hours := sorted(pending[(feed, symbol)]))
        for hour, (before,) in zip(hours, islice(befores, len(hours)), strict=True):
            if before is not None and before + _MIN < hour:
                redo.add(before - before % _HOUR)
        if last is not None:  # else no minutes (left): nothing to roll up
            plans.append(_Plan(feed, symbol, sorted(redo), last + _MIN))
    return plans


async def _fine(conn: asyncpg.Connection, plans: list[_Plan], fine: list[Resolution]) -> None:
    """The targets dividing an hour, from the minutes of each plan's hours (one COPY)."""
    runs = [(plan, lo, hi) for plan in plans for lo, hi in _runs(plan.hours, _HOUR)]
    parts = [(plan.symbol, plan.feed, lo, hi) for plan, lo, hi in runs]
    for (plan, lo, hi), minutes in zip(runs, await copy_parts(conn, parts, _SOURCE), strict=True):
        for target in fine:
            plan.spans.append((target.name, lo, hi))
            made = plan.resample(minutes, target)
            plan.bars += made
            if target == _HOURLY and made:
                volumes: dict[int, list[float]] = {bar.ts_event: [] for bar in made}
                for minute in minutes:
                    volumes[minute.ts_event - minute.ts_event % _HOUR].append(minute.volume)
                for bar in made:
                    plan.hourly[bar.ts_event] = (bar, exact_parts(volumes[bar.ts_event]))


async def _coarse(
    conn: asyncpg.Connection, plans: list[_Plan], coarse: list[Resolution], hourly: bool
) -> None:
    """The coarser targets (the day), each bucket overlapping a plan's hours.

    A bucket of whole hours is resampled from its 1-hour rollups (those just computed, and
    the stored ones of the other hours, which are current) with the volume ``math.fsum``
    of their volumes' exact parts, which is ``math.fsum`` of its minutes' volumes: the
    values ``resample_bars`` of its minutes gives (first open, max high, min low and last
    close compose; the hours' ``closed`` saw the same end of data), from 24 rollups instead
    of 1,440 minutes. Where that does not hold (no 1-hour rollups kept, a bucket not made
    of whole hours, an hour whose high or low is NaN, which the max and min skip
    differently, an hour without parts, or the hours with minutes not being the hours
    with rollups), the bucket's minutes are resampled.
    """
    buckets: list[tuple[_Plan, Resolution, int]] = []
    for plan in plans:
        for target in coarse:
            size = target.nanos
            starts = {b for h in plan.hours for b in range(h - h % size, h + _HOUR, size)}
            for start in sorted(starts):
                plan.spans.append((target.name, start, start + size))
                buckets.append((plan, target, start))
    composed: list[tuple[_Plan, Resolution, int]] = []
    slow: list[tuple[_Plan, Resolution, int]] = []
    for bucket in buckets:
        if bucket[0].failed is None:  # a failed series writes nothing
            (composed if hourly and bucket[1].nanos % _HOUR == 0 else slow).append(bucket)
    if composed:
        slow += await _from_hours(conn, composed)
    parts = [(plan.symbol, plan.feed, start, start + t.nanos) for plan, t, start in slow]
    for (plan, target, _), minutes in zip(
        slow, await copy_parts(conn, parts, _SOURCE), strict=True
    ):
        plan.bars += plan.resample(minutes, target)


async def _from_hours(
    conn: asyncpg.Connection, buckets: list[tuple[_Plan, Resolution, int]]
) -> list[tuple[_Plan, Resolution, int]]:
    """Resample each bucket from its hours (see :func:`_coarse`); return those whose hours
    do not stand for their minutes, for the caller to resample from the minutes."""
    columns = [
        [plan.symbol for plan, _, _ in buckets],
        [plan.feed for plan, _, _ in buckets],
        [start for _, _, start in buckets],
        [start + target.nanos for _, target, start in buckets],
    ]
    stored: list[dict[int, _Hour]] = [{} for _ in buckets]
    for record in await conn.fetch(_HOURS, *columns, _HOURLY.name):
        bar = bar_from_row(tuple(record)[1:-1])
        stored[record[0] - 1][bar.ts_event] = (bar, record[-1])
    filled = await conn.fetch(_FILLED, *columns, _SOURCE.name)
    slow: list[tuple[_Plan, Resolution, int]] = []
    for (plan, target, start), hours, (with_minutes,) in zip(buckets, stored, filled, strict=True):
        end = start + target.nanos
        for hour in plan.hours:  # replaced by what was just computed (or gone: no minutes)
            if start <= hour < end:
                hours.pop(hour, None)
                if hour in plan.hourly:
                    hours[hour] = plan.hourly[hour]
        ordered = [hours[hour] for hour in sorted(hours)]
        if not ordered and with_minutes is None:
            continue  # no minutes, no rollups: the bucket stays empty
        volume = _volume(ordered)
        if (
            volume is None  # an hour whose volumes have no exact parts (or none kept yet)
            or with_minutes is None
            or set(with_minutes) != hours.keys()  # an hour with minutes and no rollup (kept
            or not all(b.high == b.high and b.low == b.low for b, _ in ordered)  # recently),
        ):  # or rollups whose minutes retention removed; or a NaN high or low
            slow.append((plan, target, start))
            continue
        made = plan.resample([bar for bar, _ in ordered], target)
        plan.bars += [dataclasses.replace(bar, volume=volume) for bar in made]
    return slow


def _volume(hours: list[_Hour]) -> float | None:
    """``math.fsum`` of the hours' minute volumes, from their exact parts; None when an
    hour has none."""
    parts: list[float] = []
    for _, exact in hours:
        if exact is None:
            return None
        parts += exact
    return math.fsum(parts)


def _runs(starts: Sequence[int], size: int) -> list[tuple[int, int]]:
    """Sorted bucket starts as ``[lo, hi)`` ranges of consecutive buckets."""
    runs: list[tuple[int, int]] = []
    for start in starts:
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], start + size)
        else:
            runs.append((start, start + size))
    return runs
