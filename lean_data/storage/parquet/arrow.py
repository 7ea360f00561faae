"""Arrow schemas of a Parquet catalog, and models to and from Arrow tables.

pyarrow is optional (the ``parquet`` extra): it is imported by :func:`pyarrow_modules`, on
first use, never when :mod:`lean_data` is imported.

Every file has the columns of its kind's model, by the model's field names, and two more:
``feed`` (the feed that stored the row) and ``time``, the event time as
``timestamp[ns, tz=UTC]`` (the same instant as ``ts_event``, int64 ns, which stays the
exact key). Booleans are ``bool``, prices and sizes ``float64`` (NaN kept as NaN),
``resolution`` and ``tick_type`` their short text (``"1m"``, ``"trade"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, TypeVar

from lean_data.errors import ConfigError, DataFormatError
from lean_data.models import MarketData, QuoteBar, Tick, TickType, TradeBar
from lean_data.storage.rows import resolution_from_text

__all__ = [
    "CATALOG_VERSION",
    "COLUMNS",
    "pyarrow_modules",
    "rows_from_table",
    "schema",
    "table_from_items",
]

CATALOG_VERSION: Final = "1"
"""Written to every file's metadata (``lean_data.catalog``); bumped when the layout changes."""

_PRICES_BAR = ("open", "high", "low", "close", "volume")
_PRICES_QUOTE = tuple(
    f"{side}_{part}" for side in ("bid", "ask") for part in (*_PRICES_BAR[:4], "size")
)
_PRICES_TICK = ("price", "size", "bid_price", "bid_size", "ask_price", "ask_size")
_BAR_TAIL = ("ts_recv", "closed", "revision", "backfilled")
_B = TypeVar("_B", TradeBar, QuoteBar)

COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "bar": ("symbol", "feed", "resolution", "time", "ts_event", *_PRICES_BAR, *_BAR_TAIL),
    "quote": ("symbol", "feed", "resolution", "time", "ts_event", *_PRICES_QUOTE, *_BAR_TAIL),
    "tick": (
        *("symbol", "feed", "time", "ts_event", "tick_type", *_PRICES_TICK),
        *("exchange", "condition", "suspicious", "trade_id", "ts_recv"),
    ),
}
"""Column names per kind, in file order."""

_MODEL_FIELDS = {
    kind: tuple(c for c in names if c not in ("feed", "time")) for kind, names in COLUMNS.items()
}
_FLOATS = frozenset((*_PRICES_BAR, *_PRICES_QUOTE, *_PRICES_TICK))
_INTS = frozenset(("ts_event", "ts_recv", "revision"))
_BOOLS = frozenset(("closed", "backfilled", "suspicious"))
_MISSING_PYARROW = 'the Parquet catalog needs pyarrow: pip install "lean-data[parquet]"'


def pyarrow_modules() -> tuple[Any, Any]:
    """Return ``(pyarrow, pyarrow.parquet)``, imported now.

    Raises:
        ConfigError: pyarrow is not installed (names the extra to install).
    """
    try:
        import pyarrow as pa  # optional: the parquet extra
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ConfigError(_MISSING_PYARROW) from exc
    return pa, pq


def _arrow_type(pa: Any, column: str) -> Any:
    if column == "time":
        return pa.timestamp("ns", tz="UTC")
    if column in _FLOATS:
        return pa.float64()
    if column in _INTS:
        return pa.int64()
    if column in _BOOLS:
        return pa.bool_()
    return pa.string()


def schema(kind: str) -> Any:
    """Return the Arrow schema of a catalog file of ``kind`` (``"bar"``, ``"quote"``...)."""
    pa, _ = pyarrow_modules()
    metadata = {b"lean_data.catalog": CATALOG_VERSION.encode(), b"lean_data.kind": kind.encode()}
    fields = [
        pa.field(name, _arrow_type(pa, name), nullable=name in _FLOATS) for name in COLUMNS[kind]
    ]
    return pa.schema(fields, metadata=metadata)


