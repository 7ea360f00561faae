"""Monthly event-time partitions of the market tables, created before a batch needs them.

``bars``, ``quote_bars`` and ``ticks`` are ``PARTITION BY RANGE (ts_event)``, one partition
per UTC calendar month, named ``<table>_p<YYYY><MM>`` and bounded
``FROM (<first ns of the month>) TO (<first ns of the next month>)`` (``MINVALUE`` /
``MAXVALUE`` where a month reaches past the 64-bit ns range, 1677 and 2262). A month
suits minute bars (45,000 bars of one symbol a month) and keeps retention's unit a month.

There is no DEFAULT partition on purpose: rows in a DEFAULT partition for a month would
make creating that month's partition later fail (PostgreSQL refuses a new partition while
the DEFAULT one holds rows of its range), so a row with no partition is an error, and the
writer makes sure that never happens: before each batch :meth:`Partitions.ensure` creates
the months its rows fall in plus the month after the last of them (so live data finds
next month's partition already there at midnight), each ``CREATE TABLE IF NOT EXISTS ...
PARTITION OF``, in its own short transaction under an advisory lock of the schema (the DDL
lock that schema creation and retention take too), so concurrent writers in other
processes create each partition once and never deadlock with each other. The months
known to exist are cached; a missing-partition error (another process's retention dropped
one) clears the cache and the batch is retried.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg

from lean_data.models import datetime_to_ns
from lean_data.storage import schema as sch
from lean_data.storage.postgres.schema import ddl_lock, quote_ident
from lean_data.storage.sanitize import INT64_MAX, INT64_MIN
from lean_data.storage.schema import Row

__all__ = ["PARTITIONED", "Partitions", "month_bounds", "month_of", "partition_name"]

PARTITIONED: Final = {sch.BARS: 3, sch.QUOTE_BARS: 3, sch.TICKS: 2}
"""Partitioned table index -> the position of ``ts_event`` in its queued rows."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAME = re.compile(r"^(?P<table>\w+)_p(?P<year>\d{4})(?P<month>\d{2})$")
_FIRST_MONTH: Final = 1677 * 12 + 8  # 1677-09: the month of INT64_MIN ns
_LAST_MONTH: Final = 2262 * 12 + 3  # 2262-04: the month of INT64_MAX ns

Month = int
"""Months since year 0: ``year * 12 + month - 1``."""


def month_of(ts_ns: int) -> Month:
    """Return the UTC month a time (ns since the epoch) falls in."""
    when = _EPOCH + timedelta(microseconds=ts_ns // 1000)
    return when.year * 12 + when.month - 1


def month_bounds(month: Month) -> tuple[int, int]:
    """Return ``[first ns, first ns of the next month)`` (unclamped: may pass int64)."""
    year, index = divmod(month, 12)
    start = datetime(year, index + 1, 1, tzinfo=UTC)
    following = datetime(year + (index == 11), (index + 1) % 12 + 1, 1, tzinfo=UTC)
    return datetime_to_ns(start), datetime_to_ns(following)


def partition_name(table: str, month: Month) -> str:
    """``bars_p202201`` for January 2022."""
    year, index = divmod(month, 12)
    return f"{table}_p{year:04d}{index + 1:02d}"


def parse_name(name: str) -> tuple[str, Month] | None:
    """Return (table, month) of one of our partition names, or None."""
    found = _NAME.match(name)
    if found is None:
        return None
    return found["table"], int(found["year"]) * 12 + int(found["month"]) - 1


def _bound(ns: int) -> str:
    if ns <= INT64_MIN:
        return "MINVALUE"
    if ns > INT64_MAX:
        return "MAXVALUE"
    return str(ns)


def months_of(rows: Iterable[Row], at: int) -> set[Month]:
    """The months of the int64 times at position ``at`` of ``rows`` (others are skipped:
    such a row is rejected before it needs a partition)."""
    months: set[Month] = set()
    low, high = 1, 0  # the bounds of the month last seen: sorted rows rarely leave it
    for row in rows:
        ts = row[at]
        if type(ts) is not int or low <= ts < high or not INT64_MIN <= ts <= INT64_MAX:
            continue
        month = month_of(ts)
        months.add(month)
        low, high = month_bounds(month)
    return months


class Partitions:
    """The months that have partitions, per table, and their creation.

    Args:
        schema: the store's schema.
    """

    def __init__(self, schema: str) -> None:
        self._schema = schema
        self._known: set[tuple[str, Month]] = set()
        self.hypertables = False
        """The market tables are TimescaleDB hypertables: it makes their chunks."""

    async def listing(self, conn: asyncpg.Connection, table: str) -> list[str]:
        """Return the names of ``table``'s partitions (ours and any others); of a
        hypertable, the table itself (its chunks are TimescaleDB's)."""
        if self.hypertables:
            return [table]
        rows = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass($1) ORDER BY c.relname",
            table,
        )
        return [str(row[0]) for row in rows]

    async def load(self, conn: asyncpg.Connection) -> None:
        """Learn which of our monthly partitions exist."""
        self._known.clear()
        for table in PARTITIONED:
            name = sch.TABLE_NAMES[table]
            for partition in await self.listing(conn, name):
                found = parse_name(partition)
                if found is not None and found[0] == name:
                    self._known.add(found)

    def forget(self, table: str, month: Month) -> None:
        """Note that a partition was dropped."""
        self._known.discard((table, month))

    def clear(self) -> None:
        """Forget every partition (another process may have dropped some)."""
        self._known.clear()

    def needed(self, groups: Sequence[list[Row]]) -> list[tuple[str, Month]]:
        """The partitions the market rows of ``groups`` need that are not known to exist,
        with the month after each table's last one (created ahead)."""
        wanted: set[tuple[str, Month]] = set()
        for table, at in PARTITIONED.items():
            if table < len(groups) and groups[table]:
                months = months_of(groups[table], at)
                if months:
                    months.add(max(months) + 1)
                name = sch.TABLE_NAMES[table]
                wanted.update((name, m) for m in months if _FIRST_MONTH <= m <= _LAST_MONTH)
        return sorted(wanted - self._known)

    async def ensure(self, conn: asyncpg.Connection, groups: Sequence[list[Row]]) -> None:
        """Create the partitions a batch needs, in their own transaction (not the batch's:
        creating a partition locks its parent table until commit)."""
        if self.hypertables:
            return
        missing = self.needed(groups)
        if not missing:
            return
        schema = quote_ident(self._schema)
        async with ddl_lock(conn, self._schema), conn.transaction():
            for table, month in missing:
                start, end = month_bounds(month)
                partition = f"{schema}.{quote_ident(partition_name(table, month))}"
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {partition} PARTITION OF "
                    f"{schema}.{quote_ident(table)} "
                    f"FOR VALUES FROM ({_bound(start)}) TO ({_bound(end)})"
                )
        self._known.update(missing)
