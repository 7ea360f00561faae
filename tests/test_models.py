"""Bars, quotes and ticks are immutable records (issue 12, item 5).

Nothing downstream can change an item another part of the engine holds: assignment and
deletion raise, a change is a new record (``dataclasses.replace``), and ``DataFeed.emit``
hands the engine a stamped copy instead of writing ``ts_recv`` into the feed's item. The
fast constructor (``models._fast_constructor``) must build exactly what the dataclass
would have, for the records, their subclasses, pickling and copying.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import pickle
from collections.abc import Sequence
from typing import Any

import pytest

from lean_data.models import (
    AssetClass,
    MarketData,
    QuoteBar,
    Resolution,
    Tick,
    TickType,
    TradeBar,
    with_ts_recv,
)
from tests.helpers import IdleFeed

BAR = TradeBar(
    "BTC/USDT", 1_701_648_000_000_000_000, 37000.5, 37010.25, 36990.0, 37005.75, 12.345,
    Resolution.MINUTE, 1_701_648_060_000_000_123, False, 2, True,
)  # fmt: skip
QUOTE = QuoteBar(
    "EUR/USD", 1_701_648_000_000_000_000, 1.1, 1.2, 1.0, 1.15, 5.0, 1.11, 1.21, 1.01, 1.16,
    6.0, Resolution.SECOND, 7, False, 1, True,
)  # fmt: skip
TICK = Tick(
    "SPY", 1_381_413_600_000_000_000, 169.5, 100.0, TickType.QUOTE, 9, 169.4, 200.0, 169.6,
    300.0, "P", "00000001", True, "42",
)  # fmt: skip
RECORDS: list[MarketData] = [BAR, QUOTE, TICK]
IDS = ["TradeBar", "QuoteBar", "Tick"]


def _values(item: Any) -> dict[str, Any]:
    return {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}


@pytest.mark.parametrize("item", RECORDS, ids=IDS)
def test_a_record_refuses_assignment_and_deletion(item: MarketData) -> None:
    for f in dataclasses.fields(item):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(item, f.name, getattr(item, f.name))
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(item, f.name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.extra = 1  # type: ignore[union-attr]  # what the test checks


@pytest.mark.parametrize("item", RECORDS, ids=IDS)
def test_the_fast_constructor_builds_what_the_fields_say(item: MarketData) -> None:
    cls = type(item)
    values = _values(item)
    by_position = cls(*values.values())
    by_keyword = cls(**values)
    assert type(by_position) is cls
    assert _values(by_position) == _values(by_keyword) == values
    assert by_position == by_keyword == item
    assert hash(by_position) == hash(item)
    assert repr(by_position) == repr(item)
    assert repr(item).startswith(f"{cls.__name__}(symbol=")


@pytest.mark.parametrize("cls", [TradeBar, QuoteBar, Tick], ids=IDS)
def test_the_constructor_defaults_are_the_field_defaults(cls: type[MarketData]) -> None:
    parameters = list(inspect.signature(cls).parameters.values())
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]  # a dataclass
    assert [p.name for p in parameters] == [f.name for f in fields]
    for parameter, f in zip(parameters, fields, strict=True):
        expected = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        assert parameter.default is expected or parameter.default == expected, f.name


def test_defaults_and_missing_arguments() -> None:
    bar = TradeBar("X", 1, 1.0, 2.0, 0.5, 1.5, 10.0)
    assert (bar.resolution, bar.ts_recv, bar.closed, bar.revision, bar.backfilled) == (
        Resolution.MINUTE, 0, True, 0, False,
    )  # fmt: skip
    with pytest.raises(TypeError, match="volume"):
        TradeBar("X", 1, 1.0, 2.0, 0.5, 1.5)  # type: ignore[call-arg]  # what the test checks
    with pytest.raises(TypeError, match="nonsense"):
        TradeBar("X", 1, 1.0, 2.0, 0.5, 1.5, 1.0, nonsense=1)  # type: ignore[call-arg]


@pytest.mark.parametrize("item", RECORDS, ids=IDS)
def test_replace_pickle_and_copy_keep_the_record(item: MarketData) -> None:
    for other in (
        pickle.loads(pickle.dumps(item)),
        pickle.loads(pickle.dumps(item, protocol=0)),
        copy.copy(item),
        copy.deepcopy(item),
        dataclasses.replace(item),
    ):
        assert type(other) is type(item)
        assert other == item
    changed = dataclasses.replace(item, ts_event=item.ts_event + 1)
    assert changed.ts_event == item.ts_event + 1
    assert _values(changed) == {**_values(item), "ts_event": item.ts_event + 1}


def test_records_of_equal_fields_are_equal_and_hash_alike_nan_included() -> None:
    a = TradeBar("X", 1, math.nan, 2.0, 0.5, 1.5, math.nan)
    b = TradeBar("X", 1, math.nan, 2.0, 0.5, 1.5, math.nan)
    assert a == b  # the same nan object: tuple comparison sees identity first
    assert hash(a) == hash(b)
    assert len({a, b, dataclasses.replace(a, revision=1)}) == 2
    assert a != TradeBar("X", 1, math.nan, 2.0, 0.5, 1.5, 0.0)


class _WeakBar(TradeBar):
    """A subclass with another layout: built by the constructor's slow path."""

    __slots__ = ("__weakref__",)