def table_from_items(kind: str, feed: str, items: Sequence[MarketData]) -> Any:
    """Return the Arrow table of ``items`` (all of ``kind``, stored by ``feed``)."""
    pa, _ = pyarrow_modules()
    target = schema(kind)
    values: dict[str, list[Any]] = {"feed": [feed] * len(items)}
    for name in COLUMNS[kind]:
        if name not in values and name != "time":
            values[name] = [getattr(item, name) for item in items]
    if "resolution" in values:
        values["resolution"] = [resolution.name for resolution in values["resolution"]]
    if "tick_type" in values:
        values["tick_type"] = [tick_type.value for tick_type in values["tick_type"]]
    values["time"] = values["ts_event"]  # the same int64 ns, typed as a UTC timestamp
    arrays = [pa.array(values[f.name], type=f.type) for f in target]
    return pa.Table.from_arrays(arrays, schema=target)


def rows_from_table(kind: str, table: Any, source: str) -> Iterator[tuple[str, MarketData]]:
    """Yield ``(feed, item)`` for every row of a catalog table, in table order.

    Float columns read nulls as NaN; a missing ``feed`` column reads as ``""``.

    Raises:
        DataFormatError: a column is missing, or null where a value is required.
    """
    columns = {name: _column(table, name, source) for name in _MODEL_FIELDS[kind]}
    has_feed = "feed" in table.column_names
    feeds = _column(table, "feed", source) if has_feed else [""] * table.num_rows
    build = _BUILDERS[kind]
    try:
        yield from zip(feeds, build(columns), strict=True)
    except (ValueError, TypeError) as exc:  # an unknown resolution or tick type, a bad value
        raise DataFormatError(f"not a catalog {kind} table: {exc}", source=source) from exc


def _column(table: Any, name: str, source: str) -> list[Any]:
    if name not in table.column_names:
        found = ", ".join(table.column_names)
        raise DataFormatError(f"no {name!r} column; found {found}", source=source)
    pa, _ = pyarrow_modules()
    try:
        column = table.column(name).cast(_arrow_type(pa, name))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataFormatError(f"the {name!r} column: {exc}", source=source) from exc
    values: list[Any] = column.to_pylist()
    if column.null_count:
        if name not in _FLOATS:
            raise DataFormatError(f"the {name!r} column has null values", source=source)
        values = [math.nan if value is None else value for value in values]
    return values


def _bars(c: dict[str, list[Any]]) -> Iterator[TradeBar]:
    return _bar_like(TradeBar, _PRICES_BAR, c)


def _quotes(c: dict[str, list[Any]]) -> Iterator[QuoteBar]:
    return _bar_like(QuoteBar, _PRICES_QUOTE, c)


def _bar_like(
    cls: Callable[..., _B], prices: Sequence[str], c: dict[str, list[Any]]
) -> Iterator[_B]:
    """Trade or quote bars: symbol, open time, the prices, resolution, then the flags."""
    resolutions = map(resolution_from_text, c["resolution"])
    for row in zip(
        c["symbol"], c["ts_event"], *(c[name] for name in prices), resolutions,
        *(c[name] for name in _BAR_TAIL), strict=True,
    ):  # fmt: skip
        yield cls(*row)


def _ticks(c: dict[str, list[Any]]) -> Iterator[Tick]:
    types = map(TickType, c["tick_type"])
    for row in zip(
        c["symbol"], c["ts_event"], c["price"], c["size"], types, c["ts_recv"],
        *(c[name] for name in _PRICES_TICK[2:]),
        *(c[name] for name in ("exchange", "condition", "suspicious", "trade_id")), strict=True,
    ):  # fmt: skip
        yield Tick(*row)


_BUILDERS: Final[dict[str, Callable[[dict[str, list[Any]]], Iterator[MarketData]]]] = {
    "bar": _bars,
    "quote": _quotes,
    "tick": _ticks,
}
