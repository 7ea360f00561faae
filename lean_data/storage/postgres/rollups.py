"""Derived bars kept in PostgreSQL: 5m / 15m / 1h / 1d rollups of the stored minute bars.

Without TimescaleDB's continuous aggregates, the store keeps the coarser resolutions itself,
in the table ``bar_rollups`` (the columns of ``bars``, no quality columns filled, keyed like
it). Like a continuous aggregate they are refreshed after the fact, not on the ingest path:

1. each batch transaction that stores 1-minute bars notes, from its staging table (which
   holds exactly the rows it stored), the (feed, symbol) series and UTC days it touched
   (:func:`touched`); the store adds them to its pending days once the batch commits;
2. the writer refreshes the pending days when its queue is empty (before it answers a
   flush), and under a steady load every few batches (so one refresh covers many batches)
   in a background task on a connection of its own, while the writer goes on committing
   batches (one refresh at a time); :meth:`~lean_data.storage.postgres.PostgresStorage.
   get_rollups` and ``close`` wait for it and refresh what is pending first, so a reader
   always sees rollups of every row it wrote;
3. a refresh (:func:`refresh`) is one transaction holding each series' advisory lock
   (sorted, so refreshers never deadlock): for each pending day, plus the day of the
   series' last minute before it (its last bucket may be complete now), the day's stored
   minutes are read back and resampled by
   :meth:`~lean_data.analytics.transform.DataTransformer.resample_bars`, the one owner of
   the aggregation rule, with the series' own end of data (so a bucket is final exactly as
   when resampling the whole series), and the day's rollups are replaced.

Refreshes of one series are serialised and each runs after the commit that asked for it,
so the last one saw every minute committed before it, in whatever process: after the
last refresh the rollups equal ``resample_bars`` of the stored minutes, late bars and
revisions included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import asyncpg

from lean_data.analytics.transform import DataTransformer
from lean_data.models import NS_PER_DAY, Resolution
from lean_data.storage import schema as sch
from lean_data.storage.postgres.bulk_read import BAR_COLUMNS, copy_bars
from lean_data.storage.postgres.records import to_record
from lean_data.storage.rows import bar_row

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

SELECT_ROLLUPS: Final = (
    sch.SELECT["bars"].replace(" FROM bars", " FROM bar_rollups")
    + " WHERE symbol = ?1 AND ts_event >= ?2 AND ts_event < ?3 AND resolution = ?4"
)
"""The rollups of one symbol and resolution in ``[?2, ?3)`` (``bar_from_row`` reads them)."""

_TOUCHED: Final = (
    "SELECT feed, symbol, "
    f"array_agg(DISTINCT ts_event - ((ts_event % {_DAY}) + {_DAY}) % {_DAY}) AS days "
    "FROM lean_stage_bars WHERE resolution = $1 GROUP BY feed, symbol ORDER BY feed, symbol"
)
_LOCK: Final = (
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
    "FROM unnest($1::text[]) WITH ORDINALITY AS u(k, n) ORDER BY n"
)
_BEFORE: Final = (
    "SELECT max(ts_event) FROM bars WHERE symbol = $1 AND resolution = $2 AND feed = $3 "
    "AND ts_event < $4"
)
_LAST: Final = "SELECT max(ts_event) FROM bars WHERE symbol = $1 AND resolution = $2 AND feed = $3"
_DAY_MINUTES: Final = (
    f"SELECT {BAR_COLUMNS} FROM bars WHERE symbol = $1 AND resolution = $2 AND feed = $3 "
    "AND ts_event >= $4 AND ts_event < $5 ORDER BY ts_event"
)
_CLEAR: Final = (
    "DELETE FROM bar_rollups WHERE symbol = $1 AND feed = $2 AND resolution = ANY($3::text[]) "
    "AND ts_event >= $4 AND ts_event < $5"
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
"""(feed, symbol) -> UTC days (ns of their midnight) whose rollups must be recomputed."""


async def touched(conn: asyncpg.Connection) -> Pending:
    """The series and days of the 1-minute bars this batch staged (inside its transaction)."""
    found: Pending = {}
    for record in await conn.fetch(_TOUCHED, _SOURCE.name):
        found[(record["feed"], record["symbol"])] = set(record["days"])
    return found


Failure = tuple[str, str, str]
"""(feed, symbol, why) of a series whose stored minutes could not be rolled up."""


async def refresh(
    conn: asyncpg.Connection, schema: str, targets: Sequence[Resolution], pending: Pending
) -> list[Failure]:
    """Recompute the rollups of the pending days, in the caller's transaction.

    A series whose stored minutes cannot be resampled (``resample_bars`` refuses them, e.g.
    a "1m" bar not on a minute boundary, straddling a bucket) keeps its rollups as they
    were and is returned with the reason, for the caller to report; the others are
    refreshed.
    """
    failures: list[Failure] = []
    if not targets or not pending:
        return failures
    series = sorted(pending)
    await conn.execute(_LOCK, [f"lean_data.rollup:{schema}\x1f{f}\x1f{s}" for f, s in series])
    names = [t.name for t in targets]
    for feed, symbol in series:
        days = set(pending[(feed, symbol)])
        for day in sorted(days):  # a day whose data stopped short of midnight before it:
            before = await conn.fetchval(_BEFORE, symbol, _SOURCE.name, feed, day)
            if before is not None and before + _SOURCE.nanos < day:  # its last bucket may
                days.add(before - before % _DAY)  # be final now that later data exists
        last = await conn.fetchval(_LAST, symbol, _SOURCE.name, feed)
        if last is None:  # no minutes (left): nothing to roll up
            continue
        data_end = int(last) + _SOURCE.nanos
        rows: list[tuple[object, ...]] = []
        try:
            for day in sorted(days):
                params = (symbol, _SOURCE.name, feed, day, day + _DAY)
                minutes = await copy_bars(conn, _DAY_MINUTES, params, _SOURCE)
                for target in targets:
                    if minutes:
                        for bar in DataTransformer.resample_bars(
                            minutes, target, data_end_ns=data_end
                        ):
                            rows.append(to_record(sch.BARS, bar_row(bar, feed, None, bar.ts_recv)))
        except ValueError as exc:  # the stored minutes themselves: nothing is written
            failures.append((feed, symbol, str(exc)))
            continue
        for day in days:
            await conn.execute(_CLEAR, symbol, feed, names, day, day + _DAY)
        if rows:
            await conn.copy_records_to_table(
                "bar_rollups", records=rows, columns=sch.BAR_COLUMNS, schema_name=schema
            )
    return failures
