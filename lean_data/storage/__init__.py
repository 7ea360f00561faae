"""Storage: where items outlive the process.

It owns the SQLite store (:mod:`~lean_data.storage.sqlite`, :class:`DataPersistence`), its one
owned writer task with read-your-writes (:mod:`~lean_data.storage.writer`), the schema and its
migrations (:mod:`~lean_data.storage.schema`), the read queries
(:mod:`~lean_data.storage.queries`), and the LRU-plus-disk cache
(:mod:`~lean_data.storage.cache`) with its disk format (:mod:`~lean_data.storage.codec`).
This package is the home of the storage interface other backends implement. It imports the
core, quality and series stages, never feeds or the engine.
"""
