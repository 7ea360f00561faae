"""Storage: where items outlive the process.

The storage interface is :class:`~lean_data.storage.base.Storage` (a ``Protocol``: saves,
coverage, range queries, ``last_bar``, quality summary, retention, lifecycle and the
degraded state), the home of the interface other backends implement. The SQLite store,
:class:`~lean_data.storage.sqlite.DataPersistence`, implements it with one owned writer
task with read-your-writes (:mod:`~lean_data.storage.writer`); around it: opening and
checking the file (:mod:`~lean_data.storage.connect`), the schema, its migrations and SQL
text (:mod:`~lean_data.storage.schema`), row codecs (:mod:`~lean_data.storage.rows`), the
retry's defensive row conversion (:mod:`~lean_data.storage.sanitize`), coverage upkeep
(:mod:`~lean_data.storage.coverage`), retention (:mod:`~lean_data.storage.retention`),
failure kinds (:mod:`~lean_data.storage.failures`) and the read queries
(:mod:`~lean_data.storage.queries`). The LRU-plus-disk cache is
:mod:`~lean_data.storage.cache`, with its disk tier (:mod:`~lean_data.storage.cache_disk`)
and disk format (:mod:`~lean_data.storage.codec`). The Parquet catalog (export from any
Storage, import, read; pyarrow on first use) is :mod:`~lean_data.storage.parquet`. This
package imports the core, quality and series stages, never feeds or the engine.
"""
