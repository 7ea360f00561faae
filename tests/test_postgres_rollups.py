"""PostgreSQL's rollups (5m / 15m / 1h / 1d from the stored minutes) on real data.

The rule is ``DataTransformer.resample_bars`` of the stored 1-minute bars of each feed;
after every flush the rollup table must equal it exactly (every field, ``closed`` included),
whatever order the minutes came in and after late revisions. Bars: the real FTX BTC-PERP
minutes (tests/fixtures/nautilus_trader, 45,031 bars over 2021-12-31 .. 2022-02-01).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lean_data.analytics.transform import DataTransformer
from lean_data.errors import ConfigError
from lean_data.loaders import load_file
from lean_data.models import NS_PER_DAY, NS_PER_MINUTE, TradeBar
from lean_data.storage.postgres import PostgresStorage
from tests.backends import PostgresBackend
from tests.conftest import FIXTURES, eventually

CSV = FIXTURES / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"
TARGETS = ("5m", "15m", "1h", "1d")
NOW = 1_700_000_000 * 10**9
EVER = (0, 2**62)


@pytest.fixture(scope="module")
def btc() -> list[TradeBar]:
    bars = [b for b in load_file(CSV, symbol="BTC-PERP") if isinstance(b, TradeBar)]
    assert len(bars) == 45_031
    return [dataclasses.replace(b, ts_recv=NOW) for b in bars]


async def save(store: PostgresStorage, bars: list[TradeBar], feed: str = "ftx") -> None:
    for bar in bars:
        await store.save_market_data(bar, feed=feed)
    await store.flush()


async def assert_rollups_resample_the_stored_minutes(
    store: PostgresStorage, feed: str = "ftx"
) -> int:
    minutes = await store.get_market_data("BTC-PERP", *EVER, resolution="1m", feed=feed)
    checked = 0
    for target in TARGETS:
        expected = DataTransformer.resample_bars(minutes, target)
        got = await store.get_rollups("BTC-PERP", target, *EVER, feed=feed)
        assert len(got) == len(expected), target
        for mine, theirs in zip(got, expected, strict=True):
            assert mine == theirs, target
        checked += len(got)
    return checked


async def test_rollups_equal_resample_bars_of_the_stored_minutes(
    pg: PostgresBackend, btc: list[TradeBar]
) -> None:
    async with pg.make() as store:
        assert [str(r) for r in store.rollups] == list(TARGETS)
        await save(store, btc)
        checked = await assert_rollups_resample_the_stored_minutes(store)
        days = await store.get_rollups("BTC-PERP", "1d", *EVER)
        assert [d.closed for d in days] == [True] * 32 + [False]  # the last day is partial
    rows = await pg.rows("SELECT count(*) FROM bar_rollups")
    assert rows == [(checked,)]


async def test_the_writer_refreshes_rollups_once_its_queue_is_empty(
    pg: PostgresBackend, btc: list[TradeBar]
) -> None:
    async with pg.make(batch_rows=500) as store:
        await save(store, btc[:3_000])  # flushed: the writer was idle after the last batch
        assert store.rollup_status == {
            "resolutions": list(TARGETS), "pending_series": 0, "failures": 0,
            "worker_refreshes": 1, "worker_failures": 0,  # 50 hours: the worker's
        }  # fmt: skip
        seen = await pg.rows("SELECT count(*) FROM bar_rollups WHERE resolution = '5m'")
        assert seen == [(601,)]  # read by another connection: committed (23:00 .. 09:00)


async def test_late_revisions_and_minutes_out_of_order_are_rolled_up_again(
    pg: PostgresBackend, btc: list[TradeBar]
) -> None:
    later, earlier = btc[20_000:], btc[:20_000]
    async with pg.make() as store:
        await save(store, later)  # the newer half first, then the older
        await save(store, earlier)
        await assert_rollups_resample_the_stored_minutes(store)
        # corrections of minutes on three different days, one of them the first
        revised = [
            dataclasses.replace(b, high=b.high * 1.01, close=b.high * 1.01, volume=b.volume + 7.5,
                                revision=1)
            for b in (btc[3], btc[17_000], btc[44_000])
        ]  # fmt: skip
        await save(store, revised)
        await assert_rollups_resample_the_stored_minutes(store)
        hour = await store.get_rollups(
            "BTC-PERP",
            "1h",
            btc[17_000].ts_event - btc[17_000].ts_event % 3_600_000_000_000,
            btc[17_000].ts_event + 1,
        )
        assert hour[0].high >= revised[1].high


async def test_a_day_whose_last_minute_is_missing_is_final_once_later_data_arrives(
    pg: PostgresBackend, btc: list[TradeBar]
) -> None:
    midnight = next(b.ts_event for b in btc if b.ts_event % NS_PER_DAY == 0 and b is not btc[0])
    before = [b for b in btc if b.ts_event < midnight - NS_PER_MINUTE]  # 23:59 is missing
    after = [b for b in btc if midnight <= b.ts_event < midnight + 2 * 3_600_000_000_000]
    async with pg.make() as store:
        await save(store, before)
        last_hour = (await store.get_rollups("BTC-PERP", "1h", midnight - 3_600_000_000_000,
                                             midnight))[0]  # fmt: skip
        assert not last_hour.closed  # the data does not reach its end (yet)
        await assert_rollups_resample_the_stored_minutes(store)
        await save(store, after)  # a separate batch, on the next day
        last_hour = (await store.get_rollups("BTC-PERP", "1h", midnight - 3_600_000_000_000,
                                             midnight))[0]  # fmt: skip
        assert last_hour.closed  # later data came: as resampling the whole series says
        await assert_rollups_resample_the_stored_minutes(store)


async def test_each_feed_has_its_own_rollups(pg: PostgresBackend, btc: list[TradeBar]) -> None:
    day = btc[:1_440]
    other = [dataclasses.replace(b, close=b.open, high=max(b.high, b.open)) for b in day[:700]]
    async with pg.make() as store:
        await save(store, day, feed="ftx")
        await save(store, other, feed="mirror")
        await assert_rollups_resample_the_stored_minutes(store, "ftx")
        await assert_rollups_resample_the_stored_minutes(store, "mirror")
        both = await store.get_rollups("BTC-PERP", "1d", *EVER)
        assert len(both) == 4  # each feed's two UTC days (the data starts at 23:01)


async def test_no_rollups_when_none_are_asked_for(pg: PostgresBackend, btc: list[TradeBar]) -> None:
    async with pg.make(rollups=()) as store:
        await save(store, btc[:500])
        assert await store.get_rollups("BTC-PERP", "5m", *EVER) == []


@pytest.mark.parametrize("bad", ["1m", "30s", "7m", "2d", "tick"])
def test_a_rollup_resolution_must_divide_a_day_and_be_coarser_than_a_minute(bad: str) -> None:
    with pytest.raises(ConfigError, match="rollup"):
        PostgresStorage("postgresql://x@127.0.0.1/none", rollups=(bad,))


async def test_writers_racing_on_one_series_leave_the_rollups_of_the_union(
    pg: PostgresBackend, btc: list[TradeBar]
) -> None:
    span = btc[:6_000]
    parts = [span[0:3_000], span[2_000:5_000], span[1_000:6_000]]  # overlapping
    parts[1] = [dataclasses.replace(b, close=b.low, revision=1) for b in parts[1]]
    stores = [pg.make(batch_rows=500) for _ in parts]
    for store in stores:
        await store.open()
    try:
        await asyncio.gather(*(save(s, p) for s, p in zip(stores, parts, strict=True)))
        await assert_rollups_resample_the_stored_minutes(stores[0])
        minutes = await stores[0].get_market_data("BTC-PERP", *EVER, resolution="1m")
        assert len(minutes) == 6_000
    finally:
        for store in stores:
            await store.close()


async def test_minutes_that_cannot_be_rolled_up_are_reported_and_spare_the_others(
    pg: PostgresBackend, btc: list[TradeBar]
) -> None:
    """A "1m" bar off the minute grid straddles a 5m bucket: resample_bars refuses it."""
    day = btc[:1_440]
    skewed = dataclasses.replace(day[103], ts_event=day[103].ts_event + 30 * 10**9)  # 00:44:30
    async with pg.make() as store:
        await save(store, day[:100], feed="odd")
        before = await store.get_rollups("BTC-PERP", "5m", *EVER, feed="odd")
        assert before == DataTransformer.resample_bars(day[:100], "5m")
        for bar in day:
            await store.save_market_data(bar, feed="ftx")
        await save(store, [skewed], feed="odd")  # in the same refresh as the ftx minutes
        await assert_rollups_resample_the_stored_minutes(store, "ftx")  # refreshed
        assert await store.get_rollups("BTC-PERP", "5m", *EVER, feed="odd") == before  # kept
        assert store.rollup_status["failures"] == 1
        errors = await store.get_errors(kind="rollup_failed")
        assert [(e["feed"], e["symbol"]) for e in errors] == [("odd", "BTC-PERP")]
        assert "straddles the bucket boundary" in errors[0]["message"]


@pytest.mark.parametrize("in_worker", [True, False], ids=["worker", "in_process"])
async def test_under_a_steady_load_the_rollups_refresh_while_batches_commit(
    pg: PostgresBackend, btc: list[TradeBar], monkeypatch: pytest.MonkeyPatch, in_worker: bool
) -> None:
    """A refresh in the background (in the worker process, or on a pooled connection): the
    writer commits batches meanwhile, and a reader (or close) right after still sees the
    rollups of every minute written."""
    from lean_data.storage.postgres.sink import PgSink

    spans: list[tuple[int, int]] = []  # the writer's batch count when each refresh began, ended
    refreshed = PgSink._refreshed

    async def watched(self: PgSink, pending: Any) -> Any:
        begun = store.statistics()["batches"]
        try:
            return await refreshed(self, pending)
        finally:
            spans.append((begun, store.statistics()["batches"]))

    monkeypatch.setattr(PgSink, "_refreshed", watched)
    store = pg.make(batch_rows=500, rollup_process=in_worker)
    async with store:
        for bar in btc:  # no flush until the end: the queue is never empty meanwhile
            await store.save_market_data(bar, feed="ftx")
        await assert_rollups_resample_the_stored_minutes(store)
        status = store.rollup_status
    assert any(end > begun for begun, end in spans), spans  # batches went on during one
    assert (status["worker_refreshes"] > 0) == in_worker
    assert status["worker_failures"] == 0
    async with pg.make() as again:  # what close left: rollups of every minute
        await assert_rollups_resample_the_stored_minutes(again)
        assert again.rollup_status["pending_series"] == 0


async def test_the_worker_process_ends_with_the_store(
    pg: PostgresBackend, btc: list[TradeBar]
) -> None:
    async with pg.make() as store:
        await save(store, btc[:3_000])  # 50 hours: refreshed by the worker
        worker = store._sink.worker
        assert worker is not None
        pid = worker.pid
        assert pid is not None
        assert store.rollup_status["worker_refreshes"] == 1
    assert store._sink.worker is None
    assert worker.pid is None
    with pytest.raises(ProcessLookupError):  # ended and reaped
        os.kill(pid, 0)


async def test_a_worker_refresh_cancelled_midway_stops_the_child_and_keeps_its_hours(
    pg: PostgresBackend, btc: list[TradeBar], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lean_data.storage.postgres.rollup_worker import RollupWorker

    asked = asyncio.Event()
    refresh = RollupWorker.refresh

    async def watched(self: RollupWorker, *args: Any) -> Any:
        asked.set()
        return await refresh(self, *args)

    monkeypatch.setattr(RollupWorker, "refresh", watched)
    hours = {b.ts_event - b.ts_event % 3_600_000_000_000 for b in btc[:3_000]}
    async with pg.make() as store:
        await save(store, btc[:3_000])  # refreshed by the worker
        worker = store._sink.worker
        assert worker is not None
        first = worker.pid
        asked.clear()
        store._sink.pending_rollups[("ftx", "BTC-PERP")] = set(hours)  # as if written again
        task = asyncio.get_running_loop().create_task(store._sink.refresh_rollups())
        await asked.wait()  # the request is with the child
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert worker.pid is None  # out of step with its answers: stopped
        assert store._sink.pending_rollups == {("ftx", "BTC-PERP"): hours}  # kept
        assert first is not None
        await eventually(lambda: not _exists(first))  # killed and reaped
    async with pg.make() as again:  # close refreshed them (in a new child)
        await assert_rollups_resample_the_stored_minutes(again)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_worker_whose_connection_died_postpones_its_hours_then_refreshes_them(
    pg: PostgresBackend, btc: list[TradeBar], caplog: pytest.LogCaptureFixture
) -> None:
    hours = {b.ts_event - b.ts_event % 3_600_000_000_000 for b in btc[:3_000]}
    async with pg.make() as store:
        await save(store, btc[:3_000])  # the worker connected and refreshed
        killed = await pg.rows(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ?",
            f"lean_data:{pg.schema}:rollups",
        )
        assert killed == [(True,)]
        store._sink.pending_rollups[("ftx", "BTC-PERP")] = set(hours)  # as if written again
        await store._sink.refresh_rollups()  # on the dead connection: postponed, not lost
        assert store._sink.pending_rollups == {("ftx", "BTC-PERP"): hours}
        assert "rollup refresh postponed: in the worker" in caplog.text
        await store._sink.refresh_rollups()  # the worker connects again
        assert store._sink.pending_rollups == {}
        assert store.rollup_status["worker_refreshes"] == 3
        assert store.rollup_status["failures"] == 0
        await assert_rollups_resample_the_stored_minutes(store)


def test_the_worker_imports_the_same_lean_data_as_its_parent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import lean_data
    from lean_data.storage.postgres.rollup_worker import _child_env

    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    first, rest = _child_env()["PYTHONPATH"].split(os.pathsep)
    assert (Path(first) / "lean_data" / "__init__.py").resolve() == Path(
        lean_data.__file__
    ).resolve()
    assert rest == "/elsewhere"  # the parent's own path comes after


@pytest.mark.parametrize(
    "command",
    [("/nonexistent/python",), (sys.executable, "-c", "import sys; sys.exit(3)"),
     (sys.executable, "-c", "import sys; sys.stdin.buffer.read(9); sys.stdout.write('junk')")],
    ids=["not_started", "ends_at_once", "answers_junk"],
)  # fmt: skip
async def test_a_worker_that_fails_is_counted_and_the_refresh_runs_here(
    pg: PostgresBackend,
    btc: list[TradeBar],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    command: tuple[str, ...],
) -> None:
    from lean_data.storage.postgres.rollup_worker import RollupWorker

    monkeypatch.setattr(RollupWorker, "COMMAND", command)
    async with pg.make() as store:
        await save(store, btc[:3_000])
        await save(store, btc[3_000:6_000])  # not tried again: refreshed here at once
        assert store.rollup_status["worker_failures"] == 1
        assert store.rollup_status["worker_refreshes"] == 0
        assert store.rollup_status["failures"] == 0
        await assert_rollups_resample_the_stored_minutes(store)
    assert caplog.text.count("the rollup worker is gone") == 1
    assert "refreshing the rollups in this process from now on" in caplog.text


async def test_a_live_minute_reads_back_its_hour_not_its_day(
    pg: PostgresBackend, btc: list[TradeBar], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The day's rollup is built from its hours and the exact parts of their volumes: a
    refresh after one more minute resamples that minute's hour, whatever the time of day."""
    from lean_data.storage.postgres import rollups

    read: list[int] = []
    copy_parts = rollups.copy_parts

    async def counted(*args: Any) -> list[list[TradeBar]]:
        parts = await copy_parts(*args)
        read.append(sum(map(len, parts)))
        return parts

    monkeypatch.setattr(rollups, "copy_parts", counted)
    day = [b for b in btc if b.ts_event >= btc[0].ts_event - btc[0].ts_event % NS_PER_DAY
           + NS_PER_DAY][:1_200]  # fmt: skip
    async with pg.make() as store:
        await save(store, day[:-1])  # 19:59 of the day's minutes
        read.clear()
        await save(store, day[-1:])  # one live minute, at 19:59
        assert sum(read) == 60  # its hour's minutes (19:00 .. 19:59), not the day's 1,200
        await assert_rollups_resample_the_stored_minutes(store)


