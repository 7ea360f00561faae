"""decimal_float reads a venue's decimal string exactly as float() does (both builds)."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lean_data.wire.numbers import decimal_float


def _same(text: str) -> None:
    try:
        expected = float(text)
    except ValueError:
        with pytest.raises(ValueError, match=r"could not convert|encode"):
            decimal_float(text)
        return
    got = decimal_float(text)
    assert type(got) is float
    if math.isnan(expected):
        assert math.isnan(got), text
    else:  # bit for bit: the sign of a zero and the last digit count
        assert struct.pack("<d", got) == struct.pack("<d", expected), (text, got, expected)


@pytest.mark.parametrize(
    "text",
    [
        "41234.12000000", "0.00001234", "123.45678900", "0", "0.00000000", "-0", "-0.0",
        "1e5", "1E5", "1e-400", "1e400", "-1e400", "1.7976931348623157e308",
        "1.7976931348623159e308", "4.9e-324", "2.4703282292062328e-324", "9007199254740993",
        "123456789012345678901234567890",
        "0.1000000000000000055511151231257827021181583404541015625",
        "nan", "NaN", "inf", "-Infinity", "1_000", "01.5", ".5", "5.", "+1", " 1.5", "1.5 ",
        "\t1\n", "0x10", "", "-", "1.5\x00", "١٢", "\ud800", "1e", "--1", "1..2", "99e99999",
    ],
)  # fmt: skip
def test_edge_cases_read_as_float_reads_them(text: str) -> None:
    _same(text)


@settings(max_examples=2000, deadline=None)
@given(
    st.integers(min_value=0, max_value=10**20),
    st.integers(min_value=0, max_value=12),
    st.booleans(),
    st.integers(min_value=-330, max_value=330) | st.none(),
)
def test_decimal_strings_read_as_float_reads_them(
    digits: int, places: int, negative: bool, exponent: int | None
) -> None:
    text = str(digits).rjust(places + 1, "0")
    if places:
        text = f"{text[:-places]}.{text[-places:]}"
    if negative:
        text = "-" + text
    if exponent is not None:
        text = f"{text}e{exponent}"
    _same(text)


@settings(max_examples=2000, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_every_float_repr_reads_back(value: float) -> None:
    _same(repr(value))
    _same(f"{value:.8f}")  # Binance's fixed 8 places


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="0123456789.-+eE_ nainfINF", max_size=12))
def test_any_text_reads_or_fails_as_float_does(text: str) -> None:
    _same(text)
