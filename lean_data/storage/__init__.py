"""Storage: where items outlive the process.

The storage interface is :class:`~lean_data.storage.base.Storage` (a ``Protocol``: saves,
coverage, range queries, ``last_bar``, quality summary, retention, lifecycle and the
degraded state). Two backends implement it: SQLite,
:class:`~lean_data.storage.sqlite.DataPersistence`, and PostgreSQL,
:class:`~lean_data.storage.postgres.PostgresStorage` (the ``postgres`` extra; loaded on
first use); :func:`~lean_data.storage.factory.create_storage` picks one for a ``Config``.

Shared by both: the lifecycle, queued writes and read barrier
(:mod:`~lean_data.storage.store`), the one writer task with its batching, careful retry and
failure accounting (:mod:`~lean_data.storage.writer`) driving a backend's sink
(:mod:`~lean_data.storage.sink`), the read queries (:mod:`~lean_data.storage.queries`), row
codecs (:mod:`~lean_data.storage.rows`), the retry's defensive row conversion
(:mod:`~lean_data.storage.sanitize`), coverage upkeep (:mod:`~lean_data.storage.coverage`)
and the degraded-state record (:mod:`~lean_data.storage.failures`), order-book snapshots
(:mod:`~lean_data.storage.book_store`, rows :mod:`~lean_data.storage.book_rows`).
SQLite's own: opening and checking the file (:mod:`~lean_data.storage.connect`), its
failure kinds (:mod:`~lean_data.storage.sqlite_errors`), the
schema, its migrations and SQL text (:mod:`~lean_data.storage.schema`), its sink
(:mod:`~lean_data.storage.sqlite_sink`) and retention (:mod:`~lean_data.storage.retention`);
PostgreSQL's own live in
:mod:`lean_data.storage.postgres`. The LRU-plus-disk cache is
:mod:`~lean_data.storage.cache`, with its disk tier (:mod:`~lean_data.storage.cache_disk`)
and disk format (:mod:`~lean_data.storage.codec`). The Parquet catalog (export from any
Storage, import, read; pyarrow on first use) is :mod:`~lean_data.storage.parquet`. This
package imports the core, quality and series stages, never feeds or the engine.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lean_data.storage.postgres import PostgresStorage

__all__ = ["PostgresStorage"]


def __getattr__(name: str) -> Any:
    """Import PostgresStorage (and asyncpg) on first use."""
    if name != "PostgresStorage":
        raise AttributeError(f"module 'lean_data.storage' has no attribute {name!r}")
    from lean_data.storage.postgres import PostgresStorage

    return PostgresStorage
