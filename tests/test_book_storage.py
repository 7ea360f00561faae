"""Order-book snapshots in storage (both backends) and from the engine's book lane.

Real data: cryptofeed's recorded Binance USD-M session (tests/fixtures/cryptofeed/
BINANCE_FUTURES.ws.1.0, SUSHIUSDT ``depthUpdate`` frames) and its REST depth snapshot
(BINANCE_FUTURES.http.0.0); see tests/fixtures/PROVENANCE.md. The snapshots saved here are
the REST snapshot itself and pictures of the book an offline BookKeeper replay kept
(*derived*: the venue never sent them).
"""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
from pathlib import Path

import pytest

from lean_data import Config, DataEngine
from lean_data.book import OrderBookDelta, OrderBookSnapshot
from lean_data.depth import BookKeeper, OrderBook
from lean_data.depth.sequencers import BinanceFuturesSequencer
from lean_data.derivatives import FundingRate
from lean_data.models import NS_PER_DAY, TradeBar
from lean_data.storage.book_rows import decode_levels, encode_levels
from lean_data.storage.sqlite import DataPersistence
from tests.backends import Backend, PostgresBackend
from tests.test_engine_books import SYMBOL, DepthFeed, capture
from tests.test_schema_migration import V4_FILE

NOW = 1_700_000_000_000_000_000
FEED = "binance-futures"


def pictures(every: int = 25, depth: int = 20) -> list[OrderBookSnapshot]:
    """The REST snapshot (all its levels), then the top ``depth`` levels of the replayed
    book after every ``every``-th delta, received when that delta was."""
    snapshot, deltas = capture()
    keeper = BookKeeper(OrderBook(SYMBOL), BinanceFuturesSequencer())
    keeper.on_snapshot(snapshot)
    found = [snapshot]
    for index, delta in enumerate(deltas):
        keeper.on_delta(delta)
        book = keeper.book
        if index % every == every - 1 and book.valid:
            found.append(OrderBookSnapshot(SYMBOL, tuple(book.bids(depth)),
                                           tuple(book.asks(depth)), book.sequence,
                                           book.ts_event, delta.ts_recv))  # fmt: skip
    return found


def by_event(snapshots: list[OrderBookSnapshot]) -> list[OrderBookSnapshot]:
    return sorted(snapshots, key=lambda s: (s.ts_event, s.ts_recv))


def exact(got: list[OrderBookSnapshot], want: list[OrderBookSnapshot]) -> None:
    """Equal field by field, every float to the last bit (as IEEE bytes)."""
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert type(a) is OrderBookSnapshot
        assert (a.symbol, a.sequence, a.ts_event, a.ts_recv) == (
            b.symbol, b.sequence, b.ts_event, b.ts_recv,
        )  # fmt: skip
        assert encode_levels(a.bids) == encode_levels(b.bids)
        assert encode_levels(a.asks) == encode_levels(b.asks)
        assert a == b


def test_levels_encode_exactly_as_float64_pairs() -> None:
    snapshot = capture()[0]
    blob = encode_levels(snapshot.bids)
    assert len(blob) == 16 * len(snapshot.bids)
    assert decode_levels(blob) == snapshot.bids
    awkward = ((0.1 + 0.2, 5e-324), (1.7976931348623157e308, -0.0))
    assert [tuple(map(float.hex, lv)) for lv in decode_levels(encode_levels(awkward))] == [
        tuple(map(float.hex, lv)) for lv in awkward
    ]
    assert decode_levels(b"") == ()


async def test_snapshots_round_trip_exactly_with_the_valid_flag(backend: Backend) -> None:
    saved = pictures()
    assert len(saved) > 5
    assert len(saved[0].bids) > 100
    invalid = [dataclasses.replace(s, ts_recv=s.ts_recv + 1) for s in saved[1:3]]
    async with backend.make(clock_ns=lambda: NOW) as store:
        await store.save_book_snapshots(saved, feed=FEED)
        await store.save_book_snapshots(invalid, feed=FEED, valid=False)
        await store.save_book_snapshots([dataclasses.replace(saved[1], ts_recv=0)], feed="x")
        valid = await store.get_book_snapshots(SYMBOL, feed=FEED)
        not_valid = await store.get_book_snapshots(SYMBOL, feed=FEED, valid=False)
        both = await store.get_book_snapshots(SYMBOL, feed=FEED, valid=None)
        unknown_recv = await store.get_book_snapshots(SYMBOL, feed="x")
        assert await store.count("book_snapshots") == len(saved) + 3
        assert await store.get_book_snapshots("BTC/USDT") == []
    exact(valid, by_event(saved))
    exact(not_valid, by_event(invalid))
    exact(both, by_event(saved + invalid))
    exact(unknown_recv, [dataclasses.replace(saved[1], ts_recv=NOW)])  # stored at saving


