"""TimescaleDB, when the server has it: hypertables and compression instead of partitions.

Detected when a schema is created (:func:`create_tables`): if the server lists the
``timescaledb`` extension as available and ``CREATE EXTENSION`` succeeds (it needs the
library preloaded and the right to create it), ``bars``, ``quote_bars`` and ``ticks`` are
created as hypertables on ``ts_event`` (integer ns, chunks of :data:`CHUNK_NS`) with an
integer-now function, native compression (segmented by series, ordered by time) and a
compression policy for chunks older than :data:`COMPRESS_AFTER_NS`; otherwise as native
monthly partitions (:mod:`lean_data.storage.postgres.partitions`). The choice is the
schema's for life: a schema created without TimescaleDB keeps its partitions, and
:func:`in_use` reads which one it is each time a store opens it.

The rollups stay lean_data's own (:mod:`lean_data.storage.postgres.rollups`) rather than
continuous aggregates: a continuous aggregate cannot express ``resample_bars``' rule (a
bucket is final only when the series' data reaches its end; volumes summed exactly), and
one rule must have one owner. Writes, reads and retention are the same SQL on a hypertable
(TimescaleDB routes rows to chunks; retention deletes from the hypertable itself).

Not exercised on the machine this was written on (PostgreSQL 15 without the extension):
``tests/test_postgres.py::test_timescaledb_hypertables_when_the_server_has_them`` runs
where the extension exists and says it is skipped elsewhere.
"""

from __future__ import annotations

import logging
from typing import Final

import asyncpg

from lean_data.models import NS_PER_DAY

__all__ = ["CHUNK_NS", "COMPRESS_AFTER_NS", "available", "create_tables", "in_use"]

logger = logging.getLogger("lean_data.storage.postgres")

CHUNK_NS: Final = 30 * NS_PER_DAY
"""Chunk width of the hypertables (as the native partitions: about a month)."""
COMPRESS_AFTER_NS: Final = 7 * NS_PER_DAY
"""Chunks whose whole time range is older than this are compressed by the policy."""

HYPERTABLES: Final = {
    "bars": ("symbol, resolution, feed", "ts_event"),
    "quote_bars": ("symbol, resolution, feed", "ts_event"),
    "ticks": ("symbol", "ts_event, id"),
}
"""Each hypertable -> (compress_segmentby, compress_orderby)."""

_NOW_FUNCTION: Final = (
    "CREATE OR REPLACE FUNCTION lean_now_ns() RETURNS BIGINT LANGUAGE SQL STABLE AS "
    "$$ SELECT (extract(epoch FROM clock_timestamp()) * 1000000000)::BIGINT $$"
)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def available(conn: asyncpg.Connection) -> str | None:
    """The version of TimescaleDB the server could install, or None."""
    version = await conn.fetchval(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
    )
    return None if version is None else str(version)


async def _extension_schema(conn: asyncpg.Connection) -> str | None:
    name = await conn.fetchval(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'timescaledb'"
    )
    return None if name is None else str(name)


async def in_use(conn: asyncpg.Connection, schema: str) -> str | None:
    """The TimescaleDB version when ``schema``'s ``bars`` is a hypertable, else None."""
    if await _extension_schema(conn) is None:
        return None
    found = await conn.fetchval(
        "SELECT count(*) FROM timescaledb_information.hypertables "
        "WHERE hypertable_schema = $1 AND hypertable_name = 'bars'",
        schema,
    )
    if not found:
        return None
    version = await conn.fetchval(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    )
    return str(version)


async def create_tables(
    conn: asyncpg.Connection, schema: str, market_ddl: tuple[str, ...]
) -> str | None:
    """Turn a new schema's market tables into hypertables when TimescaleDB can be used.

    Runs inside the schema-creation transaction, after :data:`market_ddl` (the market
    tables' ``CREATE TABLE`` statements without their ``PARTITION BY``) would run; it runs
    them itself. Returns the TimescaleDB version used, or None (the caller then creates
    the partitioned tables), logging why not.
    """
    version = await available(conn)
    if version is None:
        return None
    try:
        async with conn.transaction():  # a savepoint: a refusal leaves the schema as it was
            await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb SCHEMA public")
            home = await _extension_schema(conn) or "public"
            fn = _quoted(home)
            for statement in market_ddl:
                await conn.execute(statement)
            await conn.execute(_NOW_FUNCTION)
            for table, (segment, order) in HYPERTABLES.items():
                relation = f"{_quoted(schema)}.{_quoted(table)}"
                await conn.execute(
                    f"SELECT {fn}.create_hypertable($1::regclass, 'ts_event', "
                    "chunk_time_interval => $2::bigint, if_not_exists => TRUE)",
                    relation,
                    CHUNK_NS,
                )
                await conn.execute(
                    f"SELECT {fn}.set_integer_now_func($1::regclass, $2::regproc)",
                    relation,
                    f"{_quoted(schema)}.lean_now_ns",
                )
                await conn.execute(
                    f"ALTER TABLE {relation} SET (timescaledb.compress, "
                    f"timescaledb.compress_segmentby = '{segment}', "
                    f"timescaledb.compress_orderby = '{order}')"
                )
                await conn.execute(
                    f"SELECT {fn}.add_compression_policy($1::regclass, $2::bigint, "
                    "if_not_exists => TRUE)",
                    relation,
                    COMPRESS_AFTER_NS,
                )
    except asyncpg.PostgresError as exc:
        logger.warning(
            "TimescaleDB %s is available but cannot be used (%s: %s); schema %s gets "
            "native monthly partitions",
            version,
            type(exc).__name__,
            exc,
            schema,
        )
        return None
    return version
