"""Derivatives records: checked construction with one clear error, immutability, cache codec."""

from __future__ import annotations

import dataclasses
import math
import pickle
from typing import Any

import pytest

import lean_data
from lean_data.derivatives import FundingRate, Liquidation, MarkPrice, OpenInterest
from lean_data.models import TradeBar
from lean_data.storage.codec import decode_items, decode_records, encode_items

T0 = 1_637_193_600_017_000_000  # 2021-11-18 00:00:00.017 UTC, a real funding time
NAN = math.nan


def test_records_are_public_and_hold_what_they_were_given() -> None:
    assert lean_data.FundingRate is FundingRate
    assert lean_data.MarkPrice is MarkPrice
    assert lean_data.OpenInterest is OpenInterest
    assert lean_data.Liquidation is Liquidation
    rate = FundingRate("XRP/USDT:USDT", T0, -0.000125, 5, T0 + 8 * 3600 * 10**9, 8 * 3600 * 10**9)
    assert (rate.rate, rate.ts_recv, math.isnan(rate.predicted_rate)) == (-0.000125, 5, True)
    assert rate.time.isoformat() == "2021-11-18T00:00:00.017000+00:00"
    assert rate.with_ts_recv(9) == dataclasses.replace(rate, ts_recv=9)
    mark = MarkPrice("BTC/USDT:USDT", T0, 11794.15, 11784.62, funding_rate=0.00038167)
    assert (mark.mark_price, mark.index_price, mark.next_funding_time) == (11794.15, 11784.62, 0)
    interest = OpenInterest("BTC/USDT:USDT", T0, contracts=10659.509)
    assert interest.contracts == 10659.509
    assert math.isnan(interest.notional)
    liquidation = Liquidation("BTC/USDT:USDT", T0, "sell", 9910, 0.014, order_status="FILLED")
    assert type(liquidation.price) is float
    assert liquidation.price == 9910.0


def test_records_are_immutable_and_pickle() -> None:
    rate = FundingRate("XRP/USDT:USDT", T0, 0.0001)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rate.rate = 0.0  # type: ignore[misc]
    _same([pickle.loads(pickle.dumps(rate))], [rate])  # a fresh NaN: equal field by field
    assert not hasattr(rate, "__dict__")  # slotted


BAD: list[tuple[Any, type[Exception], str]] = [
    (lambda: FundingRate("", T0, 0.1), ValueError, "FundingRate.symbol must be a non-empty"),
    (lambda: FundingRate("X", float(T0), 0.1), TypeError, "FundingRate.ts_event must be an int"),
    (lambda: FundingRate("X", True, 0.1), TypeError, "FundingRate.ts_event must be an int"),
    (lambda: FundingRate("X", -1, 0.1), ValueError, "FundingRate.ts_event must be >= 0"),
    (lambda: FundingRate("X", T0, NAN), ValueError, "FundingRate.rate must be finite"),
    (lambda: FundingRate("X", T0, "0.1"), TypeError, "FundingRate.rate must be a number"),
    (
        lambda: FundingRate("X", T0, 0.1, predicted_rate=math.inf),
        ValueError,
        r"predicted_rate must be finite \(NaN means unknown\)",
    ),
    (
        lambda: FundingRate("X", T0, 0.1, next_funding_time=1.5),
        TypeError,
        "next_funding_time must be an int",
    ),
    (lambda: OpenInterest("X", T0), ValueError, "needs contracts or notional"),
    (lambda: OpenInterest("X", T0, contracts=-1.0), ValueError, "contracts must be >= 0"),
    (lambda: MarkPrice("X", T0, 0.0), ValueError, "MarkPrice.mark_price must be > 0"),
    (lambda: MarkPrice("X", T0, NAN), ValueError, "MarkPrice.mark_price must be finite"),
    (lambda: MarkPrice("X", T0, 1.0, -2.0), ValueError, "MarkPrice.index_price must be > 0"),
    (lambda: Liquidation("X", T0, "long", 1.0, 1.0), ValueError, "side must be 'buy' or 'sell'"),
    (lambda: Liquidation("X", T0, "buy", 1.0, 0.0), ValueError, "quantity must be > 0"),
    (lambda: Liquidation("X", T0, "buy", 1.0, 1.0, order_status=None), TypeError, "order_status"),
]


@pytest.mark.parametrize(("build", "error", "message"), BAD)
def test_a_bad_field_raises_one_clear_error(
    build: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        build()


def test_unknown_optionals_are_nan_or_zero() -> None:
    mark = MarkPrice("X", T0, 1.5)
    assert math.isnan(mark.index_price)
    assert math.isnan(mark.funding_rate)
    assert mark.next_funding_time == 0
    assert mark.ts_recv == 0
    liquidation = Liquidation("X", T0, "buy", 2.0, 3.0)
    assert math.isnan(liquidation.average_price)
    assert liquidation.order_status == ""


def _same(left: list[Any], right: list[Any]) -> None:
    """Equal field by field, NaN equal to NaN (bit-exact floats)."""
    assert [type(item) for item in left] == [type(item) for item in right]
    for a, b in zip(left, right, strict=True):
        for field in dataclasses.fields(a):
            x, y = getattr(a, field.name), getattr(b, field.name)
            if isinstance(x, float):
                assert math.copysign(1, x) == math.copysign(1, y)
                assert x == y or (math.isnan(x) and math.isnan(y)), field.name
            else:
                assert x == y, field.name


def test_the_cache_codec_round_trips_every_record_exactly_nan_included() -> None:
    items: list[Any] = [
        FundingRate("XRP/USDT:USDT", T0, 0.0001, funding_interval=8 * 3600 * 10**9),
        FundingRate("XRP/USDT:USDT", T0 + 1, -0.0, predicted_rate=0.1 + 0.2),
        MarkPrice("BTC/USDT:USDT", T0, 11794.15, NAN, 3, 0.00038167, T0 + 10),
        MarkPrice("BTC/USDT:USDT", T0 + 1, 11794.16),
        OpenInterest("BTC/USDT:USDT", T0, 10659.509, NAN),
        Liquidation("BTC/USDT:USDT", T0, "sell", 9910.0, 0.014, 7, "FILLED", 9910.0, 0.014),
        TradeBar("BTC/USDT", T0, 1.0, 2.0, 0.5, 1.5, NAN),
        Liquidation("BTC/USDT:USDT", T0 + 5, "buy", 9911.0, 1.0),
    ]
    decoded = decode_records(memoryview(b"".join(encode_items(items))))
    _same(decoded, items)
    with pytest.raises(lean_data.DataFormatError, match="read it with decode_records"):
        decode_items(memoryview(b"".join(encode_items(items))))  # the DataCache's reader
