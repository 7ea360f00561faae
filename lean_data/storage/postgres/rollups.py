"""Derived bars kept in PostgreSQL: 5m / 15m / 1h / 1d rollups of the stored minute bars.

Without TimescaleDB's continuous aggregates, the store keeps the coarser resolutions itself,
in the table ``bar_rollups`` (the columns of ``bars``, no quality columns filled, keyed like
it), refreshed by every batch transaction that stores minute bars, before it commits
(:meth:`~lean_data.storage.postgres.sink.PgTx.finish`):

1. the (feed, symbol) series of the batch's 1-minute bars and the UTC days they open in
   are read from the staging table (it holds exactly the rows the batch stored);
2. each series is held by a transaction advisory lock (sorted, so writers never deadlock),
   so a refresh always sees every minute committed before it: of two writers refreshing
   the same series, the later one sees the earlier one's bars, and its rollups win;
3. for each touched day (and the day of the series' last minute before the batch, whose
   last bucket may now be complete), the day's stored minutes are read back and resampled
   by :meth:`~lean_data.analytics.transform.DataTransformer.resample_bars`, the one owner
   of the aggregation rule, with the series' own end of data (so a bucket is final exactly
   as it would be when resampling the whole series); the day's rollups are replaced.

So the rollups equal ``resample_bars`` of the stored minutes at every commit, revisions
and late bars included (a revised minute re-reads its day). The cost is reading back the
touched days' minutes (at most 1,440 rows per series and day) once per batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

import asyncpg

from lean_data.analytics.transform import DataTransformer
from lean_data.models import NS_PER_DAY, Resolution, TradeBar
from lean_data.storage import schema as sch
from lean_data.storage.postgres.records import to_record
from lean_data.storage.rows import bar_from_row, bar_row

__all__ = ["DEFAULT_ROLLUPS", "SELECT_ROLLUPS", "refresh", "rollup_targets"]

logger = logging.getLogger("lean_data.storage.postgres")

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
    "SELECT feed, symbol, min(ts_event) AS first, "
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
    f"{sch.SELECT['bars']} WHERE symbol = $1 AND resolution = $2 AND feed = $3 "
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


async def refresh(conn: asyncpg.Connection, schema: str, targets: Sequence[Resolution]) -> int:
    """Bring the rollups of every series the batch's minute bars touched up to date.

    Runs inside the batch transaction, after the batch's bars are stored.

    Returns:
        The number of rollup rows written.
    """
    if not targets:
        return 0
    touched = await conn.fetch(_TOUCHED, _SOURCE.name)
    if not touched:
        return 0
    await conn.execute(
        _LOCK, [f"lean_data.rollup:{schema}\x1f{r['feed']}\x1f{r['symbol']}" for r in touched]
    )
    names = [t.name for t in targets]
    written = 0
    for record in touched:
        feed, symbol = record["feed"], record["symbol"]
        days = set(record["days"])
        before = await conn.fetchval(_BEFORE, symbol, _SOURCE.name, feed, record["first"])
        if before is not None:  # its last bucket may be complete now
            days.add(before - before % _DAY)
        last = await conn.fetchval(_LAST, symbol, _SOURCE.name, feed)
        data_end = int(last) + _SOURCE.nanos
        rows: list[tuple[object, ...]] = []
        for day in sorted(days):
            minutes = [
                bar_from_row(r)
                for r in await conn.fetch(_DAY_MINUTES, symbol, _SOURCE.name, feed, day, day + _DAY)
            ]
            await conn.execute(_CLEAR, symbol, feed, names, day, day + _DAY)
            for target in targets:
                for bar in _resample(minutes, target, data_end):
                    rows.append(to_record(sch.BARS, bar_row(bar, feed, None, bar.ts_recv)))
        if rows:
            await conn.copy_records_to_table(
                "bar_rollups", records=rows, columns=sch.BAR_COLUMNS, schema_name=schema
            )
            written += len(rows)
    return written


def _resample(minutes: list[TradeBar], target: Resolution, data_end: int) -> list[TradeBar]:
    if not minutes:
        return []
    try:
        return DataTransformer.resample_bars(minutes, target, data_end_ns=data_end)
    except ValueError as exc:  # derived data: never worth the batch's stored minutes
        logger.warning("no %s rollup of %s minutes: %s", target, minutes[0].symbol, exc)
        return []
