"""Trades to bars: time bars, tick-count bars and volume bars, with trade filter rules.

Pure and synchronous: no asyncio, no clock reads. Time comes in with the ticks
(``ts_event``) and through :meth:`TimeBarAggregator.on_clock`, so the same code serves a
live feed, a replay and a backtest.

Which prints make a bar is decided by :class:`TradeRules`. The default rules reproduce the
minute trade bars that LEAN ships for US equities (AlgoSeek data): all 4 128 SPY minutes
of 2013-10-07 … 11 match on open, high, low, close and volume exactly, against 3 399
(82.3 %) for a naive aggregation (``docs/aggregation.md``,
``benchmarks/aggregation_study.py``). In short:

- a print updates open/high/low/close when its sale condition carries a price-setting flag
  (regular, cash, next day, Form T, extended hours, the auction flags) or none of the veto
  flags (intermarket sweep, trade-through exempt, odd lot); a print flagged suspicious
  never sets a price;
- every print counts in volume (suspicious ones included), except the auction prints and
  official open/close reports named below;
- the opening cross (the day's first print flagged *opening prints*) is stamped at the
  start of its minute, so it is the open of that minute's bar; the closing cross (the
  day's first print flagged *closing prints*, or an official close that is also a trade)
  is stamped just before the whole hour it follows, so it is the close of the session's
  last bar (SPY's cross at 16:00:00.3 closes the 15:59 bar, revising it). Only that first
  auction print counts; the remaining fills of the same cross, official open/close reports
  and other venues' crosses (flagged *cross*) count nowhere.

Sale conditions are read as LEAN ``TradeConditionFlags`` written in hex (``"20000020"``,
see :class:`TradeCondition`). A condition that is not a hex number (``""``, a crypto
``"buyer_maker"``, Alpaca's ``"@,F,T"``) carries no flags, so it is an ordinary print; a
single SIP letter that happens to be a hex digit (``"F"``, ``"4"``) decodes to the low
flags (regular, cash, next day, seller), which set prices too. Rules for SIP letter codes
are not implemented: with the default rules every non-LEAN print is an ordinary print.

Aggregators, all for one symbol:

- :class:`TimeBarAggregator`: bars aligned to the resolution (open time = floor), closed by
  a trade of a later interval or by the clock; late trades revise closed bars.
- :class:`TickCountBarAggregator`: one bar per ``n`` price-setting prints.
- :class:`VolumeBarAggregator`: one bar per ``volume`` traded.

Volumes are summed with Neumaier compensation, so fractional crypto sizes do not drift
(``0.1 + 0.2`` gives ``0.3``); integer share counts are exact anyway.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from lean_data.errors import ConfigError
from lean_data.models import (
    NS_PER_DAY,
    NS_PER_HOUR,
    NS_PER_MINUTE,
    Resolution,
    Tick,
    TickType,
    TradeBar,
)

__all__ = [
    "DEFAULT_PRICE_FLAGS",
    "DEFAULT_VETO_FLAGS",
    "AggregatorStatistics",
    "PrintUse",
    "TickCountBarAggregator",
    "TimeBarAggregator",
    "TradeCondition",
    "TradeRules",
    "VolumeBarAggregator",
]


class TradeCondition(enum.IntFlag):
    """LEAN's ``TradeConditionFlags``: AlgoSeek sale conditions as bits, hex in tick files."""

    NONE = 0
    REGULAR = 1 << 0
    CASH = 1 << 1
    NEXT_DAY = 1 << 2
    SELLER = 1 << 3
    YELLOW_FLAG = 1 << 4
    INTERMARKET_SWEEP = 1 << 5
    OPENING_PRINTS = 1 << 6
    CLOSING_PRINTS = 1 << 7
    REOPENING_PRINTS = 1 << 8
    DERIVATIVELY_PRICED = 1 << 9
    FORM_T = 1 << 10
    SOLD = 1 << 11
    STOPPED = 1 << 12
    EXTENDED_HOURS = 1 << 13
    OUT_OF_SEQUENCE = 1 << 14
    SPLIT = 1 << 15
    ACQUISITION = 1 << 16
    BUNCHED = 1 << 17
    STOCK_OPTION = 1 << 18
    DISTRIBUTION = 1 << 19
    AVERAGE_PRICE = 1 << 20
    CROSS = 1 << 21
    PRICE_VARIATION = 1 << 22
    RULE_155 = 1 << 23
    OFFICIAL_CLOSE = 1 << 24
    PRIOR_REFERENCE_PRICE = 1 << 25
    OFFICIAL_OPEN = 1 << 26
    CAP_ELECTION = 1 << 27
    AUTO_EXECUTION = 1 << 28
    TRADE_THROUGH_EXEMPT = 1 << 29
    UNDOCUMENTED = 1 << 30
    ODD_LOT = 1 << 31

    @classmethod
    def parse(cls, condition: str) -> TradeCondition:
        """Return the flags of a hex condition string; ``NONE`` when it is not hex."""
        try:
            value = int(condition, 16)
        except ValueError:
            return cls.NONE
        return cls(value & 0xFFFFFFFF) if value >= 0 else cls.NONE


