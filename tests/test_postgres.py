"""PostgresStorage's own behaviour against a real PostgreSQL server (a fresh schema per test).

What both stores share runs on both (tests taking ``backend`` in test_persistence.py,
test_coverage.py, test_storage_hostile.py). Here: what only PostgreSQL has: monthly
partitions created ahead, retention that drops whole partitions, values PostgreSQL refuses
(NUL in text, a fraction in an integer column), a connection killed in the middle of a
batch (``pg_terminate_backend``), a network cut (a loopback proxy, tests/backends.py) with
the batch held until the connection returns or the queue fills, and settings. Bars are
the real FTX BTC-PERP minutes (tests/fixtures/nautilus_trader, 2021-12-31 23:01 ->
2022-02-01 05:31 UTC: three months of partitions).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lean_data.errors import ConfigError, StorageError
from lean_data.loaders import load_file
from lean_data.models import NS_PER_DAY, NS_PER_MINUTE, QuoteBar, Tick, TradeBar
from lean_data.storage import schema as sch
from lean_data.storage.failures import StorageFailure
from lean_data.storage.postgres import PostgresStorage, records
from lean_data.storage.postgres.partitions import month_bounds, month_of
from lean_data.storage.sanitize import Unstorable
from lean_data.storage.sqlite import DataPersistence
from tests.backends import NO_DERIVATIVES, PG_URL, PgProxy, PostgresBackend, pg_connect
from tests.conftest import FIXTURES, eventually

M = NS_PER_MINUTE
CSV = FIXTURES / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"
NOW = 1_700_000_000 * 10**9
JANUARY = month_of(1_641_000_000 * 10**9)  # 2022-01


@pytest.fixture(scope="module")
def btc() -> list[TradeBar]:
    bars = [b for b in load_file(CSV, symbol="BTC-PERP") if isinstance(b, TradeBar)]
    assert len(bars) == 45_031
    return bars


def received(bars: list[TradeBar], ts_recv: int = NOW) -> list[TradeBar]:
    return [dataclasses.replace(b, ts_recv=ts_recv) for b in bars]


def month_start(month: int) -> int:
    return month_bounds(month)[0]


# ------------------------------------------------------------------ settings and opening


@pytest.mark.parametrize(
    ("settings", "word"),
    [({"schema": "bad-name"}, "schema"), ({"schema": ""}, "schema"),
     ({"pool_size": 0}, "pool_size"), ({"retries": -1}, "retries"),
     ({"batch_rows": 0}, "batch_rows"), ({"retry_backoff_s": 0.0}, "backoff")],
)  # fmt: skip
def test_invalid_settings_raise_config_error(settings: dict[str, Any], word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        PostgresStorage(PG_URL, **settings)


async def test_an_unreachable_server_is_refused_naming_the_url_but_not_its_password() -> None:
    store = PostgresStorage("postgresql://postgres:s3cret@127.0.0.1:1/test", connect_timeout_s=5)
    with pytest.raises(StorageError) as info:
        await store.open()
    message = str(info.value)
    assert message.startswith(
        "cannot open PostgreSQL database postgresql://postgres@127.0.0.1:1/test#lean_data: "
        "cannot connect"
    )
    assert "s3cret" not in message
    missing = PostgresStorage(PG_URL.rsplit("/", 1)[0] + "/lean_no_such_database")
    with pytest.raises(StorageError, match="no such database"):
        await missing.open()


async def test_the_schema_and_its_tables_are_created_with_their_partitioning(
    pg: PostgresBackend,
) -> None:
    async with pg.make():
        pass
    tables = await pg.rows(
        "SELECT c.relname, c.relkind::text FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = ? AND c.relkind IN ('r', 'p') "
        "ORDER BY c.relname",
        pg.schema,
    )
    assert tables == [
        ("bar_rollups", "r"), ("bar_series", "r"), ("bars", "p"), ("book_snapshots", "r"),
        ("coverage", "r"),
        ("errors", "r"), ("funding_rates", "r"),
        ("lean_writers", "r"), ("liquidations", "r"), ("mark_prices", "r"), ("metrics", "r"),
        ("open_interest", "r"), ("quote_bars", "p"), ("schema_version", "r"),
        ("ticks", "p"),
    ]  # fmt: skip
    keys = await pg.rows(
        "SELECT pg_get_partkeydef(to_regclass(?)), pg_get_constraintdef(oid) "
        "FROM pg_constraint WHERE conrelid = to_regclass(?) AND contype = 'p'",
        f'"{pg.schema}".bars',
        f'"{pg.schema}".bars',
    )
    assert keys == [("RANGE (ts_event)", "PRIMARY KEY (symbol, resolution, ts_event, feed)")]
    assert await pg.partitions("bars") == []  # created when rows need them


# ------------------------------------------------------------------ partitions


async def test_partitions_are_created_ahead_across_a_month_boundary(
    pg: PostgresBackend, btc: list[TradeBar]
) -> None:
    december = [b for b in btc if month_of(b.ts_event) == JANUARY - 1]
    january = [b for b in btc if month_of(b.ts_event) == JANUARY]
    february = [b for b in btc if month_of(b.ts_event) == JANUARY + 1]
    assert (len(december), len(january), len(february)) == (59, 44_640, 332)
    async with pg.make(batch_rows=100_000, batch_ms=60_000, clock_ns=lambda: NOW) as store:
        for bar in december:
            await store.save_market_data(bar, feed="ftx")
        await store.flush()
        # December's rows need December; January is created ahead, before a bar needs it
        assert await pg.partitions("bars") == ["bars_p202112", "bars_p202201"]
        assert await pg.partitions("ticks") == []  # no ticks yet: no partitions
        for bar in january[:-1]:
            await store.save_market_data(bar, feed="ftx")
        await store.flush()
        assert await pg.partitions("bars") == ["bars_p202112", "bars_p202201", "bars_p202202"]
        # one batch across the boundary: the last January minute and all of February
        for bar in [january[-1], *february]:
            await store.save_market_data(bar, feed="ftx")
        await store.save_market_data(Tick("BTC-PERP", february[0].ts_event, 1.0, 2.0), feed="t")
        await store.flush()
        assert await pg.partitions("bars") == [
            "bars_p202112", "bars_p202201", "bars_p202202", "bars_p202203"
        ]  # fmt: skip
        assert await pg.partitions("ticks") == ["ticks_p202202", "ticks_p202203"]
        stored = await store.get_market_data("BTC-PERP", btc[0].ts_event, btc[-1].ts_event + 1)
        assert stored == received(btc)
        assert store.statistics()["write_failures"] == 0
    where = await pg.rows(
        "SELECT tableoid::regclass::text, COUNT(*), MIN(ts_event), MAX(ts_event) FROM bars "
        "GROUP BY 1 ORDER BY 1"
    )
    assert [(name.split(".")[-1], n) for name, n, _, _ in where] == [
        ("bars_p202112", 59), ("bars_p202201", 44_640), ("bars_p202202", 332)
    ]  # fmt: skip
    for name, _, first, last in where:  # each row in the partition of its month
        assert month_of(first) == month_of(last)
        assert name.split(".")[-1] == time.strftime("bars_p%Y%m", time.gmtime(first // 10**9))
    bounds = await pg.rows(
        "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c WHERE c.oid = to_regclass(?)",
        f'"{pg.schema}".bars_p202201',
    )
    start, end = month_bounds(JANUARY)
    assert bounds == [(f"FOR VALUES FROM ('{start}') TO ('{end}')",)]


async def test_a_partition_another_process_dropped_is_created_again(
    pg: PostgresBackend, btc: list[TradeBar]
) -> None:
    async with pg.make(clock_ns=lambda: NOW) as writer, pg.make(clock_ns=lambda: NOW) as other:
        await writer.save_market_data(btc[0], feed="ftx")  # December, received at NOW
        await writer.flush()
        await pg.execute("DROP TABLE bars_p202112")  # as a retention of another process
        await writer.save_market_data(btc[1], feed="ftx")  # the writer thinks it exists
        await writer.flush()
        assert await other.get_market_data("BTC-PERP", 0, 2**62) == received(btc[1:2])
        assert writer.statistics()["write_failures"] == 1  # the attempt that found no partition
        assert writer.failure is None


# ------------------------------------------------------------------ retention


async def test_retention_drops_old_partitions_and_nothing_else(
    pg: PostgresBackend, btc: list[TradeBar], tmp_path: Any
) -> None:
    """The rows deleted are the receive-time rule's (SQLite's, checked side by side);
    partitions entirely older than the cutoff whose rows were all received before it go
    whole, with their rows counted."""
    cutoff = btc[20_000].ts_event  # mid-January
    now = cutoff + 2 * NS_PER_DAY
    items: list[tuple[Any, str]] = []
    for bar in btc[::10]:  # received a second after it closed: live data
        items.append((dataclasses.replace(bar, ts_recv=bar.ts_event + 61 * 10**9), "ftx"))
    for bar in btc[:59:3]:  # December quotes, one of them backfilled just now
        quote = QuoteBar("BTC-PERP", bar.ts_event, *(bar.close,) * 10, ts_recv=bar.ts_event + 1)
        items.append((quote, "quotes"))
    items.append((dataclasses.replace(items[-1][0], ts_event=btc[1].ts_event, ts_recv=now), "q2"))
    november = btc[0].ts_event - 40 * NS_PER_DAY
    for i in range(50):  # November ticks, received long ago
        items.append((Tick("BTC-PERP", november + i * M, 1.0, 2.0, ts_recv=november + i * M), ""))
    stores = (
        pg.make(clock_ns=lambda: now),
        DataPersistence(tmp_path / "x.db", clock_ns=lambda: now),
    )
    answers = []
    for store in stores:
        async with store:
            for item, feed in items:
                await store.save_market_data(item, feed=feed)
            await store.record_coverage("ftx", "BTC-PERP", "1m", btc[0].ts_event, btc[-1].ts_event)
            await store.save_metrics({"old": True}, ts_ns=cutoff - 1)
            await store.save_error("old", "gone", ts_ns=cutoff - 1)
            await store.save_error("new", "kept", ts_ns=cutoff)
            await store.flush()
            if isinstance(store, PostgresStorage):
                assert await pg.partitions("ticks") == ["ticks_p202111", "ticks_p202112"]
                assert len(await pg.partitions("bars")) == 4
            deleted = await store.apply_retention(days=2)
            answers.append((
                deleted,
                await store.get_market_data("BTC-PERP", 0, 2**62),
                await store.get_quote_bars("BTC-PERP", 0, 2**62),
                await store.get_ticks("BTC-PERP", 0, 2**62),
                await store.get_coverage("ftx", "BTC-PERP", "1m", 0, 2**62),
                await store.get_errors(),
                await store.get_metrics_history(hours=10**6),
                await store.bar_series_keys(),
            ))  # fmt: skip
    assert answers[0] == answers[1]  # PostgreSQL deletes what SQLite deletes
    deleted, bars = answers[0][0], answers[0][1]
    assert deleted == {"bars": 2_000, "quote_bars": 20, "ticks": 50, "metrics": 1, "errors": 1,
                       **NO_DERIVATIVES}  # fmt: skip
    assert bars == [b for b, _ in items[: len(btc[::10])] if b.ts_recv >= cutoff]
    assert answers[0][4] == [(btc[19_990].ts_event + M, btc[-1].ts_event, False)]
    # whole partitions went: November's ticks and December's bars; December's quotes stay
    # (a row in it was received after the cutoff), and so do January's and later months'
    assert await pg.partitions("ticks") == []  # December's was empty: it went too
    assert await pg.partitions("bars") == ["bars_p202201", "bars_p202202", "bars_p202203"]
    assert await pg.partitions("quote_bars") == ["quote_bars_p202112", "quote_bars_p202201"]
    assert await pg.rows("SELECT COUNT(*) FROM quote_bars") == [(1,)]
    async with pg.make(clock_ns=lambda: now) as again:  # December bars can come back
        await again.save_market_data(btc[0], feed="ftx")
        assert await again.count("bars") == len(btc[::10]) - 2_000 + 1


# ------------------------------------------------------------------ values PostgreSQL refuses


async def test_nul_characters_and_fractions_are_rejected_alone(
    pg: PostgresBackend, btc: list[TradeBar]
) -> None:
    bars = received(btc[:100])
    hostile = {
        10: dataclasses.replace(bars[10], symbol="BTC\x00PERP"),  # text_encoding
        20: dataclasses.replace(bars[20], revision=1.5),  # type: ignore[arg-type]  # type
        30: dataclasses.replace(bars[30], ts_recv=float(NOW)),  # type: ignore[arg-type]  # kept
        40: dataclasses.replace(bars[40], closed=1),  # kept, as True
    }
    async with pg.make(clock_ns=lambda: NOW) as store:
        for i, bar in enumerate(bars):
            await store.save_market_data(hostile.get(i, bar), feed="ftx")
        await store.save_market_data(Tick("BTC-PERP", bars[0].ts_event, 1.0, 2.0, trade_id="a\x00"))
        await store.save_error("feed\x00", "a NUL\x00 in a message", symbol="\x00")
        await store.record_coverage("f\x00", "BTC-PERP", "1m", 0, 1)
        with pytest.raises(StorageError, match=r"^4 queued rows could not be stored"):
            await store.flush()
        assert store.statistics()["rejected"] == {"text_encoding": 3, "type": 1}
        stored = await store.get_market_data("BTC-PERP", 0, 2**62)
        assert stored == [b for i, b in enumerate(bars) if i not in (10, 20)]
        errors = await store.get_errors()
    mine = [e for e in errors if e["kind"] != "storage_rejected"]
    assert mine == [{"ts_ns": NOW, "kind": "feed\\x00", "feed": "", "symbol": "\\x00",
                     "message": "a NUL\\x00 in a message", "detail": ""}]  # fmt: skip
    reports = sorted(e["message"] for e in errors if e["kind"] == "storage_rejected")
    assert reports == [
        "bars row not stored (text_encoding): symbol = 'BTC\\x00PERP': NUL, which "
        "PostgreSQL text cannot hold",
        "bars row not stored (type): revision = 1.5: a fraction in an integer column",
        "coverage row not stored (text_encoding): feed = 'f\\x00': NUL, which PostgreSQL "
        "text cannot hold",
        "ticks row not stored (text_encoding): trade_id = 'a\\x00': NUL, which PostgreSQL "
        "text cannot hold",
    ]
    assert await pg.rows(
        "SELECT closed, ts_recv FROM bars WHERE ts_event = ?", bars[40].ts_event
    ) == [(True, NOW)]


async def test_a_row_the_server_refuses_is_found_by_bisection_and_rejected_alone(
    pg: PostgresBackend, btc: list[TradeBar]
) -> None:
    bars = received(btc[:200])
    async with pg.make(batch_rows=1_000, clock_ns=lambda: NOW) as store:
        await store.save_market_data(bars[0], feed="ftx")
        await store.flush()
        # a rule of the database's own (it reaches every partition)
        await pg.execute("ALTER TABLE bars ADD CONSTRAINT sane_volume CHECK (volume < 1e12)")
        bad = {
            57: dataclasses.replace(bars[57], volume=1e13),
            133: dataclasses.replace(bars[133], volume=2e12),
        }
        for i, bar in enumerate(bars[1:], 1):
            await store.save_market_data(bad.get(i, bar), feed="ftx")
        with pytest.raises(StorageError, match=r"^2 queued rows could not be stored"):
            await store.flush()
        assert store.statistics()["rejected"] == {"postgres": 2}
        stored = await store.get_market_data("BTC-PERP", 0, 2**62)
        assert stored == [b for i, b in enumerate(bars) if i not in bad]
        reports = [e["message"] for e in await store.get_errors(kind="storage_rejected")]
    assert len(reports) == 2
    assert all(m.startswith("bars row not stored (postgres): row = (") for m in reports)
    assert all('violates check constraint "sane_volume"' in m for m in reports)


async def test_new_keys_go_straight_in_and_a_stored_key_falls_back_to_the_upsert(
    pg: PostgresBackend, btc: list[TradeBar]
) -> None:
    bars = received(btc[:300])
    revised = [dataclasses.replace(b, close=b.close + 1.0, revision=1) for b in bars[100:150]]
    stale = [dataclasses.replace(b, close=-1.0) for b in bars[120:130]]  # revision 0: loses
    async with pg.make(batch_rows=100) as store:
        for bar in bars[:200]:
            await store.save_market_data(bar, feed="ftx")
        await store.flush()
        assert store.copy_status["bars"] == {"copied": 2, "conflicts": 0}

        for bar in revised:  # every key stored: the COPY is refused, the upsert replaces
            await store.save_market_data(bar, feed="ftx")
        await store.flush()
        assert store.copy_status["bars"] == {"copied": 2, "conflicts": 1}
        for bar in stale:  # staged at once after the conflict; the older revision loses
            await store.save_market_data(bar, feed="ftx")
        await store.flush()
        assert store.copy_status["bars"] == {"copied": 2, "conflicts": 1}

        for bar in bars[200:250]:  # new keys again: straight in
            await store.save_market_data(bar, feed="ftx")
        await store.flush()
        assert store.copy_status["bars"] == {"copied": 3, "conflicts": 1}

        # one key twice in one batch (a bar, then its revision): the COPY is refused, the
        # upsert keeps the higher revision
        twice = [*bars[250:300], dataclasses.replace(bars[260], volume=7.0, revision=2)]
        for bar in twice:
            await store.save_market_data(bar, feed="ftx")
        await store.flush()
        assert store.copy_status["bars"] == {"copied": 3, "conflicts": 2}

        stored = await store.get_market_data("BTC-PERP", 0, 2**62)
        expected = bars[:100] + revised + bars[150:260] + [twice[-1]] + bars[261:300]
        assert stored == expected
        assert store.statistics()["rows_written"] == 300 + 50 + 10 + 1
    assert await pg.rows("SELECT count(*) FROM bars") == [(300,)]


async def test_after_a_conflict_straight_copies_wait_twice_as_long_until_one_succeeds(
    pg: PostgresBackend, btc: list[TradeBar]
) -> None:
    from lean_data.storage.postgres.sink import DirectCopy
    from lean_data.storage.rows import bar_row

    bars = received(btc[:20])
    async with pg.make() as store:  # the tables, January's partition and one stored bar
        await store.save_market_data(bars[0], feed="ftx")
    direct = DirectCopy(sch.BARS)
    tries: list[int] = []

    async def write(index: int, bar: TradeBar) -> bool:
        before = sum(direct.counts().values())
        async with pg.conn.transaction():
            done = await direct.write(
                pg.conn, pg.schema, [records.to_record(sch.BARS, bar_row(bar, "ftx", None, NOW))]
            )
        if sum(direct.counts().values()) > before:
            tries.append(index)
        return done

    assert [await write(i, bars[0]) for i in range(12)] == [False] * 12  # a stored key
    assert tries == [0, 2, 5, 10]  # staged 1, 2, 4 (then 8) writes after each conflict
    new = [await write(12 + i, bar) for i, bar in enumerate(bars[1:11])]  # new keys
    assert new == [False] * 7 + [True] * 3
    assert tries[4:] == [19, 20, 21]  # after a success, every write tries again
    assert direct.counts() == {"copied": 3, "conflicts": 4}
    stored = await pg.rows("SELECT ts_event FROM bars ORDER BY ts_event")
    assert stored == [(b.ts_event,) for b in (bars[0], *bars[8:11])]  # nothing of a refusal


async def test_nan_reads_back_as_nan_and_null_as_in_sqlite(pg: PostgresBackend) -> None:
    bar = TradeBar("X", 60 * 10**9, math.nan, 1.0, math.inf, -math.inf, math.nan, ts_recv=NOW)
    async with pg.make() as store:
        await store.save_market_data(bar)
        (got,) = await store.get_market_data("X", 0, 2**62)
    assert [math.isnan(got.open), got.low, got.close, math.isnan(got.volume)] == [
        True, math.inf, -math.inf, True
    ]  # fmt: skip
    assert await pg.rows("SELECT open, low, volume FROM bars") == [(None, math.inf, None)]


# ------------------------------------------------------------------ connections that die


async def _writer_backend(schema: str) -> int:
    """The pid of this schema's store connection that waits for a lock."""
    conn = await pg_connect()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pid = await conn.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1 "
                "AND wait_event_type = 'Lock'",
                f"lean_data:{schema}",
            )
            if pid is not None:
                return int(pid)
            await asyncio.sleep(0.01)
        pytest.fail("the writer never waited for the lock")
    finally:
        await conn.close()


