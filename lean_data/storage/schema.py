"""SQLite schema, SQL text, row encoding and decoding for :mod:`lean_data.storage.sqlite`.

Every statement here is a constant built at import time from fixed column lists; values
always travel as ``?`` parameters, never as text spliced into SQL.

Tables:

``bars`` / ``quote_bars``
    One row per (symbol, resolution, ts_event, feed), stored ``WITHOUT ROWID`` with that
    primary key, so a range query for one symbol and resolution is a single index walk.
    Writes are upserts that keep the newest version: a higher ``revision`` wins, and at the
    same revision a final bar (``closed``) replaces an in-progress one but never the reverse.
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
    kept in normal form by :func:`merge_coverage`: pairwise disjoint, covered winning over
    empty, and same-flag neighbours merged; so at most one row starts before a given time
    and still reaches it, which is what the range queries rely on.
``bar_series``
    The (feed, symbol, resolution) of every trade-bar series, written in the same
    transaction as its bars (the ``bars`` key starts with symbol, so listing series from
    ``bars`` itself would scan every row).
``schema_version``
    One row holding :data:`SCHEMA_VERSION`. :data:`MIGRATIONS` upgrades older files in
    place when they are opened.

SQLite stores a float NaN as NULL, so every REAL market column reads NULL back as ``nan``.
"""

from __future__ import annotations

import math
import numbers
import operator
import sqlite3
from collections.abc import Callable
from typing import Any, Final, TypeAlias

import aiosqlite

from lean_data.models import QuoteBar, Resolution, Tick, TickType, TradeBar
from lean_data.quality.levels import DataQualityLevel, Verdict
from lean_data.series import intervals as iv

Row: TypeAlias = tuple[Any, ...]

SCHEMA_VERSION: Final = 2

BARS: Final = 0
QUOTE_BARS: Final = 1
TICKS: Final = 2
METRICS: Final = 3
ERRORS: Final = 4
COVERAGE: Final = 5
"""Queue entries with this index carry a coverage record, not a table row."""
ENTRY_KINDS: Final = 6

TABLE_NAMES: Final = ("bars", "quote_bars", "ticks", "metrics", "errors")
"""Table names by index; the only names ever placed into SQL text."""

MARKET_TABLES: Final = ("bars", "quote_bars", "ticks")

_QUALITY = ("quality_score", "quality_level", "reasons", "ts_recv")
_BAR_TAIL = ("closed", "revision", "backfilled", *_QUALITY)
BAR_COLUMNS: Final = (
    *("feed", "symbol", "resolution", "ts_event"),
    *("open", "high", "low", "close", "volume"),
    *_BAR_TAIL,
)
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

_KEY = ("feed", "symbol", "resolution", "ts_event")


_BAR_TAIL_DDL = (
    "closed INT NOT NULL, revision INT NOT NULL, backfilled INT NOT NULL, "
    "quality_score REAL, quality_level TEXT, reasons TEXT NOT NULL, ts_recv INT NOT NULL, "
    "PRIMARY KEY (symbol, resolution, ts_event, feed)) WITHOUT ROWID"
)
_BAR_HEAD_DDL = (
    "feed TEXT NOT NULL, symbol TEXT NOT NULL, resolution TEXT NOT NULL, ts_event INT NOT NULL"
)

DDL: Final = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS bars ({_BAR_HEAD_DDL}, open REAL, high REAL, low REAL, "
    f"close REAL, volume REAL, {_BAR_TAIL_DDL}",
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
    "CREATE TABLE IF NOT EXISTS bar_series (feed TEXT NOT NULL, symbol TEXT NOT NULL, "
    "resolution TEXT NOT NULL, PRIMARY KEY (feed, symbol, resolution)) WITHOUT ROWID",
)
"""Every table and index; ``IF NOT EXISTS``, so it also adds what an older file lacks."""

MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: (
        # version 1 had neither coverage nor bar_series (DDL creates both); list the series
        # of the bars already stored. A one-time scan of the bars table.
        "INSERT OR IGNORE INTO bar_series (feed, symbol, resolution) "
        "SELECT DISTINCT feed, symbol, resolution FROM bars",
    ),
}
"""Statements run, after :data:`DDL`, on a file of version ``n`` to make it version n + 1."""