async def test_an_hour_whose_high_is_nan_first_rolls_its_day_up_from_the_minutes(
    pg: PostgresBackend, btc: list[TradeBar]
) -> None:
    """resample_bars keeps a NaN first high and skips later NaN highs: an hour whose first
    minute has no high hides the hour's real high from a day built from hours."""
    day = [b for b in btc if b.ts_event >= btc[0].ts_event - btc[0].ts_event % NS_PER_DAY
           + NS_PER_DAY][:1_440]  # fmt: skip
    first = next(i for i, b in enumerate(day) if i > 100 and b.ts_event % (3_600 * 10**9) == 0)
    day[first] = dataclasses.replace(day[first], high=math.nan)  # an hour's first minute
    day[first + 10] = dataclasses.replace(day[first + 10], high=99_999.0)  # the day's high
    async with pg.make() as store:
        await save(store, day)
        minutes = await store.get_market_data("BTC-PERP", *EVER, resolution="1m")
        for target in TARGETS:  # NaN is not equal to itself: compared as text
            expected = DataTransformer.resample_bars(minutes, target)
            got = await store.get_rollups("BTC-PERP", target, *EVER)
            assert [repr(b) for b in got] == [repr(b) for b in expected], target
        (daily,) = await store.get_rollups("BTC-PERP", "1d", *EVER)
    assert daily.high == 99_999.0


