"""Bars read out of PostgreSQL by binary COPY (lean_data/storage/postgres/bulk_read.py).

The decoder on its own (rows encoded here in COPY's binary format, fed in every kind of
split; headers, trailers and layouts it must refuse), then the store: a range read of one
resolution, which takes the COPY path, gives exactly the bars the plain query and
``bar_from_row`` give, on the real FTX BTC-PERP minutes (tests/fixtures/nautilus_trader)
with odd values among them; several resolutions take the plain path.
"""

from __future__ import annotations

import dataclasses
import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lean_data.errors import StorageError
from lean_data.loaders import load_file
from lean_data.models import NS_PER_MINUTE, Resolution, TradeBar
from lean_data.storage import schema as sch
from lean_data.storage.postgres.bulk_read import BarDecoder, BinaryCopyError
from lean_data.storage.rows import bar_from_row
from tests.backends import PostgresBackend
from tests.conftest import FIXTURES

M = NS_PER_MINUTE
CSV = FIXTURES / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"
NOW = 1_700_000_000 * 10**9
HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = b"\xff\xff"


def encode(bar: TradeBar) -> bytes:
    """``bar`` as one row of the decoder's select list, in COPY's binary format."""
    values = (bar.ts_event, bar.open, bar.high, bar.low, bar.close, bar.volume)
    return struct.pack(
        ">h" + "iq" + "id" * 5 + "iq" + "i?" + "iq" + "i?",
        10, *(x for pair in zip((8,) * 6, values, strict=True) for x in pair),
        8, bar.ts_recv, 1, bar.closed, 8, bar.revision, 1, bar.backfilled,
    )  # fmt: skip


def odd_bars() -> list[TradeBar]:
    return [
        TradeBar("X", 0, 1.0, 2.0, 0.5, 1.5, 10.0, ts_recv=1),
        TradeBar("X", M, math.nan, math.inf, -math.inf, -0.0, math.nan, ts_recv=NOW),
        TradeBar("X", 2 * M, 5e-324, 1.7976931348623157e308, 0.1, 0.2, 0.0, closed=False),
        TradeBar("X", -3 * M, 1.0, 1.0, 1.0, 1.0, 1.0, revision=2**62, backfilled=True),
    ]


def decode(data: bytes, splits: list[int]) -> list[TradeBar]:
    decoder = BarDecoder("X", Resolution.MINUTE)
    start = 0
    for stop in [*sorted(splits), len(data)]:
        decoder.feed(data[start:stop])
        start = max(start, stop)
    return decoder.finish()


def same(a: list[TradeBar], b: list[TradeBar]) -> bool:
    """Equal field by field, nan equal to nan and -0.0 told from 0.0 (reprs)."""
    return [repr(x) for x in a] == [repr(x) for x in b]


def test_the_decoder_builds_each_bar_with_every_field() -> None:
    bars = odd_bars()
    data = HEADER + b"".join(encode(b) for b in bars) + TRAILER
    got = decode(data, [])
    assert same(got, bars)
    assert math.copysign(1.0, got[1].close) == -1.0
    assert got[3].revision == 2**62
    assert got[3].backfilled
    assert not got[2].closed


@given(st.lists(st.integers(min_value=0, max_value=4 * 108 + 21), max_size=12))
def test_any_split_of_the_stream_into_chunks_gives_the_same_bars(splits: list[int]) -> None:
    bars = odd_bars()
    data = HEADER + b"".join(encode(b) for b in bars) + TRAILER
    assert same(decode(data, splits), bars)


def test_one_byte_chunks_and_no_rows() -> None:
    bars = odd_bars()
    data = HEADER + b"".join(encode(b) for b in bars) + TRAILER
    assert same(decode(data, list(range(len(data)))), bars)
    assert decode(HEADER + TRAILER, []) == []


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"PGCOPY\n\xff\r\n\x01" + bytes(8) + TRAILER, "not a binary COPY header"),
        (HEADER[:-4] + struct.pack(">i", 4) + bytes(4) + TRAILER, "not a binary COPY header"),
        (HEADER + encode(odd_bars()[0])[:-1] + TRAILER, "undecoded"),
        (HEADER + encode(odd_bars()[0]), "undecoded"),
        (HEADER[:10], "undecoded"),
        (b"", "undecoded"),
    ],
    ids=["signature", "extension", "short-row", "no-trailer", "short-header", "nothing"],
)
def test_data_that_is_not_the_format_is_refused(data: bytes, words: str) -> None:
    with pytest.raises(BinaryCopyError, match=words):
        decode(data, [])


def test_a_null_or_a_narrower_column_is_refused_not_misread() -> None:
    row = encode(odd_bars()[0])
    null_open = row[:14] + struct.pack(">i", -1) + row[26:] + bytes(8)  # same length
    int4_ts = row[:2] + struct.pack(">ii", 4, 0) + row[14:] + bytes(4)
    for bad in (null_open, int4_ts):
        assert len(bad) == len(row)
        with pytest.raises(BinaryCopyError, match="layout"):
            decode(HEADER + bad + TRAILER, [])