async def stored_version(db: aiosqlite.Connection) -> int | None:
    """Return the file's schema version, or None when it has no ``schema_version`` row."""
    try:
        rows = list(await db.execute_fetchall("SELECT version FROM schema_version"))
    except sqlite3.OperationalError:  # no such table: a new file
        return None
    return int(rows[0][0]) if rows else None


async def create_or_migrate(db: aiosqlite.Connection) -> int:
    """Create the tables and bring an older file up to :data:`SCHEMA_VERSION`.

    Runs inside the caller's transaction; the caller commits.

    Returns:
        The version the file had (:data:`SCHEMA_VERSION` for a new file).

    Raises:
        ValueError: the file holds a newer version, or one with no migration path.
    """
    for statement in DDL:
        await db.execute(statement)
    rows = list(await db.execute_fetchall("SELECT version FROM schema_version"))
    if not rows:
        await db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        return SCHEMA_VERSION
    found = version = int(rows[0][0])
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"schema version {version}; this lean_data supports up to {SCHEMA_VERSION}"
        )
    while version < SCHEMA_VERSION:
        steps = MIGRATIONS.get(version)
        if steps is None:
            raise ValueError(f"schema version {version} has no migration to {SCHEMA_VERSION}")
        for statement in steps:
            await db.execute(statement)
        version += 1
    if version != found:
        await db.execute("UPDATE schema_version SET version = ?", (version,))
    return found


def _insert(table: str, columns: tuple[str, ...]) -> str:
    marks = ", ".join("?" * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"


def _upsert(table: str, columns: tuple[str, ...]) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in _KEY)
    return (
        f"{_insert(table, columns)} ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET {updates} "
        f"WHERE excluded.revision > {table}.revision OR "
        f"(excluded.revision = {table}.revision AND excluded.closed >= {table}.closed)"
    )


WRITE_SQL: Final = (
    _upsert("bars", BAR_COLUMNS),
    _upsert("quote_bars", QUOTE_COLUMNS),
    _insert("ticks", TICK_COLUMNS),
    _insert("metrics", METRICS_COLUMNS),
    _insert("errors", ERRORS_COLUMNS),
)
"""The write statement of each table, by table index."""

SELECT: Final = {
    "bars": "SELECT symbol, ts_event, open, high, low, close, volume, resolution, ts_recv, "
    "closed, revision, backfilled FROM bars",
    "quote_bars": "SELECT symbol, ts_event, bid_open, bid_high, bid_low, bid_close, bid_size, "
    "ask_open, ask_high, ask_low, ask_close, ask_size, resolution, ts_recv, closed, revision, "
    "backfilled FROM quote_bars",
    "ticks": "SELECT symbol, ts_event, price, size, tick_type, ts_recv, bid_price, bid_size, "
    "ask_price, ask_size, exchange, condition, suspicious, trade_id FROM ticks",
}
"""Column lists in the order the ``*_from_row`` functions read them."""

RANGE: Final = "WHERE symbol = ?1 AND ts_event >= ?2 AND ts_event < ?3"
RANGE_ANY_RESOLUTION: Final = f"{RANGE} AND resolution IN (SELECT res FROM r)"

RESOLUTIONS_CTE: Final = {
    table: f"WITH RECURSIVE r(res) AS (SELECT MIN(resolution) FROM {table} WHERE symbol = ?1 "
    f"UNION ALL SELECT (SELECT MIN(resolution) FROM {table} WHERE symbol = ?1 AND "
    "resolution > r.res) FROM r WHERE r.res IS NOT NULL)"
    for table in ("bars", "quote_bars")
}
"""The distinct resolutions of symbol ?1, one primary-key lookup each (a loose index scan),
so a query without a resolution can still use (symbol, resolution, ts_event)."""


SeriesKey: TypeAlias = tuple[str, str, str]
"""(feed, symbol, resolution name) of one bar series, as stored."""

_SERIES = "feed = ?1 AND symbol = ?2 AND resolution = ?3"