async def test_saving_again_is_idempotent_and_the_last_saved_wins(backend: Backend) -> None:
    saved = pictures()
    changed = dataclasses.replace(saved[2], bids=saved[2].bids[:3], sequence=saved[2].sequence)
    async with backend.make(clock_ns=lambda: NOW) as store:
        await store.save_book_snapshots(saved, feed=FEED)
        await store.save_book_snapshots(saved, feed=FEED)  # a replay: nothing new
        await store.flush()
        assert await store.count("book_snapshots") == len(saved)
        await store.save_book_snapshots([saved[2], changed], feed=FEED)  # one batch
        stored = await store.get_book_snapshots(SYMBOL)
        assert await store.count("book_snapshots") == len(saved)
        with pytest.raises(TypeError, match="expected OrderBookSnapshot records, got TradeBar"):
            await store.save_book_snapshots([saved[0], bar()])  # type: ignore[list-item]
        assert await store.count("book_snapshots") == len(saved)  # none of them queued
        assert store.save_book_snapshot_nowait(saved[0], feed="nowait") is True
        exact(await store.get_book_snapshots(SYMBOL, feed="nowait"), saved[:1])
    exact(stored, by_event([*saved[:2], changed, *saved[3:]]))


async def test_ranges_are_half_open_by_event_time_with_open_bounds_and_by_feed(
    backend: Backend,
) -> None:
    saved = by_event(pictures(every=10))
    at = [s.ts_event for s in saved]
    async with backend.make(clock_ns=lambda: NOW) as store:
        await store.save_book_snapshots(saved, feed=FEED)
        await store.save_book_snapshots(saved[:3], feed="backup")
        middle = await store.get_book_snapshots(SYMBOL, at[4], at[9], feed=FEED)
        head = await store.get_book_snapshots(SYMBOL, None, at[1] + 1)
        tail = await store.get_book_snapshots(SYMBOL, at[-2])
        backup = await store.get_book_snapshots(SYMBOL, feed="backup")
        empty = await store.get_book_snapshots(SYMBOL, at[4] + 1, at[5])
    exact(middle, saved[4:9])  # [start, end): the 9th is out
    exact(head, [saved[0], saved[0], saved[1], saved[1]])  # both feeds, by time
    exact(tail, saved[-2:])
    exact(backup, saved[:3])
    assert empty == []


async def test_retention_deletes_snapshots_received_before_the_cutoff(backend: Backend) -> None:
    saved = pictures()
    old = NOW - 3 * NS_PER_DAY
    aged = [dataclasses.replace(s, ts_recv=old + i) for i, s in enumerate(saved[:4])]
    kept = [dataclasses.replace(s, ts_recv=NOW - i) for i, s in enumerate(saved[4:])]
    async with backend.make(clock_ns=lambda: NOW) as store:
        await store.save_book_snapshots(aged + kept, feed=FEED)
        deleted = await store.apply_retention(days=2)
        left = await store.get_book_snapshots(SYMBOL)
    assert deleted["book_snapshots"] == 4
    exact(left, by_event(kept))


def bar() -> TradeBar:
    return TradeBar("BTC/USDT", 60_000_000_000, 1.0, 2.0, 0.5, 1.5, 10.0, ts_recv=NOW)


def rate() -> FundingRate:
    return FundingRate("BTC/USDT:USDT", 28_800_000_000_000, 0.0001, NOW)


async def test_a_version_3_sqlite_file_gains_book_snapshots_keeping_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "lean.db"
    shutil.copyfile(V4_FILE, path)  # written by the version-4 code
    with sqlite3.connect(path) as db:  # the file as version 3 left it
        db.execute("DROP TABLE book_snapshots")
        db.execute("UPDATE schema_version SET version = 3")
        stored = db.execute("SELECT COUNT(*) FROM bars WHERE feed = 'ftx' AND resolution = '1m'")
        (minutes,) = stored.fetchone()
    db.close()
    async with DataPersistence(path, clock_ns=lambda: NOW) as store:
        found = await store.get_market_data("BTC-PERP", 0, 2**62, resolution="1m", feed="ftx")
        assert len(found) == minutes == 31
        assert [r.rate for r in await store.get_funding_rates("BTC-PERP")] == [0.0001]
        await store.save_book_snapshots(pictures()[:3], feed=FEED)
        exact(await store.get_book_snapshots(SYMBOL), by_event(pictures()[:3]))
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(5,)]
        names = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    db.close()
    assert {"book_snapshots", "book_snapshots_event"} <= names


async def test_a_version_3_postgres_schema_gains_book_snapshots_keeping_its_rows(
    pg: PostgresBackend,
) -> None:
    async with pg.make() as store:
        await store.save_market_data(bar(), feed="binance")
        await store.save_funding_rates([rate()], feed="binance")
    await pg.execute("DROP TABLE book_snapshots")
    await pg.execute("UPDATE schema_version SET version = 3")
    async with pg.make(clock_ns=lambda: NOW) as store:  # migrated at open
        assert await pg.rows("SELECT version FROM schema_version") == [(4,)]
        assert await store.get_market_data("BTC/USDT", 0, 2**62) == [bar()]
        assert await store.get_funding_rates("BTC/USDT:USDT") == [rate()]
        await store.save_book_snapshots(pictures()[:3], feed=FEED)
        exact(await store.get_book_snapshots(SYMBOL), by_event(pictures()[:3]))
    assert await pg.rows("SELECT to_regclass('book_snapshots_event') IS NOT NULL") == [(True,)]


