"""DataCache: memory and disk tiers, bounds, TTL, corrupt files, hostile symbols, a model."""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import struct
import tempfile
import threading
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from lean_data.errors import ConfigError, DataFormatError
from lean_data.models import (
    NS_PER_MINUTE,
    MarketData,
    QuoteBar,
    Resolution,
    Tick,
    TickType,
    TradeBar,
    datetime_to_ns,
)
from lean_data.storage import codec as _codec
from lean_data.storage.cache import DataCache

NEW_YORK = ZoneInfo("America/New_York")
DAY = datetime_to_ns(datetime(2013, 10, 7, tzinfo=NEW_YORK))
END = DAY + 24 * 60 * NS_PER_MINUTE


def _rows(path: Path) -> list[list[str]]:
    with zipfile.ZipFile(path) as archive:
        text = archive.read(archive.namelist()[0]).decode()
    return [line.split(",") for line in text.splitlines() if line]


def _day_ns(path: Path) -> int:
    day = datetime.strptime(path.name[:8], "%Y%m%d").replace(tzinfo=NEW_YORK)
    return datetime_to_ns(day)


def lean_trade_bars(path: Path, symbol: str) -> list[TradeBar]:
    """Read a Lean equity minute trade file (deci-cents, ms since New York midnight)."""
    day = _day_ns(path)
    bars = []
    for r in _rows(path):
        open_, high, low, close = (int(x) / 10_000 for x in r[1:5])
        ts = day + int(r[0]) * 1_000_000
        bars.append(TradeBar(symbol, ts, open_, high, low, close, float(r[5])))
    return bars


def lean_quote_bars(path: Path, symbol: str) -> list[QuoteBar]:
    """Read a Lean equity minute quote file (bid OHLC, bid size, ask OHLC, ask size)."""
    day = _day_ns(path)
    bars = []
    for r in _rows(path):
        bid_open, bid_high, bid_low, bid_close = (int(x) / 10_000 for x in r[1:5])
        ask_open, ask_high, ask_low, ask_close = (int(x) / 10_000 for x in r[6:10])
        ts = day + int(r[0]) * 1_000_000
        bid = (bid_open, bid_high, bid_low, bid_close, float(r[5]))
        ask = (ask_open, ask_high, ask_low, ask_close, float(r[10]))
        bars.append(QuoteBar(symbol, ts, *bid, *ask))
    return bars


def lean_ticks(path: Path, symbol: str) -> list[Tick]:
    """Read a Lean equity tick trade file (ms, price, size, exchange, condition, suspicious)."""
    day = _day_ns(path)
    return [
        Tick(
            symbol,
            day + int(r[0]) * 1_000_000,
            int(r[1]) / 10_000,
            float(r[2]),
            exchange=r[3],
            condition=r[4],
            suspicious=r[5] == "1",
        )
        for r in _rows(path)
    ]


def reprs(items: Sequence[MarketData] | None) -> list[str] | None:
    """Compare items exactly, NaN included (``nan != nan`` but ``repr`` agrees)."""
    return None if items is None else [repr(item) for item in items]


def edge_items() -> list[MarketData]:
    """Items exercising every field: NaN volume, flags, revisions, odd floats, quote ticks."""
    return [
        TradeBar(
            "BTC/USDT",
            60 * NS_PER_MINUTE,
            1.5,
            2.5,
            0.5,
            2.0,
            math.nan,
            Resolution.parse("5m"),
            ts_recv=3_600_123_456_789,
            closed=False,
            revision=2,
            backfilled=True,
        ),
        TradeBar(
            "BTC/USDT", 65 * NS_PER_MINUTE, -0.0, math.inf, -math.inf, 0.1, 0.0, Resolution.DAILY
        ),
        Tick(
            "EUR/USD",
            7,
            1.08505,
            0.0,
            TickType.QUOTE,
            ts_recv=9,
            bid_price=1.085,
            bid_size=1e6,
            ask_price=1.0851,
            ask_size=2.5e6,
            exchange="Ω",
            suspicious=True,
            trade_id="x\x00y",
        ),
        QuoteBar(
            "EUR/USD",
            8,
            1.0,
            1.1,
            0.9,
            1.05,
            math.nan,
            1.01,
            1.11,
            0.91,
            1.06,
            3.0,
            Resolution.HOUR,
            closed=False,
            revision=1,
        ),
        Tick("EUR/USD", 9, 1.1, 2.0, condition="20002020"),
    ]


@pytest.fixture
def spy_bars(fixtures: Path) -> list[TradeBar]:
    return lean_trade_bars(fixtures / "lean/equity/usa/minute/spy/20131007_trade.zip", "SPY")


