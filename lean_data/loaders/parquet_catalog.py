"""The ``parquet_catalog`` loader format: one series of a Parquet catalog, as a replay file.

A catalog is a directory (see :mod:`lean_data.storage.parquet`), so this is the one format
read from a directory: either the catalog root, with the series named by ``symbol=``,
``resolution=`` and the ``kind`` option, or one series' own directory
(``<root>/bars/BTC%2FUSDT/1m``), which names all three. Options: ``kind`` (``"bar"``,
``"quote"``, ``"tick"``), ``feed`` (only that feed's rows), ``start`` and ``end`` (an
event-time range, ns or datetimes).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lean_data.loaders._common import FileSpec
from lean_data.models import MarketData, Resolution
from lean_data.storage.parquet import layout
from lean_data.storage.parquet.arrow import pyarrow_modules
from lean_data.storage.parquet.reader import iter_series

__all__ = ["FORMAT", "OPTIONS", "describe", "iterate", "looks_like_catalog"]

FORMAT = "parquet_catalog"
OPTIONS = ("kind", "feed", "start", "end")


def looks_like_catalog(path: Path) -> bool:
    """True when the directory ``path`` is a catalog root or a series directory in one."""
    names = set(layout.KIND_DIRS.values())
    return (
        any((path / name).is_dir() for name in names)
        or path.parent.name in names
        or path.parent.parent.name in names
    )  # locate() settles which of these it is, or says why it is none


def describe(
    path: Path, symbol: str | None, resolution: Resolution | None, options: dict[str, Any]
) -> FileSpec:
    """Return the spec of the catalog series ``path`` and the arguments name.

    Raises:
        ConfigError: pyarrow missing, no catalog there, or the series is missing or
            ambiguous (the message lists the candidates).
    """
    pyarrow_modules()
    series = layout.locate(path, options.get("kind"), symbol, resolution)
    return FileSpec(series.path, FORMAT, series.symbol, series.resolution, series.kind)


def iterate(spec: FileSpec, options: dict[str, Any]) -> Iterator[MarketData]:
    """Stream the series' items in event-time order.

    Raises:
        DataFormatError: a file is not a readable catalog file.
    """
    series = layout.CatalogSeries(spec.kind, spec.symbol, spec.resolution, spec.path)
    rows = iter_series(
        series, feed=options.get("feed"), start=options.get("start"), end=options.get("end")
    )
    return (item for _, item in rows)