async def test_a_day_whose_early_hours_have_no_rollups_yet_rolls_up_from_its_minutes(
    pg: PostgresBackend, btc: list[TradeBar]
) -> None:
    """A store that starts keeping 1h rollups on a day already half stored (its early hours
    have none): the day is resampled from its minutes, not from the hours it has."""
    day = [b for b in btc if b.ts_event >= btc[0].ts_event - btc[0].ts_event % NS_PER_DAY
           + NS_PER_DAY][:1_440]  # fmt: skip
    async with pg.make(rollups=("5m",)) as store:
        await save(store, day[:700])
    async with pg.make() as store:  # 5m, 15m, 1h and 1d from now on
        await save(store, day[700:])
        minutes = await store.get_market_data("BTC-PERP", *EVER, resolution="1m")
        assert await store.get_rollups("BTC-PERP", "1d", *EVER) == DataTransformer.resample_bars(
            minutes, "1d"
        )


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)


@given(
    st.lists(st.lists(finite | st.sampled_from([0.1, 1e-300, 3e16, -3e16, 5e-324])), max_size=30)
)
def test_the_exact_parts_of_hours_sum_to_the_fsum_of_all_their_volumes(
    hours: list[list[float]],
) -> None:
    from lean_data.storage.postgres.rollups import exact_parts

    parts = [exact_parts(volumes) for volumes in hours]
    assert all(p is not None and len(p) <= len(v) for p, v in zip(parts, hours, strict=True))
    joined = [x for p in parts if p is not None for x in p]
    assert math.fsum(joined) == math.fsum([v for volumes in hours for v in volumes])