class Clock:
    """A settable clock for TTL and recency tests."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def cache_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(".ldc"))


# ---------------------------------------------------------------- round trips


def test_real_bars_round_trip_through_memory_and_disk(tmp_path: Path, fixtures: Path) -> None:
    spy = fixtures / "lean/equity/usa/minute/spy"
    trades = lean_trade_bars(spy / "20131007_trade.zip", "SPY")
    quotes = lean_quote_bars(spy / "20131007_quote.zip", "SPY")
    assert trades[0] == TradeBar(
        "SPY", DAY + 4 * 3600 * 10**9, 167.41, 167.41, 167.25, 167.27, 3197.0
    )
    cache = DataCache(cache_dir=tmp_path)
    cache.put("SPY", Resolution.MINUTE, DAY, END, trades)
    cache.put("SPY", "1m", DAY, END, trades)  # same key: replaces, one entry
    cache.put("SPY", "minute", DAY, END + 1, quotes)
    hit = cache.get("SPY", "1m", DAY, END)
    assert hit is not None
    assert hit == trades
    assert all(a is b for a, b in zip(hit, trades, strict=True))  # memory shares the items

    reopened = DataCache(cache_dir=tmp_path)
    assert reopened.statistics()["disk_entries"] == 2
    assert reprs(reopened.get("SPY", "1m", DAY, END)) == reprs(trades)
    assert reprs(reopened.get("SPY", "1m", DAY, END + 1)) == reprs(quotes)
    assert len(quotes) == 908
    assert len(trades) == 828
    stats = reopened.statistics()
    assert (stats["disk_hits"], stats["memory_hits"], stats["entries"]) == (2, 0, 2)


def test_real_ticks_and_every_field_round_trip_exactly(tmp_path: Path, fixtures: Path) -> None:
    ticks = lean_ticks(fixtures / "lean/equity/usa/tick/ibm/20131011_trade.zip", "IBM")
    assert len(ticks) == 19_264
    assert ticks[0] == Tick(
        "IBM",
        _day_ns(Path("20131011")) + 29_475_725_000_000,
        184.99,
        100.0,
        exchange="P",
        condition="20002020",
    )
    day = _day_ns(Path("20131011"))
    DataCache(cache_dir=tmp_path).put("IBM", "tick", day, day + 86_400 * 10**9, ticks)
    from_disk = DataCache(cache_dir=tmp_path).get("IBM", Resolution.TICK, day, day + 86_400 * 10**9)
    assert reprs(from_disk) == reprs(ticks)
    # items of other symbols and times cannot be the answer to one request: the codec alone
    mixed = ticks[:50] + edge_items() + ticks[50:]
    got = _codec.decode_items(memoryview(b"".join(_codec.encode_items(mixed))))
    assert reprs(got) == reprs(mixed)
    bar = got[50]
    assert isinstance(bar, TradeBar)
    assert math.isnan(bar.volume)
    assert (bar.resolution, bar.closed, bar.revision, bar.backfilled) == (
        Resolution.parse("5m"),
        False,
        2,
        True,
    )
    assert bar.resolution is Resolution.parse("5m")
    assert math.copysign(1.0, got[51].open) == -1.0  # type: ignore[union-attr]  # a TradeBar
    quote_tick = got[52]
    assert isinstance(quote_tick, Tick)
    assert (quote_tick.tick_type, quote_tick.suspicious) == (TickType.QUOTE, True)


def test_an_empty_answer_is_a_hit_not_a_miss(tmp_path: Path) -> None:
    DataCache(cache_dir=tmp_path).put("AAPL", "1d", 0, 10, [])
    reopened = DataCache(cache_dir=tmp_path)
    assert reopened.get("AAPL", "1d", 0, 10) == []
    assert reopened.get("AAPL", "1d", 0, 11) is None
    assert (reopened.statistics()["hits"], reopened.statistics()["misses"]) == (1, 1)


def test_keys_normalise_resolutions_and_datetimes(spy_bars: list[TradeBar]) -> None:
    cache = DataCache()
    start = datetime(2013, 10, 7, 8, 0, tzinfo=UTC)
    cache.put("SPY", "minute", start, datetime(2013, 10, 8, tzinfo=UTC), spy_bars)
    assert cache.get("SPY", Resolution.MINUTE, 1_381_132_800 * 10**9, 1_381_190_400 * 10**9) == (
        spy_bars
    )
    assert cache.get("SPY", "5m", start, datetime(2013, 10, 8, tzinfo=UTC)) is None
    with pytest.raises(ValueError, match="expected a resolution"):
        cache.get("SPY", "fortnight", 0, 1)


def test_a_list_passed_to_put_can_change_afterwards(spy_bars: list[TradeBar]) -> None:
    cache = DataCache()
    bars = list(spy_bars)
    cache.put("SPY", "1m", DAY + 0, END + 1, bars)
    bars.clear()
    got = cache.get("SPY", "1m", DAY + 0, END + 1)
    assert got == spy_bars
    assert got is not None
    got.clear()
    assert cache.get("SPY", "1m", DAY + 0, END + 1) == spy_bars


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_size": 0}, "max_size must be a positive integer, got 0"),
        ({"max_bytes": -5}, "max_bytes must be a positive integer, got -5"),
        ({"disk_max_bytes": 0}, "disk_max_bytes >= 1 and ttl_s >= 0, got 0 and 0.0"),
        ({"ttl_s": -1.0}, "got 2147483648 and -1.0"),
    ],
)
def test_rejects_bad_bounds(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DataCache(**kwargs)  # type: ignore[arg-type]  # float-typed dict of mixed options


def test_a_cache_dir_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(ConfigError, match="is not usable"):
        DataCache(cache_dir=tmp_path / "file")


# ---------------------------------------------------------------- bounds


def test_evicts_the_least_recently_used_entry_by_count(spy_bars: list[TradeBar]) -> None:
    cache = DataCache(max_size=3)
    for i in range(3):
        cache.put("SPY", "1m", DAY + i, END + i + 1, spy_bars[i : i + 1])
    assert cache.get("SPY", "1m", DAY + 0, END + 1) == spy_bars[0:1]  # 0 is now the most recent
    cache.put("SPY", "1m", DAY + 3, END + 4, spy_bars[3:4])  # evicts 1
    remaining = {i for i in range(4) if cache.get("SPY", "1m", DAY + i, END + i + 1) is not None}
    assert remaining == {0, 2, 3}
    stats = cache.statistics()
    assert (stats["entries"], stats["evictions"], stats["bytes"]) == (3, 1, 3 * (256 + 336))


def test_evicts_by_estimated_bytes(spy_bars: list[TradeBar]) -> None:
    entry = 256 + 10 * 336  # the documented estimate for ten TradeBars
    cache = DataCache(max_size=100, max_bytes=2 * entry + 100)
    for i in range(3):
        cache.put("SPY", "1m", DAY + i, END + i + 1, spy_bars[10 * i : 10 * i + 10])
    assert [cache.get("SPY", "1m", DAY + i, END + i + 1) is not None for i in range(3)] == [
        False,
        True,
        True,
    ]
    stats = cache.statistics()
    assert (stats["entries"], stats["bytes"], stats["evictions"]) == (2, 2 * entry, 1)
    cache.put("SPY", "1m", DAY + 9, END + 10, spy_bars)  # 828 bars cannot fit: kept out of memory
    assert cache.get("SPY", "1m", DAY + 9, END + 10) is None
    assert cache.statistics()["entries"] == 2


def test_an_entry_too_big_for_memory_is_served_from_disk(
    tmp_path: Path, spy_bars: list[TradeBar]
) -> None:
    cache = DataCache(cache_dir=tmp_path, max_bytes=1_000)
    cache.put("SPY", "1m", DAY + 0, END + 1, spy_bars)
    assert cache.get("SPY", "1m", DAY + 0, END + 1) == spy_bars
    stats = cache.statistics()
    assert (stats["entries"], stats["disk_hits"], stats["memory_hits"]) == (0, 1, 0)


def test_disk_tier_evicts_least_recently_used_files_across_restarts(
    tmp_path: Path, spy_bars: list[TradeBar]
) -> None:
    clock = Clock(1.0)
    first = DataCache(cache_dir=tmp_path, clock=clock)
    for i in range(3):
        clock.now = 1.0 + i
        first.put("SPY", "1m", DAY + 10 + i, END + 20, spy_bars)
    one_file = int(first.statistics()["disk_bytes"]) // 3
    clock.now = 10.0
    assert (
        first.get("SPY", "1m", DAY + 10, END + 20) == spy_bars
    )  # a memory hit refreshes the file too
    clock.now = 11.0
    second = DataCache(cache_dir=tmp_path, disk_max_bytes=3 * one_file + 10, clock=clock)
    second.put("SPY", "1m", DAY + 13, END + 20, spy_bars)  # over the bound: the file of key 11 goes
    third = DataCache(cache_dir=tmp_path)
    hits = {i for i in range(10, 14) if third.get("SPY", "1m", DAY + i, END + 20) is not None}
    assert hits == {10, 12, 13}
    assert second.statistics()["disk_evictions"] == 1
    assert second.statistics()["disk_bytes"] == 3 * one_file
    assert len(cache_files(tmp_path)) == 3


def test_a_file_bigger_than_the_disk_bound_is_not_written(
    tmp_path: Path, spy_bars: list[TradeBar]
) -> None:
    cache = DataCache(cache_dir=tmp_path, disk_max_bytes=1_000)
    cache.put("SPY", "1m", DAY + 0, END + 1, spy_bars[:2])
    assert len(cache_files(tmp_path)) == 1
    cache.put("SPY", "1m", DAY + 0, END + 1, spy_bars)  # the small old version must not resurface
    assert cache_files(tmp_path) == []
    assert cache.get("SPY", "1m", DAY + 0, END + 1) == spy_bars


# ---------------------------------------------------------------- TTL


def test_ttl_expires_entries_in_memory_and_on_disk(
    tmp_path: Path, spy_bars: list[TradeBar]
) -> None:
    clock = Clock(100.0)
    cache = DataCache(cache_dir=tmp_path, ttl_s=10.0, clock=clock)
    cache.put("SPY", "1m", DAY + 0, END + 1, spy_bars)
    cache.put("SPY", "1m", DAY + 0, END + 2, spy_bars)
    clock.now = 109.999
    assert cache.get("SPY", "1m", DAY + 0, END + 1) == spy_bars
    assert DataCache(cache_dir=tmp_path, ttl_s=10.0, clock=clock).get(
        "SPY", "1m", DAY + 0, END + 2
    ) == (spy_bars)
    clock.now = 110.0
    assert cache.get("SPY", "1m", DAY + 0, END + 1) is None
    assert len(cache_files(tmp_path)) == 1  # the expired entry's file went with it
    fresh = DataCache(cache_dir=tmp_path, ttl_s=10.0, clock=clock)
    assert fresh.get("SPY", "1m", DAY + 0, END + 2) is None
    assert cache_files(tmp_path) == []
    assert (cache.statistics()["expired"], fresh.statistics()["expired"]) == (1, 1)
    assert DataCache(cache_dir=tmp_path).statistics()["disk_entries"] == 0


def test_ttl_zero_keeps_entries_forever(spy_bars: list[TradeBar]) -> None:
    clock = Clock(0.0)
    cache = DataCache(clock=clock)
    cache.put("SPY", "1m", DAY + 0, END + 1, spy_bars)
    clock.now = 1e12
    assert cache.get("SPY", "1m", DAY + 0, END + 1) == spy_bars


# ---------------------------------------------------------------- corrupt files


def _flip(position: int) -> Callable[[bytes], bytes]:
    def corrupt(data: bytes) -> bytes:
        index = position % len(data)
        return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]

    return corrupt


def _wrong_version(data: bytes) -> bytes:
    """A well-formed file of format version 2, checksum recomputed."""
    header = bytearray(data[:32])
    struct.pack_into("<H", header, 8, 2)
    crc = zlib.crc32(data[36:], zlib.crc32(bytes(header)))
    return bytes(header) + struct.pack("<I", crc) + data[36:]


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "flip magic": _flip(0),
    "flip version": _flip(8),
    "flip write time": _flip(29),
    "flip checksum": _flip(33),
    "flip key": _flip(40),
    "flip payload": _flip(-1),
    "flip manifest": _flip(120),
    "truncate half": lambda data: data[: len(data) // 2],
    "truncate header": lambda data: data[:10],
    "one byte more": lambda data: data + b"\x00",
    "garbage": lambda data: os.urandom(len(data)),
    "zero length": lambda data: b"",
    "wrong version": _wrong_version,
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_corrupt_file_is_a_logged_counted_miss_and_is_removed(
    tmp_path: Path, spy_bars: list[TradeBar], caplog: pytest.LogCaptureFixture, corruption: str
) -> None:
    DataCache(cache_dir=tmp_path).put("SPY", "1m", DAY + 0, END + 1, spy_bars)
    (path,) = cache_files(tmp_path)
    path.write_bytes(CORRUPTIONS[corruption](path.read_bytes()))
    cache = DataCache(cache_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="lean_data.storage.cache"):
        assert cache.get("SPY", "1m", DAY + 0, END + 1) is None
    assert [
        r.getMessage().startswith(f"dropping corrupt cache file {path}") for r in caplog.records
    ] == [True]
    assert not path.exists()
    stats = cache.statistics()
    assert (stats["corrupt"], stats["misses"], stats["disk_entries"]) == (1, 1, 0)
    cache.put("SPY", "1m", DAY + 0, END + 1, spy_bars)
    assert reprs(DataCache(cache_dir=tmp_path).get("SPY", "1m", DAY + 0, END + 1)) == reprs(
        spy_bars
    )


def test_a_file_holding_another_key_is_corrupt(tmp_path: Path, spy_bars: list[TradeBar]) -> None:
    cache = DataCache(cache_dir=tmp_path)
    cache.put("SPY", "1m", DAY + 0, END + 1, spy_bars[:5])
    (first,) = cache_files(tmp_path)
    cache.put("SPY", "1m", DAY + 0, END + 2, spy_bars[5:9])
    (second,) = [p for p in cache_files(tmp_path) if p != first]
    shutil.copyfile(first, second)
    reopened = DataCache(cache_dir=tmp_path)
    assert reopened.get("SPY", "1m", DAY + 0, END + 2) is None
    assert reopened.statistics()["corrupt"] == 1
    assert cache_files(tmp_path) == [first]


# ---------------------------------------------------------------- I/O errors


def test_a_put_that_cannot_reach_the_disk_still_serves_from_memory(
    tmp_path: Path, spy_bars: list[TradeBar], caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "cache"
    cache = DataCache(cache_dir=directory)
    shutil.rmtree(directory)
    directory.write_bytes(b"not a directory")  # works as root too, unlike chmod
    with caplog.at_level(logging.WARNING, logger="lean_data.storage.cache"):
        cache.put("SPY", "1m", DAY + 0, END + 1, spy_bars)
        assert cache.get("SPY", "1m", DAY + 0, END + 1) == spy_bars
        assert cache.invalidate("SPY") == 1
        cache.clear()
    stats = cache.statistics()
    assert (stats["disk_errors"], stats["memory_hits"], stats["disk_entries"]) == (3, 1, 0)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith(f"cache cannot write {directory}/")
    assert [m.split(": ")[0] for m in messages[1:]] == [f"cache cannot list {directory}"] * 2


def test_an_unreadable_entry_is_a_logged_miss(
    tmp_path: Path, spy_bars: list[TradeBar], caplog: pytest.LogCaptureFixture
) -> None:
    DataCache(cache_dir=tmp_path).put("SPY", "1m", DAY + 0, END + 1, spy_bars)
    (path,) = cache_files(tmp_path)
    path.unlink()
    path.mkdir()  # reading a directory fails with IsADirectoryError, root or not
    cache = DataCache(cache_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="lean_data.storage.cache"):
        assert cache.get("SPY", "1m", DAY + 0, END + 1) is None
        cache.put("SPY", "1m", DAY + 0, END + 1, spy_bars)  # os.replace onto a directory fails
    assert cache.get("SPY", "1m", DAY + 0, END + 1) == spy_bars
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        f"cache cannot read {path}",
        f"cache cannot write {path}",
    ]
    assert cache.statistics()["disk_errors"] == 2
    assert path.is_dir()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_items_the_codec_cannot_store_stay_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = DataCache(cache_dir=tmp_path)
    odd = [TradeBar("X", 0, 1.0, 1.0, 1.0, 1.0, "lots")]  # type: ignore[arg-type]  # wrong type
    caplog.set_level(logging.WARNING, logger="lean_data.storage.cache")
    cache.put("X", "1m", 0, 1, odd)
    assert cache.get("X", "1m", 0, 1) == odd
    assert cache_files(tmp_path) == []
    assert caplog.records[0].getMessage().startswith("cannot store ('X', '1m', 0, 1) on disk")
    lone_surrogate = [TradeBar("\ud800", 0, 1.0, 1.0, 1.0, 1.0, 1.0)]  # not valid UTF-8
    cache.put("\ud800", "1m", 0, 1, lone_surrogate)
    assert cache.get("\ud800", "1m", 0, 1) == lone_surrogate
    assert cache_files(tmp_path) == []
    assert "surrogates not allowed" in caplog.records[1].getMessage()
    with pytest.raises(TypeError, match="stores TradeBar, QuoteBar and Tick, not str"):
        _codec.encode_items(["not a bar"])  # type: ignore[list-item]  # wrong type on purpose


def test_stale_temp_files_are_removed_at_start(tmp_path: Path) -> None:
    stale = tmp_path / ".tmp-crashed"
    live = tmp_path / ".tmp-writing"
    foreign = tmp_path / "notes.txt"
    for path in (stale, live, foreign):
        path.write_bytes(b"partial")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    DataCache(cache_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-writing", "notes.txt"]


# ---------------------------------------------------------------- hostile symbols

HOSTILE = [
    "../../x",
    "..",
    "/etc/passwd",
    "CON",
    "NUL",
    "a/b",
    "a\\b",
    "x" * 10_000,
    "€/¥:π",
    "BTC\x00USDT",
    "",
    " ",
]


def test_hostile_symbols_stay_inside_cache_dir_and_round_trip(tmp_path: Path) -> None:
    directory = tmp_path / "one" / "cache"
    cache = DataCache(cache_dir=directory)
    for i, symbol in enumerate(HOSTILE):
        bar = TradeBar(symbol, i, 1.0, 2.0, 0.5, 1.5, 10.0 + i)
        cache.put(symbol, "1m", 0, 100, [bar])
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.parent == directory for p in files)
    assert {p.name for p in tmp_path.rglob("*")} == {"one", "cache"} | {p.name for p in files}
    assert len(files) == len(HOSTILE)
    reopened = DataCache(cache_dir=directory)
    for i, symbol in enumerate(HOSTILE):
        assert reopened.get(symbol, "1m", 0, 100) == [
            TradeBar(symbol, i, 1.0, 2.0, 0.5, 1.5, 10.0 + i)
        ]
    assert reopened.invalidate("../../x") == 1
    assert reopened.invalidate("x" * 10_000) == 1
    assert len(cache_files(directory)) == len(HOSTILE) - 2


# ---------------------------------------------------------------- counters, invalidate, clear


def test_counters_are_exact(tmp_path: Path, spy_bars: list[TradeBar]) -> None:
    cache = DataCache(cache_dir=tmp_path)
    assert cache.hit_rate == 0.0
    cache.put("SPY", "1m", DAY + 0, END + 1, spy_bars[:3])
    assert cache.get("SPY", "1m", DAY + 0, END + 1) is not None
    assert cache.get("SPY", "1m", DAY + 0, END + 2) is None
    assert cache.get("QQQ", "1m", DAY + 0, END + 1) is None
    reopened = DataCache(cache_dir=tmp_path)
    assert reopened.get("SPY", "1m", DAY + 0, END + 1) is not None
    assert reopened.get("SPY", "1m", DAY + 0, END + 1) is not None
    size = len(cache_files(tmp_path)[0].read_bytes())
    assert cache.statistics() == {
        "hits": 1,
        "misses": 2,
        "memory_hits": 1,
        "disk_hits": 0,
        "corrupt": 0,
        "evictions": 0,
        "disk_evictions": 0,
        "expired": 0,
        "disk_errors": 0,
        "rejected": 0,
        "entries": 1,
        "bytes": 256 + 3 * 336,
        "disk_entries": 1,
        "disk_bytes": size,
        "hit_rate": 1 / 3,
    }
    assert reopened.statistics()["hits"] == 2
    assert (reopened.statistics()["disk_hits"], reopened.statistics()["memory_hits"]) == (1, 1)
    assert reopened.hit_rate == 1.0


def test_invalidate_drops_one_symbol_from_both_tiers(
    tmp_path: Path, spy_bars: list[TradeBar]
) -> None:
    cache = DataCache(cache_dir=tmp_path)
    qqq = [replace(bar, symbol="QQQ") for bar in spy_bars[:2]]
    for symbol, start in (("SPY", 0), ("SPY", 1), ("QQQ", 0)):
        bars = qqq if symbol == "QQQ" else spy_bars[:2]
        cache.put(symbol, "1m", DAY + start, END + 9, bars)
    hourly = [replace(spy_bars[0], resolution=Resolution.HOUR)]
    DataCache(cache_dir=tmp_path).put("SPY", "1h", DAY, END + 9, hourly)  # on disk only
    assert cache.invalidate("SPY") == 3
    assert cache.invalidate("SPY") == 0
    assert cache.get("SPY", "1m", DAY + 0, END + 9) is None
    assert cache.get("QQQ", "1m", DAY + 0, END + 9) == qqq
    assert DataCache(cache_dir=tmp_path).get("SPY", "1h", DAY, END + 9) is None
    assert len(cache_files(tmp_path)) == 1


def test_clear_empties_both_tiers_but_keeps_foreign_files(
    tmp_path: Path, spy_bars: list[TradeBar]
) -> None:
    (tmp_path / "README").write_text("mine")
    cache = DataCache(cache_dir=tmp_path)
    cache.put("SPY", "1m", DAY + 0, END + 9, spy_bars)
    cache.put("QQQ", "1m", DAY + 0, END + 9, spy_bars)
    cache.clear()
    assert [p.name for p in tmp_path.iterdir()] == ["README"]
    assert cache.get("SPY", "1m", DAY + 0, END + 9) is None
    stats = cache.statistics()
    assert (stats["entries"], stats["bytes"], stats["disk_entries"], stats["disk_bytes"]) == (
        0,
        0,
        0,
        0,
    )
    assert (
        repr(cache) == f"DataCache(max_size=256, cache_dir={tmp_path!r}, entries=0, disk_entries=0)"
    )


def test_threads_can_share_a_cache(tmp_path: Path, spy_bars: list[TradeBar]) -> None:
    cache = DataCache(max_size=8, cache_dir=tmp_path)
    errors: list[str] = []

    def work(worker: int) -> None:
        for i in range(40):
            bars = spy_bars[i : i + worker + 1]
            cache.put("SPY", "1m", DAY + worker, END + i, bars)
            got = cache.get("SPY", "1m", DAY + worker, END + i)
            if got is None or reprs(got) != reprs(bars):
                errors.append(f"worker {worker} step {i}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    stats = cache.statistics()
    assert (stats["hits"], stats["misses"], stats["entries"], stats["disk_entries"]) == (
        160,
        0,
        8,
        160,
    )


# ---------------------------------------------------------------- properties

finite_or_not = st.floats(allow_nan=True, allow_infinity=True)
ns = st.integers(min_value=-(2**63), max_value=2**63 - 1)
resolutions = st.sampled_from([Resolution.TICK, Resolution.MINUTE, Resolution.parse("4h")])
texts = st.text(max_size=8)
trade_bars = st.builds(
    TradeBar,
    texts,
    ns,
    finite_or_not,
    finite_or_not,
    finite_or_not,
    finite_or_not,
    finite_or_not,
    resolutions,
    ns,
    st.booleans(),
    st.integers(0, 5),
    st.booleans(),
)
quote_bars = st.builds(
    QuoteBar,
    texts,
    ns,
    *[finite_or_not] * 10,
    resolutions,
    ns,
    st.booleans(),
    st.integers(0, 5),
    st.booleans(),
)
ticks = st.builds(
    Tick,
    texts,
    ns,
    finite_or_not,
    finite_or_not,
    st.sampled_from(TickType),
    ns,
    finite_or_not,
    finite_or_not,
    finite_or_not,
    finite_or_not,
    texts,
    texts,
    st.booleans(),
    texts,
)
item_lists = st.lists(st.one_of(trade_bars, quote_bars, ticks), max_size=12)


@given(items=item_lists)
def test_codec_round_trips_any_items_exactly(items: list[MarketData]) -> None:
    payload = b"".join(_codec.encode_items(items))
    assert reprs(_codec.decode_items(memoryview(payload))) == reprs(items)


@given(items=st.lists(trade_bars, min_size=2, max_size=2))
def test_codec_keeps_constant_and_varying_columns_apart(items: list[MarketData]) -> None:
    doubled = [items[0], items[0], items[1]]
    payload = b"".join(_codec.encode_items(doubled))
    assert reprs(_codec.decode_items(memoryview(payload))) == reprs(doubled)


class CacheModel(RuleBasedStateMachine):
    """Random puts, gets, invalidations and restarts agree with a dict when nothing is evicted."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="lean-cache-")
        self.cache = DataCache(cache_dir=self.directory)
        self.model: dict[tuple[str, str, int, int], list[str]] = {}

    keys = st.tuples(
        st.sampled_from(["SPY", "BTC/USDT", "../x"]),
        st.sampled_from(["1m", "1h"]),
        st.integers(0, 3),
        st.integers(0, 3),
    ).map(lambda k: (k[0], k[1], k[2], k[2] + k[3]))

    @rule(key=keys, items=st.lists(st.one_of(trade_bars, ticks), max_size=4))
    def put(self, key: tuple[str, str, int, int], items: list[MarketData]) -> None:
        # an answer to the request (its symbol, resolution, range; one item per type fits
        # less than a period), as the disk tier accepts no other
        symbol, name, start, _ = key
        fields: dict[type, dict[str, Any]] = {
            TradeBar: {"resolution": Resolution.parse(name)},
            Tick: {},
        }
        items = [
            replace(item, symbol=symbol, ts_event=start, **fields[type(item)])
            for item in {type(item): item for item in items}.values()
        ]
        self.cache.put(*key, items)
        self.model[key] = [repr(item) for item in items]

    @rule(key=keys)
    def get(self, key: tuple[str, str, int, int]) -> None:
        assert reprs(self.cache.get(*key)) == self.model.get(key)

    @rule(symbol=st.sampled_from(["SPY", "BTC/USDT", "../x"]))
    def invalidate(self, symbol: str) -> None:
        dropped = [key for key in self.model if key[0] == symbol]
        assert self.cache.invalidate(symbol) == len(dropped)
        for key in dropped:
            del self.model[key]

    @rule()
    def restart(self) -> None:
        self.cache = DataCache(cache_dir=self.directory)
        assert self.cache.statistics()["disk_entries"] == len(self.model)

    def teardown(self) -> None:
        shutil.rmtree(self.directory)


