"""Figure 5: 2.79M real trades -> 1-minute bars, trades/s of the aggregation step itself.

Workload: every LEAN/AlgoSeek US-equity trade file in ``lean/equity/usa/tick/*/*.zip``
(SPY, BAC, AIG, IBM, 2013-10-07 ... 11; 2,793,812 trade ticks), loaded with
:func:`lean_data.loaders.load_file` one file at a time. Loading is not timed: the clock runs
around the aggregation only, with :class:`lean_data.series.aggregation.TimeBarAggregator` and its
default :class:`~lean_data.series.aggregation.TradeRules` (sale conditions, suspicious prints,
auction crosses, late-trade revisions, exact volume sums), through ``update_many`` (one call
per file) and through ``update`` (one call per tick, the live path).

Baseline: a bare Python loop over the same ticks doing open/high/low/close and a plain sum
per minute (no rules, no revisions, no exact summation): the floor for pure Python.

Peer, when importable: nautilus_trader's ``TimeBarAggregator`` (1-MINUTE-LAST, right-open
intervals, bars stamped at open) in batch mode (``start_batch_update`` ...
``stop_batch_update``, its path for aggregating historical trades: bars close on the trades'
event time, not on timers), fed the same trades as nautilus ``TradeTick`` objects (built
before the clock starts, prices at the test equity's 2 decimals). It applies no
sale-condition rules, like the baseline. cryptofeed's ``OHLCV`` callback windows by
wall-clock time, not event time, so it cannot aggregate recorded trades.

Each repeat is one full pass over every file (each method runs on a file right after the
others, so drift hits all alike); a warm-up pass over the first file is excluded.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from _common import Context, Result

from lean_data.loaders import load_file
from lean_data.models import Tick
from lean_data.series.aggregation import TimeBarAggregator

NAME = "real trades -> 1-minute bars (aggregation step)"

_TICKS = "lean/equity/usa/tick"
_NS_PER_MINUTE = 60 * 10**9
_TARGET = 1_000_000.0
_QUICK_TICKS = 20_000

Bare = tuple[int, float, float, float, float, float]


def bare_minute_bars(ticks: Sequence[Tick]) -> list[Bare]:
    """Return (minute, open, high, low, close, volume) per minute: the baseline loop."""
    out: list[Bare] = []
    start = -1
    o = h = lo = c = v = 0.0
    for tick in ticks:
        ts = tick.ts_event
        minute = ts - ts % _NS_PER_MINUTE
        price = tick.price
        if minute != start:
            if start >= 0:
                out.append((start, o, h, lo, c, v))
            start = minute
            o = h = lo = c = price
            v = tick.size
            continue
        if price > h:
            h = price
        elif price < lo:
            lo = price
        c = price
        v += tick.size
    if start >= 0:
        out.append((start, o, h, lo, c, v))
    return out


def aggregate_many(ticks: Sequence[Tick]) -> int:
    """Aggregate with ``update_many`` + ``flush``; return how many bars (and revisions)."""
    aggregator = TimeBarAggregator(ticks[0].symbol, "1m")
    return len(aggregator.update_many(ticks)) + len(aggregator.flush())


def aggregate_each(ticks: Sequence[Tick]) -> int:
    """Aggregate with one ``update`` call per tick + ``flush``; return how many bars."""
    aggregator = TimeBarAggregator(ticks[0].symbol, "1m")
    update = aggregator.update
    bars = 0
    for tick in ticks:
        out = update(tick)
        if out:
            bars += len(out)
    return bars + len(aggregator.flush())


def bare(ticks: Sequence[Tick]) -> int:
    """The baseline, returning its bar count."""
    return len(bare_minute_bars(ticks))


METHODS: dict[str, Callable[[Sequence[Tick]], int]] = {
    "update_many": aggregate_many,
    "update": aggregate_each,
    "bare": bare,
}


class NautilusPeer:
    """nautilus_trader's time-bar aggregator in batch mode on the same trades.

    Raises:
        ImportError: nautilus_trader is not installed.
    """

    def __init__(self) -> None:
        import nautilus_trader
        from nautilus_trader.common.component import TestClock
        from nautilus_trader.data.aggregation import TimeBarAggregator as Aggregator
        from nautilus_trader.model.data import BarType, TradeTick
        from nautilus_trader.model.enums import AggressorSide
        from nautilus_trader.model.identifiers import TradeId
        from nautilus_trader.model.objects import Price, Quantity
        from nautilus_trader.test_kit.providers import TestInstrumentProvider

        self.version = f"nautilus_trader {nautilus_trader.__version__}"
        self._t = (TestClock, Aggregator, BarType, TradeTick, AggressorSide, TradeId, Price)
        self._quantity = Quantity
        self._equity = TestInstrumentProvider.equity
        self.minutes_differing = 0

    def convert(self, ticks: Sequence[Tick]) -> tuple[Any, list[Any]]:
        """The instrument and the ticks as nautilus TradeTicks (not timed)."""
        _, _, _, trade_tick, aggressor, trade_id, price = self._t
        instrument = self._equity(ticks[0].symbol, "XNYS")
        iid, precision, side = instrument.id, instrument.price_precision, aggressor.NO_AGGRESSOR
        quantity = self._quantity
        converted = [
            trade_tick(iid, price(t.price, precision), quantity(t.size, 0), side, trade_id(str(i)),
                       t.ts_event, t.ts_event)
            for i, t in enumerate(ticks)
        ]  # fmt: skip
        return instrument, converted

    def aggregate(self, converted: tuple[Any, list[Any]]) -> list[Any]:
        """Aggregate into 1-minute bars; return them."""
        clock, aggregator, bar_type, *_ = self._t
        instrument, ticks = converted
        bars: list[Any] = []
        agg = aggregator(
            instrument, bar_type.from_str(f"{instrument.id}-1-MINUTE-LAST-INTERNAL"),
            bars.append, clock(), interval_type="right-open", timestamp_on_close=False,
            build_with_no_updates=False,
        )  # fmt: skip
        agg.start_batch_update(bars.append, ticks[0].ts_event)
        handle = agg.handle_trade_tick
        for tick in ticks:
            handle(tick)
        agg.stop_batch_update()
        return bars

    def count(self, converted: tuple[Any, list[Any]]) -> int:
        """Aggregate; return how many bars."""
        return len(self.aggregate(converted))

    def compare(self, bars: list[Any], bare_bars: list[Bare]) -> None:
        """Count the minutes where the peer's bars differ from the bare loop's (in cents)."""
        ours = {b[0]: tuple(round(v * 100) for v in b[1:]) for b in bare_bars}
        theirs = {
            b.ts_event: tuple(
                round(x.as_double() * 100) for x in (b.open, b.high, b.low, b.close, b.volume)
            )
            for b in bars
        }
        last = max(ours)  # batch mode leaves the last bar open
        self.minutes_differing += sum(
            1 for minute, row in ours.items() if minute != last and theirs.get(minute) != row
        )


def _peer() -> tuple[NautilusPeer | None, str]:
    try:
        return NautilusPeer(), ""
    except ImportError as exc:
        return None, f"peer absent: nautilus_trader not importable ({exc})"


def _files(ctx: Context) -> list[Path]:
    root = ctx.require_data(_TICKS)
    files = sorted(root.glob("*/*_trade.zip"))
    if not files:
        raise FileNotFoundError(f"no *_trade.zip tick files under {root}")
    if ctx.quick:  # the smallest file, cut short
        return [min(files, key=lambda p: p.stat().st_size)]
    return files


def _load(path: Path, limit: int | None) -> list[Tick]:
    ticks = [item for item in load_file(path) if isinstance(item, Tick)]
    return ticks[:limit] if limit is not None else ticks


def _timed(call: Callable[[], int]) -> tuple[float, int]:
    gc.collect()
    started = time.perf_counter()
    bars = call()
    return time.perf_counter() - started, bars


def measure(
    ctx: Context, peer: NautilusPeer | None
) -> tuple[int, dict[str, list[float]], dict[str, int], int]:
    """Return (trades, seconds per repeat per method, bars per method, files read).

    The methods are :data:`METHODS` and, with a peer, ``"nautilus"``.
    """
    files = _files(ctx)
    limit = _QUICK_TICKS if ctx.quick else None
    names = [*METHODS, *(["nautilus"] if peer is not None else [])]
    seconds = {name: [0.0] * ctx.repeats for name in names}
    bars = dict.fromkeys(names, 0)
    trades = 0
    for index, path in enumerate(files):
        ticks = _load(path, limit)
        if not ticks:
            continue
        runs: dict[str, Callable[[], int]] = {
            name: partial(fn, ticks) for name, fn in METHODS.items()
        }
        if peer is not None:
            converted = peer.convert(ticks)
            runs["nautilus"] = partial(peer.count, converted)
            peer.compare(peer.aggregate(converted), bare_minute_bars(ticks))
        if index == 0:  # warm-up, excluded
            for fn in runs.values():
                fn()
        trades += len(ticks)
        for repeat in range(ctx.repeats):
            for name, call in runs.items():
                elapsed, count = _timed(call)
                seconds[name][repeat] += elapsed
                if repeat == 0:
                    bars[name] += count
        del ticks, runs
    return trades, seconds, bars, len(files)


def run(ctx: Context) -> list[Result]:
    """Measure figure 5 (see the module docstring).

    Raises:
        DataMissing: the LEAN tick files of ../shared/data are absent.
        AssertionError: ``update`` and ``update_many`` made different numbers of bars.
    """
    peer, absent = _peer()
    trades, seconds, bars, nfiles = measure(ctx, peer)
    rates = {name: trades / statistics.median(times) for name, times in seconds.items()}
    if bars["update_many"] != bars["update"]:
        raise AssertionError(
            f"update_many made {bars['update_many']} bars, update made {bars['update']}"
        )
    notes = (
        f"{trades:,} LEAN trade ticks from {nfiles} files, loading not timed; default "
        f"TradeRules; {bars['update_many']:,} bars (with revisions) vs {bars['bare']:,} "
        f"bare minutes; {absent or (peer and peer.version)}"
    )
    extra = {
        "trades": trades,
        "files": nfiles,
        "bars": bars,
        "seconds_per_pass": {name: statistics.median(t) for name, t in seconds.items()},
        "rates": rates,
    }
    if peer is not None:
        extra["peer"] = peer.version
        extra["peer_minutes_differing_from_bare"] = peer.minutes_differing
    results = []
    for name in ("update_many", "update"):
        results.append(
            Result(
                figure=f"5 trades -> 1m bars, {name}()",
                metric="trades/s",
                value=rates[name],
                baseline="bare min/max/sum loop",
                baseline_value=rates["bare"],
                target=">= 1M trades/s",
                met=None if ctx.quick else rates[name] >= _TARGET,
                notes=notes,
                extra=extra,
            )
        )
    if peer is not None:
        results.append(
            Result(
                figure="5 trades -> 1m bars, update_many() vs nautilus",
                metric="trades/s",
                value=rates["update_many"],
                baseline=f"{peer.version} TimeBarAggregator (batch)",
                baseline_value=rates["nautilus"],
                notes=notes,
            )
        )
    return results
