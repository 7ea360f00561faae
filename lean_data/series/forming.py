"""What the aggregators share: the bar being formed, the rule cache, the statistics.

:class:`FormingBar` holds one bar's prints as they arrive (in or out of time order);
:class:`RulesUser` is the base of every aggregator: the symbol, the rules with their
per-condition cache, and the day's opening and closing crosses. Volumes are summed with
Neumaier compensation, so fractional crypto sizes do not drift (``0.1 + 0.2`` gives
``0.3``); integer share counts are exact anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from lean_data.errors import ConfigError
from lean_data.models import NS_PER_DAY, Resolution, Tick, TickType, TradeBar
from lean_data.series.trade_rules import (
    KIND_OPEN_CROSS,
    KIND_PRICE,
    KIND_PRICE_VOLUME,
    KIND_VOLUME,
    TradeRules,
)

__all__ = ["NEVER", "AggregatorStatistics", "ForeignTickError", "FormingBar", "RulesUser"]

_KIND_CACHE_MAX: Final = 4096
_TRADE: Final = TickType.TRADE
NEVER: Final = -(1 << 63)
"""A time before any other: the horizon of an aggregator that has seen nothing."""


class ForeignTickError(ValueError):
    """An aggregator was given a tick of another symbol (a caller's mistake).

    Attributes:
        bars: the bars the same ``update_many`` batch closed or revised before that tick
            (its earlier ticks were applied), so a batch that fails loses none of them;
            empty for :meth:`update`, whose earlier calls returned theirs.
    """

    def __init__(self, message: str, bars: list[TradeBar] | None = None) -> None:
        super().__init__(message)
        self.bars: list[TradeBar] = [] if bars is None else bars


@dataclass(frozen=True, slots=True)
class AggregatorStatistics:
    """A snapshot of an aggregator's counters.

    Attributes:
        trades: trade ticks received.
        ignored: ticks that counted nowhere: non-trade ticks, prints the rules ignore
            (auction fills after the first, official reports, other venues' crosses).
        bars: bars emitted (first versions, flat ones included).
        revisions: revised bars emitted (late trades).
        empty_bars: flat bars emitted for intervals without trades (``emit_empty``).
        late_dropped: late trades dropped (policy ``"drop"``, or older than the window).
        unpriced: bars not emitted because no print in them set a price (they held
            volume only, e.g. intermarket sweeps alone).
    """

    trades: int = 0
    ignored: int = 0
    bars: int = 0
    revisions: int = 0
    empty_bars: int = 0
    late_dropped: int = 0
    unpriced: int = 0


class FormingBar:
    """A bar being built (or kept for revisions); prices are set by priced prints only."""

    __slots__ = (
        "close",
        "comp",
        "end",
        "first",
        "flat",
        "high",
        "last",
        "low",
        "open",
        "priced",
        "revision",
        "start",
        "volume",
    )

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end
        self.first = end
        self.last = start
        self.open = self.high = self.low = self.close = math.nan
        self.volume = 0.0
        self.comp = 0.0
        self.priced = False
        self.flat: float | None = None
        self.revision = -1

    def add(self, ts: int, price: float, size: float, kind: int) -> None:
        """Add one print, in or out of time order."""
        if kind & KIND_PRICE:
            if not self.priced:
                self.priced = True
                self.open = self.high = self.low = self.close = price
                self.first = self.last = ts
            else:
                if price > self.high:
                    self.high = price
                elif price < self.low:
                    self.low = price
                if ts < self.first:
                    self.open = price
                    self.first = ts
                if ts >= self.last:
                    self.close = price
                    self.last = ts
        if kind & KIND_VOLUME:
            volume = self.volume
            total = volume + size
            if volume >= size:
                self.comp += (volume - total) + size
            else:
                self.comp += (size - total) + volume
            self.volume = total

    def trade_bar(
        self,
        symbol: str,
        resolution: Resolution,
        ts_recv: int,
        ts_event: int,
        closed: bool,
        revision: int,
    ) -> TradeBar:
        """Return this bar as a TradeBar opening at ``ts_event``; flat when unpriced."""
        volume = self.volume + self.comp
        if self.priced:
            return TradeBar(
                symbol, ts_event, self.open, self.high, self.low, self.close, volume,
                resolution, ts_recv, closed, revision,
            )  # fmt: skip
        flat = self.flat if self.flat is not None else math.nan
        return TradeBar(
            symbol, ts_event, flat, flat, flat, flat, volume, resolution, ts_recv, closed,
            revision,
        )  # fmt: skip


class RulesUser:
    """Shared by the aggregators: the rule cache and the per-day auction crosses."""

    __slots__ = (
        "_close_day",
        "_ignored",
        "_kinds",
        "_open_day",
        "_suspicious",
        "_trades",
        "rules",
        "symbol",
    )

    def __init__(self, symbol: str, rules: TradeRules) -> None:
        if not isinstance(symbol, str):  # the compiled build refuses it at the call
            raise TypeError(f"an aggregator's symbol must be a str, got {symbol!r}")
        if not symbol:
            raise ConfigError(f"an aggregator needs a symbol, got {symbol!r}")
        if not isinstance(rules, TradeRules):
            raise ConfigError(f"rules must be a TradeRules, got {type(rules).__name__}")
        self.symbol = symbol
        self.rules = rules
        self._kinds: dict[str, int] = {}
        self._suspicious = rules._suspicious_mask(True)
        self._open_day = self._close_day = NEVER
        self._trades = 0
        self._ignored = 0

    def _learn(self, condition: str) -> int:
        if len(self._kinds) >= _KIND_CACHE_MAX:
            self._kinds.clear()
        kind = self._kinds[condition] = self.rules._kind(condition)
        return kind

    def _accept(self, tick: Tick) -> int:
        """Return the kind of a tick (0: ignore it); count it.

        Raises:
            ForeignTickError: the tick is for another symbol.
        """
        if tick.symbol != self.symbol:
            raise ForeignTickError(
                f"this aggregator builds {self.symbol!r} bars, got a tick for {tick.symbol!r}"
            )
        if tick.tick_type is not _TRADE:
            return 0  # counted as ignored by the caller
        self._trades += 1
        kind = self._kinds.get(tick.condition)
        if kind is None:
            kind = self._learn(tick.condition)
        flags: Any = tick  # untyped: compiled, a typed read of a NaN flag is a TypeError
        if flags.suspicious:
            kind &= self._suspicious
        return kind

    def _first_cross(self, ts: int, kind: int) -> int:
        """Return ``kind`` without its cross bit if it is the day's first cross, else 0."""
        day = ts // NS_PER_DAY
        if kind & KIND_OPEN_CROSS:
            if self._open_day == day:
                return 0
            self._open_day = day
        else:
            if self._close_day == day:
                return 0
            self._close_day = day
        return kind & KIND_PRICE_VOLUME