_C = TradeCondition
DEFAULT_PRICE_FLAGS = int(
    _C.REGULAR
    | _C.CASH
    | _C.NEXT_DAY
    | _C.FORM_T
    | _C.EXTENDED_HOURS
    | _C.OPENING_PRINTS
    | _C.CLOSING_PRINTS
    | _C.OFFICIAL_OPEN
    | _C.OFFICIAL_CLOSE
)
"""Flags that let a print set prices even with a veto flag (QuantConnect's "Included" list)."""

DEFAULT_VETO_FLAGS = int(_C.INTERMARKET_SWEEP | _C.TRADE_THROUGH_EXEMPT | _C.ODD_LOT)
"""Flags that keep a print from setting prices unless it has a price flag ("Excluded")."""

_OPENING = int(_C.OPENING_PRINTS | _C.OFFICIAL_OPEN)
_CLOSING = int(_C.CLOSING_PRINTS | _C.OFFICIAL_CLOSE)
_REPORTS = int(_C.OFFICIAL_OPEN | _C.OFFICIAL_CLOSE)
_AUCTION = _OPENING | _CLOSING

# Print kinds, as bits: how a print is used. Cached per condition string.
_PRICE = 1
_VOLUME = 2
_OPEN_CROSS = 4
_CLOSE_CROSS = 8
_PV = _PRICE | _VOLUME
_CROSSES = _OPEN_CROSS | _CLOSE_CROSS
_KIND_CACHE_MAX = 4096
_TRADE = TickType.TRADE
_NEVER = -(1 << 63)


@dataclass(frozen=True, slots=True)
class PrintUse:
    """How the rules use one print.

    Attributes:
        price: it updates open/high/low/close.
        volume: it counts in volume.
        cross: ``"open"`` or ``"close"`` when it is a candidate for the day's opening or
            closing cross (only the day's first one is used), else ``None``.
    """

    price: bool
    volume: bool
    cross: Literal["open", "close"] | None = None


