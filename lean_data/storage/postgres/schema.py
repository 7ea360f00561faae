"""PostgreSQL schema, migrations and SQL text of :class:`~lean_data.storage.postgres.
PostgresStorage`.

Everything lives in one PostgreSQL schema per store (``schema=``, default ``lean_data``);
every connection of the store's pool has ``search_path`` set to it, so the SQL text here
names tables without a schema. Column names and order are SQLite's
(:mod:`lean_data.storage.schema`), so rows decode into the same tuples; types are mapped
at the edge (:mod:`lean_data.storage.postgres.records`): INT → BIGINT, REAL → DOUBLE
PRECISION, the flags ``closed``, ``backfilled`` and ``suspicious`` → BOOLEAN, TEXT →
``TEXT COLLATE "C"`` (byte order, as SQLite compares). The tables::

    schema_version (version INTEGER NOT NULL)
    bars        (feed, symbol, resolution, ts_event BIGINT, open .. volume DOUBLE PRECISION,
                 closed BOOLEAN, revision BIGINT, backfilled BOOLEAN, quality_score DOUBLE
                 PRECISION, quality_level, reasons, ts_recv BIGINT,
                 PRIMARY KEY (symbol, resolution, ts_event, feed)) PARTITION BY RANGE (ts_event)
    quote_bars  (the same with bid_* / ask_* prices and sizes)       PARTITION BY RANGE (ts_event)
    ticks       (id BIGSERIAL, SQLite's tick columns)               PARTITION BY RANGE (ts_event)
                 index ticks_symbol_ts (symbol, ts_event)
    metrics     (id BIGSERIAL PRIMARY KEY, ts BIGINT, payload TEXT), index on ts
    errors      (id BIGSERIAL PRIMARY KEY, ts BIGINT, kind, feed, symbol, message, detail),
                 index on ts
    bar_rollups (the columns of bars, PRIMARY KEY as bars', volume_parts DOUBLE PRECISION[]):
                 the 5m / 15m / 1h / 1d bars derived from the stored minutes; an hour's
                 volume_parts sum exactly to its minutes' volumes, for its day's volume
                 (:mod:`lean_data.storage.postgres.rollups`)
    coverage    (feed, symbol, resolution, start_ns BIGINT, end_ns BIGINT, empty BOOLEAN,
                 PRIMARY KEY (feed, symbol, resolution, start_ns))
    bar_series  (feed, symbol, resolution, PRIMARY KEY (feed, symbol, resolution))
    funding_rates, open_interest, mark_prices (SQLite's columns, PRIMARY KEY (symbol,
                 ts_event, feed)), liquidations (PRIMARY KEY (symbol, ts_event, feed, side,
                 price, quantity)): derivatives records, not partitioned (version 3)
    book_snapshots (SQLite's columns, bids / asks BYTEA, valid BOOLEAN, PRIMARY KEY (symbol,
                 ts_recv, feed), index (symbol, ts_event)): order-book snapshots (version 4)
    lean_writers (writer TEXT PRIMARY KEY, attempt BIGINT, ts BIGINT): each store's last
                 batch transaction, to tell whether a commit whose answer was lost went
                 through (:mod:`lean_data.storage.postgres.sink`)

The market tables are partitioned by event time, one partition per UTC month
(``bars_p202201`` holds bars opening in January 2022), created ahead by the writer
(:mod:`lean_data.storage.postgres.partitions`). Metrics and errors are few rows a minute
and are not partitioned. Each pooled connection also has two temporary staging tables,
``lean_stage_bars`` and ``lean_stage_quote_bars`` (the table's columns plus ``seq``, the
row's place in its batch; ``ON COMMIT DELETE ROWS``), which a batch with a stored key
fills with binary COPY before one set-based upsert per table.

:data:`SCHEMA_VERSION` and :data:`MIGRATIONS` follow SQLite's discipline: a newer schema
is refused, an older one upgraded in place when opened (PostgreSQL has its own numbering;
version 1 is the first; 2 adds ``bar_rollups.volume_parts``, NULL in the rows of version 1:
their days are summed from their minutes until their hours are refreshed; 3 adds the
derivatives tables, which :data:`DDL` creates; 4 adds ``book_snapshots``, likewise).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import asyncpg

from lean_data.storage import schema as sch
from lean_data.storage.postgres import timescale
from lean_data.storage.sanitize import COLUMN_KINDS

ROLLUPS_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS bar_rollups (LIKE bars INCLUDING DEFAULTS, "
    "PRIMARY KEY (symbol, resolution, ts_event, feed))"
)
"""The rollups (:mod:`lean_data.storage.postgres.rollups`): the columns of ``bars``..."""

ROLLUP_PARTS_DDL: Final = (
    "ALTER TABLE bar_rollups ADD COLUMN IF NOT EXISTS volume_parts DOUBLE PRECISION[]"
)
"""... and the exact parts of an hour's minute volumes (version 2)."""

