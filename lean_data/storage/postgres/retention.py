"""PostgreSQL retention: drop whole old partitions, delete old rows from the others.

The rule is the storage interface's, the same as SQLite's (:mod:`lean_data.storage.retention`):
a market row is deleted when it was **received** before the cutoff (``ts_recv < cutoff``:
it has been kept ``days``), a metrics or errors row when its ``ts`` is before it; each
trade-bar series that lost bars loses its covered (not its known-empty) intervals from its
first to past its last deleted bar's open time, and series left without bars leave
``bar_series``. Only how the rows go differs:

- A monthly partition whose whole event-time range ends at or before the cutoff
  (``month end <= cutoff``) is counted (``count(*)``, and how many rows in it were
  received at or after the cutoff) and, when none was, dropped whole: ``DROP TABLE`` of
  the partition, no row-by-row delete, no dead tuples. Its rows are counted as deleted.
  (Event time comes before receive time, so in a partition that old every row was
  received before the cutoff, unless it was backfilled recently: then the partition stays
  and only its rows received before the cutoff are deleted.)
- Every other partition (and any partition not named by lean_data) is scanned:
  ``DELETE ... WHERE ts_recv < cutoff`` (a row whose event time is after its receive time
  can only be found by scanning: meant for start-up or a daily job, like SQLite's).

All in one transaction, under the schema's DDL advisory lock (the lock partition creation
takes), taking table locks in the writer's order (bars, quote bars, ticks, metrics,
errors, the derivatives tables, then series locks for coverage), so it never deadlocks
with a writer. The derivatives tables are not partitioned: their rows received before the
cutoff are deleted.
"""

from __future__ import annotations

from typing import Final

import asyncpg

from lean_data.storage.coverage import merge_coverage
from lean_data.storage.postgres.partitions import Partitions, month_bounds, parse_name
from lean_data.storage.postgres.schema import ddl_lock, quote_ident
from lean_data.storage.postgres.sink import PgTx
from lean_data.storage.rows import resolution_from_text
from lean_data.storage.schema import DERIVATIVE_TABLES, MARKET_TABLES, TABLE_NAMES, SeriesKey

__all__ = ["retain"]

_SPANS: Final = (
    "SELECT feed, symbol, resolution, MIN(ts_event), MAX(ts_event) FROM {table} {where} "
    "GROUP BY feed, symbol, resolution"
)
_PRUNE_SERIES: Final = (
    "DELETE FROM bar_series WHERE NOT EXISTS (SELECT 1 FROM bars WHERE "
    "bars.symbol = bar_series.symbol AND bars.resolution = bar_series.resolution AND "
    "bars.feed = bar_series.feed)"
)

Spans = dict[SeriesKey, tuple[int, int]]


async def retain(
    conn: asyncpg.Connection, schema: str, partitions: Partitions, cutoff: int
) -> dict[str, int]:
    """Apply retention at ``cutoff`` (ns) in one transaction; return rows deleted per table.

    Dropped partitions are forgotten by ``partitions`` once the transaction commits.
    """
    deleted = dict.fromkeys(TABLE_NAMES, 0)
    spans: Spans = {}
    dropped: list[tuple[str, int]] = []
    async with ddl_lock(conn, schema), conn.transaction():
        for table in MARKET_TABLES:
            for name in await partitions.listing(conn, table):
                ours = parse_name(name)
                if ours is not None and ours[0] == table and month_bounds(ours[1])[1] <= cutoff:
                    total, kept = await conn.fetchrow(
                        f"SELECT count(*), count(*) FILTER (WHERE ts_recv >= $1) "
                        f"FROM {quote_ident(name)}",
                        cutoff,
                    )
                    if kept == 0:
                        if table == "bars":
                            await _add_spans(conn, spans, name, None)
                        await conn.execute(f"DROP TABLE {quote_ident(name)}")
                        dropped.append(ours)
                        deleted[table] += int(total)
                        continue
                if table == "bars":
                    await _add_spans(conn, spans, name, cutoff)
                status = await conn.execute(
                    f"DELETE FROM {quote_ident(name)} WHERE ts_recv < $1", cutoff
                )
                deleted[table] += int(status.split()[-1])
        for table in ("metrics", "errors"):
            status = await conn.execute(f"DELETE FROM {table} WHERE ts < $1", cutoff)
            deleted[table] = int(status.split()[-1])
        for table in DERIVATIVE_TABLES:  # not partitioned: aged by receive time, row by row
            status = await conn.execute(f"DELETE FROM {table} WHERE ts_recv < $1", cutoff)
            deleted[table] = int(status.split()[-1])
        await conn.execute("DELETE FROM lean_writers WHERE ts < $1", cutoff)
        await _trim_coverage(PgTx(conn, schema), spans)
        if deleted["bars"]:
            await conn.execute(_PRUNE_SERIES)
    for table, month in dropped:
        partitions.forget(table, month)
    return deleted


async def _add_spans(conn: asyncpg.Connection, spans: Spans, name: str, cutoff: int | None) -> None:
    """Widen each series' deleted span by the bars of partition ``name`` to be deleted."""
    where = "" if cutoff is None else "WHERE ts_recv < $1"
    sql = _SPANS.format(table=quote_ident(name), where=where)
    rows = await (conn.fetch(sql) if cutoff is None else conn.fetch(sql, cutoff))
    for feed, symbol, resolution, first, last in rows:
        key = (feed, symbol, resolution)
        if key in spans:
            first, last = min(first, spans[key][0]), max(last, spans[key][1])
        spans[key] = (first, last)


async def _trim_coverage(tx: PgTx, spans: Spans) -> None:
    """Cut the deleted bars' spans out of covered coverage (known-empty stays)."""
    await tx.lock_series(list(spans))
    for key, (first, last) in sorted(spans.items()):
        span = (first, last + max(resolution_from_text(key[2]).nanos, 1))
        await merge_coverage(tx, key, [], [], [span])
