"""Arguments of the wrong type fail the same way in the compiled and the pure build.

A compiled module checks an annotated argument's type at the call and raises TypeError; the
pure build raises TypeError too, from an explicit check, with the argument named. Values of
the right type out of range are a ConfigError (or ValueError) in both. CI runs this file on
each build (it is in ``COMPILED_MODULES``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from lean_data import DataBuffer, DataQualityLevel, DataValidator, TradeBar
from lean_data.errors import ConfigError
from lean_data.series.aggregation import TimeBarAggregator
from lean_data.storage.rows import bar_from_row


def _buffer() -> DataBuffer[TradeBar]:
    buffer: DataBuffer[TradeBar] = DataBuffer(10)
    buffer.add(TradeBar("SPY", 1_381_152_600 * 10**9, 169.1, 169.2, 169.0, 169.1, 100.0))
    return buffer


WRONG_TYPES: dict[str, Callable[[], object]] = {
    "aggregator symbol 5": lambda: TimeBarAggregator(5, "1m"),  # type: ignore[arg-type]
    "aggregator symbol None": lambda: TimeBarAggregator(None, "1m"),  # type: ignore[arg-type]
    "emit_empty=1": lambda: TimeBarAggregator("SPY", "1m", emit_empty=1),  # type: ignore[arg-type]
    "emit_empty='no'": lambda: TimeBarAggregator("SPY", "1m", emit_empty="no"),  # type: ignore[arg-type]
    "get_latest(1.5)": lambda: _buffer().get_latest(1.5),  # type: ignore[arg-type]
    "get_latest('2')": lambda: _buffer().get_latest("2"),  # type: ignore[arg-type]
    "range_multiple='x'": lambda: DataValidator(range_multiple="x"),  # type: ignore[arg-type]
    "split_tolerance=None": lambda: DataValidator(split_tolerance=None),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("case", sorted(WRONG_TYPES))
def test_a_wrong_type_is_a_type_error(case: str) -> None:
    with pytest.raises(TypeError):
        WRONG_TYPES[case]()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: DataValidator(range_multiple=0.0), "range_multiple must be a finite number > 0"),
        (lambda: DataValidator(range_multiple=math.inf), "range_multiple must be a finite"),
        (lambda: DataValidator(split_tolerance=-0.1), "split_tolerance must be a finite number >="),
        (lambda: TimeBarAggregator("", "1m"), "needs a symbol"),
    ],
)
def test_a_value_out_of_range_is_a_config_error(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


def test_right_types_still_work() -> None:
    validator = DataValidator(range_multiple=12, split_tolerance=0)
    assert validator.check(_buffer().get_latest()[0]).level is DataQualityLevel.EXCELLENT
    assert TimeBarAggregator("SPY", "1m", emit_empty=True).emit_empty is True
    assert [b.close for b in _buffer().get_latest(1)] == [169.1]


def test_bars_read_back_with_null_values_compare_equal() -> None:
    """A NULL price or volume reads back as the same NaN object in both builds, so two reads
    of one stored bar compare equal (a NaN equals itself only as the same object)."""
    row = ("BTC/USDT", 1_700_000_000_000_000_000, 1.0, 2.0, 0.5, None, None, "1m", 0, 1, 0, 0)
    first, second = bar_from_row(row), bar_from_row(row)
    assert math.isnan(first.volume)
    assert math.isnan(first.close)
    assert first == second