__all__ = [
    "COLUMNS",
    "FLAGS",
    "SCHEMA_VERSION",
    "SQL",
    "STAGE",
    "STAGING_DDL",
    "UPSERT",
    "column_kinds",
    "create_or_migrate",
    "ddl_lock",
    "pg_sql",
    "quote_ident",
]

SCHEMA_VERSION: Final = 4

FLAGS: Final = frozenset({"closed", "backfilled", "suspicious", "valid"})
"""Integer columns of SQLite that PostgreSQL stores as BOOLEAN."""

COLUMNS: Final = {
    sch.BARS: sch.BAR_COLUMNS,
    sch.QUOTE_BARS: sch.QUOTE_COLUMNS,
    sch.TICKS: sch.TICK_COLUMNS,
    sch.METRICS: sch.METRICS_COLUMNS,
    sch.ERRORS: sch.ERRORS_COLUMNS,
    **sch.DERIVATIVE_COLUMNS,
}
"""The columns a queued row of each table fills, in order (SQLite's)."""

_TEXT = 'TEXT COLLATE "C"'
_KINDS = {
    "text": f"{_TEXT} NOT NULL",
    "text or NULL": _TEXT,
    "integer": "BIGINT NOT NULL",
    "real or NULL": "DOUBLE PRECISION",
    "blob": "BYTEA NOT NULL",
}
_KEY = "symbol, resolution, ts_event, feed"


def column_kinds(kind: int) -> tuple[str, ...]:
    """What each column of a queued row of entry kind ``kind`` holds (sanitize's words;
    an errors row is a time and five texts)."""
    return COLUMN_KINDS.get(kind, ("integer", *("text",) * 5))


def _definitions(table: int) -> str:
    kinds = column_kinds(table)
    return ", ".join(
        f"{name} {'BOOLEAN NOT NULL' if name in FLAGS else _KINDS[kind]}"
        for name, kind in zip(COLUMNS[table], kinds, strict=True)
    )


DDL: Final = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS bars ({_definitions(sch.BARS)}, PRIMARY KEY ({_KEY})) "
    "PARTITION BY RANGE (ts_event)",
    f"CREATE TABLE IF NOT EXISTS quote_bars ({_definitions(sch.QUOTE_BARS)}, "
    f"PRIMARY KEY ({_KEY})) PARTITION BY RANGE (ts_event)",
    f"CREATE TABLE IF NOT EXISTS ticks (id BIGSERIAL, {_definitions(sch.TICKS)}) "
    "PARTITION BY RANGE (ts_event)",
    "CREATE INDEX IF NOT EXISTS ticks_symbol_ts ON ticks (symbol, ts_event)",
    f"CREATE TABLE IF NOT EXISTS metrics (id BIGSERIAL PRIMARY KEY, {_definitions(sch.METRICS)})",
    "CREATE INDEX IF NOT EXISTS metrics_ts ON metrics (ts)",
    f"CREATE TABLE IF NOT EXISTS errors (id BIGSERIAL PRIMARY KEY, {_definitions(sch.ERRORS)})",
    "CREATE INDEX IF NOT EXISTS errors_ts ON errors (ts)",
    f"CREATE TABLE IF NOT EXISTS coverage (feed {_TEXT} NOT NULL, symbol {_TEXT} NOT NULL, "
    f"resolution {_TEXT} NOT NULL, start_ns BIGINT NOT NULL, end_ns BIGINT NOT NULL, "
    "empty BOOLEAN NOT NULL, PRIMARY KEY (feed, symbol, resolution, start_ns))",
    f"CREATE TABLE IF NOT EXISTS bar_series (feed {_TEXT} NOT NULL, symbol {_TEXT} NOT NULL, "
    f"resolution {_TEXT} NOT NULL, PRIMARY KEY (feed, symbol, resolution))",
    ROLLUPS_DDL,
    ROLLUP_PARTS_DDL,
    "CREATE TABLE IF NOT EXISTS lean_writers (writer TEXT PRIMARY KEY, "
    "attempt BIGINT NOT NULL, ts BIGINT NOT NULL)",
    *(
        f"CREATE TABLE IF NOT EXISTS {sch.TABLE_NAMES[table]} ({_definitions(table)}, "
        f"PRIMARY KEY ({', '.join(key)}))"
        for table, key in sch.DERIVATIVE_KEYS.items()
    ),
    sch.BOOK_EVENT_INDEX,
)
"""Every table and index; ``IF NOT EXISTS``, so it also adds what an older schema lacks."""