@pytest.mark.parametrize("odd", [math.nan, math.inf, -math.inf, 2.0**1000, -1e308])
def test_an_hour_with_a_volume_not_finite_or_huge_has_no_exact_parts(odd: float) -> None:
    from lean_data.storage.postgres.rollups import exact_parts

    assert exact_parts([1.0, odd, 2.0]) is None
    assert exact_parts([]) == []
    assert exact_parts([0.1, 0.2, -0.3]) == [math.fsum([0.1, 0.2, -0.3])]  # not 0.0: exact


async def test_each_hour_keeps_the_exact_parts_of_its_minutes_volumes(
    pg: PostgresBackend, btc: list[TradeBar]
) -> None:
    hour = 3_600 * 10**9
    async with pg.make() as store:
        await save(store, btc[:3_000])
    volumes: dict[int, list[float]] = {}
    for bar in btc[:3_000]:
        volumes.setdefault(bar.ts_event - bar.ts_event % hour, []).append(bar.volume)
    stored = await pg.rows(
        "SELECT ts_event, volume_parts, volume FROM bar_rollups WHERE resolution = '1h' "
        "ORDER BY ts_event"
    )
    assert [ts for ts, _, _ in stored] == sorted(volumes)
    for ts, parts, volume in stored:
        assert parts is not None
        assert math.fsum(parts) == math.fsum(volumes[ts]) == volume
    others = await pg.rows("SELECT count(*) FROM bar_rollups WHERE volume_parts IS NOT NULL "
                           "AND resolution <> '1h'")  # fmt: skip
    assert others == [(0,)]


