"""The read side of every store: queries and summaries, for SQLite and PostgreSQL alike.

:class:`Queries` holds the read methods; every query goes through its abstract ``_fetch``,
which the store implements (state check, read-your-writes barrier, placeholder style, error
mapping). The statements' text comes from the backend (:class:`~lean_data.storage.schema.
QuerySql`), with numbered ``?n`` placeholders throughout.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from lean_data.derivatives import FundingRate, Liquidation, MarkPrice, OpenInterest
from lean_data.models import NS_PER_HOUR, QuoteBar, Resolution, Tick, TradeBar, datetime_to_ns
from lean_data.series import intervals as iv
from lean_data.storage import derivative_rows as drv
from lean_data.storage import schema as sch
from lean_data.storage.rows import (
    ERROR_KEYS,
    ScoredBar,
    bar_from_row,
    quote_from_row,
    resolution_from_text,
    scored_bar_from_row,
    tick_from_row,
)
from lean_data.storage.tally import fold_quality

__all__ = ["Queries", "RangeQuery"]


@dataclass(frozen=True, slots=True)
class RangeQuery:
    """A range read of one market table, to run with a select list of the backend's choice.

    Attributes:
        cte: what goes before ``SELECT`` (a ``WITH`` clause, or nothing).
        tail: from ``WHERE`` to the end (``ORDER BY``), ``?n`` placeholders.
        params: the placeholders' values; the first is the symbol every row has.
        wait: pass the read-your-writes barrier first (False: it was just passed).
        resolution: the one resolution every row has (its stored name), when known.
    """

    cte: str
    tail: str
    params: tuple[Any, ...]
    wait: bool
    resolution: str | None

    def sql(self, select: str) -> str:
        """The statement with ``select`` (``SELECT <columns> FROM <table>``)."""
        return f"{self.cte}{select} {self.tail}"


class Queries(ABC):
    """Read methods of every store (a base class of :class:`~lean_data.storage.store.
    QueuedStore`).

    Args:
        clock_ns: wall clock in ns since the epoch, for the ``hours`` windows.
        sql: the backend's statements.
    """

    def __init__(self, clock_ns: Callable[[], int], sql: sch.QuerySql) -> None:
        self._clock_ns = clock_ns
        self._sql = sql

    @abstractmethod
    async def _fetch(
        self, sql: str, params: tuple[Any, ...], *, wait: bool = True
    ) -> list[sch.Row]:
        """Run a query after the rows queued so far are committed (``wait=False``: now)."""

    async def get_market_data(
        self,
        symbol: str,
        start: int | datetime,
        end: int | datetime,
        *,
        resolution: Resolution | str | None = None,
        feed: str | None = None,
    ) -> list[TradeBar]:
        """Return the stored trade bars of ``symbol`` opening in ``[start, end)``.

        Args:
            symbol: the symbol as saved.
            start, end: ns since the epoch or datetimes (naive means UTC); end excluded.
            resolution: only this bar period (default: every period stored).
            feed: only rows from this feed (default: every feed, ordered by time then feed).

        Returns:
            Bars in ascending open time; stored NULL prices and volumes come back as nan.
        """
        query = await self._range_query("bars", symbol, start, end, resolution, feed)
        return [] if query is None else await self._read_bars(query)

    async def get_quote_bars(
        self,
        symbol: str,
        start: int | datetime,
        end: int | datetime,
        *,
        resolution: Resolution | str | None = None,
        feed: str | None = None,
    ) -> list[QuoteBar]:
        """Return the stored quote bars of ``symbol`` opening in ``[start, end)``.

        Arguments and ordering as :meth:`get_market_data`.
        """
        query = await self._range_query("quote_bars", symbol, start, end, resolution, feed)
        if query is None:
            return []
        sql = query.sql(self._sql.select["quote_bars"])
        return [quote_from_row(r) for r in await self._fetch(sql, query.params, wait=query.wait)]

    async def get_scored_bars(
        self,
        symbol: str,
        start: int | datetime,
        end: int | datetime,
        *,
        resolution: Resolution | str | None = None,
        feed: str | None = None,
        limit: int | None = None,
    ) -> list[ScoredBar]:
        """Return the stored trade bars of ``symbol`` opening in ``[start, end)`` with their
        feed and stored verdict (score, level, reasons; None/None/"" when saved without one).

        Arguments and ordering as :meth:`get_market_data`; at most ``limit`` rows (page on
        by asking again from the last open time + 1 with ``resolution`` and ``feed`` given).
        """
        query = await self._range_query("bars", symbol, start, end, resolution, feed)
        if query is None:
            return []
        sql = query.sql(self._sql.select["scored_bars"])
        params = query.params
        if limit is not None:
            sql, params = f"{sql} LIMIT ?{len(params) + 1}", (*params, int(limit))
        rows = await self._fetch(sql, params, wait=query.wait)
        return [scored_bar_from_row(r) for r in rows]

    async def _range_query(
        self,
        table: str,
        symbol: str,
        start: int | datetime,
        end: int | datetime,
        resolution: Resolution | str | None,
        feed: str | None,
    ) -> RangeQuery | None:
        """The range read of ``table``'s rows of ``symbol``; None when it has no rows."""
        params: tuple[Any, ...] = (symbol, _ns(start), _ns(end))
        q = self._sql
        wait = True
        if resolution is None:  # walk the stored resolutions so the key index still serves
            lookup = q.series_of_symbol.get(table)
            if lookup is None:
                sql = f"{q.resolutions_cte[table]} SELECT res FROM r WHERE res IS NOT NULL"
                found = await self._fetch(sql, (symbol,))
            else:  # the backend lists the series: (resolution, feed) pairs
                rows = await self._fetch(lookup, (symbol,))
                series = [row for row in rows if feed in (None, row[1])]
                found = sorted({(res,) for res, _ in series})
                feed = series[0][1] if len(series) == 1 else feed  # one series: no sort
            if not found:
                return None
            wait = False  # the barrier was just passed
            if len(found) == 1:  # the usual case: rows come in key order, with no sort
                resolution = resolution_from_text(found[0][0])
        if resolution is None:
            cte = f"{q.resolutions_cte[table]} "
            where = f"{q.range} AND resolution IN (SELECT res FROM r)"
            name = None
        else:
            cte, name = "", Resolution.parse(resolution).name
            where = f"{q.range} AND resolution = ?4"
            params += (name,)
        if feed is not None:
            where += f" AND feed = ?{len(params) + 1}"
            params += (feed,)
        return RangeQuery(cte, where + " ORDER BY ts_event, feed, resolution", params, wait, name)

    async def _read_bars(self, query: RangeQuery) -> list[TradeBar]:
        """Run ``query`` on the bars table and build its bars (a backend may do it faster)."""
        rows = await self._fetch(query.sql(self._sql.select["bars"]), query.params, wait=query.wait)
        return [bar_from_row(r) for r in rows]

    async def get_ticks(
        self, symbol: str, start: int | datetime, end: int | datetime, *, feed: str | None = None
    ) -> list[Tick]:
        """Return the stored ticks of ``symbol`` in ``[start, end)``, in time then save order."""
        sql = f"{self._sql.select['ticks']} {self._sql.range}"
        params: tuple[Any, ...] = (symbol, _ns(start), _ns(end))
        if feed is not None:
            sql += " AND feed = ?4"
            params += (feed,)
        rows = await self._fetch(sql + " ORDER BY ts_event, id", params)
        return [tick_from_row(r) for r in rows]

    async def get_coverage(
        self,
        feed: str,
        symbol: str,
        resolution: Resolution | str,
        start_ns: int,
        end_ns: int,
    ) -> list[tuple[int, int, bool]]:
        """Return the recorded coverage of a bar series within ``[start_ns, end_ns)``.

        Sees every :meth:`record_coverage` call that returned before it.

        Returns:
            ``(start, end, empty)`` triples clipped to the span, sorted and disjoint;
            ``empty`` is True where the source reported no bars. Neighbours with the same
            flag are merged (a covered and an empty interval may touch).

        Raises:
            ValueError: an unknown resolution.
        """
        if end_ns <= start_ns:
            return []
        key = (feed, symbol, Resolution.parse(resolution).name)
        sql = self._sql.coverage_overlapping
        rows = await self._fetch(sql, (*key, int(start_ns), int(end_ns)))
        return [(max(s, start_ns), min(e, end_ns), bool(empty)) for s, e, empty in rows]

    async def missing_intervals(
        self,
        feed: str,
        symbol: str,
        resolution: Resolution | str,
        start_ns: int,
        end_ns: int,
    ) -> list[tuple[int, int]]:
        """Return the parts of ``[start_ns, end_ns)`` neither covered nor known empty.

        These are the intervals to request from the feed; sorted, disjoint, not touching.

        Raises:
            ValueError: an unknown resolution.
        """
        if end_ns <= start_ns:
            return []
        known = await self.get_coverage(feed, symbol, resolution, start_ns, end_ns)
        return iv.subtract((int(start_ns), int(end_ns)), [(s, e) for s, e, _ in known])

    async def last_bar(
        self,
        feed: str,
        symbol: str,
        resolution: Resolution | str,
        *,
        closed_only: bool = False,
        committed_only: bool = False,
        sane_before: int | None = None,
    ) -> TradeBar | None:
        """Return the stored trade bar of a series with the latest open time, or None.

        One backward walk of the primary key (symbol, resolution, open time, feed).

        Args:
            feed, symbol, resolution: the series, as its bars were saved.
            closed_only: skip bars stored while still forming (``closed=False``).
            committed_only: read what is committed now instead of first waiting for the
                rows queued so far (a restart lookup: the previous run's bars are all
                committed, and waiting would hold the new series back for a whole batch).
            sane_before: skip bars stored INVALID (``store_invalid``) and bars opening after
                this time (ns): a restart seeds from the newest bar that can be trusted.

        Raises:
            ValueError: an unknown resolution.
        """
        sql = self._sql.last_closed_bar if closed_only else self._sql.last_bar
        params: tuple[object, ...] = (feed, symbol, Resolution.parse(resolution).name)
        if sane_before is not None:
            if closed_only:
                raise ValueError("last_bar: closed_only and sane_before do not combine")
            sql, params = self._sql.last_sane_bar, (*params, sane_before)
        rows = await self._fetch(sql, params, wait=not committed_only)
        return bar_from_row(rows[0]) if rows else None

    async def bar_series_keys(self) -> list[tuple[str, str, Resolution]]:
        """Return ``(feed, symbol, resolution)`` of every stored trade-bar series.

        Read from the ``bar_series`` table, written in the same transaction as the bars.

        Returns:
            Sorted by feed, symbol, then resolution period.
        """
        rows = await self._fetch(self._sql.series_keys, ())
        keys = [(feed, symbol, resolution_from_text(res)) for feed, symbol, res in rows]
        keys.sort(key=lambda k: (k[0], k[1], k[2].nanos))
        return keys

    async def get_funding_rates(
        self,
        symbol: str,
        start: int | datetime | None = None,
        end: int | datetime | None = None,
        *,
        feed: str | None = None,
    ) -> list[FundingRate]:
        """Return the stored funding rates of ``symbol`` in ``[start, end)`` (None: open)."""
        return await self._derivatives(sch.FUNDING_RATES, symbol, start, end, feed)

    async def get_open_interest(
        self,
        symbol: str,
        start: int | datetime | None = None,
        end: int | datetime | None = None,
        *,
        feed: str | None = None,
    ) -> list[OpenInterest]:
        """Return the stored open interest of ``symbol`` in ``[start, end)`` (None: open)."""
        return await self._derivatives(sch.OPEN_INTEREST, symbol, start, end, feed)

    async def get_mark_prices(
        self,
        symbol: str,
        start: int | datetime | None = None,
        end: int | datetime | None = None,
        *,
        feed: str | None = None,
    ) -> list[MarkPrice]:
        """Return the stored mark prices of ``symbol`` in ``[start, end)`` (None: open)."""
        return await self._derivatives(sch.MARK_PRICES, symbol, start, end, feed)

    async def get_liquidations(
        self,
        symbol: str,
        start: int | datetime | None = None,
        end: int | datetime | None = None,
        *,
        feed: str | None = None,
    ) -> list[Liquidation]:
        """Return the stored liquidations of ``symbol`` in ``[start, end)`` (None: open)."""
        return await self._derivatives(sch.LIQUIDATIONS, symbol, start, end, feed)

    async def _derivatives(
        self,
        table: int,
        symbol: str,
        start: int | datetime | None,
        end: int | datetime | None,
        feed: str | None,
    ) -> list[Any]:
        """Records of one derivatives table by time (then feed), of every feed or one."""
        low = None if start is None else _ns(start)
        high = None if end is None else _ns(end)
        sql = drv.RANGE_SQL[(table, feed is not None)]
        return drv.from_rows(
            table, await self._fetch(sql, drv.range_params(symbol, low, high, feed))
        )

    async def get_recent_data(self, symbol: str, hours: float = 24) -> list[TradeBar]:
        """Return the trade bars of ``symbol`` received in the last ``hours``.

        Selected by receive time (``ts_recv``), because replayed and backfilled bars carry
        old event times; returned in ascending open time.
        """
        select = self._sql.select["bars"]
        sql = f"{select} WHERE symbol = ?1 AND ts_recv >= ?2 ORDER BY ts_event, feed"
        rows = await self._fetch(sql, (symbol, self._since(hours)))
        return [bar_from_row(r) for r in rows]

    async def get_metrics_history(self, hours: float = 24) -> list[dict[str, Any]]:
        """Return the metrics snapshots of the last ``hours``, oldest first.

        Returns:
            ``[{"ts_ns": int, "metrics": dict}, ...]``.
        """
        sql = "SELECT ts, payload FROM metrics WHERE ts >= ?1 ORDER BY ts, id"
        rows = await self._fetch(sql, (self._since(hours),))
        return [{"ts_ns": ts, "metrics": orjson.loads(payload)} for ts, payload in rows]

    async def get_errors(
        self, *, hours: float | None = None, kind: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Return stored errors, newest first.

        Args:
            hours: only errors of the last ``hours`` (default: all).
            kind: only errors of this kind.
            limit: at most this many (the newest).

        Returns:
            Dicts with ``ts_ns``, ``kind``, ``feed``, ``symbol``, ``message``, ``detail``.
        """
        sql = "SELECT ts, kind, feed, symbol, message, detail FROM errors WHERE ts >= ?1"
        params: tuple[Any, ...] = (-(2**63) if hours is None else self._since(hours),)
        if kind is not None:
            sql += " AND kind = ?2"
            params += (kind,)
        sql += f" ORDER BY ts DESC, id DESC LIMIT ?{len(params) + 1}"
        rows = await self._fetch(sql, (*params, limit))
        return [dict(zip(ERROR_KEYS, row, strict=True)) for row in rows]

    async def count(
        self,
        table: str = "bars",
        *,
        symbol: str | None = None,
        feed: str | None = None,
        resolution: Resolution | str | None = None,
    ) -> int:
        """Return the number of rows in ``table``, optionally of one symbol, feed, period.

        Args:
            table: one of ``bars``, ``quote_bars``, ``ticks``, ``metrics``, ``errors``.
            symbol: count only this symbol's rows (not for ``metrics``).
            feed: only this feed's rows (not for ``metrics``).
            resolution: only bars of this period (``bars`` and ``quote_bars`` only).

        Raises:
            ValueError: unknown table, or a filter the table has no column for.
        """
        if table not in sch.TABLE_NAMES:
            raise ValueError(f"table must be one of {', '.join(sch.TABLE_NAMES)}, got {table!r}")
        name = sch.TABLE_NAMES[sch.TABLE_NAMES.index(table)]  # the constant, not the argument
        filters = {"symbol": symbol, "feed": feed}
        if resolution is not None:
            if name not in ("bars", "quote_bars"):
                raise ValueError(f"the {name} table has no resolution column")
            filters["resolution"] = Resolution.parse(resolution).name
        given = {column: value for column, value in filters.items() if value is not None}
        if given and name == "metrics":
            raise ValueError("the metrics table has no symbol column (nor feed)")
        where = " AND ".join(f"{column} = ?{i}" for i, column in enumerate(given, start=1))
        sql = f"SELECT COUNT(*) FROM {name}" + (f" WHERE {where}" if where else "")
        rows = await self._fetch(sql, tuple(given.values()))
        return int(rows[0][0])

    async def stored_symbols(self, table: str = "bars") -> list[str]:
        """Return the symbols with rows in ``table``, sorted.

        Args:
            table: ``bars``, ``quote_bars`` or ``ticks``.

        Raises:
            ValueError: another table.
        """
        name = _market_table(table)
        sql = f"SELECT DISTINCT symbol FROM {name} ORDER BY symbol"
        return [str(row[0]) for row in await self._fetch(sql, ())]

    async def stored_feeds(self, symbol: str, table: str = "bars") -> list[str]:
        """Return the feeds that stored rows of ``symbol`` in ``table``, sorted.

        Args:
            table: ``bars``, ``quote_bars`` or ``ticks``.

        Raises:
            ValueError: another table.
        """
        name = _market_table(table)
        sql = f"SELECT DISTINCT feed FROM {name} WHERE symbol = ?1 ORDER BY feed"
        return [str(row[0]) for row in await self._fetch(sql, (symbol,))]

    async def quality_summary(self, symbol: str, *, hours: float = 24) -> dict[str, Any]:
        """Summarise the quality of ``symbol``'s rows received in the last ``hours``.

        Counts bars, quote bars and ticks together, per feed and overall.

        Returns:
            ``{"symbol", "hours", "since_ns", "rows", "average_score", "levels", "feeds"}``
            where ``feeds`` maps each feed to ``{"rows", "average_score", "levels"}``;
            ``levels`` counts rows per :class:`DataQualityLevel` name plus ``"UNSCORED"``
            (saved without a verdict); ``average_score`` covers scored rows (None if none).
        """
        since = self._since(hours)
        rows = await self._fetch(self._sql.quality_by_feed, (symbol, since))
        summary: dict[str, Any] = {"symbol": symbol, "hours": hours, "since_ns": since}
        return summary | fold_quality(rows)

    def _since(self, hours: float) -> int:
        return self._clock_ns() - int(hours * NS_PER_HOUR)


def _ns(value: int | datetime) -> int:
    """Return ``value`` as ns since the epoch (a naive datetime is taken as UTC)."""
    if isinstance(value, datetime):
        return datetime_to_ns(value)
    return int(value)


def _market_table(table: str) -> str:
    """The constant name of market table ``table`` (never the caller's text in SQL).

    Raises:
        ValueError: not ``bars``, ``quote_bars`` or ``ticks``.
    """
    if table not in sch.MARKET_TABLES:
        raise ValueError(f"table must be one of {', '.join(sch.MARKET_TABLES)}, got {table!r}")
    return sch.MARKET_TABLES[sch.MARKET_TABLES.index(table)]
