"""Trades to minute bars vs the vendor's minute bars: how far each trade rule gets us.

Reads the real LEAN/AlgoSeek US-equity trades in ``../shared/data/lean/equity/usa/tick``
(2 793 792 trades: SPY, BAC, AIG, IBM, 2013-10-07 … 11), aggregates them into 1-minute bars
with :class:`lean_data.series.aggregation.TimeBarAggregator` and compares every minute with the
vendor's minute trade bars (``minute/spy/<date>_trade.zip``; only SPY has them).

Comparison: a minute matches when the vendor and we both have a bar for it and open, high,
low and close are equal in deci-cents (``round(price * 10_000)``, the files' integer unit)
and the volumes are equal exactly (share counts, integer-valued floats). A minute that only
one side has is a difference. For revised bars the last revision counts.

Stages, each adding one rule to the previous one (``docs/aggregation.md`` explains them):

1. naive: every print sets prices and counts in volume (``TradeRules.every_trade()``);
2. suspicious: prints flagged suspicious set no price;
3. conditions: sale conditions with a veto flag (intermarket sweep, trade-through exempt)
   and no price flag set no price;
4. auctions: opening and closing crosses (the default ``TradeRules()``).

A naive difference is put in the category of the stage that first makes the minute match.
The script also checks the rules on data they were not derived from (the vendor's daily
bars, regular session, for all four symbols) and measures the aggregation speed.

Run: ``python benchmarks/aggregation_study.py`` from anywhere.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lean_data.loaders import load_file  # noqa: E402
from lean_data.models import Tick, TradeBar, datetime_to_ns  # noqa: E402
from lean_data.series.aggregation import TimeBarAggregator, TradeRules  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "lean" / "equity" / "usa"
SYMBOLS = ("spy", "bac", "aig", "ibm")
NEW_YORK = ZoneInfo("America/New_York")
STAGES: dict[str, TradeRules] = {
    "naive": TradeRules.every_trade(),
    "suspicious": TradeRules(price_flags=0, veto_flags=0, auctions=False),
    "conditions": TradeRules(auctions=False),
    "auctions": TradeRules(),
}
Key = tuple[int, int, int, int, float]


def load_ticks(path: Path) -> list[Tick]:
    """Every trade tick of a LEAN tick file."""
    return [item for item in load_file(path) if isinstance(item, Tick)]


def load_bars(path: Path) -> dict[int, TradeBar]:
    """A LEAN trade-bar file, by open time."""
    return {item.ts_event: item for item in load_file(path) if isinstance(item, TradeBar)}


def key(bar: TradeBar | None) -> Key | None:
    """The compared values: prices in deci-cents, volume as is."""
    if bar is None:
        return None
    prices = (bar.open, bar.high, bar.low, bar.close)
    o, h, lo, c = (round(price * 10_000) for price in prices)
    return o, h, lo, c, bar.volume


def aggregate(
    ticks: Sequence[Tick], rules: TradeRules, late: Literal["revise", "drop"] = "revise"
) -> dict[int, TradeBar]:
    """Return the final (last revision) 1-minute bar per open time."""
    aggregator = TimeBarAggregator(ticks[0].symbol, "1m", rules=rules, late=late)
    final: dict[int, TradeBar] = {}
    for bar in aggregator.update_many(ticks) + aggregator.flush():
        final[bar.ts_event] = bar
    return final


def differences(ours: dict[int, TradeBar], vendor: dict[int, TradeBar]) -> dict[int, str]:
    """Minute -> which fields differ (``"missing"`` / ``"extra"`` for one-sided minutes)."""
    found: dict[int, str] = {}
    for minute in sorted(set(ours) | set(vendor)):
        a, b = key(ours.get(minute)), key(vendor.get(minute))
        if a == b:
            continue
        if a is None:
            found[minute] = "missing"
        elif b is None:
            found[minute] = "extra"
        else:
            found[minute] = "".join(
                name for name, x, y in zip("OHLCV", a, b, strict=True) if x != y
            )
    return found


def clock(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, NEW_YORK).strftime("%H:%M")


def minute_study(days: Sequence[str]) -> None:
    print("== 1-minute bars vs the vendor's (SPY; the only symbol with vendor minute bars)")
    print(f"{'day':10} {'minutes':>7} {'naive':>15} {'rules':>15}  categories of naive differences")
    totals = Counter[str]()
    for day in days:
        ticks = load_ticks(DATA / "tick" / "spy" / f"{day}_trade.zip")
        vendor = load_bars(DATA / "minute" / "spy" / f"{day}_trade.zip")
        stage_diffs = {
            name: differences(aggregate(ticks, rules), vendor) for name, rules in STAGES.items()
        }
        minutes = len(set(vendor) | set(aggregate(ticks, STAGES["naive"])))
        categories = Counter[str]()
        for minute in stage_diffs["naive"]:
            fixed_by = next((name for name in STAGES if minute not in stage_diffs[name]), None)
            categories[fixed_by or f"remaining {stage_diffs['auctions'][minute]}"] += 1
        naive_ok = minutes - len(stage_diffs["naive"])
        rules_ok = minutes - len(stage_diffs["auctions"])
        totals.update(minutes=minutes, naive=naive_ok, rules=rules_ok)
        totals.update({f"cat:{name}": n for name, n in categories.items()})
        print(
            f"{day:10} {minutes:7} {naive_ok:5} ({100 * naive_ok / minutes:5.2f}%) "
            f"{rules_ok:5} ({100 * rules_ok / minutes:6.2f}%)  {dict(categories)}"
        )
        for minute, fields in stage_diffs["auctions"].items():
            print(f"    remaining {clock(minute)}: {fields}")
        dropped = differences(aggregate(ticks, STAGES["auctions"], late="drop"), vendor)
        if dropped:
            where = ", ".join(f"{clock(m)} {f}" for m, f in dropped.items())
            print(f"    with late='drop' (no revisions) these also differ: {where}")
    n = totals["minutes"]
    print(
        f"{'total':10} {n:7} {totals['naive']:5} ({100 * totals['naive'] / n:5.2f}%) "
        f"{totals['rules']:5} ({100 * totals['rules'] / n:6.2f}%)  "
        + str({k[4:]: v for k, v in totals.items() if k.startswith("cat:")})
    )


def session_bar(bars: dict[int, TradeBar], day: str) -> Key | None:
    """Aggregate our minute bars of the regular session (09:30-16:00 New York)."""
    date = datetime.strptime(day, "%Y%m%d").replace(tzinfo=NEW_YORK)
    start = datetime_to_ns(date.replace(hour=9, minute=30))
    end = datetime_to_ns(date.replace(hour=16))
    session = [bars[minute] for minute in sorted(bars) if start <= minute < end]
    if not session:
        return None
    first, last = session[0], session[-1]
    high = max(bar.high for bar in session)
    low = min(bar.low for bar in session)
    volume = sum(bar.volume for bar in session)
    return key(TradeBar(first.symbol, start, first.open, high, low, last.close, volume))


def daily_check(days: Sequence[str]) -> None:
    print("\n== held out: regular-session aggregate of our minute bars vs the vendor's daily bars")
    print(f"{'symbol':6} {'day':10} {'naive':8} {'rules':8} (fields that differ)")
    matched = Counter[str]()
    for symbol in SYMBOLS:
        daily = load_bars(DATA / "daily" / f"{symbol}.zip")
        for day in days:
            ticks = load_ticks(DATA / "tick" / symbol / f"{day}_trade.zip")
            midnight = datetime.strptime(day, "%Y%m%d").replace(tzinfo=NEW_YORK)
            vendor = key(daily.get(datetime_to_ns(midnight)))
            row = []
            for name in ("naive", "auctions"):
                ours = session_bar(aggregate(ticks, STAGES[name]), day)
                diff = (
                    ""
                    if ours is None or vendor is None
                    else "".join(
                        field for field, x, y in zip("OHLCV", ours, vendor, strict=True) if x != y
                    )
                )
                matched[name] += diff == "" and ours is not None
                row.append(diff or "match")
            print(f"{symbol.upper():6} {day:10} {row[0]:8} {row[1]:8}")
    total = len(SYMBOLS) * len(days)
    print(f"matching days: naive {matched['naive']}/{total}, rules {matched['auctions']}/{total}")


def throughput(days: Sequence[str]) -> None:
    print("\n== aggregation speed (1-minute bars, default rules, ticks already in memory)")
    count = 0
    batch = single = 0.0
    for symbol in SYMBOLS:
        for day in days:
            ticks = load_ticks(DATA / "tick" / symbol / f"{day}_trade.zip")
            count += len(ticks)
            aggregator = TimeBarAggregator(symbol.upper(), "1m")
            started = time.perf_counter()
            aggregator.update_many(ticks)
            aggregator.flush()
            batch += time.perf_counter() - started
            aggregator = TimeBarAggregator(symbol.upper(), "1m")
            update = aggregator.update
            started = time.perf_counter()
            for tick in ticks:
                update(tick)
            single += time.perf_counter() - started
    print(f"{count:,} trades")
    print(f"  update_many(): {count / batch:12,.0f} trades/s ({batch:.2f} s)")
    print(f"  update():      {count / single:12,.0f} trades/s ({single:.2f} s)")
    print(f"Python {sys.version.split()[0]}")


def main() -> int:
    if not DATA.is_dir():
        print(f"no real data at {DATA} (the shared corpus, ../shared/data); nothing to study")
        return 0
    days = sorted(path.name[:8] for path in (DATA / "tick" / "spy").glob("*_trade.zip"))
    minute_study(days)
    daily_check(days)
    throughput(days)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
