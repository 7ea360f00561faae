"""SQLite retention: delete old rows while keeping coverage truthful.

Market and derivatives rows are aged by receive time (``ts_recv``: how long they have been
kept), metrics and errors by ``ts``. Each trade-bar series that loses bars loses its
covered (not its known-empty) intervals from its first to past its last deleted bar's open
time; a series left without bars keeps its ``bar_series`` row and id (a writer may hold
the id) and drops out of :data:`~lean_data.storage.schema.SQLITE_SERIES_KEYS`, which lists series
with bars. Full-table scans: meant for start-up or a daily job, not for every batch.
"""

from __future__ import annotations

from typing import Final

from lean_data.storage.coverage import merge_coverage
from lean_data.storage.rows import resolution_from_text
from lean_data.storage.schema import TABLE_NAMES
from lean_data.storage.sqlite_sink import SqliteTx

__all__ = ["delete_before"]

_DELETED_BAR_SPANS: Final = (
    "SELECT feed, symbol, resolution, MIN(ts_event), MAX(ts_event) FROM bars "
    "WHERE ts_recv < ? GROUP BY feed, symbol, resolution"
)
_STORED_IN: Final = {"bars": "bar_rows"}
"""Tables whose rows are stored under another name (``bars`` is a view of ``bar_rows``)."""


async def delete_before(tx: SqliteTx, cutoff: int) -> dict[str, int]:
    """Delete market rows received before ``cutoff`` and metrics/errors older.

    Runs in the caller's ``BEGIN IMMEDIATE`` transaction, which commits. Coverage stays
    truthful: the covered (not the known-empty) intervals of each bar series lose the
    event-time span from its first to past its last deleted bar.
    """
    db = tx.db
    for feed, symbol, resolution, first, last in await db.execute_fetchall(
        _DELETED_BAR_SPANS, (cutoff,)
    ):
        span = (first, last + max(resolution_from_text(resolution).nanos, 1))
        await merge_coverage(tx, (feed, symbol, resolution), [], [], [span])
    deleted: dict[str, int] = {}
    for table in TABLE_NAMES:
        column = "ts" if table in ("metrics", "errors") else "ts_recv"  # market, derivatives
        stored = _STORED_IN.get(table, table)
        cursor = await db.execute(f"DELETE FROM {stored} WHERE {column} < ?", (cutoff,))
        deleted[table] = cursor.rowcount
        await cursor.close()
    return deleted