@dataclass(frozen=True, slots=True)
class TradeRules:
    """Which prints update open/high/low/close and which count in volume.

    The defaults reproduce LEAN's US-equity minute bars; ``TradeRules.every_trade()``
    is the naive aggregation (every print counts everywhere).

    Attributes:
        price_flags: a print carrying any of these flags sets prices.
        veto_flags: a print carrying any of these flags and no price flag does not set
            prices (it still counts in volume). A print with neither kind of flag, such
            as average-price, sold-out-of-sequence or a print with no condition at all,
            sets prices.
        auctions: handle the opening and closing crosses (module docstring): only the
            day's first auction print counts, re-stamped to the session boundary; the
            other fills, official open/close reports and crosses flagged ``CROSS`` are
            ignored. ``False`` treats auction prints like any other print.
        suspicious_price: a print flagged suspicious sets prices.
        suspicious_volume: a print flagged suspicious counts in volume.
        opening_cross_boundary: the opening cross is stamped at the last multiple of this
            (ns, epoch-aligned) at or before its print: by default the start of its minute,
            so it opens the minute bar even when other prints of that minute came first.
        closing_cross_boundary: the closing cross is stamped 1 ns before the last multiple
            of this at or before its print: by default the whole hour (US sessions close at
            16:00, or 13:00), so NYSE's closing print reported at 16:01:04 still closes the
            15:59 bar. A market closing at hh:30 needs ``30 * NS_PER_MINUTE``.

    Raises:
        ConfigError: a flag set is negative or wider than 32 bits, or a boundary is not a
            positive number of nanoseconds.
    """

    price_flags: int = DEFAULT_PRICE_FLAGS
    veto_flags: int = DEFAULT_VETO_FLAGS
    auctions: bool = True
    suspicious_price: bool = False
    suspicious_volume: bool = True
    opening_cross_boundary: int = NS_PER_MINUTE
    closing_cross_boundary: int = NS_PER_HOUR

    def __post_init__(self) -> None:
        for name in ("price_flags", "veto_flags"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
                raise ConfigError(f"TradeRules.{name} must be 32-bit flags, got {value!r}")
        for name in ("opening_cross_boundary", "closing_cross_boundary"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"TradeRules.{name} must be a positive ns count, got {value!r}")

    @classmethod
    def every_trade(cls) -> TradeRules:
        """Return the naive rules: every print sets prices and counts in volume."""
        return cls(price_flags=0, veto_flags=0, auctions=False, suspicious_price=True)

    def classify(self, condition: str, suspicious: bool = False) -> PrintUse:
        """Return how a print with this sale condition (and suspicious flag) is used."""
        kind = self._kind(condition) & self._suspicious_mask(suspicious)
        cross: Literal["open", "close"] | None = None
        if kind & _OPEN_CROSS:
            cross = "open"
        elif kind & _CLOSE_CROSS:
            cross = "close"
        return PrintUse(bool(kind & _PRICE), bool(kind & _VOLUME), cross)

    def _suspicious_mask(self, suspicious: bool) -> int:
        if not suspicious:
            return -1
        return (
            (_PRICE if self.suspicious_price else 0)
            | (_VOLUME if self.suspicious_volume else 0)
            | _CROSSES
        )

    def _kind(self, condition: str) -> int:
        flags = int(TradeCondition.parse(condition))
        if self.auctions and flags & _AUCTION:
            if flags & _C.CROSS:  # another venue's cross (Nasdaq's for an Arca ETF)
                return 0
            trade_flags = flags & ~(_REPORTS | _C.TRADE_THROUGH_EXEMPT)
            if not trade_flags:  # an official open/close report alone: not a trade
                return 0
            side = _OPEN_CROSS if flags & _OPENING else _CLOSE_CROSS
            return side | _PRICE | (0 if flags & _REPORTS else _VOLUME)
        if flags & self.price_flags or not flags & self.veto_flags:
            return _PV
        return _VOLUME


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


class _Bar:
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
        if kind & _PRICE:
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
        if kind & _VOLUME:
            volume = self.volume
            total = volume + size
            if volume >= size:
                self.comp += (volume - total) + size
            else:
                self.comp += (size - total) + volume
            self.volume = total

    def trade_bar(self, symbol: str, resolution: Resolution, ts_recv: int) -> TradeBar:
        """Return this bar as a closed TradeBar with its current revision number."""
        volume = self.volume + self.comp
        if self.priced:
            return TradeBar(
                symbol, self.start, self.open, self.high, self.low, self.close, volume,
                resolution, ts_recv, True, self.revision,
            )  # fmt: skip
        flat = self.flat if self.flat is not None else math.nan
        return TradeBar(
            symbol, self.start, flat, flat, flat, flat, volume, resolution, ts_recv, True,
            self.revision,
        )  # fmt: skip


class _RulesUser:
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
        if not isinstance(symbol, str) or not symbol:
            raise ConfigError(f"an aggregator needs a symbol, got {symbol!r}")
        if not isinstance(rules, TradeRules):
            raise ConfigError(f"rules must be a TradeRules, got {type(rules).__name__}")
        self.symbol = symbol
        self.rules = rules
        self._kinds: dict[str, int] = {}
        self._suspicious = rules._suspicious_mask(True)
        self._open_day = self._close_day = _NEVER
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
            ValueError: the tick is for another symbol.
        """
        if tick.symbol != self.symbol:
            raise ValueError(
                f"this aggregator builds {self.symbol!r} bars, got a tick for {tick.symbol!r}"
            )
        if tick.tick_type is not _TRADE:
            return 0  # counted as ignored by the caller
        self._trades += 1
        kind = self._kinds.get(tick.condition)
        if kind is None:
            kind = self._learn(tick.condition)
        if tick.suspicious:
            kind &= self._suspicious
        return kind

    def _first_cross(self, ts: int, kind: int) -> int:
        """Return ``kind`` without its cross bit if it is the day's first cross, else 0."""
        day = ts // NS_PER_DAY
        if kind & _OPEN_CROSS:
            if self._open_day == day:
                return 0
            self._open_day = day
        else:
            if self._close_day == day:
                return 0
            self._close_day = day
        return kind & _PV


class TimeBarAggregator(_RulesUser):
    """Build time bars of one symbol from its trade ticks.

    Bars are aligned to the resolution (a bar's open time is its interval's start,
    ``resolution.floor(ts)``, epoch-aligned) and hold the prints of ``[start, start +
    period)``. A bar closes when a trade of a later interval arrives (:meth:`update`) or
    when the clock passes its end (:meth:`on_clock`). No bar is made for an interval
    without price-setting prints unless ``emit_empty`` is set.

    Late trades (a trade whose interval is already closed) follow ``late``:

    - ``"revise"`` (default): the bar of that interval is updated and emitted again with
      ``revision`` + 1, as long as it is among the last ``revision_window`` closed bars; a
      late trade for an interval that had no bar yet makes that bar, emitted at once
      (revision 0). Older late trades are dropped and counted. The closing cross, which
      prints just after the boundary, normally arrives this way: it revises the last bar
      of the session.
    - ``"drop"``: late trades are counted and dropped.

    Args:
        symbol: the symbol; ticks of another symbol raise ``ValueError``.
        resolution: the bar period (not TICK), a Resolution or its text (``"1m"``).
        rules: which prints count where (default :class:`TradeRules`).
        emit_empty: emit a flat bar (open = high = low = close = the previous close,
            volume 0) for each interval without trades once it has ended, and a flat bar
            holding the volume for an interval whose prints set no price. Nothing is
            emitted before the first priced bar.
        late: the late-trade policy, ``"revise"`` or ``"drop"``.
        revision_window: how many closed bars are kept for revisions.

    Raises:
        ConfigError: a bad symbol, resolution, rules, policy or window.
    """

    __slots__ = (
        "_cur",
        "_empty_bars",
        "_horizon",
        "_kept",
        "_last_close",
        "_late_dropped",
        "_n_bars",
        "_nanos",
        "_revisions",
        "_unpriced",
        "emit_empty",
        "late",
        "resolution",
        "revision_window",
    )

    def __init__(
        self,
        symbol: str,
        resolution: Resolution | str,
        *,
        rules: TradeRules | None = None,
        emit_empty: bool = False,
        late: Literal["revise", "drop"] = "revise",
        revision_window: int = 64,
    ) -> None:
        super().__init__(symbol, TradeRules() if rules is None else rules)
        try:
            self.resolution = Resolution.parse(resolution)
        except (ValueError, AttributeError) as exc:
            raise ConfigError(f"bad resolution {resolution!r}: {exc}") from None
        if self.resolution.is_tick:
            raise ConfigError("a time bar needs a period; got TICK (use TickCountBarAggregator)")
        if late not in ("revise", "drop"):
            raise ConfigError(f"late must be 'revise' or 'drop', got {late!r}")
        if isinstance(revision_window, bool) or not isinstance(revision_window, int):
            raise ConfigError(f"revision_window must be an int, got {revision_window!r}")
        if revision_window < 1:
            raise ConfigError(f"revision_window must be at least 1, got {revision_window}")
        self.emit_empty = bool(emit_empty)
        self.late = late
        self.revision_window = revision_window
        self._nanos = self.resolution.nanos
        self._cur: _Bar | None = None
        self._horizon = _NEVER  # intervals starting before this are closed
        self._kept: dict[int, _Bar] = {}
        self._last_close: float | None = None
        self._n_bars = self._revisions = self._empty_bars = 0
        self._late_dropped = self._unpriced = 0

    # -- public API ---------------------------------------------------------------------

    def update(self, tick: Tick) -> list[TradeBar]:
        """Add one trade tick; return the bars it closed or revised (oldest first).

        Non-trade ticks are counted and ignored.

        Raises:
            ValueError: the tick is for another symbol.
        """
        kind = self._accept(tick)
        ts = tick.ts_event
        cur = self._cur
        if (
            cur is not None
            and cur.start <= ts < cur.end
            and ((kind == _PV and cur.priced and ts >= cur.last) or kind == _VOLUME)
        ):
            cur.add(ts, tick.price, tick.size, kind)  # in order, in the current bar
            return []
        return self._add(ts, tick.price, tick.size, kind, tick.ts_recv)

    def update_many(self, ticks: Iterable[Tick]) -> list[TradeBar]:
        """Add trade ticks in order; return every bar they closed or revised.

        The same as calling :meth:`update` per tick, in a tighter loop.

        Raises:
            ValueError: a tick is for another symbol (the ticks before it are applied).
        """
        out: list[TradeBar] = []
        kinds = self._kinds
        suspicious = self._suspicious
        symbol = self.symbol
        trades = 0
        cur = self._cur
        start, end = (cur.start, cur.end) if cur is not None else (1, 0)
        for tick in ticks:
            if tick.tick_type is not _TRADE or tick.symbol != symbol:
                self._trades += trades
                trades = 0
                out.extend(self.update(tick))
                cur = self._cur
                start, end = (cur.start, cur.end) if cur is not None else (1, 0)
                continue
            trades += 1
            kind = kinds.get(tick.condition)
            if kind is None:
                kind = self._learn(tick.condition)
            if tick.suspicious:
                kind &= suspicious
            ts = tick.ts_event
            if start <= ts < end and cur is not None:
                # _Bar.add inlined for the common print: this loop is the batch hot path
                if kind == _PV and cur.priced and ts >= cur.last:
                    price = tick.price
                    if price > cur.high:
                        cur.high = price
                    elif price < cur.low:
                        cur.low = price
                    cur.close = price
                    cur.last = ts
                    size = tick.size
                    volume = cur.volume
                    total = volume + size
                    if volume >= size:
                        cur.comp += (volume - total) + size
                    else:
                        cur.comp += (size - total) + volume
                    cur.volume = total
                    continue
                if kind == _VOLUME:
                    cur.add(ts, 0.0, tick.size, _VOLUME)
                    continue
            out.extend(self._add(ts, tick.price, tick.size, kind, tick.ts_recv))
            cur = self._cur
            start, end = (cur.start, cur.end) if cur is not None else (1, 0)
        self._trades += trades
        return out

    def on_clock(self, now_ns: int) -> list[TradeBar]:
        """Close what the clock says has ended; return the bars closed (and flat bars).

        Pass the time up to which trades are complete (``now`` minus the feed's delay):
        a trade that arrives later for an interval the clock closed is a late trade.
        """
        out: list[TradeBar] = []
        cur = self._cur
        if cur is not None and now_ns >= cur.end:
            self._close_current(out, now_ns)
        if self._cur is None:
            boundary = now_ns - now_ns % self._nanos
            if self.emit_empty:
                self._fill_empty(out, boundary, now_ns)
            if boundary > self._horizon:
                self._horizon = boundary
        return out

    def flush(self, ts_recv: int = 0) -> list[TradeBar]:
        """Close the current bar now, whatever the time (end of data, shutdown)."""
        out: list[TradeBar] = []
        if self._cur is not None:
            self._close_current(out, ts_recv)
        return out

    def snapshot(self, ts_recv: int = 0) -> TradeBar | None:
        """Return the bar in progress (``closed=False``), or None when none has a price."""
        cur = self._cur
        if cur is None or not cur.priced:
            return None
        bar = cur.trade_bar(self.symbol, self.resolution, ts_recv)
        bar.closed = False
        bar.revision = 0
        return bar

    def statistics(self) -> AggregatorStatistics:
        """Return a snapshot of the counters."""
        return AggregatorStatistics(
            self._trades, self._ignored, self._n_bars, self._revisions, self._empty_bars,
            self._late_dropped, self._unpriced,
        )  # fmt: skip

    # -- the slow path ------------------------------------------------------------------

    def _add(self, ts: int, price: float, size: float, kind: int, ts_recv: int) -> list[TradeBar]:
        """Add a print the fast path could not: new or late interval, cross, first price."""
        out: list[TradeBar] = []
        if kind & _CROSSES:
            opening = kind & _OPEN_CROSS
            kind = self._first_cross(ts, kind)
            if opening:  # stamped at the session boundary it belongs to
                ts -= ts % self.rules.opening_cross_boundary
            else:
                ts -= ts % self.rules.closing_cross_boundary + 1
        if not kind:
            self._ignored += 1
            return out
        start = ts - ts % self._nanos
        cur = self._cur
        if cur is not None:
            if start == cur.start:
                cur.add(ts, price, size, kind)
                return out
            if start > cur.start:
                self._close_current(out, ts_recv)
        if start < self._horizon:
            self._late(out, start, ts, price, size, kind, ts_recv)
            return out
        if self.emit_empty:
            self._fill_empty(out, start, ts_recv)
        cur = self._cur = _Bar(start, start + self._nanos)
        self._horizon = start
        cur.add(ts, price, size, kind)
        return out

    def _late(
        self,
        out: list[TradeBar],
        start: int,
        ts: int,
        price: float,
        size: float,
        kind: int,
        ts_recv: int,
    ) -> None:
        """Apply a trade whose interval is closed: revise its bar or drop it."""
        bar = self._kept.get(start)
        if bar is None:
            oldest = self._horizon - self.revision_window * self._nanos
            if self.late != "revise" or start < oldest:
                self._late_dropped += 1
                return
            bar = _Bar(start, start + self._nanos)
            self._keep(bar)
        bar.add(ts, price, size, kind)
        if bar.priced or bar.flat is not None:
            if bar.priced and self._cur is None and bar.end == self._horizon:
                self._last_close = bar.close  # the newest bar: flat bars follow its close
            self._emit(bar, out, ts_recv)

    def _close_current(self, out: list[TradeBar], ts_recv: int) -> None:
        cur = self._cur
        assert cur is not None
        self._cur = None
        self._horizon = cur.end
        self._finish(cur, out, ts_recv)
        self._keep(cur)

    def _finish(self, bar: _Bar, out: list[TradeBar], ts_recv: int) -> None:
        """Emit a bar that just closed (or count it as unpriced)."""
        if bar.priced:
            self._last_close = bar.close
        elif self.emit_empty and self._last_close is not None:
            bar.flat = self._last_close
            self._empty_bars += bar.volume == 0.0
        else:
            self._unpriced += 1
            return
        self._emit(bar, out, ts_recv)

    def _emit(self, bar: _Bar, out: list[TradeBar], ts_recv: int) -> None:
        bar.revision += 1
        if bar.revision:
            self._revisions += 1
        else:
            self._n_bars += 1
        out.append(bar.trade_bar(self.symbol, self.resolution, ts_recv))

    def _fill_empty(self, out: list[TradeBar], upto: int, ts_recv: int) -> None:
        """Emit flat bars for the intervals in ``[horizon, upto)`` (``emit_empty``)."""
        if self._last_close is None or self._horizon == _NEVER:
            return
        for start in range(self._horizon, upto, self._nanos):
            bar = _Bar(start, start + self._nanos)
            self._finish(bar, out, ts_recv)
            self._keep(bar)
        if upto > self._horizon:
            self._horizon = upto

    def _keep(self, bar: _Bar) -> None:
        if self.late != "revise":
            return
        kept = self._kept
        kept[bar.start] = bar
        if len(kept) > self.revision_window:
            del kept[min(kept)]


class _SequenceAggregator(_RulesUser):
    """Base of the tick-count and volume bars: bars in arrival order, stamped by first print."""

    __slots__ = ("_bar", "_last_close", "_n_bars", "_seq", "_ts_first", "_unpriced")

    def __init__(self, symbol: str, rules: TradeRules | None) -> None:
        super().__init__(symbol, TradeRules() if rules is None else rules)
        self._bar: _Bar | None = None
        self._seq = 0  # arrival order: open is the first print to arrive, close the last
        self._ts_first = 0
        self._last_close: float | None = None
        self._n_bars = self._unpriced = 0

    def _kind_of(self, tick: Tick) -> int:
        kind = self._accept(tick)
        if kind & _CROSSES:
            kind = self._first_cross(tick.ts_event, kind)
        if not kind:
            self._ignored += 1
        return kind

    def _new_bar(self, ts: int) -> _Bar:
        self._ts_first = ts
        bar = self._bar = _Bar(0, 0)
        return bar

    def _close(self, bar: _Bar, out: list[TradeBar], ts_recv: int) -> None:
        """Emit a finished bar: flat at the previous close when no print set a price."""
        self._bar = None
        if bar.priced:
            self._last_close = bar.close
        elif self._last_close is not None:
            bar.flat = self._last_close
        else:
            self._unpriced += 1
            return
        bar.revision = 0
        self._n_bars += 1
        trade_bar = bar.trade_bar(self.symbol, Resolution.TICK, ts_recv)
        trade_bar.ts_event = self._ts_first
        out.append(trade_bar)

    def flush(self, ts_recv: int = 0) -> list[TradeBar]:
        """Emit the unfinished bar as it is (end of data); it holds less than a full bar."""
        out: list[TradeBar] = []
        if self._bar is not None:
            self._close(self._bar, out, ts_recv)
        return out

    def snapshot(self, ts_recv: int = 0) -> TradeBar | None:
        """Return the bar in progress (``closed=False``), or None when none has a price."""
        bar = self._bar
        if bar is None or not bar.priced:
            return None
        trade_bar = bar.trade_bar(self.symbol, Resolution.TICK, ts_recv)
        trade_bar.ts_event = self._ts_first
        trade_bar.closed = False
        trade_bar.revision = 0
        return trade_bar

    def update_many(self, ticks: Iterable[Tick]) -> list[TradeBar]:
        """Add ticks in order; return every bar they completed.

        Raises:
            ValueError: a tick is for another symbol (the ticks before it are applied).
        """
        out: list[TradeBar] = []
        update = self.update
        for tick in ticks:
            bars = update(tick)
            if bars:
                out.extend(bars)
        return out

    def update(self, tick: Tick) -> list[TradeBar]:  # pragma: no cover - overridden
        """Add one trade tick; return the bars it completed."""
        raise NotImplementedError

    def statistics(self) -> AggregatorStatistics:
        """Return a snapshot of the counters."""
        return AggregatorStatistics(
            trades=self._trades, ignored=self._ignored, bars=self._n_bars,
            unpriced=self._unpriced,
        )  # fmt: skip


class TickCountBarAggregator(_SequenceAggregator):
    """Build one bar per ``n`` price-setting prints of one symbol.

    Only prints that set a price (per the rules) count towards ``n``; volume-only prints
    (e.g. intermarket sweeps under the default rules) add their volume to the bar in
    progress. Open and close follow arrival order. A bar's ``ts_event`` is the time of
    its first print, its resolution ``Resolution.TICK``; it is emitted by the print that
    completes it.

    Args:
        symbol: the symbol; ticks of another symbol raise ``ValueError``.
        n: prints per bar, at least 1.
        rules: which prints count where (default :class:`TradeRules`).

    Raises:
        ConfigError: a bad symbol, count or rules.
    """

    __slots__ = ("_count", "n")

    def __init__(self, symbol: str, n: int, *, rules: TradeRules | None = None) -> None:
        super().__init__(symbol, rules)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"a tick-count bar needs n >= 1 prints, got {n!r}")
        self.n = n
        self._count = 0

    def update(self, tick: Tick) -> list[TradeBar]:
        """Add one trade tick; return the bar it completed, if any.

        Raises:
            ValueError: the tick is for another symbol.
        """
        kind = self._kind_of(tick)
        if not kind:
            return []
        bar = self._bar
        if bar is None:
            bar = self._new_bar(tick.ts_event)
        self._seq += 1
        bar.add(self._seq, tick.price, tick.size, kind)
        if kind & _PRICE:
            self._count += 1
            if self._count == self.n:
                self._count = 0
                out: list[TradeBar] = []
                self._close(bar, out, tick.ts_recv)
                return out
        return []