# ------------------------------------------------------------------ the engine's book lane

INTERVAL_S = 5
DEPTH = 10


def expected_snapshots(
    snapshot: OrderBookSnapshot, deltas: list[OrderBookDelta]
) -> tuple[list[OrderBookSnapshot], int]:
    """What the lane must store, from an offline replay: the book after the first message
    at or past each multiple of the interval (and after the first message), when valid;
    and how many such points found it invalid."""
    keeper = BookKeeper(OrderBook(SYMBOL), BinanceFuturesSequencer())
    step = INTERVAL_S * 1_000_000_000
    due, stored, skipped = 0, [], 0
    for message in (snapshot, *deltas):
        if isinstance(message, OrderBookSnapshot):
            keeper.on_snapshot(message)
        else:
            keeper.on_delta(message)
        if message.ts_event < due:
            continue
        due = (message.ts_event // step + 1) * step
        book = keeper.book
        if not book.valid:
            skipped += 1
            continue
        stored.append(OrderBookSnapshot(SYMBOL, tuple(book.bids(DEPTH)), tuple(book.asks(DEPTH)),
                                        book.sequence, book.ts_event, message.ts_recv))  # fmt: skip
    return stored, skipped


class SilentResync(DepthFeed):
    """Never answers a re-sync: after a gap the book stays invalid."""

    async def resync_book(self, symbol: str) -> None:
        self.resyncs += 1


async def run_engine(feed: DepthFeed, path: Path) -> dict[str, int]:
    config = Config(db_path=path, book_snapshot_interval_s=INTERVAL_S,
                    book_snapshot_depth=DEPTH)  # fmt: skip
    engine = DataEngine(config)
    engine.add_feed(feed)
    async with engine:
        await engine.subscribe_symbol(SYMBOL, data=("book",))
        await feed.pumped.wait()
        await feed.delivered()
        await engine.wait_idle()
        counts: dict[str, int] = engine.get_metrics()["books"]
    return counts


async def stored(path: Path) -> list[OrderBookSnapshot]:
    async with DataPersistence(path) as store:
        return await store.get_book_snapshots(SYMBOL, feed=FEED)


async def test_the_engine_stores_snapshots_at_the_interval_equal_to_the_replayed_book(
    tmp_path: Path,
) -> None:
    snapshot, deltas = capture()
    want, skipped = expected_snapshots(snapshot, deltas)
    assert skipped == 0
    assert len(want) >= 6
    counts = await run_engine(DepthFeed(snapshot, deltas), tmp_path / "lean.db")
    got = await stored(tmp_path / "lean.db")
    exact(got, want)
    assert all(len(s.bids) == DEPTH and len(s.asks) == DEPTH for s in got)
    assert (counts["snapshots"], counts["snapshots_skipped"], counts["snapshots_dropped"]) == (
        len(want), 0, 0,
    )  # fmt: skip


async def test_an_invalid_book_is_not_snapshotted_and_is_counted(tmp_path: Path) -> None:
    snapshot, deltas = capture()
    drop = len(deltas) // 3
    kept = deltas[:drop] + deltas[drop + 1 :]
    want, skipped = expected_snapshots(snapshot, kept)
    assert skipped >= 2
    assert len(want) >= 2
    feed = SilentResync(snapshot, deltas, drop=drop)
    counts = await run_engine(feed, tmp_path / "lean.db")
    exact(await stored(tmp_path / "lean.db"), want)
    assert all(s.ts_event < kept[drop].ts_event for s in want)
    assert (counts["snapshots"], counts["snapshots_skipped"]) == (len(want), skipped)
    assert feed.resyncs == 1


async def test_snapshots_off_store_nothing(tmp_path: Path) -> None:
    snapshot, deltas = capture()
    path = tmp_path / "lean.db"
    config = Config(db_path=path, book_snapshot_interval_s=0)
    feed = DepthFeed(snapshot, deltas)
    engine = DataEngine(config)
    engine.add_feed(feed)
    async with engine:
        await engine.subscribe_symbol(SYMBOL, data=("book",))
        await feed.pumped.wait()
        await feed.delivered()
        await engine.wait_idle()
        assert engine.get_metrics()["books"]["snapshots"] == 0
    assert await stored(path) == []


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"book_snapshot_interval_s": -1}, "book_snapshot_interval_s must be >= 0 or None"),
        ({"book_snapshot_interval_s": float("nan")}, "book_snapshot_interval_s must be >= 0"),
        ({"book_snapshot_depth": 0}, "book_snapshot_depth must be a positive integer"),
    ],
)
def test_snapshot_settings_are_checked(settings: dict[str, float], message: str) -> None:
    from lean_data.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        Config(**settings)  # type: ignore[arg-type]
    assert Config(book_snapshot_interval_s=None).book_snapshot_interval_s is None