TestCacheModel = CacheModel.TestCase
TestCacheModel.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)


def test_lean_reader_helper_reads_deci_cents(tmp_path: Path) -> None:
    archive = tmp_path / "20140609_trade.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("x.csv", "14400000,6455700,6455700,922300,924200,600\n")
    (bar,) = lean_trade_bars(archive, "AAPL")
    assert (bar.open, bar.low, bar.close, bar.volume) == (645.57, 92.23, 92.42, 600.0)
    assert bar.time == datetime(2014, 6, 9, 8, 0, tzinfo=UTC)


# ---------------------------------------------------------------- malformed payloads


def _two_bars() -> list[MarketData]:
    return [
        TradeBar("SPY", 0, 1.0, 2.0, 0.5, 1.5, 10.0, closed=True),
        TradeBar("SPY", NS_PER_MINUTE, 1.5, 2.5, 1.0, 2.0, 20.0, closed=False),
    ]


def _edit_manifest(edit: Callable[[dict[str, Any]], None]) -> bytes:
    _, manifest, *blobs = _codec.encode_items(_two_bars())
    document = orjson.loads(manifest)
    edit(document["blocks"][0])
    manifest = orjson.dumps(document)
    return struct.pack("<I", len(manifest)) + manifest + b"".join(blobs)


