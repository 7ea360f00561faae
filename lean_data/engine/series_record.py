"""One record per series: the per-series state of every stage, found with one lookup.

A series is (feed, symbol, item kind, resolution) for bars and (feed, symbol, tick type's
value) for ticks: the finest key any stage keeps state by. Each stage still owns its state and
keeps it in its own table, keyed as it needs (the validator by feed, symbol and period,
the quality tracker by feed and symbol, continuity by symbol and resolution, the ring
buffers by symbol); a :class:`SeriesRecord` holds direct references to the objects in
those tables, filled in the first time the pipeline needs each one (so every stage makes
its state when it made it before). Series that share a stage's key share its object.

The pipeline keeps the records (:class:`SeriesRecords`) and hands the references to the
stages' ``*_in`` methods. A stage that forgets state tells the records
(:meth:`lean_data.quality.validator.DataValidator.on_reset`): they drop the symbol's
records, and the next item looks everything up afresh.
"""

from __future__ import annotations

from typing import Any, Final

from lean_data.models import (
    MarketData,
    QuoteBar,
    Resolution,
    Tick,
    TickType,
    TradeBar,
)
from lean_data.quality.levels import Verdict
from lean_data.quality.screen import kind_of
from lean_data.quality.state import Series
from lean_data.quality.tracker import Counters, QualityTracker, SeriesClock
from lean_data.quality.validator import DataValidator
from lean_data.series.buffer import DataBuffer
from lean_data.series.continuity import ContinuityState
from lean_data.slots import TICK, TICK_SYMBOL, TICK_TYPE

__all__ = ["SeriesRecord", "SeriesRecords", "record_key"]

# C statics for classes of pure modules, used per item (see lean_data.quality.screen)
_TICK: Final = Tick
_TICK_FIELDS: Final = TICK
_TRADE: Final = TickType.TRADE
_QUOTE: Final = TickType.QUOTE
_TRADE_VALUE: Final[str] = TickType.TRADE.value
_QUOTE_VALUE: Final[str] = TickType.QUOTE.value


class SeriesRecord:
    """References to one series' state in each stage (None until first needed).

    Attributes:
        validation: the validator's rolling window of the series.
        counters: the quality tracker's counters of (feed, symbol).
        clock: the quality tracker's timing state of the series (gaps, duplicates).
        continuity: continuity's state of (symbol, resolution); closed trade bars only.
        buffer: the ring buffer of the symbol.
    """

    __slots__ = ("buffer", "clock", "continuity", "counters", "validation")

    def __init__(self) -> None:
        self.validation: Series | None = None
        self.counters: Counters | None = None
        self.clock: SeriesClock | None = None
        self.continuity: ContinuityState | None = None
        self.buffer: DataBuffer[MarketData] | None = None


def record_key(feed: str, item: MarketData) -> tuple[object, ...] | None:
    """Return the series key of an item the screen passed, or None when it has none.

    None for an item whose resolution is not a :class:`Resolution` (or tick type not a
    :class:`TickType`): the stages look such an item up by their own keys, as they did.
    """
    kind = kind_of(item)  # a subclass of a model takes its base model's path
    if kind is TradeBar or kind is QuoteBar:
        resolution = item.resolution  # type: ignore[union-attr]  # a bar
        if type(resolution) is Resolution:
            return (feed, item.symbol, kind, resolution)
    elif kind is Tick:
        value = _tick_type_value(item.tick_type)  # type: ignore[union-attr]  # a tick
        if value is not None:
            return (feed, item.symbol, value)
    return None


def _tick_type_value(tick_type: object) -> str | None:
    """A tick series' key part: its TickType's value, or None when it is no TickType.

    The value, not the member: an Enum member hashes through a Python-level ``__hash__``
    (~0.15 µs a tick), its str value in C. Found by identity (the members are singletons).
    """
    if tick_type is _TRADE:
        return _TRADE_VALUE
    if tick_type is _QUOTE:
        return _QUOTE_VALUE
    return None


class SeriesRecords:
    """The records by series key (:func:`record_key`); dropped when the validator resets.

    A plain class holding the dict (``table``), not a dict subclass: compiled, the
    pipeline's calls of :meth:`of` are then direct calls, not lookups by name.

    Args:
        validator: the engine's validator (its resets drop the records of the symbol).
        quality: the engine's quality counters, counted through the records.
    """

    def __init__(self, validator: DataValidator, quality: QualityTracker) -> None:
        self.table: dict[tuple[object, ...], SeriesRecord] = {}
        # the tick records of ``table`` again, by feed then symbol, one index per tick type:
        # two lookups by str (hashes cached), where the key tuple was built and hashed anew
        # for every tick; :meth:`forget` drops entries of both
        self._trades: dict[str, dict[str, SeriesRecord]] = {}
        self._quotes: dict[str, dict[str, SeriesRecord]] = {}
        self._record = quality.record
        self._counters_of = quality.stats_of
        self._clock_of = quality.clock_of
        self._record_in = quality.record_in
        validator.on_reset(self.forget)

    def of(self, feed: str, item: MarketData) -> SeriesRecord | None:
        """Return the record of a screened item's series (made on its first item)."""
        if type(item) is _TICK:
            # the fields in one C call (the screen read them: the same tuple comes back)
            return self.of_tick(feed, _TICK_FIELDS(item))
        key = record_key(feed, item)
        if key is None:
            return None
        table = self.table
        record = table.get(key)
        if record is None:
            record = table[key] = SeriesRecord()
        return record

    def of_tick(self, feed: str, fields: tuple[Any, ...]) -> SeriesRecord | None:
        """:meth:`of` for a screened tick, from its fields (:data:`lean_data.slots.TICK`)."""
        tick_type = fields[TICK_TYPE]
        if tick_type is _TRADE:
            index = self._trades
        elif tick_type is _QUOTE:
            index = self._quotes
        else:
            return None
        symbol: str = fields[TICK_SYMBOL]  # a str: the screen passed the tick
        by_symbol = index.get(feed)
        if by_symbol is not None:
            record = by_symbol.get(symbol)
            if record is not None:
                return record
        else:
            by_symbol = index[feed] = {}
        key = (feed, symbol, _tick_type_value(tick_type))  # record_key(), from the fields
        table = self.table
        record = table.get(key)
        if record is None:
            record = table[key] = SeriesRecord()
        by_symbol[symbol] = record
        return record

    def count(
        self,
        feed: str,
        item: MarketData,
        verdict: Verdict,
        latency: int | None,
        record: SeriesRecord | None,
    ) -> None:
        """Count the item in its feed's quality counters, through its record if it has one."""
        if record is None:
            self._record(feed, item.symbol, item, verdict, latency)
            return
        counters = record.counters
        if counters is None:
            counters = record.counters = self._counters_of(feed, item.symbol)
            record.clock = self._clock_of(counters, item)
        self._record_in(counters, record.clock, item, verdict, latency)

    def forget(self, symbol: str | None) -> None:
        """Drop the records of ``symbol`` (None: all); the next item looks up afresh."""
        table = self.table
        if symbol is None:
            table.clear()
            self._trades.clear()
            self._quotes.clear()
            return
        for key in [key for key in table if key[1] == symbol]:
            del table[key]
        for index in (self._trades, self._quotes):
            for by_symbol in index.values():
                by_symbol.pop(symbol, None)
