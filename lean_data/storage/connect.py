"""Open a SQLite file for storage: pragmas, the start-up check, schema creation or migration.

:func:`connect` is the one way :class:`~lean_data.storage.sqlite.DataPersistence` gets its
connection. A file that cannot be opened or created, is not a database, is corrupt, cannot
be written or holds a newer schema is refused with a :class:`~lean_data.errors.StorageError`
naming the path and the problem.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import aiosqlite

from lean_data.errors import StorageError
from lean_data.storage import schema as sch
from lean_data.storage.sqlite_errors import failure_kind

__all__ = ["connect"]

logger = logging.getLogger("lean_data.storage.sqlite")  # the name users configure for storage


async def connect(path: str, *, busy_timeout_ms: int, check: bool) -> aiosqlite.Connection:
    """Return a connection to ``path`` in WAL mode with the current schema.

    Args:
        path: the SQLite file (created with its tables when missing).
        busy_timeout_ms: how long SQLite waits for another connection's write lock.
        check: run ``PRAGMA quick_check`` and a rolled-back test write first.

    Raises:
        StorageError: the file cannot be opened, holds a newer schema, is not a database,
            is corrupt or cannot be written.
    """
    db: aiosqlite.Connection | None = None
    try:
        # Probe first: when aiosqlite.connect() itself fails, its worker thread may
        # report to the event loop after the loop has closed.
        await asyncio.to_thread(_probe, path)
        db = await aiosqlite.connect(path)
        await _prepare(db, path, busy_timeout_ms, check)
    except BaseException as exc:
        if db is not None:
            await db.close()
        if isinstance(exc, sqlite3.Error | OSError):
            raise StorageError(
                f"cannot open SQLite database {path!r}: {_problem(exc)} ({exc})"
            ) from exc
        raise
    return db


async def _prepare(db: aiosqlite.Connection, path: str, busy_timeout_ms: int, check: bool) -> None:
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA synchronous=NORMAL")
    # Statement journals in memory: a multi-row INSERT keeps one (it must undo itself when
    # a row fails), and on disk, past 64 KiB, it cost ~1.5 pwrite calls a row stored
    # (~1 us of the ~3 us a bar row took; benchmarks/README.md, figure 4)
    await db.execute("PRAGMA temp_store=MEMORY")
    await db.execute(f"PRAGMA busy_timeout={busy_timeout_ms:d}")
    if check:
        await _check_file(db, path, busy_timeout_ms)
    if await stored_version(db) == sch.SCHEMA_VERSION:
        return  # up to date: no write lock needed, however busy other writers are
    await db.execute("BEGIN IMMEDIATE")  # one creating or migrating process at a time
    try:
        found = await create_or_migrate(db)
    except ValueError as exc:
        raise StorageError(f"{path!r} has {exc}") from None
    await db.commit()
    if found != sch.SCHEMA_VERSION:
        logger.info("upgraded %s from schema version %d to %d", path, found, sch.SCHEMA_VERSION)


async def _check_file(db: aiosqlite.Connection, path: str, busy_timeout_ms: int) -> None:
    """Refuse a corrupt file, or one that cannot be written (a rolled-back test write).

    The test write does not wait for another connection's write lock: a file another
    writer is writing is taken as writable.
    """
    rows = list(await db.execute_fetchall("PRAGMA quick_check(5)"))
    text = "\n".join(str(row[0]) for row in rows)
    if text != "ok":  # e.g. "*** in database main ***\nPage 3 is never used\n..."
        problems = [line for line in text.splitlines() if line and not line.startswith("***")]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise StorageError(
            f"cannot open SQLite database {path!r}: corrupt: "
            f"{problems[0] if problems else text}{more}"
        )
    await db.execute("PRAGMA busy_timeout=0")
    try:
        await db.execute("BEGIN IMMEDIATE")
        try:
            await db.execute("CREATE TABLE lean_write_check (x INTEGER)")  # main file
        finally:
            await db.rollback()
    except sqlite3.OperationalError as exc:
        if failure_kind(exc) != "locked":
            raise
        logger.info("%s: skipped the test write, another connection is writing", path)
    finally:
        await db.execute(f"PRAGMA busy_timeout={busy_timeout_ms:d}")


def _problem(exc: BaseException) -> str:
    """A short name for why a file was refused at open."""
    kind = failure_kind(exc)
    if kind == "corrupt" and "not a database" in str(exc):
        return "not a database"
    if kind == "read_only":
        return "read-only"
    if isinstance(exc, OSError) or "unable to open" in str(exc):
        return "cannot be opened or created"
    return kind.replace("_", " ")


def _probe(path: str) -> None:
    """Open and close ``path`` with plain sqlite3 (raises when it cannot be opened)."""
    sqlite3.connect(path).close()


async def stored_version(db: aiosqlite.Connection) -> int | None:
    """Return the file's schema version, or None when it has no ``schema_version`` row."""
    try:
        rows = list(await db.execute_fetchall("SELECT version FROM schema_version"))
    except sqlite3.OperationalError:  # no such table: a new file
        return None
    return int(rows[0][0]) if rows else None


async def create_or_migrate(db: aiosqlite.Connection) -> int:
    """Create the tables and bring an older file up to the current schema version.

    Runs :data:`~lean_data.storage.schema.DDL`, then the
    :data:`~lean_data.storage.schema.MIGRATIONS` from the file's version, inside the
    caller's transaction; the caller commits.

    Returns:
        The version the file had (the current one for a new file).

    Raises:
        ValueError: the file holds a newer version, or one with no migration path.
    """
    for statement in sch.DDL:
        await db.execute(statement)
    rows = list(await db.execute_fetchall("SELECT version FROM schema_version"))
    if not rows:
        await db.execute("INSERT INTO schema_version (version) VALUES (?)", (sch.SCHEMA_VERSION,))
        return sch.SCHEMA_VERSION
    found = int(rows[0][0])
    if await sch.migrate(found, sch.SCHEMA_VERSION, sch.MIGRATIONS, db.execute) != found:
        await db.execute("UPDATE schema_version SET version = ?", (sch.SCHEMA_VERSION,))
    return found