def _set(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda block: block.__setitem__(field, value)


def _set_column(index: int, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda block: block["columns"].__setitem__(index, value)


MALFORMED = {
    "renamed field": (
        lambda block: block["fields"].__setitem__(0, "ticker"),
        "fields ['ticker', 'ts_event',",
    ),
    "unknown type": (_set("type", "candle"), "'candle'"),
    "wrong count": (_set("n", 3), "int column holds 2 values, expected 3"),
    "missing column": (lambda block: block["columns"].pop(), "zip() argument 2 is shorter"),
    "wrong code": (_set_column(2, ["a", "q", 16, 16]), "column code 'q' does not fit a float"),
    "bad tag": (_set_column(2, ["z"]), "bad column ['z']"),
    "short list": (_set_column(0, ["l", ["SPY"]]), "bad column ['l', ['SPY']]"),
    "wrong constant type": (_set_column(0, ["c", 5]), "expected str, found int"),
    "short bool column": (_set_column(9, ["a", "B", 0, 1]), "bool column holds 1 values"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_payload_is_a_data_format_error(case: str) -> None:
    edit, message = MALFORMED[case]
    payload = _edit_manifest(edit)
    with pytest.raises(
        DataFormatError, match=f"^payload cannot be decoded: .*{re.escape(message)}"
    ):
        _codec.decode_items(memoryview(payload))


def test_a_payload_that_is_not_json_is_a_data_format_error() -> None:
    with pytest.raises(DataFormatError, match=r"^payload cannot be decoded: unexpected"):
        _codec.decode_items(memoryview(struct.pack("<I", 3) + b"{{{"))
    with pytest.raises(DataFormatError, match=r"^payload cannot be decoded: unpack_from requires"):
        _codec.decode_items(memoryview(b"\x01"))


def test_a_checksummed_file_with_a_bad_payload_is_corrupt(tmp_path: Path) -> None:
    cache = DataCache(cache_dir=tmp_path)
    cache.put("SPY", "1m", 0, 10 * NS_PER_MINUTE, _two_bars())
    (path,) = cache_files(tmp_path)
    bad = _edit_manifest(_set("n", 3))
    path.write_bytes(b"".join(_codec.frame(b"3:SPY|1m|0|%d" % (10 * NS_PER_MINUTE), 5.0, [bad])))
    reopened = DataCache(cache_dir=tmp_path)
    assert reopened.get("SPY", "1m", 0, 10 * NS_PER_MINUTE) is None
    assert reopened.statistics()["corrupt"] == 1
    assert not path.exists()


def test_the_file_key_is_the_length_prefixed_symbol_and_the_request(tmp_path: Path) -> None:
    cache = DataCache(cache_dir=tmp_path)
    cache.put("SPY", "1m", 0, NS_PER_MINUTE, _two_bars())
    (path,) = cache_files(tmp_path)
    path.write_bytes(
        b"".join(_codec.frame(b"3:SPY|1m|0|%d" % NS_PER_MINUTE, 5.0, _codec.encode_items([])))
    )
    assert DataCache(cache_dir=tmp_path).get("SPY", "minute", 0, NS_PER_MINUTE) == []


def test_ints_beyond_int64_round_trip_and_symbols_must_be_text() -> None:
    items: list[MarketData] = [
        TradeBar("SPY", 0, 1.0, 1.0, 1.0, 1.0, 1.0, revision=2**63),
        TradeBar("SPY", 1, 1.0, 1.0, 1.0, 1.0, 1.0, revision=2**64 - 1),
    ]
    payload = b"".join(_codec.encode_items(items))
    assert _codec.decode_items(memoryview(payload)) == items
    with pytest.raises(TypeError, match="symbol must be a str, got bytes"):
        DataCache().get(b"SPY", "1m", DAY + 0, END + 1)  # type: ignore[arg-type]  # wrong type on purpose


def test_statistics_never_wait_for_a_thread_doing_disk_io(tmp_path: Path) -> None:
    cache = DataCache(cache_dir=tmp_path)
    with cache._lock:  # what a worker thread holds while it reads a big file
        assert cache.statistics()["hits"] == 0
        assert cache.hit_rate == 0.0


# ---------------------------------------------------------------- forged disk answers


def plant(directory: Path, key: tuple[str, str, int, int], payload: list[bytes]) -> Path:
    """Write a cache file with a valid checksum for ``key``, as anyone with access could."""
    from lean_data.storage.cache_disk import file_name, key_bytes

    path = directory / file_name(key)
    path.write_bytes(b"".join(_codec.frame(key_bytes(key), time.time(), payload)))
    return path


def claiming(items: list[MarketData], count: int) -> list[bytes]:
    """The payload of ``items`` with its manifest claiming ``count`` items in the first block."""
    _, manifest, *blobs = _codec.encode_items(items)
    edited = orjson.loads(manifest)
    edited["blocks"][0]["n"] = count
    raw = orjson.dumps(edited)
    return [struct.pack("<I", len(raw)), raw, *blobs]


@pytest.mark.parametrize("resolution", ["1m", "tick"])
def test_a_file_claiming_a_million_items_is_rejected_before_decoding(
    tmp_path: Path, spy_bars: list[TradeBar], caplog: pytest.LogCaptureFixture, resolution: str
) -> None:
    start = spy_bars[0].ts_event
    key = ("SPY", resolution, start, start + 100 * NS_PER_MINUTE)
    one: MarketData = spy_bars[0]
    if resolution == "tick":
        one = Tick("SPY", start, 168.0, 100.0)
    path = plant(tmp_path, key, claiming([one], 1_000_000))
    assert path.stat().st_size < 600  # 517 bytes for the bar
    cache = DataCache(cache_dir=tmp_path)
    tracemalloc.start()
    try:
        with caplog.at_level(logging.WARNING, logger="lean_data.storage.cache"):
            assert cache.get(*key) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20  # decoding would have built 1,000,000 items: 131 MiB for bars
    assert [r.getMessage().startswith(f"rejecting cache file {path}") for r in caplog.records] == [
        True
    ]
    assert "1000000" in caplog.records[0].getMessage()
    stats = cache.statistics()
    assert (stats["rejected"], stats["corrupt"], stats["misses"], stats["hits"]) == (1, 0, 1, 0)
    assert not path.exists()
    assert stats["disk_entries"] == 0


FORGERIES: dict[str, Callable[[TradeBar], TradeBar]] = {
    "another symbol": lambda bar: replace(bar, symbol="AAPL"),
    "after the range": lambda bar: replace(bar, ts_event=bar.ts_event + 200 * NS_PER_MINUTE),
    "before the range": lambda bar: replace(bar, ts_event=bar.ts_event - 24 * 60 * NS_PER_MINUTE),
    "another resolution": lambda bar: replace(bar, resolution=Resolution.parse("5m")),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_file_with_an_item_that_does_not_fit_the_request_is_rejected(
    tmp_path: Path, spy_bars: list[TradeBar], forgery: str
) -> None:
    bars = spy_bars[:100]
    key = ("SPY", "1m", bars[0].ts_event, bars[-1].ts_event + NS_PER_MINUTE)
    forged: list[MarketData] = [*bars[:50], FORGERIES[forgery](bars[50]), *bars[51:]]
    path = plant(tmp_path, key, _codec.encode_items(forged))
    cache = DataCache(cache_dir=tmp_path)
    assert cache.get(*key) is None
    assert cache.statistics()["rejected"] == 1
    assert not path.exists()
    plant(tmp_path, key, _codec.encode_items(bars))  # the honest answer is served
    assert DataCache(cache_dir=tmp_path).get(*key) == bars


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_file_whose_every_item_does_not_fit_is_rejected(
    tmp_path: Path, spy_bars: list[TradeBar], forgery: str
) -> None:
    """Every item forged the same way: the column is stored once, as a constant, and its
    one value is what the check reads (or, for times, its least and greatest)."""
    bars = spy_bars[:100]
    key = ("SPY", "1m", bars[0].ts_event, bars[-1].ts_event + NS_PER_MINUTE)
    forged: list[MarketData] = [FORGERIES[forgery](bar) for bar in bars]
    path = plant(tmp_path, key, _codec.encode_items(forged))
    cache = DataCache(cache_dir=tmp_path)
    assert cache.get(*key) is None
    assert cache.statistics()["rejected"] == 1
    assert not path.exists()


def edited(items: list[MarketData], field: str, column: list[Any]) -> list[bytes]:
    """The payload of ``items`` with the first block's ``field`` column replaced."""
    _, manifest, *blobs = _codec.encode_items(items)
    changed = orjson.loads(manifest)
    block = changed["blocks"][0]
    block["columns"][block["fields"].index(field)] = column
    raw = orjson.dumps(changed)
    return [struct.pack("<I", len(raw)), raw, *blobs]


@pytest.mark.parametrize(
    ("field", "column"),
    [("ts_event", ["l", ["x", "y"]]), ("symbol", ["l", [1, 2]]), ("ts_event", ["c", "x"])],
    ids=["times that are text", "symbols that are numbers", "a constant time that is text"],
)
def test_a_file_with_a_column_of_another_type_is_corrupt_not_a_crash(
    tmp_path: Path, spy_bars: list[TradeBar], field: str, column: list[Any]
) -> None:
    bars = spy_bars[:2]
    key = ("SPY", "1m", bars[0].ts_event, bars[-1].ts_event + NS_PER_MINUTE)
    path = plant(tmp_path, key, edited(list(bars), field, column))
    cache = DataCache(cache_dir=tmp_path)
    assert cache.get(*key) is None
    stats = cache.statistics()
    assert stats["corrupt"] + stats["rejected"] == 1
    assert stats["corrupt"] == (1 if field == "ts_event" else 0)
    assert not path.exists()


def test_a_file_of_derivatives_records_is_corrupt_for_the_market_cache(tmp_path: Path) -> None:
    from lean_data.derivatives import FundingRate

    start = 1_700_000_000 * 10**9
    key = ("BTC/USDT", "1m", start, start + NS_PER_MINUTE)
    rate = FundingRate("BTC/USDT", start, 0.0001)
    path = plant(tmp_path, key, _codec.encode_items([rate]))
    cache = DataCache(cache_dir=tmp_path)
    assert cache.get(*key) is None
    assert cache.statistics()["corrupt"] == 1
    assert not path.exists()


def test_put_keeps_an_answer_that_does_not_fit_its_request_off_disk(
    tmp_path: Path, spy_bars: list[TradeBar], caplog: pytest.LogCaptureFixture
) -> None:
    cache = DataCache(cache_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="lean_data.storage.cache"):
        cache.put("SPY", "1m", 0, 1, spy_bars)  # the bars are of 2013, not of 1970
    assert cache.get("SPY", "1m", 0, 1) == spy_bars  # memory still answers
    assert cache_files(tmp_path) == []
    assert "outside [0, 1]" in caplog.records[0].getMessage()


async def test_the_engine_asks_its_feed_when_the_disk_answer_is_forged(
    tmp_path: Path, spy_bars: list[TradeBar]
) -> None:
    from lean_data import Config, DataEngine
    from tests.helpers import ListFeed

    start = spy_bars[0].ts_event
    end = start + 100 * NS_PER_MINUTE
    expected = [bar for bar in spy_bars if start <= bar.ts_event < end]
    assert len(expected) == 69  # the first 100 minutes hold 69 bars
    key = DataCache._key("SPY", Resolution.MINUTE, start, end)
    forged = plant(tmp_path, key, claiming([spy_bars[0]], 1_000_000))
    feed = ListFeed("lean", history=spy_bars)
    engine = DataEngine(Config(db_path=None, cache_dir=tmp_path, metrics_interval_s=0))
    engine.add_feed(feed)
    async with engine:
        got = await engine.get_historical_data("SPY", start, end, Resolution.MINUTE)
        assert got == expected
        assert feed.history_calls == 1
        assert engine.get_metrics()["cache"]["rejected"] == 1
        assert await engine.get_historical_data("SPY", start, end, Resolution.MINUTE) == got
        assert feed.history_calls == 1  # the real answer replaced the forged file
    assert forged.exists()  # the same name, now holding the real answer
    assert DataCache(cache_dir=tmp_path).get("SPY", "1m", start, end) == expected


@settings(max_examples=200, deadline=None)
@given(
    picks=st.lists(
        st.tuples(
            st.sampled_from(["SPY", "AAPL"]), st.integers(-3, 12), st.sampled_from(["1m", "5m"])
        ),
        min_size=1,
        max_size=12,
    ),
    asked=st.sampled_from(["1m", "5m", "tick"]),
)
def test_the_column_check_rejects_exactly_what_the_item_check_rejects(
    picks: list[tuple[str, int, str]], asked: str
) -> None:
    """Both checks (the file's decoded columns; the items' own fields) against the rule
    spelled out item by item, as the cache checked built bars before."""
    from lean_data.storage.cache_disk import blocks_problem, item_problem

    start = 1_700_000_000 * 10**9
    key = ("SPY", asked, start, start + 8 * NS_PER_MINUTE)
    items: list[MarketData] = [
        TradeBar(symbol, start + minute * NS_PER_MINUTE, 1.0, 1.0, 1.0, 1.0, 1.0,
                 Resolution.parse(resolution))
        for symbol, minute, resolution in picks
    ]  # fmt: skip
    resolution = Resolution.parse(asked)
    fits = all(
        item.symbol == "SPY"
        and key[2] <= item.ts_event <= key[3]
        and (resolution.is_tick or item.resolution == resolution)  # type: ignore[union-attr]
        for item in items
    ) and (resolution.nanos <= 0 or len(items) <= 8 * NS_PER_MINUTE // resolution.nanos + 1)
    blocks = _codec.decode_blocks(memoryview(b"".join(_codec.encode_items(items))))
    assert (blocks_problem(key, blocks) is None) == fits
    assert (item_problem(key, items) is None) == fits