async def test_a_connection_killed_mid_batch_lands_the_batch_exactly_once(
    pg: PostgresBackend, btc: list[TradeBar]
) -> None:
    bars = btc[:5_000]
    ticks = [
        Tick("BTC-PERP", b.ts_event, b.close, 1.0, trade_id=str(i)) for i, b in enumerate(bars)
    ]
    store = pg.make(batch_rows=100_000, batch_ms=60_000, retry_backoff_s=0.01)
    async with store:
        await store.save_market_data(btc[0], feed="warm")  # creates the tables' partitions
        await store.flush()
        killer = await pg_connect()
        try:
            # hold bar_series: the batch (bars upserted, ticks appended) waits for it
            await killer.execute(f'BEGIN; LOCK TABLE "{pg.schema}".bar_series IN EXCLUSIVE MODE')
            for bar, tick in zip(bars, ticks, strict=True):
                await store.save_market_data(bar, feed="ftx")
                await store.save_market_data(tick, feed="ftx")
            await store.record_coverage(
                "ftx", "BTC-PERP", "1m", bars[0].ts_event, bars[-1].ts_event
            )
            flushing = asyncio.create_task(store.flush())
            pid = await _writer_backend(pg.schema)
            assert await killer.fetchval("SELECT pg_terminate_backend($1)", pid) is True
            await eventually(lambda: store.statistics()["write_failures"] == 1)
            await killer.execute("ROLLBACK")  # the retry, on a fresh connection, goes through
        finally:
            await killer.close()
        await flushing
        stats = store.statistics()
        assert (stats["rows_lost"], stats["rows_written"], store.failure) == (0, 10_002, None)
    count = "SELECT COUNT(*), COUNT(DISTINCT trade_id) FROM ticks"
    assert await pg.rows(count) == [(5_000, 5_000)]  # appended once, not twice
    assert await pg.rows("SELECT COUNT(*) FROM bars WHERE feed = 'ftx'") == [(5_000,)]
    assert await pg.rows("SELECT start_ns, end_ns FROM coverage WHERE feed = 'ftx'") == [
        (bars[0].ts_event, bars[-1].ts_event)
    ]


