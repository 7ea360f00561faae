"""Trades to bars: time bars, tick-count bars and volume bars, with trade filter rules.

Pure and synchronous: no asyncio, no clock reads. Time comes in with the ticks
(``ts_event``) and through :meth:`TimeBarAggregator.on_clock`, so the same code serves a
live feed, a replay and a backtest. This module gathers the public names of the modules
that do the work:

- :mod:`~lean_data.series.trade_rules`: :class:`TradeRules`, which prints make a bar
  (the defaults reproduce LEAN's US-equity minute bars exactly, ``docs/aggregation.md``),
  and :class:`TradeCondition`, the sale-condition flags;
- :mod:`~lean_data.series.time_bars`: :class:`TimeBarAggregator`, bars aligned to the
  resolution (open time = floor), closed by a trade of a later interval or by the clock;
  late trades revise closed bars;
- :mod:`~lean_data.series.sequence_bars`: :class:`TickCountBarAggregator`, one bar per
  ``n`` price-setting prints, and :class:`VolumeBarAggregator`, one bar per ``volume``
  traded;
- :mod:`~lean_data.series.forming`: what they share, the bar being formed (volumes summed
  with Neumaier compensation) and :class:`AggregatorStatistics`.

Every aggregator is for one symbol.
"""

from __future__ import annotations

from lean_data.series.forming import AggregatorStatistics, ForeignTickError
from lean_data.series.sequence_bars import TickCountBarAggregator, VolumeBarAggregator
from lean_data.series.time_bars import TimeBarAggregator
from lean_data.series.trade_rules import (
    DEFAULT_PRICE_FLAGS,
    DEFAULT_VETO_FLAGS,
    PrintUse,
    TradeCondition,
    TradeRules,
)

__all__ = [
    "DEFAULT_PRICE_FLAGS",
    "DEFAULT_VETO_FLAGS",
    "AggregatorStatistics",
    "ForeignTickError",
    "PrintUse",
    "TickCountBarAggregator",
    "TimeBarAggregator",
    "TradeCondition",
    "TradeRules",
    "VolumeBarAggregator",
]
