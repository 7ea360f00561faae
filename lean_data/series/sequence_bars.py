"""Bars in arrival order: one bar per ``n`` priced prints, or per so much volume traded.

Pure and synchronous, like the time bars; a bar is stamped with the time of its first
print and has resolution ``Resolution.TICK``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import SupportsFloat, SupportsIndex

from lean_data.errors import ConfigError
from lean_data.models import Resolution, Tick, TradeBar
from lean_data.series.forming import AggregatorStatistics, ForeignTickError, FormingBar, RulesUser
from lean_data.series.trade_rules import KIND_CROSSES, KIND_PRICE, KIND_VOLUME, TradeRules

__all__ = ["SequenceAggregator", "TickCountBarAggregator", "VolumeBarAggregator"]


class SequenceAggregator(RulesUser):
    """Base of the tick-count and volume bars: bars in arrival order, stamped by first print."""

    __slots__ = ("_bar", "_last_close", "_n_bars", "_seq", "_ts_first", "_unpriced")

    def __init__(self, symbol: str, rules: TradeRules | None) -> None:
        super().__init__(symbol, TradeRules() if rules is None else rules)
        self._bar: FormingBar | None = None
        self._seq = 0  # arrival order: open is the first print to arrive, close the last
        self._ts_first = 0
        self._last_close: float | None = None
        self._n_bars = self._unpriced = 0

    def _kind_of(self, tick: Tick) -> int:
        kind = self._accept(tick)
        if kind & KIND_CROSSES:
            kind = self._first_cross(tick.ts_event, kind)
        if not kind:
            self._ignored += 1
        return kind

    def _new_bar(self, ts: int) -> FormingBar:
        self._ts_first = ts
        bar = self._bar = FormingBar(0, 0)
        return bar

    def _close(self, bar: FormingBar, out: list[TradeBar], ts_recv: int) -> None:
        """Emit a finished bar: flat at the previous close when no print set a price."""
        self._bar = None
        if bar.priced:
            self._last_close = bar.close
        elif self._last_close is not None:
            bar.flat = self._last_close
        else:
            self._unpriced += 1
            return
        self._n_bars += 1
        out.append(bar.trade_bar(self.symbol, Resolution.TICK, ts_recv, self._ts_first, True, 0))

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
        return bar.trade_bar(self.symbol, Resolution.TICK, ts_recv, self._ts_first, False, 0)

    def update_many(self, ticks: Iterable[Tick]) -> list[TradeBar]:
        """Add ticks in order; return every bar they completed.

        Raises:
            ForeignTickError: a tick is for another symbol (a ValueError). The ticks
                before it are applied and the bars they completed are its ``bars``.
        """
        out: list[TradeBar] = []
        update = self.update
        try:
            for tick in ticks:
                bars = update(tick)
                if bars:
                    out.extend(bars)
        except ForeignTickError as exc:
            exc.bars = out
            raise
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


class TickCountBarAggregator(SequenceAggregator):
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

    def __init__(
        self, symbol: str, n: SupportsIndex, *, rules: TradeRules | None = None
    ) -> None:  # n is checked below (see DataBuffer)
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
        if kind & KIND_PRICE:
            self._count += 1
            if self._count == self.n:
                self._count = 0
                out: list[TradeBar] = []
                self._close(bar, out, tick.ts_recv)
                return out
        return []


class VolumeBarAggregator(SequenceAggregator):
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
        volume: SupportsFloat,  # checked below (see DataBuffer)
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
        if kind & KIND_VOLUME and not 0.0 <= size < math.inf:  # NaN or negative: unusable
            self._ignored += 1
            return []
        ts = tick.ts_event
        price = tick.price
        bar = self._bar
        if bar is None:
            bar = self._new_bar(ts)
        self._seq += 1
        seq = self._seq
        if kind & KIND_PRICE:
            bar.add(seq, price, 0.0, KIND_PRICE)
        if not kind & KIND_VOLUME:
            return []
        out: list[TradeBar] = []
        target = self.volume
        while True:
            room = target - (bar.volume + bar.comp)
            if size < room:
                bar.add(seq, price, size, KIND_VOLUME)
                return out
            if self.split:
                bar.volume, bar.comp = target, 0.0
                size -= room
            else:
                bar.add(seq, price, size, KIND_VOLUME)
                size = 0.0
            self._close(bar, out, tick.ts_recv)
            if size <= 0.0:
                return out
            bar = self._new_bar(ts)
            if kind & KIND_PRICE:
                bar.add(seq, price, 0.0, KIND_PRICE)