HYPERTABLE_DDL: Final = tuple(
    statement.replace(" PARTITION BY RANGE (ts_event)", "")
    for statement in DDL
    if "PARTITION BY" in statement
)
"""The market tables as plain tables, for TimescaleDB to make hypertables of."""

MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: (ROLLUP_PARTS_DDL,),
    2: (),  # version 3 adds the derivatives tables, which DDL creates
    3: (),  # version 4 adds book_snapshots, which DDL creates
}
"""Statements run, after :data:`DDL`, on a schema of version ``n`` to make it n + 1."""

STAGE: Final = {sch.BARS: "lean_stage_bars", sch.QUOTE_BARS: "lean_stage_quote_bars"}
"""The temporary staging table of each upserted table."""

STAGING_DDL: Final = "; ".join(
    f"CREATE TEMP TABLE IF NOT EXISTS {stage} ({_definitions(table)}, seq BIGINT NOT NULL) "
    "ON COMMIT DELETE ROWS"
    for table, stage in STAGE.items()
)
"""Run once on each new connection of the pool (its ``init``)."""


def _upsert(table: int) -> str:
    name = sch.TABLE_NAMES[table]
    columns = ", ".join(COLUMNS[table])
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS[table] if c not in _KEY)
    # One row per key (Postgres refuses to update a row twice in one statement): the
    # winner of the batch is the highest revision, then final over in-progress, then the
    # latest queued, which is what applying the rows one by one would have kept. Rows go
    # in key order, so concurrent writers lock shared keys in the same order.
    return (
        f"INSERT INTO {name} AS t ({columns}) SELECT DISTINCT ON ({_KEY}) {columns} "
        f"FROM {STAGE[table]} WHERE seq >= $1 AND seq < $2 "
        f"ORDER BY {_KEY}, revision DESC, closed DESC, seq DESC "
        f"ON CONFLICT ({_KEY}) DO UPDATE SET {updates} "
        "WHERE EXCLUDED.revision > t.revision OR "
        "(EXCLUDED.revision = t.revision AND EXCLUDED.closed >= t.closed)"
    )


UPSERT: Final = {table: _upsert(table) for table in STAGE}
"""Move staged rows ``$1 <= seq < $2`` into their table, keeping the newest version."""

_ARRAY = {"text": "text[]", "text or NULL": "text[]", "integer": "bigint[]", "blob": "bytea[]"}


