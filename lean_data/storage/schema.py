"""SQLite schema and SQL text for :mod:`lean_data.storage.sqlite` (creating and migrating a
file: :mod:`lean_data.storage.connect`).

Row encoding and decoding live in :mod:`lean_data.storage.rows`, the retry's defensive
conversion in :mod:`lean_data.storage.sanitize`, coverage upkeep in
:mod:`lean_data.storage.coverage` and retention in :mod:`lean_data.storage.retention`.

Every statement here is a constant built at import time from fixed column lists; values
always travel as ``?`` parameters, never as text spliced into SQL.

Tables:

``bar_rows`` / ``bars``
    Trade bars: ``bar_rows`` holds one row per (``series_id``, ``ts_event``), ``WITHOUT
    ROWID`` with that key, ``series_id`` being the ``bar_series.id`` of the bar's (feed,
    symbol, resolution) (version 5: those texts are no longer in every row and key).
    ``bars`` is a view joining the two with the old columns; every reader reads it.
``quote_bars``
    One row per (symbol, resolution, ts_event, feed), stored ``WITHOUT ROWID`` with that
    primary key, so a range query for one symbol and resolution is a single index walk.
    Writes of trade and quote bars are upserts that keep the newest version: a higher
    ``revision`` wins, and at the same revision a final bar (``closed``) replaces an
    in-progress one but never the reverse.
``ticks``
    Trade prints and quotes. They have no natural key (many trades share a timestamp), so
    each row gets an ``INTEGER PRIMARY KEY``; indexed by (symbol, ts_event).
``metrics``
    ``ts`` (ns) and an orjson ``payload``.
``errors``
    ``ts`` (ns), ``kind``, ``feed``, ``symbol``, ``message``, ``detail``.
``coverage``
    Which event-time intervals ``[start_ns, end_ns)`` of each (feed, symbol, resolution)
    trade-bar series storage holds, ``empty`` = 1 where the source reported no bars. Keyed
    (feed, symbol, resolution, start_ns), ``WITHOUT ROWID``. The rows of one series are
    kept in normal form by :func:`lean_data.storage.coverage.merge_coverage`: pairwise
    disjoint, covered winning over empty, and same-flag neighbours merged; so at most one
    row starts before a given time and still reaches it, which is what the range queries
    rely on.
``bar_series``
    ``id`` and the (feed, symbol, resolution) of each trade-bar series, unique, symbol
    first; added with its first bars and kept for the life of the file (retention leaves
    it: a writer may cache the id), so :data:`SQLITE_SERIES_KEYS` lists those with bars.
``funding_rates`` / ``open_interest`` / ``mark_prices`` / ``liquidations``
    Derivatives records (:mod:`lean_data.derivatives`), ``WITHOUT ROWID``, one row per
    (symbol, ts_event, feed), liquidations per (symbol, ts_event, feed, side, price,
    quantity); a record saved again replaces the stored one (the last saved wins). Added
    by version 3. Rows and reads: :mod:`lean_data.storage.derivative_rows`.
``book_snapshots``
    Order-book snapshots (:class:`lean_data.book.OrderBookSnapshot`), ``WITHOUT ROWID``,
    one row per (symbol, ts_recv, feed), indexed by (symbol, ts_event); the top levels of
    each side as little-endian float64 pairs in a BLOB, a ``valid`` flag. Added by version
    4. Rows and reads: :mod:`lean_data.storage.book_rows`.
``schema_version``
    One row holding :data:`SCHEMA_VERSION`. :data:`MIGRATIONS` upgrades older files in
    place when they are opened.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

Row: TypeAlias = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class QuerySql:
    """The backend's text of each statement the read queries run.

    Placeholders are numbered, ``?1`` .. ``?n`` (SQLite's spelling); a backend with another
    style translates them when it runs a statement (PostgreSQL: ``$1`` .. ``$n``).
    """

    select: Mapping[str, str]
    range: str
    resolutions_cte: Mapping[str, str]
    coverage_overlapping: str
    series_keys: str
    last_bar: str
    last_sane_bar: str
    last_closed_bar: str
    quality_by_feed: str
    series_of_symbol: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """(resolution, feed) of each series of symbol ?1, for tables keyed by series id (read
    instead of ``resolutions_cte``, so a read of the only series names it: no sort)."""


SCHEMA_VERSION: Final = 5

BARS: Final = 0
QUOTE_BARS: Final = 1
TICKS: Final = 2
METRICS: Final = 3
ERRORS: Final = 4
FUNDING_RATES: Final = 5
OPEN_INTEREST: Final = 6
MARK_PRICES: Final = 7
LIQUIDATIONS: Final = 8
BOOK_SNAPSHOTS: Final = 9
COVERAGE: Final = 10
"""Queue entries with this index carry a coverage record, not a table row."""
ENTRY_KINDS: Final = 11

TABLE_NAMES: Final = (
    *("bars", "quote_bars", "ticks", "metrics", "errors"),
    *("funding_rates", "open_interest", "mark_prices", "liquidations", "book_snapshots"),
)
"""Table names by index; the only names ever placed into SQL text."""

MARKET_TABLES: Final = ("bars", "quote_bars", "ticks")
DERIVATIVE_TABLES: Final = (
    *("funding_rates", "open_interest", "mark_prices", "liquidations", "book_snapshots"),
)
"""Keyed tables of records saved again by replacing (derivatives, book snapshots), not
partitioned, aged by ``ts_recv`` like the market tables."""

_QUALITY = ("quality_score", "quality_level", "reasons", "ts_recv")
_BAR_TAIL = ("closed", "revision", "backfilled", *_QUALITY)
BAR_COLUMNS: Final = (
    *("feed", "symbol", "resolution", "ts_event"),
    *("open", "high", "low", "close", "volume"),
    *_BAR_TAIL,
)
"""A trade-bar row as queued (:func:`~lean_data.storage.rows.bar_row`) and as ``bars`` reads."""
BAR_ROW_COLUMNS: Final = ("series_id", *BAR_COLUMNS[3:])
"""``bar_rows``' columns: the queued row with ``bar_series.id`` for its first three."""
QUOTE_COLUMNS: Final = (
    *("feed", "symbol", "resolution", "ts_event"),
    *("bid_open", "bid_high", "bid_low", "bid_close", "bid_size"),
    *("ask_open", "ask_high", "ask_low", "ask_close", "ask_size"),
    *_BAR_TAIL,
)
TICK_COLUMNS: Final = (
    *("feed", "symbol", "ts_event", "tick_type", "price", "size"),
    *("bid_price", "bid_size", "ask_price", "ask_size"),
    *("exchange", "condition", "suspicious", "trade_id", *_QUALITY),
)
METRICS_COLUMNS: Final = ("ts", "payload")
ERRORS_COLUMNS: Final = ("ts", "kind", "feed", "symbol", "message", "detail")
_HEAD = ("feed", "symbol", "ts_event")
FUNDING_COLUMNS: Final = (
    *_HEAD,
    "rate",
    "next_funding_time",
    "funding_interval",
    "predicted_rate",
    "ts_recv",
)
OPEN_INTEREST_COLUMNS: Final = (*_HEAD, "contracts", "notional", "ts_recv")
MARK_PRICE_COLUMNS: Final = (
    *_HEAD,
    "mark_price",
    "index_price",
    "funding_rate",
    "next_funding_time",
    "ts_recv",
)
LIQUIDATION_COLUMNS: Final = (
    *(*_HEAD, "side", "price", "quantity", "order_status", "average_price"),
    *("filled_quantity", "ts_recv"),
)
BOOK_SNAPSHOT_COLUMNS: Final = (
    *("feed", "symbol", "ts_recv", "ts_event", "sequence", "valid", "bids", "asks"),
)
"""``bids`` / ``asks``: (price, size) pairs, best first, as little-endian float64 bytes.
The key's columns lead: SQLite 3.40's ``quick_check`` (run at every open) reports the
later columns of a ``WITHOUT ROWID`` row whose key column follows a non-key column as
NULL (a false alarm that would refuse the file)."""
DERIVATIVE_KEYS: Final = {
    FUNDING_RATES: ("symbol", "ts_event", "feed"),
    OPEN_INTEREST: ("symbol", "ts_event", "feed"),
    MARK_PRICES: ("symbol", "ts_event", "feed"),
    LIQUIDATIONS: ("symbol", "ts_event", "feed", "side", "price", "quantity"),
    BOOK_SNAPSHOTS: ("symbol", "ts_recv", "feed"),
}
"""The primary key of each keyed table (derivatives, then book snapshots): the write's
conflict target. A book snapshot is keyed by its receive time: a venue's sequence is -1
where it numbers nothing (Kraken) and restarts with it (Bybit ``u == 1``), and two pictures
of one feed's book never share a receive time; the same picture saved again is one row."""
DERIVATIVE_COLUMNS: Final = {
    FUNDING_RATES: FUNDING_COLUMNS,
    OPEN_INTEREST: OPEN_INTEREST_COLUMNS,
    MARK_PRICES: MARK_PRICE_COLUMNS,
    LIQUIDATIONS: LIQUIDATION_COLUMNS,
    BOOK_SNAPSHOTS: BOOK_SNAPSHOT_COLUMNS,
}

_KEY = ("feed", "symbol", "resolution", "ts_event")


_BAR_STATE_DDL = (
    "closed INT NOT NULL, revision INT NOT NULL, backfilled INT NOT NULL, "
    "quality_score REAL, quality_level TEXT, reasons TEXT NOT NULL, ts_recv INT NOT NULL"
)
_BAR_TAIL_DDL = f"{_BAR_STATE_DDL}, PRIMARY KEY (symbol, resolution, ts_event, feed)) WITHOUT ROWID"
_SERIES_DDL = (
    "CREATE TABLE IF NOT EXISTS bar_series (id INTEGER PRIMARY KEY, feed TEXT NOT NULL, "
    "symbol TEXT NOT NULL, resolution TEXT NOT NULL)"
)
_SERIES_INDEX = (
    "CREATE UNIQUE INDEX IF NOT EXISTS bar_series_key ON bar_series (symbol, resolution, feed)"
)
_BAR_ROWS_DDL = (
    "CREATE TABLE IF NOT EXISTS bar_rows (series_id INTEGER NOT NULL REFERENCES bar_series (id), "
    "ts_event INT NOT NULL, open REAL, high REAL, low REAL, close REAL, volume REAL, "
    f"{_BAR_STATE_DDL}, PRIMARY KEY (series_id, ts_event)) WITHOUT ROWID"
)
BARS_VIEW: Final = (
    "CREATE VIEW IF NOT EXISTS bars AS SELECT s.feed AS feed, s.symbol AS symbol, "
    "s.resolution AS resolution, "
    + ", ".join(f"b.{c} AS {c}" for c in BAR_COLUMNS[3:])
    + " FROM bar_rows AS b JOIN bar_series AS s ON s.id = b.series_id"
)
_BAR_HEAD_DDL = (
    "feed TEXT NOT NULL, symbol TEXT NOT NULL, resolution TEXT NOT NULL, ts_event INT NOT NULL"
)

BOOK_EVENT_INDEX: Final = (
    "CREATE INDEX IF NOT EXISTS book_snapshots_event ON book_snapshots (symbol, ts_event)"
)
"""Book snapshots are read by event time (both backends)."""

DDL: Final = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    _SERIES_DDL,
    _SERIES_INDEX,
    _BAR_ROWS_DDL,
    BARS_VIEW,
    f"CREATE TABLE IF NOT EXISTS quote_bars ({_BAR_HEAD_DDL}, bid_open REAL, bid_high REAL, "
    "bid_low REAL, bid_close REAL, bid_size REAL, ask_open REAL, ask_high REAL, ask_low REAL, "
    f"ask_close REAL, ask_size REAL, {_BAR_TAIL_DDL}",
    "CREATE TABLE IF NOT EXISTS ticks (id INTEGER PRIMARY KEY, feed TEXT NOT NULL, "
    "symbol TEXT NOT NULL, ts_event INT NOT NULL, tick_type TEXT NOT NULL, price REAL, "
    "size REAL, bid_price REAL, bid_size REAL, ask_price REAL, ask_size REAL, "
    "exchange TEXT NOT NULL, condition TEXT NOT NULL, suspicious INT NOT NULL, "
    "trade_id TEXT NOT NULL, quality_score REAL, quality_level TEXT, reasons TEXT NOT NULL, "
    "ts_recv INT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ticks_symbol_ts ON ticks (symbol, ts_event)",
    "CREATE TABLE IF NOT EXISTS metrics (id INTEGER PRIMARY KEY, ts INT NOT NULL, "
    "payload TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS metrics_ts ON metrics (ts)",
    "CREATE TABLE IF NOT EXISTS errors (id INTEGER PRIMARY KEY, ts INT NOT NULL, "
    "kind TEXT NOT NULL, feed TEXT NOT NULL, symbol TEXT NOT NULL, message TEXT NOT NULL, "
    "detail TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS errors_ts ON errors (ts)",
    "CREATE TABLE IF NOT EXISTS coverage (feed TEXT NOT NULL, symbol TEXT NOT NULL, "
    "resolution TEXT NOT NULL, start_ns INT NOT NULL, end_ns INT NOT NULL, "
    "empty INT NOT NULL, PRIMARY KEY (feed, symbol, resolution, start_ns)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS funding_rates (feed TEXT NOT NULL, symbol TEXT NOT NULL, "
    "ts_event INT NOT NULL, rate REAL, next_funding_time INT NOT NULL, "
    "funding_interval INT NOT NULL, predicted_rate REAL, ts_recv INT NOT NULL, "
    "PRIMARY KEY (symbol, ts_event, feed)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS open_interest (feed TEXT NOT NULL, symbol TEXT NOT NULL, "
    "ts_event INT NOT NULL, contracts REAL, notional REAL, ts_recv INT NOT NULL, "
    "PRIMARY KEY (symbol, ts_event, feed)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS mark_prices (feed TEXT NOT NULL, symbol TEXT NOT NULL, "
    "ts_event INT NOT NULL, mark_price REAL, index_price REAL, funding_rate REAL, "
    "next_funding_time INT NOT NULL, ts_recv INT NOT NULL, "
    "PRIMARY KEY (symbol, ts_event, feed)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS liquidations (feed TEXT NOT NULL, symbol TEXT NOT NULL, "
    "ts_event INT NOT NULL, side TEXT NOT NULL, price REAL NOT NULL, quantity REAL NOT NULL, "
    "order_status TEXT NOT NULL, average_price REAL, filled_quantity REAL, "
    "ts_recv INT NOT NULL, PRIMARY KEY (symbol, ts_event, feed, side, price, quantity)) "
    "WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS book_snapshots (feed TEXT NOT NULL, symbol TEXT NOT NULL, "
    "ts_recv INT NOT NULL, ts_event INT NOT NULL, sequence INT NOT NULL, valid INT NOT NULL, "
    "bids BLOB NOT NULL, asks BLOB NOT NULL, PRIMARY KEY (symbol, ts_recv, feed)) "
    "WITHOUT ROWID",
    BOOK_EVENT_INDEX,
)
"""Every table and index; ``IF NOT EXISTS``, so it also adds what an older file lacks."""

MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: (
        # version 1 had neither coverage nor bar_series (DDL creates both); list the series
        # of the bars already stored. A one-time scan of the bars table.
        "INSERT OR IGNORE INTO bar_series (feed, symbol, resolution) "
        "SELECT DISTINCT feed, symbol, resolution FROM bars",
    ),
    2: (),  # version 3 adds the four derivatives tables, which DDL creates
    3: (),  # version 4 adds book_snapshots, which DDL creates
    4: (
        # version 5: bar_rows (DDL made it, empty) takes the old bars, bar_series gains ids
        # (built beside the old one and renamed, so REFERENCES names the new), bars becomes
        # a view. Every bar is copied once, in the opening transaction: all or nothing.
        _SERIES_DDL.replace("bar_series", "bar_series_v5", 1),
        "INSERT INTO bar_series_v5 (feed, symbol, resolution) "
        "SELECT feed, symbol, resolution FROM bar_series "
        "UNION SELECT DISTINCT feed, symbol, resolution FROM bars",
        f"INSERT INTO bar_rows ({', '.join(BAR_ROW_COLUMNS)}) SELECT s.id, "
        + ", ".join(f"b.{c}" for c in BAR_COLUMNS[3:])
        + " FROM bars AS b JOIN bar_series_v5 AS s "
        "ON s.feed = b.feed AND s.symbol = b.symbol AND s.resolution = b.resolution",
        "DROP TABLE bars",
        "DROP TABLE bar_series",
        "ALTER TABLE bar_series_v5 RENAME TO bar_series",
        _SERIES_INDEX,
        BARS_VIEW,
    ),
}
"""Statements run, after :data:`DDL`, on a file of version ``n`` to make it version n + 1."""


