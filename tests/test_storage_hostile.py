"""The storage writer against hostile rows: real data with one bad value in the middle.

An int beyond 64 bits, a lone surrogate or a NaN in a NOT NULL column used to kill the
writer task (and the engine with it) or cost the whole batch. Now only the bad row is
lost: it is counted by reason, reported as a ``storage_rejected`` errors row, and every
other row of real LEAN / Nautilus data is stored, counted exactly in the database. Tests
taking ``backend`` run on SQLite and on PostgreSQL (whose own refusals, such as a NUL in
text, are tested in tests/test_postgres.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import math
import sqlite3
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lean_data import DataEngine
from lean_data.engine import EngineState
from lean_data.errors import StorageError
from lean_data.loaders import iter_file, load_file
from lean_data.models import MarketData, Tick, TradeBar
from lean_data.storage.sqlite import DataPersistence
from tests.backends import Backend, pg_schema
from tests.conftest import FIXTURES
from tests.helpers import ListFeed

SPY_MINUTES = FIXTURES / "lean/equity/usa/minute/spy/20131007_trade.zip"
SPY_TICKS = FIXTURES / "lean/equity/usa/tick/spy/20131010_trade.zip"
BTC_PERP = FIXTURES / "nautilus_trader/btc-perp-20211231-20220201_1m.csv"
NOW = 1_700_000_000 * 10**9


@functools.cache
def spy_minutes() -> tuple[TradeBar, ...]:
    """The 828 real SPY minute bars of 2013-10-07 (LEAN, AlgoSeek)."""
    return tuple(b for b in load_file(SPY_MINUTES) if isinstance(b, TradeBar))


@pytest.fixture
def spy() -> list[TradeBar]:
    bars = list(spy_minutes())
    assert len(bars) == 828
    return bars


@pytest.fixture(scope="module")
def ticks() -> list[Tick]:
    found = [t for t in itertools.islice(iter_file(SPY_TICKS), 300) if isinstance(t, Tick)]
    assert len(found) == 300
    return found


def sqlite_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def writer_task() -> asyncio.Task[Any]:
    (task,) = [t for t in asyncio.all_tasks() if t.get_name().startswith("lean_data.storage:")]
    return task


BAD_BARS = {
    "surrogate symbol": ({"symbol": "SPY\ud800"}, "text_encoding", "symbol = 'SPY\\ud800'"),
    "NaN open time": ({"ts_event": math.nan}, "null", "ts_event = nan"),
    "open time beyond int64": ({"ts_event": 2**63}, "int_range", f"ts_event = {2**63}"),
    "revision beyond int64": ({"revision": -(2**64)}, "int_range", f"revision = {-(2**64)}"),
    "a list as a price": ({"close": [167.3]}, "type", "close = [167.3]"),
    "None as the open time": ({"ts_event": None}, "null", "ts_event = None"),
}


@pytest.mark.parametrize("batch_rows", [1000, 100])
@pytest.mark.parametrize("case", sorted(BAD_BARS))
async def test_one_hostile_bar_among_real_spy_minutes_costs_only_itself(
    backend: Backend, spy: list[TradeBar], case: str, batch_rows: int
) -> None:
    fields, reason, shown = BAD_BARS[case]
    bad = replace(spy[414], **fields)
    store = backend.make(batch_rows=batch_rows, clock_ns=lambda: NOW)
    async with store:
        for index, bar in enumerate(spy):
            await store.save_market_data(bad if index == 414 else bar, feed="lean")
        with pytest.raises(StorageError, match=r"^1 queued rows could not be stored"):
            await store.flush()
        writer = writer_task()
        assert not writer.done()  # the writer survived
        stats = store.statistics()
        assert (stats["rows_written"], stats["rows_rejected"], stats["rows_lost"]) == (827, 1, 0)
        assert stats["rejected"] == {reason: 1}
        # every other row is stored, exactly as it was
        good = spy[:414] + spy[415:]
        stored = await store.get_market_data("SPY", spy[0].ts_event, spy[-1].ts_event + 1)
        assert stored == [replace(b, ts_recv=NOW) for b in good]
        # the writer goes on: a later row is stored and flush succeeds again
        await store.save_market_data(replace(spy[414], revision=1), feed="lean")
        await store.flush()
    assert writer.done()
    assert writer.exception() is None  # close() stopped it cleanly
    assert await backend.rows("SELECT COUNT(*) FROM bars WHERE symbol = 'SPY'") == [(828,)]
    errors = await backend.rows("SELECT ts, kind, feed, symbol, message, detail FROM errors")
    assert len(errors) == 1
    ts, kind, feed, symbol, message, detail = errors[0]
    assert (ts, kind, feed) == (NOW, "storage_rejected", "lean")
    assert symbol == ("SPY\\ud800" if case == "surrogate symbol" else "SPY")
    assert message.startswith(f"bars row not stored ({reason}): {shown}")
    assert detail.startswith("('lean', ")


async def test_a_huge_int_in_a_float_column_is_stored_as_a_float(
    backend: Backend, spy: list[TradeBar]
) -> None:
    async with backend.make(clock_ns=lambda: NOW) as store:
        for index, bar in enumerate(spy):
            await store.save_market_data(replace(bar, volume=2**64) if index == 7 else bar)
        await store.flush()
        assert store.statistics()["rows_rejected"] == 0
        assert store.statistics()["rows_written"] == 828
    assert await backend.rows(f"SELECT volume FROM bars WHERE ts_event = {spy[7].ts_event}") == [
        (float(2**64),)
    ]
    assert await backend.rows("SELECT COUNT(*) FROM errors") == [(0,)]


async def test_hostile_ticks_lose_only_themselves(backend: Backend, ticks: list[Tick]) -> None:
    hostile = {
        10: replace(ticks[10], trade_id="t\ud800"),  # rejected: text_encoding
        20: replace(ticks[20], exchange="\udcff"),  # rejected: text_encoding
        30: replace(ticks[30], condition="\ud83d"),  # rejected: text_encoding
        40: replace(ticks[40], ts_event=-(2**63) - 1),  # rejected: int_range
        50: replace(ticks[50], size=2**70),  # stored as a float
        60: replace(ticks[60], trade_id=2**64),  # type: ignore[arg-type]  # stored as text
        70: replace(ticks[70], suspicious=math.nan),  # type: ignore[arg-type]  # rejected: null
    }
    async with backend.make(batch_rows=64) as store:
        for index, tick in enumerate(ticks):
            await store.save_market_data(hostile.get(index, tick), feed="algoseek")
        with pytest.raises(StorageError, match=r"^5 queued rows could not be stored"):
            await store.flush()
        assert store.statistics()["rejected"] == {"int_range": 1, "null": 1, "text_encoding": 3}
        assert not writer_task().done()
    assert await backend.rows("SELECT COUNT(*) FROM ticks") == [(295,)]
    numeric_id = f"SELECT ts_event, size FROM ticks WHERE trade_id = '{2**64}'"
    assert await backend.rows(numeric_id) == [(ticks[60].ts_event, ticks[60].size)]
    huge = "SELECT ts_event, size FROM ticks WHERE size > 1e20"
    assert await backend.rows(huge) == [(ticks[50].ts_event, float(2**70))]
    messages = [m for (m,) in await backend.rows("SELECT message FROM errors ORDER BY id")]
    assert messages == [
        "ticks row not stored (text_encoding): trade_id = 't\\ud800': not UTF-8: surrogates "
        "not allowed",
        "ticks row not stored (text_encoding): exchange = '\\udcff': not UTF-8: surrogates "
        "not allowed",
        "ticks row not stored (text_encoding): condition = '\\ud83d': not UTF-8: surrogates "
        "not allowed",
        "ticks row not stored (int_range): ts_event = -9223372036854775809: outside the "
        "64-bit integer range",
        "ticks row not stored (null): suspicious = nan: NaN (stored as NULL) in a NOT NULL column",
    ]


async def test_errors_and_metrics_with_hostile_text_are_stored_escaped(backend: Backend) -> None:
    async with backend.make(clock_ns=lambda: NOW) as store:
        await store.save_error(
            "feed\ud800", "bad frame \udcff", feed="f\ud800", symbol="SPY\ud800", detail="\ud83d"
        )
        assert store.save_error_nowait("k", "ok", symbol="\udfff")
        await store.save_metrics({"s\ud800": "v\udcff", "huge": 2**70, "n": [2**64 + 1]})
        await store.flush()
        assert await store.get_errors() == [  # newest first
            {"ts_ns": NOW, "kind": "k", "feed": "", "symbol": "\\udfff", "message": "ok",
             "detail": ""},
            {"ts_ns": NOW, "kind": "feed\\ud800", "feed": "f\\ud800", "symbol": "SPY\\ud800",
             "message": "bad frame \\udcff", "detail": "\\ud83d"},
        ]  # fmt: skip
        assert await store.get_metrics_history(hours=1) == [
            {"ts_ns": NOW, "metrics": {"s\\ud800": "v\\udcff", "huge": str(2**70),
                                        "n": [str(2**64 + 1)]}}
        ]  # fmt: skip
        assert store.statistics()["rows_rejected"] == 0


async def test_coverage_records_with_hostile_values_are_rejected_alone(
    backend: Backend, spy: list[TradeBar]
) -> None:
    async with backend.make() as store:
        for bar in spy[:10]:
            await store.save_market_data(bar, feed="lean")
        await store.record_coverage("lean", "SPY", "1m", spy[0].ts_event, spy[10].ts_event)
        await store.record_coverage("lean\ud800", "SPY", "1m", 0, 2**64)
        with pytest.raises(StorageError, match=r"^1 queued rows could not be stored"):
            await store.flush()
        assert store.statistics()["rejected"] == {"text_encoding": 1}
        assert await store.get_coverage("lean", "SPY", "1m", 0, 2**62) == [
            (spy[0].ts_event, spy[10].ts_event, False)
        ]
    assert await backend.rows("SELECT COUNT(*) FROM bars") == [(10,)]


async def test_a_rejected_bar_is_cut_from_later_coverage(
    backend: Backend, spy: list[TradeBar]
) -> None:
    async with backend.make() as store:
        for index, bar in enumerate(spy[:10]):
            await store.save_market_data(replace(bar, revision=2**63) if index == 4 else bar)
        await store.record_coverage("", "SPY", "1m", spy[0].ts_event, spy[10].ts_event)
        with pytest.raises(StorageError):
            await store.flush()
        assert await store.get_coverage("", "SPY", "1m", 0, 2**62) == [
            (spy[0].ts_event, spy[4].ts_event, False),
            (spy[5].ts_event, spy[10].ts_event, False),
        ]


_HOSTILE_VALUES = st.sampled_from(
    [2**63, -(2**63) - 1, 2**200, math.nan, math.inf, None, "x\ud800", "\udcff", b"raw", [1]]
)
_FIELDS = st.sampled_from(
    ["symbol", "ts_event", "open", "high", "low", "close", "volume", "ts_recv", "closed",
     "revision", "backfilled"]
)  # fmt: skip


def _hostile(bad: list[tuple[int, str, object]]) -> list[MarketData]:
    items: list[MarketData] = list(spy_minutes()[:200])
    for index, field, value in bad:
        items[index] = replace(items[index], **{field: value})  # type: ignore[arg-type]
    return items


async def _store_hostile(store: Any, items: list[MarketData]) -> dict[str, Any]:
    async with store:
        for item in items:
            await store.save_market_data(item)
        with contextlib.suppress(StorageError):  # rejected rows are reported; fine here
            await store.flush()
        assert not writer_task().done()
        return dict(store.statistics())


_REPORTS = "SELECT COUNT(*) FROM errors WHERE kind = 'storage_rejected'"
_KEYS = "SELECT ts_event FROM bars WHERE symbol = 'SPY'"


@settings(max_examples=30, deadline=None)
@given(
    bad=st.lists(st.tuples(st.integers(0, 199), _FIELDS, _HOSTILE_VALUES), max_size=6),
    batch_rows=st.sampled_from([7, 64, 1000]),
)
def test_any_hostile_values_never_stop_the_writer_and_cost_only_their_rows(
    bad: list[tuple[int, str, object]], batch_rows: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "any.db"
        store = DataPersistence(db, batch_rows=batch_rows)
        stats = asyncio.run(_store_hostile(store, _hostile(bad)))
        reports = sqlite_rows(db, _REPORTS)
        keys = {ts for (ts,) in sqlite_rows(db, _KEYS)}
    _check_hostile(bad, stats, reports, keys)


@settings(max_examples=15, deadline=None)
@given(
    bad=st.lists(st.tuples(st.integers(0, 199), _FIELDS, _HOSTILE_VALUES), max_size=6),
    batch_rows=st.sampled_from([7, 64, 1000]),
)
def test_any_hostile_values_on_postgres_cost_only_their_rows(
    bad: list[tuple[int, str, object]], batch_rows: int
) -> None:
    async def run() -> tuple[dict[str, Any], list[tuple[Any, ...]], set[int]]:
        async with pg_schema() as pg:
            stats = await _store_hostile(pg.make(batch_rows=batch_rows), _hostile(bad))
            keys = {ts for (ts,) in await pg.rows(_KEYS)}
            return stats, await pg.rows(_REPORTS), keys

    _check_hostile(bad, *asyncio.run(run()))


def _check_hostile(
    bad: list[tuple[int, str, object]],
    stats: dict[str, Any],
    reports: list[tuple[Any, ...]],
    keys: set[int],
) -> None:
    spy = spy_minutes()[:200]
    assert stats["rows_lost"] == 0
    assert stats["rows_written"] + stats["rows_rejected"] == 200
    assert reports == [(stats["rows_rejected"],)]
    touched = {index for index, _, _ in bad}
    assert stats["rows_rejected"] <= len(touched)
    # every untouched bar is stored (a hostile symbol or open time only moves its own row)
    assert {b.ts_event for i, b in enumerate(spy) if i not in touched} <= keys


# ------------------------------------------------------------------ through the engine


def btc_perp(count: int) -> list[TradeBar]:
    series = [b for b in load_file(BTC_PERP, symbol="BTC-PERP") if isinstance(b, TradeBar)]
    return series[:count]


HOSTILE_ITEMS: dict[str, MarketData] = {
    "tick with a surrogate trade id": Tick(
        "ETH/USDT", 1_640_991_700 * 10**9, 3700.5, 2.0, trade_id="\ud800", ts_recv=NOW
    ),
    "tick with a NaN flag": Tick(
        "ETH/USDT",
        1_640_991_700 * 10**9,
        3700.5,
        2.0,
        suspicious=math.nan,  # type: ignore[arg-type]
        ts_recv=NOW,
    ),
    "tick of a huge size": Tick("ETH/USDT", 1_640_991_700 * 10**9, 3700.5, 2**64, ts_recv=NOW),
    "bar with a surrogate symbol": TradeBar(
        "ETH/USDT\ud800", 1_640_991_660 * 10**9, 3700.0, 3701.0, 3699.0, 3700.5, 12.0
    ),
    "bar opening at 2**63": TradeBar("BTC-PERP", 2**63, 3700.0, 3701.0, 3699.0, 3700.5, 12.0),
}
ENGINE_REJECTS = {
    "tick with a surrogate trade id": "text_encoding",
    "tick with a NaN flag": "null",
    "tick of a huge size": "",  # stored, as a float
    "bar with a surrogate symbol": "text_encoding",  # the bar and its coverage record
    "bar opening at 2**63": "int_range",
}
# A bar opening at 2**63 is screened INVALID before continuity sees it (its array('q') of
# open times cannot hold it); with store_invalid, storage rejects it alone.


@pytest.mark.parametrize("store_invalid", [True, False])
@pytest.mark.parametrize("case", sorted(HOSTILE_ITEMS))
async def test_engine_stores_every_other_item_and_stops_clean(
    backend: Backend, case: str, store_invalid: bool
) -> None:
    good = btc_perp(100)
    feed = ListFeed("ftx", {"BTC-PERP": [*good[:50], HOSTILE_ITEMS[case], *good[50:]]})
    engine = DataEngine(backend.config(store_invalid=store_invalid, cache_dir=None))
    engine.add_feed(feed)
    await engine.start()
    await engine.subscribe_symbol("BTC-PERP")
    await feed.wait_pumped()
    await engine.stop()  # drains what emit() accepted; the writer is alive and flushes
    assert engine.state is EngineState.CLOSED
    assert engine.persistence is not None
    storage = engine.persistence.statistics()
    count = "SELECT COUNT(*) FROM bars WHERE symbol = 'BTC-PERP'"
    assert await backend.rows(count) == [(100,)]
    assert storage["rows_lost"] == 0
    rejected = await backend.rows(_REPORTS)
    assert rejected == [(storage["rows_rejected"],)]
    kinds = {kind for (kind,) in await backend.rows("SELECT kind FROM errors")}
    assert "pipeline_error" not in kinds
    reason = ENGINE_REJECTS[case]
    if store_invalid:  # the item reached storage whatever the validator thinks of it
        assert set(storage["rejected"]) == ({reason} if reason else set())
        assert (storage["rows_rejected"] > 0) == bool(reason)
    else:  # unless the validator judged it INVALID, the item reached storage
        assert set(storage["rejected"]) <= {reason}
