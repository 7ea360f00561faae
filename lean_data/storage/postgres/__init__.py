"""PostgreSQL storage (the ``postgres`` extra: asyncpg): :class:`PostgresStorage`.

The same :class:`~lean_data.storage.base.Storage` as the SQLite store, with the
backend-neutral parts shared (:mod:`lean_data.storage.store`, :mod:`lean_data.storage.writer`,
:mod:`lean_data.storage.queries`, :mod:`lean_data.storage.coverage`, row codecs and
sanitising). This package owns what is PostgreSQL's own: the store and its pool
(:mod:`~lean_data.storage.postgres.store`), the schema, its migrations and SQL text
(:mod:`~lean_data.storage.postgres.schema`), monthly partitions
(:mod:`~lean_data.storage.postgres.partitions`), value conversion and error
classification (:mod:`~lean_data.storage.postgres.records`), the batch sink: COPY into
staging and one upsert per table (:mod:`~lean_data.storage.postgres.sink`), and
partition-aware retention (:mod:`~lean_data.storage.postgres.retention`).

Importing it imports asyncpg; ``import lean_data`` does not.
"""

from lean_data.storage.postgres.store import PostgresStorage

__all__ = ["PostgresStorage"]