class VolumeBarAggregator(_SequenceAggregator):
    """Build one bar per ``volume`` traded in one symbol.

    Volume comes from the prints that count in volume, prices from those that set prices
    (per the rules). With ``split`` (default) every bar holds exactly ``volume``: a trade
    that straddles the threshold is split, the part that completes the bar goes into it
    and the rest opens the next bar at the same price (a very large print can fill several
    bars at its price). Without ``split`` the straddling trade stays whole in the bar it
    completes, which then holds ``volume`` or more. A bar that completes without any
    price-setting print is flat at the previous bar's close (none before the first
    priced bar: it is counted as ``unpriced`` and not emitted). A bar's ``ts_event`` is
    the time of its first print, its resolution ``Resolution.TICK``.

    Args:
        symbol: the symbol; ticks of another symbol raise ``ValueError``.
        volume: the volume per bar, a positive finite number.
        rules: which prints count where (default :class:`TradeRules`).
        split: split a straddling trade between bars.

    Raises:
        ConfigError: a bad symbol, volume or rules.
    """

    __slots__ = ("split", "volume")

    def __init__(
        self,
        symbol: str,
        volume: float,
        *,
        rules: TradeRules | None = None,
        split: bool = True,
    ) -> None:
        super().__init__(symbol, rules)
        if isinstance(volume, bool) or not isinstance(volume, int | float):
            raise ConfigError(f"a volume bar needs a number, got {volume!r}")
        if not (math.isfinite(volume) and volume > 0):
            raise ConfigError(f"a volume bar needs a positive finite volume, got {volume!r}")
        self.volume = float(volume)
        self.split = bool(split)

    def update(self, tick: Tick) -> list[TradeBar]:
        """Add one trade tick; return the bars it completed (several for a huge print).

        Raises:
            ValueError: the tick is for another symbol.
        """
        kind = self._kind_of(tick)
        if not kind:
            return []
        size = tick.size
        if kind & _VOLUME and not 0.0 <= size < math.inf:  # NaN or negative: unusable
            self._ignored += 1
            return []
        ts = tick.ts_event
        price = tick.price
        bar = self._bar
        if bar is None:
            bar = self._new_bar(ts)
        self._seq += 1
        seq = self._seq
        if kind & _PRICE:
            bar.add(seq, price, 0.0, _PRICE)
        if not kind & _VOLUME:
            return []
        out: list[TradeBar] = []
        target = self.volume
        while True:
            room = target - (bar.volume + bar.comp)
            if size < room:
                bar.add(seq, price, size, _VOLUME)
                return out
            if self.split:
                bar.volume, bar.comp = target, 0.0
                size -= room
            else:
                bar.add(seq, price, size, _VOLUME)
                size = 0.0
            self._close(bar, out, tick.ts_recv)
            if size <= 0.0:
                return out
            bar = self._new_bar(ts)
            if kind & _PRICE:
                bar.add(seq, price, 0.0, _PRICE)
