"""Derivatives records in storage: a record into its row, a stored row back into a record.

The tables (``funding_rates``, ``open_interest``, ``mark_prices``, ``liquidations``) and
their write statements are :mod:`lean_data.storage.schema`'s; this module holds what is
particular to the records: the row of each (column orders ``FUNDING_COLUMNS`` etc.), the
read statements, and the decoding. Both backends store a NaN as NULL, read back as ``nan``;
an unknown time is 0. Rows carry no quality columns: the validator does not score these
records.

The queue entries built here travel the one write queue and batch writer every store has
(:mod:`lean_data.storage.writer`): one ``executemany`` (SQLite) or one set-based upsert
(PostgreSQL) per table per transaction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Final

from lean_data.derivatives import (
    DerivativesData,
    FundingRate,
    Liquidation,
    MarkPrice,
    OpenInterest,
)
from lean_data.storage import schema as sch
from lean_data.storage.sanitize import INT64_MAX, INT64_MIN
from lean_data.storage.schema import Row

__all__ = [
    "RANGE_SQL",
    "TABLE_OF",
    "entries",
    "from_rows",
    "range_params",
]

_NAN = math.nan


def _f(value: float | None) -> float:
    return _NAN if value is None else float(value)


def funding_row(r: FundingRate, feed: str, ts_recv: int) -> Row:
    """Return the ``funding_rates`` row of ``r`` in ``FUNDING_COLUMNS`` order."""
    interval = r.funding_interval
    return (feed, r.symbol, r.ts_event, r.rate, r.next_funding_time, interval, r.predicted_rate,
            ts_recv)  # fmt: skip


def open_interest_row(r: OpenInterest, feed: str, ts_recv: int) -> Row:
    """Return the ``open_interest`` row of ``r`` in ``OPEN_INTEREST_COLUMNS`` order."""
    return (feed, r.symbol, r.ts_event, r.contracts, r.notional, ts_recv)


def mark_price_row(r: MarkPrice, feed: str, ts_recv: int) -> Row:
    """Return the ``mark_prices`` row of ``r`` in ``MARK_PRICE_COLUMNS`` order."""
    return (feed, r.symbol, r.ts_event, r.mark_price, r.index_price, r.funding_rate,
            r.next_funding_time, ts_recv)  # fmt: skip


def liquidation_row(r: Liquidation, feed: str, ts_recv: int) -> Row:
    """Return the ``liquidations`` row of ``r`` in ``LIQUIDATION_COLUMNS`` order."""
    return (feed, r.symbol, r.ts_event, r.side, r.price, r.quantity, r.order_status,
            r.average_price, r.filled_quantity, ts_recv)  # fmt: skip


_BUILDERS: Final[dict[type, tuple[int, Callable[[Any, str, int], Row]]]] = {
    FundingRate: (sch.FUNDING_RATES, funding_row),
    OpenInterest: (sch.OPEN_INTEREST, open_interest_row),
    MarkPrice: (sch.MARK_PRICES, mark_price_row),
    Liquidation: (sch.LIQUIDATIONS, liquidation_row),
}

TABLE_OF: Final = {cls: table for cls, (table, _) in _BUILDERS.items()}
"""The table index of each record type."""


def entries(
    kind: type[DerivativesData], records: Iterable[Any], feed: str, now: Callable[[], int]
) -> list[tuple[int, Row]]:
    """Return the queue entries of ``records``, all of type ``kind``.

    A record with ``ts_recv == 0`` (unknown, e.g. read from a file) is stored with the
    time it was saved (``now()``), as market rows are.

    Raises:
        TypeError: a record is not a ``kind`` (nothing is queued then).
    """
    table, build = _BUILDERS[kind]
    found: list[tuple[int, Row]] = []
    for record in records:
        if not isinstance(record, kind):
            raise TypeError(f"expected {kind.__name__} records, got {type(record).__name__}")
        found.append((table, build(record, feed, record.ts_recv or now())))
    return found


_SELECT: Final = {
    sch.FUNDING_RATES: "SELECT symbol, ts_event, rate, ts_recv, next_funding_time, "
    "funding_interval, predicted_rate, feed FROM funding_rates",
    sch.OPEN_INTEREST: "SELECT symbol, ts_event, contracts, notional, ts_recv, feed "
    "FROM open_interest",
    sch.MARK_PRICES: "SELECT symbol, ts_event, mark_price, index_price, ts_recv, funding_rate, "
    "next_funding_time, feed FROM mark_prices",
    sch.LIQUIDATIONS: "SELECT symbol, ts_event, side, price, quantity, ts_recv, order_status, "
    "average_price, filled_quantity, feed FROM liquidations",
}
"""Column lists in the records' constructor order, then the feed (the last column)."""


def _range(table: int, *, one_feed: bool) -> str:
    order = ", ".join(sch.DERIVATIVE_KEYS[table][1:])  # symbol is fixed: time, feed, ...
    feed = " AND feed = ?4" if one_feed else ""
    return (
        f"{_SELECT[table]} WHERE symbol = ?1 AND ts_event >= ?2 AND ts_event < ?3{feed} "
        f"ORDER BY {order}"
    )


RANGE_SQL: Final = {
    (table, one_feed): _range(table, one_feed=one_feed)
    for table in _SELECT
    for one_feed in (False, True)
}
"""The range read of each table, of every feed or of one (``?4``): by the primary key."""


def range_params(
    symbol: str, start: int | None, end: int | None, feed: str | None
) -> tuple[Any, ...]:
    """The placeholders of a :data:`RANGE_SQL` statement; a None bound is open."""
    low = INT64_MIN if start is None else start
    high = INT64_MAX if end is None else end
    return (symbol, low, high) if feed is None else (symbol, low, high, feed)


def _funding(r: Row) -> FundingRate:
    return FundingRate(r[0], r[1], _f(r[2]), r[3], r[4], r[5], _f(r[6]))


def _open_interest(r: Row) -> OpenInterest:
    return OpenInterest(r[0], r[1], _f(r[2]), _f(r[3]), r[4])


def _mark_price(r: Row) -> MarkPrice:
    return MarkPrice(r[0], r[1], _f(r[2]), _f(r[3]), r[4], _f(r[5]), r[6])


def _liquidation(r: Row) -> Liquidation:
    return Liquidation(r[0], r[1], r[2], _f(r[3]), _f(r[4]), r[5], r[6], _f(r[7]), _f(r[8]))


_DECODERS: Final[dict[int, Callable[[Row], Any]]] = {
    sch.FUNDING_RATES: _funding,
    sch.OPEN_INTEREST: _open_interest,
    sch.MARK_PRICES: _mark_price,
    sch.LIQUIDATIONS: _liquidation,
}


def from_rows(table: int, rows: Iterable[Row]) -> list[Any]:
    """Return the records of ``table`` for rows read by its :data:`RANGE_SQL`."""
    decode = _DECODERS[table]
    return [decode(row) for row in rows]
