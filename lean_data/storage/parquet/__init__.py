"""A Parquet catalog of stored market data: export, import, read.

The catalog is a directory of plain Parquet files, one per (kind, symbol, resolution, feed,
UTC day), that pandas, polars, pyarrow.dataset and DuckDB read directly
(``read_parquet('<root>/bars/**/*.parquet', hive_partitioning=true)``)::

    <root>/bars/<symbol>/<resolution>/date=YYYY-MM-DD/part-<feed>.parquet
    <root>/quote_bars/<symbol>/<resolution>/date=YYYY-MM-DD/part-<feed>.parquet
    <root>/ticks/<symbol>/date=YYYY-MM-DD/part-<feed>.parquet

- :func:`export_catalog`: any :class:`~lean_data.storage.base.Storage` to a catalog
  (:mod:`~lean_data.storage.parquet.export`);
- :func:`read_catalog`: one series as models in event-time order, and
  :func:`import_catalog`: a catalog into any Storage (:mod:`~lean_data.storage.parquet.reader`);
- the directory layout and escaping (:mod:`~lean_data.storage.parquet.layout`) and the
  Arrow schemas (:mod:`~lean_data.storage.parquet.arrow`).

pyarrow (the ``parquet`` extra) is imported on first use, never by ``import lean_data``;
without it, these functions raise :class:`~lean_data.errors.ConfigError`. ReplayFeed
replays a catalog through the ``parquet_catalog`` loader format. See ``docs/catalog.md``.
"""

from lean_data.storage.parquet.export import CatalogExport, export_catalog
from lean_data.storage.parquet.layout import CatalogSeries
from lean_data.storage.parquet.reader import catalog_series, import_catalog, read_catalog

__all__ = [
    "CatalogExport",
    "CatalogSeries",
    "catalog_series",
    "export_catalog",
    "import_catalog",
    "read_catalog",
]