def _replace(table: int) -> str:
    columns, key = COLUMNS[table], ", ".join(sch.DERIVATIVE_KEYS[table])
    arrays = ", ".join(
        f"${i}::{'boolean[]' if name in FLAGS else _ARRAY.get(kind, 'float8[]')}"
        for i, (name, kind) in enumerate(zip(columns, column_kinds(table), strict=True), 1)
    )
    listed = ", ".join(columns)
    updates = ", ".join(
        f"{c} = EXCLUDED.{c}" for c in columns if c not in sch.DERIVATIVE_KEYS[table]
    )
    # One row per key (the last queued wins, as SQLite's executemany leaves it), in key
    # order, so concurrent writers lock shared keys in the same order.
    return (
        f"INSERT INTO {sch.TABLE_NAMES[table]} AS t ({listed}) SELECT DISTINCT ON ({key}) "
        f"{listed} FROM unnest({arrays}) WITH ORDINALITY AS u({listed}, lean_seq) "
        f"ORDER BY {key}, lean_seq DESC ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


REPLACE: Final = {table: _replace(table) for table in sch.DERIVATIVE_KEYS}
"""Write the derivatives rows given as one array per column (``$1`` .. ``$n``), replacing
the stored row of a key: one statement per table per batch."""

_LOCK: Final = "SELECT pg_advisory_lock(hashtextextended($1, 0))"
_UNLOCK: Final = "SELECT pg_advisory_unlock(hashtextextended($1, 0))"


@asynccontextmanager
async def ddl_lock(conn: asyncpg.Connection, schema: str) -> AsyncIterator[None]:
    """Hold the schema's DDL lock (schema creation, partitions, retention) while inside.

    A session advisory lock, taken before the caller's transaction begins: a transaction
    that began before another creator committed may still see the catalog as it was
    (``CREATE SCHEMA IF NOT EXISTS`` then fails on a duplicate key), one that begins
    after the wait sees it as it is. The server releases it with a lost connection.
    """
    key = f"lean_data.ddl:{schema}"
    await conn.execute(_LOCK, key)
    try:
        yield
    finally:
        try:
            if not conn.is_closed():
                await conn.execute(_UNLOCK, key)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            pass  # the connection is gone, and its session locks with it


SERIES_LOCK: Final = (
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
    "FROM unnest($1::text[]) WITH ORDINALITY AS u(k, n) ORDER BY n"
)
"""Hold the coverage of each series named in ``$1`` (sorted) until the transaction ends."""

INSERT_SERIES: Final = (
    "INSERT INTO bar_series (feed, symbol, resolution) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING"
)
DELETE_COVERAGE: Final = (
    "DELETE FROM coverage WHERE feed = $1 AND symbol = $2 AND resolution = $3 "
    "AND start_ns = ANY($4::bigint[])"
)
INSERT_COVERAGE: Final = (
    "INSERT INTO coverage (feed, symbol, resolution, start_ns, end_ns, empty) "
    "SELECT $1, $2, $3, s, e, f FROM unnest($4::bigint[], $5::bigint[], $6::boolean[]) "
    "AS u(s, e, f)"
)
MARK_ATTEMPT: Final = (
    "INSERT INTO lean_writers (writer, attempt, ts) VALUES ({writer}, {attempt}, {ts}) "
    "ON CONFLICT (writer) DO UPDATE SET attempt = EXCLUDED.attempt, ts = EXCLUDED.ts"
)
"""Formatted with literals (an id of ours and two ints) to travel with ``BEGIN``."""
ATTEMPT_OF: Final = "SELECT attempt FROM lean_writers WHERE writer = $1"


@functools.lru_cache(maxsize=512)
def pg_sql(sql: str) -> str:
    """Return ``sql`` with SQLite's numbered ``?n`` placeholders as PostgreSQL's ``$n``."""
    translated = re.sub(r"\?(\d+)", r"$\1", sql)
    if "?" in translated:
        raise ValueError(f"an unnumbered placeholder in {sql!r}")
    return translated


SQL: Final = dataclasses.replace(
    sch.SQL,
    last_sane_bar=sch.LAST_SANE_BAR.replace(
        "quality_level IS NOT 'INVALID'", "quality_level IS DISTINCT FROM 'INVALID'"
    ),
    last_closed_bar=sch.LAST_CLOSED_BAR.replace("closed = 1", "closed"),
    quality_by_feed=sch.QUALITY_BY_FEED.replace(
        "TOTAL(quality_score)", "COALESCE(SUM(quality_score), 0.0)"
    ),
)
"""The read statements (:class:`~lean_data.storage.queries.Queries`) in PostgreSQL's words;
their ``?n`` placeholders are translated by :func:`pg_sql` when they run."""


def quote_ident(name: str) -> str:
    """Return ``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


async def create_or_migrate(
    conn: asyncpg.Connection, schema: str, *, timescaledb: bool = True
) -> int:
    """Create the schema and its tables, or bring an older one up to :data:`SCHEMA_VERSION`.

    Serialised with other stores opening the same schema by an advisory lock; a schema at
    the current version is only read. A new schema's market tables are TimescaleDB
    hypertables when ``timescaledb`` and the server allows it
    (:mod:`lean_data.storage.postgres.timescale`), else native monthly partitions.

    Returns:
        The version the schema had (:data:`SCHEMA_VERSION` for a new one).

    Raises:
        ValueError: the schema holds a newer version, or one with no migration path.
    """
    found = await _stored_version(conn)
    if found == SCHEMA_VERSION:
        return found
    async with ddl_lock(conn, schema), conn.transaction():
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        found = await _stored_version(conn)
        if found is not None and found > SCHEMA_VERSION:
            raise ValueError(
                f"schema version {found}; this lean_data supports up to {SCHEMA_VERSION}"
            )
        if found is None and timescaledb:
            await timescale.create_tables(conn, schema, HYPERTABLE_DDL)
        for statement in DDL:  # IF NOT EXISTS: hypertables made just now stay as they are
            await conn.execute(statement)
        if found is None:
            await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", SCHEMA_VERSION)
            return SCHEMA_VERSION
        if await sch.migrate(found, SCHEMA_VERSION, MIGRATIONS, conn.execute) != found:
            await conn.execute("UPDATE schema_version SET version = $1", SCHEMA_VERSION)
        return found


async def _stored_version(conn: asyncpg.Connection) -> int | None:
    """The schema's version, or None when it has no ``schema_version`` row (or table)."""
    if await conn.fetchval("SELECT to_regclass('schema_version')") is None:
        return None
    value = await conn.fetchval("SELECT max(version) FROM schema_version")
    return None if value is None else int(value)
