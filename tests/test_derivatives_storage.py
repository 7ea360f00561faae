"""Derivatives records in storage, on SQLite and PostgreSQL (the ``backend`` fixture).

The funding rates are the 91 real Binance XRP/USDT perp rates of freqtrade's file (with
their millisecond offsets); the mark prices, open interest and liquidations are built from
real values of that series (the rates, the file's mark candles' closes), at the same times.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from lean_data.derivatives import FundingRate, Liquidation, MarkPrice, OpenInterest
from lean_data.loaders import load_file
from lean_data.models import NS_PER_DAY, NS_PER_HOUR, TradeBar
from lean_data.storage.sqlite import DataPersistence
from lean_data.storage.store import QueuedStore
from tests.backends import Backend, PostgresBackend
from tests.test_schema_migration import V4_FILE

FUTURES = Path(__file__).parent / "fixtures" / "freqtrade" / "futures"
NOW = 1_700_000_000_000_000_000
SYMBOL = "XRP/USDT:USDT"
TABLES = ("funding_rates", "open_interest", "mark_prices", "liquidations")


def funding() -> list[FundingRate]:
    rates = load_file(FUTURES / "XRP_USDT_USDT-8h-funding_rate.feather")
    assert all(isinstance(r, FundingRate) for r in rates)
    return rates  # type: ignore[return-value]  # checked just above


def marks() -> list[MarkPrice]:
    """A mark price at each funding time: the close of the 8h mark candle ending there."""
    bars = load_file(FUTURES / "XRP_USDT_USDT-8h-mark.feather")
    closes = {b.ts_event + 8 * NS_PER_HOUR: b.close for b in bars if isinstance(b, TradeBar)}
    found = []
    for rate in funding():
        close = closes.get(rate.ts_event - rate.ts_event % NS_PER_HOUR)
        if close is not None:
            index = math.nan if len(found) % 3 == 0 else close * 0.9995  # some unknown
            found.append(MarkPrice(SYMBOL, rate.ts_event, close, index, 0, rate.rate,
                                   rate.ts_event + 8 * NS_PER_HOUR))  # fmt: skip
    return found


def interest() -> list[OpenInterest]:
    return [
        OpenInterest(SYMBOL, m.ts_event, contracts=1e8 + i, notional=(1e8 + i) * m.mark_price)
        if i % 2
        else OpenInterest(SYMBOL, m.ts_event, contracts=1e8 + i)
        for i, m in enumerate(marks())
    ]


def liquidations() -> list[Liquidation]:
    found = []
    for m in marks()[:20]:
        found.append(Liquidation(SYMBOL, m.ts_event, "sell", m.mark_price, 1200.0, 0, "FILLED"))
        found.append(  # same time, other side: both kept
            Liquidation(SYMBOL, m.ts_event, "buy", m.mark_price, 1200.0, 0, "NEW", m.mark_price)
        )
    return found


def same(got: list[Any], want: list[Any]) -> None:
    """Equal record by record, NaN equal to NaN."""
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert type(a) is type(b)
        for field in dataclasses.fields(a):
            x, y = getattr(a, field.name), getattr(b, field.name)
            nan = isinstance(x, float) and math.isnan(x) and math.isnan(y)
            assert nan or x == y, (field.name, a, b)


def received(records: list[Any]) -> list[Any]:
    """The records as stored: saved with ts_recv 0, stored with the time of saving."""
    return [r.with_ts_recv(r.ts_recv or NOW) for r in records]


async def save_all(store: QueuedStore, feed: str = "binance") -> None:
    await store.save_funding_rates(funding(), feed=feed)
    await store.save_open_interest(interest(), feed=feed)
    await store.save_mark_prices(marks(), feed=feed)
    await store.save_liquidations(liquidations(), feed=feed)


async def test_every_record_round_trips_exactly(backend: Backend) -> None:
    async with backend.make(clock_ns=lambda: NOW) as store:
        await save_all(store)
        same(await store.get_funding_rates(SYMBOL), received(funding()))
        same(await store.get_open_interest(SYMBOL), received(interest()))
        same(await store.get_mark_prices(SYMBOL), received(marks()))
        by_key = sorted(liquidations(), key=lambda r: (r.ts_event, r.side))
        same(await store.get_liquidations(SYMBOL), received(by_key))
        counts = [await store.count(table) for table in TABLES]
    assert counts == [91, len(marks()), len(marks()), 40]
    assert len(marks()) > 80  # the mark candles cover nearly every funding time
    offsets = [r.ts_event % 1_000_000_000 for r in funding()]
    assert sum(1 for o in offsets if o) == 59  # the ms offsets survived storage


async def test_saving_again_is_idempotent_and_the_last_saved_wins(backend: Backend) -> None:
    rates = funding()
    changed = dataclasses.replace(rates[5], rate=-0.00031, predicted_rate=0.0002)
    async with backend.make(clock_ns=lambda: NOW) as store:
        await store.save_funding_rates(rates, feed="binance")
        await store.save_funding_rates(rates, feed="binance")  # a replay: nothing new
        await store.flush()
        assert await store.count("funding_rates") == 91
        await store.save_funding_rates([rates[5], changed], feed="binance")  # one batch
        await store.save_liquidations(liquidations() * 2, feed="binance")
        stored = await store.get_funding_rates(SYMBOL)
        assert await store.count("liquidations") == 40
    same(stored, received([*rates[:5], changed, *rates[6:]]))


async def test_ranges_are_half_open_with_open_bounds_and_by_feed(backend: Backend) -> None:
    rates = funding()
    start, end = rates[10].ts_event, rates[20].ts_event
    async with backend.make(clock_ns=lambda: NOW) as store:
        await store.save_funding_rates(rates, feed="binance")
        await store.save_funding_rates(rates[:3], feed="backup")
        only_binance = await store.get_funding_rates(SYMBOL, start, end, feed="binance")
        both = await store.get_funding_rates(SYMBOL, None, rates[1].ts_event + 1)
        tail = await store.get_funding_rates(SYMBOL, rates[-2].ts_event)
        nothing = await store.get_funding_rates("BTC/USDT:USDT")
        backup = await store.get_funding_rates(SYMBOL, feed="backup")
    same(only_binance, received(rates[10:20]))  # [start, end): the 20th is out
    assert [(r.ts_event, r.rate) for r in both] == [
        (r.ts_event, r.rate) for r in (rates[0], rates[0], rates[1], rates[1])
    ]  # both feeds, by time
    same(tail, received(rates[-2:]))
    assert nothing == []
    same(backup, received(rates[:3]))


async def test_market_data_saving_refuses_derivatives_records_and_the_reverse(
    backend: Backend,
) -> None:
    async with backend.make(clock_ns=lambda: NOW) as store:
        with pytest.raises(TypeError, match="derivatives record, not market data: store it "
                           "with save_funding_rates"):  # fmt: skip
            await store.save_market_data(funding()[0])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="save_mark_prices"):
            store.save_market_data_nowait(marks()[0])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="expected MarkPrice records, got FundingRate"):
            await store.save_mark_prices([*marks()[:2], funding()[0]])  # type: ignore[list-item]
        assert [await store.count(table) for table in (*TABLES, "bars")] == [0] * 5


async def test_retention_deletes_derivatives_received_before_the_cutoff(
    backend: Backend,
) -> None:
    old = NOW - 3 * NS_PER_DAY
    rates = funding()
    async with backend.make(clock_ns=lambda: NOW) as store:
        await store.save_funding_rates([r.with_ts_recv(old) for r in rates[:30]])
        await store.save_funding_rates(rates[30:])
        await store.save_liquidations([liquidations()[0].with_ts_recv(old)])
        await store.save_mark_prices(marks()[:4])
        deleted = await store.apply_retention(days=2)
        kept = await store.get_funding_rates(SYMBOL)
        assert await store.count("liquidations") == 0
    assert {table: deleted[table] for table in TABLES} == {
        "funding_rates": 30, "open_interest": 0, "mark_prices": 0, "liquidations": 1,
    }  # fmt: skip
    same(kept, received(rates[30:]))


async def test_sqlite_and_postgres_answer_every_range_query_alike(
    pg: PostgresBackend, tmp_path: Path
) -> None:
    rates = funding()
    at = [r.ts_event for r in rates]
    bounds = [(None, None), (at[7], None), (None, at[50]), (at[3], at[3] + 1),
              (at[40] + 1, at[41])]  # fmt: skip
    answers = []
    for store in (DataPersistence(tmp_path / "lean.db", clock_ns=lambda: NOW),
                  pg.make(clock_ns=lambda: NOW)):  # fmt: skip
        async with store:
            await save_all(store)
            await save_all(store, feed="backup")
            found = []
            for start, end in bounds:
                for feed in (None, "backup"):
                    for read in (store.get_funding_rates, store.get_open_interest,
                                 store.get_mark_prices, store.get_liquidations):  # fmt: skip
                        found.append(repr(await read(SYMBOL, start, end, feed=feed)))
            answers.append(found)
    assert answers[0] == answers[1]  # repr: NaN prints alike, floats to the last bit
    assert answers[0].count("[]") == 2 * 4  # only (at[40] + 1, at[41]) is empty, for all


# ------------------------------------------------------------------ migration from version 2


async def test_a_version_2_sqlite_file_gains_the_derivatives_tables(tmp_path: Path) -> None:
    path = tmp_path / "lean.db"
    shutil.copyfile(V4_FILE, path)  # written by the version-4 code
    with sqlite3.connect(path) as db:  # the file as version 2 left it: no such tables
        for table in TABLES:
            db.execute(f"DROP TABLE {table}")
        db.execute("UPDATE schema_version SET version = 2")
        (first,) = db.execute("SELECT MIN(ts_event) FROM bars WHERE feed = 'backup'").fetchone()
    db.close()
    async with DataPersistence(path, clock_ns=lambda: NOW) as store:
        await store.save_funding_rates(funding()[:5], feed="binance")
        same(await store.get_funding_rates(SYMBOL), received(funding()[:5]))
        (bar,) = await store.get_market_data("BTC-PERP", first, first + 1, feed="backup")
        assert (bar.ts_event, bar.symbol) == (first, "BTC-PERP")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(5,)]
        names = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    db.close()
    assert set(TABLES) <= names


async def test_a_version_2_postgres_schema_gains_the_derivatives_tables(
    pg: PostgresBackend,
) -> None:
    bar = TradeBar("BTC/USDT", 60_000_000_000, 1.0, 2.0, 0.5, 1.5, 10.0, ts_recv=NOW)
    async with pg.make() as store:
        await store.save_market_data(bar, feed="binance")
    for table in TABLES:
        await pg.execute(f"DROP TABLE {table}")
    await pg.execute("UPDATE schema_version SET version = 2")
    async with pg.make(clock_ns=lambda: NOW) as store:  # migrated at open
        assert await pg.rows("SELECT version FROM schema_version") == [(4,)]
        await store.save_liquidations(liquidations()[:4], feed="binance")
        by_key = sorted(liquidations()[:4], key=lambda r: (r.ts_event, r.side))
        same(await store.get_liquidations(SYMBOL), received(by_key))
        assert await store.get_market_data("BTC/USDT", 0, 2**62) == [bar]