async def test_a_schema_of_version_1_gains_the_parts_and_its_days_roll_up_from_minutes(
    pg: PostgresBackend, btc: list[TradeBar]
) -> None:
    """Version 1 kept no volume parts: opened by this version, the column is added (NULL in
    the old rows), and a day whose hours have none is resampled from its minutes."""
    day = [b for b in btc if b.ts_event >= btc[0].ts_event - btc[0].ts_event % NS_PER_DAY
           + NS_PER_DAY][:1_440]  # fmt: skip
    async with pg.make() as store:
        await save(store, day[:700])
    await pg.execute("ALTER TABLE bar_rollups DROP COLUMN volume_parts")
    await pg.execute("UPDATE schema_version SET version = 1")
    async with pg.make() as store:  # migrated at open
        assert await pg.rows("SELECT version FROM schema_version") == [(4,)]
        assert await pg.rows("SELECT count(*) FROM bar_rollups WHERE volume_parts IS NULL") != [
            (0,)
        ]
        await save(store, day[700:])
        await assert_rollups_resample_the_stored_minutes(store)


async def test_a_refresh_cancelled_midway_leaves_its_hours_pending_for_close(
    pg: PostgresBackend, btc: list[TradeBar], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lean_data.storage.postgres import sink as pg_sink

    refresh = pg_sink.rollups.refresh
    entered = asyncio.Event()

    async def stuck(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await asyncio.Event().wait()  # until cancelled
        return await refresh(*args, **kwargs)

    day = btc[:1_440]
    hours = {b.ts_event - b.ts_event % 3_600_000_000_000 for b in day}
    async with pg.make() as store:
        await save(store, day)  # stored and rolled up
        await pg.conn.execute("DELETE FROM bar_rollups")  # stale now: to be refreshed
        store._sink.pending_rollups = {("ftx", "BTC-PERP"): set(hours)}
        monkeypatch.setattr(pg_sink.rollups, "refresh", stuck)
        task = asyncio.create_task(store._sink.refresh_rollups())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert store._sink.pending_rollups == {("ftx", "BTC-PERP"): hours}  # not dropped
        monkeypatch.setattr(pg_sink.rollups, "refresh", refresh)
        await assert_rollups_resample_the_stored_minutes(store)  # refreshed first