async def test_a_batch_is_held_through_a_network_cut_and_lands_when_it_returns(
    pg: PostgresBackend, btc: list[TradeBar], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with PgProxy() as proxy:
        store = PostgresStorage(
            proxy.url, schema=pg.schema, batch_rows=50, retries=2,
            retry_backoff_s=0.01, retry_backoff_cap_s=0.05,
        )  # fmt: skip
        async with store:
            for bar in btc[:50]:
                await store.save_market_data(bar, feed="ftx")
            await store.flush()
            proxy.cut()
            for bar in btc[50:100]:
                await store.save_market_data(bar, feed="ftx")
            flushing = asyncio.create_task(store.flush())
            # retried twice with backoff, then held (the queue has room): nothing is lost
            await eventually(lambda: store.statistics()["write_failures"] >= 5)
            assert not flushing.done()
            assert (store.failure, store.statistics()["rows_lost"]) == (None, 0)
            proxy.restore()
            await flushing
            assert await store.count("bars") == 100
    assert await pg.rows("SELECT COUNT(*), COUNT(DISTINCT ts_event) FROM bars") == [(100, 100)]
    # the outage is told in one line per retry, never as a traceback (asyncpg's pool
    # logged one every few seconds while it tried to restore a connection floor)
    assert [r.name for r in caplog.records if r.exc_info] == []
    assert any("retrying" in r.getMessage() for r in caplog.records)


async def test_a_held_batch_is_lost_once_the_queue_fills_and_storage_degrades(
    pg: PostgresBackend, btc: list[TradeBar]
) -> None:
    seen: list[StorageFailure] = []
    async with PgProxy() as proxy:
        store = PostgresStorage(
            proxy.url, schema=pg.schema, batch_rows=20, queue_size=40, retries=1,
            retry_backoff_s=0.01, retry_backoff_cap_s=0.05, on_failure=seen.append,
        )  # fmt: skip
        async with store:
            await store.save_market_data(btc[0], feed="ftx")
            await store.flush()
            proxy.cut()
            for bar in btc[1:21]:  # one batch, taken by the writer and held
                await store.save_market_data(bar, feed="ftx")
            await eventually(lambda: store.statistics()["write_failures"] >= 3)
            queued = 21
            while store.save_market_data_nowait(btc[queued], feed="ftx"):  # fill the queue
                queued += 1
            assert queued == 61
            await eventually(lambda: store.failure is not None)  # the held batch gave way
            assert [(f.kind, f.rows_lost) for f in seen] == [("connection", 20)]
            proxy.restore()
            await store.flush()  # the rows queued since are stored (the loss was before)
            assert store.statistics()["rows_lost"] == 20
            stored = await store.get_market_data("BTC-PERP", 0, 2**62)
            assert [b.ts_event for b in stored] == [btc[0].ts_event] + [
                b.ts_event for b in btc[21:61]
            ]
    reports = await pg.rows("SELECT message FROM errors WHERE kind = 'storage_failed'")
    assert [m.split(" (")[0] for (m,) in reports] == ["20 rows were not stored"]


async def test_close_during_a_network_cut_returns_and_counts_the_rows_lost(
    pg: PostgresBackend, btc: list[TradeBar]
) -> None:
    async with PgProxy() as proxy:
        store = PostgresStorage(
            proxy.url, schema=pg.schema, batch_rows=10, retries=1,
            retry_backoff_s=0.01, retry_backoff_cap_s=0.05, connect_timeout_s=2,
        )  # fmt: skip
        await store.open()
        proxy.cut()
        for bar in btc[:30]:
            await store.save_market_data(bar, feed="ftx")
        started = time.monotonic()
        await store.close()
        assert time.monotonic() - started < 10
        failure = store.failure
        assert failure is not None
        assert (failure.kind, failure.rows_lost) == ("connection", 30)


def test_a_commit_in_doubt_is_a_transient_fault() -> None:
    from lean_data.storage.postgres.records import failure_kind, is_row_error, is_transient
    from lean_data.storage.sink import CommitInDoubt

    terminated = asyncpg.exceptions.AdminShutdownError("terminating connection")
    for exc in (CommitInDoubt("lost"), terminated, ConnectionResetError(), TimeoutError()):
        assert (is_transient(exc), is_row_error(exc), failure_kind(exc)) == (
            True, False, "connection"
        )  # fmt: skip
    deadlock = asyncpg.exceptions.DeadlockDetectedError("deadlock detected")
    assert (is_transient(deadlock), failure_kind(deadlock)) == (True, "locked")
    nul = asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence")
    assert (is_transient(nul), is_row_error(nul)) == (False, True)


_PLAIN = (
    "ftx", "BTC-PERP", "1m", 1_641_000_000 * 10**9, 47_000.5, 47_010.0, 46_990.0, 47_005.0,
    12.5, True, 0, False, 1.0, "GOOD", "", 1_641_000_060 * 10**9,
)  # fmt: skip
_ODD = (
    st.sampled_from([math.nan, math.inf, 2**63, -(2**63) - 1, 1.5, 2.0, 1, 0, None, "\x00"])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(-(2**64), 2**64)
    | st.booleans()
    | st.none()
    | st.text(alphabet=st.sampled_from("ab/:\x00é"), max_size=4)
)


_ODD_VALUES = (math.nan, math.inf, 2**63, -(2**63) - 1, 1.5, 2.0, 1, 0, None, "\x00", "a", True)


@pytest.mark.parametrize("column", range(len(_PLAIN)))
def test_the_plain_bar_fast_path_answers_as_the_full_walk_for_each_odd_value(
    column: int,
) -> None:
    """``to_record`` skips the column walk for a plain bar: same answer, same refusals."""
    for value in _ODD_VALUES:
        check_fast_path([(column, value)])


@given(st.lists(st.tuples(st.integers(0, len(_PLAIN) - 1), _ODD), max_size=3))
def test_the_plain_bar_fast_path_answers_as_the_full_walk(
    changes: list[tuple[int, Any]],
) -> None:
    """The same, whatever odd values replace a few columns of a real-looking bar row."""
    check_fast_path(changes)


def check_fast_path(changes: list[tuple[int, Any]]) -> None:
    values = list(_PLAIN)
    for i, value in changes:
        values[i] = value
    row = tuple(values)
    try:
        expected: Any = records.convert(sch.BARS, row)
    except Unstorable as exc:
        expected = (exc.reason, exc.column)
    try:
        got: Any = records.to_record(sch.BARS, row)
    except Unstorable as exc:
        got = (exc.reason, exc.column)
    assert got == expected


# ------------------------------------------------------------------ TimescaleDB


async def test_the_layout_is_reported_at_open_native_partitions_without_timescaledb(
    pg: PostgresBackend, caplog: pytest.LogCaptureFixture
) -> None:
    offered = await pg.rows("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    caplog.set_level("INFO", logger="lean_data.storage.postgres")
    async with pg.make(timescaledb=not offered) as store:
        assert store.timescaledb_version is None
    said = [r.getMessage() for r in caplog.records if "monthly partitions" in r.getMessage()]
    assert len(said) == 1
    assert (
        ("TimescaleDB" in said[0] and "not used" in said[0])
        if offered
        else ("the server has no TimescaleDB" in said[0])
    )


async def test_timescaledb_hypertables_when_the_server_has_them(
    pg: PostgresBackend, btc: list[TradeBar]
) -> None:
    offered = await pg.rows(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
    )
    if not offered:
        pytest.skip(
            "the timescaledb extension is not available on this PostgreSQL server: "
            "the native partitioning path is the one tested here"
        )
    async with pg.make() as store:
        assert store.timescaledb_version is not None
        tables = await pg.rows(
            "SELECT hypertable_name FROM timescaledb_information.hypertables "
            "WHERE hypertable_schema = ? ORDER BY 1",
            pg.schema,
        )
        assert tables == [("bars",), ("quote_bars",), ("ticks",)]
        assert await pg.partitions("bars") != []  # TimescaleDB's chunks, not ours
        for bar in received(btc):
            await store.save_market_data(bar, feed="ftx")
        await store.flush()
        assert await store.count("bars") == len(btc)
        stored = await store.get_market_data("BTC-PERP", btc[0].ts_event, btc[-1].ts_event + 1)
        assert stored == received(btc)
        revised = dataclasses.replace(received(btc)[5], close=1.0, low=1.0, revision=1)
        await store.save_market_data(revised, feed="ftx")
        days = await store.get_rollups("BTC-PERP", "1d", 0, 2**62)
        assert len(days) == 33
        assert (await store.last_bar("ftx", "BTC-PERP", "1m")) == received(btc)[-1]
        deleted = await store.apply_retention(1)  # every row was received long ago
        assert deleted["bars"] == len(btc)
        assert await store.count("bars") == 0
