"""Time bars: trades of one symbol into bars aligned to a resolution, revised by late trades.

Pure and synchronous: no asyncio, no clock reads. Time comes in with the ticks
(``ts_event``) and through :meth:`TimeBarAggregator.on_clock`, so the same code serves a
live feed, a replay and a backtest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Literal, SupportsIndex

from lean_data.errors import ConfigError
from lean_data.models import Resolution, Tick, TickType, TradeBar
from lean_data.series.forming import (
    NEVER,
    AggregatorStatistics,
    ForeignTickError,
    FormingBar,
    RulesUser,
)
from lean_data.series.trade_rules import (
    KIND_CROSSES,
    KIND_OPEN_CROSS,
    KIND_PRICE_VOLUME,
    KIND_VOLUME,
    TradeRules,
)

__all__ = ["TimeBarAggregator"]

_TRADE: Final = TickType.TRADE


class TimeBarAggregator(RulesUser):
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
        revision_window: SupportsIndex = 64,  # checked below (see DataBuffer)
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
        if type(emit_empty) is not bool:  # the compiled build refuses it at the call
            raise TypeError(f"emit_empty must be True or False, got {emit_empty!r}")
        self.emit_empty = emit_empty
        self.late = late
        self.revision_window = revision_window
        self._nanos = self.resolution.nanos
        self._cur: FormingBar | None = None
        self._horizon = NEVER  # intervals starting before this are closed
        self._kept: dict[int, FormingBar] = {}
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
            and (
                (kind == KIND_PRICE_VOLUME and cur.priced and ts >= cur.last) or kind == KIND_VOLUME
            )
        ):
            cur.add(ts, tick.price, tick.size, kind)  # in order, in the current bar
            return []
        return self._add(ts, tick.price, tick.size, kind, tick.ts_recv)

    def update_many(self, ticks: Iterable[Tick]) -> list[TradeBar]:
        """Add trade ticks in order; return every bar they closed or revised.

        The same as calling :meth:`update` per tick, in a tighter loop.

        Raises:
            ForeignTickError: a tick is for another symbol (a ValueError). The ticks
                before it are applied and the bars they closed or revised are its ``bars``.
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
                try:
                    out.extend(self.update(tick))
                except ForeignTickError as exc:
                    exc.bars = out
                    raise
                cur = self._cur
                start, end = (cur.start, cur.end) if cur is not None else (1, 0)
                continue
            trades += 1
            kind = kinds.get(tick.condition)
            if kind is None:
                kind = self._learn(tick.condition)
            flags: Any = tick  # untyped, as in RulesUser._accept
            if flags.suspicious:
                kind &= suspicious
            ts = tick.ts_event
            if start <= ts < end and cur is not None:
                # FormingBar.add inlined for the common print: this loop is the batch hot path
                if kind == KIND_PRICE_VOLUME and cur.priced and ts >= cur.last:
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
                if kind == KIND_VOLUME:
                    cur.add(ts, 0.0, tick.size, KIND_VOLUME)
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
        return cur.trade_bar(self.symbol, self.resolution, ts_recv, cur.start, False, 0)

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
        if kind & KIND_CROSSES:
            opening = kind & KIND_OPEN_CROSS
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
        cur = self._cur = FormingBar(start, start + self._nanos)
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
            bar = FormingBar(start, start + self._nanos)
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

    def _finish(self, bar: FormingBar, out: list[TradeBar], ts_recv: int) -> None:
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

    def _emit(self, bar: FormingBar, out: list[TradeBar], ts_recv: int) -> None:
        bar.revision += 1
        if bar.revision:
            self._revisions += 1
        else:
            self._n_bars += 1
        out.append(
            bar.trade_bar(self.symbol, self.resolution, ts_recv, bar.start, True, bar.revision)
        )

    def _fill_empty(self, out: list[TradeBar], upto: int, ts_recv: int) -> None:
        """Emit flat bars for the intervals in ``[horizon, upto)`` (``emit_empty``)."""
        if self._last_close is None or self._horizon == NEVER:
            return
        for start in range(self._horizon, upto, self._nanos):
            bar = FormingBar(start, start + self._nanos)
            self._finish(bar, out, ts_recv)
            self._keep(bar)
        if upto > self._horizon:
            self._horizon = upto

    def _keep(self, bar: FormingBar) -> None:
        if self.late != "revise":
            return
        kept = self._kept
        kept[bar.start] = bar
        if len(kept) > self.revision_window:
            del kept[min(kept)]