COVERAGE_TOUCHING: Final = (
    f"SELECT start_ns, end_ns, empty FROM coverage WHERE {_SERIES} AND start_ns <= ?5 AND "
    f"start_ns >= COALESCE((SELECT MAX(start_ns) FROM coverage WHERE {_SERIES} AND "
    "start_ns < ?4), ?4) ORDER BY start_ns"
)
"""Coverage rows of series (?1, ?2, ?3) that overlap or touch [?4, ?5]: the rows starting
in it plus the last one starting before it (rows are disjoint, so no earlier one reaches)."""

COVERAGE_OVERLAPPING: Final = (
    f"SELECT start_ns, end_ns, empty FROM coverage WHERE {_SERIES} AND start_ns < ?5 AND "
    f"start_ns >= COALESCE((SELECT MAX(start_ns) FROM coverage WHERE {_SERIES} AND "
    "start_ns <= ?4), ?4) AND end_ns > ?4 ORDER BY start_ns"
)
"""Coverage rows of series (?1, ?2, ?3) that overlap [?4, ?5), by primary-key ranges."""

_DELETE_COVERAGE = f"DELETE FROM coverage WHERE {_SERIES} AND start_ns = ?4"
_INSERT_COVERAGE = (
    "INSERT INTO coverage (feed, symbol, resolution, start_ns, end_ns, empty) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
INSERT_SERIES: Final = (
    "INSERT OR IGNORE INTO bar_series (feed, symbol, resolution) VALUES (?, ?, ?)"
)
SERIES_KEYS: Final = "SELECT feed, symbol, resolution FROM bar_series"
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

Coverage: TypeAlias = tuple[int, int, bool]


async def merge_coverage(
    db: aiosqlite.Connection,
    key: SeriesKey,
    covered: list[iv.Interval],
    empty: list[iv.Interval],
    removed: list[iv.Interval] = [],  # noqa: B006  # never mutated
) -> None:
    """Fold new intervals into the stored coverage of one series, in the open transaction.

    The stored rows near the new intervals are read, combined (covered wins over empty),
    ``removed`` is cut out of the covered rows (the known-empty ones stay), and the rows
    that changed are rewritten, keeping the series in normal form.
    """
    touched = iv.union(covered, empty, removed)
    if not touched:
        return
    old = [(s, e, bool(flag)) for s, e, flag in await db.execute_fetchall(
        COVERAGE_TOUCHING, (*key, touched[0][0], touched[-1][1]))]  # fmt: skip
    old_covered = [(s, e) for s, e, flag in old if not flag]
    old_empty = [(s, e) for s, e, flag in old if flag]
    new = iv.overlay(
        iv.union(iv.difference(old_covered, removed), covered), iv.union(old_empty, empty)
    )
    if new == old:
        return
    await db.executemany(_DELETE_COVERAGE, [(*key, s) for s, _, _ in old])
    await db.executemany(_INSERT_COVERAGE, [(*key, s, e, int(flag)) for s, e, flag in new])


def quality_fields(quality: Verdict | None) -> tuple[float | None, str | None, str]:
    """Return (score, level name, comma-joined reasons) for a verdict; NULLs for none."""
    if quality is None:
        return _NO_QUALITY
    level = quality.level
    reasons = quality.reasons
    # _value_ / _name_ are Enum's documented member attributes; .value/.name are slow
    # descriptors, and this runs once per stored row.
    return (level._value_, level._name_, ",".join(reasons) if reasons else "")


_NO_QUALITY: Final = (None, None, "")


def bar_row(bar: TradeBar, feed: str, quality: Verdict | None, ts_recv: int) -> Row:
    """Return the ``bars`` row for ``bar`` in :data:`BAR_COLUMNS` order."""
    score, level, reasons = quality_fields(quality)
    b = bar
    return (
        feed,
        b.symbol,
        b.resolution.name,
        b.ts_event,
        b.open,
        b.high,
        b.low,
        b.close,
        b.volume,
        b.closed,
        b.revision,
        b.backfilled,
        score,
        level,
        reasons,
        ts_recv,
    )


def quote_row(quote: QuoteBar, feed: str, quality: Verdict | None, ts_recv: int) -> Row:
    """Return the ``quote_bars`` row for ``quote`` in :data:`QUOTE_COLUMNS` order."""
    score, level, reasons = quality_fields(quality)
    q = quote
    return (
        feed,
        q.symbol,
        q.resolution.name,
        q.ts_event,
        q.bid_open,
        q.bid_high,
        q.bid_low,
        q.bid_close,
        q.bid_size,
        q.ask_open,
        q.ask_high,
        q.ask_low,
        q.ask_close,
        q.ask_size,
        q.closed,
        q.revision,
        q.backfilled,
        score,
        level,
        reasons,
        ts_recv,
    )


def tick_row(tick: Tick, feed: str, quality: Verdict | None, ts_recv: int) -> Row:
    """Return the ``ticks`` row for ``tick`` in :data:`TICK_COLUMNS` order."""
    score, level, reasons = quality_fields(quality)
    t = tick
    return (
        feed,
        t.symbol,
        t.ts_event,
        t.tick_type.value,
        t.price,
        t.size,
        t.bid_price,
        t.bid_size,
        t.ask_price,
        t.ask_size,
        t.exchange,
        t.condition,
        t.suspicious,
        t.trade_id,
        score,
        level,
        reasons,
        ts_recv,
    )


_NAN = math.nan
_RESOLUTIONS: dict[str, Resolution] = {}


def resolution_from_text(text: str) -> Resolution:
    """Return the resolution stored as ``text`` (``str(resolution)``), memoised."""
    found = _RESOLUTIONS.get(text)
    if found is None:
        if text.endswith("ns") and text[:-2].isdigit():
            found = Resolution(int(text[:-2]))  # sub-second periods; parse() lacks "ns"
        else:
            found = Resolution.parse(text)
        _RESOLUTIONS[text] = found
    return found


def _f(value: float | None) -> float:
    return _NAN if value is None else value


def bar_from_row(r: Row) -> TradeBar:
    """Return the TradeBar for a ``SELECT["bars"]`` row (NULL prices read back as nan)."""
    return TradeBar(
        *(r[0], r[1], _f(r[2]), _f(r[3]), _f(r[4]), _f(r[5]), _f(r[6])),
        resolution_from_text(r[7]),
        *(r[8], bool(r[9]), r[10], bool(r[11])),
    )


def quote_from_row(r: Row) -> QuoteBar:
    """Return the QuoteBar for a ``SELECT["quote_bars"]`` row (NULL reads back as nan)."""
    bid = (_f(r[2]), _f(r[3]), _f(r[4]), _f(r[5]), _f(r[6]))
    ask = (_f(r[7]), _f(r[8]), _f(r[9]), _f(r[10]), _f(r[11]))
    return QuoteBar(
        r[0], r[1], *bid, *ask, resolution_from_text(r[12]), r[13], bool(r[14]), r[15], bool(r[16])
    )


def tick_from_row(r: Row) -> Tick:
    """Return the Tick for a ``SELECT["ticks"]`` row (NULL reads back as nan)."""
    return Tick(
        *(r[0], r[1], _f(r[2]), _f(r[3]), TickType(r[4]), r[5]),
        *(_f(r[6]), _f(r[7]), _f(r[8]), _f(r[9])),
        *(r[10], r[11], bool(r[12]), r[13]),
    )


RowBuilder = Callable[[Any, str, Verdict | None, int], Row]
ROW_BUILDERS: Final[dict[type, tuple[int, RowBuilder]]] = {
    TradeBar: (BARS, bar_row),
    QuoteBar: (QUOTE_BARS, quote_row),
    Tick: (TICKS, tick_row),
}


def row_builder_for_subclass(item: object) -> tuple[int, RowBuilder]:
    """Return the table and row builder for a subclass of a model (or raise TypeError)."""
    for cls, found in ROW_BUILDERS.items():
        if isinstance(item, cls):
            return found
    raise TypeError(f"expected a TradeBar, QuoteBar or Tick, got {type(item).__name__}")


ERROR_KEYS: Final = ("ts_ns", "kind", "feed", "symbol", "message", "detail")
LEVEL_NAMES: Final = (*(level.name for level in DataQualityLevel), "UNSCORED")


class QualityTally:
    """Row counts per quality level and the sum of scores, for quality_summary."""

    def __init__(self) -> None:
        self.levels = dict.fromkeys(LEVEL_NAMES, 0)
        self.scored = 0
        self.score_sum = 0.0

    def add(self, level: str | None, count: int, score_sum: float) -> None:
        self.levels[level or "UNSCORED"] += count
        if level is not None:
            self.scored += count
            self.score_sum += score_sum

    def as_dict(self) -> dict[str, Any]:
        average = self.score_sum / self.scored if self.scored else None
        return {"rows": sum(self.levels.values()), "average_score": average, "levels": self.levels}


_DELETED_BAR_SPANS: Final = (
    "SELECT feed, symbol, resolution, MIN(ts_event), MAX(ts_event) FROM bars "
    "WHERE ts_recv < ? GROUP BY feed, symbol, resolution"
)
_PRUNE_SERIES: Final = (
    "DELETE FROM bar_series WHERE NOT EXISTS (SELECT 1 FROM bars WHERE "
    "bars.symbol = bar_series.symbol AND bars.resolution = bar_series.resolution AND "
    "bars.feed = bar_series.feed)"
)


async def delete_before(db: aiosqlite.Connection, cutoff: int) -> dict[str, int]:
    """Delete market rows received before ``cutoff`` and metrics/errors older; commit.

    Coverage stays truthful: the covered (not the known-empty) intervals of each bar
    series lose the event-time span from its first to past its last deleted bar, and
    series left without bars leave ``bar_series``.
    """
    if not db.in_transaction:
        await db.execute("BEGIN IMMEDIATE")
    for feed, symbol, resolution, first, last in await db.execute_fetchall(
        _DELETED_BAR_SPANS, (cutoff,)
    ):
        span = (first, last + max(resolution_from_text(resolution).nanos, 1))
        await merge_coverage(db, (feed, symbol, resolution), [], [], [span])
    deleted: dict[str, int] = {}
    for table in TABLE_NAMES:
        column = "ts_recv" if table in MARKET_TABLES else "ts"
        cursor = await db.execute(f"DELETE FROM {table} WHERE {column} < ?", (cutoff,))
        deleted[table] = cursor.rowcount
        await cursor.close()
    if deleted["bars"]:
        await db.execute(_PRUNE_SERIES)
    await db.commit()
    return deleted


QUALITY_BY_FEED: Final = " UNION ALL ".join(
    f"SELECT feed, quality_level, COUNT(*), TOTAL(quality_score) FROM {table} "
    "WHERE symbol = ? AND ts_recv >= ? GROUP BY feed, quality_level"
    for table in MARKET_TABLES
)
"""Rows and score sums per (feed, level) of one symbol since a receive time, all tables."""


def quality_summary(rows: list[Row]) -> dict[str, Any]:
    """Fold :data:`QUALITY_BY_FEED` rows into overall and per-feed tallies."""
    total = QualityTally()
    feeds: dict[str, QualityTally] = {}
    for feed, level, count, score_sum in rows:
        for tally in (total, feeds.setdefault(feed, QualityTally())):
            tally.add(level, count, score_sum)
    return total.as_dict() | {"feeds": {name: feeds[name].as_dict() for name in sorted(feeds)}}


# ------------------------------------------------------------------ defensive row conversion

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

_T, _TN, _I, _RN = "text", "text or NULL", "integer", "real or NULL"
_BAR_TAIL_KINDS = (_I, _I, _I, _RN, _TN, _T, _I)  # closed … ts_recv
COLUMN_KINDS: Final[dict[int, tuple[str, ...]]] = {
    BARS: (_T, _T, _T, _I, *(_RN,) * 5, *_BAR_TAIL_KINDS),
    QUOTE_BARS: (_T, _T, _T, _I, *(_RN,) * 10, *_BAR_TAIL_KINDS),
    TICKS: (_T, _T, _I, _T, *(_RN,) * 6, _T, _T, _I, _T, _RN, _TN, _T, _I),
    METRICS: (_I, _T),
    COVERAGE: (_T, _T, _T, _I, _I, _I),
}
"""What each column of a queued row must hold, by entry kind (errors rows are sanitised)."""
COLUMN_NAMES: Final[dict[int, tuple[str, ...]]] = {
    BARS: BAR_COLUMNS,
    QUOTE_BARS: QUOTE_COLUMNS,
    TICKS: TICK_COLUMNS,
    METRICS: METRICS_COLUMNS,
    ERRORS: ERRORS_COLUMNS,
    COVERAGE: ("feed", "symbol", "resolution", "start_ns", "end_ns", "empty"),
}
ENTRY_NAMES: Final = (*TABLE_NAMES, "coverage")


class Unstorable(ValueError):
    """One value of a queued row that SQLite cannot store as its column requires.

    Attributes:
        column: the column's name.
        value: the value found.
        reason: a short category: ``int_range``, ``text_encoding``, ``null``, ``type``
            or ``sqlite`` (SQLite refused the row on its own, with ``detail`` saying why).
    """

    def __init__(self, column: str, value: object, reason: str, detail: str) -> None:
        super().__init__(f"{column} = {clip(ascii(value))}: {detail}")
        self.column, self.value, self.reason = column, value, reason


def clip(text: str, limit: int = 200) -> str:
    """Return ``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def safe_text(value: object) -> str:
    """Return ``value`` as text SQLite can store: lone surrogates become ``\\udXXX``."""
    if type(value) is str:
        if value.isascii():
            return value
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return ascii(value)


def _clean_value(kind: str, column: str, value: Any) -> Any:
    """Return ``value`` converted for a column of ``kind``, or raise :class:`Unstorable`."""
    if value is None:
        if kind in (_RN, _TN):
            return None
        raise Unstorable(column, value, "null", "NULL in a NOT NULL column")
    if kind in (_T, _TN):
        if type(value) is int and kind == _T:
            return str(value)  # a numeric trade id or name, stored as the text it denotes
        if not isinstance(value, str):
            raise Unstorable(column, value, "type", f"expected text, got {type(value).__name__}")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise Unstorable(
                    column, value, "text_encoding", f"not UTF-8: {exc.reason}"
                ) from None
        return str(value)
    if isinstance(value, float):
        if kind == _I and value != value:
            raise Unstorable(column, value, "null", "NaN (stored as NULL) in a NOT NULL column")
        return float(value)  # NaN in a REAL column is stored as NULL, by design
    try:
        number = operator.index(value)  # int, bool, numpy integers
    except TypeError:
        if kind == _RN and isinstance(value, numbers.Real):
            return _as_float(column, value)
        raise Unstorable(
            column, value, "type", f"expected a number, got {type(value).__name__}"
        ) from None
    if INT64_MIN <= number <= INT64_MAX:
        return number
    if kind == _RN:
        return _as_float(column, number)  # a float column: a huge int is just a big float
    raise Unstorable(column, value, "int_range", "outside SQLite's 64-bit integer range")


def _as_float(column: str, value: Any) -> float:
    try:
        return float(value)
    except (OverflowError, ValueError, TypeError) as exc:
        raise Unstorable(column, value, "int_range", f"not a float: {exc}") from None


def clean_row(kind: int, row: Row) -> Row:
    """Return a queued row converted to values SQLite stores as the columns require.

    Ints outside 64 bits in a REAL column become floats, an int in a text column becomes
    its text; an errors row is sanitised whatever it holds (it reports problems itself).

    Raises:
        Unstorable: the first value that cannot be stored as its column requires.
    """
    if kind == ERRORS:
        return _clean_error_row(row)
    kinds = COLUMN_KINDS[kind]
    names = COLUMN_NAMES[kind]
    if len(row) != len(kinds):
        raise Unstorable("row", row, "type", f"expected {len(kinds)} values, got {len(row)}")
    return tuple(_clean_value(k, n, v) for k, n, v in zip(kinds, names, row, strict=True))


def _clean_error_row(row: Row) -> Row:
    ts, *texts = row
    try:
        ts = _clean_value(_I, "ts", ts)
    except Unstorable:
        ts = 0
    return (ts, *(safe_text(text) for text in texts))


def rejection_row(ts: int, kind: int, row: Row, problem: Unstorable) -> Row:
    """Return the errors-table row (``storage_rejected``) that reports a rejected row."""
    feed, symbol = (row[0], row[1]) if kind not in (METRICS, ERRORS) and len(row) > 1 else ("", "")
    message = f"{ENTRY_NAMES[kind]} row not stored ({problem.reason}): {problem}"
    return (ts, "storage_rejected", clip(safe_text(feed)), clip(safe_text(symbol)),
            safe_text(message), clip(ascii(row), 2000))  # fmt: skip