@pytest.fixture(scope="module")
def btc() -> list[TradeBar]:
    bars = [b for b in load_file(CSV, symbol="BTC-PERP") if isinstance(b, TradeBar)]
    assert len(bars) == 45_031
    return bars


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many bars each read by binary COPY decoded."""
    decoded: list[int] = []
    finish = BarDecoder.finish

    def counted(self: BarDecoder) -> list[TradeBar]:
        bars = finish(self)
        decoded.append(len(bars))
        return bars

    monkeypatch.setattr(BarDecoder, "finish", counted)
    return decoded


async def test_a_range_read_by_copy_equals_the_plain_query(
    pg: PostgresBackend, btc: list[TradeBar], copies: list[int]
) -> None:
    bars = [dataclasses.replace(b, ts_recv=NOW + i) for i, b in enumerate(btc)]
    odd = [  # odd values in the middle of the real minutes
        dataclasses.replace(bars[100], open=math.nan, volume=math.nan, closed=False, revision=1),
        dataclasses.replace(bars[200], high=math.inf, low=-math.inf, revision=3),
        dataclasses.replace(bars[300], backfilled=True, close=-0.0),
    ]
    async with pg.make(rollups=()) as store:
        for bar in bars + odd:
            await store.save_market_data(bar, feed="ftx")
        await store.save_market_data(dataclasses.replace(bars[5], ts_recv=1), feed="other")
        start, end = bars[0].ts_event, bars[-1].ts_event + M
        got = await store.get_market_data("BTC-PERP", start, end)
        by_feed = await store.get_market_data("BTC-PERP", start, end, feed="ftx", resolution="1m")
        part = await store.get_market_data("BTC-PERP", bars[1000].ts_event, bars[2000].ts_event)
    select = sch.SELECT["bars"]
    plain = [
        bar_from_row(r) for r in await pg.rows(f"{select} ORDER BY ts_event, feed, resolution")
    ]
    assert len(got) == 45_032
    assert same(got, plain)
    ftx = [
        bar_from_row(r) for r in await pg.rows(f"{select} WHERE feed = ? ORDER BY ts_event", "ftx")
    ]
    assert len(by_feed) == 45_031
    assert same(by_feed, ftx)
    assert same(part, plain[1001:2001])  # bars[5] twice (two feeds): one place later
    assert copies == [45_032, 45_031, 1000]  # each of the three came by COPY
    assert same([got[101], got[201], got[301]], odd)


async def test_several_resolutions_are_read_by_the_plain_query(
    pg: PostgresBackend, btc: list[TradeBar], copies: list[int]
) -> None:
    minutes = [dataclasses.replace(b, ts_recv=NOW) for b in btc[:30]]
    five = [
        dataclasses.replace(b, resolution=Resolution.parse("5m"))
        for b in minutes
        if b.ts_event % (5 * M) == 0
    ]
    async with pg.make(rollups=()) as store:
        for bar in minutes + five:
            await store.save_market_data(bar)
        got = await store.get_market_data("BTC-PERP", 0, 2**62)
        only_five = await store.get_market_data("BTC-PERP", 0, 2**62, resolution="5m")
    assert len(got) == len(minutes) + len(five)
    assert same(only_five, five)
    assert sorted(got, key=lambda b: (b.ts_event, b.resolution.nanos)) == got
    assert copies == [len(five)]  # the mixed read was not a COPY; the 5m one was


async def test_a_read_on_a_closed_store_is_refused(pg: PostgresBackend) -> None:
    store = pg.make()
    await store.open()
    await store.close()
    with pytest.raises(Exception, match="closed"):
        await store.get_market_data("X", 0, 2**62, resolution="1m")


async def test_a_failed_copy_is_a_storage_error(pg: PostgresBackend) -> None:
    async with pg.make() as store:
        await store.save_market_data(TradeBar("X", 0, 1.0, 1.0, 1.0, 1.0, 1.0, ts_recv=NOW))
        assert len(await store.get_market_data("X", 0, 2**62)) == 1
        await pg.conn.execute(f'DROP TABLE "{pg.schema}".bars CASCADE')
        with pytest.raises(StorageError, match="query failed"):
            await store.get_market_data("X", 0, 2**62, resolution="1m")


async def test_a_symbol_with_quotes_backslashes_and_placeholders_reads_back_by_copy(
    pg: PostgresBackend, copies: list[int]
) -> None:
    """COPY takes no parameters: the values are written into the statement, quoted."""
    odd = "O'Reilly\\ $1 $3'); DROP TABLE bars; --é"
    bar = TradeBar(odd, 0, 1.0, 2.0, 0.5, 1.5, 10.0, ts_recv=NOW)
    async with pg.make(rollups=()) as store:
        await store.save_market_data(bar, feed="it's")
        await store.save_market_data(dataclasses.replace(bar, symbol="O"), feed="it's")
        assert await store.get_market_data(odd, 0, 2**62, feed="it's") == [bar]
    assert copies == [1]
    assert await pg.rows("SELECT count(*) FROM bars") == [(2,)]


def test_only_ints_and_text_without_nul_are_written_into_a_copy() -> None:
    from lean_data.storage.postgres.bulk_read import _inline

    assert _inline("a = $1 AND b = $2 AND c = $10", [*range(1, 10), "x'y"]) == (
        "a = 1 AND b = 2 AND c = 'x''y'"
    )
    for bad in (1.5, True, None, b"x"):
        with pytest.raises(TypeError, match="int or a str"):
            _inline("$1", [bad])
    with pytest.raises(ValueError, match="NUL"):
        _inline("$1", ["a\x00b"])
