"""``Bars``: what ``DataEngine.bars()`` returns, a read-only sequence with DataFrame exports.

``bars.to_pandas()`` and ``bars.to_polars()`` build one frame of one item type:

- **Index / first column** ``time``: the open (event) time, UTC, nanoseconds (pandas: a
  ``DatetimeIndex`` named ``time``, dtype ``datetime64[ns, UTC]``; polars: a column
  ``time`` of ``Datetime("ns", "UTC")``).
- **Columns**, all ``float64``: for trade bars ``open high low close volume``; for quote
  bars ``bid_open bid_high bid_low bid_close bid_size ask_open ask_high ask_low ask_close
  ask_size``; for ticks ``price size bid_price bid_size ask_price ask_size``.
- The symbol and the resolution are the sequence's (``bars.symbol``, ``bars.resolution``),
  not columns; pandas also keeps them in ``frame.attrs``.

A query can answer with more than one type (a feed with trade and quote bars of a symbol):
pick one with :meth:`Bars.of` (``bars.of("quote").to_pandas()``). pandas and polars are
optional (the ``pandas`` and ``polars`` extras) and imported only by these methods.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, overload

from lean_data.models import MarketData, QuoteBar, Resolution, Tick, TradeBar, datetime_to_ns

__all__ = ["COLUMNS", "Bars", "missing_library", "time_ns"]

COLUMNS: dict[type[Any], tuple[str, ...]] = {
    TradeBar: ("open", "high", "low", "close", "volume"),
    QuoteBar: (
        "bid_open", "bid_high", "bid_low", "bid_close", "bid_size",
        "ask_open", "ask_high", "ask_low", "ask_close", "ask_size",
    ),
    Tick: ("price", "size", "bid_price", "bid_size", "ask_price", "ask_size"),
}  # fmt: skip
"""The value columns of each item type, in frame order (all float64)."""
_KINDS = {cls.kind: cls for cls in COLUMNS}


def missing_library(name: str, method: str) -> ImportError:
    """The error ``method`` raises when the optional library ``name`` is not installed."""
    return ImportError(f"{method} needs {name}: pip install 'lean-data[{name}]'")


def _library(name: str, method: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise missing_library(name, method) from exc


def time_ns(value: datetime | str | int, name: str = "time") -> int:
    """Return ``value`` as ns since the epoch: a ``datetime`` (naive is UTC), an ISO 8601
    string (``"2013-10-07"``, ``"2013-10-07T13:30:00Z"``) or an int of ns.

    Raises:
        ValueError: anything else, or a string that is not ISO 8601.
    """
    if isinstance(value, datetime):
        return datetime_to_ns(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return datetime_to_ns(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
    raise ValueError(
        f"{name}: expected a datetime, an ISO 8601 string or ns since the epoch; got {value!r}"
    )


class Bars(Sequence[MarketData]):
    """The items of one history query, oldest first (read-only).

    Args:
        items: the items, oldest first.
        symbol: their symbol.
        resolution: the resolution asked for.
    """

    __slots__ = ("_items", "resolution", "symbol")

    def __init__(
        self,
        items: Iterable[MarketData],
        symbol: str = "",
        resolution: Resolution | None = None,
    ) -> None:
        self._items = tuple(items)
        self.symbol = symbol
        self.resolution = resolution

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> MarketData: ...

    @overload
    def __getitem__(self, index: slice) -> Bars: ...

    def __getitem__(self, index: int | slice) -> MarketData | Bars:
        if isinstance(index, slice):
            return Bars(self._items[index], self.symbol, self.resolution)
        return self._items[index]

    def __iter__(self) -> Iterator[MarketData]:
        return iter(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Bars):
            return self._items == other._items
        if isinstance(other, Sequence) and not isinstance(other, str):
            return self._items == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to lists, so not hashable

    def __repr__(self) -> str:
        shown = self.resolution if self.resolution is not None else "?"
        return f"Bars({self.symbol!r}, {shown}, {len(self)} items)"

    def of(self, kind: str) -> Bars:
        """Only the items of ``kind``: ``"bar"``, ``"quote"`` or ``"tick"``.

        Raises:
            ValueError: another kind.
        """
        cls = _KINDS.get(kind)
        if cls is None:
            raise ValueError(f"kind: expected one of {', '.join(_KINDS)}; got {kind!r}")
        return Bars((x for x in self._items if type(x) is cls), self.symbol, self.resolution)

    def _columns(self, method: str) -> tuple[list[int], dict[str, list[float]]]:
        """The event times and the value columns, by name (one item type only)."""
        types = {type(x) for x in self._items}
        if len(types) > 1:
            found = ", ".join(sorted(t.kind for t in types))
            raise ValueError(
                f"{method}: these {len(self)} items are of several kinds ({found}); "
                f"choose one, e.g. bars.of('bar').{method}()"
            )
        cls = types.pop() if types else TradeBar
        names = COLUMNS.get(cls)
        if names is None:
            raise ValueError(f"{method}: no columns for {cls.__name__} items")
        items = self._items
        columns = {name: [float(getattr(x, name)) for x in items] for name in names}
        return [x.ts_event for x in items], columns

    def to_pandas(self) -> Any:
        """Return a ``pandas.DataFrame``: a UTC ``DatetimeIndex`` named ``time`` and
        float64 value columns (see the module docstring).

        Raises:
            ImportError: pandas is not installed (``pip install 'lean-data[pandas]'``).
            ValueError: the items are of several kinds (choose one with :meth:`of`).
        """
        pd = _library("pandas", "Bars.to_pandas()")
        stamps, columns = self._columns("to_pandas")
        index = pd.DatetimeIndex(pd.to_datetime(stamps, unit="ns", utc=True), name="time")
        frame = pd.DataFrame(columns, index=index, dtype="float64")
        frame.attrs.update(symbol=self.symbol, resolution=str(self.resolution or ""))
        return frame

    def to_polars(self) -> Any:
        """Return a ``polars.DataFrame``: a ``time`` column (``Datetime("ns", "UTC")``)
        then float64 value columns (see the module docstring).

        Raises:
            ImportError: polars is not installed (``pip install 'lean-data[polars]'``).
            ValueError: the items are of several kinds (choose one with :meth:`of`).
        """
        pl = _library("polars", "Bars.to_polars()")
        stamps, columns = self._columns("to_polars")
        time = pl.Series("time", stamps, dtype=pl.Int64).cast(pl.Datetime("ns", "UTC"))
        values = [pl.Series(name, data, dtype=pl.Float64) for name, data in columns.items()]
        return pl.DataFrame([time, *values])
