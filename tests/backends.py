"""Storage backends for tests: one test body runs on SQLite and on PostgreSQL.

SQLite is a file in ``tmp_path``; PostgreSQL is a fresh random schema on
``postgresql://postgres@127.0.0.1:5432/test`` (``LEAN_DATA_TEST_DATABASE_URL`` overrides),
dropped with everything in it after the test. When PostgreSQL cannot be reached the test
fails with one line saying where and how to start it: it is a development and CI service
(see ../shared/DESIGN.md, section 7), not an optional one.

A :class:`Backend` makes stores and engine configs for its database and reads it through
a connection of its own (``rows``), as another process would; SQL text uses ``?``
placeholders for both.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from lean_data.config import Config
from lean_data.storage.postgres import PostgresStorage
from lean_data.storage.sqlite import DataPersistence
from lean_data.storage.store import QueuedStore

PG_URL = os.environ.get("LEAN_DATA_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
NO_DERIVATIVES = dict.fromkeys(
    ("funding_rates", "open_interest", "mark_prices", "liquidations", "book_snapshots"), 0
)
"""What retention reports for the keyed tables (derivatives, book snapshots) of a store
that holds none."""


class Backend(ABC):
    """A database for one test: makes stores and configs, reads rows behind their back."""

    name = ""
    version = 0  # the schema version a new store writes

    @abstractmethod
    def make(self, **settings: Any) -> QueuedStore:
        """A new (unopened) store of this database."""

    @abstractmethod
    def config(self, **settings: Any) -> Config:
        """An engine Config whose storage is this database."""

    @abstractmethod
    async def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Run ``sql`` (``?`` placeholders) on a connection of the test's own."""

    async def execute(self, sql: str, *params: object) -> None:
        """Run a statement on the test's own connection (committed at once)."""
        await self.rows(sql, *params)


class SqliteBackend(Backend):
    name = "sqlite"
    version = 5

    def __init__(self, path: Path) -> None:
        self.path = path

    def make(self, **settings: Any) -> DataPersistence:
        return DataPersistence(self.path, **settings)

    def config(self, **settings: Any) -> Config:
        return Config(db_path=self.path, **settings)

    async def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        if not self.path.exists():  # never create the file under the store about to
            raise sqlite3.OperationalError(f"no such table: {self.path} does not exist")
        other = sqlite3.connect(self.path, isolation_level=None)
        try:
            return other.execute(sql, params).fetchall()
        finally:
            other.close()


class PostgresBackend(Backend):
    name = "postgres"
    version = 4

    def __init__(self, schema: str, conn: asyncpg.Connection) -> None:
        self.schema = schema
        self.url = PG_URL
        self.conn = conn

    def make(self, **settings: Any) -> PostgresStorage:
        return PostgresStorage(PG_URL, schema=self.schema, **settings)

    def config(self, **settings: Any) -> Config:
        settings.setdefault("db_path", None)
        return Config(database_url=PG_URL, database_schema=self.schema, **settings)

    async def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await self.conn.fetch(dollars(sql), *params)]

    async def partitions(self, table: str) -> list[str]:
        """The names of ``table``'s partitions."""
        found = await self.rows(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(?) ORDER BY c.relname",
            f'"{self.schema}".{table}',
        )
        return [name for (name,) in found]


def dollars(sql: str) -> str:
    """``?`` placeholders numbered as PostgreSQL's ``$1``, ``$2``, ..."""
    parts = sql.split("?")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], 1)) + parts[-1]


async def pg_connect() -> asyncpg.Connection:
    """A connection to the test database, or a failed test saying how to start the server."""
    try:
        return await asyncpg.connect(PG_URL, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_URL} ({type(exc).__name__}: {exc}); "
            f"start it with: {PG_START}",
            pytrace=False,
        )


@asynccontextmanager
async def pg_schema() -> AsyncIterator[PostgresBackend]:
    """A fresh random schema for one test, dropped (with everything in it) afterwards."""
    conn = await pg_connect()
    schema = f"lean_test_{secrets.token_hex(6)}"
    try:
        await conn.execute(f'SET search_path = "{schema}"')
        yield PostgresBackend(schema, conn)
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


class PgProxy:
    """A loopback TCP proxy to the PostgreSQL server that a test can cut and restore.

    While cut, every open connection is aborted and new ones are closed as soon as they
    are accepted: to a store it is a server that went away (a network cut, a restart).
    Use it as an async context manager; :attr:`url` is the test database through it.
    """

    def __init__(self) -> None:
        target = urlsplit(PG_URL)
        self._target = (target.hostname or "127.0.0.1", target.port or 5432)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.up = True
        self.url = ""

    async def __aenter__(self) -> PgProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        target = urlsplit(PG_URL)
        user = f"{target.username}@" if target.username else ""
        self.url = f"postgresql://{user}127.0.0.1:{port}{target.path}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> None:
        """Abort every connection through the proxy and refuse new ones."""
        self.up = False
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    def restore(self) -> None:
        """Let connections through again."""
        self.up = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(_pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        sink.transport.abort()