def test_a_subclass_is_built_whole_and_stays_frozen() -> None:
    values = _values(BAR)
    bar = _WeakBar(**values)
    assert type(bar) is _WeakBar
    assert _values(bar) == values
    with pytest.raises(dataclasses.FrozenInstanceError):
        bar.close = 1.0  # type: ignore[misc]  # what the test checks
    assert type(pickle.loads(pickle.dumps(bar))) is _WeakBar
    stamped = with_ts_recv(bar, 5)
    assert type(stamped) is _WeakBar
    assert _values(stamped) == {**values, "ts_recv": 5}


@dataclasses.dataclass(frozen=True, slots=True)
class _VenueBar(TradeBar):
    """A user's dataclass subclass with a field of its own."""

    venue: str = ""


def test_a_dataclass_subclass_may_add_fields() -> None:
    values = _values(BAR)
    bar = _VenueBar(**values, venue="XNAS")
    assert type(bar) is _VenueBar
    assert _values(bar) == {**values, "venue": "XNAS"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        bar.venue = "ARCX"  # type: ignore[misc]  # what the test checks
    for same in (pickle.loads(pickle.dumps(bar)), copy.copy(bar), dataclasses.replace(bar)):
        assert type(same) is _VenueBar
        assert same == bar
    stamped = bar.with_ts_recv(5)
    assert (type(stamped), stamped.venue, stamped.ts_recv) == (_VenueBar, "XNAS", 5)
    assert bar.ts_recv == values["ts_recv"]


@pytest.mark.parametrize("item", RECORDS, ids=IDS)
def test_with_ts_recv_is_a_new_record_and_the_old_is_unchanged(item: MarketData) -> None:
    before = _values(item)
    stamped = with_ts_recv(item, 123)
    assert stamped is not item
    assert _values(stamped) == {**before, "ts_recv": 123}
    assert _values(item) == before


class _Sink:
    """Takes every item, as the engine's inbox does when it has room."""

    def __init__(self) -> None:
        self.items: list[MarketData] = []

    def offer(self, feed: str, item: MarketData) -> bool:
        self.items.append(item)
        return True

    async def accept(self, feed: str, item: MarketData) -> None:
        self.items.append(item)

    def offer_many(self, feed: str, items: Sequence[MarketData]) -> bool:
        self.items.extend(items)
        return True

    async def accept_many(self, feed: str, items: Sequence[MarketData]) -> None:
        self.items.extend(items)

    def feed_error(self, feed: str, kind: str, message: str, symbol: str = "") -> None:
        pass

    def feed_down(self, feed: str, symbols: Sequence[str], reason: str) -> None:
        pass


class _Feed(IdleFeed):
    asset_classes = frozenset({AssetClass.CRYPTO})


async def test_emit_stamps_a_copy_and_leaves_the_feeds_item_alone() -> None:
    feed, sink = _Feed("test"), _Sink()
    feed.attach(sink)
    unstamped = dataclasses.replace(BAR, ts_recv=0)
    await feed.emit(unstamped)
    [first] = sink.items
    assert unstamped.ts_recv == 0
    assert first is not unstamped
    assert first.ts_recv == feed.last_seen["BTC/USDT"] > 0
    await feed.emit(BAR)  # already stamped: passed on as it is
    second = sink.items[1]
    assert first == dataclasses.replace(unstamped, ts_recv=first.ts_recv)
    assert second is BAR
    with pytest.raises(TypeError, match="emit\\(\\) takes a TradeBar"):
        await feed.emit(object())  # type: ignore[arg-type]  # what the test checks