async def migrate(
    found: int,
    latest: int,
    migrations: Mapping[int, tuple[str, ...]],
    execute: Callable[[str], Awaitable[object]],
) -> int:
    """Run the migrations that bring a schema of version ``found`` to ``latest``; return
    ``latest`` (both backends' discipline: a newer version is refused, each step is one
    version).

    Raises:
        ValueError: ``found`` is newer than ``latest``, or a step is missing.
    """
    if found > latest:
        raise ValueError(f"schema version {found}; this lean_data supports up to {latest}")
    version = found
    while version < latest:
        steps = migrations.get(version)
        if steps is None:
            raise ValueError(f"schema version {version} has no migration to {latest}")
        for statement in steps:
            await execute(statement)
        version += 1
    return version


def _insert(table: str, columns: tuple[str, ...]) -> str:
    marks = ", ".join("?" * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"


def _upsert(table: str, columns: tuple[str, ...], key: tuple[str, ...] = _KEY) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (
        f"{_insert(table, columns)} ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates} "
        f"WHERE excluded.revision > {table}.revision OR "
        f"(excluded.revision = {table}.revision AND excluded.closed >= {table}.closed)"
    )


def _replace(table: int) -> str:
    """Insert a derivatives row; one already stored under its key is replaced (last wins)."""
    columns, key = DERIVATIVE_COLUMNS[table], DERIVATIVE_KEYS[table]
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (
        f"{_insert(TABLE_NAMES[table], columns)} ON CONFLICT ({', '.join(key)}) "
        f"DO UPDATE SET {updates}"
    )


WRITE_SQL: Final = (
    _upsert("bar_rows", BAR_ROW_COLUMNS, ("series_id", "ts_event")),
    _upsert("quote_bars", QUOTE_COLUMNS),
    _insert("ticks", TICK_COLUMNS),
    _insert("metrics", METRICS_COLUMNS),
    _insert("errors", ERRORS_COLUMNS),
    *(_replace(table) for table in DERIVATIVE_COLUMNS),
)
"""The write statement of each table, by table index (trade bars: ``bar_rows`` rows, whose
series id the sink puts in place of a queued row's (feed, symbol, resolution))."""


@functools.lru_cache(maxsize=64)
def write_sql(table: int, rows: int) -> str:
    """:data:`WRITE_SQL` of ``table`` with ``rows`` rows of values: one statement for many
    rows, each upserted in order as ``executemany`` would (a later row with the key of an
    earlier one updates it)."""
    head, _, rest = WRITE_SQL[table].partition(" VALUES (")
    marks, _, tail = rest.partition(")")
    return f"{head} VALUES {', '.join([f'({marks})'] * rows)}{tail}"


SELECT: Final = {
    "bars": "SELECT symbol, ts_event, open, high, low, close, volume, resolution, ts_recv, "
    "closed, revision, backfilled FROM bars",
    "quote_bars": "SELECT symbol, ts_event, bid_open, bid_high, bid_low, bid_close, bid_size, "
    "ask_open, ask_high, ask_low, ask_close, ask_size, resolution, ts_recv, closed, revision, "
    "backfilled FROM quote_bars",
    "ticks": "SELECT symbol, ts_event, price, size, tick_type, ts_recv, bid_price, bid_size, "
    "ask_price, ask_size, exchange, condition, suspicious, trade_id FROM ticks",
}
SELECT["scored_bars"] = SELECT["bars"].replace(
    " FROM bars", ", feed, quality_score, quality_level, reasons FROM bars"
)
"""Column lists in the order the ``*_from_row`` functions read them (``scored_bars``: a
bar with its feed and stored verdict)."""

RANGE: Final = "WHERE symbol = ?1 AND ts_event >= ?2 AND ts_event < ?3"

RESOLUTIONS_CTE: Final = {
    table: f"WITH RECURSIVE r(res) AS (SELECT MIN(resolution) FROM {table} WHERE symbol = ?1 "
    f"UNION ALL SELECT (SELECT MIN(resolution) FROM {table} WHERE symbol = ?1 AND "
    "resolution > r.res) FROM r WHERE r.res IS NOT NULL)"
    for table in ("bars", "quote_bars")
}
"""The distinct resolutions of symbol ?1, one primary-key lookup each (a loose index scan),
so a query without a resolution can still use (symbol, resolution, ts_event)."""

_HAS_BARS = "EXISTS (SELECT 1 FROM bar_rows WHERE series_id = s.id)"  # s: a bar_series row
SQLITE_RESOLUTIONS_CTE: Final = {
    **RESOLUTIONS_CTE,
    "bars": "WITH r(res) AS (SELECT DISTINCT resolution FROM bar_series AS s "
    f"WHERE symbol = ?1 AND {_HAS_BARS} ORDER BY resolution)",
}
"""SQLite reads its trade bars' resolutions from ``bar_series`` (series with bars)."""


SeriesKey: TypeAlias = tuple[str, str, str]
"""(feed, symbol, resolution name) of one bar series, as stored."""

SERIES: Final = "feed = ?1 AND symbol = ?2 AND resolution = ?3"

COVERAGE_TOUCHING: Final = (
    f"SELECT start_ns, end_ns, empty FROM coverage WHERE {SERIES} AND start_ns <= ?5 AND "
    f"start_ns >= COALESCE((SELECT MAX(start_ns) FROM coverage WHERE {SERIES} AND "
    "start_ns < ?4), ?4) ORDER BY start_ns"
)
"""Coverage rows of series (?1, ?2, ?3) that overlap or touch [?4, ?5]: the rows starting
in it plus the last one starting before it (rows are disjoint, so no earlier one reaches)."""

COVERAGE_OVERLAPPING: Final = (
    f"SELECT start_ns, end_ns, empty FROM coverage WHERE {SERIES} AND start_ns < ?5 AND "
    f"start_ns >= COALESCE((SELECT MAX(start_ns) FROM coverage WHERE {SERIES} AND "
    "start_ns <= ?4), ?4) AND end_ns > ?4 ORDER BY start_ns"
)
"""Coverage rows of series (?1, ?2, ?3) that overlap [?4, ?5), by primary-key ranges."""

INSERT_SERIES: Final = (
    "INSERT OR IGNORE INTO bar_series (feed, symbol, resolution) VALUES (?, ?, ?)"
)
SERIES_ID: Final = f"SELECT id FROM bar_series WHERE {SERIES}"
SERIES_KEYS: Final = "SELECT feed, symbol, resolution FROM bar_series"
SQLITE_SERIES_KEYS: Final = (
    f"SELECT feed, symbol, resolution FROM bar_series AS s WHERE {_HAS_BARS}"
)
"""SQLite's trade-bar series with bars (its retention keeps the rows of emptied series)."""
LAST_BAR: Final = (
    f"{SELECT['bars']} WHERE symbol = ?2 AND resolution = ?3 AND feed = ?1 "
    "ORDER BY ts_event DESC LIMIT 1"
)
"""The newest bar of series (?1, ?2, ?3): a backward walk of the primary key."""
LAST_SANE_BAR: Final = (
    f"{SELECT['bars']} WHERE symbol = ?2 AND resolution = ?3 AND feed = ?1 AND ts_event <= ?4 "
    "AND quality_level IS NOT 'INVALID' ORDER BY ts_event DESC LIMIT 1"
)
"""The newest bar of series (?1, ?2, ?3) opening at or before ?4 and not stored INVALID."""
LAST_CLOSED_BAR: Final = (
    f"{SELECT['bars']} WHERE symbol = ?2 AND resolution = ?3 AND feed = ?1 AND closed = 1 "
    "ORDER BY ts_event DESC LIMIT 1"
)

QUALITY_BY_FEED: Final = " UNION ALL ".join(
    f"SELECT feed, quality_level, COUNT(*), TOTAL(quality_score) FROM {table} "
    "WHERE symbol = ?1 AND ts_recv >= ?2 GROUP BY feed, quality_level"
    for table in MARKET_TABLES
)
"""Rows and score sums per (feed, level) of symbol ?1 since receive time ?2, all tables."""

SQL: Final = QuerySql(
    select=SELECT,
    range=RANGE,
    resolutions_cte=RESOLUTIONS_CTE,
    coverage_overlapping=COVERAGE_OVERLAPPING,
    series_keys=SERIES_KEYS,
    last_bar=LAST_BAR,
    last_sane_bar=LAST_SANE_BAR,
    last_closed_bar=LAST_CLOSED_BAR,
    quality_by_feed=QUALITY_BY_FEED,
)
"""The read statements of the text-keyed layout; PostgreSQL's are derived from them."""

SQLITE_SQL: Final = dataclasses.replace(
    SQL,
    resolutions_cte=SQLITE_RESOLUTIONS_CTE,
    series_keys=SQLITE_SERIES_KEYS,
    series_of_symbol={
        "bars": "SELECT resolution, feed FROM bar_series AS s WHERE symbol = ?1 AND "
        f"{_HAS_BARS} ORDER BY resolution, feed"
    },
)
"""The statements :class:`~lean_data.storage.queries.Queries` runs on SQLite."""
